// Dashboard: health checks, version and uptime, articles, index, storage, last backup,
// recent errors, and live charts of the last hour (polled every 5 s, no reload).
import { api } from "../api.js";
import { h, put, fmtBytes, fmtDuration, ago, badge, table, fmtTime } from "../dom.js";
import { lineChart } from "../chart.js";

const POLL_MS = 5000;

function card(title, ...body) {
  return h("section", { class: "card" }, h("h2", {}, title), body);
}

function dl(pairs) {
  return h("dl", {}, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function renderOverview(el, o) {
  const checks = Object.entries(o.health.checks);
  const last = o.backup.last_run;
  put(el,
    card("Health",
      h("p", {}, badge(o.health.status), " ", `version ${o.version}, up ${fmtDuration(o.uptime_secs)} (since ${fmtTime(o.started_at)})`),
      h("ul", { class: "checks" }, checks.map(([name, c]) =>
        h("li", {}, badge(c.status), " ", h("strong", {}, name.replace(/_/g, " ")), " — ", c.detail))),
      o.alerts.length ? h("div", { class: "notice error" }, h("strong", {}, "Alerts firing: "),
        o.alerts.map((a) => `${a.name} (${a.severity}): ${a.summary}`).join("; ")) : null),
    card("Articles", dl([
      ["Published", String(o.articles.published)],
      ["Drafts", String(o.articles.draft)],
      ["Deleted (restorable)", String(o.articles.deleted)],
    ])),
    card("Search index", dl([
      ["Documents", String(o.index.documents)],
      ["Last commit", o.index.last_commit ? ago(o.index.last_commit) : "none since start"],
      ["Waiting to index", `${o.index.outbox_pending}${o.index.lag_secs ? ` (oldest ${fmtDuration(o.index.lag_secs)})` : ""}`],
      ["Status", [badge(o.index.health.status), " ", o.index.health.detail]],
    ])),
    card("Storage", dl([
      ["Database", fmtBytes(o.storage.db_bytes)],
      ["WAL", fmtBytes(o.storage.wal_bytes)],
      ["Disk free", `${fmtBytes(o.storage.disk_free_bytes)} of ${fmtBytes(o.storage.disk_total_bytes)}`],
      ["Data directory", h("code", {}, o.storage.data_dir)],
    ])),
    card("Last backup", last ? dl([
      ["Result", last.ok ? badge("ok") : [badge("failed", "failing"), " ", last.error || ""]],
      ["When", `${ago(last.started_at)} (${last.trigger})`],
      ["Size", fmtBytes(last.size_bytes)],
      ["Last success", o.backup.last_success ? ago(o.backup.last_success.started_at) : "never"],
    ]) : h("p", { class: "muted" }, "No backup has run yet."),
    h("p", {}, h("a", { href: "/admin/backups", "data-link": true }, "Backups →"))),
    card("Recent errors",
      h("p", {}, `${o.errors.last_minute} in the last minute`),
      table([
        { label: "Last seen", cell: (g) => ago(g.last_seen) },
        { label: "Severity", cell: (g) => badge(g.severity) },
        { label: "Message", cell: (g) => g.message },
        { label: "Count", cell: (g) => String(g.count) },
      ], o.errors.recent, "No errors recorded."),
      h("p", {}, h("a", { href: "/admin/errors", "data-link": true }, "All errors →"))));
}

function renderCharts(el, hist) {
  const pts = hist.points;
  put(el,
    h("figure", { class: "card", id: "chart-rate" }, h("figcaption", {}, "Requests per second"),
      lineChart(pts.map((p) => ({ t: p.t, v: p.rate })), { label: "Requests per second", unit: "/s", digits: 2 })),
    h("figure", { class: "card", id: "chart-p99" }, h("figcaption", {}, "p99 latency"),
      lineChart(pts.map((p) => ({ t: p.t, v: p.p99_ms })), { label: "p99 latency", unit: " ms", digits: 1 })),
    h("figure", { class: "card", id: "chart-errors" }, h("figcaption", {}, "Error rate (5xx)"),
      lineChart(pts.map((p) => ({ t: p.t, v: p.requests ? (100 * p.errors) / p.requests : null })), { label: "Error rate", unit: " %", digits: 1 })));
}

export async function render(view) {
  const charts = h("div", { class: "charts", "aria-label": "Last hour" });
  const cards = h("div", { class: "grid" });
  const updated = h("p", { class: "muted", id: "updated" });
  put(view, h("h1", {}, "Dashboard"), charts, cards, updated);
  const refresh = async () => {
    const [o, hist] = await Promise.all([api("GET", "/api/admin/overview"), api("GET", "/api/admin/metrics/history")]);
    renderOverview(cards, o);
    renderCharts(charts, hist);
    put(updated, `Updated ${new Date().toLocaleTimeString()}; refreshes every ${POLL_MS / 1000} s.`);
  };
  await refresh();
  let stopped = false;
  const timer = setInterval(() => {
    if (!stopped && !document.hidden) refresh().catch((e) => put(updated, `Update failed: ${e.message}`));
  }, POLL_MS);
  return () => { stopped = true; clearInterval(timer); };
}

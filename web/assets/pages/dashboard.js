// Dashboard: health checks, version and uptime, articles, index, storage, last backup,
// recent errors, and live charts of the last hour (polled every 5 s, no reload).
import { api } from "../api.js";
import { h, put, fmtBytes, fmtDuration, ago, badge, table, fmtTime } from "../dom.js";
import { lineChart } from "../chart.js";
import { by } from "./backups.js";

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
        h("li", {}, badge(c.status), " ", h("strong", {}, name.replace(/_/g, " ")), " — ", localTimes(c.detail)))),
      o.alerts.length ? h("div", { class: "notice error" }, h("strong", {}, "Alerts firing: "),
        o.alerts.map((a) => `${a.name} (${a.severity}): ${localTimes(a.summary)}`).join("; ")) : null),
    card("Articles", dl([
      ["Published", String(o.articles.published)],
      ["Drafts", String(o.articles.draft)],
      ["Deleted (restorable)", String(o.articles.deleted)],
    ])),
    card("Search index", dl([
      ["Documents", String(o.index.documents)],
      ["Last commit", o.index.last_commit ? ago(o.index.last_commit) : "none since start"],
      ["Waiting to index", `${o.index.outbox_pending}${o.index.lag_secs ? ` (oldest ${fmtDuration(o.index.lag_secs)})` : ""}`],
      ["Status", [badge(o.index.health.status), " ", localTimes(o.index.health.detail)]],
    ])),
    card("Storage", dl([
      ["Database", fmtBytes(o.storage.db_bytes)],
      ["WAL", fmtBytes(o.storage.wal_bytes)],
      ["Disk free", `${fmtBytes(o.storage.disk_free_bytes)} of ${fmtBytes(o.storage.disk_total_bytes)}`],
      ["Data directory", h("code", {}, o.storage.data_dir)],
    ])),
    card("Last backup", last ? dl([
      ["Result", last.ok ? badge("ok") : [badge("failed", "failing"), " ", last.error || ""]],
      ["When", `${ago(last.started_at)} (${by(last.trigger)})`],
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

// Charts keep the bucket under the pointer (and keyboard focus) across refreshes.
const hovered = {};

function chartFigure(el, id, caption, note, points, opts) {
  let fig = el.querySelector(`#${id}`);
  if (!fig) {
    fig = h("figure", { class: "card", id }, h("figcaption", {}, caption), h("div", { class: "plot" }), h("p", { class: "muted chart-note" }));
    el.append(fig);
  }
  const said = fig.querySelector(".chart-note");
  said.textContent = note || "";
  said.hidden = !note;
  const plot = fig.querySelector(".plot");
  const focused = plot.contains(document.activeElement);
  const svg = lineChart(points, { ...opts, hover: hovered[id], onHover: (t) => { hovered[id] = t; } });
  plot.replaceChildren(svg);
  if (focused) svg.focus();
}

function renderCharts(el, hist) {
  const pts = hist.points;
  const step = hist.bucket_secs;
  const polled = pts.some((p) => p.polling > 0);
  chartFigure(el, "chart-rate", "Requests per second", polled ? "Dashed: this dashboard's own polling, left out of every chart." : null,
    pts.map((p) => ({ t: p.t, up: p.up, v: p.rate, aux: p.polling / step })),
    { label: "Requests per second", unit: "/s", digits: 2, step, aux: polled ? "dashboard polling" : undefined });
  chartFigure(el, "chart-p99", "p99 latency", null,
    pts.map((p) => ({ t: p.t, up: p.up, v: p.p99_ms })), { label: "p99 latency", unit: " ms", digits: 1, step });
  chartFigure(el, "chart-errors", "Error rate (5xx)", null,
    pts.map((p) => ({ t: p.t, up: p.up, v: p.requests ? (100 * p.errors) / p.requests : null })), { label: "Error rate", unit: " %", digits: 1, step });
}

/** Times the server writes into a sentence (RFC 3339, UTC) in the reader's local time. */
const localTimes = (text) => String(text).replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, (t) => fmtTime(t));

export async function render(view) {
  const charts = h("div", { class: "charts", role: "group", "aria-label": "The last hour, in 30-second buckets" });
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

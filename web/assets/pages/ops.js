// Admin pages over operations data: migrations, errors and the audit log (filterable,
// paginated tables) and the effective settings (secrets redacted by the server).
import { api, qs } from "../api.js";
import { h, put, field, showErrors, clearErrors, table, badge, fmtTime, ago, details } from "../dom.js";

export async function migrations(view) {
  const r = await api("GET", "/api/admin/migrations");
  put(view, h("h1", {}, "Migrations"),
    h("p", {}, `Database schema version ${r.current_version}; this binary carries up to ${r.target_version}. `,
      "Pending migrations run at the next start, after a copy of the database is kept."),
    r.problems.length ? h("div", { class: "notice error" }, h("strong", {}, "Problems: "), r.problems.join("; ")) : null,
    table([
      { label: "Version", cell: (m) => `V${m.version}` },
      { label: "Name", cell: (m) => m.name },
      { label: "State", cell: (m) => badge(m.state, m.state === "applied" ? "ok" : m.state === "pending" ? "degraded" : "failing") },
      { label: "Applied", cell: (m) => fmtTime(m.applied_on) },
      { label: "Checksum", cell: (m) => h("code", {}, m.applied_checksum || m.checksum || "–",
        m.applied_checksum && m.checksum && m.applied_checksum !== m.checksum ? ` (binary: ${m.checksum})` : "") },
    ], r.migrations));
}

/** A filter form plus a table that pages; `fetchPage(filters, pageState)` → {rows, next}. */
function pagedTable(view, { title, intro, filters, columns, fetchPage, empty }) {
  const form = h("form", { class: "filters", novalidate: true }, filters.map(([label, control, hint]) => field(label, control, hint)),
    h("button", { type: "submit" }, "Apply"), h("p", { class: "form-error notice error", role: "alert", hidden: true }));
  const out = h("div", { "aria-live": "polite" });
  let pages = [null];
  const load = async () => {
    clearErrors(form);
    const values = Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, String(v).trim()]));
    for (const k of ["since", "until"]) if (values[k]) values[k] = new Date(values[k]).toISOString();
    try {
      const { rows, next } = await fetchPage(values, pages[pages.length - 1]);
      put(out, table(columns, rows, empty),
        h("nav", { class: "pager", "aria-label": "Pages" },
          h("button", { type: "button", disabled: pages.length < 2, onclick: () => { pages.pop(); load(); } }, "Previous"),
          h("span", {}, `Page ${pages.length}`),
          h("button", { type: "button", disabled: next === null || next === undefined, onclick: () => { pages.push(next); load(); } }, "Next")));
    } catch (err) {
      showErrors(form, err);
    }
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); pages = [null]; load(); });
  put(view, h("h1", {}, title), intro ? h("p", {}, intro) : null, form, out);
  return load();
}

function select(name, options) {
  return h("select", { name }, h("option", { value: "" }, "any"), options.map((o) => h("option", { value: o }, o)));
}

export async function errors(view) {
  const PAGE = 25;
  await pagedTable(view, {
    title: "Errors",
    intro: "Errors grouped by fingerprint, most recently seen first. Messages are scrubbed of secrets before they are stored.",
    filters: [
      ["Category", select("category", ["database", "validation", "authentication", "network", "business_logic", "system"])],
      ["Severity", select("severity", ["low", "medium", "high", "critical"])],
      ["Component", h("input", { name: "component", type: "text" })],
      ["Seen since", h("input", { name: "since", type: "datetime-local" })],
    ],
    columns: [
      { label: "Last seen", cell: (g) => h("span", { title: fmtTime(g.last_seen) }, ago(g.last_seen)) },
      { label: "Severity", cell: (g) => badge(g.severity) },
      { label: "Category", cell: (g) => g.category },
      { label: "Where", cell: (g) => `${g.component}: ${g.operation}` },
      { label: "Message", cell: (g) => g.message },
      { label: "Count", cell: (g) => String(g.count) },
      { label: "First seen", cell: (g) => fmtTime(g.first_seen) },
      { label: "Last request", cell: (g) => g.last_request_id ? h("code", { title: "x-request-id: find it in the log" }, g.last_request_id) : "–" },
    ],
    empty: "No errors recorded.",
    fetchPage: async (f, offset) => {
      const r = await api("GET", `/api/admin/errors${qs({ ...f, limit: PAGE, offset: offset || 0 })}`);
      return { rows: r.groups, next: r.groups.length === PAGE ? (offset || 0) + PAGE : null };
    },
  });
}

export async function audit(view) {
  await pagedTable(view, {
    title: "Audit log",
    intro: "Who did what: sign-ins, users, tokens, backups, restores, index rebuilds. Newest first.",
    filters: [
      ["Action", h("input", { name: "action", type: "text", placeholder: "auth", size: 14 }), "A word (auth, user, backup) finds all its actions; auth.login just that one."],
      ["Actor", h("input", { name: "actor", type: "text" })],
      ["Outcome", select("outcome", ["success", "failure", "denied"])],
      ["Since", h("input", { name: "since", type: "datetime-local" })],
      ["Until", h("input", { name: "until", type: "datetime-local" })],
    ],
    columns: [
      { label: "When", cell: (e) => fmtTime(e.at) },
      { label: "Actor", cell: (e) => e.actor },
      { label: "Action", cell: (e) => h("code", {}, e.action) },
      { label: "Target", cell: (e) => e.target || "–" },
      { label: "Outcome", cell: (e) => badge(e.outcome, e.outcome === "success" ? "ok" : "failing") },
      { label: "IP", cell: (e) => e.ip || "–" },
      { label: "Details", cell: (e) => details(e.details) },
    ],
    empty: "No entries match.",
    fetchPage: async (f, before) => {
      const r = await api("GET", `/api/admin/audit${qs({ ...f, limit: 50, before })}`);
      return { rows: r.entries, next: r.next_before };
    },
  });
}

const ORIGIN = { default: "default", file: "config file", environment: "environment", command_line: "command line" };

/** The effective configuration: every key with its value, where it came from (default,
 * the file, an APPLIANCE__ variable, the command line) and what it means; a search over
 * keys and descriptions, and "changed only". */
export async function settings(view) {
  const r = await api("GET", "/api/admin/settings");
  const show = (v) => (Array.isArray(v) ? v.join(", ") || "(none)" : v === null || v === "" ? "(not set)" : String(v));
  const find = h("input", { name: "q", type: "search", placeholder: "listen, backup, rate…", autocomplete: "off" });
  const changed = h("input", { type: "checkbox", id: "changed-only" });
  const out = h("div", { id: "settings-list", "aria-live": "polite" });
  const render = () => {
    const words = find.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const rows = r.settings.filter((s) => (!changed.checked || s.origin !== "default")
      && words.every((w) => `${s.key} ${s.description || ""}`.toLowerCase().includes(w)));
    put(out, h("p", { class: "muted" }, `${rows.length} of ${r.settings.length} settings`),
      table([
        { label: "Key", cell: (s) => h("code", {}, s.key) },
        { label: "Value", cell: (s) => [show(s.value), JSON.stringify(s.value) !== JSON.stringify(s.default) ? h("div", { class: "muted" }, `default: ${show(s.default)}`) : null] },
        { label: "From", cell: (s) => badge(ORIGIN[s.origin] || s.origin, s.origin === "default" ? "" : "degraded") },
        { label: "What it does", cell: (s) => s.description || "–" },
      ], rows, "No setting matches."));
  };
  find.addEventListener("input", render);
  changed.addEventListener("change", render);
  put(view, h("h1", {}, "Settings"),
    h("p", {}, "The effective configuration: defaults, then /etc/appliance/appliance.toml (or --config), then APPLIANCE__SECTION__KEY variables, then --data-dir / --listen. Secrets show as [redacted]. Change them in the file and restart; ",
      h("code", {}, "appliance config check"), " validates a file first."),
    h("form", { class: "filters", role: "search", id: "settings-filter", onsubmit: (e) => e.preventDefault() },
      field("Search settings", find),
      h("div", { class: "field" }, h("span", { class: "label" }, "Show"), h("label", { class: "check" }, changed, " Only settings not at their default"))),
    out,
    h("details", {}, h("summary", {}, "As TOML"), h("pre", { id: "settings-toml" }, r.toml)));
  render();
  find.focus();
}

const JOB_NAMES = { index_rebuild: "Index rebuild", backup: "Backup", backup_verify: "Archive verification" };

function jobProgress(j) {
  if (j.state === "running") {
    const p = j.progress || {};
    const pct = p.total ? Math.min(100, Math.round((100 * p.done) / p.total)) : null;
    return h("span", {}, h("span", { class: "spinner", "aria-hidden": "true" }), ` ${p.step || "running"}`,
      pct === null ? "…" : ` — ${pct}% (${p.done} of ${p.total})`);
  }
  if (j.state === "succeeded") return details(j.result);
  return j.error || "–";
}

/** Background jobs (index rebuilds, backups, verifications): newest first, with progress
 * while they run; refreshes itself while one is running. "Rebuild the index" starts one. */
export async function jobs(view, ctx) {
  const out = h("div", { id: "jobs-list", "aria-live": "polite" });
  const rebuild = h("button", { type: "button", id: "index-rebuild" }, "Rebuild the search index");
  let timer = null;
  let stopped = false;
  const load = async () => {
    const r = await api("GET", "/api/admin/jobs?limit=50");
    put(out, table([
      { label: "Job", cell: (j) => `#${j.id}` },
      { label: "What", cell: (j) => [JOB_NAMES[j.kind] || j.kind, j.target ? [" ", h("code", {}, j.target)] : null] },
      { label: "State", cell: (j) => badge(j.state, j.state === "succeeded" ? "ok" : j.state === "running" ? "degraded" : "failing") },
      { label: "By", cell: (j) => j.actor },
      { label: "Started", cell: (j) => ago(j.started_at) },
      { label: "Finished", cell: (j) => (j.finished_at ? ago(j.finished_at) : "–") },
      { label: "Progress or outcome", cell: jobProgress },
    ], r.jobs, "No jobs yet."));
    rebuild.disabled = r.jobs.some((j) => j.kind === "index_rebuild" && j.state === "running");
    if (!stopped && r.jobs.some((j) => j.state === "running")) timer = setTimeout(() => load().catch(() => {}), 1000);
  };
  rebuild.addEventListener("click", async () => {
    try {
      await api("POST", "/api/admin/index/rebuild");
      ctx.flash("Index rebuild started; search keeps working meanwhile.");
      clearTimeout(timer);
      await load();
    } catch (err) { ctx.flash(err.message, "error"); }
  });
  put(view, h("div", { class: "title-row" }, h("h1", {}, "Jobs"), rebuild),
    h("p", {}, "Long operations run in the background: they go on when you leave this page, and their outcome stays here and in the audit log."),
    out);
  await load();
  return () => { stopped = true; clearTimeout(timer); };
}

// Restore an archive (admin): verify it first and show what it holds beside the live
// data, say what will happen, ask for the archive's name typed as confirmation, then
// follow the server through its restart until it serves again, and say how it ended.
import { api, waitJob } from "../api.js";
import { h, put, busy, table, fmtTime, badge } from "../dom.js";

const FIRST = ["articles", "users", "api_tokens", "sessions", "audit_log"];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function origin(o) {
  if (!o) return "–";
  if (o.state === "signed") return "signed by this appliance";
  if (o.state === "other_key") return "signed with another key";
  return "unsigned";
}

export async function render(view, ctx) {
  const name = decodeURIComponent(ctx.params[0]);
  const check = h("div", { id: "restore-check", "aria-live": "polite" }, h("p", {}, h("span", { class: "spinner", "aria-hidden": "true" }), " Verifying the archive (every file, the database and the index)…"));
  const confirmBox = h("div", { id: "restore-confirm" });
  put(view,
    h("p", {}, h("a", { href: "/admin/backups", "data-link": true }, "← Backups")),
    h("h1", {}, "Restore a backup"),
    h("p", {}, "Archive ", h("code", {}, name)),
    h("section", { class: "card" }, h("h2", {}, "What happens"),
      h("ol", {},
        h("li", {}, "The archive is verified again; nothing changes if it is not sound."),
        h("li", {}, "The server stops serving (for a few seconds on a small appliance, longer for a large archive): requests in flight finish, new ones wait or fail."),
        h("li", {}, "The live data directory is moved aside and kept (",
          h("code", {}, "<data>.pre-restore-<time>"), "), the archive’s data takes its place; if any step fails, every step is undone and the live data stays as it was."),
        h("li", {}, "The server starts again on its own. Everything written after the archive was made is no longer live (it stays in the kept directory). Sign-ins are those of the archive: you may have to sign in again."))),
    check, confirmBox);

  let verified;
  try {
    const r = await api("POST", `/api/admin/backups/${encodeURIComponent(name)}/verify`);
    verified = (await waitJob(r.job)).result;
  } catch (err) {
    put(check, h("p", { class: "notice error", id: "restore-refused" }, `This archive cannot be restored: ${err.message}`));
    return;
  }
  const a = verified.archive;
  const live = verified.live;
  const tables = [...new Set([...Object.keys(a.row_counts), ...Object.keys(live.row_counts)])]
    .filter((t) => !t.startsWith("refinery") && !t.startsWith("_"))
    // What people wrote first, bookkeeping after.
    .sort((x, y) => (FIRST.indexOf(x) + 1 || 99) - (FIRST.indexOf(y) + 1 || 99) || x.localeCompare(y));
  put(check,
    h("p", { class: "notice ok" }, badge("verified", "ok"), ` The archive is sound (${origin(a.origin)}).`),
    table([
      { label: "", cell: (r) => h("strong", {}, r[0]) },
      { label: "In the archive", cell: (r) => r[1] },
      { label: "Live now", cell: (r) => r[2] },
    ], [
      ["Made", fmtTime(a.created_at), fmtTime(new Date().toISOString())],
      ["Appliance version", a.app_version, live.app_version],
      ["Schema version", String(a.schema_version), String(live.schema_version)],
      ...tables.map((t) => [`${t} rows`, String(a.row_counts[t] ?? "–"), String(live.row_counts[t] ?? "–")]),
    ]),
    a.schema_version < live.schema_version ? h("p", { class: "muted" }, `The archive’s database is at schema ${a.schema_version}; migrations bring it to ${live.schema_version} at the start.`) : null);

  const typed = h("input", { name: "confirm", type: "text", autocomplete: "off", spellcheck: "false", id: "confirm-name" });
  const go = h("button", { type: "submit", class: "danger", id: "restore-go", disabled: true }, "Restore this archive");
  const status = h("div", { id: "restore-status", "aria-live": "polite" });
  typed.addEventListener("input", () => { go.disabled = typed.value.trim() !== name; });
  const form = h("form", { id: "restore-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "confirm-name" }, "Type the archive’s name to confirm"),
      typed, h("small", { class: "muted" }, name)),
    h("div", { class: "actions" }, go));
  put(confirmBox, h("section", { class: "card" }, h("h2", {}, "Restore"), form), status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (typed.value.trim() !== name) return;
    let accepted;
    try {
      accepted = await busy(go, "Asking…", () => api("POST", `/api/admin/backups/${encodeURIComponent(name)}/restore`, { confirm: typed.value.trim() }));
    } catch (err) {
      put(status, h("p", { class: "notice error", role: "alert" }, `The restore did not start: ${err.message}`));
      return;
    }
    form.hidden = true;
    ctx.guardLeave({ dirty: () => true, message: "The restore is under way; leave this page anyway? (It goes on without you.)" });
    put(status, h("p", { class: "notice", id: "restore-waiting" }, h("span", { class: "spinner", "aria-hidden": "true" }), " Restoring: the server has stopped serving and starts again on its own. This page follows it…"));
    // Follow the restart: wait until the server answers with this request's outcome.
    const deadline = Date.now() + 15 * 60 * 1000;
    while (Date.now() < deadline) {
      await sleep(700);
      let r;
      try {
        r = await api("GET", "/api/admin/backups");
      } catch (err) {
        if (err.status === 401) {
          ctx.guardLeave(null);
          ctx.flash("The server is back after the restore. The restored data has its own sign-ins: sign in again; Backups shows how the restore ended.", "ok", { carry: true });
          return ctx.navigate("/admin/signin?next=%2Fadmin%2Fbackups", { replace: true });
        }
        continue; // not serving yet
      }
      const done = r.last_restore;
      if (done && done.requested_at === accepted.requested_at) {
        ctx.guardLeave(null);
        put(status, outcomeNotice(done));
        return;
      }
    }
    ctx.guardLeave(null);
    put(status, h("p", { class: "notice error" }, "The server has not come back within 15 minutes. Check it on the machine (systemctl status appliance; journalctl -u appliance)."));
  });
  typed.focus();
}

/** How the last restore asked for in the UI ended. */
export function outcomeNotice(o) {
  return o.ok
    ? h("div", { class: "notice ok", id: "restore-outcome" },
      h("p", {}, h("strong", {}, `Restored ${o.archive}`), ` ${fmtTime(o.finished_at)} (asked by ${o.requested_by}). The server is serving the restored data.`),
      o.moved_aside ? h("p", {}, "The data it replaced is kept in ", h("code", {}, o.moved_aside), "; remove it when you no longer need it.") : null)
    : h("div", { class: "notice error", id: "restore-outcome" },
      h("p", {}, h("strong", {}, `The restore of ${o.archive} failed`), ` ${fmtTime(o.finished_at)}: ${o.error}.`),
      h("p", {}, "Every step was undone: the data is as it was before."));
}

// Backups (admin): archives with size, trigger and verification, "Back up now" with
// progress, verify, download; the schedule and retention; how to restore.
import { api, waitJob } from "../api.js";
import { h, put, busy, table, badge, ago, fmtBytes, fmtTime } from "../dom.js";
import { outcomeNotice } from "./restore.js";

// Who started a backup, in words (the archive name carries the short form).
const TRIGGER = { manual: "command line", api: "API token", scheduled: "schedule", ui: "admin UI" };
export const by = (t) => TRIGGER[t] || t;

function runningNotice(run) {
  const pct = run && run.bytes_total ? Math.min(100, Math.round((100 * run.bytes_done) / run.bytes_total)) : null;
  const step = run ? { writing: "Writing the archive", verifying: "Verifying the archive", pruning: "Applying retention" }[run.step] || run.step : "Starting";
  return h("div", { class: "notice", id: "backup-running" },
    h("p", {}, h("span", { class: "spinner", "aria-hidden": "true" }), ` A backup is running (${run ? by(run.trigger) : "admin UI"}): ${step}`,
      pct === null ? "…" : ` — ${pct}% (${fmtBytes(run.bytes_done)} of ${fmtBytes(run.bytes_total)})`),
    h("progress", { max: 100, value: pct ?? undefined, "aria-label": "Backup progress" }));
}

export async function render(view, ctx) {
  const listEl = h("div", { id: "backup-list" });
  const status = h("div", { id: "backup-status", "aria-live": "polite" });
  const info = h("div", { class: "grid" });
  const restored = h("div", { id: "last-restore" });
  const now = h("button", { type: "button", class: "primary", id: "backup-now" }, "Back up now");
  let timer = null;
  let stopped = false;

  const load = async () => {
    const r = await api("GET", "/api/admin/backups");
    const last = r.last_run;
    put(status, r.running ? runningNotice(r.running)
      : last ? h("p", { class: `notice ${last.ok ? "ok" : "error"}` }, `Last run ${ago(last.started_at)} (${by(last.trigger)}): `,
        last.ok ? `ok, ${fmtBytes(last.size_bytes)} in ${(last.duration_ms / 1000).toFixed(1)} s` : `failed: ${last.error}`) : null);
    now.disabled = r.running;
    put(restored, r.last_restore ? outcomeNotice(r.last_restore) : null);
    put(listEl, table([
      { label: "Archive", cell: (b) => h("code", {}, b.name) },
      { label: "Created", cell: (b) => fmtTime(b.created_at) },
      { label: "Started by", cell: (b) => by(b.trigger) },
      { label: "Size", cell: (b) => fmtBytes(b.size_bytes) },
      { label: "Verification", cell: (b) => !b.verification ? badge("not verified", "degraded")
        : b.verification.ok ? [badge("verified", "ok"), " ", h("span", { class: "muted" }, ago(b.verification.verified_at))]
        : (b.verification.error || "").startsWith("not checked: ")
          ? [badge("not checked", "degraded"), " ", b.verification.error.slice("not checked: ".length)]
          : [badge("failed", "failing"), " ", b.verification.error || ""] },
      ...(r.offsite.configured ? [{ label: "Off-site", cell: (b) => {
        const c = (r.offsite.copies || {})[b.name];
        if (r.offsite.error) return badge("unknown", "degraded");
        if (!c) return badge("not copied", "degraded");
        if (!c.complete) return [badge("incomplete", "failing"), " ", "the upload did not finish"];
        return [badge("copied", "ok"), " ", h("span", { class: "muted" }, c.encrypted ? "encrypted" : "NOT encrypted")];
      } }] : []),
      { label: "Actions", cell: (b) => h("div", { class: "row" },
        h("button", { type: "button", onclick: async (e) => {
          try {
            await busy(e.target, "Verifying…", async () => {
              const r = await api("POST", `/api/admin/backups/${encodeURIComponent(b.name)}/verify`);
              await waitJob(r.job);
            });
            ctx.flash(`${b.name} verified: sound.`);
          } catch (err) { ctx.flash(`${b.name}: ${err.message}`, "error"); }
          await load();
        } }, "Verify"),
        h("a", { class: "button", href: `/api/admin/backups/${encodeURIComponent(b.name)}`, download: b.name }, "Download"),
        h("a", { class: "button danger restore", href: `/admin/backups/restore/${encodeURIComponent(b.name)}`, "data-link": true }, "Restore…")) },
    ], r.backups, "No backups yet."));
    put(info,
      h("section", { class: "card" }, h("h2", {}, "Schedule"),
        h("p", {}, r.schedule.cron ? [h("code", {}, r.schedule.cron), " (cron, UTC)", ` — next run ${fmtTime(r.schedule.next_run)} your time`] : "No schedule (backup.schedule is empty).")),
      h("section", { class: "card" }, h("h2", {}, "Retention"),
        h("p", {}, `Keeps the last ${r.retention.keep_last}, the newest of each of the last ${r.retention.keep_daily} days and of the last ${r.retention.keep_weekly} weeks, and always the newest verified archive. Change it under [backup] in the configuration (keep_last, keep_daily, keep_weekly).`)),
      h("section", { class: "card", id: "offsite" }, h("h2", {}, "Off-site copies"),
        !r.offsite.configured
          ? h("p", {}, "Off: archives stay on this machine. Set [backup.remote] in the configuration (a bucket, its keys and age recipients) to copy every verified backup off it, encrypted.")
          : r.offsite.error
            ? h("p", { class: "notice error", role: "alert" }, `The bucket ${r.offsite.bucket || ""} cannot be read: ${r.offsite.error}`)
            : h("p", {}, `Every verified backup is copied to ${r.offsite.bucket}, encrypted with age before it leaves. Restore one on any machine with: appliance restore --remote ARCHIVE --identity-file IDENTITY.`)),
      h("section", { class: "card" }, h("h2", {}, "Restore"),
        h("p", {}, "Restore… next to an archive verifies it, shows what it holds beside the live data, and restores it after you type its name: the server stops serving, swaps the data (keeping the old aside) and starts again on its own. On the server, with the service stopped:"),
        h("pre", {}, "sudo appliance restore --dry-run ARCHIVE\nsudo systemctl stop appliance\nsudo appliance restore ARCHIVE\nsudo systemctl start appliance"),
        h("p", { class: "muted" }, "ARCHIVE is a name from the list above. restore verifies the archive first and keeps the replaced data directory beside the new one (<data>.pre-restore-<time>).")));
    return r;
  };
  const poll = async () => {
    if (stopped) return;
    const r = await load().catch(() => null);
    if (r && r.running && !stopped) timer = setTimeout(poll, 500);
    else if (r && r.last_run) ctx.flash(r.last_run.ok ? "Backup finished and verified." : `Backup failed: ${r.last_run.error}`, r.last_run.ok ? "ok" : "error");
  };
  now.addEventListener("click", async () => {
    try {
      await busy(now, "Starting…", () => api("POST", "/api/admin/backups"));
      put(status, runningNotice(null));
      now.disabled = true;
      timer = setTimeout(poll, 500);
    } catch (err) {
      ctx.flash(err.message, "error");
    }
  });
  put(view, h("div", { class: "title-row" }, h("h1", {}, "Backups"), now), restored, status, listEl, info);
  const r = await load();
  if (r.running) timer = setTimeout(poll, 1000);
  return () => { stopped = true; clearTimeout(timer); };
}

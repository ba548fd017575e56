// Own account: who I am, change password, and API tokens (create — shown once with a
// copy button — list, revoke).
import { api } from "../api.js";
import { h, put, field, showErrors, checkForm, busy, table, badge, ago, fmtTime, confirmDialog } from "../dom.js";

const ROLES = ["viewer", "editor", "admin"];

export async function render(view, ctx) {
  const me = ctx.me;
  // Password
  const current = h("input", { name: "current_password", type: "password", required: true, autocomplete: "current-password" });
  const next = h("input", { name: "new_password", type: "password", required: true, minLength: 12, maxLength: 256, autocomplete: "new-password" });
  const change = h("button", { type: "submit", class: "primary" }, "Change password");
  const pwForm = h("form", { id: "password-form", novalidate: true },
    h("p", { class: "form-error notice error", role: "alert", hidden: true }),
    field("Current password", current), field("New password", next, "At least 12 characters; not a common password; not your email."), change);
  pwForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!checkForm(pwForm, () => next.value && next.value === current.value ? [{ field: "new_password", message: "must differ from the current one" }] : [])) return;
    try {
      const r = await busy(change, "Changing…", () => api("POST", "/api/auth/password", { current_password: current.value, new_password: next.value }));
      if (r.csrf_token) ctx.signedIn({ ...me, csrf_token: r.csrf_token });
      pwForm.reset();
      ctx.flash("Password changed. Your other sessions have been signed out.");
    } catch (err) {
      showErrors(pwForm, err);
    }
  });

  // Tokens
  const name = h("input", { name: "name", type: "text", required: true, maxLength: 100, autocomplete: "off" });
  const role = h("select", { name: "role" }, ROLES.slice(0, ROLES.indexOf(me.role) + 1).map((r) => h("option", { value: r }, r)));
  // The least role by default: a token gets more only when asked for.
  role.value = "viewer";
  const days = h("input", { name: "expires_in_days", type: "number", min: 1, max: 3650, placeholder: "never" });
  const create = h("button", { type: "submit", class: "primary" }, "Create token");
  const shown = h("div", { id: "new-token" });
  const tokForm = h("form", { id: "token-form", class: "inline-form", novalidate: true },
    h("p", { class: "form-error notice error", role: "alert", hidden: true }),
    field("Name", name), field("Role", role), field("Expires in days", days, "Empty: never."), create);
  const listEl = h("div", { id: "token-list" });
  // Admins may see (and revoke) every user's tokens.
  const all = h("input", { type: "checkbox", id: "all-tokens" });
  all.addEventListener("change", () => load());
  const load = async () => {
    const r = await api("GET", `/api/auth/tokens${all.checked ? "?all=true" : ""}`);
    put(listEl, table([
      ...(all.checked ? [{ label: "Owner", cell: (t) => t.user_email }] : []),
      { label: "Name", cell: (t) => t.name },
      { label: "Token", cell: (t) => h("code", {}, `apl_${t.prefix}_…`) },
      { label: "Role", cell: (t) => t.role },
      { label: "Created", cell: (t) => fmtTime(t.created_at) },
      { label: "Expires", cell: (t) => t.expires_at ? fmtTime(t.expires_at) : "never" },
      { label: "Last used", cell: (t) => ago(t.last_used_at) },
      { label: "", cell: (t) => t.revoked_at ? badge("revoked", "failing") : h("button", { type: "button", class: "danger", onclick: async (e) => {
        const used = t.last_used_at ? `last used ${ago(t.last_used_at)}` : "never used";
        const whose = t.user_email === me.user.email ? "" : ` of ${t.user_email}`;
        if (!(await confirmDialog(`Revoke the token “${t.name}”${whose} (apl_${t.prefix}_…, ${used})? Anything that uses it stops working at once. This cannot be undone.`, "Revoke"))) return;
        try {
          await busy(e.target, "Revoking…", () => api("DELETE", `/api/auth/tokens/${t.id}`));
          ctx.flash(`Revoked token “${t.name}”.`);
        } catch (err) { ctx.flash(err.message, "error"); }
        await load();
      } }, "Revoke") },
    ], r.tokens, "No API tokens."));
  };
  tokForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!checkForm(tokForm, () => days.value && !(Number.isInteger(Number(days.value)) && days.value >= 1 && days.value <= 3650) ? [{ field: "expires_in_days", message: "must be a whole number of days from 1 to 3650, or empty for never" }] : [])) return;
    const body = { name: name.value.trim(), role: role.value };
    if (days.value) body.expires_in_days = Number(days.value);
    try {
      const r = await busy(create, "Creating…", () => api("POST", "/api/auth/tokens", body));
      const input = h("input", { type: "text", readOnly: true, value: r.token, class: "secret", "aria-label": "New token", id: "token-value" });
      const copy = h("button", { type: "button", onclick: async () => {
        input.select();
        try { await navigator.clipboard.writeText(r.token); copy.textContent = "Copied"; } catch { copy.textContent = "Select and copy"; }
      } }, "Copy");
      put(shown, h("div", { class: "notice ok" }, h("p", {}, h("strong", {}, `Token “${r.info.name}” created. `),
        "Copy it now: it is shown only once and cannot be recovered."), h("div", { class: "row" }, input, copy)));
      tokForm.reset();
      role.value = "viewer";
      await load();
    } catch (err) {
      showErrors(tokForm, err);
    }
  });

  put(view, h("h1", {}, "Account"),
    h("p", {}, `Signed in as ${me.user.email} (${me.role})`, me.user.display_name ? `, ${me.user.display_name}` : "", "."),
    h("section", { class: "card" }, h("h2", {}, "Change password"), pwForm),
    h("section", { class: "card" }, h("h2", {}, "API tokens"),
      h("p", { class: "muted" }, "Send a token as Authorization: Bearer TOKEN. Its role is capped by yours."), tokForm, shown,
      me.role === "admin" ? h("label", { class: "row" }, all, " Show every user's tokens") : null, listEl));
  await load();
}

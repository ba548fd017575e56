// Users (admin): list, create (with a password, or a set-password link to hand over),
// change role, disable/enable, and a reset-password link.
import { api } from "../api.js";
import { h, put, field, showErrors, checkForm, busy, table, badge, ago, confirmDialog } from "../dom.js";

function linkBox(title, link) {
  const input = h("input", { type: "text", readOnly: true, value: link.url, class: "secret", "aria-label": title });
  const copy = h("button", { type: "button", onclick: async () => {
    input.select();
    try { await navigator.clipboard.writeText(link.url); copy.textContent = "Copied"; } catch { copy.textContent = "Select and copy"; }
  } }, "Copy");
  return h("div", { class: "notice ok", id: "link-box" }, h("p", {}, h("strong", {}, title),
    ` — valid until ${new Date(link.expires_at).toLocaleString()}; shown once.`), h("div", { class: "row" }, input, copy));
}

export async function render(view, ctx) {
  const out = h("div", { id: "user-output" });
  const listEl = h("div", { id: "user-list" });
  const email = h("input", { name: "email", type: "email", required: true, autocomplete: "off" });
  const display = h("input", { name: "display_name", type: "text", autocomplete: "off" });
  const role = h("select", { name: "role" }, ["viewer", "editor", "admin"].map((r) => h("option", { value: r }, r)));
  const password = h("input", { name: "password", type: "password", minLength: 12, maxLength: 256, autocomplete: "new-password" });
  const create = h("button", { type: "submit", class: "primary" }, "Create user");
  const form = h("form", { id: "user-form", class: "inline-form", novalidate: true },
    h("p", { class: "form-error notice error", role: "alert", hidden: true }),
    field("Email", email), field("Display name", display), field("Role", role),
    field("Password", password, "Leave empty to get a set-password link to send instead."), create);

  const load = async () => {
    const r = await api("GET", "/api/admin/users");
    put(listEl, table([
      { label: "Email", cell: (u) => h("span", {}, u.email, u.display_name ? h("span", { class: "muted" }, ` (${u.display_name})`) : null) },
      { label: "Role", cell: (u) => {
        // A change of the dropdown alone does nothing: Apply, then confirm.
        const sel = h("select", { "aria-label": `Role of ${u.email}`, dataset: { user: u.email } }, ["viewer", "editor", "admin"].map((x) => h("option", { value: x }, x)));
        sel.value = u.role;
        const apply = h("button", { type: "button", class: "apply-role", hidden: true, onclick: async () => {
          const to = sel.value;
          const ok = await confirmDialog(`Change the role of ${u.email} from ${u.role} to ${to}? They are signed out everywhere and sign in again with the new role; their API tokens are capped at it.`, `Make ${to}`);
          if (!ok) { sel.value = u.role; apply.hidden = true; return; }
          await act(`Role of ${u.email} is now ${to}.`, () => api("PATCH", `/api/admin/users/${u.id}`, { role: to }));
        } }, "Apply");
        sel.addEventListener("change", () => { apply.hidden = sel.value === u.role; });
        return h("div", { class: "row" }, sel, apply);
      } },
      { label: "Status", cell: (u) => [u.disabled ? badge("disabled", "failing") : badge("active", "ok"), u.password_set ? null : [" ", badge("no password", "degraded")]] },
      { label: "Last sign-in", cell: (u) => ago(u.last_login_at) },
      { label: "Actions", cell: (u) => h("div", { class: "row" },
        h("button", { type: "button", class: u.disabled ? "" : "danger", onclick: async () => {
          if (!u.disabled && !(await confirmDialog(`Disable ${u.email}? They are signed out everywhere and their API tokens stop working until you enable them again.`, "Disable"))) return;
          await act(`${u.email} is ${u.disabled ? "enabled" : "disabled"}.`, () => api("PATCH", `/api/admin/users/${u.id}`, { disabled: !u.disabled }));
        } }, u.disabled ? "Enable" : "Disable"),
        h("button", { type: "button", onclick: async () => {
          try {
            const link = await api("POST", `/api/admin/users/${u.id}/reset-link`);
            put(out, linkBox(`Reset link for ${u.email}`, link));
          } catch (err) { ctx.flash(err.message, "error"); }
        } }, "Reset password")) },
    ], r.users));
  };
  const act = async (done, call) => {
    try {
      await call();
      ctx.flash(done);
    } catch (err) {
      ctx.flash(err.message, "error");
    }
    await load();
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!checkForm(form)) return;
    const body = { email: email.value.trim(), role: role.value, display_name: display.value.trim() };
    if (password.value) body.password = password.value;
    try {
      const r = await busy(create, "Creating…", () => api("POST", "/api/admin/users", body));
      ctx.flash(`Created ${r.user.email} (${r.user.role}).`);
      put(out, r.set_password_link ? linkBox(`Set-password link for ${r.user.email}`, r.set_password_link) : null);
      form.reset();
      await load();
    } catch (err) {
      showErrors(form, err);
    }
  });
  put(view, h("h1", {}, "Users"), h("h2", {}, "Add a user"), form, out, h("h2", {}, "All users"), listEl);
  await load();
}

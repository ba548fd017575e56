// Sign in, first-admin setup (with the one-time token from the server log) and the
// set-password page reached from a reset link (/admin/reset-password#token=…).
import { api } from "../api.js";
import { h, put, field, showErrors, busy, checkForm } from "../dom.js";

function input(name, type, extra = {}) {
  return h("input", { name, type, required: true, ...extra });
}

function form(id, fields, submitLabel, onSubmit) {
  const submit = h("button", { type: "submit", class: "primary" }, submitLabel);
  const f = h("form", { id, novalidate: true }, h("p", { class: "form-error notice error", role: "alert", hidden: true }), fields, submit);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    // What the browser can check is checked before sending: every problem at once.
    if (!checkForm(f)) return;
    const data = Object.fromEntries(new FormData(f));
    try {
      await busy(submit, "Working…", () => onSubmit(data));
    } catch (err) {
      showErrors(f, err);
    }
  });
  return f;
}

async function finish(ctx) {
  ctx.signedIn(await api("GET", "/api/auth/me"));
  const next = ctx.query.get("next");
  ctx.navigate(next && next.startsWith("/admin/") ? next : ctx.home(), { replace: true });
}

export async function signin(view, ctx) {
  const expired = ctx.query.get("expired");
  put(view, h("section", { class: "narrow", id: "signin" },
    h("h1", {}, "Sign in"),
    expired ? h("p", { class: "notice error", id: "expired" }, "Your session has expired. Sign in again to continue.") : null,
    form("signin-form", [
      field("Email", input("email", "email", { autocomplete: "username", value: ctx.query.get("email") || "" })),
      field("Password", input("password", "password", { autocomplete: "current-password" })),
    ], "Sign in", async (d) => {
      await api("POST", "/api/auth/login", { email: d.email, password: d.password });
      await finish(ctx);
    }),
    h("p", { class: "muted" }, "Forgot your password? An admin can send you a reset link (Users page, or ",
      h("code", {}, "appliance user reset-password --email EMAIL"), " on the server).")));
  view.querySelector(ctx.query.get("email") ? "input[name=password]" : "input[name=email]").focus();
}

export async function setup(view, ctx) {
  const status = await api("GET", "/api/auth/setup");
  if (!status.required) return ctx.navigate("/admin/signin", { replace: true });
  put(view, h("section", { class: "narrow", id: "setup" },
    h("h1", {}, "Create the first admin"),
    h("p", {}, "This appliance has no users yet. Paste the one-time setup token from the server log (",
      h("code", {}, "journalctl -u appliance | grep setup_token"), "), or create the admin on the server with ",
      h("code", {}, "appliance user create --email EMAIL --role admin"), "."),
    form("setup-form", [
      field("Setup token", input("token", "text", { autocomplete: "off", spellcheck: "false" })),
      field("Email", input("email", "email", { autocomplete: "username" })),
      field("Display name", h("input", { name: "display_name", type: "text", autocomplete: "name" })),
      field("Password", input("password", "password", { autocomplete: "new-password", minLength: 12, maxLength: 256 }), "At least 12 characters; not a common password."),
    ], "Create admin", async (d) => {
      try {
        await api("POST", "/api/auth/setup", d);
      } catch (err) {
        // A wrong token is the token field's problem, said at the field.
        if (err.status === 401) err.fields = [{ field: "token", message: "is not the one in the server log; copy it again (a restart makes a new one)" }];
        throw err;
      }
      await finish(ctx);
    })));
  view.querySelector("input[name=token]").focus();
}

export async function reset(view, ctx) {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (!token) {
    return put(view, h("section", { class: "narrow" }, h("h1", {}, "Set a password"),
      h("p", { class: "notice error" }, "This link has no token. Ask an admin for a new reset link.")));
  }
  put(view, h("section", { class: "narrow", id: "reset" },
    h("h1", {}, "Set a password"),
    form("reset-form", [
      field("New password", input("password", "password", { autocomplete: "new-password", minLength: 12, maxLength: 256 }), "At least 12 characters; not a common password."),
    ], "Set password", async (d) => {
      const res = await api("POST", "/api/auth/reset-password", { token, password: d.password });
      history.replaceState(null, "", "/admin/reset-password");
      // Signed in at once with the password just set (no second form to fill).
      try {
        await api("POST", "/api/auth/login", { email: res.user.email, password: d.password });
      } catch {
        ctx.flash(`Password set for ${res.user.email}. Sign in with it now.`, "ok", { carry: true });
        return ctx.navigate(`/admin/signin?email=${encodeURIComponent(res.user.email)}`, { replace: true });
      }
      ctx.flash(`Password set for ${res.user.email}; you are signed in.`, "ok", { carry: true });
      await finish(ctx);
    })));
}

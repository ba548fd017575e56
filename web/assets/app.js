// The admin UI's entry point: plain ES modules, no build step. A small router maps paths
// under /admin/ to pages; the server answers every such path with this same page.
import { api, setCsrf, onExpired } from "./api.js";
import { h, put } from "./dom.js";
import * as auth from "./pages/auth.js";
import * as dashboard from "./pages/dashboard.js";
import * as articles from "./pages/articles.js";
import * as users from "./pages/users.js";
import * as backups from "./pages/backups.js";
import * as ops from "./pages/ops.js";
import * as account from "./pages/account.js";
import * as importer from "./pages/import.js";
import * as restore from "./pages/restore.js";

const RANK = { viewer: 1, editor: 2, admin: 3 };

// path pattern → page; `role`: the least role that may open it (none: public).
const ROUTES = [
  { path: /^$/, page: dashboard.render, role: "admin", title: "Dashboard", nav: "" },
  { path: /^articles$/, page: articles.list, role: "viewer", title: "Articles", nav: "articles" },
  { path: /^articles\/new$/, page: articles.edit, role: "editor", title: "New article" },
  { path: /^articles\/trash$/, page: articles.trash, role: "editor", title: "Trash" },
  { path: /^articles\/import$/, page: importer.render, role: "editor", title: "Import articles" },
  { path: /^articles\/(\d+)$/, page: articles.edit, role: "viewer", title: "Article" },
  { path: /^users$/, page: users.render, role: "admin", title: "Users", nav: "users" },
  { path: /^backups$/, page: backups.render, role: "admin", title: "Backups", nav: "backups" },
  { path: /^backups\/restore\/([A-Za-z0-9._-]+)$/, page: restore.render, role: "admin", title: "Restore a backup" },
  { path: /^jobs$/, page: ops.jobs, role: "admin", title: "Jobs", nav: "jobs" },
  { path: /^migrations$/, page: ops.migrations, role: "admin", title: "Migrations", nav: "migrations" },
  { path: /^errors$/, page: ops.errors, role: "admin", title: "Errors", nav: "errors" },
  { path: /^audit$/, page: ops.audit, role: "admin", title: "Audit log", nav: "audit" },
  { path: /^settings$/, page: ops.settings, role: "admin", title: "Settings", nav: "settings" },
  { path: /^account$/, page: account.render, role: "viewer", title: "Account", nav: "account" },
  { path: /^signin$/, page: auth.signin, title: "Sign in" },
  { path: /^setup$/, page: auth.setup, title: "Set up" },
  { path: /^reset-password$/, page: auth.reset, title: "Set a password" },
];

const view = document.getElementById("view");
let me = null;
let cleanup = null;
let flashTimer = null;

// The page a message belongs to: it goes when the admin moves to another page.
let flashPage = null;

function hideFlash() {
  const el = document.getElementById("flash");
  clearTimeout(flashTimer);
  el.hidden = true;
  el.classList.remove("fading");
}

/**
 * A message about what the admin just did, for this page only (`carry`: for the page
 * about to open, e.g. "Signed out." before going to sign-in). One at a time; it can be
 * dismissed; a success fades after a few seconds, an error stays until dismissed or the
 * page changes.
 */
export function flash(text, kind = "ok", { carry = false } = {}) {
  const el = document.getElementById("flash");
  hideFlash();
  el.className = kind;
  const close = h("button", { type: "button", class: "dismiss", "aria-label": "Dismiss this message", onclick: hideFlash }, "×");
  put(el, h("span", {}, text), close);
  el.hidden = false;
  flashPage = carry ? null : location.pathname;
  if (kind !== "error") {
    flashTimer = setTimeout(() => {
      el.classList.add("fading");
      flashTimer = setTimeout(hideFlash, 450);
    }, 5000);
  }
}

function allowed(role) {
  return !role || (me && RANK[me.role] >= RANK[role]);
}

function renderNav() {
  const nav = document.getElementById("nav");
  nav.hidden = !me;
  document.getElementById("signout").hidden = !me;
  put(document.getElementById("who"), me ? `${me.user.email} (${me.role})` : "");
  if (!me) return put(nav);
  const current = location.pathname.replace(/^\/admin\/?/, "").split("/")[0];
  put(nav, ROUTES.filter((r) => r.nav !== undefined && allowed(r.role)).map((r) =>
    h("a", { href: `/admin/${r.nav}`, "data-link": true, "aria-current": r.nav === current ? "page" : false }, r.title)));
}

// A page with unsaved work: { dirty(), message }; leaving it asks first.
let leaveGuard = null;

/** Ask before leaving the current page while `guard.dirty()` (null: never ask). */
export function guardLeave(guard) {
  leaveGuard = guard && { ...guard, path: location.pathname + location.search };
}

// Closing the tab or reloading: the browser asks in its own words.
window.addEventListener("beforeunload", (e) => {
  if (leaveGuard && leaveGuard.dirty()) e.preventDefault();
});

export function navigate(path, { replace = false } = {}) {
  if (leaveGuard && leaveGuard.dirty() && !window.confirm(leaveGuard.message)) return;
  leaveGuard = null;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route();
}

export function signedIn(session) {
  me = session;
  setCsrf(session.csrf_token);
}

function home() {
  return me && me.role === "admin" ? "/admin/" : "/admin/articles";
}

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  if (flashPage === null) flashPage = location.pathname;
  else if (flashPage !== location.pathname) hideFlash();
  const rel = location.pathname.replace(/^\/admin\/?/, "").replace(/\/$/, "");
  const r = ROUTES.find((x) => x.path.test(rel));
  if (!r) {
    renderNav();
    return put(view, h("h1", {}, "Not found"), h("p", {}, "There is no page at this address. ",
      h("a", { href: home(), "data-link": true }, "Go to the start page.")));
  }
  if (r.role && !me) {
    const next = location.pathname + location.search;
    return navigate(`/admin/signin${next === "/admin/" ? "" : `?next=${encodeURIComponent(next)}`}`, { replace: true });
  }
  renderNav();
  document.title = `${r.title} · appliance admin`;
  if (!allowed(r.role)) {
    return put(view, h("h1", {}, "Not allowed"),
      h("p", { class: "notice error", id: "forbidden" },
        `This page needs the ${r.role} role; you are signed in as ${me.role}.`),
      h("p", {}, h("a", { href: home(), "data-link": true }, "Go to the start page.")));
  }
  leaveGuard = null;
  const ctx = { me, navigate, flash, signedIn, guardLeave, params: rel.match(r.path).slice(1), query: new URLSearchParams(location.search), home };
  put(view, h("p", { class: "muted" }, "Loading…"));
  try {
    cleanup = (await r.page(view, ctx)) || null;
  } catch (err) {
    if (err.status === 401) return;
    put(view, h("h1", {}, r.title), h("p", { class: "notice error" }, `Could not load this page: ${err.message}`));
  }
  // Move focus to the new page for keyboard and screen-reader users, unless the page
  // focused a field itself.
  if (!view.contains(document.activeElement)) view.focus({ preventScroll: true });
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", () => {
  // Back or Forward away from unsaved work: ask, and stay (restoring the address) on No.
  if (leaveGuard && leaveGuard.dirty() && !window.confirm(leaveGuard.message)) {
    history.pushState(null, "", leaveGuard.path);
    return;
  }
  route();
});

document.getElementById("signout").addEventListener("click", async () => {
  await api("POST", "/api/auth/logout").catch(() => {});
  me = null;
  setCsrf(null);
  flash("Signed out.", "ok", { carry: true });
  navigate("/admin/signin");
});

onExpired(() => {
  if (!me) return;
  me = null;
  // The sign-in page says why (expired=1).
  const next = location.pathname + location.search;
  navigate(`/admin/signin?expired=1&next=${encodeURIComponent(next)}`, { replace: true });
});

async function start() {
  try {
    signedIn(await api("GET", "/api/auth/me"));
  } catch {
    me = null;
    const rel = location.pathname.replace(/^\/admin\/?/, "");
    if (!rel.startsWith("reset-password")) {
      const setup = await api("GET", "/api/auth/setup").catch(() => ({ required: false }));
      if (setup.required) history.replaceState(null, "", "/admin/setup");
    }
  }
  if (me && /^\/admin\/(signin|setup)?$/.test(location.pathname) && location.pathname !== "/admin/") {
    history.replaceState(null, "", home());
  } else if (me && location.pathname === "/admin/" && me.role !== "admin") {
    history.replaceState(null, "", home());
  }
  route();
}

start();

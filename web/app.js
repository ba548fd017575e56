// The admin UI's entry point (plain ES module, no build step). Talks to the JSON API
// with the session cookie; state-changing requests carry the CSRF token.
let csrf = null;

const $ = (id) => document.getElementById(id);

function show(section) {
  for (const id of ["signin", "setup", "home"]) $(id).hidden = id !== section;
}

function error(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw new Error(data?.error?.message || `${res.status}`);
  return data;
}

function signedIn(me) {
  csrf = me.csrf_token;
  $("who").textContent = `${me.user.email} (${me.role})`;
  $("signout").hidden = false;
  $("home-text").textContent = `Welcome, ${me.user.display_name || me.user.email}.`;
  show("home");
}

async function start() {
  try {
    signedIn(await api("GET", "/api/auth/me"));
  } catch {
    const setup = await api("GET", "/api/auth/setup").catch(() => ({ required: false }));
    show(setup.required ? "setup" : "signin");
  }
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  error();
  const f = new FormData(e.target);
  try {
    await api("POST", "/api/auth/login", { email: f.get("email"), password: f.get("password") });
    signedIn(await api("GET", "/api/auth/me"));
  } catch (err) {
    error(err.message);
  }
});

$("setup-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  error();
  const f = new FormData(e.target);
  try {
    await api("POST", "/api/auth/setup", {
      token: f.get("token"), email: f.get("email"), password: f.get("password"),
    });
    signedIn(await api("GET", "/api/auth/me"));
  } catch (err) {
    error(err.message);
  }
});

$("signout").addEventListener("click", async () => {
  await api("POST", "/api/auth/logout").catch(() => {});
  csrf = null;
  $("who").textContent = "";
  $("signout").hidden = true;
  show("signin");
});

start();

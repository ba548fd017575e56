// Small DOM helpers. Everything from data goes in as text (textContent, attributes set
// through the DOM), so nothing the server or a user stored is ever parsed as HTML.

/** Create an element: h("a", {href: "/x", class: "c", onclick: fn}, "text", child…). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's children. */
export function put(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * A search snippet: the server escapes the text and wraps matches in <mark>. Rebuild it
 * from text nodes and <mark> elements only, so no other markup can get through.
 */
export function snippet(html) {
  const out = document.createDocumentFragment();
  const unescape = (s) => s.replace(/&(lt|gt|quot|#39|amp);/g, (_, e) =>
    ({ lt: "<", gt: ">", quot: '"', "#39": "'", amp: "&" })[e]);
  html.split(/(<mark>.*?<\/mark>)/s).forEach((part) => {
    const m = /^<mark>(.*)<\/mark>$/s.exec(part);
    if (m) out.append(h("mark", {}, unescape(m[1])));
    else if (part) out.append(unescape(part));
  });
  return out;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function fmtDuration(secs) {
  if (secs === null || secs === undefined) return "–";
  secs = Math.round(secs);
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
  return `${Math.floor(secs / 86400)} d ${Math.floor((secs % 86400) / 3600)} h`;
}

export function fmtTime(t) {
  if (!t) return "–";
  const d = new Date(t);
  return isNaN(d) ? t : d.toLocaleString();
}

export function ago(t) {
  if (!t) return "never";
  const secs = (Date.now() - new Date(t).getTime()) / 1000;
  return `${fmtDuration(Math.max(0, secs))} ago`;
}

/** A labelled input: label text, then the control, then a slot for the field's error. */
export function field(label, control, hint) {
  const id = control.id || `f-${control.name}-${Math.random().toString(36).slice(2, 8)}`;
  control.id = id;
  const err = h("span", { class: "field-error", id: `${id}-error`, dataset: { errorFor: control.name } });
  control.setAttribute("aria-describedby", `${id}-error`);
  return h("div", { class: "field" },
    h("label", { for: id }, label), control, hint ? h("small", { class: "muted" }, hint) : null, err);
}

/** Show an API error on a form: each field error next to its field, the rest on top. */
export function showErrors(form, err) {
  clearErrors(form);
  const general = form.querySelector(".form-error");
  const rest = [];
  for (const f of err.fields || []) {
    const name = String(f.field).replace(/^items\[\d+\]\./, "").replace(/\.\d+$/, "");
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) {
      slot.textContent = f.field === name ? f.message : `${f.field}: ${f.message}`;
      const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
    } else {
      rest.push(`${f.field}: ${f.message}`);
    }
  }
  if (general) {
    general.textContent = rest.length ? `${err.message} (${rest.join("; ")})` : err.message;
    general.hidden = false;
  }
  const first = form.querySelector("[aria-invalid=true]");
  if (first) first.focus();
}

export function clearErrors(form) {
  form.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; });
  form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
  const general = form.querySelector(".form-error");
  if (general) { general.textContent = ""; general.hidden = true; }
}

/** Run an action with its button disabled and a busy label; returns the action's result. */
export async function busy(button, label, action) {
  const before = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = label;
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = before;
  }
}

/** A table: columns [{label, cell: row => node|text}], rows. */
export function table(columns, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "muted empty" }, empty);
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", { dataset: { label: c.label } }, c.cell(r))))))));
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || text}` }, text);
}

/**
 * Ask before an action that cannot be taken back or changes someone's access: a modal
 * dialog saying what will happen, with Cancel focused. Resolves true on confirm.
 */
export function confirmDialog(message, confirmLabel) {
  return new Promise((resolve) => {
    const yes = h("button", { type: "button", class: "danger", id: "confirm-yes" }, confirmLabel);
    const no = h("button", { type: "button", id: "confirm-no" }, "Cancel");
    const dlg = h("dialog", { "aria-labelledby": "confirm-text" }, h("p", { id: "confirm-text" }, message), h("div", { class: "actions" }, no, yes));
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    yes.addEventListener("click", () => done(true));
    no.addEventListener("click", () => done(false));
    dlg.addEventListener("cancel", () => done(false));
    document.body.append(dlg);
    dlg.showModal();
    no.focus();
  });
}

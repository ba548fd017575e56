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

/** Words for people: `code` quotes become “quotes”. */
export function plain(text) {
  return String(text).replace(/`([^`]*)`/g, "“$1”");
}

/** The text of a control's label (its name, in words, when it has none). */
function labelOf(form, name) {
  const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
  const label = input && input.id ? form.querySelector(`label[for="${CSS.escape(input.id)}"]`) : null;
  return label ? label.textContent.replace(/\s*\(.*\)$/, "") : name.replace(/_/g, " ");
}

/** "Password" + "is wrong" → "Password is wrong." */
function sentence(label, message) {
  const m = plain(message).trim();
  const s = label ? `${label} ${m}` : m;
  return (s.charAt(0).toUpperCase() + s.slice(1)).replace(/([^.!?])$/, "$1.");
}

/**
 * Show an API error on a form: every field error at its field as a sentence naming the
 * field ("Password must be at least 12 characters long."), the rest on top, and focus
 * on the first field with a problem.
 */
export function showErrors(form, err) {
  clearErrors(form);
  const general = form.querySelector(".form-error");
  const rest = [];
  let placed = 0;
  for (const f of err.fields || []) {
    const name = String(f.field).replace(/^items\[\d+\]\./, "").replace(/\.\d+$/, "");
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) {
      const line = sentence(labelOf(form, name), f.message);
      slot.textContent = slot.textContent ? `${slot.textContent} ${line}` : line;
      const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
      placed++;
    } else {
      rest.push(sentence(String(f.field).replace(/_/g, " "), f.message));
    }
  }
  if (general) {
    const marked = placed === 1 ? "Please correct the problem marked below." : `Please correct the ${placed} problems marked below.`;
    general.textContent = rest.length ? `${placed ? `${marked} ` : ""}${rest.join(" ")}`
      : placed ? marked : plain(err.message);
    general.hidden = !general.textContent;
  }
  const first = form.querySelector("[aria-invalid=true]");
  if (first) first.focus();
}

/**
 * Check a form in the browser before sending it (required, lengths, email format, and
 * `extra()` problems [{field, message}]): every problem at its field at once, focus on
 * the first. True when there is nothing to correct.
 */
export function checkForm(form, extra = () => []) {
  const problems = [];
  for (const el of form.querySelectorAll("input[name], select[name], textarea[name]")) {
    if (el.disabled || el.readOnly || el.type === "file" || el.type === "hidden") continue;
    const v = el.value.trim();
    const n = [...el.value].length;
    if (el.required && !v) problems.push({ field: el.name, message: "is required" });
    else if (v && el.minLength > 0 && n < el.minLength) problems.push({ field: el.name, message: `must be at least ${el.minLength} characters long` });
    else if (el.maxLength > 0 && n > el.maxLength) problems.push({ field: el.name, message: `must be at most ${el.maxLength} characters long` });
    else if (v && el.type === "email" && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v)) problems.push({ field: el.name, message: "must be an email address, like name@example.org" });
  }
  problems.push(...extra());
  if (!problems.length) { clearErrors(form); return true; }
  showErrors(form, { message: "", fields: problems });
  return false;
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

/** Details of an event or a job's result as "key: value" lines a person reads (nested
 * values one level deep the same way; lists joined). */
export function details(obj) {
  if (obj === null || obj === undefined) return "–";
  if (typeof obj !== "object") return String(obj);
  const val = (v) => (v === null ? "–" : Array.isArray(v) ? v.map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(", ")
    : typeof v === "object" ? Object.entries(v).map(([k, x]) => `${k.replace(/_/g, " ")} ${typeof x === "object" ? JSON.stringify(x) : x}`).join(", ") : String(v));
  return h("dl", { class: "details" }, Object.entries(obj).map(([k, v]) => [h("dt", {}, k.replace(/_/g, " ")), h("dd", {}, val(v))]));
}

// Import (editors): upload a JSON-lines file (as `appliance articles export` writes it)
// or Markdown files (one article each) through the server's import, the same code as
// `appliance articles import`. Upload progress, then a report naming every line (or
// file) that was not imported and why.
import { upload } from "../api.js";
import { h, put, field, busy, table, clearErrors, fmtBytes } from "../dom.js";

/**
 * A Markdown file as an article: front matter (`---` lines with `key: value`) may set
 * title, slug, category, tags (comma separated or [a, b]) and status; otherwise the
 * title is the first `# heading` (taken out of the body) or the file name. The file
 * name is its external_id, so importing the same file again updates the article.
 */
export function markdownArticle(name, text, status) {
  let body = text.replace(/^\uFEFF/, "");
  const meta = {};
  const fm = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?/.exec(body);
  if (fm) {
    for (const line of fm[1].split(/\r?\n/)) {
      const m = /^([A-Za-z_]+)\s*:\s*(.*)$/.exec(line);
      if (m) meta[m[1].toLowerCase()] = m[2].trim().replace(/^["'](.*)["']$/, "$1");
    }
    body = body.slice(fm[0].length);
  }
  let title = meta.title;
  if (!title) {
    const m = /^\s*#\s+(.+?)\s*#*\s*(?:\r?\n|$)/.exec(body);
    if (m) { title = m[1]; body = body.slice(m[0].length); }
  }
  const a = { external_id: `file:${name}`, title: title || name.replace(/\.(md|markdown)$/i, ""), body: body.replace(/^\s*\n/, ""), status: meta.status || status };
  if (meta.slug) a.slug = meta.slug;
  if (meta.category) a.category = meta.category;
  if (meta.tags) a.tags = meta.tags.replace(/^\[|\]$/g, "").split(",").map((t) => t.trim()).filter(Boolean);
  return a;
}

const isMarkdown = (f) => /\.(md|markdown)$/i.test(f.name) || f.type === "text/markdown";

export async function render(view, ctx) {
  const files = h("input", { name: "file", type: "file", required: true, multiple: true, accept: ".jsonl,.ndjson,.json,.md,.markdown,application/x-ndjson,text/markdown" });
  const onError = h("select", { name: "on_error" },
    h("option", { value: "skip" }, "Skip it, import the rest"),
    h("option", { value: "abort" }, "Stop there (keep what came before)"));
  const status = h("select", { name: "status" },
    h("option", { value: "draft" }, "draft"), h("option", { value: "published" }, "published"));
  const go = h("button", { type: "submit", class: "primary", id: "start-import" }, "Import");
  const bar = h("progress", { id: "import-progress", max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const stage = h("p", { class: "muted", id: "import-stage", "aria-live": "polite" });
  const report = h("div", { id: "import-report", "aria-live": "polite" });
  const form = h("form", { id: "import-form", class: "stack", novalidate: true },
    h("p", { class: "form-error notice error", role: "alert", hidden: true }),
    field("File", files, "A .jsonl file, one article object per line (as the command appliance articles export writes it), or one or more Markdown files (.md), one article each."),
    field("When a line cannot be imported", onError),
    field("Status of Markdown articles without one", status),
    h("div", { class: "actions" }, go), bar, stage);
  put(view,
    h("p", {}, h("a", { href: "/admin/articles", "data-link": true }, "← Articles")),
    h("h1", {}, "Import articles"),
    h("p", {}, "Articles whose external_id already exists are updated, so importing the same file again never makes duplicates. A Markdown file’s name is its external_id; front matter (title, slug, category, tags, status) is read when present."),
    form, report);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    put(report);
    const chosen = [...files.files];
    const slot = form.querySelector('[data-error-for="file"]');
    if (!chosen.length) {
      slot.textContent = "Choose a file to import.";
      files.setAttribute("aria-invalid", "true");
      return files.focus();
    }
    // Markdown files become one JSON line each; a JSON-lines file goes as it is. Lines
    // the report names map back to files.
    const md = chosen.filter(isMarkdown);
    const jsonl = chosen.filter((f) => !isMarkdown(f));
    if (md.length && jsonl.length || jsonl.length > 1) {
      slot.textContent = "Choose one JSON-lines file, or any number of Markdown files, not both.";
      files.setAttribute("aria-invalid", "true");
      return files.focus();
    }
    let body;
    let names = null;
    if (md.length) {
      const lines = [];
      for (const f of md) lines.push(JSON.stringify(markdownArticle(f.name, await f.text(), status.value)));
      body = lines.join("\n") + "\n";
      names = md.map((f) => f.name);
    } else {
      body = jsonl[0];
    }
    bar.hidden = false;
    bar.value = 0;
    const size = body.size ?? new Blob([body]).size;
    put(stage, `Uploading ${fmtBytes(size)}…`);
    try {
      const r = await busy(go, "Importing…", () => upload(`/api/articles/import?on_error=${onError.value}`, body, "application/x-ndjson", (sent, total) => {
        bar.value = sent / total;
        put(stage, sent < total ? `Uploading: ${fmtBytes(sent)} of ${fmtBytes(total)}…` : "Uploaded; the server is importing…");
      }));
      bar.value = 1;
      put(stage);
      showReport(report, r, names);
    } catch (err) {
      bar.hidden = true;
      put(stage);
      put(report, h("p", { class: "notice error", role: "alert", id: "import-failed" }, `Nothing was imported: ${err.message}`));
    }
  });
  files.focus();
}

function showReport(out, r, names) {
  const imported = r.created + r.updated;
  const what = names ? "file" : "line";
  const where = (line) => (names ? names[line - 1] || `line ${line}` : `line ${line}`);
  put(out,
    h("p", { class: `notice ${r.bad ? "" : "ok"}`, id: "import-summary" },
      `Imported ${imported} ${imported === 1 ? "article" : "articles"} (${r.created} new, ${r.updated} updated).`,
      r.unchanged ? ` ${r.unchanged} ${r.unchanged === 1 ? "was" : "were"} already up to date.` : "",
      r.bad ? ` ${r.bad} ${what}${r.bad === 1 ? "" : "s"} could not be imported${r.aborted_at ? `; the import stopped at ${where(r.aborted_at)}` : ""}.` : ""),
    imported ? h("p", {}, h("a", { href: "/admin/articles", "data-link": true }, "See the articles")) : null,
    r.problems.length ? [
      h("h2", {}, `Not imported`),
      table([
        { label: names ? "File" : "Line", cell: (p) => where(p.line) },
        { label: "Why", cell: (p) => p.message },
      ], r.problems),
      r.bad > r.problems.length ? h("p", { class: "muted" }, `The first ${r.problems.length} are listed.`) : null,
    ] : null);
}

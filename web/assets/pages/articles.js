// Articles: search-as-you-type over published articles (highlighted snippets), a
// filtered, paginated list (drafts too, for editors), and the editor with a Markdown
// preview, publish/unpublish, and delete with confirmation and undo.
import { api, qs, etagOf } from "../api.js";
import { h, put, field, showErrors, clearErrors, checkForm, busy, table, badge, ago, snippet, confirmDialog } from "../dom.js";

const canWrite = (me) => me.role === "editor" || me.role === "admin";

const PAGE = 20;

export async function list(view, ctx) {
  const q = ctx.query;
  const search = h("input", { name: "q", type: "search", value: q.get("q") || "", placeholder: "Search published articles…", autocomplete: "off" });
  const status = h("select", { name: "status" },
    h("option", { value: "" }, "any status"),
    h("option", { value: "published" }, "published"),
    canWrite(ctx.me) ? h("option", { value: "draft" }, "draft") : null);
  status.value = q.get("status") || "";
  const category = h("input", { name: "category", type: "text", value: q.get("category") || "" });
  const tag = h("input", { name: "tag", type: "text", value: q.get("tag") || "" });
  const results = h("div", { id: "results", "aria-live": "polite" });
  // Readers see published articles only: no status to filter by or to show.
  const writer = canWrite(ctx.me);
  const filters = h("form", { class: "filters", role: "search", id: "article-filters" },
    field("Search", search), writer ? field("Status", status) : null, field("Category", category), field("Tag", tag),
    h("p", { class: "form-error notice error", role: "alert", hidden: true }));
  // The search box comes first in the tab order; the page's actions after the filters.
  put(view,
    h("h1", {}, "Articles"),
    filters,
    writer ? h("div", { class: "row actions-row" },
      h("a", { href: "/admin/articles/new", "data-link": true, class: "button primary", id: "new-article" }, "New article"),
      h("a", { href: "/admin/articles/import", "data-link": true, class: "button", id: "open-import" }, "Import"),
      h("a", { href: "/admin/articles/trash", "data-link": true, class: "button", id: "open-trash" }, "Trash")) : null,
    results);

  // Pages are cursors. The ones seen are kept in the history entry, so Previous works
  // after a reload; a shared link to page N knows its own cursor only (Previous then
  // goes back to the first page).
  const saved = history.state?.cursors;
  let cursors = Array.isArray(saved) ? saved : q.get("cursor") ? [null, q.get("cursor")] : [null];
  let skipped = !Array.isArray(saved) && q.get("cursor") ? Math.max(0, Number(q.get("page") || 2) - 2) : 0;
  const filtered = () => Boolean(category.value.trim() || tag.value.trim() || (writer && status.value));
  const clear = () => { search.value = ""; category.value = ""; tag.value = ""; status.value = ""; soon(); search.focus(); };
  let seq = 0;
  const load = async () => {
    const mine = ++seq;
    clearErrors(filters);
    const params = { category: category.value.trim(), tag: tag.value.trim() };
    const cursor = search.value.trim() ? null : cursors[cursors.length - 1];
    const pageNo = cursors.length + skipped;
    history.replaceState({ cursors }, "", `/admin/articles${qs({ q: search.value.trim(), status: writer ? status.value : "", ...params, page: cursor ? pageNo : "", cursor })}`);
    try {
      if (search.value.trim()) {
        status.disabled = true;
        // fresh: an article published a moment ago is found (the server waits for the index).
        const r = await api("GET", `/api/search${qs({ q: search.value.trim(), ...params, limit: PAGE, fresh: true })}`);
        if (mine !== seq) return;
        put(results, h("p", { class: "muted", id: "result-count" }, `${r.total} found in ${r.took_ms.toFixed(1)} ms (published articles only${r.total > r.hits.length ? `; the best ${r.hits.length} shown` : ""})`),
          r.warnings?.length ? h("p", { class: "notice" }, r.warnings.join(" ")) : null,
          r.hits.length ? h("ol", { class: "hits" }, r.hits.map((hit) => h("li", { class: "hit" },
            h("a", { href: `/admin/articles/${hit.id}`, "data-link": true, class: "hit-title" }, hit.title),
            hit.category ? h("span", { class: "muted" }, ` · ${hit.category}`) : null,
            h("p", { class: "snippet" }, snippet(hit.snippet)))))
            : h("div", { class: "empty", id: "empty" },
              h("p", {}, `No published article matches “${search.value.trim()}”${filtered() ? " with these filters" : ""}.`),
              h("p", { class: "muted" }, "Search finds whole words in titles, text, categories and tags; try fewer or other words",
                writer ? ". Drafts are not searched: clear the search to list them." : "."),
              h("button", { type: "button", onclick: clear }, "Clear search and filters")));
      } else {
        status.disabled = false;
        const r = await api("GET", `/api/articles${qs({ ...params, status: writer ? status.value : "", limit: PAGE, cursor, count: true })}`);
        if (mine !== seq) return;
        const pages = Math.max(1, Math.ceil(r.total / PAGE));
        const back = cursors.length === 2 && skipped > 0;
        const prev = h("button", { type: "button", disabled: cursors.length < 2, onclick: () => { cursors.pop(); if (cursors.length === 1) skipped = 0; load(); } }, back ? "First page" : "Previous");
        const next = h("button", { type: "button", disabled: !r.next_cursor, onclick: () => { cursors.push(r.next_cursor); load(); } }, "Next");
        let empty;
        if (r.total === 0 && !filtered()) {
          empty = h("div", { class: "empty", id: "empty" },
            h("p", {}, writer ? "No articles yet." : "Nothing is published yet."),
            writer ? h("p", { class: "muted" }, "Write the first one, or import articles from a JSON-lines or Markdown file. ",
              h("a", { href: "/admin/articles/new", "data-link": true }, "New article"), " · ",
              h("a", { href: "/admin/articles/import", "data-link": true }, "Import")) : null);
        } else if (r.total === 0) {
          empty = h("div", { class: "empty", id: "empty" },
            h("p", {}, "No articles match these filters."),
            h("p", { class: "muted" }, "Category and tag match whole names exactly (tags in lower case)."),
            h("button", { type: "button", onclick: clear }, "Clear filters"));
        }
        put(results,
          empty || [
            h("p", { class: "muted", id: "result-count" }, `${r.total} ${r.total === 1 ? "article" : "articles"}${filtered() ? " match" : ""}`),
            table([
              { label: "Title", cell: (a) => h("a", { href: `/admin/articles/${a.id}`, "data-link": true }, a.title) },
              ...(writer ? [{ label: "Status", cell: (a) => badge(a.status) }] : []),
              { label: "Category", cell: (a) => a.category || "–" },
              { label: "Tags", cell: (a) => a.tags.join(", ") || "–" },
              { label: "Updated", cell: (a) => h("span", { title: new Date(a.updated_at).toLocaleString() }, ago(a.updated_at)) },
            ], r.items),
            pages > 1 || cursors.length > 1
              ? h("nav", { class: "pager", "aria-label": "Pages" }, prev, h("span", { id: "page-of" }, `Page ${pageNo} of ${pages}`), next)
              : null,
          ]);
      }
    } catch (err) {
      if (mine === seq) showErrors(filters, err);
    }
  };
  let timer = null;
  const soon = () => { clearTimeout(timer); cursors = [null]; skipped = 0; timer = setTimeout(load, 200); };
  search.addEventListener("input", soon);
  for (const el of [category, tag]) el.addEventListener("input", soon);
  status.addEventListener("change", soon);
  filters.addEventListener("submit", (e) => { e.preventDefault(); soon(); });
  await load();
  if (!q.get("q")) search.focus();
  return () => clearTimeout(timer);
}

/** A reader's view of an article: the body rendered and sanitised by the server. */
async function read(view, id) {
  const a = await api("GET", `/api/articles/${id}?render=html`);
  const doc = new DOMParser().parseFromString(`<div>${a.html}</div>`, "text/html");
  put(view,
    h("p", {}, h("a", { href: "/admin/articles", "data-link": true }, "← Articles")),
    h("article", { class: "reading", id: "reading" },
      h("h1", {}, a.title),
      h("p", { class: "muted", id: "article-meta" },
        a.category ? `${a.category} · ` : "", a.tags.length ? `${a.tags.join(", ")} · ` : "",
        `published ${ago(a.published_at || a.updated_at)}`),
      h("div", { class: "preview body" }, ...doc.body.firstChild.childNodes)));
}

export async function edit(view, ctx) {
  const id = ctx.params[0];
  if (id && !canWrite(ctx.me)) return read(view, id);
  const a = id ? await api("GET", `/api/articles/${id}`) : null;
  const writable = canWrite(ctx.me);
  const title = h("input", { name: "title", type: "text", required: true, maxLength: 300, value: a?.title || "", readOnly: !writable });
  const slug = h("input", { name: "slug", type: "text", maxLength: 100, value: a?.slug || "", readOnly: !writable, placeholder: "made from the title" });
  const category = h("input", { name: "category", type: "text", maxLength: 64, value: a?.category || "", readOnly: !writable });
  const tags = h("input", { name: "tags", type: "text", value: a?.tags.join(", ") || "", readOnly: !writable, placeholder: "comma, separated" });
  const status = h("select", { name: "status", disabled: !writable },
    h("option", { value: "draft" }, "draft"), h("option", { value: "published" }, "published"));
  status.value = a?.status || "draft";
  const body = h("textarea", { name: "body", rows: 18, value: a?.body || "", readOnly: !writable });
  const preview = h("div", { class: "preview", id: "preview", "aria-live": "polite" });
  const save = h("button", { type: "submit", class: "primary", id: "save" }, a ? "Save" : "Create");
  const form = h("form", { id: "article-form", class: "editor", novalidate: true },
    h("p", { class: "form-error notice error", role: "alert", hidden: true }),
    field("Title", title), field("Slug", slug), field("Category", category),
    field("Tags", tags), field("Status", status),
    h("div", { class: "split" }, field("Body (Markdown)", body),
      h("div", {}, h("h2", { class: "label" }, "Preview"), preview)),
    writable ? h("div", { class: "actions" }, save,
      a ? h("button", { type: "button", id: "toggle-publish" }, a.status === "published" ? "Unpublish" : "Publish") : null,
      a ? h("button", { type: "button", class: "danger", id: "delete" }, "Delete") : null) : null);
  put(view,
    h("p", {}, h("a", { href: "/admin/articles", "data-link": true }, "← Articles")),
    h("h1", {}, a ? a.title : "New article"),
    a ? h("p", { class: "muted", id: "article-meta" }, badge(a.status), ` id ${a.id} · /${a.slug} · updated ${ago(a.updated_at)}`,
      a.published_at ? ` · published ${ago(a.published_at)}` : "") : null,
    form);

  let previewTimer = null;
  const renderPreview = async () => {
    try {
      const r = await api("POST", "/api/articles/preview", { body: body.value });
      const doc = new DOMParser().parseFromString(`<div>${r.html}</div>`, "text/html");
      put(preview, ...doc.body.firstChild.childNodes);
    } catch (err) {
      put(preview, h("p", { class: "notice error" }, `Preview failed: ${err.message}`));
    }
  };
  if (writable) {
    body.addEventListener("input", () => { clearTimeout(previewTimer); previewTimer = setTimeout(renderPreview, 300); });
    await renderPreview();
  } else {
    put(preview, h("p", { class: "muted" }, "Preview is for editors."));
  }

  // What the browser can tell before sending (the server checks it all again).
  const tagProblems = () => {
    const out = [];
    const list = tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    if (list.length > 20) out.push({ field: "tags", message: `can be at most 20 (you have ${list.length})` });
    const long = list.find((t) => [...t].length > 40);
    if (long) out.push({ field: "tags", message: `can be at most 40 characters each (“${long.slice(0, 20)}…” is longer)` });
    const s = slug.value.trim();
    if (s && !/^[a-z0-9]+(-[a-z0-9]+)*$/.test(s)) out.push({ field: "slug", message: "may hold only lower-case letters and digits with single hyphens between them, like getting-started-2 (leave it empty to make one from the title)" });
    return out;
  };
  const values = () => ({
    title: title.value,
    slug: slug.value.trim() || undefined,
    category: category.value.trim() || (a ? null : undefined),
    tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
    status: status.value,
    body: body.value,
  });
  // The version this editor started from: a save only applies while the article is
  // still at it (If-Match); otherwise the admin chooses to reload or overwrite.
  let version = a ? etagOf(a) : undefined;
  const loaded = JSON.stringify(values());
  const dirty = () => writable && JSON.stringify(values()) !== loaded;
  ctx.guardLeave({ dirty, message: "Leave this article? Your unsaved changes will be lost." });
  const conflict = h("div", { class: "notice error", id: "conflict", role: "alert", hidden: true });
  form.prepend(conflict);
  const showConflict = (current, etag) => {
    put(conflict,
      h("p", {}, h("strong", {}, "Someone else changed this article "), `${ago(current.updated_at)} (at ${new Date(current.updated_at).toLocaleString()}), after you opened it. Saving now would undo their change.`),
      h("div", { class: "row" },
        h("button", { type: "button", id: "conflict-reload", onclick: () => { ctx.guardLeave(null); ctx.navigate(`/admin/articles/${a.id}`, { replace: true }); } }, "Reload theirs (discard mine)"),
        h("button", { type: "button", class: "danger", id: "conflict-overwrite", onclick: () => { version = etag; conflict.hidden = true; form.requestSubmit(); } }, "Save mine over theirs")));
    conflict.hidden = false;
    conflict.scrollIntoView({ block: "nearest" });
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!writable) return;
    if (!checkForm(form, tagProblems)) return;
    try {
      const saved = await busy(save, "Saving…", () => a
        ? api("PATCH", `/api/articles/${a.id}`, values(), { ifMatch: version })
        : api("POST", "/api/articles", values()));
      ctx.guardLeave(null);
      ctx.flash(`Saved “${saved.title}” (${saved.status}).`, "ok", { carry: true });
      ctx.navigate(`/admin/articles/${saved.id}`, { replace: !a });
    } catch (err) {
      if (err.status === 412 && err.current) return showConflict(err.current, err.etag);
      showErrors(form, err);
    }
  });
  const toggle = view.querySelector("#toggle-publish");
  toggle?.addEventListener("click", async () => {
    const next = a.status === "published" ? "draft" : "published";
    try {
      await busy(toggle, "Working…", () => api("PATCH", `/api/articles/${a.id}`, { status: next }));
      ctx.flash(next === "published" ? `Published “${a.title}”.` : `Unpublished “${a.title}”; it is a draft again.`, "ok", { carry: true });
      ctx.navigate(`/admin/articles/${a.id}`, { replace: true });
    } catch (err) {
      showErrors(form, err);
    }
  });
  const del = view.querySelector("#delete");
  del?.addEventListener("click", async () => {
    if (!(await confirmDialog(`Delete “${a.title}”? It leaves the site and search; you can undo this.`, "Delete"))) return;
    try {
      await busy(del, "Deleting…", () => api("DELETE", `/api/articles/${a.id}`));
      const undo = h("button", { type: "button", id: "undo" }, "Undo");
      undo.addEventListener("click", async () => {
        try {
          await busy(undo, "Restoring…", () => api("POST", `/api/articles/${a.id}/restore`));
          ctx.flash(`Restored “${a.title}”.`, "ok", { carry: true });
          ctx.navigate(`/admin/articles/${a.id}`);
        } catch (err) {
          ctx.flash(`Could not restore: ${err.message}`, "error");
        }
      });
      ctx.navigate("/admin/articles");
      ctx.flash([`Deleted “${a.title}”. `, undo]);
    } catch (err) {
      showErrors(form, err);
    }
  });
  if (writable) title.focus();
  return () => clearTimeout(previewTimer);
}

/** The trash (editors): deleted articles, who deleted them and when, when cleanup purges
 * them for good; Restore brings one back. */
export async function trash(view, ctx) {
  const out = h("div", { id: "trash-list", "aria-live": "polite" });
  let cursors = [null];
  const load = async () => {
    const r = await api("GET", `/api/articles${qs({ deleted: true, limit: 50, cursor: cursors[cursors.length - 1] })}`);
    put(out, table([
      { label: "Title", cell: (a) => [a.title, " ", h("span", { class: "muted" }, `/${a.slug}`)] },
      { label: "Deleted", cell: (a) => h("span", { title: new Date(a.deleted_at).toLocaleString() }, ago(a.deleted_at)) },
      { label: "By", cell: (a) => a.deleted_by || "–" },
      { label: "Purged for good", cell: (a) => (a.purge_at ? new Date(a.purge_at).toLocaleDateString() : "–") },
      { label: "", cell: (a) => h("button", { type: "button", class: "restore", onclick: async (e) => {
        try {
          await busy(e.target, "Restoring…", () => api("POST", `/api/articles/${a.id}/restore`));
          ctx.flash(`Restored “${a.title}”.`);
        } catch (err) { ctx.flash(`Could not restore “${a.title}”: ${err.message}`, "error"); }
        await load();
      } }, "Restore") },
    ], r.items, "The trash is empty."),
    h("nav", { class: "pager", "aria-label": "Pages" },
      h("button", { type: "button", disabled: cursors.length < 2, onclick: () => { cursors.pop(); load(); } }, "Previous"),
      h("button", { type: "button", disabled: !r.next_cursor, onclick: () => { cursors.push(r.next_cursor); load(); } }, "Next")));
  };
  put(view,
    h("p", {}, h("a", { href: "/admin/articles", "data-link": true }, "← Articles")),
    h("h1", {}, "Trash"),
    h("p", {}, "Deleted articles are gone from the site and search, and kept here until cleanup removes them for good (cleanup.deleted_retention_days after deletion)."),
    out);
  await load();
}

//! Markdown rendering for the editor's preview, safe to insert into the admin page.

/// Render an article body (CommonMark with tables, strikethrough and task lists) to
/// HTML for the editor's preview. Raw HTML in the source is shown as text, never passed
/// through, and link and image targets other than http(s), mailto and relative ones
/// become `#`: the output is safe to insert into the admin page.
pub fn render_markdown(body: &str) -> String {
    use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
    fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
        let lower = url.trim_start().to_ascii_lowercase();
        let scheme_end = lower.find([':', '/', '?', '#']);
        match scheme_end {
            Some(i) if lower.as_bytes()[i] == b':' => {
                if ["http", "https", "mailto"].contains(&&lower[..i]) {
                    url
                } else {
                    CowStr::Borrowed("#")
                }
            }
            _ => url,
        }
    }
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(body, options).map(|e| match e {
        Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::with_capacity(body.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_preview_is_safe_html() {
        let html = render_markdown(
            "# Title\n\n*em* <img src=x onerror=alert(1)> [a](javascript:alert(1)) [b](https://e.org/x) [c](/admin/) ![i](data:image/png;base64,AA)\n\n<script>alert(1)</script>\n",
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<em>em</em>"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(
            !html.contains("<script") && !html.contains("<img src=\"x"),
            "{html}"
        );
        assert!(
            !html.contains("javascript:") && !html.contains("data:"),
            "{html}"
        );
        assert!(
            html.contains("href=\"https://e.org/x\"") && html.contains("href=\"/admin/\""),
            "{html}"
        );
    }
}

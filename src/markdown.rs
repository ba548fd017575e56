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

/// An article body as a reader sees it, in plain text: what search matches and what its
/// snippets show (no `##`, `**`, link targets or table pipes). Blocks end with a line
/// break, table cells with a space; raw HTML is text, as the rendered page shows it.
pub fn plain_text(body: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, TagEnd};
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut out = String::with_capacity(body.len());
    let gap = |out: &mut String, c: char| {
        if !out.is_empty() && !out.ends_with(['\n', ' ']) {
            out.push(c);
        }
    };
    for event in Parser::new_ext(body, options) {
        match event {
            Event::Text(t)
            | Event::Code(t)
            | Event::Html(t)
            | Event::InlineHtml(t)
            | Event::InlineMath(t)
            | Event::DisplayMath(t) => out.push_str(&t),
            Event::SoftBreak => gap(&mut out, ' '),
            Event::HardBreak | Event::Rule => gap(&mut out, '\n'),
            Event::End(TagEnd::TableCell) => gap(&mut out, ' '),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::Item
                | TagEnd::CodeBlock
                | TagEnd::BlockQuote(_)
                | TagEnd::TableHead
                | TagEnd::TableRow,
            ) => {
                while out.ends_with(' ') {
                    out.pop();
                }
                gap(&mut out, '\n');
            }
            _ => {}
        }
    }
    while out.ends_with(['\n', ' ']) {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_what_a_reader_sees() {
        let md = "## Setup\n\nRun **cargo deb** and [read the docs](https://example.org/x).\n\n\
                  | Name | Size |\n|---|---|\n| wal | 4 KiB |\n\n- [x] done item\n- `code` item\n\n\
                  > quoted\n\n```\nfn main() {}\n```\n\nA <b>bold</b> tag\n";
        let text = plain_text(md);
        assert_eq!(
            text,
            "Setup\nRun cargo deb and read the docs.\nName Size\nwal 4 KiB\ndone item\ncode item\nquoted\nfn main() {}\nA <b>bold</b> tag"
        );
        for syntax in ["##", "**", "|", "](", "```", "- ["] {
            assert!(!text.contains(syntax), "{syntax} in {text:?}");
        }
        assert_eq!(plain_text(""), "");
    }

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

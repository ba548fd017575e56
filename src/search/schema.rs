//! The index's schema: its fields (id, title, body, category, tags, status, dates), the
//! analyzer they are tokenized with, and the document an article becomes.

use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{DateTime, TantivyDocument};

use super::{SearchError, stem};
use crate::articles::{Article, Status};
use crate::config::Analyzer;

/// The fields of the index schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub id: Field,
    pub slug: Field,
    /// Indexed (for `title:` and the title boost) and stored.
    pub title: Field,
    /// Stored only, for snippets: the body as a reader sees it, in plain text
    /// ([`crate::markdown::plain_text`]); its words are indexed in `text`. Named
    /// `body_text` in the index: indexes from before (the Markdown source, as `body`)
    /// differ in schema and are rebuilt at start.
    pub body: Field,
    /// Title and body, indexed as two values (a phrase does not run from one into the
    /// other): what a word has to match. One field instead of `title OR body` per word
    /// makes a query an intersection of plain posting lists.
    pub text: Field,
    pub category: Field,
    pub tags: Field,
    pub status: Field,
    pub updated_at: Field,
}

pub(super) fn tokenizer_name(a: Analyzer) -> &'static str {
    match a {
        Analyzer::English => stem::EN_STEM,
        Analyzer::Simple => "default",
    }
}

pub(super) fn build_schema(analyzer: Analyzer) -> (Schema, Fields) {
    let mut b = Schema::builder();
    let indexed = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer_name(analyzer))
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        id: b.add_u64_field("id", INDEXED | STORED | FAST),
        slug: b.add_text_field("slug", STRING | STORED),
        title: b.add_text_field("title", indexed.clone().set_stored()),
        body: b.add_text_field("body_text", STORED),
        text: b.add_text_field("text", indexed),
        category: b.add_text_field("category", STRING | STORED),
        tags: b.add_text_field("tags", STRING | STORED),
        status: b.add_text_field("status", STRING | STORED),
        updated_at: b.add_date_field("updated_at", INDEXED | STORED),
    };
    (b.build(), fields)
}

pub(super) fn fields_of(schema: &Schema) -> Result<Fields, SearchError> {
    let f = |name: &str| {
        schema
            .get_field(name)
            .map_err(|_| SearchError::Other(format!("index has no field `{name}`")))
    };
    Ok(Fields {
        id: f("id")?,
        slug: f("slug")?,
        title: f("title")?,
        body: f("body_text")?,
        text: f("text")?,
        category: f("category")?,
        tags: f("tags")?,
        status: f("status")?,
        updated_at: f("updated_at")?,
    })
}

/// The index holds what readers may find: published, not deleted.
pub(super) fn searchable(a: &Article) -> bool {
    a.deleted_at.is_none() && a.status == Status::Published
}

pub(super) fn document(f: &Fields, a: &Article) -> TantivyDocument {
    let mut d = TantivyDocument::default();
    d.add_u64(f.id, u64::try_from(a.id).unwrap_or(0));
    d.add_text(f.slug, &a.slug);
    d.add_text(f.title, &a.title);
    let plain = crate::markdown::plain_text(&a.body);
    d.add_text(f.body, &plain);
    d.add_text(f.text, &a.title);
    d.add_text(f.text, &plain);
    if let Some(c) = &a.category {
        d.add_text(f.category, c);
    }
    for t in &a.tags {
        d.add_text(f.tags, t);
    }
    d.add_text(f.status, a.status.as_str());
    if let Ok(t) = time::OffsetDateTime::parse(
        &a.updated_at,
        &time::format_description::well_known::Rfc3339,
    ) {
        d.add_date(
            f.updated_at,
            DateTime::from_timestamp_millis(
                i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
            ),
        );
    }
    d
}

//! Running a search: the parsed query (see [`super::query`]) becomes tantivy queries
//! (title boosted, filters as constant-score clauses), top-k and count are collected,
//! and each hit gets an HTML-safe highlighted snippet ([`super::snippet`]).

use std::time::Instant;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, PhraseQuery, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{Index, TantivyDocument, Term};

use super::query::{self, Clause, Kind, Scope};
use super::{
    Hit, IndexHandle, SNIPPET_CHARS, SearchError, SearchRequest, SearchResults, TITLE_BOOST,
    snippet,
};

fn analyze(index: &Index, field: Field, text: &str) -> Result<Vec<String>, SearchError> {
    let mut analyzer = index.tokenizer_for_field(field)?;
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    stream.process(&mut |t| out.push(t.text.clone()));
    Ok(out)
}

/// The query for one clause on one field; `None` when the text has no indexable tokens.
fn clause_on_field(
    index: &Index,
    field: Field,
    kind: &Kind,
) -> Result<Option<Box<dyn Query>>, SearchError> {
    match kind {
        Kind::Word(text) | Kind::Phrase(text) => {
            let tokens = analyze(index, field, text)?;
            Ok(match tokens.len() {
                0 => None,
                1 => Some(Box::new(TermQuery::new(
                    Term::from_field_text(field, &tokens[0]),
                    IndexRecordOption::WithFreqs,
                ))),
                _ => Some(Box::new(PhraseQuery::new(
                    tokens
                        .iter()
                        .map(|t| Term::from_field_text(field, t))
                        .collect(),
                ))),
            })
        }
        Kind::Prefix(p) => {
            // Prefixes are lowercased, not stemmed: a stem of a partial word is noise.
            let p = p.to_lowercase();
            Ok(Some(Box::new(FuzzyTermQuery::new_prefix(
                Term::from_field_text(field, &p),
                0,
                false,
            ))))
        }
    }
}

fn build_query(h: &IndexHandle, clauses: &[Clause]) -> Result<Box<dyn Query>, SearchError> {
    let mut parts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for c in clauses {
        let fields: &[(Field, f32)] = match c.scope {
            Some(Scope::Title) => &[(h.fields.title, TITLE_BOOST)],
            Some(Scope::Body) => &[(h.fields.body, 1.0)],
            None => &[(h.fields.title, TITLE_BOOST), (h.fields.body, 1.0)],
        };
        let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (field, boost) in fields {
            if let Some(q) = clause_on_field(&h.index, *field, &c.kind)? {
                let q: Box<dyn Query> = if *boost == 1.0 {
                    q
                } else {
                    Box::new(BoostQuery::new(q, *boost))
                };
                alternatives.push((Occur::Should, q));
            }
        }
        if alternatives.is_empty() {
            continue;
        }
        let occur = if c.exclude {
            Occur::MustNot
        } else {
            Occur::Must
        };
        parts.push((occur, Box::new(BooleanQuery::new(alternatives))));
    }
    if !parts.iter().any(|(o, _)| *o == Occur::Must) {
        return Err(SearchError::Syntax(query::SyntaxError {
            position: 0,
            message: "the query has no searchable words".into(),
        }));
    }
    Ok(Box::new(BooleanQuery::new(parts)))
}

fn filter(field: Field, value: &str) -> (Occur, Box<dyn Query>) {
    let q = TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    );
    // Filters decide membership, not rank.
    (
        Occur::Must,
        Box::new(ConstScoreQuery::new(Box::new(q), 0.0)),
    )
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The body terms of the query's positive clauses, analysed as the index analyses them.
fn highlighter_for(
    h: &IndexHandle,
    clauses: &[Clause],
) -> Result<snippet::Highlighter, SearchError> {
    let mut terms = std::collections::HashSet::new();
    let mut prefixes = Vec::new();
    for c in clauses
        .iter()
        .filter(|c| !c.exclude && c.scope != Some(Scope::Title))
    {
        match &c.kind {
            Kind::Word(t) | Kind::Phrase(t) => terms.extend(analyze(&h.index, h.fields.body, t)?),
            Kind::Prefix(p) => prefixes.push(p.to_lowercase()),
        }
    }
    let analyzer = h.index.tokenizer_for_field(h.fields.body)?;
    Ok(snippet::Highlighter::new(
        terms,
        prefixes,
        analyzer,
        SNIPPET_CHARS,
    ))
}

pub(super) fn run_search(
    h: &IndexHandle,
    req: &SearchRequest,
) -> Result<SearchResults, SearchError> {
    let started = Instant::now();
    let mut warnings = Vec::new();
    let clauses = if req.strict {
        query::parse(&req.q).map_err(SearchError::Syntax)?
    } else {
        let (clauses, err) = query::parse_lenient(&req.q);
        if let Some(e) = err {
            warnings.push(format!("{e}; searched for the plain words instead"));
        }
        clauses
    };
    let text_query = build_query(h, &clauses)?;
    // Only published articles are in the index, so no status filter is needed.
    let mut filters: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    if let Some(c) = &req.category {
        filters.push(filter(h.fields.category, c));
    }
    if let Some(t) = &req.tag {
        filters.push(filter(h.fields.tags, &t.to_lowercase()));
    }
    let full: Box<dyn Query> = if filters.is_empty() {
        text_query.box_clone()
    } else {
        filters.push((Occur::Must, text_query.box_clone()));
        Box::new(BooleanQuery::new(filters))
    };
    let searcher = h.reader.searcher();
    let top = TopDocs::with_limit(req.limit.max(1))
        .and_offset(req.offset)
        .order_by_score();
    // Top-k alone can skip blocks that cannot make the top (block-WAND); a combined
    // (TopDocs, Count) collector would have to score every match. Counting without
    // scores is a separate, cheaper pass.
    let docs = searcher.search(&*full, &top)?;
    let total = searcher.search(&*full, &Count)?;
    let mut highlighter = highlighter_for(h, &clauses)?;
    let mut hits = Vec::with_capacity(docs.len());
    for (score, addr) in docs.into_iter().take(req.limit) {
        let doc: TantivyDocument = searcher.doc(addr)?;
        let text = |f: Field| {
            doc.get_first(f)
                .and_then(|v| v.as_str().map(str::to_string))
        };
        let html = highlighter.snippet(&text(h.fields.body).unwrap_or_default());
        hits.push(Hit {
            id: doc
                .get_first(h.fields.id)
                .and_then(|v| v.as_u64())
                .and_then(|v| i64::try_from(v).ok())
                .unwrap_or(0),
            slug: text(h.fields.slug).unwrap_or_default(),
            title: text(h.fields.title).unwrap_or_default(),
            category: text(h.fields.category),
            score,
            snippet: html,
        });
    }
    Ok(SearchResults {
        hits,
        total,
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
        warnings,
    })
}

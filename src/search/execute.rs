//! Running a search: the parsed query (see [`super::query`]) becomes tantivy queries
//! (words must be in `text`, title matches add a boosted score, filters are
//! constant-score clauses), top-k and count are collected in the cheapest way the
//! query's shape allows, and each hit gets an HTML-safe highlighted snippet
//! ([`super::snippet`]).

use std::collections::HashMap;
use std::time::Instant;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, PhraseQuery, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{DocAddress, Index, Score, TantivyDocument, Term};

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

/// How the text part of a search is run.
enum Shape {
    /// One plain word: `text:w OR title:w^boost` is a union of term scorers, so top-k
    /// skips blocks that cannot make the top (block-WAND), and the count is `text:w`'s
    /// (every title word is in `text` too): its document frequency.
    OneWord { count: Box<dyn Query> },
    /// Several plain words, run in two phases (see [`two_phase`]).
    Words {
        text_terms: Vec<Box<dyn Query>>,
        title_boosts: Vec<Box<dyn Query>>,
    },
    /// Anything else (phrases, prefixes, scopes, exclusions): one pass that scores
    /// every match and counts it.
    Other,
}

struct Plan {
    full: Box<dyn Query>,
    shape: Shape,
}

fn boosted(q: Box<dyn Query>) -> Box<dyn Query> {
    // A boost is passed down to the term's scorer: a boosted term is still a term
    // scorer for block-WAND.
    Box::new(BoostQuery::new(q, TITLE_BOOST))
}

/// A word must be in `text` (title or body); a title match adds a boosted score, so
/// title matches rank first. `title:` scopes to the title, `body:` to `text`.
fn build_query(h: &IndexHandle, clauses: &[Clause]) -> Result<Plan, SearchError> {
    let (title, text) = (h.fields.title, h.fields.text);
    let mut musts: Vec<Box<dyn Query>> = Vec::new();
    let mut title_boosts: Vec<Box<dyn Query>> = Vec::new();
    let mut excluded: Vec<Box<dyn Query>> = Vec::new();
    let mut plain_words = 0;
    for c in clauses {
        let field = if c.scope == Some(Scope::Title) {
            title
        } else {
            text
        };
        let Some(q) = clause_on_field(&h.index, field, &c.kind)? else {
            continue;
        };
        if c.exclude {
            excluded.push(q);
            continue;
        }
        match c.scope {
            Some(Scope::Title) => musts.push(boosted(q)),
            Some(Scope::Body) => musts.push(q),
            None => {
                if let Some(t) = clause_on_field(&h.index, title, &c.kind)? {
                    title_boosts.push(boosted(t));
                }
                if q.is::<TermQuery>() {
                    plain_words += 1;
                }
                musts.push(q);
            }
        }
    }
    if musts.is_empty() {
        return Err(SearchError::Syntax(query::SyntaxError {
            position: 0,
            message: "the query has no searchable words".into(),
        }));
    }
    let only_plain_words = excluded.is_empty() && plain_words == musts.len();
    if only_plain_words && musts.len() == 1 {
        let count = musts[0].box_clone();
        let union: Vec<(Occur, Box<dyn Query>)> = musts
            .into_iter()
            .chain(title_boosts)
            .map(|q| (Occur::Should, q))
            .collect();
        return Ok(Plan {
            full: Box::new(BooleanQuery::new(union)),
            shape: Shape::OneWord { count },
        });
    }
    let all: Vec<(Occur, Box<dyn Query>)> = musts
        .iter()
        .map(|q| (Occur::Must, q.box_clone()))
        .chain(title_boosts.iter().map(|q| (Occur::Should, q.box_clone())))
        .chain(excluded.into_iter().map(|q| (Occur::MustNot, q)))
        .collect();
    let full: Box<dyn Query> = Box::new(BooleanQuery::new(all));
    let shape = if only_plain_words {
        Shape::Words {
            text_terms: musts,
            title_boosts,
        }
    } else {
        Shape::Other
    };
    Ok(Plan { full, shape })
}

fn conjunction(parts: impl IntoIterator<Item = Box<dyn Query>>) -> BooleanQuery {
    BooleanQuery::new(parts.into_iter().map(|q| (Occur::Must, q)).collect())
}

/// Top `limit` after `offset` for several plain words, without scoring every match.
///
/// A match's score is the sum of its `text` scores plus the boosted title scores of
/// the words in its title. Phase 1 ranks the matches with at least one word in the
/// title (few: titles are short) by that full score. Phase 2 ranks all matches by the
/// `text` scores alone: a pure intersection of term scorers, which skips blocks
/// (block-max WAND). A match with no title word has its full score in phase 2, and
/// anything ranked above it there ranks above it in full, so the true top k are in
/// the union of both phases' top k: a titled match that phase 1 did not keep has k
/// matches at or above its full score, which is at or above its phase-2 score. The
/// count is the intersection's, without scores.
fn two_phase(
    searcher: &tantivy::Searcher,
    text_terms: Vec<Box<dyn Query>>,
    title_boosts: Vec<Box<dyn Query>>,
    limit: usize,
    offset: usize,
) -> Result<(Vec<(Score, DocAddress)>, usize), SearchError> {
    let k = limit.saturating_add(offset).max(1);
    let top = || TopDocs::with_limit(k).order_by_score();
    let any_title: Box<dyn Query> = Box::new(BooleanQuery::new(
        title_boosts
            .into_iter()
            .map(|q| (Occur::Should, q))
            .collect(),
    ));
    let titled = conjunction(text_terms.iter().map(|q| q.box_clone()).chain([any_title]));
    let plain = conjunction(text_terms);
    let mut best: HashMap<DocAddress, Score> = HashMap::new();
    for (score, addr) in searcher
        .search(&titled, &top())?
        .into_iter()
        .chain(searcher.search(&plain, &top())?)
    {
        let s = best.entry(addr).or_insert(score);
        *s = s.max(score);
    }
    let mut docs: Vec<(Score, DocAddress)> = best.into_iter().map(|(a, s)| (s, a)).collect();
    // Ties in document order, as tantivy's own top-k.
    docs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let docs = docs.into_iter().skip(offset).take(limit.max(1)).collect();
    Ok((docs, searcher.search(&plain, &Count)?))
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
            Kind::Word(t) | Kind::Phrase(t) => terms.extend(analyze(&h.index, h.fields.text, t)?),
            Kind::Prefix(p) => prefixes.push(p.to_lowercase()),
        }
    }
    let analyzer = h.index.tokenizer_for_field(h.fields.text)?;
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
    let plan = build_query(h, &clauses)?;
    // Only published articles are in the index, so no status filter is needed.
    let mut filters: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    if let Some(c) = &req.category {
        filters.push(filter(h.fields.category, c));
    }
    if let Some(t) = &req.tag {
        filters.push(filter(h.fields.tags, &t.to_lowercase()));
    }
    let searcher = h.reader.searcher();
    let top = TopDocs::with_limit(req.limit.max(1))
        .and_offset(req.offset)
        .order_by_score();
    let (docs, total) = match plan.shape {
        _ if !filters.is_empty() => {
            filters.push((Occur::Must, plan.full));
            let q = BooleanQuery::new(filters);
            searcher.search(&q, &(top, Count))?
        }
        Shape::OneWord { count } => (
            searcher.search(&*plan.full, &top)?,
            searcher.search(&*count, &Count)?,
        ),
        Shape::Words {
            text_terms,
            title_boosts,
        } => two_phase(&searcher, text_terms, title_boosts, req.limit, req.offset)?,
        // Every match is scored anyway: count in the same pass.
        Shape::Other => searcher.search(&*plan.full, &(top, Count))?,
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Analyzer, SearchConfig};
    use crate::search::{IndexHandle, build_schema, stem};

    const WORDS: [&str; 12] = [
        "wal",
        "checkpoint",
        "reader",
        "writer",
        "index",
        "merge",
        "segment",
        "backup",
        "restore",
        "mentor",
        "article",
        "logging",
    ];

    /// A real index in a temp dir: 3 segments, some deletions, titles of 3 words and
    /// bodies of 20 drawn with a skew, so some words are everywhere and some rare.
    fn index() -> (tempfile::TempDir, IndexHandle) {
        let dir = tempfile::tempdir().unwrap();
        let (schema, fields) = build_schema(Analyzer::English);
        let index = Index::create_in_dir(dir.path(), schema).unwrap();
        stem::register(&index);
        let mut w: tantivy::IndexWriter = index.writer_with_num_threads(1, 20_000_000).unwrap();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut word = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Skewed: the square of a uniform draw favours the first words.
            let u = (state % 1000) as f64 / 1000.0;
            WORDS[((u * u) * WORDS.len() as f64) as usize]
        };
        for id in 0..3000u64 {
            let title: Vec<&str> = (0..3).map(|_| word()).collect();
            let body: Vec<&str> = (0..20).map(|_| word()).collect();
            let mut d = TantivyDocument::default();
            d.add_u64(fields.id, id);
            d.add_text(fields.title, title.join(" "));
            d.add_text(fields.body, body.join(" "));
            d.add_text(fields.text, title.join(" "));
            d.add_text(fields.text, body.join(" "));
            w.add_document(d).unwrap();
            if id % 1000 == 999 {
                w.commit().unwrap();
            }
        }
        for id in (0..3000u64).step_by(7) {
            w.delete_term(Term::from_field_u64(fields.id, id));
        }
        w.commit().unwrap();
        drop(w);
        let config = SearchConfig {
            analyzer: Analyzer::English,
            ..crate::config::Config::default().search
        };
        let h = IndexHandle::from_index(index, fields, dir.path(), &config).unwrap();
        h.reader.reload().unwrap();
        (dir, h)
    }

    fn words(q: &str) -> Vec<Clause> {
        query::parse(q).unwrap()
    }

    /// The reference: one pass over the whole query, every match scored and counted.
    fn reference(
        h: &IndexHandle,
        plan: &Plan,
        limit: usize,
        offset: usize,
    ) -> (Vec<(Score, DocAddress)>, usize) {
        let top = TopDocs::with_limit(limit)
            .and_offset(offset)
            .order_by_score();
        h.reader
            .searcher()
            .search(&*plan.full, &(top, Count))
            .unwrap()
    }

    fn same_ranking(got: &[(Score, DocAddress)], want: &[(Score, DocAddress)], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g.0 - w.0).abs() < 1e-4, "{what}: {got:?} vs {want:?}");
        }
        // Same documents, up to the order among equal scores.
        let mut g: Vec<DocAddress> = got.iter().map(|x| x.1).collect();
        let mut w: Vec<DocAddress> = want.iter().map(|x| x.1).collect();
        if g != w {
            // Only a tie at the cut may pick a different document.
            let last = want.last().map(|x| x.0).unwrap_or(0.0);
            g.retain(|d| got.iter().any(|x| x.1 == *d && (x.0 - last).abs() >= 1e-4));
            w.retain(|d| want.iter().any(|x| x.1 == *d && (x.0 - last).abs() >= 1e-4));
            g.sort();
            w.sort();
            assert_eq!(g, w, "{what}: {got:?} vs {want:?}");
        }
    }

    #[test]
    fn every_plan_ranks_and_counts_as_one_full_pass_would() {
        let (_dir, h) = index();
        let searcher = h.reader.searcher();
        assert!(searcher.segment_readers().len() >= 2);
        let mut checked = (0, 0);
        for (i, a) in WORDS.iter().enumerate() {
            for b in WORDS.iter().skip(i) {
                for q in [a.to_string(), format!("{a} {b}"), format!("{a} {b} wal")] {
                    let clauses = words(&q);
                    for (limit, offset) in [(10, 0), (5, 7), (1, 0)] {
                        let plan = build_query(&h, &clauses).unwrap();
                        let (want, want_total) = reference(&h, &plan, limit, offset);
                        let (got, total) = match plan.shape {
                            Shape::OneWord { count } => {
                                checked.0 += 1;
                                let top = TopDocs::with_limit(limit)
                                    .and_offset(offset)
                                    .order_by_score();
                                (
                                    searcher.search(&*plan.full, &top).unwrap(),
                                    searcher.search(&*count, &Count).unwrap(),
                                )
                            }
                            Shape::Words {
                                text_terms,
                                title_boosts,
                            } => {
                                checked.1 += 1;
                                two_phase(&searcher, text_terms, title_boosts, limit, offset)
                                    .unwrap()
                            }
                            Shape::Other => panic!("{q}: plain words are not `Other`"),
                        };
                        assert_eq!(total, want_total, "{q}");
                        same_ranking(&got, &want, &format!("{q} limit {limit} offset {offset}"));
                    }
                }
            }
        }
        assert!(checked.0 > 0 && checked.1 > 0, "{checked:?}");
    }

    #[test]
    fn title_matches_rank_first_and_scopes_and_exclusions_are_one_pass() {
        let (_dir, h) = index();
        for q in [
            "\"wal checkpoint\"",
            "wal -reader",
            "title:wal reader",
            "body:wal",
            "wa*",
        ] {
            let plan = build_query(&h, &words(q)).unwrap();
            assert!(matches!(plan.shape, Shape::Other), "{q}");
        }
        // "mentor" is rare: among its matches, those with it in the title come first.
        let plan = build_query(&h, &words("mentor")).unwrap();
        let searcher = h.reader.searcher();
        let top = searcher
            .search(&*plan.full, &TopDocs::with_limit(3000).order_by_score())
            .unwrap();
        let titled: Vec<bool> = top
            .iter()
            .map(|(_, a)| {
                let d: TantivyDocument = searcher.doc(*a).unwrap();
                d.get_first(h.fields.title)
                    .and_then(|v| v.as_str())
                    .is_some_and(|t| t.contains("mentor"))
            })
            .collect();
        let first_untitled = titled.iter().position(|t| !t).unwrap();
        assert!(first_untitled > 0, "some titles have the word");
        assert!(
            titled[first_untitled..].iter().all(|t| !t),
            "a title match ranked below a body-only match"
        );
    }
}

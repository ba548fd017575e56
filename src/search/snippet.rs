//! Highlighted snippets, HTML-safe. Replaces tantivy's `SnippetGenerator`, which runs the
//! field's full analyzer (English stemmer included) over every word of every hit's body:
//! profiled at half of a query's CPU. Here a word is stemmed only if it could stem to a
//! query term — English stems keep a word's first letters, so a word whose start does
//! not match any term's first three letters is skipped — and `prefix*` matches are
//! highlighted too. ASCII text (the common case) is not walked character by character:
//! an Aho-Corasick automaton finds the places where a word starts with a term's first
//! letters or a prefix, and only those words are looked at.

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

use tantivy::tokenizer::TextAnalyzer;

use super::escape_html;

/// Letters of a term a word must start with before it is worth stemming.
const STEM_PREFIX: usize = 3;
/// Characters shown before the first match in a fragment.
const LEAD_CHARS: usize = 40;

pub struct Highlighter {
    /// Analysed (lowercased, maybe stemmed) body terms of the query. A query has a few
    /// terms, so a list beats hashing every word of every hit.
    terms: Vec<String>,
    /// Starts of those terms: a word must begin with one of these to be stemmed.
    starts: Vec<String>,
    /// Lowercased `prefix*` terms.
    prefixes: Vec<String>,
    /// Lowercase first characters of all of the above: most words fail this test and
    /// are passed over without lowercasing or allocating.
    firsts: Vec<char>,
    /// Finds, case-insensitively, the ASCII `starts` and `prefixes` in ASCII text; `None`
    /// when there is none (then no ASCII word can match).
    ascii_finder: Option<AhoCorasick>,
    analyzer: TextAnalyzer,
    max_chars: usize,
}

impl Highlighter {
    pub fn new(
        terms: HashSet<String>,
        prefixes: Vec<String>,
        analyzer: TextAnalyzer,
        max_chars: usize,
    ) -> Highlighter {
        let terms: Vec<String> = terms.into_iter().collect();
        let mut starts: Vec<String> = terms
            .iter()
            .map(|t| t.chars().take(STEM_PREFIX).collect())
            .collect();
        starts.sort();
        starts.dedup();
        let mut firsts: Vec<char> = terms
            .iter()
            .chain(&prefixes)
            .filter_map(|t| t.chars().next())
            .collect();
        firsts.sort_unstable();
        firsts.dedup();
        // Every word `matches` accepts starts with one of these (a term's start, or a
        // prefix); in ASCII text only ASCII alphanumeric ones can occur in a word.
        let patterns: Vec<&String> = starts
            .iter()
            .chain(&prefixes)
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
            .collect();
        let ascii_finder = if patterns.is_empty() {
            None
        } else {
            // Leftmost: a word-start match is found before any match inside that word.
            // Built per query for a few patterns: an NFA, not a DFA (profiled: building
            // the DFA cost more than searching with it).
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostFirst)
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .build(patterns)
                .ok()
        };
        Highlighter {
            terms,
            starts,
            prefixes,
            firsts,
            ascii_finder,
            analyzer,
            max_chars,
        }
    }

    fn matches(&mut self, word: &str) -> bool {
        let Some(first) = word.chars().next().and_then(|c| c.to_lowercase().next()) else {
            return false;
        };
        if !self.firsts.contains(&first) {
            return false;
        }
        let lower = word.to_lowercase();
        if self.terms.contains(&lower)
            || self.prefixes.iter().any(|p| lower.starts_with(p.as_str()))
        {
            return true;
        }
        if !self.starts.iter().any(|s| lower.starts_with(s.as_str())) {
            return false;
        }
        let mut stream = self.analyzer.token_stream(word);
        let mut found = false;
        while stream.advance() {
            let text = &stream.token().text;
            if self.terms.iter().any(|t| t == text) {
                found = true;
            }
        }
        found
    }

    /// The byte ranges of matching words. Words: maximal runs of alphanumeric
    /// characters (as tantivy's SimpleTokenizer).
    fn hits(&mut self, text: &str) -> Vec<(usize, usize)> {
        let mut hits = Vec::new();
        let mut start = None;
        for (i, c) in text
            .char_indices()
            .chain(std::iter::once((text.len(), ' ')))
        {
            match (c.is_alphanumeric(), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    if self.matches(&text[s..i]) {
                        hits.push((s, i));
                    }
                    start = None;
                }
                _ => {}
            }
        }
        hits
    }

    /// [`Self::hits`] for ASCII text: only the words that start with a term's first
    /// letters or a prefix are looked at.
    fn ascii_hits(&mut self, text: &str) -> Vec<(usize, usize)> {
        let mut hits = Vec::new();
        let Some(finder) = self.ascii_finder.take() else {
            return hits;
        };
        let bytes = text.as_bytes();
        let mut pos = 0;
        while let Some(m) = finder.find(Input::new(text).span(pos..text.len())) {
            let s = m.start();
            let end = bytes[s..]
                .iter()
                .position(|b| !b.is_ascii_alphanumeric())
                .map_or(text.len(), |n| s + n);
            // A match inside a word is not a word start; the word's own start, if it
            // matched, came first.
            let at_word_start = s == 0 || !bytes[s - 1].is_ascii_alphanumeric();
            if at_word_start && self.matches(&text[s..end]) {
                hits.push((s, end));
            }
            pos = end;
        }
        self.ascii_finder = Some(finder);
        hits
    }

    /// A fragment of about `max_chars` around the densest run of matches, escaped, with
    /// matches in `<mark>`; the start of the text when nothing matches.
    pub fn snippet(&mut self, text: &str) -> String {
        let hits = if text.is_ascii() {
            self.ascii_hits(text)
        } else {
            self.hits(text)
        };
        let budget = self.max_chars;
        let Some(&(first, _)) = hits.first() else {
            return escape_html(&take_chars(text, 0, budget));
        };
        // The window (by bytes, roughly chars) that holds the most matches.
        let mut best = (0usize, first);
        for (i, &(s, _)) in hits.iter().enumerate() {
            let n = hits[i..]
                .iter()
                .take_while(|(h, _)| *h < s + budget)
                .count();
            if n > best.0 {
                best = (n, s);
            }
        }
        let lead_start = text[..best.1]
            .char_indices()
            .rev()
            .nth(LEAD_CHARS)
            .map(|(i, _)| i)
            .unwrap_or(0);
        // Start at a word boundary.
        let from = if lead_start == 0 {
            0
        } else {
            text[lead_start..best.1]
                .find(char::is_whitespace)
                .map(|w| lead_start + w + 1)
                .unwrap_or(best.1)
        };
        let fragment_end = text[from..]
            .char_indices()
            .nth(budget)
            .map(|(i, _)| from + i)
            .unwrap_or(text.len());
        let mut out = String::new();
        let mut pos = from;
        for &(s, e) in hits
            .iter()
            .filter(|(s, e)| *s >= from && *e <= fragment_end)
        {
            out.push_str(&escape_html(&text[pos..s]));
            out.push_str("<mark>");
            out.push_str(&escape_html(&text[s..e]));
            out.push_str("</mark>");
            pos = e;
        }
        out.push_str(&escape_html(&text[pos..fragment_end]));
        out.trim().to_string()
    }
}

fn take_chars(text: &str, from: usize, n: usize) -> String {
    text[from..].chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::tokenizer::TokenizerManager;

    fn en(terms: &[&str], prefixes: &[&str]) -> Highlighter {
        let analyzer = TokenizerManager::default().get("en_stem").unwrap();
        Highlighter::new(
            terms.iter().map(|s| s.to_string()).collect(),
            prefixes.iter().map(|s| s.to_string()).collect(),
            analyzer,
            80,
        )
    }

    #[test]
    fn stemmed_matches_are_marked_and_text_escaped() {
        let mut h = en(&["log"], &[]);
        let s = h.snippet("Never <b>trust</b> Logging & logs; the logger logs.");
        assert_eq!(
            s,
            "Never &lt;b&gt;trust&lt;/b&gt; <mark>Logging</mark> &amp; <mark>logs</mark>; the logger <mark>logs</mark>."
        );
    }

    #[test]
    fn prefixes_are_marked() {
        let mut h = en(&[], &["tanti"]);
        assert_eq!(h.snippet("Tantivy is fast"), "<mark>Tantivy</mark> is fast");
    }

    #[test]
    fn no_match_gives_the_start_escaped() {
        let mut h = en(&["zebra"], &[]);
        let text = format!("<i>{}</i>", "word ".repeat(40));
        let s = h.snippet(&text);
        assert!(s.starts_with("&lt;i&gt;word"), "{s}");
        assert!(s.chars().count() <= 100, "{s}");
    }

    #[test]
    fn the_fragment_moves_to_the_matches_and_starts_on_a_word() {
        let mut h = en(&["needl"], &[]);
        let text = format!("{}needle in the haystack", "hay ".repeat(100));
        let s = h.snippet(&text);
        assert!(s.starts_with("hay "), "{s}");
        assert!(s.contains("<mark>needle</mark>"), "{s}");
        assert!(s.chars().count() < 100, "{s}");
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let mut h = en(&["café"], &[]);
        let text = format!("{}café crème", "é ".repeat(200));
        let s = h.snippet(&text);
        assert!(s.contains("<mark>café</mark>"), "{s}");
    }

    #[test]
    fn the_ascii_path_finds_exactly_what_the_character_walk_finds() {
        let words = [
            "Logging", "logs", "xlog", "log", "LOGGER", "catalog", "logs2", "2logs", "tantivy",
            "Tantivies", "ant", "an", "a", "relational", "relation", "RELATE", "re", "-", ", ",
            "&", "<b>", "\"", "log-in", "c++", "x", "9", "nation", "nationally",
        ];
        let queries: [(&[&str], &[&str]); 6] = [
            (&["log"], &[]),
            (&["relat", "nation"], &["tant"]),
            (&["a"], &[]),
            (&[], &["c++", "lo"]),
            (&["log", "logger"], &["re"]),
            (&["élan"], &["é"]),
        ];
        // A deterministic walk over word sequences (splitmix-style steps).
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for (terms, prefixes) in queries {
            for _ in 0..200 {
                let mut text = String::new();
                for _ in 0..40 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    text.push_str(words[(state % words.len() as u64) as usize]);
                    if state & 0x100 == 0 {
                        text.push(' ');
                    }
                }
                let mut h = en(terms, prefixes);
                assert_eq!(h.ascii_hits(&text), h.hits(&text), "{terms:?} {prefixes:?} {text}");
            }
        }
    }
}

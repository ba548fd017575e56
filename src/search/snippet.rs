//! Highlighted snippets, HTML-safe. Replaces tantivy's `SnippetGenerator`, which runs the
//! field's full analyzer (English stemmer included) over every word of every hit's body:
//! profiled at half of a query's CPU. Here a word is stemmed only if it could stem to a
//! query term — English stems keep a word's first letters, so a word whose start does
//! not match any term's first three letters is skipped — and `prefix*` matches are
//! highlighted too. In ASCII text (the common case) `memchr` jumps to the first letters
//! worth looking at, and words are compared without allocating.

use std::collections::HashSet;

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
    /// For ASCII text: the bytes (both cases of a letter) a matching word can start
    /// with.
    ascii_firsts: Vec<u8>,
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
        let mut ascii_firsts: Vec<u8> = firsts
            .iter()
            .filter(|c| c.is_ascii())
            .flat_map(|c| [c.to_ascii_lowercase() as u8, c.to_ascii_uppercase() as u8])
            .collect();
        ascii_firsts.sort_unstable();
        ascii_firsts.dedup();
        Highlighter {
            terms,
            starts,
            prefixes,
            firsts,
            ascii_firsts,
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
        self.stems_to_a_term(word)
    }

    fn stems_to_a_term(&mut self, word: &str) -> bool {
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

    /// [`Self::hits`] for ASCII text, where a word is a run of ASCII letters and digits:
    /// only the word starts with a wanted first letter are looked at, found with
    /// `memchr` (a SIMD scan) per letter.
    fn ascii_hits(&mut self, text: &str) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut starts: Vec<usize> = Vec::new();
        let firsts = std::mem::take(&mut self.ascii_firsts);
        for set in firsts.chunks(3) {
            let found: Box<dyn Iterator<Item = usize>> = match *set {
                [a, b, c] => Box::new(memchr::memchr3_iter(a, b, c, bytes)),
                [a, b] => Box::new(memchr::memchr2_iter(a, b, bytes)),
                [a] => Box::new(memchr::memchr_iter(a, bytes)),
                _ => Box::new(std::iter::empty()),
            };
            starts.extend(found.filter(|&i| i == 0 || !bytes[i - 1].is_ascii_alphanumeric()));
        }
        self.ascii_firsts = firsts;
        starts.sort_unstable();
        let mut hits = Vec::new();
        for start in starts {
            let end = bytes[start..]
                .iter()
                .position(|b| !b.is_ascii_alphanumeric())
                .map_or(bytes.len(), |n| start + n);
            if self.matches_ascii(&text[start..end]) {
                hits.push((start, end));
            }
        }
        hits
    }

    /// [`Self::matches`] for an ASCII word, comparing without lowercasing a copy.
    fn matches_ascii(&mut self, word: &str) -> bool {
        let w = word.as_bytes();
        let starts_with =
            |p: &str| w.len() >= p.len() && w[..p.len()].eq_ignore_ascii_case(p.as_bytes());
        if self
            .terms
            .iter()
            .any(|t| t.len() == w.len() && t.as_bytes().eq_ignore_ascii_case(w))
            || self.prefixes.iter().any(|p| starts_with(p))
        {
            return true;
        }
        if !self.starts.iter().any(|s| starts_with(s)) {
            return false;
        }
        self.stems_to_a_term(word)
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
            "Logging",
            "logs",
            "xlog",
            "log",
            "LOGGER",
            "catalog",
            "logs2",
            "2logs",
            "tantivy",
            "Tantivies",
            "ant",
            "an",
            "a",
            "relational",
            "relation",
            "RELATE",
            "re",
            "-",
            ", ",
            "&",
            "<b>",
            "\"",
            "log-in",
            "c++",
            "x",
            "9",
            "nation",
            "nationally",
            "Wal",
            "WAL",
        ];
        let queries: [(&[&str], &[&str]); 8] = [
            (&["log"], &[]),
            (&["2log", "9"], &[]),
            (&["x", "an", "tantivi", "nation", "wal"], &["c", "9"]),
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
                assert_eq!(
                    h.ascii_hits(&text),
                    h.hits(&text),
                    "{terms:?} {prefixes:?} {text}"
                );
            }
        }
    }
}

//! The English analyzer with a memo of stems. tantivy's `en_stem` runs the Snowball
//! stemmer on every token; profiled under article creates, stemming was a third of the
//! indexing threads' CPU. Text repeats its words (a few thousand make up most of any
//! English text), so each analyzer keeps the stems it has computed and looks them up
//! instead. The output is token for token the same as `en_stem`'s (tested), so indexes
//! built with either are interchangeable and keep the tokenizer name `en_stem`.
//!
//! Each analyzer clone has its own memo (tantivy clones the analyzer per segment writer
//! and per query), so there is no lock; a memo that reaches [`MAX_WORDS`] is cleared.

use rustc_hash::FxHashMap;
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, Token, TokenFilter, TokenStream,
    Tokenizer,
};

/// The name the schema records for the English analyzer (the same as tantivy's own).
pub const EN_STEM: &str = "en_stem";

/// Most words one memo holds (≈ 60 bytes each, inline) before it starts over.
const MAX_WORDS: usize = 50_000;

/// `SimpleTokenizer` → `RemoveLongFilter(40)` → `LowerCaser` → English stemming with a
/// memo: tantivy's `en_stem` chain.
pub fn english() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(MemoStemmer)
        .build()
}

/// Register [`english`] as `en_stem` on an index (before any writer or query uses it).
pub fn register(index: &tantivy::Index) {
    index.tokenizers().register(EN_STEM, english());
}

/// English Snowball stemming with a memo (the only stemming language `search.analyzer`
/// offers).
#[derive(Clone)]
pub struct MemoStemmer;

impl TokenFilter for MemoStemmer {
    type Tokenizer<T: Tokenizer> = MemoStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> MemoStemmerFilter<T> {
        MemoStemmerFilter {
            stemmer: frostem::Stemmer::new(frostem::Algorithm::English),
            inner: tokenizer,
            memo: FxHashMap::default(),
        }
    }
}

#[derive(Clone)]
pub struct MemoStemmerFilter<T> {
    stemmer: frostem::Stemmer,
    inner: T,
    /// Word → its stem. Clones start with what the original had learnt.
    memo: FxHashMap<Word, Stem>,
}

/// Longest word (in bytes) the memo holds. Words are stored inline, not behind a
/// pointer, so that a lookup touches one table slot and compares three integers: with
/// `Box<str>` keys the hit path chased a pointer and called `memcmp` for every token
/// (`memcmp` alone was 3.5% of the server's CPU under article creates); the whole
/// analyzer ran about 1.6x faster this way in an in-process comparison of the two, and
/// `cargo bench --bench analyzer` compares it with tantivy's `en_stem`. Longer words
/// are rare in text and are stemmed every time.
const INLINE: usize = 23;

/// A word of at most [`INLINE`] bytes: the bytes, zero-padded, with the length in the
/// last byte (so no two words pack alike, whatever bytes they hold).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Word([u64; 3]);

impl std::hash::Hash for Word {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for w in self.0 {
            state.write_u64(w);
        }
    }
}

impl Word {
    fn pack(s: &str) -> Option<Word> {
        let b = s.as_bytes();
        if b.len() > INLINE {
            return None;
        }
        let mut buf = [0u8; INLINE + 1];
        buf[..b.len()].copy_from_slice(b);
        buf[INLINE] = b.len() as u8; // ≤ 23: fits
        let at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&buf[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(w)
        };
        Some(Word([at(0), at(1), at(2)]))
    }

    /// The packed word back as text (it was packed from a `str`, so it is UTF-8).
    fn push_to(&self, out: &mut String) {
        let mut buf = [0u8; INLINE + 1];
        for (i, w) in self.0.iter().enumerate() {
            buf[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
        }
        let len = usize::from(buf[INLINE]).min(INLINE);
        if let Ok(s) = std::str::from_utf8(&buf[..len]) {
            out.push_str(s);
        }
    }
}

/// A memoised stem: most English stems are a prefix of their word (a suffix removed),
/// and those need no copy, only a shorter length.
#[derive(Clone, Copy)]
enum Stem {
    Prefix(u8),
    Whole(Word),
}

impl<T: Tokenizer> Tokenizer for MemoStemmerFilter<T> {
    type TokenStream<'a> = MemoStemmerStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        if self.memo.len() >= MAX_WORDS {
            self.memo.clear();
        }
        MemoStemmerStream {
            tail: self.inner.token_stream(text),
            stemmer: &self.stemmer,
            memo: &mut self.memo,
        }
    }
}

pub struct MemoStemmerStream<'a, T> {
    tail: T,
    stemmer: &'a frostem::Stemmer,
    memo: &'a mut FxHashMap<Word, Stem>,
}

impl<T: TokenStream> TokenStream for MemoStemmerStream<'_, T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let text = &mut self.tail.token_mut().text;
        let Some(word) = Word::pack(text) else {
            // Too long to memoise: stem it every time.
            let stem = self.stemmer.stem(text).into_owned();
            *text = stem;
            return true;
        };
        let stem = match self.memo.get(&word) {
            Some(s) => *s,
            None => {
                let stem = self.stemmer.stem(text);
                let memo = if text.starts_with(stem.as_ref()) {
                    // A prefix is at most as long as the word: ≤ 23.
                    Stem::Prefix(stem.len() as u8)
                } else {
                    match Word::pack(&stem) {
                        Some(w) => Stem::Whole(w),
                        None => {
                            let stem = stem.into_owned();
                            *text = stem;
                            return true;
                        }
                    }
                };
                if self.memo.len() < MAX_WORDS {
                    self.memo.insert(word, memo);
                }
                memo
            }
        };
        match stem {
            Stem::Prefix(n) => text.truncate(usize::from(n)),
            Stem::Whole(w) => {
                text.clear();
                w.push_to(text);
            }
        }
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use tantivy::tokenizer::TokenizerManager;

    use super::*;

    fn tokens(mut a: TextAnalyzer, text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut out = Vec::new();
        let mut s = a.token_stream(text);
        while let Some(t) = s.next() {
            out.push((t.text.clone(), t.position, t.offset_from, t.offset_to));
        }
        out
    }

    #[test]
    fn same_tokens_as_tantivys_en_stem_with_a_warm_memo() {
        let text = "Running runners ran; the Runner's RUNNING shoes. Generalizations \
                    generalize, generously! Caresses ponies ties caress cats  \
                    Ünïcödé wörds and x1y2 numbers 12345 happy happily cries \
                    counterrevolutionaries antidisestablishmentarianism \
                    antidisestablishmentarianisms supercalifragilisticexpialidocious \
                    aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa running";
        let reference = TokenizerManager::default()
            .get("en_stem")
            .expect("tantivy's en_stem");
        let want = tokens(reference, text);
        assert!(want.iter().any(|t| t.0 == "run"), "{want:?}");
        // Stems that are not a prefix of their word, and words too long to memoise.
        assert!(want.iter().any(|t| t.0 == "happi"), "{want:?}");
        assert!(want.iter().any(|t| t.0.len() > INLINE), "{want:?}");
        let mut ours = english();
        // First pass fills the memo, the second reads from it: both must match.
        for _ in 0..2 {
            let mut got = Vec::new();
            let mut s = ours.token_stream(text);
            while let Some(t) = s.next() {
                got.push((t.text.clone(), t.position, t.offset_from, t.offset_to));
            }
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_full_memo_starts_over_and_stays_correct() {
        let mut a = english();
        let words: String = (0..MAX_WORDS + 10).map(|i| format!("w{i}ing ")).collect();
        let n = {
            let mut s = a.token_stream(&words);
            let mut n = 0;
            while s.advance() {
                n += 1;
            }
            n
        };
        assert_eq!(n, MAX_WORDS + 10);
        // The next text starts with a cleared memo and still stems.
        assert_eq!(tokens(a, "jumping")[0].0, "jump");
    }
}

//! The English analyzer with a memo of stems. tantivy's `en_stem` runs the Snowball
//! stemmer on every token; profiled under article creates, stemming was a third of the
//! indexing threads' CPU. Text repeats its words (a few thousand make up most of any
//! English text), so each analyzer keeps the stems it has computed and looks them up
//! instead. The output is token for token the same as `en_stem`'s (tested), so indexes
//! built with either are interchangeable and keep the tokenizer name `en_stem`.
//!
//! Each analyzer clone has its own memo (tantivy clones the analyzer per segment writer
//! and per query), so there is no lock; a memo that reaches [`MAX_WORDS`] is cleared.

use std::mem;

use rustc_hash::FxHashMap;
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, Token, TokenFilter, TokenStream,
    Tokenizer,
};

/// The name the schema records for the English analyzer (the same as tantivy's own).
pub const EN_STEM: &str = "en_stem";

/// Most words one memo holds (≈ 64 bytes each) before it starts over.
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
    memo: FxHashMap<Box<str>, Box<str>>,
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
            buffer: String::new(),
        }
    }
}

pub struct MemoStemmerStream<'a, T> {
    tail: T,
    stemmer: &'a frostem::Stemmer,
    memo: &'a mut FxHashMap<Box<str>, Box<str>>,
    buffer: String,
}

impl<T: TokenStream> TokenStream for MemoStemmerStream<'_, T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        self.buffer.clear();
        match self.memo.get(token.text.as_str()) {
            Some(stem) => self.buffer.push_str(stem),
            None => {
                let stem = self.stemmer.stem(&token.text);
                self.buffer.push_str(&stem);
                if self.memo.len() < MAX_WORDS {
                    self.memo
                        .insert(token.text.as_str().into(), stem.as_ref().into());
                }
            }
        }
        mem::swap(&mut token.text, &mut self.buffer);
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
                    Ünïcödé wörds and x1y2 numbers 12345 \
                    aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa running";
        let reference = TokenizerManager::default()
            .get("en_stem")
            .expect("tantivy's en_stem");
        let want = tokens(reference, text);
        assert!(want.iter().any(|t| t.0 == "run"), "{want:?}");
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

//! Deterministic synthetic corpus for benchmarks: a 20,000-word vocabulary of made-up
//! words, drawn with a Zipf distribution (s = 1); titles of 5–10 words, bodies of about
//! 300 words (≈ 2 KB), 20 categories. Seeded, so every run sees the same articles.
//! [`Corpus::text`] is the second shape, closer to real text: a 50,000-word vocabulary,
//! bodies of sentences (6–18 words, the first capitalised, commas, full stops, question
//! and exclamation marks), capitalised titles.

use serde_json::{Value, json};

const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "do", "fu", "ga", "hi", "jo", "pe", "zu",
];
pub const VOCABULARY: usize = 20_000;
/// A word every article carries, so "everything is searchable" can be counted.
pub const MARKER: &str = "benchmarkmarker";

pub struct Corpus {
    state: u64,
    words: Vec<String>,
    cdf: Vec<f64>,
    /// Sentences with capitals and punctuation (the second shape).
    text: bool,
}

impl Corpus {
    pub fn new(seed: u64) -> Corpus {
        Corpus::build(seed, VOCABULARY, false)
    }

    /// The text-like shape: 50,000 words, sentences, capitals and punctuation.
    pub fn text(seed: u64) -> Corpus {
        Corpus::build(seed, 50_000, true)
    }

    fn build(seed: u64, vocabulary: usize, text: bool) -> Corpus {
        let words = (0..vocabulary)
            .map(|k| {
                // Base-16 digits of k + 16: unique, 2 to 4 syllables.
                let mut n = k + 16;
                let mut w = String::new();
                while n > 0 {
                    w.push_str(SYLLABLES[n % 16]);
                    n /= 16;
                }
                w
            })
            .collect();
        let mut cdf = Vec::with_capacity(vocabulary);
        let mut sum = 0.0;
        for rank in 1..=vocabulary {
            sum += 1.0 / rank as f64;
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Corpus {
            state: seed,
            words,
            cdf,
            text,
        }
    }

    /// splitmix64
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// A word by Zipf rank.
    pub fn word(&mut self) -> &str {
        let u = self.unit();
        let i = self
            .cdf
            .partition_point(|c| *c < u)
            .min(self.words.len() - 1);
        &self.words[i]
    }

    /// A query word: Zipf-drawn but past the 50 most frequent (which act as stop words).
    pub fn query_word(&mut self) -> String {
        loop {
            let u = self.unit();
            let i = self
                .cdf
                .partition_point(|c| *c < u)
                .min(self.words.len() - 1);
            if i >= 50 {
                return self.words[i].clone();
            }
        }
    }

    fn words(&mut self, n: usize) -> String {
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            let w = self.word().to_string();
            s.push_str(&w);
        }
        s
    }

    /// About `n` words as sentences: capitalised, commas, ending in . ? or !
    fn sentences(&mut self, n: usize) -> String {
        let mut s = String::new();
        let mut left = n;
        while left > 0 {
            let len = self.range(6, 18).min(left);
            left -= len;
            for i in 0..len {
                if !s.is_empty() {
                    s.push(' ');
                }
                let w = self.word().to_string();
                if i == 0 {
                    s.push_str(&capitalise(&w));
                } else {
                    s.push_str(&w);
                }
                if i + 1 < len && self.range(0, 9) == 0 {
                    s.push(',');
                }
            }
            s.push(match self.range(0, 19) {
                0 => '?',
                1 => '!',
                _ => '.',
            });
        }
        s
    }

    pub fn article(&mut self, i: usize) -> Value {
        let title_len = self.range(5, 10);
        let (title, body) = if self.text {
            let title = self
                .words(title_len)
                .split(' ')
                .map(capitalise)
                .collect::<Vec<_>>()
                .join(" ");
            let body_len = self.range(280, 320);
            (title, format!("{} {MARKER}.", self.sentences(body_len)))
        } else {
            let title = self.words(title_len);
            let body_len = self.range(280, 320);
            (title, format!("{} {MARKER}", self.words(body_len)))
        };
        let category = format!("category{}", self.range(0, 19));
        json!({
            "external_id": format!("bench-{i}"),
            "title": title,
            "body": body,
            "category": category,
            "status": "published",
        })
    }
}

fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

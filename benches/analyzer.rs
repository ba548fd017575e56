//! The English analyzer in-process: tokenising the benchmark corpus's article bodies
//! with tantivy's `en_stem` and with ours (`search::stem::english`, the same tokens with
//! a memo of stems). A fresh clone of the analyzer per 500 articles, as tantivy makes one
//! per segment writer at every index commit. Prints the time per run; asserts nothing
//! but that both produce the same tokens. Run: `cargo bench --bench analyzer`.

#[path = "support/corpus.rs"]
#[allow(dead_code)] // the article generator only
mod corpus;

use std::time::{Duration, Instant};

use tantivy::tokenizer::{TextAnalyzer, TokenStream, TokenizerManager};

/// Tokenise every body, a fresh clone of `original` per 500 of them: the time, and a
/// checksum of the tokens (their total length and positions).
fn run(original: &TextAnalyzer, bodies: &[String]) -> (Duration, usize) {
    let started = Instant::now();
    let mut sum = 0usize;
    for chunk in bodies.chunks(500) {
        let mut a = original.clone();
        for body in chunk {
            let mut s = a.token_stream(body);
            while s.advance() {
                let t = s.token();
                sum = sum.wrapping_add(t.text.len() + t.position);
            }
        }
    }
    (started.elapsed(), sum)
}

fn main() {
    let mut c = corpus::Corpus::new(1);
    let bodies: Vec<String> = (0..2_000)
        .map(|i| {
            c.article(i)["body"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let tokens: usize = bodies.iter().map(|b| b.split(' ').count()).sum();
    let reference = TokenizerManager::default()
        .get("en_stem")
        .expect("tantivy's en_stem");
    let ours = appliance::search::stem::english();
    println!(
        "{} bodies, {tokens} tokens, a fresh analyzer clone per 500",
        bodies.len()
    );
    for round in 1..=5 {
        let (t_ref, sum_ref) = run(&reference, &bodies);
        let (t_ours, sum_ours) = run(&ours, &bodies);
        assert_eq!(sum_ref, sum_ours, "the analyzers disagree");
        println!(
            "round {round}: en_stem {:>6.1} ms ({:>4.0} ns/token) | ours {:>6.1} ms ({:>4.0} ns/token) | {:.2}x",
            t_ref.as_secs_f64() * 1e3,
            t_ref.as_secs_f64() * 1e9 / tokens as f64,
            t_ours.as_secs_f64() * 1e3,
            t_ours.as_secs_f64() * 1e9 / tokens as f64,
            t_ref.as_secs_f64() / t_ours.as_secs_f64()
        );
    }
}

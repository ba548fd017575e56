//! The structure check: reads `src/` and fails on an import that points up the layer
//! map (`src/lib.rs`, `../shared/DESIGN.md`), on SQL text outside `src/db/`, and on a
//! file with more than [`MAX_CODE_LINES`] lines of non-test code. The checker itself is
//! tested below on planted sources, so a check that could never fail would show.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Lines of code (not blank, not a comment) before a file's `#[cfg(test)]`.
const MAX_CODE_LINES: usize = 400;

/// The layer of each room: the first path component under `src/` (a file's stem or a
/// folder's name). Low to high; a file may import its own layer and the ones below.
const LAYERS: &[(&str, u8)] = &[
    ("config", 0),
    ("data_dir", 0),
    ("fsutil", 0),
    ("shutdown", 0),
    ("clock", 0),
    ("validate", 0),
    ("domain", 0),
    ("articles", 0),
    ("markdown", 0),
    ("schedule", 0),
    ("telemetry", 1),
    ("db", 2),
    ("auth", 3),
    ("search", 3),
    ("backup", 3),
    ("catalog", 3),
    ("ops", 4),
    ("replication", 4),
    ("state", 5),
    ("http", 5),
    ("app", 5),
    ("cli", 6),
];

/// The one sanctioned exception: layer-4 rooms (the server's duties) take the
/// composition root's handle, `state::AppState`, and nothing else from above.
fn allowed(from_layer: u8, to_room: &str, to_layer: u8) -> bool {
    to_layer <= from_layer || (from_layer == 4 && to_room == "state")
}

fn layer_of(room: &str) -> Option<u8> {
    LAYERS.iter().find(|(r, _)| *r == room).map(|(_, l)| *l)
}

/// The room of a source file (`src/db/articles.rs` → `db`); None for the crate root.
fn room_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let room = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (room != "lib" && room != "main").then_some(room)
}

/// The source split into code (comments and literal contents blanked, so that words in
/// them are not taken for paths) and the string literals' contents.
fn split_source(src: &str) -> (String, Vec<String>) {
    let b = src.as_bytes();
    let mut code = String::with_capacity(src.len());
    let mut strings = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            code.push(' ');
            continue;
        }
        // Raw strings: r"…", r#"…"#, br#"…"#.
        let raw_start = if c == b'r' {
            Some(i + 1)
        } else if c == b'b' && b.get(i + 1) == Some(&b'r') {
            Some(i + 2)
        } else {
            None
        };
        if let Some(mut j) = raw_start {
            let prev_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if !prev_ident && b.get(j) == Some(&b'"') {
                let start = j + 1;
                let mut k = start;
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                while k < b.len() && !b[k..].starts_with(&close) {
                    k += 1;
                }
                strings.push(src[start..k.min(b.len())].to_string());
                code.push_str("\"\"");
                i = (k + close.len()).min(b.len());
                continue;
            }
        }
        if c == b'"' {
            let start = i + 1;
            let mut k = start;
            while k < b.len() && b[k] != b'"' {
                if b[k] == b'\\' {
                    k += 1;
                }
                k += 1;
            }
            strings.push(src[start..k.min(b.len())].to_string());
            code.push_str("\"\"");
            i = (k + 1).min(b.len());
            continue;
        }
        if c == b'\'' {
            // A char literal ('"', '\'', '\u{..}') or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                let mut k = i + 2;
                while k < b.len() && b[k] != b'\'' {
                    k += 1;
                }
                code.push_str("' '");
                i = k + 1;
                continue;
            }
            if b.get(i + 2) == Some(&b'\'') {
                code.push_str("' '");
                i += 3;
                continue;
            }
        }
        // Multi-byte UTF-8 characters are copied whole.
        let len = match c {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        code.push_str(&src[i..(i + len).min(src.len())]);
        i += len;
    }
    (code, strings)
}

/// Every room a piece of code names through `crate::…` (including `use crate::{a, b::c}`
/// groups) or a `super::` chain that leaves its room. `depth` is how deep the file is
/// below `src/` (0 for `src/x.rs`, 1 for `src/x/y.rs`, 1 for `src/x/mod.rs`).
fn rooms_named(code: &str, depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    let idents = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(pos) = rest.find("crate::") {
        let before = rest[..pos].chars().last();
        rest = &rest[pos + "crate::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let trimmed = rest.trim_start();
        if let Some(group) = trimmed.strip_prefix('{') {
            // Top-level items of the group.
            let mut level = 0;
            let mut item_start = true;
            for (i, ch) in group.char_indices() {
                match ch {
                    '{' => level += 1,
                    '}' if level == 0 => break,
                    '}' => level -= 1,
                    ',' if level == 0 => {
                        item_start = true;
                        continue;
                    }
                    _ => {}
                }
                if item_start && level == 0 && !ch.is_whitespace() {
                    item_start = false;
                    let name = idents(&group[i..]);
                    if !name.is_empty() {
                        out.push(name);
                    }
                }
            }
        } else {
            let name = idents(trimmed);
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    // `super::super::x` from a file `depth` deep reaches the crate root when the chain is
    // longer than the file's depth below its room.
    let mut rest = code;
    while let Some(pos) = rest.find("super::") {
        let before = rest[..pos].chars().last();
        let mut chain = &rest[pos..];
        rest = &rest[pos + "super::".len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut n = 0;
        while let Some(r) = chain.strip_prefix("super::") {
            n += 1;
            chain = r;
        }
        if n > depth {
            let name = idents(chain);
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out.retain(|r| r != "self" && r != "VERSION");
    out
}

/// SQL statements in string literals (what SQLite would run), by their opening words.
fn looks_like_sql(s: &str) -> bool {
    let words: Vec<&str> = s.split_whitespace().collect();
    let upper = |i: usize| words.get(i).copied().unwrap_or("");
    let starts = |w: &str| words.first().is_some_and(|f| *f == w);
    let has_pair = |a: &str, b: &str| {
        words
            .windows(2)
            .any(|p| p[0] == a && (p[1] == b || p[1].starts_with(b)))
    };
    starts("SELECT")
        || has_pair("INSERT", "INTO")
        || has_pair("DELETE", "FROM")
        || has_pair("CREATE", "TABLE")
        || has_pair("CREATE", "INDEX")
        || has_pair("CREATE", "TRIGGER")
        || has_pair("DROP", "TABLE")
        || has_pair("ALTER", "TABLE")
        || (starts("UPDATE") && words.contains(&"SET"))
        || starts("PRAGMA")
        || starts("VACUUM")
        || starts("ANALYZE")
        || (starts("BEGIN") && matches!(upper(1), "IMMEDIATE" | "EXCLUSIVE" | "DEFERRED"))
        || s.contains(" FROM sqlite_")
}

/// rusqlite calls that run SQL text.
const SQL_CALLS: &[&str] = &[
    ".execute(",
    ".execute_batch(",
    ".prepare(",
    ".query_map(",
    ".query_row(",
    ".prepare_cached(",
    ".pragma_update(",
    ".pragma_query_value(",
    ".pragma_update_and_check(",
];

fn code_lines(src: &str) -> usize {
    src.lines()
        .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with("//")
        })
        .count()
}

/// Problems of one file at `rel` (relative to `src/`).
fn check_file(rel: &Path, src: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(room) = room_of(rel) else {
        return problems;
    };
    let Some(layer) = layer_of(&room) else {
        return vec![format!(
            "{}: the room `{room}` is not on the layer map (tests/layers.rs, src/lib.rs)",
            rel.display()
        )];
    };
    let depth = rel.components().count().saturating_sub(1);
    // Tests may import anything and poke the database directly (sabotage).
    let test_start = src
        .match_indices("#[cfg(test)]")
        .map(|(i, _)| i)
        .find(|&i| i == 0 || src.as_bytes()[i - 1] == b'\n')
        .unwrap_or(src.len());
    let (code, strings) = split_source(&src[..test_start]);
    let live = code.as_str();
    for to in rooms_named(live, depth) {
        if to == room {
            continue;
        }
        match layer_of(&to) {
            Some(l) if allowed(layer, &to, l) => {}
            Some(l) => problems.push(format!(
                "{}: imports `crate::{to}` (layer {l}) from layer {layer}: the arrow points up",
                rel.display()
            )),
            None => problems.push(format!(
                "{}: names `crate::{to}`, which is not on the layer map",
                rel.display()
            )),
        }
    }
    if room != "db" {
        for s in strings.iter().filter(|s| looks_like_sql(s)) {
            let shown: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
            let shown: String = shown.chars().take(60).collect();
            problems.push(format!(
                "{}: SQL outside src/db/: \"{shown}\"",
                rel.display()
            ));
        }
        for call in SQL_CALLS {
            if live.contains(call) {
                problems.push(format!(
                    "{}: runs SQL (`{call}…)`) outside src/db/",
                    rel.display()
                ));
            }
        }
    }
    let n = code_lines(src);
    if n > MAX_CODE_LINES {
        problems.push(format!(
            "{}: {n} lines of non-test code (more than {MAX_CODE_LINES}: it holds two rooms)",
            rel.display()
        ));
    }
    problems
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_import_points_down_and_sql_lives_in_db() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 30, "src/ has {} files", files.len());
    let mut problems = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src/");
        let text = std::fs::read_to_string(f).expect("readable source");
        for p in check_file(rel, &text) {
            problems.insert(p, ());
        }
    }
    let list: Vec<&String> = problems.keys().collect();
    assert!(
        list.is_empty(),
        "{} structure problem(s):\n{}",
        list.len(),
        list.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_map_in_lib_rs_names_every_room_of_the_check() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("src/lib.rs");
    for (room, _) in LAYERS {
        assert!(
            lib.contains(&format!("pub mod {room};")),
            "src/lib.rs does not declare `{room}`"
        );
    }
}

#[test]
fn an_upward_import_is_caught_in_every_form() {
    let p = |rel: &str, src: &str| check_file(Path::new(rel), src);
    assert_eq!(p("db/users.rs", "use crate::auth::Role;\n").len(), 1);
    assert_eq!(
        p(
            "db/users.rs",
            "use crate::{\n  config::Config,\n  http::{a, b},\n};\n"
        )
        .len(),
        1
    );
    assert_eq!(
        p("backup/runner.rs", "fn f() { crate::state::AppState::x() }").len(),
        1
    );
    assert_eq!(p("ops/health.rs", "use crate::state::AppState;").len(), 0);
    assert_eq!(p("ops/health.rs", "use crate::http::router;").len(), 1);
    assert_eq!(p("search/a.rs", "use super::super::cli::x;").len(), 1);
    assert_eq!(p("search/a.rs", "use super::Search;").len(), 0);
    assert_eq!(p("clock.rs", "fn f() -> crate::unknown::X {}").len(), 1);
    // Words in comments and strings are not imports; tests may import anything.
    assert_eq!(
        p(
            "db/a.rs",
            "// crate::http::x\nconst S: &str = \"crate::cli\";"
        )
        .len(),
        0
    );
    assert_eq!(
        p(
            "db/a.rs",
            "#[cfg(test)]\nmod tests { use crate::app::App; }"
        )
        .len(),
        0
    );
    assert_eq!(p("newroom.rs", "").len(), 1);
}

#[test]
fn sql_outside_db_is_caught() {
    let p = |rel: &str, src: &str| check_file(Path::new(rel), src);
    assert_eq!(
        p("ops/a.rs", r#"const Q: &str = "SELECT id FROM articles";"#).len(),
        1
    );
    assert_eq!(
        p("ops/a.rs", "const Q: &str = r#\"DELETE FROM sessions\"#;").len(),
        1
    );
    assert_eq!(
        p("ops/a.rs", "fn f(c: &C) { c.execute_batch(x); }").len(),
        1
    );
    assert_eq!(
        p("db/a.rs", r#"const Q: &str = "SELECT id FROM articles";"#).len(),
        0
    );
    assert_eq!(
        p(
            "ops/a.rs",
            r#"const M: &str = "select an archive, then delete it";"#
        )
        .len(),
        0
    );
}

#[test]
fn a_file_of_two_rooms_is_caught() {
    let long: String = (0..401).map(|i| format!("const C{i}: u8 = 0;\n")).collect();
    assert_eq!(check_file(Path::new("clock.rs"), &long).len(), 1);
    let half: String = long.lines().take(200).map(|l| format!("{l}\n")).collect();
    let with_tests = format!("{half}#[cfg(test)]\n{long}");
    assert_eq!(check_file(Path::new("clock.rs"), &with_tests).len(), 0);
}

//! What each configuration key means, for the admin UI's Settings page: read from the
//! README's configuration tables (one source for the manual and the UI), rows like
//! `` | `section.key` | `default` | What it does. | `` and grouped rows
//! `` | `section.a` / `b` / `c` | … | … | `` whose later keys share the first one's section.

use std::collections::BTreeMap;

const README: &str = include_str!("../../README.md");

/// Key → its description (Markdown emphasis and code quotes taken out); read from the
/// embedded README once.
pub fn descriptions() -> &'static BTreeMap<String, String> {
    static PARSED: std::sync::LazyLock<BTreeMap<String, String>> = std::sync::LazyLock::new(parse);
    &PARSED
}

fn parse() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in README.lines() {
        let Some(row) = line.strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        let [keys, _default, what, ..] = cells.as_slice() else {
            continue;
        };
        let mut section = String::new();
        let mut found = Vec::new();
        for (i, k) in keys.split(" / ").enumerate() {
            let k = k.trim_matches('`');
            if !k
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
                || k.is_empty()
            {
                found.clear();
                break;
            }
            if i == 0 {
                section = k
                    .rsplit_once('.')
                    .map_or(String::new(), |(s, _)| format!("{s}."));
                found.push(k.to_string());
            } else {
                found.push(format!("{section}{k}"));
            }
        }
        let text = what.trim_end_matches(" |").replace(['`', '*'], "");
        for k in found {
            out.entry(k).or_insert_with(|| text.clone());
        }
    }
    out
}

/// The dotted keys of every value in a configuration (`server.listen`, …).
pub fn keys(config: &super::Config) -> Vec<String> {
    fn leaves(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&key, x, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(config) {
        leaves("", &v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configuration_key_is_described_in_the_readme() {
        let d = descriptions();
        let keys = keys(&super::super::Config::default());
        assert!(keys.len() > 70, "{keys:?}");
        let missing: Vec<_> = keys.iter().filter(|k| !d.contains_key(*k)).collect();
        assert!(missing.is_empty(), "keys without a README row: {missing:?}");
        assert!(
            d["server.listen"].starts_with("HTTP listener"),
            "{}",
            d["server.listen"]
        );
        assert_eq!(d["alerts.p99_latency_ms"], "Thresholds (see Alerts).");
    }
}

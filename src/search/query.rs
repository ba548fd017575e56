//! The search query language, parsed here rather than by tantivy's parser (which has no
//! single-word `prefix*`): words (all must match), `"phrases"`, `-exclusion` (of a word
//! or phrase), `prefix*`, and `title:` / `body:` scoping (`body:` runs on the index's
//! whole-text field: see `execute`). A syntax error says where it is; in lenient mode the
//! query falls back to its plain words.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Title,
    Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Word(String),
    Phrase(String),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub exclude: bool,
    pub scope: Option<Scope>,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Character position (0-based) in the query.
    pub position: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

/// Parse strictly: any syntax error is returned.
pub fn parse(q: &str) -> Result<Vec<Clause>, SyntaxError> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut clauses = Vec::new();
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut exclude = false;
        if chars[i] == '-' {
            exclude = true;
            i += 1;
            if i >= chars.len() || chars[i].is_whitespace() {
                return Err(SyntaxError {
                    position: start,
                    message: "`-` must be followed by a word or phrase to exclude".into(),
                });
            }
        }
        // field: scope
        let mut scope = None;
        let word_end = (i..chars.len())
            .find(|&j| chars[j].is_whitespace() || chars[j] == '"')
            .unwrap_or(chars.len());
        if let Some(colon) = (i..word_end).find(|&j| chars[j] == ':') {
            let field: String = chars[i..colon].iter().collect();
            scope = Some(match field.as_str() {
                "title" => Scope::Title,
                "body" => Scope::Body,
                _ => {
                    return Err(SyntaxError {
                        position: i,
                        message: format!("unknown field `{field}` (fields: title, body)"),
                    });
                }
            });
            i = colon + 1;
            if i >= chars.len() || chars[i].is_whitespace() {
                return Err(SyntaxError {
                    position: colon,
                    message: format!("`{field}:` must be followed by a word or phrase"),
                });
            }
        }
        let kind = if chars[i] == '"' {
            let open = i;
            let close = (i + 1..chars.len()).find(|&j| chars[j] == '"');
            let Some(close) = close else {
                return Err(SyntaxError {
                    position: open,
                    message: "unterminated phrase (missing closing `\"`)".into(),
                });
            };
            let text: String = chars[open + 1..close].iter().collect();
            i = close + 1;
            if text.trim().is_empty() {
                return Err(SyntaxError {
                    position: open,
                    message: "empty phrase".into(),
                });
            }
            Kind::Phrase(text)
        } else {
            let end = (i..chars.len())
                .find(|&j| chars[j].is_whitespace())
                .unwrap_or(chars.len());
            let word: String = chars[i..end].iter().collect();
            if word.contains('"') {
                return Err(SyntaxError {
                    position: i + word
                        .find('"')
                        .map(|b| word[..b].chars().count())
                        .unwrap_or(0),
                    message: "`\"` inside a word; put phrases in quotes with spaces around them"
                        .into(),
                });
            }
            i = end;
            match word.strip_suffix('*') {
                Some(p) if p.is_empty() || p.contains('*') => {
                    return Err(SyntaxError {
                        position: start,
                        message: "`*` must end a word of at least one letter (`data*`)".into(),
                    });
                }
                Some(p) => Kind::Prefix(p.to_string()),
                None if word.contains('*') => {
                    return Err(SyntaxError {
                        position: start,
                        message: "`*` is only allowed at the end of a word".into(),
                    });
                }
                None => Kind::Word(word),
            }
        };
        clauses.push(Clause {
            exclude,
            scope,
            kind,
        });
    }
    if !clauses.iter().any(|c| !c.exclude) {
        return Err(SyntaxError {
            position: 0,
            message: "the query needs at least one word to search for".into(),
        });
    }
    Ok(clauses)
}

/// Lenient mode: the strict parse, or on error the plain words of the query (syntax
/// characters dropped) together with the error that caused the fallback.
pub fn parse_lenient(q: &str) -> (Vec<Clause>, Option<SyntaxError>) {
    match parse(q) {
        Ok(c) => (c, None),
        Err(e) => {
            let clauses = q
                .split(|c: char| c.is_whitespace() || "\"*:-".contains(c))
                .filter(|w| !w.is_empty())
                .map(|w| Clause {
                    exclude: false,
                    scope: None,
                    kind: Kind::Word(w.to_string()),
                })
                .collect();
            (clauses, Some(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Clause {
        Clause {
            exclude: false,
            scope: None,
            kind: Kind::Word(s.into()),
        }
    }

    #[test]
    fn full_language() {
        let c = parse(r#"rust "async io" -python title:guide body:"wal mode" data* -"old stuff""#)
            .unwrap();
        assert_eq!(c.len(), 7);
        assert_eq!(c[0], w("rust"));
        assert_eq!(c[1].kind, Kind::Phrase("async io".into()));
        assert!(c[2].exclude && c[2].kind == Kind::Word("python".into()));
        assert_eq!(c[3].scope, Some(Scope::Title));
        assert_eq!(c[4].scope, Some(Scope::Body));
        assert_eq!(c[4].kind, Kind::Phrase("wal mode".into()));
        assert_eq!(c[5].kind, Kind::Prefix("data".into()));
        assert!(c[6].exclude && c[6].kind == Kind::Phrase("old stuff".into()));
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            ("rust \"async", 5, "unterminated"),
            ("colour:red", 0, "unknown field `colour`"),
            ("a title:", 7, "must be followed"),
            ("a - b", 2, "`-` must be followed"),
            ("*", 0, "`*`"),
            ("da*ta", 0, "only allowed at the end"),
            ("-only", 0, "at least one word"),
            ("", 0, "at least one word"),
        ];
        for (q, pos, msg) in cases {
            let e = parse(q).unwrap_err();
            assert_eq!(e.position, pos, "{q}: {e}");
            assert!(e.message.contains(msg), "{q}: {e}");
        }
    }

    #[test]
    fn positions_count_characters() {
        let e = parse("héllo \"open").unwrap_err();
        assert_eq!(e.position, 6);
    }

    #[test]
    fn lenient_falls_back_to_words() {
        let (c, err) = parse_lenient("rust \"async");
        assert!(err.is_some());
        assert_eq!(c, vec![w("rust"), w("async")]);
        let (c, err) = parse_lenient("plain words");
        assert!(err.is_none());
        assert_eq!(c.len(), 2);
    }
}

//! Scrubbing: personal data and secrets out of a message before it is stored, logged
//! to Sentry or shown.

/// Remove personal data and secrets from a message: email addresses, API tokens,
/// bearer credentials, long hex or base64 secrets, IP addresses, and anything after
/// `password=` / `token=` / `secret=`. Bounded to 2,000 characters.
pub fn scrub(message: &str) -> String {
    let mut out = Vec::new();
    let mut redact_next = false;
    for word in message.split_inclusive(|c: char| c.is_whitespace()) {
        let (core, tail) = split_trailing_ws(word);
        if redact_next {
            redact_next = false;
            out.push(format!("[redacted]{tail}"));
            continue;
        }
        if core.eq_ignore_ascii_case("bearer") {
            redact_next = true;
            out.push(word.to_string());
            continue;
        }
        out.push(format!("{}{tail}", scrub_word(core)));
    }
    let s: String = out.concat();
    if s.chars().count() > 2000 {
        s.chars().take(2000).collect::<String>() + "…"
    } else {
        s
    }
}

fn split_trailing_ws(w: &str) -> (&str, &str) {
    let trimmed = w.trim_end();
    (trimmed, &w[trimmed.len()..])
}

fn scrub_word(word: &str) -> String {
    // Keys whose value is secret: everything after the `=` / `:` goes.
    for key in [
        "password", "passwd", "token", "secret", "api_key", "apikey", "dsn",
    ] {
        let lower = word.to_ascii_lowercase();
        if let Some(pos) = lower.find(key) {
            let rest = &word[pos + key.len()..];
            if let Some(sep) = rest.find(['=', ':'])
                && sep <= 2
            {
                return format!("{}[redacted]", &word[..pos + key.len() + sep + 1]);
            }
        }
    }
    // Split on punctuation that commonly surrounds values, scrub the pieces.
    let mut out = String::with_capacity(word.len());
    let mut piece = String::new();
    for c in word.chars() {
        if matches!(
            c,
            '"' | '\''
                | '`'
                | '('
                | ')'
                | '['
                | ']'
                | '<'
                | '>'
                | ','
                | ';'
                | '/'
                | '='
                | '{'
                | '}'
        ) {
            out.push_str(&scrub_piece(&piece));
            piece.clear();
            out.push(c);
        } else {
            piece.push(c);
        }
    }
    out.push_str(&scrub_piece(&piece));
    out
}

fn scrub_piece(p: &str) -> String {
    if p.is_empty() {
        return String::new();
    }
    if let Some((local, domain)) = p.split_once('@')
        && !local.is_empty()
        && domain.contains('.')
    {
        return "[email]".into();
    }
    if p.starts_with(crate::domain::TOKEN_PREFIX) {
        return "[token]".into();
    }
    let hexish = p.chars().filter(char::is_ascii_hexdigit).count();
    if p.len() >= 24 && hexish == p.len() {
        return "[secret]".into();
    }
    let b64ish = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_'));
    let has_digit = p.chars().any(|c| c.is_ascii_digit());
    let has_alpha = p.chars().any(|c| c.is_ascii_alphabetic());
    if p.len() >= 32 && b64ish && has_digit && has_alpha {
        return "[secret]".into();
    }
    let trimmed = p.trim_end_matches(['.', ':']);
    if trimmed.parse::<std::net::IpAddr>().is_ok()
        || trimmed.parse::<std::net::SocketAddr>().is_ok()
    {
        return format!("[ip]{}", &p[trimmed.len()..]);
    }
    p.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_personal_data_and_secrets() {
        let token = crate::auth::new_api_token().token;
        let msg = format!(
            "user Alice.Smith@example.org (from 203.0.113.9:5555) sent {token} and \
             Authorization: Bearer abc.def password=hunter2hunter2 session 0123456789abcdef0123456789abcdef; \
             path /var/lib/appliance/x failed at row 17"
        );
        let s = scrub(&msg);
        for gone in [
            "Alice",
            "example.org",
            "203.0.113.9",
            &token,
            "abc.def",
            "hunter2",
            "0123456789abcdef",
        ] {
            assert!(!s.contains(gone), "{gone} left in: {s}");
        }
        for kept in [
            "[email]",
            "[ip]",
            "[token]",
            "Bearer [redacted]",
            "password=[redacted]",
            "/var/lib/appliance/x",
            "row 17",
        ] {
            assert!(s.contains(kept), "{kept} missing: {s}");
        }
    }
}

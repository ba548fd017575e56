//! Time as appliance stores and shows it: UTC, RFC 3339 with milliseconds, so that text
//! order is time order. Nothing here reads anything but the system clock.

use time::OffsetDateTime;

/// Now, as stored.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

/// `t` as stored: `2026-12-07T14:08:19.123Z`.
pub fn format(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// A stored (or any RFC 3339) time; none when it does not parse.
pub fn parse(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
}

/// Seconds from the stored time `t` until now (0 for a time in the future).
pub fn age_secs(t: &str) -> Option<f64> {
    parse(t).map(|t| (OffsetDateTime::now_utc() - t).as_seconds_f64().max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_sort_as_text_and_parse_back() {
        let a = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let b = a + time::Duration::milliseconds(1);
        assert_eq!(format(a), "2023-11-14T22:13:20.000Z");
        assert!(format(a) < format(b));
        assert_eq!(parse(&format(b)), Some(b));
        assert_eq!(parse("yesterday"), None);
        assert!(age_secs(&now()).is_some_and(|s| s < 5.0));
    }
}

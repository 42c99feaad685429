use super::*;

// Expected values computed independently with `date -u -d @SECONDS`.

#[test]
fn rfc3339_micros_writes_utc_with_six_fraction_digits() {
    assert_eq!(
        rfc3339_micros(0).as_deref(),
        Some("1970-01-01T00:00:00.000000Z")
    );
    assert_eq!(
        rfc3339_micros(1_795_623_599_123_456).as_deref(),
        Some("2026-11-25T16:19:59.123456Z")
    );
    assert_eq!(
        rfc3339_micros(1_709_164_800_000_001).as_deref(),
        Some("2024-02-29T00:00:00.000001Z")
    );
    // Before the epoch the fraction still counts forwards within the second.
    assert_eq!(
        rfc3339_micros(-1).as_deref(),
        Some("1969-12-31T23:59:59.999999Z")
    );
}

#[test]
fn years_outside_0000_to_9999_have_no_rfc3339_form() {
    assert_eq!(
        rfc3339_secs(253_402_300_799).as_deref(),
        Some("9999-12-31T23:59:59Z")
    );
    assert_eq!(rfc3339_secs(253_402_300_800), None);
    assert_eq!(
        rfc3339_secs(-62_167_219_200).as_deref(),
        Some("0000-01-01T00:00:00Z")
    );
    assert_eq!(rfc3339_secs(-62_167_219_201), None);
    assert_eq!(rfc3339_micros(i64::MAX), None);
    assert_eq!(rfc3339_micros(i64::MIN), None);
    assert_eq!(leef_dev_time(i64::MAX), None);
}

#[test]
fn leef_dev_time_matches_its_declared_pattern() {
    assert_eq!(
        leef_dev_time(1_795_623_599_123_456).as_deref(),
        Some("Nov 25 2026 16:19:59.123 GMT")
    );
    assert_eq!(
        leef_dev_time(1_709_164_800_000_999).as_deref(),
        Some("Feb 29 2024 00:00:00.000 GMT")
    );
}

#[test]
fn epoch_millis_rounds_down() {
    assert_eq!(epoch_millis(1_795_623_599_123_456), 1_795_623_599_123);
    assert_eq!(epoch_millis(-1), -1);
}

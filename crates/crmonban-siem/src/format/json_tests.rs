use super::*;

#[test]
fn del_and_c1_controls_are_escaped_like_the_c0_ones() {
    let origin = Origin::new("h", "0.1.0");
    let mut event = SiemEvent::new(Action::BanRemoved, 0);
    event.reason = "a\u{1}\u{7f}\u{85}\n\u{e9}".to_owned();
    let line = encode(&event, &origin);
    assert!(!line.chars().any(char::is_control), "{line}");
    assert!(
        line.contains("\"reason\":\"a\\u0001\\u007f\\u0085\\n\u{e9}\""),
        "{line}"
    );
    let value: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["event"]["reason"], "a\u{1}\u{7f}\u{85}\n\u{e9}");
}

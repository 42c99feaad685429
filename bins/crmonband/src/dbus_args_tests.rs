//! Property tests of the D-Bus argument checks: any text, of any size and content, gets an
//! answer without a panic, and a refusal stays small and never echoes the argument.

use proptest::prelude::*;

use super::{MAX_NOTE_TEXT, MAX_TARGET_TEXT, bounded_note, parse_target};

/// Text up to a few times the limits, control characters and all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,80}",
        "[\\x00-\\x1f\\x7f0-9a-f.:/ ]{0,80}",
        (1usize..4000).prop_map(|n| "9".repeat(n)),
        (1usize..4000).prop_map(|n| "\u{1b}[2J".repeat(n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn a_target_argument_is_answered_with_a_bounded_error(arg in text()) {
        match parse_target("ip", &arg) {
            Ok(target) => prop_assert!(arg.len() <= MAX_TARGET_TEXT && !target.to_string().is_empty()),
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.len() <= 400, "{} bytes", message.len());
                if arg.len() > MAX_TARGET_TEXT {
                    prop_assert!(!message.contains(&arg));
                }
            }
        }
    }

    #[test]
    fn a_reason_is_accepted_only_short_and_printable(arg in text()) {
        match bounded_note("reason", &arg) {
            Ok(note) => {
                prop_assert!(note.len() <= MAX_NOTE_TEXT);
                prop_assert!(!note.chars().any(char::is_control));
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.len() <= 400, "{} bytes", message.len());
                if arg.len() > 8 {
                    prop_assert!(!message.contains(&arg));
                }
            }
        }
    }
}

#[test]
fn a_33_megabyte_argument_is_refused_without_its_text() {
    let huge = "1".repeat(33 << 20);
    for error in [
        parse_target("ip", &huge).unwrap_err().to_string(),
        bounded_note("reason", &huge).unwrap_err().to_string(),
    ] {
        assert!(error.len() < 200, "{error}");
        assert!(error.contains("34603008 bytes"), "{error}");
    }
}

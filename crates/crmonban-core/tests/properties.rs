//! Property tests: configuration and target parsing take any input without panicking, refuse
//! what they cannot read with an error that names where, and never allocate in proportion to
//! hostile numbers (a huge duration, an enormous prefix length).

use crmonban_core::Target;
use crmonban_core::config::Config;
use proptest::prelude::*;

/// Keys of the configuration, so that generated files reach the value parsers.
const KEYS: &[&str] = &[
    "[general]",
    "[nftables]",
    "[services.ssh]",
    "[services.custom]",
    "[whitelist]",
    "[zones]",
    "[intel]",
    "[siem]",
    "[ebpf]",
    "db_path",
    "log_level",
    "default_ban_duration",
    "ban_time_increment",
    "max_ban_time",
    "max_tracked_addresses",
    "history_days",
    "max_event_rows",
    "table_name",
    "priority",
    "enabled",
    "max_failures",
    "find_time",
    "ban_time",
    "log_path",
    "journal_match",
    "source",
    "ipv6_prefix",
    "patterns",
    "networks",
    "regex",
];

/// Values of many shapes, hostile ones included.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        "[ -~]{0,40}".prop_map(|s| format!("{s:?}")),
        Just("\"10.0.0.0/8\"".to_owned()),
        Just("[\"::/0\", \"192.0.2.1/33\"]".to_owned()),
        Just("\"(a+)+$\"".to_owned()),
        Just("\"1e400\"".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]".to_owned()),
        Just("{ a = { b = { c = 1 } } }".to_owned()),
    ]
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        (proptest::sample::select(KEYS), value()).prop_map(|(k, v)| if k.starts_with('[') {
            k.to_owned()
        } else {
            format!("{k} = {v}")
        }),
        "[^\n]{0,60}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn config_parsing_never_panics(lines in proptest::collection::vec(line(), 0..30)) {
        let text = lines.join("\n");
        if let Err(errors) = Config::from_toml_str(&text, "config.toml") {
            // Every error names the file and a line.
            let message = errors.to_string();
            prop_assert!(message.contains("config.toml"), "{}", message);
        }
    }

    #[test]
    fn config_parsing_takes_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Config::from_toml_str(&text, "config.toml");
    }

    #[test]
    fn target_parsing_never_panics_and_round_trips(text in "[0-9a-fA-F:./%x \\[\\]-]{0,50}") {
        if let Ok(target) = Target::parse(&text) {
            // What parses prints in a canonical form that parses to the same target.
            prop_assert_eq!(Target::parse(&target.to_string()).unwrap(), target);
        }
    }

    #[test]
    fn any_address_or_network_round_trips(addr in any::<std::net::IpAddr>(), prefix in 0u8..=128) {
        let text = format!("{addr}/{prefix}");
        if let Ok(target) = Target::parse(&text) {
            prop_assert_eq!(Target::parse(&target.to_string()).unwrap(), target);
        }
        let single = Target::parse(&addr.to_string()).unwrap();
        prop_assert_eq!(Target::parse(&single.to_string()).unwrap(), single);
    }
}

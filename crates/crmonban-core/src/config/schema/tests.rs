//! Tests of the schema's types: durations, defaults and their arithmetic.

use super::*;

#[test]
fn regex_errors_fit_on_one_line_and_point_at_the_problem() {
    let err = Pattern::new("p", "Failed (?P<ip", EventKind::FailedAuth).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid regex: unclosed capture group name (at character 14)"
    );
    let err = Pattern::new("p", "a\nb(", EventKind::FailedAuth).unwrap_err();
    assert_eq!(err.to_string(), "invalid regex: unclosed group");
    assert_eq!(
        Pattern::new("p", r"from (\S+)", EventKind::FailedAuth).unwrap_err(),
        PatternError::NoIpGroup
    );
    assert!(Pattern::new("p", r"from (?<ip>\S+)", EventKind::FailedAuth).is_ok());
}

#[test]
fn nft_names_follow_nft_identifier_rules() {
    assert!(NftName::new("blocked_v4").is_ok());
    assert!(NftName::new("_x-1").is_ok());
    assert_eq!(NftName::new(""), Err(NftNameError::Empty));
    assert!(matches!(NftName::new("4x"), Err(NftNameError::BadStart(_))));
    assert!(matches!(
        NftName::new("a b"),
        Err(NftNameError::BadChar { bad: ' ', .. })
    ));
    assert!(matches!(
        NftName::new(&"a".repeat(65)),
        Err(NftNameError::TooLong(_))
    ));
    assert_eq!(NftName::known("blocked_v4").net_set(), "blocked_v4_net");
}

#[test]
fn journal_matches_follow_journalctl_syntax() {
    let m = JournalMatch::parse("_SYSTEMD_UNIT=ssh.service + SYSLOG_IDENTIFIER=sshd").unwrap();
    assert_eq!(m.terms().len(), 3);
    assert_eq!(
        m.to_string(),
        "_SYSTEMD_UNIT=ssh.service + SYSLOG_IDENTIFIER=sshd"
    );
    assert_eq!(JournalMatch::parse("  "), Err(JournalMatchError::Empty));
    assert_eq!(
        JournalMatch::parse("+ A=b"),
        Err(JournalMatchError::MisplacedOr)
    );
    assert_eq!(
        JournalMatch::parse("A=b +"),
        Err(JournalMatchError::MisplacedOr)
    );
    assert!(matches!(
        JournalMatch::parse("ssh"),
        Err(JournalMatchError::NotAMatch(_))
    ));
    assert!(matches!(
        JournalMatch::parse("unit=ssh"),
        Err(JournalMatchError::BadField(_))
    ));
}

#[test]
fn ban_durations_use_zero_for_permanent() {
    assert_eq!(BanDuration::from_secs(0), BanDuration::Permanent);
    assert_eq!(BanDuration::from_secs(60).as_secs(), 60);
    assert_eq!(BanDuration::Permanent.duration(), None);
    assert_eq!(BanDuration::from_secs(60).to_string(), "1m");
    assert_eq!(BanDuration::from_secs(5400).to_string(), "1h 30m");
    assert_eq!(BanDuration::Permanent.to_string(), "permanent");
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let s = Secret::new("hunter2");
    assert!(!format!("{s:?}").contains("hunter2"));
    assert_eq!(s.expose(), "hunter2");
}

#[test]
fn choices_list_the_allowed_values() {
    assert_eq!("warn".parse::<LogLevel>(), Ok(LogLevel::Warn));
    let err = "verbose".parse::<LogLevel>().unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"must be one of "trace", "debug", "info", "warn", "error"; found "verbose""#
    );
    assert_eq!(EbpfMethod::ALL.len(), EbpfMethod::NAMES.len());
}

use super::*;

fn origin(hostname: &str) -> Origin {
    Origin {
        hostname: hostname.to_owned(),
        app_name: "crmonband".to_owned(),
        procid: 4242,
        version: "0.1.0".to_owned(),
    }
}

#[test]
fn pri_is_facility_times_eight_plus_the_action_severity() {
    let event = SiemEvent::new(Action::BanAdded, 0);
    assert!(
        encode(&event, &origin("h"), 4)
            .starts_with("<36>1 1970-01-01T00:00:00.000000Z h crmonband 4242 ban-added [")
    );
    assert!(encode(&event, &origin("h"), 23).starts_with("<188>1 "));
    // An impossible facility falls back to auth rather than writing PRI > 191.
    assert!(encode(&event, &origin("h"), 200).starts_with("<36>1 "));
}

#[test]
fn header_fields_are_printable_ascii_within_their_lengths() {
    let event = SiemEvent::new(Action::DaemonStarted, 0);
    let line = encode(&event, &origin(""), 4);
    assert!(
        line.starts_with("<38>1 1970-01-01T00:00:00.000000Z - crmonband 4242 daemon-started "),
        "{line}"
    );
    let long = format!("a b\u{e9}{}", "h".repeat(300));
    let line = encode(&event, &origin(&long), 4);
    let host = line.split(' ').nth(2).unwrap();
    assert_eq!(host.len(), 255);
    assert!(host.starts_with("a_b_hhh"), "{host}");
}

#[test]
fn param_values_escape_quote_backslash_bracket_and_controls() {
    let mut event = SiemEvent::new(Action::BanRemoved, 0);
    event.reason = "a\"b\\c]d\ne\u{85}".to_owned();
    let line = encode(&event, &origin("h"), 4);
    assert!(
        line.contains(" reason=\"a\\\"b\\\\c\\]d#012e#205\" "),
        "{line}"
    );
    // The MSG carries the sentence, non-ASCII after the BOM only; here NEL (a C1 control)
    // was made visible, so the MSG is ASCII and has no BOM.
    assert!(line.ends_with("] unbanned -: a\"b\\c]d#012e#205"), "{line}");
}

#[test]
fn the_sentence_starts_with_a_bom_only_when_it_holds_non_ascii_text_and_bodies_never() {
    let mut event = SiemEvent::new(Action::WhitelistAdded, 0);
    event.reason = "caf\u{e9}".to_owned();
    assert!(encode(&event, &origin("h"), 4).ends_with("] \u{feff}whitelisted -: caf\u{e9}"));
    event.reason = "cafe".to_owned();
    assert!(encode(&event, &origin("h"), 4).ends_with("] whitelisted -: cafe"));
    assert!(wrap(&event, &origin("h"), 4, "LEEF:2.0|a\tb\u{1}").ends_with(" - LEEF:2.0|a\tb#001"));
    // A body in its own format starts MSG as it is: `CEF:`, `LEEF:` or `{` first.
    assert!(
        wrap(
            &event,
            &origin("h"),
            4,
            "CEF:0|a|b|1|x|y|5|reason=caf\u{e9}"
        )
        .ends_with(" - CEF:0|a|b|1|x|y|5|reason=caf\u{e9}")
    );
}

#[test]
fn the_local_form_is_what_syslog3_writes() {
    let mut event = SiemEvent::new(Action::BanAdded, 0);
    event.target = Some(crmonban_core::Target::parse("203.0.113.5").unwrap());
    event.reason = "line\nbreak".to_owned();
    let origin = origin("h");
    // authpriv (10) × 8 + warning (4); no timestamp or host: the local daemon adds them.
    let line = local(&event, &origin, 10, "CEF:0|a\tb\u{1}");
    assert_eq!(
        line,
        format!("<84>crmonband[{}]: CEF:0|a\tb#001", origin.procid)
    );
    let body = structured_text(&event, &origin);
    assert!(
        body.starts_with("[crmonban@32473 action=\"ban-added\""),
        "{body}"
    );
    assert!(
        body.ends_with("] banned 203.0.113.5 permanently: line#012break"),
        "{body}"
    );
}

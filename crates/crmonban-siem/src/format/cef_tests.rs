use super::*;

fn origin() -> Origin {
    Origin {
        hostname: "web1".to_owned(),
        app_name: "crmonband".to_owned(),
        procid: 7,
        version: "1.0|rc\\1".to_owned(),
    }
}

#[test]
fn header_escapes_pipe_and_backslash_and_extension_escapes_equals_and_newlines() {
    let mut event = SiemEvent::new(Action::BanRemoved, 1_000_000);
    event.reason = "a=b\\c|d\r\ne\tf".to_owned();
    let line = encode(&event, &origin());
    assert!(
        line.starts_with("CEF:0|crmonban|crmonban|1.0\\|rc\\\\1|ban-removed|Ban removed|3|"),
        "{line}"
    );
    assert!(line.contains(" reason=a\\=b\\\\c|d\\r\\ne#011f "), "{line}");
    assert!(line.ends_with(" cnt=1"), "{line}");
}

#[test]
fn ipv6_targets_go_to_c6a2_and_networks_only_to_cs4() {
    let mut event = SiemEvent::new(Action::BanAdded, 0);
    event.target = Some(Target::parse("2001:db8::7").unwrap());
    let line = encode(&event, &origin());
    assert!(
        line.contains(" c6a2=2001:db8::7 c6a2Label=Source IPv6 Address "),
        "{line}"
    );
    assert!(!line.contains(" src="), "{line}");

    event.target = Some(Target::parse("198.51.100.0/24").unwrap());
    let line = encode(&event, &origin());
    assert!(!line.contains(" src=") && !line.contains("c6a2"), "{line}");
    assert!(
        line.contains(" cs4Label=Target cs4=198.51.100.0/24 "),
        "{line}"
    );
    assert!(line.contains(" cs5Label=Ban Type cs5=permanent "), "{line}");
}

use super::*;

fn row(ip: &str, jail: &str, timeofban: i64, bantime: Option<i64>) -> Row {
    Row {
        ip: ip.into(),
        jail: jail.into(),
        timeofban,
        bantime,
    }
}

#[test]
fn active_bans_with_their_time_left() {
    let now = 1_000_000;
    let rows = [
        row("192.0.2.1", "sshd", now - 100, Some(600)),
        row("192.0.2.2", "sshd", now - 700, Some(600)),
        row("192.0.2.3", "recidive", now - 100_000, Some(-1)),
        // Banned by two jails: the longer ban is sent.
        row("192.0.2.4", "sshd", now - 10, Some(600)),
        row("192.0.2.4", "recidive", now - 10, Some(604_800)),
        // Unknown length: the jail's bantime, if known.
        row("192.0.2.5", "nginx-http-auth", now - 10, Some(-2)),
        row("192.0.2.6", "gone", now - 10, None),
        row("192.0.2.7", "sshd", now - 600, Some(600)),
    ];
    let found = active(&rows, now, |jail| {
        (jail == "nginx-http-auth").then_some(BanLength::Secs(3600))
    });
    assert_eq!(
        found.bans.into_iter().collect::<Vec<_>>(),
        [
            ("192.0.2.1".to_owned(), ("sshd".to_owned(), Left::Secs(500))),
            (
                "192.0.2.3".to_owned(),
                ("recidive".to_owned(), Left::Permanent)
            ),
            (
                "192.0.2.4".to_owned(),
                ("recidive".to_owned(), Left::Secs(604_790))
            ),
            (
                "192.0.2.5".to_owned(),
                ("nginx-http-auth".to_owned(), Left::Secs(3590))
            ),
        ]
    );
    assert_eq!((found.rows, found.expired, found.unknown), (8, 2, 1));
}

#[test]
fn reasons_are_bounded_and_on_one_line() {
    assert_eq!(reason("sshd"), "fail2ban:sshd");
    assert_eq!(reason("a\nb"), "fail2ban:ab");
    assert_eq!(reason(&"x".repeat(1000)).len(), MAX_NOTE_TEXT);
}

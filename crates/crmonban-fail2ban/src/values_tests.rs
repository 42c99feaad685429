use super::*;

#[test]
fn time_expressions_as_fail2ban_reads_them() {
    for (text, secs) in [
        ("600", 600.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1d", 86_400.0),
        ("1w", 604_800.0),
        ("48h", 172_800.0),
        ("1h 30m", 5400.0),
        ("1h30m", 5400.0),
        ("0d 1h 30m", 5400.0),
        ("1hour+30min", 5400.0),
        ("1 h", 3600.0),
        ("-1", -1.0),
        ("1mo", 2_629_800.0),
        ("1y", 31_557_600.0),
        ("1year-6mo", 15_778_800.0),
        ("6 months", 15_778_800.0),
        ("24*60*60", 86_400.0),
        ("1.5h", 5400.0),
        ("2 Weeks", 1_209_600.0),
    ] {
        assert_eq!(seconds(text), Ok(secs), "{text}");
    }
    for (text, why) in [
        ("", "empty"),
        ("soon", "\"soon\" is not a time unit"),
        ("1h)", "unexpected Op(')')"),
        ("(1h", "a `(` is not closed"),
        ("1/0", "division by zero"),
        ("5%", "unexpected '%'"),
    ] {
        assert_eq!(seconds(text), Err(why.to_owned()), "{text}");
    }
}

#[test]
fn booleans_and_words() {
    for yes in ["true", "True", "yes", "on", "1", " true "] {
        assert!(boolean(yes), "{yes}");
    }
    for no in ["false", "no", "0", "", "enabled", "y"] {
        assert!(!boolean(no), "{no}");
    }
    assert_eq!(
        words("127.0.0.1/8 ::1,192.0.2.0/24\n  host.example.org"),
        ["127.0.0.1/8", "::1", "192.0.2.0/24", "host.example.org"]
    );
}

#[test]
fn invocations_with_options() {
    let i = invocation("postfix[mode=more]").unwrap();
    assert_eq!(
        (i.name.as_str(), i.option("mode")),
        ("postfix", Some("more"))
    );
    let i = invocation(
        "iptables-multiport[name=sshd, port=\"22,2222\", protocol='tcp', chain=\"INPUT\"]",
    )
    .unwrap();
    assert_eq!(i.name, "iptables-multiport");
    assert_eq!(
        i.options,
        [
            ("name".to_owned(), "sshd".to_owned()),
            ("port".to_owned(), "22,2222".to_owned()),
            ("protocol".to_owned(), "tcp".to_owned()),
            ("chain".to_owned(), "INPUT".to_owned()),
        ]
    );
    let i = invocation("act[a=1][b=2]").unwrap();
    assert_eq!((i.option("a"), i.option("b")), (Some("1"), Some("2")));
    assert_eq!(invocation("systemd").unwrap().options, []);
    assert!(invocation("act[a=1").is_err());
    assert!(invocation("act[a=\"1]").is_err());
    assert!(invocation("[a=1]").is_err());

    let text = "iptables-multiport[name=sshd, port=\"ssh\", protocol=\"tcp\"]\n\
                sendmail-whois[name=sshd, dest=\"root@localhost\",\n    sender=\"f2b@x\"]\n\
                abuseipdb  nftables [type=allports]";
    assert_eq!(
        invocations(text),
        [
            "iptables-multiport[name=sshd, port=\"ssh\", protocol=\"tcp\"]",
            "sendmail-whois[name=sshd, dest=\"root@localhost\",\n    sender=\"f2b@x\"]",
            "abuseipdb",
            "nftables[type=allports]",
        ]
    );
}

#[test]
fn port_lists() {
    assert_eq!(ports("ssh"), Ok(Ports::List(vec![22])));
    assert_eq!(ports("http,https"), Ok(Ports::List(vec![80, 443])));
    assert_eq!(
        ports("smtp,465,submission"),
        Ok(Ports::List(vec![25, 465, 587]))
    );
    assert_eq!(ports("2222, ssh"), Ok(Ports::List(vec![2222, 22])));
    assert_eq!(ports("0:65535"), Ok(Ports::All));
    assert_eq!(ports("8000:8100"), Err("the range 8000:8100".to_owned()));
    assert_eq!(ports("gopher"), Err("the port name \"gopher\"".to_owned()));
}

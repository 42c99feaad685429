use super::*;

fn file() -> Arc<Path> {
    Arc::from(Path::new("/etc/fail2ban/jail.local"))
}

fn values(options: &Options) -> Vec<(&str, &str, usize)> {
    options
        .iter()
        .map(|(k, v)| (k.as_str(), v.text.as_str(), v.origin.line))
        .collect()
}

#[test]
fn sections_keys_continuations_and_comments() {
    let text = "\
# a comment
[DEFAULT]
; another comment
ignoreip = 127.0.0.1/8 ::1
           192.0.2.0/24 ; inline comment

           # a comment inside the value is skipped
           198.51.100.7
BanTime: 1h

[sshd]
enabled = true
port=2222;no blank before the semicolon: part of the value
logpath = %(sshd_log)s

[recidive]  
";
    let parsed = parse(&file(), text).unwrap();
    assert_eq!(
        values(&parsed.defaults),
        vec![
            (
                "ignoreip",
                "127.0.0.1/8 ::1\n192.0.2.0/24\n\n198.51.100.7",
                4
            ),
            ("bantime", "1h", 9),
        ]
    );
    assert_eq!(parsed.sections.len(), 2);
    assert_eq!(
        values(parsed.section("sshd").unwrap()),
        vec![
            ("enabled", "true", 12),
            (
                "port",
                "2222;no blank before the semicolon: part of the value",
                13
            ),
            ("logpath", "%(sshd_log)s", 14),
        ]
    );
    assert!(parsed.section("recidive").unwrap().is_empty());
    assert_eq!(parsed.defaults[0].1.section, "DEFAULT");
    assert_eq!(parsed.section("sshd").unwrap()[0].1.section, "sshd");
}

#[test]
fn errors_name_the_line() {
    let cases = [
        (
            "enabled = true\n",
            1,
            "a setting before any [section] header",
        ),
        (
            "[sshd]\nenabled = true\nenabled = false\n",
            3,
            "`enabled` is set twice in section [sshd] of this file",
        ),
        (
            "[sshd]\n[nginx]\n[sshd]\n",
            3,
            "section [sshd] appears twice in this file",
        ),
        (
            "[sshd]\nthis is not a setting\n",
            2,
            "expected `key = value` or a [section] header, found \"this is not a setting\"",
        ),
        ("[sshd]\n= 5\n", 2, "no key before `=` in \"= 5\""),
    ];
    for (text, line, message) in cases {
        let e = parse(&file(), text).unwrap_err();
        assert_eq!(
            (e.origin.line, e.message.as_str()),
            (line, message),
            "{text}"
        );
        assert_eq!(
            e.to_string(),
            format!("/etc/fail2ban/jail.local:{line}: {message}")
        );
    }
}

#[test]
fn default_may_appear_twice_but_not_its_keys() {
    let ok = parse(&file(), "[DEFAULT]\na = 1\n[sshd]\n[DEFAULT]\nb = 2\n").unwrap();
    assert_eq!(ok.defaults.len(), 2);
    let e = parse(&file(), "[DEFAULT]\na = 1\n[DEFAULT]\na = 2\n").unwrap_err();
    assert_eq!(e.origin.line, 4);
}

use super::*;

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn get(config: &JailConfig, section: &str, key: &str) -> Option<String> {
    config.get(section, key).unwrap().map(|r| r.text)
}

#[test]
fn reading_order_includes_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "jail.conf",
        "[INCLUDES]\nbefore = paths-test.conf\n[DEFAULT]\nbantime = 10m\nbackend = auto\n\
         [sshd]\nport = ssh\nlogpath = %(sshd_log)s\nbackend = %(sshd_backend)s\n",
    );
    write(
        d,
        "paths-test.conf",
        "[INCLUDES]\nbefore = paths-common.conf\nafter = paths-overrides.local\n\
         [DEFAULT]\nsyslog_authpriv = /var/log/auth.log\n",
    );
    write(
        d,
        "paths-common.conf",
        "[DEFAULT]\ndefault_backend = %(default/backend)s\nsyslog_authpriv = /var/log/secure\n\
         sshd_log = %(syslog_authpriv)s\nsshd_backend = %(default_backend)s\n",
    );
    write(d, "jail.d/b.conf", "[sshd]\nenabled = true\n");
    write(d, "jail.d/a.conf", "[sshd]\nenabled = false\nport = 2222\n");
    write(d, "jail.d/.hidden.conf", "this is not read\n");
    write(
        d,
        "jail.local",
        "[DEFAULT]\nbackend = systemd\n[sshd]\nport = %(known/port)s,2223\n",
    );
    write(d, "jail.d/z.local", "[sshd]\nmaxretry = 3\n");
    let config = JailConfig::read(d).unwrap();
    let names: Vec<String> = config
        .files
        .iter()
        .map(|f| f.strip_prefix(d).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "paths-common.conf",
            "paths-test.conf",
            "jail.conf",
            "jail.d/a.conf",
            "jail.d/b.conf",
            "jail.local",
            "jail.d/z.local",
        ]
    );
    assert_eq!(config.jails().collect::<Vec<_>>(), ["sshd"]);
    assert_eq!(get(&config, "sshd", "enabled").as_deref(), Some("true"));
    assert_eq!(get(&config, "sshd", "port").as_deref(), Some("2222,2223"));
    assert_eq!(get(&config, "sshd", "maxretry").as_deref(), Some("3"));
    assert_eq!(
        get(&config, "sshd", "logpath").as_deref(),
        Some("/var/log/auth.log")
    );
    // jail.local's [DEFAULT] backend reaches sshd through %(default/backend)s.
    assert_eq!(get(&config, "sshd", "backend").as_deref(), Some("systemd"));
    assert_eq!(get(&config, "sshd", "bantime").as_deref(), Some("10m"));
    assert_eq!(get(&config, "sshd", "nothing"), None);
    let raw = config.get("sshd", "port").unwrap().unwrap().raw;
    assert_eq!(
        (raw.origin.to_string(), raw.section.as_str()),
        (format!("{}:4", d.join("jail.local").display()), "sshd")
    );
}

#[test]
fn interpolation_names_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "jail.local",
        "[DEFAULT]\nfilter = %(__name__)s[mode=%(mode)s]\nmode = normal\nloop = %(loop)s\n\
         [nginx-http-auth]\nfilter = %(__name__)s\nother = %(postfix/mode)s\n\
         percent = 100%%\nmissing = %(nowhere)s\nbad = 5%\n\
         [postfix]\nmode = more\n",
    );
    let config = JailConfig::read(d).unwrap();
    assert_eq!(
        get(&config, "postfix", "filter").as_deref(),
        Some("postfix[mode=more]")
    );
    assert_eq!(
        get(&config, "nginx-http-auth", "filter").as_deref(),
        Some("nginx-http-auth")
    );
    assert_eq!(
        get(&config, "nginx-http-auth", "other").as_deref(),
        Some("more")
    );
    assert_eq!(
        get(&config, "nginx-http-auth", "percent").as_deref(),
        Some("100%")
    );
    assert_eq!(
        config
            .get("nginx-http-auth", "missing")
            .unwrap_err()
            .to_string(),
        "%(nowhere)s is not defined"
    );
    assert_eq!(
        config
            .get("nginx-http-auth", "bad")
            .unwrap_err()
            .to_string(),
        "`%` must be followed by `%` or `(name)s`, found \"%\""
    );
    assert!(
        config
            .get("postfix", "loop")
            .unwrap_err()
            .to_string()
            .contains("nested more than 10 deep")
    );
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = JailConfig::read(dir.path()).unwrap_err();
    assert!(e.to_string().contains("no jail.conf, jail.local"), "{e}");
    write(dir.path(), "jail.local", "[sshd]\nenabled\n");
    let e = JailConfig::read(dir.path()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2: expected `key = value` or a [section] header, found \"enabled\"",
            dir.path().join("jail.local").display()
        )
    );
}

use super::*;

#[test]
fn paths_drop_head_and_tail() {
    assert_eq!(
        paths("/var/log/a.log\n  /var/log/b.log tail\n\n/var/log/c.log head"),
        ["/var/log/a.log", "/var/log/b.log", "/var/log/c.log"]
    );
}

#[test]
fn wildcards() {
    for (pattern, name, hit) in [
        ("*error.log", "error.log", true),
        ("*error.log", "example.org-error.log", true),
        ("*error.log", "access.log", false),
        ("tomcat*", "tomcat9", true),
        ("L[0-9]*.log", "L42.log", true),
        ("L[0-9]*.log", "Lx.log", false),
        ("[!a]b", "cb", true),
        ("[!a]b", "ab", false),
        ("?.log", "a.log", true),
        ("?.log", "ab.log", false),
    ] {
        assert_eq!(
            wildcard(pattern.as_bytes(), name.as_bytes()),
            hit,
            "{pattern} {name}"
        );
    }
}

#[test]
fn one_file_is_chosen_and_the_rest_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("nginx")).unwrap();
    for name in [
        "error.log",
        "example.org-error.log",
        "access.log",
        ".hidden-error.log",
    ] {
        std::fs::write(d.join("nginx").join(name), "").unwrap();
    }
    let glob = format!("{}/nginx/*error.log", d.display());
    let own = d.join("nginx/error.log");
    let chosen = choose(&glob, Some(&own));
    assert_eq!(chosen.path, Some(own.display().to_string()));
    assert_eq!(
        chosen.problems,
        [(
            glob.clone(),
            format!(
                "a glob matching 2 files: reading {}; not read: {} (crmonban reads one file \
                 per service)",
                own.display(),
                d.join("nginx/example.org-error.log").display()
            ),
            true
        )]
    );

    let missing = format!("{}/apache2/*error.log", d.display());
    let fallback = d.join("apache2/error.log");
    let chosen = choose(
        &format!("{missing}\n/var/log/second.log\nrelative.log"),
        Some(&fallback),
    );
    assert_eq!(chosen.path, Some(fallback.display().to_string()));
    assert_eq!(chosen.problems.len(), 3, "{chosen:?}");
    assert!(
        chosen.problems[0]
            .1
            .contains("matching no file now: reading")
    );
    assert!(!chosen.problems[0].2);
    assert_eq!(
        chosen.problems[1],
        (
            "/var/log/second.log".to_owned(),
            format!(
                "not read: crmonban reads one file per service, and reads {} for this one",
                fallback.display()
            ),
            true
        )
    );
    assert_eq!(chosen.problems[2].0, "relative.log");

    let chosen = choose(&format!("{}/nothing/*.log", d.display()), None);
    assert_eq!(chosen.path, None);
}

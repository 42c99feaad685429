//! crmonband's command line as a user runs it: gen-config, check-config, init.

use std::path::Path;
use std::process::{Command, Output};

use crmonban_testutil::NetNs;

fn crmonband(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crmonband"))
        .args(args)
        .output()
        .expect("run crmonband")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn generated_config_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc/config.toml");
    let path_str = path.to_str().unwrap();
    let out = crmonband(&["gen-config", "-o", path_str]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = crmonband(&["gen-config"]).stdout;
    assert_eq!(
        std::fs::read(&path).unwrap(),
        stdout,
        "-o and stdout must write the same file"
    );

    let refused = crmonband(&["gen-config", "-o", path_str]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("exists; use --force"),
        "{}",
        text(&refused.stderr)
    );

    let out = crmonband(&["-c", path_str, "check-config"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("configuration is valid"));
    assert!(text(&out.stdout).contains("enabled services: ssh"));
    // The generated file describes what this version does: nothing in it is ignored. The one
    // warning it may get is about this machine: no GeoIP database where geoipupdate puts it.
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .filter(|l| l.contains("warning"))
            .all(|l| l.starts_with("warning: intel: GeoIP ")
                && l.contains("is missing: run geoipupdate")),
        "{stdout}"
    );
}

#[test]
fn check_config_reads_the_zones_file_and_warns_about_doubtful_settings() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones.yml");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[general]\nauto_intel = true\n\n[intel]\ngeoip_city_db = \"{1}/absent-city.mmdb\"\n\n\
             [zones]\nenabled = true\nconfig_file = \"{0}\"\n\n\
             [[whitelist.sources]]\ntype = \"zones\"\n\n\
             [[whitelist.sources]]\ntype = \"file\"\npath = \"{1}/absent.txt\"\n\n\
             [siem]\nenabled = true\n\n[ebpf]\nenabled = true\ninterfaces = [\"eth0\"]\n",
            zones.display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let check = || crmonband(&["-c", path.to_str().unwrap(), "check-config"]);

    // Missing zones file: refused, naming it.
    let out = check();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains(&format!("{}: does not exist", zones.display())),
        "{}",
        text(&out.stderr)
    );

    // An error in it: refused with its line.
    std::fs::write(
        &zones,
        "zones:\n  - name: all\n    trust_level: 100\n    networks: [0.0.0.0/0, 10.0.0.300]\n",
    )
    .unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!(
            "{}:4: networks: invalid address \"10.0.0.300\"",
            zones.display()
        )),
        "{}",
        text(&out.stderr)
    );

    // Valid, but trusting everything: accepted with warnings, as are SIEM export without a
    // target and the missing whitelist file.
    std::fs::write(
        &zones,
        "zones:\n  - name: all\n    trust_level: 100\n    networks: [0.0.0.0/0]\n",
    )
    .unwrap();
    let out = check();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for expected in [
        // Intel is on by default; its missing GeoIP database is named with how to get it.
        format!(
            "warning: intel: GeoIP City database {}/absent-city.mmdb",
            dir.path().display()
        ),
        "siem.enabled: SIEM export is enabled but there is no [[siem.targets]]".to_owned(),
        "zone all (0.0.0.0/0) covers every IPv4 address".to_owned(),
        format!("{}/absent.txt: does not exist", dir.path().display()),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }

    // A SIEM target whose headers file is missing: refused as the daemon would refuse it.
    let mut text_now = std::fs::read_to_string(&path).unwrap();
    text_now.push_str(&format!(
        "\n[[siem.targets]]\ntype = \"webhook\"\nurl = \"https://siem.example.com/\"\n\
         headers_file = \"{}/absent.headers\"\n",
        dir.path().display()
    ));
    std::fs::write(&path, text_now).unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("siem target \"webhook https://siem.example.com\"")
            && stderr.contains("absent.headers"),
        "{stderr}"
    );
}

#[test]
fn check_config_lists_every_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[general]\nlog_levle = \"info\"\n\n[services.ssh]\nmax_failures = 0\n\n[[services.ssh.patterns]]\nname = \"x\"\nregex = 'Failed from (\\S+)'\n\n[zones]\n[[zones.zones]]\nname = \"lan\"\ntrust_level = 50\nnetworks = [\"10.0.0.0/33\"]\n",
    )
    .unwrap();
    let out = crmonband(&["-c", path.to_str().unwrap(), "check-config"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let shown = path.display().to_string();
    for expected in [
        format!("{shown}:2: general.log_levle"),
        format!("{shown}:5: services.ssh.max_failures"),
        format!("{shown}:9: services.ssh.patterns[0].regex"),
        format!("{shown}:15: zones.zones[0].networks"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn missing_explicit_config_is_an_error_naming_it() {
    let out = crmonband(&["-c", "/nonexistent/crmonban.toml", "check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/crmonban.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn root_init_creates_the_layout_and_database_idempotently() {
    let ns = NetNs::new("cli-init");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/crmonban.db");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[general]\ndb_path = \"{}\"\n\n[nftables]\ntable_name = \"crmb_test\"\npriority = -90\n", db.display()),
    )
    .unwrap();
    let run_init = || {
        let out = ns.exec(
            env!("CARGO_BIN_EXE_crmonband"),
            &["-c", config.to_str().unwrap(), "init"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let first = run_init();
    assert!(first.contains("table inet crmb_test created"), "{first}");
    assert!(first.contains("0 active bans"), "{first}");
    assert!(Path::new(&db).exists());
    let table = ns.nft(&["-y", "list", "table", "inet", "crmb_test"]);
    assert!(
        table.contains("set blocked_v4_net") && table.contains("hook forward priority -90"),
        "{table}"
    );

    let second = run_init();
    assert!(second.contains("already present"), "{second}");
    assert_eq!(
        ns.nft(&["-y", "list", "table", "inet", "crmb_test"]),
        table,
        "a second init changed the table"
    );
}

const DEMO_PACK: &str = r#"[service]
name = "demo"
aliases = ["demo-auth"]
log_path = "/var/log/demo.log"
envelope = "plain"

[[patterns]]
name = "demo-failed"
kind = "failed_auth"
prefixes = ["login failed "]
regex = '^login failed for (?P<user>.*) from <IP> port [0-9]+$'

[[tests]]
line = "login failed for bob from 192.0.2.7 port 22"
ip = "192.0.2.7"
origin = "test"
"#;

/// A pack in services_dir adds a service: check-config checks it, explain finds it by its
/// alias, and a pack whose sample fails (or whose pattern an attacker can fool) refuses the
/// configuration with file:line.
#[test]
fn a_pack_in_services_dir_adds_a_service_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let packs = dir.path().join("services.d");
    std::fs::create_dir(&packs).unwrap();
    std::fs::write(packs.join("demo.toml"), DEMO_PACK).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[general]\nservices_dir = \"{}\"\n\n[services.demo-auth]\nenabled = true\n",
            packs.display()
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let out = crmonband(&["-c", config_arg, "check-config"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("enabled services: demo, ssh"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("demo ("),
        "{}",
        text(&out.stdout)
    );

    let log = dir.path().join("demo.log");
    std::fs::write(
        &log,
        "login failed for bob from 192.0.2.7 port 22\nlogin failed for x from 198.18.0.66 port 1 from 192.0.2.8 port 2\n",
    )
    .unwrap();
    let out = crmonband(&[
        "-c",
        config_arg,
        "explain",
        "--service",
        "demo-auth",
        "--json",
        log.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains(r#""ip":"192.0.2.7","service":"demo""#),
        "{shown}"
    );
    assert!(
        shown.contains(r#""ip":"192.0.2.8""#) && !shown.contains("198.18.0.66"),
        "{shown}"
    );

    let out = crmonband(&["explain", "--test-packs", packs.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("ok: service demo (1 patterns, 1 samples pass"),
        "{}",
        text(&out.stdout)
    );

    // A pattern that takes the first address after the user name is refused by its forgeries.
    std::fs::write(
        packs.join("demo.toml"),
        DEMO_PACK.replace(
            "(?P<user>.*) from <IP> port [0-9]+$",
            "(?P<user>.*?) from <IP> .*$",
        ),
    )
    .unwrap();
    let out = crmonband(&["-c", config_arg, "check-config"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:13: pattern demo-failed takes the address from the client's text",
            packs.join("demo.toml").display()
        )),
        "{stderr}"
    );
    let out = crmonband(&["explain", "--test-packs", packs.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));

    // A sample that does not give its address.
    std::fs::write(
        packs.join("demo.toml"),
        DEMO_PACK.replace("ip = \"192.0.2.7\"", "ip = \"192.0.2.9\""),
    )
    .unwrap();
    let out = crmonband(&["-c", config_arg, "check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("demo.toml:13: sample gives 192.0.2.7 (pattern demo-failed), not 192.0.2.9"),
        "{}",
        text(&out.stderr)
    );
}

/// `--regex` tries an ad-hoc pattern instead of the service's, like fail2ban-regex.
#[test]
fn explain_regex_tries_an_ad_hoc_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(
        &log,
        "Nov 25 16:20:59 host sshd[1235]: Postponed keyboard-interactive for invalid user b from 192.0.2.8 port 2 ssh2 [preauth]\n\
         Nov 25 16:22:59 host sshd[1237]: Invalid user x from 192.0.2.7 port 22\n",
    )
    .unwrap();
    let out = crmonband(&[
        "-c",
        "/dev/null",
        "explain",
        "--service",
        "sshd",
        "--json",
        "--regex",
        "Postponed .* from <HOST> port [0-9]+ ssh2",
        log.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains(r#""ip":"192.0.2.8""#), "{shown}");
    assert!(
        !shown.contains(r#""ip":"192.0.2.7""#),
        "only the ad-hoc regex runs: {shown}"
    );
    assert!(shown.contains(r#""pattern":"regex""#), "{shown}");
    let bad = crmonband(&[
        "-c",
        "/dev/null",
        "explain",
        "--service",
        "ssh",
        "--regex",
        "no group",
        log.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("--regex: the regex has no named group `ip`"),
        "{}",
        text(&bad.stderr)
    );
}

/// docs/CONFIG.md lists every built-in service pack with its aliases and default sources.
#[test]
fn config_md_lists_every_service_pack() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md"))
        .unwrap();
    for pack in crmonban_core::config::ServiceCatalog::builtin().packs() {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", pack.name)))
            .unwrap_or_else(|| panic!("docs/CONFIG.md has no row for the {} pack", pack.name));
        for alias in &pack.aliases {
            assert!(row.contains(&format!("`{alias}`")), "{row}");
        }
        if let Some(path) = &pack.log_path {
            assert!(row.contains(&format!("`{}`", path.display())), "{row}");
        }
        if let Some(journal) = &pack.journal_match {
            assert!(row.contains(&format!("`{journal}`")), "{row}");
        }
        let enabled = if pack.enabled { "| yes |" } else { "| no |" };
        assert!(row.contains(enabled), "{row}");
    }
}

/// A user name with a terminal escape in it (attacker text) is shown escaped by `explain`.
#[test]
fn explain_shows_attacker_text_with_control_characters_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(
        &log,
        "Nov 25 16:22:59 host sshd[1237]: Invalid user \u{1b}[2Jevil from 192.0.2.7 port 22\n",
    )
    .unwrap();
    let out = crmonband(&[
        "-c",
        "/dev/null",
        "explain",
        "--service",
        "ssh",
        log.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("192.0.2.7"), "{shown}");
    assert!(
        !shown.contains('\u{1b}'),
        "a raw escape reached the terminal: {shown:?}"
    );
    assert!(shown.contains("\\u{1b}[2Jevil"), "{shown}");
}

/// The service example in docs/CONFIG.md works on Gitea's real log lines (IPv4 and IPv6, with
/// the port Gitea writes after the address).
#[test]
fn config_md_gitea_example_matches_gitea_log_lines() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md"))
        .unwrap();
    let start = doc
        .find("```toml\n[services.gitea]")
        .expect("the gitea example")
        + 8;
    let example = &doc[start..start + doc[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gitea.log");
    let example = example.replace("/var/log/gitea/gitea.log", log.to_str().unwrap());
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &example).unwrap();
    std::fs::write(
        &log,
        "2023/10/17 10:30:15 ...s/auth/auth.go:219:SignInPost() [W] Failed authentication attempt for foo from 192.0.2.7:45678: user does not exist [uid: 0, name: foo]\n\
         2023/10/17 10:30:16 ...s/auth/auth.go:219:SignInPost() [W] Failed authentication attempt for admin from [2001:db8::7]:45679: password is invalid [uid: 1, name: admin]\n",
    )
    .unwrap();
    let out = crmonband(&[
        "-c",
        config.to_str().unwrap(),
        "explain",
        "--service",
        "gitea",
        "--json",
        log.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains(r#""ip":"192.0.2.7""#), "{shown}");
    assert!(shown.contains(r#""ip":"2001:db8::7""#), "{shown}");
}

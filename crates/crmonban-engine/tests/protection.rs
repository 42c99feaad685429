//! The protection policy on every engine path: D-Bus-style bans, the restore at start,
//! reloads that add or remove sources (lifting what they now cover), whitelist files,
//! zones with their trust levels, and an embedder's own policy.

mod common;

use std::sync::Arc;

use common::*;
use crmonban_core::Target;
use crmonban_core::config::{Config, WhitelistSource};
use crmonban_engine::{Engine, EngineError, EngineEvent, EngineOptions};
use crmonban_zones::{BanPolicy, Refusal};

fn config(text: &str) -> Config {
    Config::from_toml_str(text, "test.toml").unwrap()
}

fn options_for(text: &str) -> EngineOptions {
    let config = config(text);
    EngineOptions {
        whitelist: config.whitelist,
        zones: config.zones,
        ..quick_options()
    }
}

const NETWORKS: &str =
    "[[whitelist.sources]]\ntype = \"networks\"\nnetworks = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_networks_source_refuses_bans_inside_and_around_it() {
    let h = Harness::start_with(options_for(NETWORKS), SharedBackend::new()).await;
    for (target, says) in [
        (
            "10.1.2.3",
            "10.1.2.3 is whitelisted (networks source: 10.0.0.0/8)",
        ),
        ("2001:db8::7", "(networks source: 2001:db8::/32)"),
        ("10.0.0.0/7", "10.0.0.0/7 contains whitelisted 10.0.0.0/8"),
    ] {
        let error = h.engine.ban(request(target, secs(60))).await.unwrap_err();
        assert!(
            matches!(error, EngineError::Whitelisted { .. }),
            "{target}: {error:?}"
        );
        assert!(error.to_string().contains(says), "{error}");
    }
    assert!(h.fw.elements().is_empty());
    h.engine.ban(request("11.0.0.1", secs(60))).await.unwrap();
    assert_eq!(h.engine.protected_entries().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_adds_a_source_lifts_the_bans_it_covers_and_one_that_drops_it_allows_them() {
    let mut h = Harness::start().await;
    h.engine.ban(request("10.9.9.9", secs(600))).await.unwrap();
    h.engine
        .ban(request("10.8.0.0/16", secs(600)))
        .await
        .unwrap();
    h.engine.ban(request("192.0.2.1", secs(600))).await.unwrap();
    let new = config(NETWORKS);
    let problems = h
        .engine
        .reconfigure_protection(new.whitelist, new.zones)
        .await
        .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let mut lifted = Vec::new();
    while lifted.len() < 2 {
        let event = wait_for(&mut h.events, "BanRemoved", |e| {
            matches!(e, EngineEvent::BanRemoved { .. })
        })
        .await;
        if let EngineEvent::BanRemoved { target, reason } = event {
            assert_eq!(reason, "whitelisted");
            lifted.push(target.to_string());
        }
    }
    lifted.sort();
    assert_eq!(lifted, ["10.8.0.0/16", "10.9.9.9"]);
    assert!(!h.fw.contains("10.9.9.9") && h.fw.contains("192.0.2.1"));
    assert!(h.engine.ban(request("10.9.9.9", secs(60))).await.is_err());
    // The activity log says exactly what was lifted and why.
    let log = wait_until_logged(&h, "lift", 2).await;
    assert!(
        log.iter().any(|d| d
            == "ban lifted: cannot ban 10.9.9.9: 10.9.9.9 is whitelisted (networks source: 10.0.0.0/8)"),
        "{log:?}"
    );

    let back = Config::default();
    h.engine
        .reconfigure_protection(back.whitelist, back.zones)
        .await
        .unwrap();
    h.engine.ban(request("10.9.9.9", secs(60))).await.unwrap();
}

async fn wait_until_logged(h: &Harness, action: &str, count: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let details: Vec<String> = h
            .store
            .recent_activity(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == action)
            .map(|e| e.detail)
            .collect();
        if details.len() >= count {
            return details;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited for {count} {action} entries: {details:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ban_stored_before_its_address_was_whitelisted_is_not_restored() {
    let (dir, store) = temp_store().await;
    {
        let engine = Engine::start(
            quick_options(),
            Box::new(SharedBackend::new()),
            store.clone(),
        )
        .await
        .unwrap();
        engine.ban(request("10.1.1.1", None)).await.unwrap();
        engine.ban(request("192.0.2.5", None)).await.unwrap();
        engine.shutdown().await;
    }
    let fw = SharedBackend::new();
    let engine = Engine::start(options_for(NETWORKS), Box::new(fw.clone()), store.clone())
        .await
        .unwrap();
    assert!(fw.contains("192.0.2.5"));
    assert!(!fw.contains("10.1.1.1"));
    assert!(!engine.is_banned(&t("10.1.1.1")));
    let history = store.ban_history(&t("10.1.1.1")).await.unwrap();
    assert_eq!(history[0].unban_reason.as_deref(), Some("whitelisted"));
    drop(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whitelist_file_applies_on_refresh_and_reports_its_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trusted.txt");
    std::fs::write(&file, "# partners\n").unwrap();
    let text = format!(
        "[[whitelist.sources]]\ntype = \"file\"\npath = \"{}\"\n",
        file.display()
    );
    let mut options = options_for(&text);
    assert!(matches!(
        options.whitelist.sources[0],
        WhitelistSource::File { .. }
    ));
    options.expiry_interval = std::time::Duration::from_secs(3600);
    let h = Harness::start_with(options, SharedBackend::new()).await;
    h.engine
        .ban(request("203.0.113.9", secs(600)))
        .await
        .unwrap();
    std::fs::write(&file, "# partners\n203.0.113.0/24 # acme\nnonsense\n").unwrap();
    let problems = h.engine.refresh_protection().await.unwrap();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].to_string().ends_with(":3: invalid address \"nonsense\": expected an IPv4 or IPv6 address, or a CIDR such as 192.0.2.0/24"), "{}", problems[0]);
    assert!(!h.engine.is_banned(&t("203.0.113.9")));
    let error = h
        .engine
        .ban(request("203.0.113.7", secs(60)))
        .await
        .unwrap_err();
    assert!(error.to_string().contains(":2: 203.0.113.0/24)"), "{error}");
    assert!(h.engine.protected_entries()[0].comment == "acme");
}

#[tokio::test(flavor = "multi_thread")]
async fn zones_protect_by_trust_and_the_most_specific_one_decides() {
    let text = "[zones]\nenabled = true\n\n\
                [[zones.zones]]\nname = \"office\"\ntrust_level = 90\nnetworks = [\"10.0.0.0/8\"]\n\n\
                [[zones.zones]]\nname = \"dmz\"\ntrust_level = 10\nnetworks = [\"10.66.0.0/16\"]\n";
    let h = Harness::start_with(options_for(text), SharedBackend::new()).await;
    let error = h
        .engine
        .ban(request("10.1.1.1", secs(60)))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("(zone office (trust 90): 10.0.0.0/8)"),
        "{error}"
    );
    h.engine.ban(request("10.66.0.7", secs(60))).await.unwrap();
    let (net, zone) = h.engine.zone_of(&t("10.66.0.7")).unwrap();
    assert_eq!(
        (net, zone.name.as_str(), zone.trust_level),
        (t("10.66.0.0/16"), "dmz", 10)
    );
}

/// `[zones] config_file`: its zones apply on reload like the main file's; a file with an
/// error refuses the reload and the running zones stay; editing the file changes nothing
/// until the next reload (a whitelist file refresh does not read it again).
#[tokio::test(flavor = "multi_thread")]
async fn a_zones_file_applies_on_reload_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let zones_file = dir.path().join("zones.yaml");
    let whitelist_file = dir.path().join("whitelist.txt");
    std::fs::write(&whitelist_file, "").unwrap();
    std::fs::write(
        &zones_file,
        "zones:\n  - name: office\n    trust_level: 90\n    networks: [10.0.0.0/8]\n",
    )
    .unwrap();
    let text = format!(
        "[zones]\nenabled = true\nconfig_file = \"{}\"\n\n\
         [[whitelist.sources]]\ntype = \"zones\"\n\n\
         [[whitelist.sources]]\ntype = \"file\"\npath = \"{}\"\n",
        zones_file.display(),
        whitelist_file.display()
    );
    let mut h = Harness::start().await;
    h.engine.ban(request("10.1.1.1", secs(600))).await.unwrap();
    h.engine
        .ban(request("203.0.113.7", secs(600)))
        .await
        .unwrap();
    let new = config(&text);
    h.engine
        .reconfigure_protection(new.whitelist.clone(), new.zones.clone())
        .await
        .unwrap();
    let event = wait_for(&mut h.events, "BanRemoved", |e| {
        matches!(e, EngineEvent::BanRemoved { .. })
    })
    .await;
    assert!(
        matches!(&event, EngineEvent::BanRemoved { target, reason } if target.to_string() == "10.1.1.1" && reason == "whitelisted"),
        "{event:?}"
    );
    assert!(h.fw.contains("203.0.113.7"));
    let error = h
        .engine
        .ban(request("10.2.2.2", secs(60)))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("zone office (trust 90)"),
        "{error}"
    );

    // A broken file: the reload is refused, naming file and line; the office stays protected.
    std::fs::write(
        &zones_file,
        "zones:\n  - name: office\n    trust_level: 900\n    networks: [10.0.0.0/8]\n",
    )
    .unwrap();
    let refused = h
        .engine
        .reconfigure_protection(new.whitelist.clone(), new.zones.clone())
        .await
        .unwrap_err();
    assert!(matches!(refused, EngineError::ZonesFile(_)), "{refused:?}");
    assert!(
        refused.to_string().starts_with(&format!(
            "zones file {}:3: trust_level 900",
            zones_file.display()
        )),
        "{refused}"
    );
    assert!(h.engine.ban(request("10.2.2.2", secs(60))).await.is_err());
    // A whitelist file refresh rebuilds from the zones read at the last good reload.
    h.engine.refresh_protection().await.unwrap();
    assert!(h.engine.ban(request("10.2.2.2", secs(60))).await.is_err());

    // Fixed and lowered below the threshold: the reload applies and 10/8 may be banned.
    std::fs::write(
        &zones_file,
        "zones:\n  - name: office\n    trust_level: 30\n    networks: [10.0.0.0/8]\n",
    )
    .unwrap();
    h.engine
        .reconfigure_protection(new.whitelist, new.zones)
        .await
        .unwrap();
    h.engine.ban(request("10.2.2.2", secs(60))).await.unwrap();
    assert_eq!(h.engine.zone_of(&t("10.2.2.2")).unwrap().1.trust_level, 30);
}

/// An embedder's policy adds vetoes; it cannot lift the built-in ones.
struct NoDocumentationNets;

impl BanPolicy for NoDocumentationNets {
    fn check(&self, target: &Target) -> Result<(), Refusal> {
        if t("198.51.100.0/24").covers(target) {
            return Err(Refusal::Reserved {
                target: *target,
                why: format!("{target} is kept by the embedder"),
            });
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedders_policy_is_asked_after_the_built_in_one() {
    let options = EngineOptions {
        extra_policy: Some(Arc::new(NoDocumentationNets)),
        ..quick_options()
    };
    let h = Harness::start_with(options, SharedBackend::new()).await;
    let error = h
        .engine
        .ban(request("198.51.100.4", secs(60)))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot ban 198.51.100.4: 198.51.100.4 is kept by the embedder"
    );
    assert!(h.engine.ban(request("127.0.0.1", secs(60))).await.is_err());
    h.engine.ban(request("192.0.2.1", secs(60))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watched_whitelist_file_applies_when_it_changes_or_appears() {
    let dir = tempfile::tempdir().unwrap();
    // It does not exist yet: the source is empty until it does.
    let file = dir.path().join("trusted.txt");
    let text = format!(
        "[[whitelist.sources]]\ntype = \"file\"\npath = \"{}\"\nwatch = true\n",
        file.display()
    );
    let mut h = Harness::start_with(options_for(&text), SharedBackend::new()).await;
    h.engine
        .ban(request("203.0.113.9", secs(600)))
        .await
        .unwrap();
    h.engine
        .ban(request("198.51.100.1", secs(600)))
        .await
        .unwrap();

    // Written through a temporary file and renamed over, as editors and tools do.
    let temporary = dir.path().join(".trusted.txt.new");
    std::fs::write(&temporary, "203.0.113.0/24 # partner\n").unwrap();
    std::fs::rename(&temporary, &file).unwrap();
    let event = wait_for(
        &mut h.events,
        "BanRemoved of the newly trusted address",
        |e| matches!(e, EngineEvent::BanRemoved { .. }),
    )
    .await;
    assert!(
        matches!(&event, EngineEvent::BanRemoved { target, reason } if *target == t("203.0.113.9") && reason == "whitelisted"),
        "{event:?}"
    );
    assert!(h.engine.is_banned(&t("198.51.100.1")));

    // Appended to in place.
    use std::io::Write as _;
    let mut append = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    writeln!(append, "198.51.100.0/24").unwrap();
    drop(append);
    wait_for(
        &mut h.events,
        "BanRemoved after an append",
        |e| matches!(e, EngineEvent::BanRemoved { target, .. } if *target == t("198.51.100.1")),
    )
    .await;
    assert_eq!(h.engine.protected_entries().len(), 2);
}

/// A trust service on a private bus: `org.example.Trust.IsTrusted(s) -> b`, true for
/// 203.0.113.1, a 5 s hang for 203.0.113.99, false otherwise.
struct TrustService;

#[zbus::interface(name = "org.example.Trust")]
impl TrustService {
    async fn is_trusted(&self, address: String) -> bool {
        if address == "203.0.113.99" {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
        address == "203.0.113.1"
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn root_a_daemon_source_vetoes_bans_of_what_it_trusts_within_its_timeout() {
    crmonban_testutil::require_root();
    let bus = crmonban_testutil::PrivateBus::open();
    let _service = zbus::connection::Builder::address(bus.address())
        .name("org.example.Trust")
        .serve_at("/", TrustService)
        .build()
        .await
        .unwrap();
    let text = format!(
        "[[whitelist.sources]]\ntype = \"daemon\"\nbus = \"{}\"\nname = \"org.example.Trust\"\ninterface = \"org.example.Trust\"\nmethod = \"IsTrusted\"\ntimeout_ms = 300\n",
        bus.address()
    );
    let h = Harness::start_with(options_for(&text), SharedBackend::new()).await;
    let error = h
        .engine
        .ban(request("203.0.113.1", secs(60)))
        .await
        .unwrap_err();
    assert!(
        error.to_string().starts_with(
            "cannot ban 203.0.113.1: 203.0.113.1 is whitelisted (daemon org.example.Trust "
        ),
        "{error}"
    );
    h.engine
        .ban(request("203.0.113.2", secs(60)))
        .await
        .unwrap();
    // A service that hangs delays the ban by its timeout at most, then counts as "not trusted".
    let asked = std::time::Instant::now();
    h.engine
        .ban(request("203.0.113.99", secs(60)))
        .await
        .unwrap();
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    assert!(h.fw.contains("203.0.113.99"));
}

/// Whitelisting one address lifts the network ban around it and says so.
#[tokio::test(flavor = "multi_thread")]
async fn whitelisting_an_address_reports_the_network_ban_it_lifts() {
    let h = Harness::start().await;
    h.engine
        .ban(request("203.0.113.0/24", secs(600)))
        .await
        .unwrap();
    h.engine
        .ban(request("198.51.100.1", secs(600)))
        .await
        .unwrap();
    let (added, lifted) = h
        .engine
        .whitelist_add_lifting(&t("203.0.113.9"), "admin")
        .await
        .unwrap();
    assert!(added);
    assert_eq!(
        lifted,
        [(
            t("203.0.113.0/24"),
            "cannot ban 203.0.113.0/24: 203.0.113.0/24 contains whitelisted 203.0.113.9 \
             (database: 203.0.113.9)"
                .to_owned()
        )]
    );
    assert!(!h.fw.contains("203.0.113.0/24") && h.fw.contains("198.51.100.1"));
    let (again, none) = h
        .engine
        .whitelist_add_lifting(&t("203.0.113.9"), "admin")
        .await
        .unwrap();
    assert!(!again && none.is_empty());
}

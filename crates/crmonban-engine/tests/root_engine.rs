//! The engine over the real NftBackend, inside network namespaces of its own (removed on
//! drop): packets from a banned peer are dropped, this host's addresses are refused, a
//! restart after a kill restores the bans, and a flushed ruleset is repaired. Each engine is
//! started from a thread inside its namespace, so its firewall thread lives there too.
//! These tests panic without root.

mod common;

use std::net::IpAddr;
use std::path::Path;

use common::*;
use crmonban_core::{Ban, BanSource};
use crmonban_engine::{Engine, EngineError, EngineEvent};
use crmonban_firewall::{FirewallBackend, NftBackend, NftOptions};
use crmonban_store::Store;
use crmonban_testutil::{End, NetNs, QUIET, connect, require_root, udp_reaches};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Opens the store and starts an engine over nftables; call on a thread in the namespace.
async fn start_engine(db: &Path) -> Engine {
    let store = Store::open(db).await.unwrap();
    let nft = NftBackend::new(NftOptions::default()).unwrap();
    Engine::start(quick_options(), Box::new(nft), store)
        .await
        .unwrap()
}

fn set_holds(ns: &NetNs, set: &str, element: &str) -> bool {
    let listing = ns.nft(&["list", "set", "inet", "crmonban", set]);
    listing
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{' || c == '}')
        .any(|word| word == element)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn root_bans_drop_packets_and_host_addresses_are_refused() {
    require_root();
    let host = NetNs::new("eng-h");
    let peer = NetNs::new("eng-p");
    connect(
        End {
            ns: &host,
            v4: "10.77.0.1/24",
            v6: "fd77::1/64",
        },
        End {
            ns: &peer,
            v4: "10.77.0.2/24",
            v6: "fd77::2/64",
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crmonban.db");

    host.run(|| {
        let rt = runtime();
        let engine = rt.block_on(start_engine(&db));
        assert!(
            engine.firewall_description().contains("libnftables"),
            "{}",
            engine.firewall_description()
        );
        assert!(udp_reaches(&peer, &host, ip("10.77.0.1"), PATIENCE));
        assert!(udp_reaches(&peer, &host, ip("fd77::1"), PATIENCE));

        rt.block_on(async {
            engine.ban(request("10.77.0.2", None)).await.unwrap();
            engine.ban(request("fd77::2", secs(600))).await.unwrap();
            engine
                .ban(request("10.88.0.0/16", secs(600)))
                .await
                .unwrap();
        });
        assert!(set_holds(&host, "blocked_v4", "10.77.0.2"));
        assert!(set_holds(&host, "blocked_v6", "fd77::2"));
        assert!(set_holds(&host, "blocked_v4_net", "10.88.0.0/16"));
        assert!(!udp_reaches(&peer, &host, ip("10.77.0.1"), QUIET));
        assert!(!udp_reaches(&peer, &host, ip("fd77::1"), QUIET));

        // This namespace's own addresses, and networks around them, are never banned.
        rt.block_on(async {
            for (target, why) in [
                ("10.77.0.1", "10.77.0.1 is an address of this host"),
                (
                    "10.0.0.0/8",
                    "10.0.0.0/8 contains this host's address 10.77.0.1",
                ),
                ("fd77::1", "fd77::1 is an address of this host"),
            ] {
                let error = engine.ban(request(target, None)).await.unwrap_err();
                assert!(
                    matches!(error, EngineError::Protected { .. }),
                    "{target}: {error:?}"
                );
                assert!(error.to_string().contains(why), "{error}");
            }
            // An address added after start is protected from the next refresh on (every
            // repair probe re-reads them).
            engine.check_protected(&t("10.66.0.1")).unwrap();
            host.ip(&["addr", "add", "10.66.0.1/32", "dev", "lo"]);
            engine.repair_if_needed().await.unwrap();
            let error = engine.check_protected(&t("10.66.0.1")).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("10.66.0.1 is an address of this host"),
                "{error}"
            );
        });
        assert!(!set_holds(&host, "blocked_v4", "10.77.0.1"));

        rt.block_on(async {
            assert!(engine.unban(&t("10.77.0.2"), "unban").await.unwrap());
            assert!(engine.unban(&t("fd77::2"), "unban").await.unwrap());
        });
        assert!(!set_holds(&host, "blocked_v4", "10.77.0.2"));
        assert!(udp_reaches(&peer, &host, ip("10.77.0.1"), PATIENCE));
        assert!(udp_reaches(&peer, &host, ip("fd77::1"), PATIENCE));

        rt.block_on(async {
            assert_eq!(engine.flush().await.unwrap(), 1);
            engine.shutdown().await;
        });
        assert!(!set_holds(&host, "blocked_v4_net", "10.88.0.0/16"));
    });
}

#[test]
fn root_restart_after_a_kill_restores_and_a_flushed_ruleset_is_repaired() {
    require_root();
    let ns = NetNs::new("eng-r");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crmonban.db");

    ns.run(|| {
        {
            let rt = runtime();
            rt.block_on(async {
                let engine = start_engine(&db).await;
                engine.ban(request("198.51.100.5", None)).await.unwrap();
                engine
                    .ban(request("2001:db8::5", secs(3600)))
                    .await
                    .unwrap();
                engine.ban(request("203.0.113.0/24", None)).await.unwrap();
                // No shutdown: the daemon is killed, its runtime goes with it.
                drop(engine);
            });
        }
        assert!(set_holds(&ns, "blocked_v4", "198.51.100.5"));

        // While it was down the kernel changed behind its back.
        ns.nft(&[
            "delete",
            "element",
            "inet",
            "crmonban",
            "blocked_v6",
            "{ 2001:db8::5 }",
        ]);
        ns.nft(&[
            "add",
            "element",
            "inet",
            "crmonban",
            "blocked_v4",
            "{ 198.51.100.99 }",
        ]);

        let rt = runtime();
        rt.block_on(async {
            let engine = start_engine(&db).await;
            assert_eq!(engine.active_ban_count(), 3);
            assert!(set_holds(&ns, "blocked_v4", "198.51.100.5"));
            assert!(set_holds(&ns, "blocked_v6", "2001:db8::5"));
            assert!(set_holds(&ns, "blocked_v4_net", "203.0.113.0/24"));
            assert!(
                !set_holds(&ns, "blocked_v4", "198.51.100.99"),
                "restore leaves only what the database holds"
            );
            let v6 = ns.nft(&["list", "set", "inet", "crmonban", "blocked_v6"]);
            assert!(
                v6.contains("expires"),
                "the timed ban keeps a timeout: {v6}"
            );

            let mut events = engine.subscribe();
            ns.nft(&["flush", "ruleset"]);
            let repaired = wait_for(&mut events, "LayoutRepaired", |e| {
                matches!(e, EngineEvent::LayoutRepaired { .. })
            })
            .await;
            assert!(
                matches!(repaired, EngineEvent::LayoutRepaired { bans: 3 }),
                "{repaired:?}"
            );
            assert!(set_holds(&ns, "blocked_v4", "198.51.100.5"));
            assert!(set_holds(&ns, "blocked_v6", "2001:db8::5"));
            assert!(set_holds(&ns, "blocked_v4_net", "203.0.113.0/24"));

            engine.shutdown().await;
        });
        assert!(
            set_holds(&ns, "blocked_v4", "198.51.100.5"),
            "bans stay in the kernel after a shutdown"
        );
    });
}

/// An address added to an interface is protected as soon as the kernel announces it (no
/// timer could have fired: the repair tick and the fallback poll are an hour here), and a ban
/// of it that was in force is lifted.
#[test]
fn root_a_new_host_address_is_protected_at_once_and_its_ban_lifted() {
    require_root();
    let host = NetNs::new("eng-addr");
    host.ip(&[
        "link", "add", "addr0", "type", "veth", "peer", "name", "addr1",
    ]);
    host.ip(&["link", "set", "addr0", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crmonban.db");
    host.run(|| {
        let rt = runtime();
        rt.block_on(async {
            let store = Store::open(&db).await.unwrap();
            let nft = NftBackend::new(NftOptions::default()).unwrap();
            let options = crmonban_engine::EngineOptions {
                repair_interval: std::time::Duration::from_secs(3600),
                host_address_poll: std::time::Duration::from_secs(3600),
                ..quick_options()
            };
            let engine = Engine::start(options, Box::new(nft), store).await.unwrap();
            let mut events = engine.subscribe();
            engine.ban(request("192.0.2.77", secs(600))).await.unwrap();
            engine
                .ban(request("2001:db8::77", secs(600)))
                .await
                .unwrap();
            let added = std::process::Command::new("ip")
                .args(["addr", "add", "192.0.2.77/32", "dev", "addr0"])
                .status()
                .unwrap();
            assert!(added.success());
            let lifted = wait_for(&mut events, "the ban of the new host address to be lifted", |e| {
                matches!(e, EngineEvent::BanRemoved { target, .. } if *target == t("192.0.2.77"))
            })
            .await;
            assert!(
                matches!(&lifted, EngineEvent::BanRemoved { reason, .. } if reason == "protected"),
                "{lifted:?}"
            );
            match engine.ban(request("192.0.2.77", secs(60))).await {
                Err(EngineError::Protected { why, .. }) => {
                    assert_eq!(why, "192.0.2.77 is an address of this host")
                }
                other => panic!("{other:?}"),
            }
            let added = std::process::Command::new("ip")
                .args(["addr", "add", "2001:db8::77/128", "dev", "addr0", "nodad"])
                .status()
                .unwrap();
            assert!(added.success());
            wait_for(&mut events, "the IPv6 ban to be lifted", |e| {
                matches!(e, EngineEvent::BanRemoved { target, .. } if *target == t("2001:db8::77"))
            })
            .await;
            engine.shutdown().await;
        });
    });
}

/// Address sets made for 16 addresses (restored empty), then 60 bans, 20 of them at once: the
/// ban that finds a set full has the engine rebuild the sets from its index, larger, and go
/// on; every ban is in the kernel, no ban failed, the rebuild was done once per fill (the
/// concurrent refusals share it) and is in the activity log.
#[test]
fn root_a_full_address_set_is_rebuilt_from_the_index_and_no_ban_fails() {
    require_root();
    let host = NetNs::new("eng-full");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crmonban.db");
    host.run(|| {
        let rt = runtime();
        rt.block_on(async {
            let store = Store::open(&db).await.unwrap();
            let nft = NftBackend::new(NftOptions {
                set_capacity: 16,
                ..NftOptions::default()
            })
            .unwrap();
            let engine = Engine::start(quick_options(), Box::new(nft), store)
                .await
                .unwrap();
            let address = |i: u32| format!("198.51.100.{i}");
            for i in 1..=40 {
                engine.ban(request(&address(i), secs(600))).await.unwrap();
            }
            let together: Vec<_> = (41..=60)
                .map(|i| {
                    let engine = engine.clone();
                    let target = address(i);
                    tokio::spawn(async move { engine.ban(request(&target, secs(600))).await })
                })
                .collect();
            for ban in together {
                ban.await.unwrap().unwrap();
            }
            engine.ban(request("2001:db8::1", None)).await.unwrap();
            engine.shutdown().await;
        });
    });
    for i in 1..=60 {
        let element = format!("198.51.100.{i}");
        assert!(
            set_holds(&host, "blocked_v4", &element),
            "{element} missing"
        );
    }
    assert!(set_holds(&host, "blocked_v6", "2001:db8::1"));
    let activity = host.run(|| {
        let rt = runtime();
        rt.block_on(async {
            let store = Store::open(&db).await.unwrap();
            store.recent_activity(100).await.unwrap()
        })
    });
    let growths = activity
        .iter()
        .filter(|a| a.detail.contains("an address set was full"))
        .count();
    // 16 -> 24 (bans 1..=16 then 17), 24 -> 36 (at 25), 36 -> 54 (at 37), 54 -> 81 (at 55):
    // four fills, each rebuilt once however many bans it refused.
    assert_eq!(growths, 4, "{activity:?}");
}

/// 120,000 stored bans (60,000 a family: past what the check counts) restored at start, then
/// the IPv4 set flushed by someone else: the check, which samples bans rather than listing
/// sets this large, finds them gone and rebuilds every set from the index.
#[test]
fn root_a_flushed_large_set_is_found_by_sampling_and_rebuilt() {
    require_root();
    const BANS: u32 = 120_000;
    let ns = NetNs::new("eng-sample");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crmonban.db");
    ns.run(|| {
        let rt = runtime();
        rt.block_on(async {
            let store = Store::open(&db).await.unwrap();
            let now = crmonban_core::unix_now();
            let bans: Vec<Ban> = (0..BANS)
                .map(|i| Ban {
                    target: seeded_address(i),
                    reason: "seeded".into(),
                    source: BanSource::Detector,
                    service: None,
                    banned_at: now,
                    expires_at: Some(now + 86_400),
                    offence: 1,
                })
                .collect();
            store.record_bans(&bans).await.unwrap();
            store.close().await;

            let options = crmonban_engine::EngineOptions {
                repair_interval: std::time::Duration::from_secs(3600),
                ..quick_options()
            };
            let store = Store::open(&db).await.unwrap();
            let nft = NftBackend::new(NftOptions::default()).unwrap();
            let engine = Engine::start(options, Box::new(nft), store).await.unwrap();
            assert_eq!(engine.active_ban_count(), u64::from(BANS));
            // Nobody else changed anything: nothing to repair.
            assert_eq!(engine.repair_if_needed().await.unwrap(), None);

            let flushed = std::process::Command::new("nft")
                .args(["flush", "set", "inet", "crmonban", "blocked_v4"])
                .status()
                .unwrap();
            assert!(flushed.success());
            let repaired = engine.repair_if_needed().await.unwrap();
            assert_eq!(repaired, Some(BANS as usize));
            engine.shutdown().await;
        });
    });
    let mut fw = ns.run(|| NftBackend::new(NftOptions::default())).unwrap();
    let counts = ns.run(|| fw.element_counts()).unwrap().unwrap();
    assert_eq!(counts[..2], [60_000, 60_000]);
}

/// Ten thousand bans from `ban_many` reach the kernel in ONE nftables transaction (the
/// ruleset generation moves by one), every one of them held, and all recorded.
#[test]
fn root_a_batch_of_ten_thousand_bans_is_one_transaction() {
    require_root();
    let host = NetNs::new("eng-bulk");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crmonban.db");
    host.run(|| {
        runtime().block_on(async {
            let engine = start_engine(&db).await;
            let targets: Vec<_> = (0..10_000).map(seeded_address).collect();
            let requests = targets
                .iter()
                .map(|target| crmonban_engine::BanRequest {
                    target: *target,
                    duration: secs(3_600),
                    reason: "reported by web1".into(),
                    source: BanSource::Other("fleet:web1".into()),
                    service: None,
                })
                .collect();
            let before = crmonban_firewall::ruleset_generation().unwrap();
            let report = engine.ban_many(requests).await.unwrap();
            let after = crmonban_firewall::ruleset_generation().unwrap();
            assert_eq!(report.banned.len(), 10_000);
            assert_eq!(after.wrapping_sub(before), 1, "one transaction");
            let held = engine.enforced_counts();
            assert_eq!(held, [5_000, 5_000]);
            let store = engine.store().clone();
            assert_eq!(
                store.count_active(crmonban_core::unix_now()).await.unwrap(),
                10_000
            );
            engine.shutdown().await;
        })
    });
    for i in [0u32, 1, 4_998, 9_999] {
        let target = seeded_address(i).to_string();
        let set = if i % 2 == 0 {
            "blocked_v4"
        } else {
            "blocked_v6"
        };
        assert!(set_holds(&host, set, &target), "{target} not in {set}");
    }
}

//! Privileged tests of NftBackend against the real kernel, each in network namespaces of its
//! own (removed on drop). They panic without root.

use std::net::IpAddr;
use std::time::Duration;

use crmonban_core::Target;
use crmonban_firewall::{
    ChangeSet, Element, FirewallBackend, FirewallError, Layout, NftBackend, NftOptions, Transport,
    drop_counters, ruleset_generation,
};
use crmonban_testutil::{End, NetNs, PATIENCE, QUIET, connect, tcp_connects, udp_reaches};

fn t(s: &str) -> Target {
    Target::parse(s).unwrap()
}

fn backend_in(ns: &NetNs, transport: Transport) -> NftBackend {
    ns.run(|| {
        NftBackend::new(NftOptions {
            layout: Layout::default(),
            transport,
            ..NftOptions::default()
        })
        .unwrap()
    })
}

fn ban(ns: &NetNs, fw: &mut NftBackend, changes: &ChangeSet) {
    ns.run(|| fw.apply(changes)).unwrap();
}

/// Two namespaces joined by veth: A = 10.77.0.1 / fd77::1, B = 10.77.0.2 / fd77::2.
fn pair() -> (NetNs, NetNs) {
    let a = NetNs::new("fw-a");
    let b = NetNs::new("fw-b");
    connect(
        End {
            ns: &a,
            v4: "10.77.0.1/24",
            v6: "fd77::1/64",
        },
        End {
            ns: &b,
            v4: "10.77.0.2/24",
            v6: "fd77::2/64",
        },
    );
    (a, b)
}

const EXPECTED_LAYOUT: &str = "table inet crmonban {
	set blocked_v4 {
		type ipv4_addr
		size 131071
		flags timeout
	}

	set blocked_v6 {
		type ipv6_addr
		size 131071
		flags timeout
	}

	set blocked_v4_net {
		type ipv4_addr
		flags interval,timeout
	}

	set blocked_v6_net {
		type ipv6_addr
		flags interval,timeout
	}

	chain input {
		type filter hook input priority -100; policy accept;
		ip saddr @blocked_v4 counter packets 0 bytes 0 drop
		ip saddr @blocked_v4_net counter packets 0 bytes 0 drop
		ip6 saddr @blocked_v6 counter packets 0 bytes 0 drop
		ip6 saddr @blocked_v6_net counter packets 0 bytes 0 drop
	}

	chain forward {
		type filter hook forward priority -100; policy accept;
		ip saddr @blocked_v4 counter packets 0 bytes 0 drop
		ip saddr @blocked_v4_net counter packets 0 bytes 0 drop
		ip6 saddr @blocked_v6 counter packets 0 bytes 0 drop
		ip6 saddr @blocked_v6_net counter packets 0 bytes 0 drop
	}
}
";

#[test]
fn root_ensure_creates_the_layout_and_touches_nothing_else() {
    for transport in [Transport::Library, Transport::Binary("nft".into())] {
        let ns = NetNs::new("fw-ensure");
        ns.nft(&["-f", "-"]); // nft reads nothing from an empty stdin: a no-op sanity check
        ns.nft(&["add", "table", "inet", "decoy"]);
        ns.nft(&[
            "add",
            "set",
            "inet",
            "decoy",
            "s",
            "{ type ipv4_addr; elements = { 192.0.2.1 }; }",
        ]);
        ns.nft(&[
            "add",
            "chain",
            "inet",
            "decoy",
            "c",
            "{ type filter hook input priority 0; policy accept; }",
        ]);
        ns.nft(&[
            "add", "rule", "inet", "decoy", "c", "ip", "saddr", "@s", "accept",
        ]);
        ns.nft(&["add", "table", "ip", "filter"]);
        let decoy_before = ns.nft(&["-j", "list", "ruleset"]);

        let mut fw = backend_in(&ns, transport.clone());
        assert!(!ns.run(|| fw.layout_present()).unwrap());
        ns.run(|| fw.ensure_layout()).unwrap();
        assert!(ns.run(|| fw.layout_present()).unwrap());
        assert_eq!(
            ns.nft(&["list", "table", "inet", "crmonban"]),
            EXPECTED_LAYOUT,
            "{transport:?}"
        );

        let first = ns.nft(&["-j", "list", "table", "inet", "crmonban"]);
        ns.run(|| fw.ensure_layout()).unwrap();
        let second = ns.nft(&["-j", "list", "table", "inet", "crmonban"]);
        assert_eq!(first, second, "a second ensure changed the table");

        for table in ["inet decoy", "ip filter"] {
            let mut args = vec!["-j", "list", "table"];
            args.extend(table.split(' '));
            let now = ns.nft(&args);
            assert!(
                decoy_before.contains(&now[now.find("{\"table\"").unwrap()..now.len() - 3]),
                "{table} changed"
            );
        }
        ns.run(|| fw.teardown()).unwrap();
        let after = ns.nft(&["-j", "list", "ruleset"]);
        assert_eq!(
            after, decoy_before,
            "teardown must leave exactly the other tables"
        );
    }
}

#[test]
fn root_ensure_repairs_a_deleted_chain_and_reports_missing_layout() {
    let ns = NetNs::new("fw-repair");
    let mut fw = backend_in(&ns, Transport::Library);
    ns.run(|| fw.ensure_layout()).unwrap();
    ns.nft(&["delete", "chain", "inet", "crmonban", "forward"]);
    assert!(!ns.run(|| fw.layout_present()).unwrap());
    ns.run(|| fw.ensure_layout()).unwrap();
    assert_eq!(
        ns.nft(&["list", "table", "inet", "crmonban"]),
        EXPECTED_LAYOUT
    );
    // A chain that lost its rules is not the layout either; a restore rebuilds it.
    ns.nft(&["flush", "chain", "inet", "crmonban", "input"]);
    assert!(!ns.run(|| fw.layout_present()).unwrap());
    ns.run(|| fw.replace_all(&[])).unwrap();
    assert!(ns.run(|| fw.layout_present()).unwrap());
    // Someone else's table of the same name in another family is not ours.
    ns.nft(&["delete", "table", "inet", "crmonban"]);
    ns.nft(&["add", "table", "ip", "crmonban"]);
    assert!(!ns.run(|| fw.layout_present()).unwrap());

    ns.nft(&["flush", "ruleset"]);
    let err = ns
        .run(|| fw.apply(ChangeSet::new().add(Element::permanent(t("192.0.2.9")))))
        .unwrap_err();
    assert!(matches!(err, FirewallError::LayoutMissing(_)), "{err:?}");
}

#[test]
fn root_packets_are_dropped_while_banned_v4_v6_and_cidr() {
    let (a, b) = pair();
    let mut fw = backend_in(&b, Transport::Library);
    b.run(|| fw.ensure_layout()).unwrap();
    let (a4, a6, b4, b6): (IpAddr, IpAddr, IpAddr, IpAddr) = (
        "10.77.0.1".parse().unwrap(),
        "fd77::1".parse().unwrap(),
        "10.77.0.2".parse().unwrap(),
        "fd77::2".parse().unwrap(),
    );

    assert!(
        udp_reaches(&a, &b, b4, PATIENCE),
        "IPv4 must pass before any ban"
    );
    ban(
        &b,
        &mut fw,
        ChangeSet::new().add(Element::permanent(Target::from(a4))),
    );
    assert!(
        !udp_reaches(&a, &b, b4, QUIET),
        "banned IPv4 source still reaches B"
    );
    assert!(
        !tcp_connects(&a, &b, b4, QUIET),
        "banned IPv4 source can still connect"
    );
    ban(&b, &mut fw, ChangeSet::new().remove(Target::from(a4)));
    assert!(
        udp_reaches(&a, &b, b4, PATIENCE),
        "IPv4 must pass after unban"
    );

    assert!(
        udp_reaches(&a, &b, b6, PATIENCE),
        "IPv6 must pass before any ban"
    );
    ban(
        &b,
        &mut fw,
        ChangeSet::new().add(Element::permanent(Target::from(a6))),
    );
    assert!(
        !udp_reaches(&a, &b, b6, QUIET),
        "banned IPv6 source still reaches B"
    );
    ban(&b, &mut fw, ChangeSet::new().remove(Target::from(a6)));
    assert!(
        udp_reaches(&a, &b, b6, PATIENCE),
        "IPv6 must pass after unban"
    );

    ban(
        &b,
        &mut fw,
        ChangeSet::new()
            .add(Element::timed(t("10.77.0.0/28"), Duration::from_secs(600)))
            .add(Element::permanent(t("fd77::/120"))),
    );
    assert!(
        !udp_reaches(&a, &b, b4, QUIET),
        "an address inside a banned IPv4 network passes"
    );
    assert!(
        !udp_reaches(&a, &b, b6, QUIET),
        "an address inside a banned IPv6 network passes"
    );
    ban(
        &b,
        &mut fw,
        ChangeSet::new()
            .remove(t("10.77.0.0/28"))
            .remove(t("fd77::/120")),
    );
    assert!(
        udp_reaches(&a, &b, b4, PATIENCE) && udp_reaches(&a, &b, b6, PATIENCE),
        "network unban must restore traffic"
    );

    // A ban already over is skipped, not an error for the rest of the batch.
    let report = b
        .run(|| {
            fw.apply(
                ChangeSet::new()
                    .add(Element::until(t("198.51.100.1"), Some(1)))
                    .add(Element::permanent(t("198.51.100.2"))),
            )
        })
        .unwrap();
    assert_eq!((report.added, report.skipped_expired), (1, 1));

    // Unbanning something that is not banned (or already expired) is not an error.
    ban(
        &b,
        &mut fw,
        ChangeSet::new()
            .remove(Target::from(a4))
            .remove(t("198.51.100.0/24")),
    );
}

#[test]
fn root_timed_ban_expires_in_the_kernel() {
    let (a, b) = pair();
    let mut fw = backend_in(&b, Transport::Library);
    b.run(|| fw.ensure_layout()).unwrap();
    let b4: IpAddr = "10.77.0.2".parse().unwrap();
    let banned_at = std::time::Instant::now();
    ban(
        &b,
        &mut fw,
        ChangeSet::new().add(Element::timed(t("10.77.0.1"), Duration::from_secs(4))),
    );
    assert!(!udp_reaches(&a, &b, b4, QUIET));
    // Passes again once the kernel drops the element, and not before.
    assert!(
        udp_reaches(&a, &b, b4, PATIENCE),
        "the kernel did not expire a 4 s ban"
    );
    assert!(
        banned_at.elapsed() >= Duration::from_millis(3500),
        "traffic passed {:?} into a 4 s ban",
        banned_at.elapsed()
    );
    assert!(
        !b.nft(&["list", "set", "inet", "crmonban", "blocked_v4"])
            .contains("10.77.0.1")
    );
}

#[test]
fn root_forward_chain_protects_routed_traffic() {
    // A -- R -- B: R routes, and the ban lives in R.
    let a = NetNs::new("fw-ra");
    let r = NetNs::new("fw-rr");
    let b = NetNs::new("fw-rb");
    connect(
        End {
            ns: &a,
            v4: "10.78.1.1/24",
            v6: "fd78:1::1/64",
        },
        End {
            ns: &r,
            v4: "10.78.1.254/24",
            v6: "fd78:1::fe/64",
        },
    );
    connect(
        End {
            ns: &r,
            v4: "10.78.2.254/24",
            v6: "fd78:2::fe/64",
        },
        End {
            ns: &b,
            v4: "10.78.2.1/24",
            v6: "fd78:2::1/64",
        },
    );
    r.enable_forwarding();
    a.ip(&["route", "add", "default", "via", "10.78.1.254"]);
    a.ip(&["-6", "route", "add", "default", "via", "fd78:1::fe"]);
    b.ip(&["route", "add", "default", "via", "10.78.2.254"]);
    b.ip(&["-6", "route", "add", "default", "via", "fd78:2::fe"]);
    let (b4, b6): (IpAddr, IpAddr) = ("10.78.2.1".parse().unwrap(), "fd78:2::1".parse().unwrap());
    assert!(
        udp_reaches(&a, &b, b4, PATIENCE) && udp_reaches(&a, &b, b6, PATIENCE),
        "routing works before bans"
    );

    let mut fw = backend_in(&r, Transport::Library);
    r.run(|| fw.ensure_layout()).unwrap();
    ban(
        &r,
        &mut fw,
        ChangeSet::new()
            .add(Element::permanent(t("10.78.1.1")))
            .add(Element::permanent(t("fd78:1::/64"))),
    );
    assert!(
        !udp_reaches(&a, &b, b4, QUIET),
        "routed IPv4 from a banned source passes R"
    );
    assert!(
        !udp_reaches(&a, &b, b6, QUIET),
        "routed IPv6 from a banned network passes R"
    );
    let counters = r.nft(&["list", "chain", "inet", "crmonban", "forward"]);
    assert!(
        !counters.contains("counter packets 0 bytes 0 drop\n\t\tip saddr @blocked_v4_net"),
        "forward counter did not move:\n{counters}"
    );
}

#[test]
fn root_ten_thousand_mixed_bans_in_one_transaction() {
    let ns = NetNs::new("fw-bulk");
    let mut fw = backend_in(&ns, Transport::Library);
    ns.run(|| fw.ensure_layout()).unwrap();
    let mut changes = ChangeSet::new();
    for i in 0..10_000u32 {
        let target = if i % 2 == 0 {
            Target::from(std::net::Ipv4Addr::from(0x0A00_0000 + i))
        } else {
            Target::from(std::net::Ipv6Addr::from(
                0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + i as u128,
            ))
        };
        if i % 3 == 0 {
            changes.add(Element::permanent(target));
        } else {
            changes.add(Element::timed(target, Duration::from_secs(3600)));
        }
    }
    // The kernel counts committed transactions in the namespace's ruleset generation: one
    // transaction moves it by exactly one, however many messages carried the elements.
    let before = ns.run(ruleset_generation).unwrap();
    let report = ns.run(|| fw.apply(&changes)).unwrap();
    let after = ns.run(ruleset_generation).unwrap();
    assert_eq!(
        after.wrapping_sub(before),
        1,
        "10,000 bans took {} transactions",
        after.wrapping_sub(before)
    );
    assert_eq!(report.added, 10_000);
    assert_eq!(report.transactions, 1);
    let listed = ns.run(|| fw.list()).unwrap();
    assert_eq!(listed.len(), 10_000);
    let v4 = listed.iter().filter(|e| e.target.is_ipv4()).count();
    assert_eq!(v4, 5_000);
}

#[test]
fn root_overlapping_networks_are_merged_before_the_kernel() {
    let ns = NetNs::new("fw-merge");
    let mut fw = backend_in(&ns, Transport::Library);
    ns.run(|| fw.ensure_layout()).unwrap();
    let report = ns
        .run(|| {
            fw.apply(
                ChangeSet::new()
                    .add(Element::permanent(t("10.0.0.0/8")))
                    .add(Element::permanent(t("10.1.0.0/16")))
                    .add(Element::permanent(t("192.0.2.0/25")))
                    .add(Element::permanent(t("192.0.2.128/25"))),
            )
        })
        .unwrap();
    assert_eq!(report.networks_merged, 2);
    let set = ns.nft(&["list", "set", "inet", "crmonban", "blocked_v4_net"]);
    assert!(
        set.contains("elements = { 10.0.0.0/8, 192.0.2.0/24 }"),
        "{set}"
    );
    // A later network that overlaps what the kernel holds is merged too, not refused.
    ns.run(|| {
        fw.apply(
            ChangeSet::new()
                .add(Element::permanent(t("10.200.0.0/16")))
                .add(Element::permanent(t("192.0.0.0/16"))),
        )
    })
    .unwrap();
    let set = ns.nft(&["list", "set", "inet", "crmonban", "blocked_v4_net"]);
    assert!(
        set.contains("elements = { 10.0.0.0/8, 192.0.0.0/16 }"),
        "{set}"
    );
    // Unbanning the outer network leaves the inner one banned.
    ns.run(|| fw.apply(ChangeSet::new().remove(t("10.0.0.0/8"))))
        .unwrap();
    let set = ns.nft(&["list", "set", "inet", "crmonban", "blocked_v4_net"]);
    assert!(
        set.contains("10.1.0.0/16") && set.contains("10.200.0.0/16") && !set.contains("10.0.0.0/8"),
        "{set}"
    );
}

/// A namespace where someone else created our IPv4 set with a size limit before us: the kernel
/// refuses the element after the `size`-th. Returns it with a backend that ensured the rest.
/// Our table as someone else left it: `blocked_v4` without the timeout flag, so the kernel
/// refuses any element with a timeout (and takes the others). No `ensure_layout`: the backend
/// applies to what is there.
fn with_untimed_v4_set(name: &str, transport: Transport) -> (NetNs, NftBackend) {
    let ns = NetNs::new(name);
    ns.nft(&["add", "table", "inet", "crmonban"]);
    ns.nft(&[
        "add",
        "set",
        "inet",
        "crmonban",
        "blocked_v4",
        "{ type ipv4_addr; }",
    ]);
    let v6 = "{ type ipv6_addr; flags timeout; }";
    ns.nft(&["add", "set", "inet", "crmonban", "blocked_v6", v6]);
    let fw = backend_in(&ns, transport);
    (ns, fw)
}

/// Both paths: netlink (the kernel points at the element) and JSON (found by dry runs).
const PATHS: [Transport; 2] = [Transport::Auto, Transport::Library];

#[test]
fn root_kernel_refusal_names_the_element_and_applies_nothing() {
    for transport in PATHS {
        kernel_refusal_names_the_element(transport);
    }
}

fn kernel_refusal_names_the_element(transport: Transport) {
    // The kernel refuses the 4th element, the only one with a timeout.
    let (ns, mut fw) = with_untimed_v4_set("fw-refuse", transport);
    let mut changes = ChangeSet::new();
    for last in 1..=5 {
        let target = t(&format!("192.0.2.{last}"));
        changes.add(if last == 4 {
            Element::timed(target, Duration::from_secs(60))
        } else {
            Element::permanent(target)
        });
    }
    changes.add(Element::permanent(t("2001:db8::1")));
    let err = ns.run(|| fw.apply(&changes)).unwrap_err();
    match &err {
        FirewallError::Refused {
            element: Some(e), ..
        } => assert_eq!(e, "192.0.2.4"),
        other => panic!("expected a refusal naming 192.0.2.4, got {other:?}"),
    }
    assert!(err.to_string().contains("192.0.2.4"), "{err}");
    let v4 = ns.nft(&["list", "set", "inet", "crmonban", "blocked_v4"]);
    let v6 = ns.nft(&["list", "set", "inet", "crmonban", "blocked_v6"]);
    assert!(
        !v4.contains("192.0.2.1") && !v6.contains("2001:db8::1"),
        "half-applied:\n{v4}{v6}"
    );
}

#[test]
fn root_replace_all_restores_exactly_in_one_batch() {
    let ns = NetNs::new("fw-restore");
    let mut fw = backend_in(&ns, Transport::Library);
    ns.run(|| fw.ensure_layout()).unwrap();
    ban(
        &ns,
        &mut fw,
        ChangeSet::new()
            .add(Element::permanent(t("198.51.100.7")))
            .add(Element::permanent(t("203.0.113.0/24"))),
    );
    // A different priority in the config: the chains are rebuilt, the stale elements go.
    let layout = Layout {
        priority: -150,
        ..Layout::default()
    };
    let mut fw2 = ns
        .run(|| {
            NftBackend::new(NftOptions {
                layout,
                transport: Transport::Library,
                ..NftOptions::default()
            })
        })
        .unwrap();
    let restored = [
        Element::permanent(t("192.0.2.1")),
        Element::timed(t("2001:db8::7"), Duration::from_secs(900)),
        Element::until(t("192.0.2.2"), Some(1)), // already expired: not restored
        Element::permanent(t("10.9.0.0/16")),
    ];
    let report = ns.run(|| fw2.replace_all(&restored)).unwrap();
    assert_eq!((report.added, report.skipped_expired), (3, 1));
    let table = ns.nft(&["-y", "list", "table", "inet", "crmonban"]);
    assert!(table.contains("priority -150"), "{table}");
    assert!(
        table.contains("192.0.2.1")
            && table.contains("2001:db8::7")
            && table.contains("10.9.0.0/16"),
        "{table}"
    );
    assert!(
        !table.contains("198.51.100.7")
            && !table.contains("203.0.113.0")
            && !table.contains("192.0.2.2"),
        "{table}"
    );
    // The probe checks the configured priority: the rebuilt layout is complete for -150 only.
    assert!(ns.run(|| fw2.layout_present()).unwrap());
    assert!(!ns.run(|| fw.layout_present()).unwrap());
}

/// `nft -j list table` with what differs between two loads of the same bans removed: handles,
/// the seconds left on each timeout, and the order of hash-set listings.
fn comparable_table(ns: &NetNs, table: &str) -> serde_json::Value {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("handle");
                map.remove("expires");
                if let Some(t) = map.get_mut("timeout") {
                    *t = serde_json::Value::from("timed");
                }
                map.values_mut().for_each(strip);
                if let Some(serde_json::Value::Array(elems)) = map.get_mut("elem") {
                    elems.sort_by_key(|e| e.to_string());
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value: serde_json::Value =
        serde_json::from_str(&ns.nft(&["-j", "list", "table", "inet", table])).unwrap();
    strip(&mut value);
    value["nftables"]
        .as_array_mut()
        .unwrap()
        .retain(|o| o.get("metainfo").is_none());
    value
}

/// Bulk bans (mixed families, timed and permanent) plus networks that merge into a prefix and
/// into a range that is no prefix.
fn bulk_elements(count: u32) -> Vec<Element> {
    let mut elements: Vec<Element> = (0..count)
        .map(|i| {
            let target = if i % 4 == 0 {
                Target::from(std::net::Ipv6Addr::from(
                    0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
                ))
            } else {
                Target::from(std::net::Ipv4Addr::from(0x0A00_0000 + i))
            };
            if i % 3 == 0 {
                Element::permanent(target)
            } else {
                Element::timed(target, Duration::from_secs(3600))
            }
        })
        .collect();
    for net in [
        "192.0.2.0/25",
        "192.0.2.128/25",
        "198.51.100.0/25",
        "198.51.100.128/26",
        "2001:db8:77::/48",
    ] {
        elements.push(Element::timed(t(net), Duration::from_secs(600)));
    }
    elements.push(Element::permanent(t("203.0.113.0/24")));
    elements
}

#[test]
fn root_bulk_netlink_batch_builds_the_same_table_as_json() {
    // The same bans: restored in one bulk batch over netlink in one namespace, added in small
    // batches (JSON, libnftables in-process) in the other.
    let elements = bulk_elements(6_000);
    let layout = Layout {
        priority: -150,
        ..Layout::default()
    };
    let options = |transport| NftOptions {
        layout: layout.clone(),
        transport,
        ..NftOptions::default()
    };
    let bulk_ns = NetNs::new("fw-netlink");
    let mut bulk = bulk_ns
        .run(|| NftBackend::new(options(Transport::Auto)))
        .unwrap();
    let report = bulk_ns.run(|| bulk.replace_all(&elements)).unwrap();
    assert_eq!(report.added, elements.len());
    // Six networks in four intervals: two /25s into a /24, a /25 and a /26 into a range.
    assert_eq!(report.networks_merged, 2, "{report:?}");

    let small_ns = NetNs::new("fw-json");
    let mut small = small_ns
        .run(|| NftBackend::new(options(Transport::Library)))
        .unwrap();
    small_ns.run(|| small.ensure_layout()).unwrap();
    for chunk in elements.chunks(500) {
        let changes: ChangeSet = chunk
            .iter()
            .map(|e| crmonban_firewall::Change::Add(*e))
            .collect();
        small_ns.run(|| small.apply(&changes)).unwrap();
    }
    let netlink_built = comparable_table(&bulk_ns, "crmonban");
    let json_built = comparable_table(&small_ns, "crmonban");
    assert_eq!(netlink_built, json_built);
    let listed = bulk_ns.nft(&["list", "set", "inet", "crmonban", "blocked_v4_net"]);
    assert!(
        listed.contains("192.0.2.0/24") && listed.contains("198.51.100.0-198.51.100.191"),
        "{listed}"
    );
    assert!(
        bulk_ns
            .nft(&["-y", "list", "chain", "inet", "crmonban", "forward"])
            .contains("priority -150"),
    );
    // The bulk load is one transaction, and the backend keeps working after it.
    bulk_ns
        .run(|| bulk.apply(ChangeSet::new().remove(t("10.0.0.1"))))
        .unwrap();
    assert_eq!(
        bulk_ns.run(|| bulk.list()).unwrap().len(),
        small_ns.run(|| small.list()).unwrap().len() - 1
    );
}

#[test]
fn root_bulk_batch_with_a_keyword_table_name_works_on_every_path() {
    // `counter` is an nft keyword: nft's text syntax cannot name it; netlink and JSON can.
    let layout = Layout {
        table: "counter".into(),
        ..Layout::default()
    };
    for transport in [
        Transport::Auto,
        Transport::Library,
        Transport::Binary("nft".into()),
    ] {
        let ns = NetNs::new("fw-keyword");
        let mut fw = ns
            .run(|| {
                NftBackend::new(NftOptions {
                    layout: layout.clone(),
                    transport: transport.clone(),
                    ..NftOptions::default()
                })
            })
            .unwrap();
        let elements = bulk_elements(5_000);
        ns.run(|| fw.replace_all(&elements)).unwrap();
        // Twice: a restore over a restore.
        let report = ns.run(|| fw.replace_all(&elements)).unwrap();
        assert_eq!(report.added, elements.len(), "{transport:?}");
        // 5,000 addresses and four intervals, the range listed as its /25 and /26.
        assert_eq!(
            ns.run(|| fw.list()).unwrap().len(),
            5_000 + 5,
            "{transport:?}"
        );
        assert!(ns.run(|| fw.layout_present()).unwrap());
    }
}

#[test]
fn root_bulk_refusal_names_the_element_and_keeps_the_message_short() {
    for transport in PATHS {
        bulk_refusal_names_the_element(transport);
    }
}

fn bulk_refusal_names_the_element(transport: Transport) {
    let (ns, mut fw) = with_untimed_v4_set("fw-bulkrefuse", transport);
    let changes: ChangeSet = (0..5_000u32)
        .map(|i| {
            let target = Target::from(std::net::Ipv4Addr::from(0x0A00_0000 + i));
            crmonban_firewall::Change::Add(if i == 4_500 {
                Element::timed(target, Duration::from_secs(60))
            } else {
                Element::permanent(target)
            })
        })
        .collect();
    let err = ns.run(|| fw.apply(&changes)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.len() < 1_000,
        "{} bytes: {message:.2000}",
        message.len()
    );
    match &err {
        FirewallError::Refused {
            element: Some(e), ..
        } => assert_eq!(e, "10.0.17.148", "{message}"), // the 4,501st address
        other => panic!("expected a refusal naming the element, got {other:?}"),
    }
    assert!(
        !ns.nft(&["list", "set", "inet", "crmonban", "blocked_v4"])
            .contains("10.0.0.1"),
        "half-applied"
    );
}

/// The timeout `nft list` shows for `element` ("192.0.2.7 timeout 1h59m59s expires ..."),
/// parsed from nft's duration notation (d, h, m, s, ms).
fn listed_timeout(listing: &str, element: &str) -> Option<Duration> {
    let rest = listing.split(&format!("{element} timeout ")).nth(1)?;
    let text = rest.split([' ', ',', '\n', '}']).next()?;
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = std::mem::take(&mut number).parse().ok()?;
        total += match c {
            'd' => Duration::from_secs(n * 86_400),
            'h' => Duration::from_secs(n * 3_600),
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                Duration::from_millis(n)
            }
            'm' => Duration::from_secs(n * 60),
            's' => Duration::from_secs(n),
            _ => return None,
        };
    }
    number.is_empty().then_some(total)
}

/// The kernel keeps timeouts in jiffies and, depending on version and HZ, lists an
/// updated one up to a second short: `expected` within that second.
fn assert_listed_timeout(listing: &str, element: &str, expected: Duration) {
    let listed = listed_timeout(listing, element)
        .unwrap_or_else(|| panic!("no timeout for {element} in {listing}"));
    assert!(
        listed <= expected && expected - listed <= Duration::from_secs(1),
        "{element}: listed {listed:?}, expected {expected:?}: {listing}"
    );
}

#[test]
fn listed_timeouts_are_read_in_nft_notation() {
    let listing = "elements = { 192.0.2.7 timeout 1h59m59s expires 1h59m58s920ms, 10.0.0.0 timeout 1h,\n 2001:db8::8 timeout 59s500ms }";
    let t = |e| listed_timeout(listing, e);
    assert_eq!(t("192.0.2.7"), Some(Duration::from_secs(7199)));
    assert_eq!(t("10.0.0.0"), Some(Duration::from_secs(3600)));
    assert_eq!(t("2001:db8::8"), Some(Duration::from_millis(59_500)));
    assert_eq!(t("192.0.2.8"), None);
}

#[test]
fn root_netlink_path_leaves_what_nft_leaves() {
    // The same ban, re-ban, unban sequence: over netlink (Auto) in one namespace, through the
    // nft binary in the other.
    let steps: Vec<ChangeSet> = vec![
        ChangeSet::new()
            .add(Element::timed(t("192.0.2.7"), Duration::from_secs(600)))
            .add(Element::permanent(t("2001:db8::7")))
            .add(Element::permanent(t("198.51.100.9")))
            .clone(),
        // A longer timeout for a banned address, an unban, and an unban of nothing.
        ChangeSet::new()
            .add(Element::timed(t("192.0.2.7"), Duration::from_secs(7200)))
            .remove(t("2001:db8::7"))
            .remove(t("203.0.113.200"))
            .clone(),
        ChangeSet::new()
            .add(Element::timed(t("2001:db8::8"), Duration::from_secs(60)))
            .clone(),
    ];
    let lane_ns = NetNs::new("fw-lane");
    let mut lane = backend_in(&lane_ns, Transport::Auto);
    assert!(
        lane.describe().contains("via netlink"),
        "{}",
        lane.describe()
    );
    let nft_ns = NetNs::new("fw-nftbin");
    let mut nft = backend_in(&nft_ns, Transport::Binary("nft".into()));
    for (ns, fw) in [(&lane_ns, &mut lane), (&nft_ns, &mut nft)] {
        ns.run(|| fw.ensure_layout()).unwrap();
        for step in &steps {
            let report = ns.run(|| fw.apply(step)).unwrap();
            assert_eq!(report.transactions, 1);
        }
    }
    assert_eq!(
        comparable_table(&lane_ns, "crmonban"),
        comparable_table(&nft_ns, "crmonban")
    );
    let v4 = lane_ns.nft(&["list", "set", "inet", "crmonban", "blocked_v4"]);
    assert_listed_timeout(&v4, "192.0.2.7", Duration::from_secs(7200));
    assert!(v4.contains("198.51.100.9"), "{v4}");
    let v6 = lane_ns.nft(&["list", "set", "inet", "crmonban", "blocked_v6"]);
    assert_listed_timeout(&v6, "2001:db8::8", Duration::from_secs(60));
    assert!(!v6.contains("2001:db8::7"), "{v6}");
}

/// The element count read over netlink (the repair check after someone else changed the
/// ruleset) matches what was loaded; an interval set holds at least one element per
/// interval (the kernel's representation may add one).
#[test]
fn root_element_counts_match_the_loaded_sets() {
    let ns = NetNs::new("fw-count");
    let mut fw = backend_in(&ns, Transport::Auto);
    let mut elements = bulk_elements(100_000);
    elements.push(Element::permanent(t("203.0.113.0/24")));
    elements.push(Element::permanent(t("198.51.100.0/24")));
    elements.push(Element::permanent(t("2001:db8:1::/48")));
    ns.run(|| fw.replace_all(&elements)).unwrap();
    let started = std::time::Instant::now();
    let counts = ns.run(|| fw.element_counts()).unwrap().unwrap();
    eprintln!("counted {counts:?} in {:?}", started.elapsed());
    assert_eq!(counts[..2], [75_000, 25_000]);
    assert!(counts[2] >= 2 && counts[3] >= 1, "{counts:?}");
}

/// A set created for 16 addresses refuses a batch that would take it past that: the error
/// names the set, nothing changed (no transaction, the elements as they were), on every path;
/// `replace_all` with the elements and the batch rebuilds the sets larger, keeping each
/// timeout, and single bans go on working until that size is reached too.
#[test]
fn root_a_full_address_set_refuses_the_batch_whole_until_rebuilt_larger() {
    for transport in PATHS {
        let ns = NetNs::new("fw-full");
        let mut fw = ns
            .run(|| {
                NftBackend::new(NftOptions {
                    transport: transport.clone(),
                    set_capacity: 16,
                    ..NftOptions::default()
                })
            })
            .unwrap();
        ns.run(|| fw.ensure_layout()).unwrap();
        let v4 = |i: u32| Target::from(std::net::Ipv4Addr::from(0x0A00_0000 + i));
        let mut first = ChangeSet::new();
        for i in 0..10 {
            first.add(Element::timed(v4(i), Duration::from_secs(3600)));
        }
        first.add(Element::permanent(t("2001:db8::1")));
        first.add(Element::permanent(t("198.51.100.0/24")));
        ns.run(|| fw.apply(&first)).unwrap();
        // 20 more in one batch: past the 16 the set was made for.
        let more: ChangeSet = (10..30)
            .map(|i| crmonban_firewall::Change::Add(Element::permanent(v4(i))))
            .collect();
        let before = ns.run(ruleset_generation).unwrap();
        match ns.run(|| fw.apply(&more)) {
            Err(FirewallError::SetFull(why)) => {
                assert!(why.contains("blocked_v4") && why.contains("16"), "{why}")
            }
            other => panic!("{transport:?}: expected SetFull, got {other:?}"),
        }
        assert_eq!(ns.run(ruleset_generation).unwrap(), before, "{transport:?}");
        let counts = ns.run(|| fw.element_counts()).unwrap().unwrap();
        assert_eq!(
            counts[..2],
            [10, 1],
            "{transport:?}: nothing of the batch applied"
        );

        let mut all = first.changes.clone();
        all.extend(more.changes.iter().copied());
        let elements: Vec<Element> = all
            .iter()
            .filter_map(|c| match c {
                crmonban_firewall::Change::Add(e) => Some(*e),
                crmonban_firewall::Change::Remove(_) => None,
            })
            .collect();
        ns.run(|| fw.replace_all(&elements))
            .expect("rebuilt larger");
        // Made for half as many again as it loaded: 45.
        let one = |i: u32| {
            ChangeSet::new()
                .add(Element::timed(v4(i), Duration::from_secs(600)))
                .clone()
        };
        for i in 30..45 {
            ns.run(|| fw.apply(&one(i)))
                .expect("single bans keep working");
        }
        let refused = ns.run(|| fw.apply(&one(45)));
        assert!(
            matches!(refused, Err(FirewallError::SetFull(_))),
            "{transport:?}: {refused:?}"
        );
        let counts = ns.run(|| fw.element_counts()).unwrap().unwrap();
        assert_eq!(counts[..2], [45, 1], "{transport:?}");
        assert!(counts[2] >= 1, "{counts:?}");
        let listed = ns.nft(&["list", "set", "inet", "crmonban", "blocked_v4"]);
        assert_listed_timeout(&listed, "10.0.0.0", Duration::from_secs(3600));
        assert!(listed.contains("10.0.0.29,"), "{transport:?}: {listed}");
        assert!(ns.run(|| fw.layout_present()).unwrap());
    }
}

/// The sizes the address sets are created with: what was asked for, and above 65,535 rounded
/// up to end in sixteen one bits (the kernel keeps the low 16 bits as its table hint), so a
/// restore of 786,432 (12 x 65,536) addresses gets the largest first table, not the smallest.
#[test]
fn root_address_sets_are_sized_for_the_largest_first_table() {
    let ns = NetNs::new("fw-size");
    let mut fw = backend_in(&ns, Transport::Auto);
    ns.run(|| fw.ensure_layout()).unwrap();
    let listed = ns.nft(&["list", "set", "inet", "crmonban", "blocked_v4"]);
    assert!(listed.contains("size 131071"), "{listed}");
    // 524,288 addresses of each family: the sets are made for 786,432, i.e. 786,432 | 0xFFFF.
    let elements: Vec<Element> = (0..1_048_576u32)
        .map(|i| {
            let target = if i.is_multiple_of(2) {
                Target::from(std::net::Ipv4Addr::from(0x0B00_0000 + i))
            } else {
                Target::from(std::net::Ipv6Addr::from(
                    0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
                ))
            };
            Element::timed(target, Duration::from_secs(3600))
        })
        .collect();
    ns.run(|| fw.replace_all(&elements)).unwrap();
    for set in ["blocked_v4", "blocked_v6"] {
        let header = ns.nft(&["-t", "list", "set", "inet", "crmonban", set]);
        assert!(header.contains("size 851967"), "{set}: {header}");
    }
}

/// A million mixed bans (IPv4 and IPv6, timed and permanent) and 10,000 networks in one
/// `apply`: one transaction (the ruleset generation moves by one), and a sample of the
/// elements, looked up one by one in the kernel rather than listed, is there with its timeout;
/// addresses never banned are not.
#[test]
fn root_a_million_bans_apply_in_one_transaction_and_a_sample_is_in_the_kernel() {
    const BANS: u32 = 1_000_000;
    const NETS: u32 = 10_000;
    let ns = NetNs::new("fw-1m");
    // Sets made for the million, as an embedder loading that many would create them.
    let mut fw = ns
        .run(|| {
            NftBackend::new(NftOptions {
                set_capacity: BANS,
                ..NftOptions::default()
            })
        })
        .unwrap();
    ns.run(|| fw.ensure_layout()).unwrap();
    let address = |i: u32| {
        if i.is_multiple_of(2) {
            Target::from(std::net::Ipv4Addr::from(0x0B00_0000 + i))
        } else {
            Target::from(std::net::Ipv6Addr::from(
                0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
            ))
        }
    };
    // 100.64.0.0/24, 100.64.1.0/24, ... (10,000 of them, inside 100.64.0.0/10) and /64s.
    let network = |k: u32| {
        if k.is_multiple_of(2) {
            Target::Net(ipnet::IpNet::from(
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(0x6440_0000 + (k << 8)), 24).unwrap(),
            ))
        } else {
            Target::Net(ipnet::IpNet::from(
                ipnet::Ipv6Net::new(
                    std::net::Ipv6Addr::from(
                        0x2001_0db8_7700_0000_0000_0000_0000_0000u128 + (u128::from(k) << 64),
                    ),
                    64,
                )
                .unwrap(),
            ))
        }
    };
    let hour = Duration::from_secs(3600);
    let mut changes = ChangeSet::new();
    for i in 0..BANS {
        if i % 3 == 0 {
            changes.add(Element::permanent(address(i)));
        } else {
            changes.add(Element::timed(address(i), hour));
        }
    }
    for k in 0..NETS {
        changes.add(Element::timed(network(k), Duration::from_secs(600)));
    }
    let before = ns.run(ruleset_generation).unwrap();
    let started = std::time::Instant::now();
    let report = ns.run(|| fw.apply(&changes)).unwrap();
    eprintln!(
        "applied {} elements in {:?}",
        changes.len(),
        started.elapsed()
    );
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(
        ns.run(ruleset_generation).unwrap(),
        before.wrapping_add(1),
        "one transaction"
    );

    let now = crmonban_core::unix_now();
    let sample: Vec<u32> = (0..BANS).step_by(997).collect();
    let mut targets: Vec<Target> = sample.iter().map(|&i| address(i)).collect();
    let nets: Vec<u32> = (0..NETS).step_by(101).collect();
    targets.extend(nets.iter().map(|&k| network(k)));
    // Never banned: past the end of each range.
    targets.push(address(BANS));
    targets.push(address(BANS + 1));
    targets.push(t("100.127.255.1"));
    let started = std::time::Instant::now();
    let found = ns.run(|| fw.lookup(&targets)).unwrap().unwrap();
    eprintln!(
        "looked up {} elements in {:?}",
        targets.len(),
        started.elapsed()
    );
    for (k, &i) in sample.iter().enumerate() {
        match found[k] {
            Some(crmonban_firewall::Expiry::Never) => assert_eq!(i % 3, 0, "{}", address(i)),
            Some(crmonban_firewall::Expiry::At(end)) => {
                assert_ne!(i % 3, 0, "{} should be permanent", address(i));
                assert!(
                    (now + 3590..=now + 3601).contains(&end),
                    "{}: {end} vs {now}",
                    address(i)
                );
            }
            None => panic!("{} is not in the kernel", address(i)),
        }
    }
    for (j, &k) in nets.iter().enumerate() {
        match found[sample.len() + j] {
            Some(crmonban_firewall::Expiry::At(end)) => {
                assert!(
                    (now + 590..=now + 601).contains(&end),
                    "{}: {end}",
                    network(k)
                )
            }
            other => panic!("{}: {other:?}", network(k)),
        }
    }
    assert_eq!(
        &found[found.len() - 3..],
        &[None, None, None],
        "never banned"
    );
}

/// The counters `drop_counters` reads over netlink are those nft lists, rule by rule, and they
/// grow with what a ban dropped.
#[test]
fn root_drop_counters_are_what_nft_lists_and_count_dropped_packets() {
    let (a, b) = pair();
    let mut fw = backend_in(&b, Transport::Library);
    b.run(|| fw.ensure_layout()).unwrap();
    let layout = Layout::default();
    let before = b.run(|| drop_counters(&layout)).unwrap();
    assert_eq!(before.len(), 8, "{before:?}");
    assert!(before.iter().all(|c| c.packets == 0 && c.bytes == 0));
    let (a4, b4): (IpAddr, IpAddr) = ("10.77.0.1".parse().unwrap(), "10.77.0.2".parse().unwrap());
    ban(
        &b,
        &mut fw,
        ChangeSet::new().add(Element::permanent(Target::from(a4))),
    );
    assert!(!udp_reaches(&a, &b, b4, QUIET));
    let after = b.run(|| drop_counters(&layout)).unwrap();
    let input_v4 = after
        .iter()
        .find(|c| c.chain == "input" && c.set == "blocked_v4")
        .expect("the input chain's rule for blocked_v4");
    assert!(input_v4.ipv4);
    assert!(input_v4.packets >= 1, "{input_v4:?}");
    assert!(input_v4.bytes >= 28 * input_v4.packets, "{input_v4:?}");
    // Rule by rule, what nft itself lists.
    for chain in ["input", "forward"] {
        let listing = b.nft(&["list", "chain", "inet", "crmonban", chain]);
        for line in listing.lines().filter(|l| l.contains(" counter packets ")) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let set = words[2].trim_start_matches('@');
            let packets: u64 = words[5].parse().unwrap();
            let bytes: u64 = words[7].parse().unwrap();
            let read = after
                .iter()
                .find(|c| c.chain == chain && c.set == set)
                .unwrap_or_else(|| panic!("no counter read for {chain} {set}"));
            assert_eq!((read.packets, read.bytes), (packets, bytes), "{line}");
        }
    }
    // No table: no counters, no error.
    b.run(|| fw.teardown()).unwrap();
    assert_eq!(b.run(|| drop_counters(&layout)).unwrap(), Vec::new());
}

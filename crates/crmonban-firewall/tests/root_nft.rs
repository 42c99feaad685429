//! Privileged tests of NftBackend against the real kernel, each in network namespaces of its
//! own (removed on drop). They panic without root.

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crmonban_core::Target;
use crmonban_firewall::{
    ChangeSet, Element, FirewallBackend, FirewallError, Layout, NftBackend, NftOptions, Transport,
};
use crmonban_testutil::{End, NetNs, connect, tcp_connects, udp_reaches};

const WAIT: Duration = Duration::from_millis(700);

fn t(s: &str) -> Target {
    Target::parse(s).unwrap()
}

fn backend_in(ns: &NetNs, transport: Transport) -> NftBackend {
    ns.run(|| {
        NftBackend::new(NftOptions {
            layout: Layout::default(),
            transport,
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
		flags timeout
	}

	set blocked_v6 {
		type ipv6_addr
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
        udp_reaches(&a, &b, b4, WAIT),
        "IPv4 must pass before any ban"
    );
    ban(
        &b,
        &mut fw,
        ChangeSet::new().add(Element::permanent(Target::from(a4))),
    );
    assert!(
        !udp_reaches(&a, &b, b4, WAIT),
        "banned IPv4 source still reaches B"
    );
    assert!(
        !tcp_connects(&a, &b, b4, WAIT),
        "banned IPv4 source can still connect"
    );
    ban(&b, &mut fw, ChangeSet::new().remove(Target::from(a4)));
    assert!(udp_reaches(&a, &b, b4, WAIT), "IPv4 must pass after unban");

    assert!(
        udp_reaches(&a, &b, b6, WAIT),
        "IPv6 must pass before any ban"
    );
    ban(
        &b,
        &mut fw,
        ChangeSet::new().add(Element::permanent(Target::from(a6))),
    );
    assert!(
        !udp_reaches(&a, &b, b6, WAIT),
        "banned IPv6 source still reaches B"
    );
    ban(&b, &mut fw, ChangeSet::new().remove(Target::from(a6)));
    assert!(udp_reaches(&a, &b, b6, WAIT), "IPv6 must pass after unban");

    ban(
        &b,
        &mut fw,
        ChangeSet::new()
            .add(Element::timed(t("10.77.0.0/28"), Duration::from_secs(600)))
            .add(Element::permanent(t("fd77::/120"))),
    );
    assert!(
        !udp_reaches(&a, &b, b4, WAIT),
        "an address inside a banned IPv4 network passes"
    );
    assert!(
        !udp_reaches(&a, &b, b6, WAIT),
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
        udp_reaches(&a, &b, b4, WAIT) && udp_reaches(&a, &b, b6, WAIT),
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
    ban(
        &b,
        &mut fw,
        ChangeSet::new().add(Element::timed(t("10.77.0.1"), Duration::from_secs(2))),
    );
    assert!(!udp_reaches(&a, &b, b4, WAIT));
    std::thread::sleep(Duration::from_millis(2300));
    assert!(
        udp_reaches(&a, &b, b4, WAIT),
        "the kernel did not expire a 2 s ban"
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
        udp_reaches(&a, &b, b4, WAIT) && udp_reaches(&a, &b, b6, WAIT),
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
        !udp_reaches(&a, &b, b4, WAIT),
        "routed IPv4 from a banned source passes R"
    );
    assert!(
        !udp_reaches(&a, &b, b6, WAIT),
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
    // Watch the namespace's transactions: each commit prints one "new generation" line.
    let log = tempfile::NamedTempFile::new().unwrap();
    // Spawned from a thread inside the namespace (not through `ip netns exec`, which forks and
    // would leave nft running after a kill): a monitor left behind slows every nftables
    // transaction on the host, in every namespace.
    let mut monitor = ns.run(|| {
        Command::new("nft")
            .arg("monitor")
            .stdout(Stdio::from(log.reopen().unwrap()))
            .spawn()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(500));
    let report = ns.run(|| fw.apply(&changes)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // SIGINT lets nft flush what it printed.
    crmonban_testutil::run("kill", &["-INT", &monitor.id().to_string()]);
    monitor.wait().unwrap();
    let out = std::fs::read_to_string(log.path()).unwrap();
    let generations = out
        .lines()
        .filter(|l| l.starts_with("# new generation"))
        .count();
    assert_eq!(
        generations,
        1,
        "expected one transaction, monitor saw:\n{}",
        &out[..out.len().min(2000)]
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

#[test]
fn root_kernel_refusal_names_the_element_and_applies_nothing() {
    let ns = NetNs::new("fw-refuse");
    // Someone else's sets with a size limit under our names: the kernel refuses the 4th element.
    ns.nft(&["add", "table", "inet", "crmonban"]);
    ns.nft(&[
        "add",
        "set",
        "inet",
        "crmonban",
        "blocked_v4",
        "{ type ipv4_addr; flags timeout; size 3; }",
    ]);
    let mut fw = backend_in(&ns, Transport::Library);
    ns.run(|| fw.ensure_layout()).unwrap();
    let mut changes = ChangeSet::new();
    for last in 1..=5 {
        changes.add(Element::permanent(t(&format!("192.0.2.{last}"))));
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
    let mut cli = backend_in(&ns, Transport::Binary("nft".into()));
    assert!(ns.run(|| cli.layout_present()).unwrap());
}

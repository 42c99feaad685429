use std::time::Duration;

use crmonban_core::Target;
use crmonban_ebpf::{ModeChoice, XdpFastPath, XdpOptions};
use crmonban_firewall::{ChangeSet, Element, FirewallBackend};
use crmonban_testutil::{End, NetNs, connect, udp_reaches};

#[test]
fn root_smoke() {
    let a = NetNs::new("xs-a");
    let b = NetNs::new("xs-b");
    let (_ia, ib) = connect(
        End {
            ns: &a,
            v4: "203.0.113.5/24",
            v6: "2001:db8:5::5/64",
        },
        End {
            ns: &b,
            v4: "203.0.113.9/24",
            v6: "2001:db8:5::9/64",
        },
    );
    let mut xdp = b.run(|| {
        let mut xdp = XdpFastPath::load(XdpOptions {
            interfaces: vec![ib.clone()],
            mode: ModeChoice::Auto,
            pin: None,
            max_entries: 1000,
        })
        .unwrap();
        let failures = xdp.attach();
        assert!(failures.is_empty(), "{failures:?}");
        xdp
    });
    eprintln!("{}", xdp.describe());
    assert!(udp_reaches(
        &a,
        &b,
        "203.0.113.9".parse().unwrap(),
        Duration::from_secs(2)
    ));
    xdp.apply(ChangeSet::new().add(Element::permanent(Target::parse("203.0.113.5").unwrap())))
        .unwrap();
    assert!(!udp_reaches(
        &a,
        &b,
        "203.0.113.9".parse().unwrap(),
        Duration::from_secs(1)
    ));
    let stats = xdp.stats().unwrap();
    eprintln!("{stats:?}");
    assert!(stats.dropped_v4.packets > 0);
}

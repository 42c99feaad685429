//! The XDP fast path through the real daemon: bans made over D-Bus reach the XDP maps (read
//! back with bpftool from the pins) and drop an attacker's packets in XDP, unbans let them
//! through; Status and GetStats show the counters and the mode; a stop detaches the program
//! and keeps the pins, a restart reuses them, kill -9 leaves nothing attached; a reload that
//! changes an `[ebpf]` key is refused. Panics without root.

mod support;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crmonban_testutil::{End, NetNs, PATIENCE, PrivateBus, connect, udp_reaches, wait_until};
use support::*;

/// A BPF file system of this test's own (mounted on a temporary directory, so nothing of the
/// host's /sys/fs/bpf is touched, and present where the host has none mounted) with the pin
/// directory in it; unmounted on drop.
struct Pins {
    mount: tempfile::TempDir,
    dir: PathBuf,
}

impl Pins {
    fn new() -> Pins {
        let mount = tempfile::tempdir().unwrap();
        let point = mount.path().to_str().unwrap();
        let out = crmonban_testutil::run("mount", &["-t", "bpf", "bpf", point]);
        assert!(out.status.success(), "mount -t bpf: {}", text(&out.stderr));
        let dir = mount.path().join("crmonban_blacklist");
        Pins { mount, dir }
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::process::Command::new("umount")
            .arg(self.mount.path())
            .output();
    }
}

/// The host namespace's interface towards the attacker, and the attacker.
fn linked_host() -> (NetNs, NetNs, String) {
    let host = NetNs::new("d-xdp");
    let attacker = NetNs::new("d-xatk");
    let (_, host_side) = connect(
        End {
            ns: &attacker,
            v4: "10.77.0.1/24",
            v6: "fd77::1/64",
        },
        End {
            ns: &host,
            v4: "10.77.0.2/24",
            v6: "fd77::2/64",
        },
    );
    (host, attacker, host_side)
}

fn config(interfaces: &[&str], pins: &Path) -> String {
    let list: Vec<String> = interfaces.iter().map(|i| format!("{i:?}")).collect();
    format!(
        "[ebpf]\nenabled = true\nmethod = \"mapfile\"\npin_path = \"{}\"\ninterfaces = [{}]\nsync_interval_secs = 1\n",
        pins.display(),
        list.join(", ")
    )
}

fn stats(daemon: &Daemon) -> serde_json::Value {
    let out = daemon.ctl(&["stats", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn status(daemon: &Daemon) -> String {
    let out = daemon.ctl(&["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// The value of `key` in `crmonctl status` output (`key:   value`).
fn value<'a>(shown: &'a str, key: &str) -> &'a str {
    shown
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .map_or("", str::trim)
}

fn reaches(attacker: &NetNs, host: &NetNs) -> bool {
    let to: IpAddr = HOST_V4.parse().unwrap();
    udp_reaches(attacker, host, to, Duration::from_millis(700))
}

/// The IPv4 map as `bpftool` reads it from the pin: each entry's key bytes.
fn pinned_v4_keys(pins: &Path) -> Vec<Vec<u8>> {
    let out = crmonban_testutil::run(
        "bpftool",
        &[
            "-j",
            "map",
            "dump",
            "pinned",
            pins.join("blocked_v4").to_str().unwrap(),
        ],
    );
    let dump: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bpftool output: {e}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    dump.as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            entry["key"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let b = b.as_str().unwrap().trim_start_matches("0x");
                    u8::from_str_radix(b, 16).unwrap()
                })
                .collect()
        })
        .collect()
}

/// The key of the attacker's address in `blocked_v4`: the address in network order.
fn attacker_key() -> Vec<u8> {
    vec![10, 77, 0, 1]
}

/// The name of the XDP program on `interface`, as `ip -d link` reports it.
fn attached(host: &NetNs, interface: &str) -> Option<String> {
    let out = host.ip(&["-j", "-d", "link", "show", "dev", interface]);
    let links: serde_json::Value = serde_json::from_str(&out).unwrap();
    links[0]["xdp"]["prog"]["name"].as_str().map(str::to_owned)
}

#[test]
fn root_bans_drop_in_xdp_and_the_program_never_outlives_the_daemon() {
    let pins = Pins::new();
    let (host, attacker, interface) = linked_host();
    let config = format!(
        "{}\n[metrics]\nenabled = true\n",
        config(&[&interface], &pins.dir)
    );
    let mut daemon = Daemon::start_on(host, PrivateBus::system_like(&policy_file()), &config);

    let shown = status(&daemon);
    assert_eq!(value(&shown, "xdp_state"), "running", "{shown}");
    assert_eq!(
        value(&shown, "xdp_interfaces"),
        format!("{interface}: native"),
        "veth takes native XDP: {shown}"
    );
    assert_eq!(
        attached(&daemon.host, &interface).as_deref(),
        Some("crmonban_xdp")
    );
    assert!(
        reaches(&attacker, &daemon.host),
        "traffic flows before the ban"
    );

    let out = daemon.ctl(&["ban", ATTACKER_V4, "-d", "0", "-r", "xdp test"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_until("the ban in the pinned XDP map", PATIENCE, || {
        pinned_v4_keys(&pins.dir)
            .contains(&attacker_key())
            .then_some(())
    })
    .unwrap();
    assert!(!reaches(&attacker, &daemon.host), "banned: dropped");
    let xdp = &stats(&daemon)["xdp"];
    let dropped = xdp["dropped"]["ipv4"]["packets"].as_u64().unwrap();
    assert!(dropped > 0, "the XDP program dropped them: {xdp}");
    assert_eq!(xdp["interfaces"][0]["mode"], "native", "{xdp}");
    assert_eq!(xdp["method"], "mapfile", "{xdp}");
    let shown = status(&daemon);
    let counted: u64 = value(&shown, "xdp_dropped_v4").parse().unwrap();
    assert!(counted >= dropped, "Status counts the drops: {shown}");
    // And so do the metrics.
    let metrics = daemon.host.run(scrape_metrics);
    let series = |name: &str| -> Option<f64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    };
    let xdp_packets = series("crmonban_dropped_packets_total{path=\"xdp\",family=\"ipv4\"}")
        .unwrap_or_else(|| panic!("no XDP drop series:\n{metrics}"));
    assert!(xdp_packets >= dropped as f64, "{metrics}");
    assert!(
        series("crmonban_dropped_bytes_total{path=\"xdp\",family=\"ipv4\"}")
            .is_some_and(|bytes| bytes >= 42.0 * xdp_packets),
        "{metrics}"
    );
    assert_eq!(series("crmonban_xdp_interfaces"), Some(1.0), "{metrics}");

    // A changed [ebpf] key needs a restart: the reload is refused, naming it.
    std::fs::write(
        &daemon.config,
        std::fs::read_to_string(&daemon.config)
            .unwrap()
            .replace("sync_interval_secs = 1", "sync_interval_secs = 2"),
    )
    .unwrap();
    let out = daemon.ctl(&["reload"]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("ebpf.sync_interval_secs") && said.contains("restart"),
        "{said}"
    );

    // A stop takes the program off the interface and leaves the pins with the ban.
    daemon.signal("TERM");
    assert!(daemon.wait_exit().success(), "{}", daemon.log());
    assert_eq!(attached(&daemon.host, &interface), None);
    assert!(pinned_v4_keys(&pins.dir).contains(&attacker_key()));

    // A restart reuses the pins, and the ban (restored from the database) drops again.
    daemon.spawn(&[]);
    assert!(
        daemon.log().contains("XDP fast path"),
        "the start is logged: {}",
        daemon.log()
    );
    assert!(
        !reaches(&attacker, &daemon.host),
        "still banned after restart"
    );

    // Unban lets the traffic through again, in XDP and in nftables.
    let out = daemon.ctl(&["unban", ATTACKER_V4]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_until("the unban in the pinned map", PATIENCE, || {
        (!pinned_v4_keys(&pins.dir).contains(&attacker_key())).then_some(())
    })
    .unwrap();
    assert!(reaches(&attacker, &daemon.host), "unbanned: through");

    // kill -9: the link dies with the process, nothing stays attached.
    assert!(attached(&daemon.host, &interface).is_some());
    daemon.signal("KILL");
    daemon.wait_exit();
    wait_until("the program to be detached", PATIENCE, || {
        attached(&daemon.host, &interface).is_none().then_some(())
    })
    .unwrap();
}

#[test]
fn root_a_missing_interface_is_reported_and_the_daemon_runs_on() {
    let pins = Pins::new();
    let (host, attacker, interface) = linked_host();
    let config = config(&["nosuch0", &interface], &pins.dir);
    let daemon = Daemon::start_on(host, PrivateBus::system_like(&policy_file()), &config);
    let shown = status(&daemon);
    let interfaces = value(&shown, "xdp_interfaces");
    assert!(
        interfaces.contains(&format!("{interface}: native"))
            && interfaces.contains("nosuch0: not attached: no such interface"),
        "the other interface still attaches: {shown}"
    );
    assert!(daemon.log().contains("nosuch0"), "logged: {}", daemon.log());
    // Bans work either way (nftables).
    let out = daemon.ctl(&["ban", ATTACKER_V4]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!reaches(&attacker, &daemon.host));
}

/// `GET /metrics` from the daemon's endpoint on the calling thread's loopback, over a plain
/// HTTP/1.0 exchange.
fn scrape_metrics() -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect("127.0.0.1:9717").expect("the metrics port");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    body.to_owned()
}

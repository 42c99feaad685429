//! The systemd unit as an administrator installs it: `systemd-analyze security --offline=yes`
//! rates deploy/crmonban.service 2.5 or lower ("OK"), and 2.8 or lower with the XDP drop-in
//! (deploy/crmonban-xdp.conf: three capabilities and the bpf system call more), and the unit, the drop-in and the D-Bus activation file agree
//! with each other on what runs and with which privileges.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(workspace().join(relative))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

/// The exposure `systemd-analyze security --offline=yes` gives the unit in `text`, named
/// crmonban.service in a directory of its own.
fn exposure(text: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("crmonban.service");
    std::fs::write(&unit, text).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian's systemd package; cargo xtask test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    stdout
        .lines()
        .find_map(|line| {
            let rest = line
                .split("Overall exposure level for crmonban.service:")
                .nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}\n{stderr}"))
}

/// Every value of `key=` in the unit text, in order.
fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_unit_is_rated_2_5_or_lower() {
    let unit = read("deploy/crmonban.service");
    let level = exposure(&unit);
    assert!(
        level <= 2.5,
        "systemd-analyze security rates the unit {level}"
    );
}

#[test]
fn the_unit_with_the_xdp_drop_in_is_rated_2_8_or_lower() {
    let unit = read("deploy/crmonban.service");
    let drop_in = read("deploy/crmonban-xdp.conf");
    // A drop-in's [Service] lines apply after the unit's: the same as appending them.
    let level = exposure(&format!("{unit}\n{drop_in}"));
    assert!(level <= 2.8, "with the XDP drop-in: {level}");
}

#[test]
fn only_the_xdp_drop_in_grants_bpf() {
    let unit = read("deploy/crmonban.service");
    let capabilities = values(&unit, "CapabilityBoundingSet").join(" ");
    assert_eq!(capabilities, "CAP_NET_ADMIN CAP_DAC_READ_SEARCH");
    assert_eq!(
        values(&unit, "SystemCallFilter"),
        ["@system-service", "~@privileged @resources"]
    );
    for key in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6",
        "SystemCallArchitectures=native",
        "MemoryDenyWriteExecute=yes",
        "Type=notify",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|line| line == key), "{key} missing");
    }
    let drop_in = read("deploy/crmonban-xdp.conf");
    assert_eq!(
        values(&drop_in, "CapabilityBoundingSet"),
        ["CAP_BPF CAP_PERFMON CAP_NET_RAW"]
    );
    assert_eq!(values(&drop_in, "SystemCallFilter"), ["bpf"]);
}

#[test]
fn the_unit_and_the_bus_activation_start_the_same_binary() {
    let unit = read("deploy/crmonban.service");
    let activation = read("dbus/org.crmonban.Daemon.service");
    let start = values(&unit, "ExecStart");
    assert_eq!(start, ["/usr/sbin/crmonband start --foreground"]);
    assert_eq!(values(&activation, "Exec"), start);
    assert_eq!(values(&activation, "SystemdService"), ["crmonban.service"]);
}

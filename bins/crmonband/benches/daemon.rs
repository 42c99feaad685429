//! Daemon benchmarks (root; run by `cargo xtask bench`), in a network namespace and on a private
//! system-like bus of their own. Prints `name: value` lines.
//!
//! - restore at start: 100,000 active bans in the database (mixed IPv4/IPv6, timed and
//!   permanent) -> the real `crmonband start -f` answers on the bus with all of them in the
//!   kernel; the daemon's own restore time is taken from its log;
//! - `crmonctl ban` round trip (process start, bus call, kernel, database, reply): median and p99
//!   of 200, with those 100,000 bans loaded;
//! - the same call through an in-process D-Bus proxy, without the process start.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crmonban_core::{Ban, BanSource, Target, unix_now};
use crmonban_testutil::{NetNs, PrivateBus};

const BANS: u32 = 100_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crmonctl() -> PathBuf {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-q", "-p", "crmonctl"])
        .current_dir(workspace())
        .status()
        .expect("cargo build crmonctl");
    assert!(status.success());
    workspace().join("target/release/crmonctl")
}

fn target(i: u32) -> Target {
    if i.is_multiple_of(2) {
        Target::from(Ipv4Addr::from(0x0C00_0000 + i))
    } else {
        Target::from(Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
        ))
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let host = NetNs::new("bench-d");
    let bus = PrivateBus::system_like(&workspace().join("dbus/org.crmonban.Daemon.conf"));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crmonban.db");
    let now = unix_now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = crmonban_store::Store::open(&db).await.unwrap();
        let bans: Vec<Ban> = (0..BANS)
            .map(|i| Ban {
                target: target(i),
                reason: "bench".into(),
                source: BanSource::Detector,
                service: Some("ssh".into()),
                banned_at: now,
                expires_at: (!i.is_multiple_of(4)).then_some(now + 86_400),
                offence: 1,
            })
            .collect();
        store.record_bans(&bans).await.unwrap();
        store.close().await;
    });
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[general]\ndb_path = \"{d}/crmonban.db\"\npid_file = \"{d}/crmonband.pid\"\nstate_dir = \"{d}\"\nlog_level = \"info\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let ctl = crmonctl();
    let log_path = dir.path().join("daemon.log");
    let started = Instant::now();
    let mut daemon = host.run(|| {
        Command::new(env!("CARGO_BIN_EXE_crmonband"))
            .args(["-c", config.to_str().unwrap(), "start", "-f"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap()
    });
    let ready = loop {
        let out = Command::new(&ctl)
            .arg("status")
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .output()
            .unwrap();
        if out.status.success() {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "daemon not ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    println!("start_with_100k_bans_until_answering: {}", ms(ready));
    if let Some(ms_text) = log
        .lines()
        .find(|l| l.contains("active bans restored in one transaction"))
        .and_then(|l| l.split("elapsed_ms=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
    {
        println!("engine_restore_100k: {ms_text} ms");
    }
    let listed = host.nft(&["list", "set", "inet", "crmonban", "blocked_v4"]);
    assert!(
        listed.contains("12.0.0.2"),
        "restored bans missing from the kernel"
    );

    let mut times: Vec<Duration> = (0..200u32)
        .map(|k| {
            let ip = Ipv4Addr::from(0xC633_6400 + k).to_string(); // 198.51.100.0/24
            let start = Instant::now();
            let out = Command::new(&ctl)
                .args(["ban", &ip, "-d", "600", "-r", "bench"])
                .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
                .output()
                .unwrap();
            let elapsed = start.elapsed();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            elapsed
        })
        .collect();
    times.sort();
    println!(
        "crmonctl_ban_round_trip_median: {}",
        ms(percentile(&times, 0.5))
    );
    println!(
        "crmonctl_ban_round_trip_p99: {}",
        ms(percentile(&times, 0.99))
    );

    let mut times: Vec<Duration> = runtime.block_on(async {
        let conn = zbus::connection::Builder::address(bus.address())
            .build()
            .await
            .unwrap();
        let proxy = crmonban_dbus::DaemonProxy::new(&conn).await.unwrap();
        let mut times = Vec::new();
        for k in 0..500u32 {
            let ip = Ipv4Addr::from(0xCB00_7100 + (k % 250)).to_string(); // 203.0.113.0/24
            let start = Instant::now();
            proxy.ban(&ip, 600, "bench").await.unwrap();
            times.push(start.elapsed());
        }
        times
    });
    times.sort();
    println!("dbus_ban_call_median: {}", ms(percentile(&times, 0.5)));
    println!("dbus_ban_call_p99: {}", ms(percentile(&times, 0.99)));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).unwrap_or_default();
    if let Some(rss) = status.lines().find(|l| l.starts_with("VmRSS:")) {
        println!(
            "daemon_rss_with_100k_bans: {}",
            rss.trim_start_matches("VmRSS:").trim()
        );
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
}

//! Daemon benchmarks (root; run by `cargo xtask bench`), in network namespaces and on a private
//! system-like bus of their own. Prints `name: value` lines.
//!
//! - idle: the real `crmonband start -f` with an empty database, its resident memory once it
//!   answers on the bus;
//! - restart with 100,000 active bans in the database (mixed IPv4/IPv6, timed and permanent):
//!   from spawning the process until every ban is in the kernel (watched by looking elements up
//!   over netlink: the first stored and the last; the restore into a kernel without our
//!   table goes in parts in the order of the rows, so the last seen means all), and until it answers on the bus; the daemon's own restore time from its log;
//! - `crmonctl ban` round trip (process start, bus call, kernel, database, reply): median and p99
//!   of 200, with those 100,000 bans loaded; the same call through an in-process D-Bus proxy;
//!   the daemon's resident memory then;
//! - start with 1,000,000 stored bans: spawn -> every ban in the kernel, against `nft -f` of
//!   the same elements in the same run, two passes each in turns, the better of each kept;
//!   resident memory, and the bytes each ban costs.

#[path = "support/shipped.rs"]
mod shipped;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crmonban_firewall::{FirewallBackend, NftBackend, NftOptions};
use crmonban_testutil::{NetNs, PrivateBus};

#[path = "../tests/support/seed.rs"]
mod seed;
use seed::seeded_target;

const BANS: u32 = 100_000;
const MILLION: u32 = 1_000_000;

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

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A database in `dir` holding `count` active bans (every fourth permanent, the rest 24 h).
fn seed(runtime: &tokio::runtime::Runtime, dir: &Path, count: u32) {
    runtime.block_on(seed::seed_bans(&dir.join("crmonban.db"), count, "bench"));
}

/// The daemon started in `host` with the database of `dir`, and how long it took.
struct Started {
    daemon: Child,
    /// Spawn -> every stored ban in the kernel (`None` with nothing stored).
    enforced: Option<Duration>,
    /// Spawn -> `crmonctl status` succeeds.
    answering: Duration,
}

fn start(host: &NetNs, bus: &PrivateBus, dir: &Path, ctl: &Path, stored: u32) -> Started {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[general]\ndb_path = \"{d}/crmonban.db\"\npid_file = \"{d}/crmonband.pid\"\nstate_dir = \"{d}\"\nlog_level = \"info\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let log_path = dir.join("daemon.log");
    // The watcher's backend only looks elements up; it never changes the ruleset.
    let mut watcher = host.run(|| NftBackend::new(NftOptions::default()).unwrap());
    let sample = [seeded_target(0), seeded_target(stored.saturating_sub(1))];
    let started = Instant::now();
    let daemon = host.run(|| {
        Command::new(shipped::daemon_binary())
            .args(["-c", config.to_str().unwrap(), "start", "-f"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap()
    });
    let enforced = (stored > 0).then(|| {
        host.run(|| {
            loop {
                let found = watcher.lookup(&sample).unwrap().unwrap();
                if found.iter().all(Option::is_some) {
                    break started.elapsed();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "the daemon did not enforce its bans: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    });
    let answering = loop {
        let out = Command::new(ctl)
            .arg("status")
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .output()
            .unwrap();
        if out.status.success() {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "daemon not ready: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    if stored > 0 {
        // Looked up one by one: a dump of a million elements would take the kernel ~45 s.
        let all: Vec<_> = (0..stored).map(seeded_target).collect();
        let found = host.run(|| watcher.lookup(&all)).unwrap().unwrap();
        let missing = found.iter().filter(|f| f.is_none()).count();
        assert_eq!(missing, 0, "every stored ban in the kernel");
    }
    Started {
        daemon,
        enforced,
        answering,
    }
}

/// A figure (`elapsed_ms`, `enforced_ms`) of the daemon's "active bans restored" log line in
/// `dir`: the engine's own measure, from reading the store to every ban in the kernel
/// (`enforced_ms`) or to the index built too (`elapsed_ms`).
fn restore_figure(dir: &Path, name: &str) -> Option<String> {
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    log.lines()
        .find(|l| l.contains("active bans restored"))
        .and_then(|l| l.split(&format!("{name}=")).nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// Resident memory of a process, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn stop(mut daemon: Child) {
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// Times `nft -f` of the same elements a database of `count` bans holds, written as nft text,
/// in a namespace of its own.
fn plain_nft_load(count: u32) -> Duration {
    use std::fmt::Write as _;
    let ns = NetNs::new("bench-nftf");
    let mut text = String::from(
        "add table inet baseline\n\
         add set inet baseline v4 { type ipv4_addr; flags timeout; }\n\
         add set inet baseline v6 { type ipv6_addr; flags timeout; }\n",
    );
    for (set, ipv4) in [("v4", true), ("v6", false)] {
        let _ = write!(text, "add element inet baseline {set} {{ ");
        for i in (0..count).filter(|i| i.is_multiple_of(2) == ipv4) {
            if i.is_multiple_of(4) {
                let _ = write!(text, "{}, ", seeded_target(i));
            } else {
                let _ = write!(text, "{} timeout 86400s, ", seeded_target(i));
            }
        }
        text.push_str("}\n");
    }
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), text).expect("write baseline");
    let path = file.path().to_str().unwrap().to_owned();
    let start = Instant::now();
    ns.exec_ok("nft", &["-f", &path]);
    start.elapsed()
}

fn main() {
    println!(
        "daemon_binary: {}",
        if std::env::var_os("CRMONBAN_SHIPPED_DAEMON").is_some() {
            "the shipped release build (cargo build --release -p crmonband)"
        } else {
            "the bench target's build (with the dev-dependencies' features)"
        }
    );
    let bus = PrivateBus::system_like(&workspace().join("dbus/org.crmonban.Daemon.conf"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ctl = crmonctl();

    // Idle: nothing stored.
    let idle_rss = {
        let host = NetNs::new("bench-idle");
        let dir = tempfile::tempdir().unwrap();
        seed(&runtime, dir.path(), 0);
        let started = start(&host, &bus, dir.path(), &ctl, 0);
        std::thread::sleep(Duration::from_secs(1));
        let rss = rss_kb(started.daemon.id());
        println!("daemon_rss_idle: {:.1} MB", rss as f64 / 1024.0);
        stop(started.daemon);
        rss
    };

    // Restart with 100,000 stored bans.
    let host = NetNs::new("bench-d");
    let dir = tempfile::tempdir().unwrap();
    seed(&runtime, dir.path(), BANS);
    let started = start(&host, &bus, dir.path(), &ctl, BANS);
    let daemon = started.daemon;
    println!(
        "restart_with_100k_bans_exec_to_enforced: {}",
        ms(started.enforced.unwrap())
    );
    println!(
        "start_with_100k_bans_until_answering: {}",
        ms(started.answering)
    );
    if let Some(ms_text) = restore_figure(dir.path(), "elapsed_ms") {
        println!("engine_restore_100k: {ms_text} ms");
    }
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
    let rss_100k = rss_kb(daemon.id());
    println!(
        "daemon_rss_with_100k_bans: {:.1} MB",
        rss_100k as f64 / 1024.0
    );
    stop(daemon);
    drop(host);

    // Start with 1,000,000 stored bans, against nft -f of the same elements: two passes each,
    // taken in turns (this VM's speed drifts by tens of percent over minutes), the better of
    // each compared.
    let dir = tempfile::tempdir().unwrap();
    seed(&runtime, dir.path(), MILLION);
    let mut rss_1m = 0;
    let mut passes = Vec::new();
    let mut baselines = Vec::new();
    for pass in 0..2 {
        let host = NetNs::new("bench-1m");
        let started = start(&host, &bus, dir.path(), &ctl, MILLION);
        if pass == 0 {
            std::thread::sleep(Duration::from_secs(1));
            rss_1m = rss_kb(started.daemon.id());
        }
        stop(started.daemon);
        let engine_enforced = restore_figure(dir.path(), "enforced_ms");
        drop(host);
        passes.push((
            started.enforced.unwrap(),
            started.answering,
            engine_enforced,
        ));
        baselines.push(plain_nft_load(MILLION));
    }
    let best = passes.iter().min_by_key(|p| p.0).unwrap().clone();
    let baseline = *baselines.iter().min().unwrap();
    let (enforced, answering, engine_enforced) = best;
    println!("start_with_1m_bans_exec_to_enforced: {}", ms(enforced));
    if let Some(ms_text) = engine_enforced {
        println!("engine_read_and_enforce_1m: {ms_text} ms");
    }
    println!("start_with_1m_bans_until_answering: {}", ms(answering));
    println!("plain_nft_f_1m_same_elements: {}", ms(baseline));
    println!(
        "start_1m_passes: {} / {} (nft -f: {} / {})",
        ms(passes[0].0),
        ms(passes[1].0),
        ms(baselines[0]),
        ms(baselines[1])
    );
    println!(
        "start_1m_vs_plain_nft_f: {:.2}",
        enforced.as_secs_f64() / baseline.as_secs_f64()
    );
    println!("daemon_rss_with_1m_bans: {:.1} MB", rss_1m as f64 / 1024.0);
    println!(
        "daemon_bytes_per_ban: {:.0} (100k: {:.0})",
        (rss_1m.saturating_sub(idle_rss) * 1024) as f64 / f64::from(MILLION),
        (rss_100k.saturating_sub(idle_rss) * 1024) as f64 / f64::from(BANS)
    );
}

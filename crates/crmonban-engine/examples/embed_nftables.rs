//! Embedding the engine in a program with its own detection and the real nftables backend:
//! the program reads its own log (here a few lines in memory), applies its own rule (three
//! failed logins from one address), and lets the engine ban through nftables, record in SQLite
//! and refuse protected addresses.
//!
//! It needs root, and runs in a network namespace of its own (made at start with
//! `unshare(CLONE_NEWNET)`), so the host's ruleset is never touched. Run:
//! `sudo cargo run -p crmonban-engine --example embed_nftables`. It exits non-zero if the ban
//! is not in the kernel.

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::Command;

use crmonban_core::config::{BanDuration, Config};
use crmonban_core::{BanSource, Target};
use crmonban_engine::{BanRequest, EngineBuilder};

/// The program's own log and rule.
const LOG: &[&str] = &[
    "app: login failed for admin from 198.51.100.23",
    "app: login failed for root from 198.51.100.23",
    "app: login ok for alice from 192.0.2.10",
    "app: login failed for test from 127.0.0.1",
    "app: login failed for test from 127.0.0.1",
    "app: login failed for test from 127.0.0.1",
    "app: login failed for guest from 198.51.100.23",
];

fn failed_login(line: &str) -> Option<IpAddr> {
    let rest = line.strip_prefix("app: login failed for ")?;
    rest.rsplit_once(" from ")?.1.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Before any thread exists: every thread of the program, the engine's firewall thread
    // included, lives in the new namespace.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("unshare(CLONE_NEWNET) needs root: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.general.db_path = dir.path().join("example.db");
    let running = EngineBuilder::new(config)
        .without_detection()
        .start()
        .await?;
    let engine = running.engine();

    let mut failures: HashMap<IpAddr, u32> = HashMap::new();
    for line in LOG {
        let Some(addr) = failed_login(line) else {
            continue;
        };
        let count = failures.entry(addr).or_default();
        *count += 1;
        if *count == 3 {
            let request = BanRequest {
                target: Target::from(addr),
                duration: Some(BanDuration::from_secs(3600)),
                reason: "3 failed logins (example rule)".into(),
                source: BanSource::Other("example".into()),
                service: Some("app".into()),
            };
            match engine.ban(request).await {
                Ok(ban) => println!("banned {}", ban.target),
                Err(refusal) => println!("not banned: {refusal}"),
            }
        }
    }

    let listing = Command::new("nft")
        .args(["list", "set", "inet", "crmonban", "blocked_v4"])
        .output()?;
    let listing = String::from_utf8_lossy(&listing.stdout);
    println!("{listing}");
    assert!(
        listing.contains("198.51.100.23"),
        "the ban is not in the kernel"
    );
    assert!(!listing.contains("127.0.0.1"), "loopback was banned");
    running.shutdown().await;
    println!("ok");
    Ok(())
}

//! Embedding the engine with a firewall backend of your own: here a backend that keeps the
//! bans in memory and prints every change (a stand-in for another firewall's API), a store in
//! a temporary directory, and no log sources — the program decides what to ban itself.
//!
//! Run: `cargo run -p crmonban-engine --example custom_backend` (no root needed). It exits
//! non-zero if the engine does not behave as shown.

use std::collections::BTreeMap;

use crmonban_core::config::{BanDuration, Config};
use crmonban_core::{BanSource, Target};
use crmonban_engine::{
    ApplyReport, BanRequest, Change, ChangeSet, Element, EngineBuilder, Expiry, FirewallBackend,
    FirewallError, Store,
};

/// A firewall that prints what it is asked to do and remembers the result.
#[derive(Default)]
struct PrintingFirewall {
    blocked: BTreeMap<Target, Expiry>,
}

impl FirewallBackend for PrintingFirewall {
    fn ensure_layout(&mut self) -> Result<(), FirewallError> {
        Ok(())
    }

    fn apply(&mut self, changes: &ChangeSet) -> Result<ApplyReport, FirewallError> {
        let mut report = ApplyReport::default();
        for change in &changes.changes {
            match change {
                Change::Add(element) => {
                    println!("firewall: block {element}");
                    self.blocked.insert(element.target, element.expiry);
                    report.added += 1;
                }
                Change::Remove(target) => {
                    println!("firewall: unblock {target}");
                    self.blocked.remove(target);
                    report.removed += 1;
                }
            }
        }
        Ok(report)
    }

    fn replace_all(&mut self, elements: &[Element]) -> Result<ApplyReport, FirewallError> {
        self.blocked = elements.iter().map(|e| (e.target, e.expiry)).collect();
        Ok(ApplyReport {
            added: elements.len(),
            ..ApplyReport::default()
        })
    }

    fn layout_present(&mut self) -> Result<bool, FirewallError> {
        Ok(true)
    }

    fn list(&mut self) -> Result<Vec<Element>, FirewallError> {
        Ok(self
            .blocked
            .iter()
            .map(|(target, expiry)| Element {
                target: *target,
                expiry: *expiry,
            })
            .collect())
    }

    fn teardown(&mut self) -> Result<(), FirewallError> {
        self.blocked.clear();
        Ok(())
    }

    fn describe(&self) -> String {
        "a printing firewall (example)".into()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("example.db")).await?;
    let running = EngineBuilder::new(Config::default())
        .firewall(Box::new(PrintingFirewall::default()))
        .store(store)
        .without_detection()
        .start()
        .await?;
    let engine = running.engine();
    let mut events = engine.subscribe_lossless(64, crmonban_engine::Overflow::Wait);

    let ban = engine
        .ban(BanRequest {
            target: Target::parse("203.0.113.7")?,
            duration: Some(BanDuration::from_secs(600)),
            reason: "my own rule matched".into(),
            source: BanSource::Other("example".into()),
            service: None,
        })
        .await?;
    println!("banned {} until {:?}", ban.target, ban.expires_at);
    // Loopback is never banned, whatever asks.
    let refused = engine
        .ban(BanRequest {
            target: Target::parse("127.0.0.1")?,
            duration: None,
            reason: "a mistake".into(),
            source: BanSource::Other("example".into()),
            service: None,
        })
        .await;
    println!("banning 127.0.0.1: {}", refused.as_ref().unwrap_err());
    assert!(refused.is_err(), "loopback was banned");
    assert!(engine.is_banned(&Target::parse("203.0.113.7")?));
    assert!(
        engine
            .unban(&Target::parse("203.0.113.7")?, "example done")
            .await?
    );
    assert_eq!(engine.active_ban_count(), 0);

    // The lossless stream saw both, in order.
    let added = events.recv().await;
    let removed = events.recv().await;
    println!("events: {added:?}, {removed:?}");
    assert!(matches!(
        added,
        Some(crmonban_engine::EngineEvent::BanAdded { .. })
    ));
    assert!(matches!(
        removed,
        Some(crmonban_engine::EngineEvent::BanRemoved { .. })
    ));
    running.shutdown().await;
    println!("ok");
    Ok(())
}

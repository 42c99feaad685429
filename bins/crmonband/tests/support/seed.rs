//! Mass-stored bans for the million-ban test and the daemon benchmark (which includes this
//! file by path): the same targets and the same mix in both.

#![allow(dead_code)] // each includer uses its own part

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crmonban_core::{Ban, BanSource, Target, unix_now};

/// The `i`-th seeded target: even ones IPv4 from 12.0.0.0, odd ones IPv6 from 2001:db8::.
pub fn seeded_target(i: u32) -> Target {
    if i.is_multiple_of(2) {
        Target::from(Ipv4Addr::from(0x0C00_0000 + i))
    } else {
        Target::from(Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
        ))
    }
}

/// Records `count` active detector bans of [`seeded_target`] in the database at `db`, every
/// fourth permanent and the rest for 24 h, 100,000 per write.
pub async fn seed_bans(db: &Path, count: u32, reason: &str) {
    let now = unix_now();
    let store = crmonban_store::Store::open(db).await.unwrap();
    for first in (0..count).step_by(100_000) {
        let bans: Vec<Ban> = (first..count.min(first + 100_000))
            .map(|i| Ban {
                target: seeded_target(i),
                reason: reason.into(),
                source: BanSource::Detector,
                service: Some("ssh".into()),
                banned_at: now,
                expires_at: (!i.is_multiple_of(4)).then_some(now + 86_400),
                offence: 1,
            })
            .collect();
        store.record_bans(&bans).await.unwrap();
    }
    store.close().await;
}

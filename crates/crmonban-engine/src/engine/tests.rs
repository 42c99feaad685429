//! Unit tests of the engine's small helpers.

use super::*;

#[test]
fn timed_bans_end_at_least_a_second_later() {
    assert_eq!(expires_at(100, BanDuration::Permanent), None);
    assert_eq!(
        expires_at(100, BanDuration::Timed(Duration::from_secs(60))),
        Some(160)
    );
    assert_eq!(
        expires_at(100, BanDuration::Timed(Duration::from_millis(1))),
        Some(101)
    );
    assert_eq!(
        expires_at(100, BanDuration::Timed(Duration::ZERO)),
        Some(101)
    );
}

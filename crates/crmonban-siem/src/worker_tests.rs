use super::*;

#[test]
fn the_backoff_doubles_from_its_base_to_its_cap_with_full_jitter() {
    let backoff = Backoff::default();
    let bounds: Vec<u64> = (1..=9).map(|n| backoff.bound(n).as_secs()).collect();
    assert_eq!(bounds, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(backoff.bound(u32::MAX), Duration::from_secs(60));
    let mut below_half = false;
    for _ in 0..200 {
        let pause = backoff.pause(3);
        assert!(pause <= Duration::from_secs(4), "{pause:?}");
        below_half |= pause < Duration::from_secs(2);
    }
    assert!(
        below_half,
        "full jitter: pauses spread from zero to the bound"
    );
}

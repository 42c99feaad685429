//! Firewall benchmarks against the real kernel, in a network namespace of their own (needs
//! root; run by `cargo xtask bench`). Prints one `name: value` line per figure, which xtask
//! collects into docs/BENCHMARKS.md.
//!
//! - bulk apply of 100,000 and 1,000,000 mixed v4/v6 bans over netlink, each one transaction;
//! - one more ban with 1,000,000 already in the sets (median and p99 of 500), and again with
//!   10,000 network bans beside them;
//! - the same single ban through the `nft` binary, for comparison;
//! - replace_all (restore) of 1,000,000 bans plus 10,000 networks, a flush of them, and a layout
//!   probe at that size;
//! - plain `nft -f` of the same bans and networks in nft's text syntax, the baseline, and the
//!   ratio;
//! - the benchmark process's peak RSS.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crmonban_core::Target;
use crmonban_firewall::{ChangeSet, Element, FirewallBackend, NftBackend, NftOptions, Transport};
use crmonban_testutil::NetNs;

fn target(i: u32) -> Target {
    if i.is_multiple_of(2) {
        Target::from(Ipv4Addr::from(0x0B00_0000 + i))
    } else {
        Target::from(Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
        ))
    }
}

fn bans(from: u32, count: u32) -> ChangeSet {
    (from..from + count)
        .map(|i| {
            crmonban_firewall::Change::Add(Element::timed(target(i), Duration::from_secs(86_400)))
        })
        .collect()
}

/// Address sets made for a million addresses each: an `apply` past a set's size is refused
/// (the owner rebuilds with `replace_all`), so a caller that applies a million at once creates
/// them that large.
fn backend(transport: Transport) -> NftBackend {
    NftBackend::new(NftOptions {
        transport,
        set_capacity: 1_000_000,
        ..NftOptions::default()
    })
    .expect("backend")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn single_bans(fw: &mut NftBackend, first: u32, n: u32) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..n)
        .map(|k| {
            let one = bans(first + k, 1);
            let start = Instant::now();
            fw.apply(&one).expect("single ban");
            start.elapsed()
        })
        .collect();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// The 10,000 network bans: /24s in the interval set.
fn network(i: u32) -> Target {
    Target::parse(&format!("{}/24", Ipv4Addr::from(0x6400_0000 + (i << 9)))).unwrap()
}

/// Times `nft -f` of `count` bans (and `networks` /24s) written as nft text, in a scratch
/// table that is then removed.
fn plain_nft_load(count: u32, networks: u32) -> Duration {
    use std::fmt::Write as _;
    let mut text = String::from(
        "add table inet baseline\n\
         add set inet baseline v4 { type ipv4_addr; flags timeout; }\n\
         add set inet baseline v6 { type ipv6_addr; flags timeout; }\n\
         add set inet baseline v4_net { type ipv4_addr; flags interval, timeout; }\n",
    );
    for (set, ipv4) in [("v4", true), ("v6", false)] {
        let _ = write!(text, "add element inet baseline {set} {{ ");
        for i in (0..count).filter(|i| (i % 2 == 0) == ipv4) {
            let _ = write!(text, "{} timeout 86400s, ", target(i));
        }
        text.push_str("}\n");
    }
    if networks > 0 {
        text.push_str("add element inet baseline v4_net { ");
        for i in 0..networks {
            let _ = write!(text, "{}, ", network(i));
        }
        text.push_str("}\n");
    }
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), text).expect("write baseline");
    let start = Instant::now();
    let status = std::process::Command::new("nft")
        .arg("-f")
        .arg(file.path())
        .status();
    let elapsed = start.elapsed();
    assert!(status.is_ok_and(|s| s.success()), "nft -f baseline failed");
    let _ = std::process::Command::new("nft")
        .args(["delete", "table", "inet", "baseline"])
        .status();
    elapsed
}

/// The median time of `n` `nft add element` processes, each adding one address to crmonban's
/// IPv4 set as fail2ban's nftables action does for every ban.
fn one_process_per_ban(n: u32) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|i| {
            let element = format!("{{ {} }}", Ipv4Addr::from(0xC000_0000 + i));
            let start = Instant::now();
            let status = std::process::Command::new("nft")
                .args(["add", "element", "inet", "crmonban", "blocked_v4", &element])
                .status();
            assert!(status.is_ok_and(|s| s.success()), "nft add element failed");
            start.elapsed()
        })
        .collect();
    times.sort();
    percentile(&times, 0.5)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let ns = NetNs::new("bench-fw");
    ns.run(|| {
        let mut fw = backend(Transport::Auto);
        fw.ensure_layout().expect("layout");
        println!("firewall: {}", fw.describe());

        let ten_k = bans(0, 10_000);
        let start = Instant::now();
        fw.apply(&ten_k).expect("10k");
        let apply_10k = start.elapsed();
        println!("apply_10k_one_batch: {}", ms(apply_10k));
        fw.replace_all(&[]).expect("flush");

        let hundred_k = bans(0, 100_000);
        let start = Instant::now();
        fw.apply(&hundred_k).expect("100k");
        println!("apply_100k_one_batch: {}", ms(start.elapsed()));

        fw.replace_all(&[]).expect("flush");
        let million = bans(0, 1_000_000);
        let start = Instant::now();
        fw.apply(&million).expect("1M");
        println!("apply_1m_one_batch: {}", ms(start.elapsed()));

        let (median, p99) = single_bans(&mut fw, 2_000_000, 500);
        println!("one_ban_with_1m_loaded_median: {}", ms(median));
        println!("one_ban_with_1m_loaded_p99: {}", ms(p99));

        let mut cli = backend(Transport::Binary("nft".into()));
        let (median, p99) = single_bans(&mut cli, 3_000_000, 20);
        println!("one_ban_with_1m_loaded_nft_binary_median: {}", ms(median));
        println!("one_ban_with_1m_loaded_nft_binary_p99: {}", ms(p99));

        // Network bans (a blocklist) beside the million addresses: 10,000 /24s in the interval
        // set. libnftables reads an interval set back before every command; the ban lane does
        // not.
        let networks: ChangeSet = (0..10_000u32)
            .map(|i| crmonban_firewall::Change::Add(Element::permanent(network(i))))
            .collect();
        fw.apply(&networks).expect("10k networks");
        let (median, p99) = single_bans(&mut fw, 4_000_000, 500);
        println!(
            "one_ban_with_1m_and_10k_networks_loaded_median: {}",
            ms(median)
        );
        println!("one_ban_with_1m_and_10k_networks_loaded_p99: {}", ms(p99));

        let start = Instant::now();
        let present = fw.layout_present().expect("probe");
        assert!(present);
        println!("layout_probe_with_1m_loaded: {}", ms(start.elapsed()));

        let elements: Vec<Element> = (0..1_000_000)
            .map(|i| Element::timed(target(i), Duration::from_secs(86_400)))
            .chain((0..10_000).map(|i| Element::permanent(network(i))))
            .collect();
        let start = Instant::now();
        let report = fw.replace_all(&elements).expect("restore 1M");
        let restore = start.elapsed();
        assert!(report.refused.is_empty(), "{report:?}");
        println!("replace_all_1m_and_10k_networks: {}", ms(restore));
        let start = Instant::now();
        fw.replace_all(&[]).expect("flush");
        println!("flush_1m_and_10k_networks: {}", ms(start.elapsed()));
        // The baseline: plain `nft -f` of the same bans in nft's own text syntax, into a table of
        // its own (same set types), as an administrator would load them by hand.
        let plain_10k = plain_nft_load(10_000, 0);
        println!("plain_nft_f_text_10k: {}", ms(plain_10k));
        println!(
            "apply_10k_vs_plain_nft_f: {:.2}",
            apply_10k.as_secs_f64() / plain_10k.as_secs_f64()
        );
        println!("plain_nft_f_text_100k: {}", ms(plain_nft_load(100_000, 0)));
        // fail2ban's way: one `nft add element` process per ban (its nftables actions), timed
        // on a sample and extrapolated.
        let per_process = one_process_per_ban(200);
        println!("one_nft_process_per_ban_median: {}", ms(per_process));
        println!(
            "one_nft_process_per_ban_10k_extrapolated: {:.1} s",
            per_process.as_secs_f64() * 10_000.0
        );
        println!(
            "one_nft_process_per_ban_1m_extrapolated: {:.0} s",
            per_process.as_secs_f64() * 1_000_000.0
        );
        let baseline = plain_nft_load(1_000_000, 10_000);
        println!("plain_nft_f_text_1m_and_10k_networks: {}", ms(baseline));
        println!(
            "replace_all_1m_vs_plain_nft_f: {:.2}",
            restore.as_secs_f64() / baseline.as_secs_f64()
        );

        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(hwm) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            // Includes the benchmark's own 1M-element inputs.
            println!(
                "bench_process_peak_rss: {}",
                hwm.trim_start_matches("VmHWM:").trim()
            );
        }
    });
}

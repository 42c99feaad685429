//! Window counting: thresholds, one attempt counted once, log time against replays, IPv6
//! aggregation, pruning and the cap.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crmonban_core::config::{BanDuration, Config, ServiceConfig};
use crmonban_core::{EventKind, Service, Target};
use crmonban_detect::decide::{Decider, DeciderOptions, Decision, ServicePolicy, WindowCounter};
use crmonban_detect::matcher::{AttemptKey, Hit, LineContext, LineOutcome, ServiceMatcher};
use crmonban_detect::patterns::Step;

const T0: i64 = 1_795_600_000;

fn config() -> ServiceConfig {
    let mut c = ServiceConfig::builtin("ssh", BanDuration::from_secs(3600)).unwrap();
    c.max_failures = 5;
    c.find_time = Duration::from_secs(600);
    c
}

fn hit(ip: &str, time: i64) -> Hit {
    Hit {
        addr: ip.parse().unwrap(),
        port: None,
        kind: EventKind::FailedAuth,
        pattern: Arc::from("test"),
        time: Some(time),
        attempt: None,
    }
}

fn decider(options: DeciderOptions) -> (Decider, Service) {
    let mut d = Decider::new(options);
    let ssh = Service::new("ssh");
    d.add_service(ssh.clone(), &config());
    (d, ssh)
}

#[test]
fn five_failures_in_the_window_ban_four_do_not() {
    let (mut d, ssh) = decider(DeciderOptions::default());
    for i in 0..4 {
        assert_eq!(d.observe(&ssh, &hit("192.0.2.7", T0 + i * 100), 0), None);
    }
    assert_eq!(d.observe(&ssh, &hit("192.0.2.8", T0 + 400), 0), None);
    let ban = d
        .observe(&ssh, &hit("192.0.2.7", T0 + 400), 0)
        .expect("5th failure bans");
    assert_eq!(
        ban,
        Decision::Ban {
            target: Target::parse("192.0.2.7").unwrap(),
            service: ssh.clone(),
            failures: 5,
            first_seen: T0,
            last_seen: T0 + 400,
            ban_time: BanDuration::from_secs(3600),
        }
    );
    // The count starts again after a ban.
    for i in 0..4 {
        assert_eq!(d.observe(&ssh, &hit("192.0.2.7", T0 + 401 + i), 0), None);
    }
    assert!(d.observe(&ssh, &hit("192.0.2.7", T0 + 410), 0).is_some());
    // A service that was not added decides nothing.
    assert_eq!(
        d.observe(&Service::new("nope"), &hit("192.0.2.7", T0), 0),
        None
    );
}

#[test]
fn window_is_inclusive_and_slides() {
    let (mut d, ssh) = decider(DeciderOptions::default());
    // Failures at 0, 200, 400, 600: the 5th at 601 sees only 200..601 (4) -> no ban;
    // the 6th at 650 sees 200..650 = 5 -> ban.
    for t in [0, 200, 400, 600, 601] {
        assert_eq!(d.observe(&ssh, &hit("192.0.2.7", T0 + t), 0), None, "t={t}");
    }
    assert!(d.observe(&ssh, &hit("192.0.2.7", T0 + 650), 0).is_some());
    // Exactly find_time apart is inside.
    let (mut d, ssh) = decider(DeciderOptions::default());
    for t in [0, 1, 2, 3] {
        d.observe(&ssh, &hit("192.0.2.9", T0 + t), 0);
    }
    assert!(d.observe(&ssh, &hit("192.0.2.9", T0 + 600), 0).is_some());
}

#[test]
fn one_attempt_counts_once_but_every_try_counts() {
    let (mut d, ssh) = decider(DeciderOptions::default());
    let step = |ip: &str, t: i64, pid: u64, step: Step| Hit {
        attempt: Some(AttemptKey {
            connection: pid,
            step,
        }),
        ..hit(ip, t)
    };
    // Four connections, each Invalid user + PAM + Failed password + Connection closed: 4.
    for pid in 0..4u64 {
        let t = T0 + pid as i64;
        for s in [Step::Context, Step::Context, Step::Try, Step::Context] {
            assert_eq!(
                d.observe(&ssh, &step("192.0.2.7", t, 1000 + pid, s), 0),
                None
            );
        }
    }
    assert_eq!(
        d.counter(&ssh)
            .unwrap()
            .failures("192.0.2.7".parse().unwrap()),
        4
    );
    // The fifth connection bans on its first line.
    assert!(
        d.observe(&ssh, &step("192.0.2.7", T0 + 9, 2000, Step::Context), 0)
            .is_some()
    );

    // One connection with five password tries (MaxAuthTries) is five failures.
    let (mut d, ssh) = decider(DeciderOptions::default());
    assert_eq!(
        d.observe(&ssh, &step("192.0.2.8", T0, 7, Step::Context), 0),
        None
    );
    for i in 0..4 {
        assert_eq!(
            d.observe(&ssh, &step("192.0.2.8", T0 + i, 7, Step::Try), 0),
            None
        );
    }
    assert!(
        d.observe(&ssh, &step("192.0.2.8", T0 + 5, 7, Step::Try), 0)
            .is_some()
    );
}

#[test]
fn sshd_lines_of_one_connection_through_the_matcher() {
    let m = ServiceMatcher::new("ssh", &config()).unwrap();
    let (mut d, ssh) = decider(DeciderOptions::default());
    let ctx = LineContext::at(T0 + 86_400);
    let mut bans = 0;
    for pid in 100..104 {
        for msg in [
            "Invalid user admin from 192.0.2.7 port 4000",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.7",
            "Failed password for invalid user admin from 192.0.2.7 port 4000 ssh2",
            "Connection closed by invalid user admin 192.0.2.7 port 4000 [preauth]",
        ] {
            let line = format!("Nov 25 16:19:59 host sshd[{pid}]: {msg}");
            let LineOutcome::Match(h) = m.match_line(line.as_bytes(), &ctx) else {
                panic!("{line}")
            };
            bans += usize::from(d.observe(&ssh, &h, ctx.now).is_some());
        }
    }
    assert_eq!(bans, 0, "16 lines, 4 attempts");
    assert_eq!(
        d.counter(&ssh)
            .unwrap()
            .failures("192.0.2.7".parse().unwrap()),
        4
    );
}

#[test]
fn replayed_old_lines_do_not_ban() {
    let (mut d, ssh) = decider(DeciderOptions::default());
    // Ten failures an hour apart, all read at the same instant: never 5 in 10 minutes.
    for i in 0..10 {
        assert_eq!(
            d.observe(&ssh, &hit("192.0.2.7", T0 + i * 3600), T0 + 100_000),
            None
        );
    }
    // Lines older than find_time before the newest failure of that address are dropped.
    let (mut d, ssh) = decider(DeciderOptions::default());
    d.observe(&ssh, &hit("192.0.2.7", T0 + 10_000), 0);
    for i in 0..10 {
        assert_eq!(d.observe(&ssh, &hit("192.0.2.7", T0 + i), 0), None);
    }
    assert_eq!(d.counter(&ssh).unwrap().stats().dropped_old, 10);
    // A line without its own time counts at the read time.
    let (mut d, ssh) = decider(DeciderOptions::default());
    let untimed = Hit {
        time: None,
        ..hit("192.0.2.7", 0)
    };
    for _ in 0..4 {
        assert_eq!(d.observe(&ssh, &untimed, T0), None);
    }
    assert!(d.observe(&ssh, &untimed, T0 + 1).is_some());
}

#[test]
fn ipv6_aggregation_counts_and_bans_the_prefix() {
    let (mut d, ssh) = decider(DeciderOptions {
        ipv6_prefix: Some(64),
        ..Default::default()
    });
    for i in 1..5 {
        assert_eq!(
            d.observe(&ssh, &hit(&format!("2001:db8:1:2::{i}"), T0), 0),
            None
        );
    }
    // Another /64 does not add up.
    assert_eq!(d.observe(&ssh, &hit("2001:db8:1:3::1", T0), 0), None);
    let Some(Decision::Ban { target, .. }) = d.observe(&ssh, &hit("2001:db8:1:2:aaaa::9", T0), 0)
    else {
        panic!("the 5th address of the /64 bans")
    };
    assert_eq!(target, Target::parse("2001:db8:1:2::/64").unwrap());
    // IPv4 is unaffected; without aggregation IPv6 addresses count alone.
    let (mut d, ssh) = decider(DeciderOptions::default());
    for i in 1..10 {
        assert_eq!(
            d.observe(&ssh, &hit(&format!("2001:db8:1:2::{i}"), T0), 0),
            None
        );
    }
    for _ in 0..4 {
        d.observe(&ssh, &hit("2001:db8::1", T0), 0);
    }
    let Some(Decision::Ban { target, .. }) = d.observe(&ssh, &hit("2001:db8::1", T0), 0) else {
        panic!()
    };
    assert_eq!(target, Target::parse("2001:db8::1").unwrap());
}

#[test]
fn a_configured_ipv6_prefix_bans_the_network_and_the_config_wins_over_options() {
    let mut config = Config::default();
    config.general.max_tracked_addresses = 1234;
    let ssh_config = config.services.get_mut("ssh").unwrap();
    ssh_config.max_failures = 3;
    ssh_config.ipv6_prefix = Some(64);
    let nginx_config = config.services.get_mut("nginx").unwrap();
    nginx_config.enabled = true;
    nginx_config.max_failures = 3;
    // What the daemon passes: the defaults, which must not override the file.
    let mut d = Decider::from_config(&config, DeciderOptions::default());
    let (ssh, nginx) = (Service::new("ssh"), Service::new("nginx"));

    assert_eq!(d.observe(&ssh, &hit("2001:db8::1", T0), 0), None);
    assert_eq!(d.observe(&ssh, &hit("2001:db8::2", T0 + 1), 0), None);
    let Some(Decision::Ban {
        target, failures, ..
    }) = d.observe(&ssh, &hit("2001:db8::3", T0 + 2), 0)
    else {
        panic!("three addresses of one /64 ban it")
    };
    assert_eq!(target, Target::parse("2001:db8::/64").unwrap());
    assert_eq!(failures, 3);

    // nginx sets no prefix: its IPv6 addresses count alone.
    for i in 1..=3 {
        let addr = format!("2001:db8::{i}");
        assert_eq!(d.observe(&nginx, &hit(&addr, T0), 0), None, "{addr}");
    }

    for service in [&ssh, &nginx] {
        assert_eq!(d.counter(service).unwrap().policy().max_tracked, 1234);
    }
    assert_eq!(d.counter(&ssh).unwrap().policy().ipv6_prefix, Some(64));
    assert_eq!(d.counter(&nginx).unwrap().policy().ipv6_prefix, None);

    // A decider-wide prefix is the default for services without their own.
    let d = Decider::from_config(
        &config,
        DeciderOptions {
            ipv6_prefix: Some(48),
            ..DeciderOptions::default()
        },
    );
    assert_eq!(d.counter(&ssh).unwrap().policy().ipv6_prefix, Some(64));
    assert_eq!(d.counter(&nginx).unwrap().policy().ipv6_prefix, Some(48));
}

#[test]
fn state_is_pruned_when_the_window_passes() {
    let (mut d, ssh) = decider(DeciderOptions::default());
    for i in 0..10_000u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        d.observe(&ssh, &hit(&ip.to_string(), T0), 0);
    }
    assert_eq!(d.tracked(), 10_000);
    // One failure far later: the sweep drops everything older than the window.
    d.observe(&ssh, &hit("192.0.2.1", T0 + 10_000), 0);
    assert_eq!(d.tracked(), 1);
    assert_eq!(d.counter(&ssh).unwrap().stats().pruned, 10_000);
}

#[test]
fn the_cap_bounds_tracked_addresses_and_keeps_near_bans() {
    let policy = ServicePolicy::new(
        &config(),
        &DeciderOptions {
            ipv6_prefix: None,
            max_tracked: 1000,
        },
    );
    let mut c = WindowCounter::new(Service::new("ssh"), policy);
    // An address with 4 failures, then a flood of 100,000 one-off addresses in the window.
    for i in 0..4 {
        c.observe(&hit("192.0.2.7", T0 + i), 0);
    }
    for i in 0..100_000u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        c.observe(&hit(&ip.to_string(), T0 + 10), 0);
        assert!(c.stats().tracked <= 1000);
    }
    assert_eq!(c.stats().evicted, 100_000 + 4 - 1000 - 3);
    assert_eq!(
        c.failures("192.0.2.7".parse().unwrap()),
        4,
        "sampled eviction spares it"
    );
    assert!(c.observe(&hit("192.0.2.7", T0 + 11), 0).is_some());
}

/// A reload keeps the windows: a longer find_time applies in place; a lower max_failures
/// recounts them and returns the bans they reach now; a removed service is forgotten and an
/// added one starts empty.
#[test]
fn reconfigure_keeps_the_windows_under_the_new_thresholds() {
    let mut config = Config::default();
    config.services.insert("ssh".into(), config_with(5, 600));
    let mut d = Decider::from_config(&config, DeciderOptions::default());
    let ssh = Service::new("ssh");
    for i in 0..3 {
        assert_eq!(d.observe(&ssh, &hit("192.0.2.7", T0 + i), 0), None);
    }
    assert_eq!(d.observe(&ssh, &hit("192.0.2.8", T0 + 5), 0), None);

    // find_time 600 -> 900: counts kept, nothing decided.
    config.services.insert("ssh".into(), config_with(5, 900));
    assert!(d.reconfigure(&config).is_empty());
    assert_eq!(
        d.counter(&ssh)
            .unwrap()
            .failures("192.0.2.7".parse().unwrap()),
        3
    );

    // max_failures 5 -> 3: the window of 192.0.2.7 reaches it now; 192.0.2.8's does not.
    config.services.insert("ssh".into(), config_with(3, 900));
    let reached = d.reconfigure(&config);
    assert_eq!(reached.len(), 1, "{reached:?}");
    let Decision::Ban {
        target, failures, ..
    } = &reached[0];
    assert_eq!((target.to_string().as_str(), *failures), ("192.0.2.7", 3));
    assert_eq!(
        d.counter(&ssh)
            .unwrap()
            .failures("192.0.2.8".parse().unwrap()),
        1
    );
    assert_eq!(
        d.observe(&ssh, &hit("192.0.2.8", T0 + 6), 0),
        None,
        "two of three"
    );
    assert!(d.observe(&ssh, &hit("192.0.2.8", T0 + 7), 0).is_some());

    // ssh disabled: its counter is gone.
    config.services.get_mut("ssh").unwrap().enabled = false;
    assert!(d.reconfigure(&config).is_empty());
    assert!(d.counter(&ssh).is_none());
}

fn config_with(max_failures: u32, find_time: u64) -> ServiceConfig {
    let mut c = config();
    c.max_failures = max_failures;
    c.find_time = Duration::from_secs(find_time);
    c.enabled = true;
    c
}

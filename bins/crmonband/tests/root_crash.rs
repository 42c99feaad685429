//! Faults that must lose nothing, on the real daemon in a namespace of its own: `kill -9` in
//! the middle of a detector burst. Every test panics without root.

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crmonban_testutil::{PATIENCE, wait_until};
use support::*;

/// A tiny xorshift generator: the kill points and line orders differ from run to run, and the
/// seed printed on failure replays a run.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("CRMONBAN_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("seed {seed} (set CRMONBAN_TEST_SEED to replay)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// The syslog time stamp of now, in the host's zone (as rsyslog writes it).
fn syslog_now() -> String {
    let out = crmonban_testutil::run("date", &["+%b %e %H:%M:%S"]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One failed password, each in a connection (an sshd process) of its own.
fn failed_password(time: &str, pid: u32, addr: &str) -> String {
    format!(
        "{time} host sshd[{pid}]: Failed password for root from {addr} port {} ssh2\n",
        20_000 + pid % 40_000
    )
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// Ten times: a burst of failures from 200 attackers over the threshold (3) and 50 under it,
/// interleaved in a random order, written over about 150 ms, with `kill -9` at a random
/// moment of it, then a restart. Every attacker over the threshold is in the kernel's set after
/// the restart, none under it is (a replayed line is not counted twice), and an attacker the
/// administrator unbanned stays unbanned although its lines are read again.
#[test]
fn root_kill_9_during_a_detector_burst_loses_no_ban() {
    let logs = tempfile::tempdir().unwrap();
    let auth_log = logs.path().join("auth.log");
    std::fs::write(&auth_log, "").unwrap();
    let mut daemon = Daemon::start(&format!(
        "\n[services.ssh]\nlog_path = \"{}\"\nsource = \"file\"\nmax_failures = 3\nfind_time = 600\nban_time = 3600\n",
        auth_log.display()
    ));
    let mut rng = Rng::seeded();
    let mut banned = BTreeSet::new();
    let mut spared = BTreeSet::new();
    let mut pid = 1000u32;
    let mut unbanned = None;
    for round in 0..10u32 {
        let time = syslog_now();
        let mut lines = Vec::new();
        for i in 0..250u32 {
            let addr = format!("11.{round}.{}.{}", i / 200, i % 200 + 1);
            let failures = if i < 200 { 3 } else { 2 };
            for _ in 0..failures {
                pid += 1;
                lines.push(failed_password(&time, pid, &addr));
            }
            if i < 200 {
                banned.insert(addr);
            } else {
                spared.insert(addr);
            }
        }
        rng.shuffle(&mut lines);
        let writer = {
            let auth_log = auth_log.clone();
            std::thread::spawn(move || {
                for chunk in lines.chunks(10) {
                    append(&auth_log, &chunk.concat());
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(rng.below(160)));
        daemon.signal("KILL");
        daemon.wait_exit();
        writer.join().unwrap();
        daemon.spawn(&[]);
        let started = Instant::now();
        wait_until("every attacker over the threshold banned", PATIENCE, || {
            let set = daemon.set_elements("blocked_v4");
            let expected: BTreeSet<&String> = banned
                .iter()
                .filter(|a| Some(*a) != unbanned.as_ref())
                .collect();
            expected.iter().all(|a| set.contains(*a)).then_some(())
        })
        .unwrap_or_else(|waited| {
            let set = daemon.set_elements("blocked_v4");
            let missing: Vec<&String> = banned
                .iter()
                .filter(|a| !set.contains(*a) && Some(*a) != unbanned.as_ref())
                .collect();
            panic!(
                "round {round}: {waited}; {} of {} missing, e.g. {:?}\ndaemon:\n{}",
                missing.len(),
                banned.len(),
                &missing[..missing.len().min(5)],
                daemon.log()
            )
        });
        eprintln!(
            "round {round}: all banned {:?} after the restart",
            started.elapsed()
        );
        if round == 0 {
            // The administrator lifts one ban: the next restarts read its lines again.
            let addr = banned.first().unwrap().clone();
            let out = daemon.ctl(&["unban", &addr]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            unbanned = Some(addr);
        }
    }
    let set = daemon.set_elements("blocked_v4");
    let wrongly: Vec<&String> = spared.iter().filter(|a| set.contains(*a)).collect();
    assert!(
        wrongly.is_empty(),
        "attackers under the threshold banned: {wrongly:?}"
    );
    let unbanned = unbanned.unwrap();
    if set.contains(&unbanned) {
        let rows = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let store = crmonban_store::Store::open(&daemon.db()).await.unwrap();
                let target = crmonban_core::Target::parse(&unbanned).unwrap();
                format!("{:#?}", store.ban_history(&target).await.unwrap())
            });
        let log: Vec<String> = daemon
            .log()
            .lines()
            .filter(|l| l.contains(&format!("{unbanned} ")) || l.contains(&format!("{unbanned}\n")))
            .map(str::to_owned)
            .collect();
        panic!(
            "{unbanned} was banned again after the administrator lifted its ban\nits bans:\n{rows}\nlast run's log about it:\n{}",
            log.join("\n")
        );
    }
    assert_eq!(set.len(), banned.len() - 1, "unexpected elements: {set:?}");
}

/// The database deleted while the daemon runs (or lost between runs): the next start finds a
/// database without history while crmonban's sets hold bans, and adopts them (with their
/// remaining time) instead of clearing the sets.
#[test]
fn root_a_database_deleted_while_running_does_not_clear_the_bans() {
    let mut daemon = Daemon::start("");
    for (target, duration) in [("198.51.100.7", "0"), ("203.0.113.0/24", "600")] {
        let out = daemon.ctl(&["ban", target, "-d", duration, "-r", "before the loss"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", daemon.db().display()));
    }
    daemon.signal("KILL");
    daemon.wait_exit();
    daemon.spawn(&[]);
    assert!(
        daemon.set_contains("blocked_v4", "198.51.100.7"),
        "the permanent ban was cleared:\n{}",
        daemon.log()
    );
    assert!(daemon.set_contains("blocked_v4_net", "203.0.113.0/24"));
    assert!(daemon.log().contains("adopting"), "{}", daemon.log());
    // They are bans again, listed and with the kernel's remaining time.
    let list = daemon.ctl(&["list"]);
    let listed = text(&list.stdout);
    assert!(listed.contains("198.51.100.7"), "{listed}");
    assert!(listed.contains("203.0.113.0/24"), "{listed}");
}

/// A corrupt database refuses the start with a message naming the file; the file is left as
/// it was (never recreated empty) and the kernel keeps the bans.
#[test]
fn root_a_corrupt_database_refuses_the_start_and_is_not_recreated() {
    let mut daemon = Daemon::start("");
    let out = daemon.ctl(&["ban", "198.51.100.8", "-d", "0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    daemon.signal("TERM");
    daemon.wait_exit();
    let garbage: Vec<u8> = (0..65_536u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(daemon.db(), &garbage).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", daemon.db().display()));
    }
    daemon.launch(&[]);
    let status = daemon.wait_exit();
    assert!(!status.success(), "started on a corrupt database");
    let log = daemon.log();
    assert!(
        log.contains(&daemon.db().display().to_string()),
        "the error does not name the file:\n{log}"
    );
    assert_eq!(
        std::fs::read(daemon.db()).unwrap(),
        garbage,
        "the file was changed"
    );
    assert!(daemon.set_contains("blocked_v4", "198.51.100.8"));
}

/// A million stored bans (IPv4 and IPv6, timed and permanent): the daemon is killed with
/// `kill -9` three times at random moments of its restore, then started for good. Every ban is
/// in the kernel (counted, and a sample looked up element by element with its kind of expiry)
/// and in the database.
#[test]
fn root_kill_9_during_the_restore_of_a_million_bans_loses_none() {
    use crmonban_core::{Target, unix_now};
    use crmonban_firewall::{Expiry, FirewallBackend, NftBackend, NftOptions};

    const BANS: u32 = 1_000_000;
    let target = support::seed::seeded_target;
    let mut daemon = Daemon::start("");
    daemon.signal("TERM");
    daemon.wait_exit();
    let now = unix_now();
    let seeding = Instant::now();
    runtime().block_on(support::seed::seed_bans(&daemon.db(), BANS, "seeded"));
    eprintln!("seeded {BANS} bans in {:?}", seeding.elapsed());

    let mut rng = Rng::seeded();
    for round in 0..3 {
        daemon.launch(&[]);
        let after = Duration::from_millis(100 + rng.below(2_500));
        std::thread::sleep(after);
        daemon.signal("KILL");
        daemon.wait_exit();
        eprintln!("round {round}: killed after {after:?}");
    }
    let restart = Instant::now();
    daemon.spawn(&[]);
    eprintln!("answering {:?} after the last start", restart.elapsed());

    let mut watcher = daemon
        .host
        .run(|| NftBackend::new(NftOptions::default()).unwrap());
    let counts = daemon
        .host
        .run(|| watcher.element_counts())
        .unwrap()
        .unwrap();
    assert_eq!(
        counts[..2],
        [BANS as usize / 2, BANS as usize / 2],
        "{}",
        daemon.log()
    );
    let sample: Vec<u32> = (0..BANS).step_by(499).collect();
    let targets: Vec<Target> = sample.iter().map(|&i| target(i)).collect();
    let found = daemon
        .host
        .run(|| watcher.lookup(&targets))
        .unwrap()
        .unwrap();
    for (&i, expiry) in sample.iter().zip(&found) {
        match expiry {
            Some(Expiry::Never) => assert!(i.is_multiple_of(4), "{} lost its timeout", target(i)),
            Some(Expiry::At(end)) => {
                assert!(!i.is_multiple_of(4), "{} became timed", target(i));
                // Read back as the kernel's time left, rounded up, from a clock rounded up.
                assert!(
                    *end <= now + 86_405 && *end > now + 86_000,
                    "{}: {end}",
                    target(i)
                );
            }
            None => panic!("{} is not in the kernel", target(i)),
        }
    }
    let stored = runtime().block_on(async {
        let store = crmonban_store::Store::open(&daemon.db()).await.unwrap();
        store
            .for_each_active_target(unix_now(), |_, _| {})
            .await
            .unwrap()
    });
    assert_eq!(stored, BANS as usize, "every ban still in the database");
}

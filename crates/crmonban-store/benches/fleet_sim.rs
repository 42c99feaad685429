//! Fleet simulation (root; run by `cargo xtask bench`): 50 nodes sharing bans through one local
//! PostgreSQL (`crmonban_testutil::Postgres`), each a light client of the library rather than a
//! daemon: its own [`FleetStore`] (pool) and listener, and a follower that reads like the
//! daemon's applier: on each notification (or every [`POLL`]) the changes after its cursor,
//! [`PAGE`] at a time, the cursor then moving to the last one read. (The applier also reads
//! `last_id` and the fleet whitelist, counts reporters and bans through the engine; none of
//! that here.) All nodes run in one process, on one tokio multi-thread runtime.
//!
//! A publisher notes the instant just before its `publish` call, and its return; a follower
//! notes when its read returned, for every change of another node in it. Propagation is the
//! difference, over every (publication, receiving node) pair: 49 receivers a publication.
//!
//! - `light_*`: every node publishes one ban at a time at random (Poisson) intervals, about 2
//!   a second each (about 100 a second over the fleet), for 10 s. Every node must receive
//!   every other node's change, or the bench fails.
//! - `flood_1_*`, `flood_100_*`: every node publishes as fast as it can for 10 s, one change a
//!   transaction (the worst case), then pages of 100 (what the daemon sends from a backlog),
//!   while the 50 followers follow. Reported: changes committed a second, the followers' lag
//!   (sampled while publishing, and when the last call returned), the time until every one
//!   reached the last id, propagation under that load, the CPU time PostgreSQL and this
//!   process used, and what the server's busy backends were waiting for (pg_stat_activity).
//!   A follower may be behind when the bench stops waiting; none may pass a change over.
//! - `table_*`, `prune_*`: the size of `fleet_changes` after all that, and one
//!   `prune(now + 1)` over it. Flood bans last 1 s (so prune deletes them: they have ended);
//!   light bans last an hour (in force: prune keeps them).
//!
//! Figures print as `name: value`; context lines carry no `": "`.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crmonban_core::{Target, unix_now};
use crmonban_store::{ChangeKind, FleetStore, Publication};
use crmonban_testutil::Postgres;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Simulated nodes.
const NODES: usize = 50;
/// Changes a follower reads at a time (the applier's page).
const PAGE: i64 = 10_000;
/// How long a follower waits for a notification before reading anyway (the daemon: 30 s).
const POLL: Duration = Duration::from_secs(1);
/// The shortest time between two reads of a follower (the daemon's applier's `READ_GAP`).
const READ_GAP: Duration = Duration::from_millis(100);
/// Length of the light phase, and the mean pause between one node's publications in it.
const LIGHT_FOR: Duration = Duration::from_secs(10);
const LIGHT_MEAN_GAP: Duration = Duration::from_millis(500);
/// Length of each flood phase.
const FLOOD_FOR: Duration = Duration::from_secs(10);
/// How long the followers may take to reach the last id once publishing stopped.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(20);
/// How often the sampler looks at the server and the followers while a phase publishes.
const SAMPLE: Duration = Duration::from_millis(100);

/// One node's follower, as the main task sees it.
#[derive(Default)]
struct Follower {
    /// The last id read.
    cursor: AtomicI64,
    /// `changes_after` calls (the first one after it listens), and those that returned nothing.
    reads: AtomicU64,
    empty_reads: AtomicU64,
    /// (id, instant the read returned) of every change of another node read.
    received: Mutex<Vec<(i64, Instant)>>,
}

/// A publication as its publisher saw it.
struct Sent {
    id: i64,
    node: usize,
    /// Just before the `publish` call, and when it returned.
    started: Instant,
    committed: Instant,
}

fn node_name(node: usize) -> String {
    format!("node-{node:02}")
}

/// A fresh address for each publication: 10.x.y.z and 2001:db8::n in turns.
fn next_target() -> Target {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Relaxed);
    if n.is_multiple_of(2) {
        Target::from(Ipv4Addr::from(0x0a00_0000 | (n / 2)))
    } else {
        Target::from(Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(n / 2)))
    }
}

/// A ban of a fresh address lasting `seconds` from now.
fn ban(seconds: i64) -> Publication {
    let now = unix_now();
    Publication {
        kind: ChangeKind::Ban,
        target: next_target(),
        reason: "fleet_sim: 3 failures in 600 s".to_owned(),
        service: Some("ssh".to_owned()),
        first_seen: Some(now - 5),
        last_seen: Some(now),
        expires_at: Some(now + seconds),
    }
}

/// xorshift64*: enough randomness for publication intervals, without a dependency.
struct Rng(u64);

impl Rng {
    /// An exponentially distributed factor of mean 1 (the gaps of a Poisson process).
    fn exponential(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let unit = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        -(1.0 - unit).ln()
    }
}

/// Follows the fleet like the applier until `stop`: read after the cursor until a page is
/// short, then wait for a notification or [`POLL`].
async fn follow(
    node: usize,
    store: FleetStore,
    me: Arc<Follower>,
    mut stop: watch::Receiver<bool>,
) {
    let name = node_name(node);
    let mut listener = store.listener().await.expect("listen to the fleet");
    let mut cursor = store.last_id().await.expect("the fleet's last id");
    me.cursor.store(cursor, Relaxed);
    loop {
        let read_at = Instant::now();
        loop {
            let page = store
                .changes_after(cursor, PAGE)
                .await
                .expect("read the fleet's changes");
            let at = Instant::now();
            me.reads.fetch_add(1, Relaxed);
            let Some(last) = page.last().map(|c| c.id) else {
                me.empty_reads.fetch_add(1, Relaxed);
                break;
            };
            me.received
                .lock()
                .unwrap()
                .extend(page.iter().filter(|c| c.node != name).map(|c| (c.id, at)));
            cursor = last;
            me.cursor.store(cursor, Relaxed);
            if page.len() < PAGE as usize {
                break;
            }
        }
        tokio::select! {
            notification = listener.recv() => {
                notification.expect("a fleet notification");
                // As the daemon's applier: one read every READ_GAP at most, taking every
                // notification that arrived meanwhile.
                tokio::time::sleep(READ_GAP.saturating_sub(read_at.elapsed())).await;
                while listener.next_buffered().is_some() {}
            }
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How the nodes publish in a phase.
#[derive(Clone, Copy)]
enum Load {
    /// One ban at a time at random intervals (mean [`LIGHT_MEAN_GAP`]), lasting an hour.
    Light,
    /// As fast as it can, this many bans of 1 s a transaction.
    Flood(usize),
}

/// One node publishing under `load` until `until`: what it sent, in how many transactions.
async fn publish(node: usize, store: FleetStore, load: Load, until: Instant) -> (Vec<Sent>, u64) {
    let name = node_name(node);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (node as u64 + 1));
    let (mut sent, mut transactions) = (Vec::new(), 0);
    loop {
        let changes: Vec<Publication> = match load {
            Load::Light => {
                let gap = LIGHT_MEAN_GAP.mul_f64(rng.exponential());
                if Instant::now() + gap >= until {
                    break;
                }
                tokio::time::sleep(gap).await;
                vec![ban(3600)]
            }
            Load::Flood(_) if Instant::now() >= until => break,
            Load::Flood(n) => (0..n).map(|_| ban(1)).collect(),
        };
        let started = Instant::now();
        let ids = store.publish(&name, &changes, unix_now()).await;
        let committed = Instant::now();
        for id in ids.expect("publish") {
            sent.push(Sent {
                id,
                node,
                started,
                committed,
            });
        }
        transactions += 1;
    }
    (sent, transactions)
}

/// Waits until every follower's cursor reached `last`; how long that took, or `None` when
/// [`CATCH_UP_LIMIT`] passed first.
async fn catch_up(followers: &[Arc<Follower>], last: i64) -> Option<Duration> {
    let start = Instant::now();
    while followers.iter().any(|f| f.cursor.load(Relaxed) < last) {
        if start.elapsed() > CATCH_UP_LIMIT {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Some(start.elapsed())
}

/// What the server's client backends that are not idle are doing: waiting for an event (its
/// type and name), or running.
const ACTIVITY: &str = "SELECT coalesce(wait_event_type || '.' || wait_event, 'running'), count(*)
      FROM pg_stat_activity
     WHERE backend_type = 'client backend' AND state <> 'idle' AND pid <> pg_backend_pid()
     GROUP BY 1";

/// What the sampler saw every [`SAMPLE`] while a phase published.
#[derive(Default)]
struct Samples {
    count: u32,
    /// The largest lag of a follower behind the newest id, at each sample.
    lags: Vec<i64>,
    /// Backends seen, by what they were doing (summed over samples).
    activity: HashMap<String, i64>,
}

async fn sample(db: &PgPool, followers: &[Arc<Follower>], into: &mut Samples) {
    let newest: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM fleet_changes")
        .fetch_one(db)
        .await
        .expect("the newest id");
    let cursors = followers.iter().map(|f| f.cursor.load(Relaxed));
    into.lags
        .push(cursors.map(|c| newest.unwrap_or(0) - c).max().unwrap_or(0));
    let rows = sqlx::query_as::<_, (String, i64)>(ACTIVITY).fetch_all(db);
    let rows = rows.await.expect("the server's activity");
    for (what, n) in rows {
        *into.activity.entry(what).or_default() += n;
    }
    into.count += 1;
}

/// Propagation of one phase's publications to every other node.
#[derive(Default)]
struct Propagation {
    /// From the start of the `publish` call, and from its return (0 when the change arrived
    /// before the call returned), to the follower's read.
    from_start: Vec<Duration>,
    from_commit: Vec<Duration>,
    /// Pairs whose change lies behind the receiver's cursor and was never read: lost for good.
    skipped: usize,
    /// Pairs beyond the receiver's cursor: not read yet.
    unread: usize,
    /// The ids skipped by at least one follower, and by how many.
    skipped_ids: HashMap<i64, usize>,
}

/// Joins what the followers received (taking it) with `sent`.
fn propagation(sent: &[Sent], followers: &[Arc<Follower>]) -> Propagation {
    let index: HashMap<i64, usize> = sent.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let mut result = Propagation::default();
    let (from_start, from_commit) = (&mut result.from_start, &mut result.from_commit);
    let mut seen = vec![false; sent.len()];
    for (node, follower) in followers.iter().enumerate() {
        seen.fill(false);
        for (id, at) in std::mem::take(&mut *follower.received.lock().unwrap()) {
            if let Some(&i) = index.get(&id)
                && sent[i].node != node
                && !seen[i]
            {
                seen[i] = true;
                from_start.push(at.saturating_duration_since(sent[i].started));
                from_commit.push(at.saturating_duration_since(sent[i].committed));
            }
        }
        let cursor = follower.cursor.load(Relaxed);
        let missed = sent
            .iter()
            .zip(&seen)
            .filter(|(s, seen)| s.node != node && !**seen);
        for (s, _) in missed {
            if s.id <= cursor {
                result.skipped += 1;
                *result.skipped_ids.entry(s.id).or_default() += 1;
            } else {
                result.unread += 1;
            }
        }
    }
    result.from_start.sort();
    result.from_commit.sort();
    result
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// The `p` quantile of sorted `times` (nearest rank).
fn pick(times: &[Duration], p: f64) -> Duration {
    times[((times.len() - 1) as f64 * p).round() as usize]
}

/// (ppid, CPU time in clock ticks of it and of the children it reaped, comm) of process `pid`.
fn stat(pid: &str) -> Option<(u32, u64, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, tail) = text.rsplit_once(')')?;
    let f: Vec<u64> = tail
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let comm = head.split_once('(')?.1.to_owned();
    Some((
        u32::try_from(*f.get(1)?).ok()?,
        f.get(11..15)?.iter().sum(),
        comm,
    ))
}

/// CPU time (clock ticks) of this process, of the PostgreSQL server it started (the
/// postmaster, its live children and those it reaped) and of the whole machine (busy, from
/// /proc/stat: the machine is shared), and how many children the server has.
fn cpu_now() -> (u64, u64, u64, usize) {
    let bench = stat("self").map_or(0, |s| s.1);
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = text
        .split_whitespace()
        .skip(1)
        .take(8)
        .flat_map(str::parse)
        .collect();
    let machine = f.iter().sum::<u64>() - f.get(3).unwrap_or(&0) - f.get(4).unwrap_or(&0);
    let all: Vec<(u32, (u32, u64, String))> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            Some((name.parse().ok()?, stat(&name)?))
        })
        .collect();
    let me = std::process::id();
    let Some(&(master, _)) = all.iter().find(|p| p.1.0 == me && p.1.2 == "postgres") else {
        return (bench, 0, machine, 0);
    };
    let server = all.iter().filter(|p| p.0 == master || p.1.0 == master);
    let (processes, ticks) = server.fold((0, 0), |(n, t), p| (n + 1, t + p.1.1));
    (bench, ticks, machine, processes - 1)
}

/// The nodes' stores, their followers, a store of the bench's own for `last_id` and prune,
/// and a connection for the sampler.
struct Fleet {
    stores: Vec<FleetStore>,
    followers: Vec<Arc<Follower>>,
    observer: FleetStore,
    db: PgPool,
    stop: watch::Sender<bool>,
    following: Vec<JoinHandle<()>>,
}

impl Fleet {
    async fn start(url: &str) -> Fleet {
        // The first connection creates the schema; the others then only check it.
        let observer = FleetStore::connect(url).await.expect("connect");
        let connecting: Vec<JoinHandle<FleetStore>> = (0..NODES)
            .map(|_| {
                let url = url.to_owned();
                tokio::spawn(async move { FleetStore::connect(&url).await.expect("connect") })
            })
            .collect();
        let mut stores = Vec::new();
        for handle in connecting {
            stores.push(handle.await.unwrap());
        }
        let db = PgPoolOptions::new().max_connections(1).connect(url);
        let db = db.await.expect("connect");
        let (stop, stopped) = watch::channel(false);
        let followers: Vec<Arc<Follower>> = (0..NODES).map(|_| Arc::default()).collect();
        let following = (0..NODES)
            .map(|n| {
                let me = Arc::clone(&followers[n]);
                tokio::spawn(follow(n, stores[n].clone(), me, stopped.clone()))
            })
            .collect();
        while followers.iter().any(|f| f.reads.load(Relaxed) == 0) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Fleet {
            stores,
            followers,
            observer,
            db,
            stop,
            following,
        }
    }

    fn reads(&self) -> (u64, u64) {
        let sum = |count: fn(&Follower) -> &AtomicU64| {
            let counts = self.followers.iter().map(|f| count(f).load(Relaxed));
            counts.sum::<u64>()
        };
        (sum(|f| &f.reads), sum(|f| &f.empty_reads))
    }

    /// Runs one publishing phase (every node under `load`, until `length` has passed),
    /// sampling meanwhile; then waits for the followers and prints the phase's figures.
    /// Returns (pairs lost for good, pairs not read yet).
    async fn phase(&self, prefix: &str, length: Duration, load: Load) -> (usize, usize) {
        let say = |name: &str, value: &dyn Display| println!("{prefix}_{name}: {value}");
        let (reads_before, empty_before) = self.reads();
        let cpu = cpu_now();
        let start = Instant::now();
        let publishing: Vec<_> = (0..NODES)
            .map(|n| tokio::spawn(publish(n, self.stores[n].clone(), load, start + length)))
            .collect();
        let mut samples = Samples::default();
        while start.elapsed() + SAMPLE < length {
            tokio::time::sleep(SAMPLE).await;
            sample(&self.db, &self.followers, &mut samples).await;
        }
        let (mut sent, mut transactions) = (Vec::new(), 0);
        for handle in publishing {
            let (s, t) = handle.await.unwrap();
            sent.extend(s);
            transactions += t;
        }
        // Publishing has stopped: every call has returned.
        let secs = start.elapsed().as_secs_f64();
        let after = cpu_now();
        let last = self.observer.last_id().await.expect("the fleet's last id");
        let lags = self.followers.iter().map(|f| last - f.cursor.load(Relaxed));
        let lag_at_end = lags.max().unwrap_or(0);
        let caught_up = catch_up(&self.followers, last).await;

        let cores = |ticks: u64| format!("{:.2}", ticks as f64 / 100.0 / secs);
        say("postgres_cpu_cores", &cores(after.1 - cpu.1));
        say("bench_cpu_cores", &cores(after.0 - cpu.0));
        say("machine_cpu_cores_busy", &cores(after.2 - cpu.2));
        say("postgres_processes", &after.3);
        let mut activity: Vec<(String, i64)> = samples.activity.into_iter().collect();
        activity.sort_by_key(|(_, n)| -n);
        let per_sample = |n: i64| n as f64 / f64::from(samples.count.max(1));
        let activity: Vec<String> = activity
            .iter()
            .take(6)
            .map(|(what, n)| format!("{what} {:.1}", per_sample(*n)))
            .collect();
        println!(
            "{prefix} - server backends not idle while publishing, mean of {} samples - {}",
            samples.count,
            activity.join(", ")
        );
        say("changes", &sent.len());
        say("transactions", &transactions);
        let rate = |n: f64| format!("{:.0}", n / secs);
        say("changes_per_sec", &rate(sent.len() as f64));
        say("transactions_per_sec", &rate(transactions as f64));
        let mut calls: Vec<Duration> = sent.iter().map(|s| s.committed - s.started).collect();
        calls.sort();
        if !calls.is_empty() {
            say("publish_call_p50", &ms(pick(&calls, 0.5)));
            say("publish_call_p99", &ms(pick(&calls, 0.99)));
        }
        if let Some(max) = samples.lags.iter().max() {
            let mean = samples.lags.iter().sum::<i64>() as f64 / samples.lags.len() as f64;
            say("lag_while_publishing_mean", &format!("{mean:.0}"));
            say("lag_while_publishing_max", &max);
        }
        say("lag_at_end", &lag_at_end);
        match caught_up {
            Some(took) => say("all_followers_at_last_id_after", &ms(took)),
            None => println!(
                "{prefix} - the followers had not all reached id {last} {} s after publishing \
                 stopped",
                CATCH_UP_LIMIT.as_secs()
            ),
        }
        let (reads, empty) = self.reads();
        say("follower_reads", &(reads - reads_before));
        say("follower_empty_reads", &(empty - empty_before));

        let p = propagation(&sent, &self.followers);
        say("pairs", &p.from_start.len());
        say("pairs_expected", &(sent.len() * (NODES - 1)));
        say("pairs_skipped", &p.skipped);
        say("pairs_unread", &p.unread);
        say("changes_skipped_by_some_node", &p.skipped_ids.len());
        for (from, times) in [("", &p.from_start), ("_after_commit", &p.from_commit)] {
            for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
                if !times.is_empty() {
                    say(&format!("propagation{from}_{name}"), &ms(pick(times, q)));
                }
            }
        }
        if !p.skipped_ids.is_empty() {
            let mut ids: Vec<(i64, usize)> = p.skipped_ids.into_iter().collect();
            ids.sort();
            let ids: Vec<String> = ids
                .iter()
                .take(8)
                .map(|(id, n)| format!("{id} (by {n})"))
                .collect();
            println!(
                "{prefix} - a follower's cursor went past these committed changes before they \
                 were visible, so it never reads them - e.g. ids {}",
                ids.join(", ")
            );
        }
        (p.skipped, p.unread)
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for handle in self.following {
            handle.await.unwrap();
        }
        for store in self.stores {
            store.close().await;
        }
        self.observer.close().await;
        self.db.close().await;
    }
}

fn main() {
    let pg = Postgres::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "fleet_sim - {NODES} nodes in one process ({} tokio workers) against PostgreSQL {} \
         (fsync=off, unix socket, max_connections {})",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        pg.psql("SHOW server_version").trim(),
        pg.psql("SHOW max_connections").trim(),
    );
    let fleet = runtime.block_on(Fleet::start(&pg.url()));
    let number = |sql: &str| -> u64 { pg.psql(sql).trim().parse().unwrap() };
    let backends = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'";
    println!("client_connections: {}", number(backends));
    let mut failures = Vec::new();
    let (skipped, unread) = runtime.block_on(fleet.phase("light", LIGHT_FOR, Load::Light));
    if skipped + unread > 0 {
        failures.push(format!("light: {skipped} passed over, {unread} not read"));
    }
    for per_transaction in [1, 100] {
        let prefix = format!("flood_{per_transaction}");
        let flood = Load::Flood(per_transaction);
        let (skipped, _) = runtime.block_on(fleet.phase(&prefix, FLOOD_FOR, flood));
        if skipped > 0 {
            failures.push(format!("{prefix}: {skipped} pairs passed over"));
        }
    }
    let flooded_until = unix_now();

    let rows = number("SELECT count(*) FROM fleet_changes");
    let bytes = number("SELECT pg_total_relation_size('fleet_changes')");
    println!("table_rows: {rows}");
    println!("table_size: {:.1} MB", bytes as f64 / 1e6);
    println!("table_bytes_per_row: {}", bytes / rows.max(1));
    // Every flood ban (1 s long) has ended by now + 1 once a second has passed since the last.
    while unix_now() <= flooded_until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (removed, took) = runtime.block_on(async {
        let start = Instant::now();
        let removed = fleet.observer.prune(unix_now() + 1).await.expect("prune");
        (removed.expect("no other node prunes"), start.elapsed())
    });
    println!("prune_time: {}", ms(took));
    println!("prune_rows_removed: {removed}");
    let kept = number("SELECT count(*) FROM fleet_changes");
    println!("prune_rows_kept: {kept}");
    runtime.block_on(fleet.stop());

    assert!(
        failures.is_empty(),
        "not every node received every other node's changes ({}); a change passed over lies \
         behind its follower's cursor and is never read again",
        failures.join("; ")
    );
}

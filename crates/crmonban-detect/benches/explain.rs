//! `cargo bench -p crmonban-detect --bench explain`: throughput of `explain --summary` over a
//! generated 1,000,000-line sshd auth.log (~30% attack lines), on one thread, and the memory
//! the decider needs per tracked address.
//!
//! The log is generated deterministically (a fixed LCG seed): accepted logins with their PAM
//! session lines, CRON and sudo sessions, systemd-logind, kernel lines, and attack connections
//! of every ssh kind (invalid users, wrong passwords, PAM failures, preauth closes and
//! disconnects, max-auth, banner exchange, negotiation failures, kex probes) from ~50,000
//! distinct IPv4 and IPv6 addresses. The harness checks that every generated attack line is
//! matched before it reports a figure. Set `CRMONBAN_BENCH_WRITE=PATH` to also write the file.
//!
//! With `CRMONBAN_BENCH_TOOLS=DIR` (set by `cargo xtask bench`, which unpacks Debian's fail2ban
//! and sshguard packages into `DIR/root` without installing them), the same file is also given
//! to sshguard's parser (`sshg-parser`) and to `fail2ban-regex` with fail2ban's sshd filter, in
//! the same run: their lines/s, peak RSS, and every attacker address they find that we do not.
//!
//! The same detection also runs with 100,000 whitelist CIDRs configured (asked before every
//! count, as in the daemon), and single `Policy::check` calls against that table are timed.

use std::collections::HashSet;
use std::io::{Cursor, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crmonban_core::config::{BanDuration, ServiceConfig};
use crmonban_core::{EventKind, Service};
use crmonban_detect::decide::{DeciderOptions, ServicePolicy, WindowCounter};
use crmonban_detect::explain::{self, ExplainContext, ExplainMode};
use crmonban_detect::matcher::{Hit, LineContext, LineOutcome, ServiceMatcher};

const LINES: usize = 1_000_000;
const START: i64 = 1_795_564_800; // 2026-11-25T00:00:00Z

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const USERS: [&str; 12] = [
    "admin", "test", "oracle", "ubuntu", "user", "postgres", "git", "ftpuser", "guest", "pi",
    "deploy", "support",
];

struct Generator {
    rng: Lcg,
    out: Vec<u8>,
    lines: usize,
    attack_lines: usize,
    t: i64,
    pid: u32,
    /// Every address that attacked: the truth other tools' findings are checked against.
    attackers: HashSet<IpAddr>,
}

impl Generator {
    fn stamp(&self) -> String {
        let days = self.t.div_euclid(86_400);
        let secs = self.t.rem_euclid(86_400);
        let (_, m, d) = crmonban_detect::time::civil_from_days(days);
        format!(
            "{} {:>2} {:02}:{:02}:{:02} web1",
            MONTHS[m as usize - 1],
            d,
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }

    fn line(&mut self, program: &str, pid: Option<u32>, message: &str, attack: bool) {
        if self.lines >= LINES {
            return;
        }
        let stamp = self.stamp();
        match pid {
            Some(pid) => writeln!(self.out, "{stamp} {program}[{pid}]: {message}"),
            None => writeln!(self.out, "{stamp} {program}: {message}"),
        }
        .unwrap();
        self.lines += 1;
        self.attack_lines += usize::from(attack);
        self.t += i64::from(self.rng.below(3) == 0);
    }

    fn attacker(&mut self) -> IpAddr {
        // ~50,000 addresses; a few hundred of them are busy.
        let n = if self.rng.below(4) == 0 {
            self.rng.below(300)
        } else {
            self.rng.below(50_000)
        } as u32;
        if n.is_multiple_of(5) {
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                (n >> 8) as u16,
                n as u16,
                0,
                0,
                0,
                0x10,
            ))
        } else {
            IpAddr::V4(Ipv4Addr::from(0x2d00_0000 + n * 7919))
        }
    }

    fn next_pid(&mut self) -> u32 {
        self.pid = 1000 + (self.pid + 1 + self.rng.below(7) as u32) % 4_000_000;
        self.pid
    }

    fn benign(&mut self) {
        let pid = self.next_pid();
        match self.rng.below(10) {
            0..=2 => {
                let user = ["root", "www-data", "backup"][self.rng.below(3) as usize];
                self.line(
                    "CRON",
                    Some(pid),
                    &format!(
                        "pam_unix(cron:session): session opened for user {user}(uid=0) by (uid=0)"
                    ),
                    false,
                );
                self.line(
                    "CRON",
                    Some(pid),
                    &format!("({user}) CMD (   cd / && run-parts --report /etc/cron.hourly)"),
                    false,
                );
                self.line(
                    "CRON",
                    Some(pid),
                    &format!("pam_unix(cron:session): session closed for user {user}"),
                    false,
                );
            }
            3 | 4 => {
                let ip = Ipv4Addr::from(0xc633_6400 + self.rng.below(200) as u32);
                let port = 30_000 + self.rng.below(30_000);
                let session = self.rng.below(100_000);
                self.line("sshd", Some(pid), &format!("Accepted publickey for alice from {ip} port {port} ssh2: ED25519 SHA256:Vw4SKPyvUHsPfH9R8Ey5tTzK7DFcyfkYbPrxaPqplgk"), false);
                self.line(
                    "sshd",
                    Some(pid),
                    "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)",
                    false,
                );
                self.line(
                    "systemd-logind",
                    Some(412),
                    &format!("New session {session} of user alice."),
                    false,
                );
                self.line(
                    "sshd",
                    Some(pid),
                    &format!("Received disconnect from {ip} port {port}:11: disconnected by user"),
                    false,
                );
                self.line(
                    "sshd",
                    Some(pid),
                    &format!("Disconnected from user alice {ip} port {port}"),
                    false,
                );
                self.line(
                    "sshd",
                    Some(pid),
                    "pam_unix(sshd:session): session closed for user alice",
                    false,
                );
                self.line(
                    "systemd-logind",
                    Some(412),
                    &format!("Session {session} logged out. Waiting for processes to exit."),
                    false,
                );
                self.line(
                    "systemd-logind",
                    Some(412),
                    &format!("Removed session {session}."),
                    false,
                );
            }
            5 => {
                self.line("sudo", None, "   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update", false);
                self.line("sudo", None, "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)", false);
                self.line(
                    "sudo",
                    None,
                    "pam_unix(sudo:session): session closed for user root",
                    false,
                );
            }
            6 => {
                let ms = self.rng.below(1_000_000);
                self.line("kernel", None, &format!("[{ms}.{:06}] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=45.1.2.3 DST=10.0.0.5 LEN=44 TOS=0x00 PREC=0x00 TTL=243 ID=54321 PROTO=TCP SPT=54321 DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0", ms % 1_000_000), false);
            }
            7 => {
                self.line(
                    "systemd",
                    Some(1),
                    "Started session-42.scope - Session 42 of User alice.",
                    false,
                );
                self.line(
                    "systemd-logind",
                    Some(412),
                    "Watching system buttons on /dev/input/event0 (Power Button)",
                    false,
                );
            }
            _ => {
                self.line(
                    "sshd",
                    Some(pid),
                    "Server listening on 0.0.0.0 port 22.",
                    false,
                );
                self.line("polkitd", Some(700), "Registered Authentication Agent for unix-process:1234:5678 (system bus name :1.50 [/usr/bin/pkttyagent], object path /org/freedesktop/PolicyKit1/AuthenticationAgent, locale C.UTF-8)", false);
            }
        }
    }

    /// One attacker: usually a single connection, sometimes a campaign of several.
    fn campaign(&mut self) {
        let ip = self.attacker();
        self.attackers.insert(ip);
        let connections = if self.rng.below(6) == 0 {
            3 + self.rng.below(8)
        } else {
            1
        };
        for _ in 0..connections {
            self.attack(ip);
        }
    }

    fn attack(&mut self, ip: IpAddr) {
        let pid = self.next_pid();
        let port = 1024 + self.rng.below(64_000);
        let user = USERS[self.rng.below(USERS.len() as u64) as usize];
        match self.rng.below(8) {
            0..=2 => {
                self.line("sshd", Some(pid), &format!("Invalid user {user} from {ip} port {port}"), true);
                self.line("sshd", Some(pid), "pam_unix(sshd:auth): check pass; user unknown", false);
                self.line("sshd", Some(pid), &format!("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}"), true);
                self.line("sshd", Some(pid), &format!("Failed password for invalid user {user} from {ip} port {port} ssh2"), true);
                self.line("sshd", Some(pid), &format!("Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"), true);
                self.line("sshd", Some(pid), &format!("Disconnected from invalid user {user} {ip} port {port} [preauth]"), true);
            }
            3 | 4 => {
                self.line("sshd", Some(pid), &format!("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root"), true);
                self.line("sshd", Some(pid), &format!("Failed password for root from {ip} port {port} ssh2"), true);
                self.line("sshd", Some(pid), &format!("Connection closed by authenticating user root {ip} port {port} [preauth]"), true);
            }
            5 => {
                self.line("sshd", Some(pid), "error: kex_exchange_identification: Connection closed by remote host", false);
                self.line("sshd", Some(pid), &format!("Connection closed by {ip} port {port}"), true);
            }
            6 => {
                match self.rng.below(3) {
                    0 => self.line("sshd", Some(pid), &format!("banner exchange: Connection from {ip} port {port}: invalid format"), true),
                    1 => self.line("sshd", Some(pid), &format!("Unable to negotiate with {ip} port {port}: no matching key exchange method found. Their offer: diffie-hellman-group14-sha1,diffie-hellman-group1-sha1 [preauth]"), true),
                    _ => {
                        for _ in 0..3 {
                            self.line("sshd", Some(pid), &format!("Failed password for root from {ip} port {port} ssh2"), true);
                        }
                        self.line("sshd", Some(pid), &format!("error: maximum authentication attempts exceeded for root from {ip} port {port} ssh2 [preauth]"), true);
                        self.line("sshd", Some(pid), &format!("Disconnecting authenticating user root {ip} port {port}: Too many authentication failures [preauth]"), true);
                        self.line("sshd", Some(pid), &format!("PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root"), true);
                    }
                }
            }
            _ => {
                self.line("sshd", Some(pid), &format!("Connection closed by invalid user {user} {ip} port {port} [preauth]"), true);
            }
        }
    }
}

fn generate() -> (Vec<u8>, usize, HashSet<IpAddr>) {
    let mut g = Generator {
        rng: Lcg(0x5eed_cafe),
        out: Vec::with_capacity(LINES * 110),
        lines: 0,
        attack_lines: 0,
        t: START,
        pid: 1000,
        attackers: HashSet::new(),
    };
    while g.lines < LINES {
        // Tuned so that ~30% of the lines are attack lines.
        if g.rng.below(100) < 21 {
            g.campaign();
        } else {
            g.benign();
        }
    }
    (g.out, g.attack_lines, g.attackers)
}

/// Every address our matcher finds in `log`.
fn addresses_we_find(log: &[u8], service: &ServiceConfig, ctx: &ExplainContext) -> HashSet<IpAddr> {
    let matcher = ServiceMatcher::new("ssh", service).unwrap();
    log.split(|&b| b == b'\n')
        .filter_map(|line| match matcher.match_line(line, &ctx.line) {
            LineOutcome::Match(hit) => Some(hit.addr),
            _ => None,
        })
        .collect()
}

/// Runs `command` with `input` on stdin; returns its stdout, the wall time, and its peak RSS
/// in KiB (VmHWM, sampled every 5 ms: getrusage would report the benchmark's own size, which
/// a spawned child inherits until it execs).
fn timed_run(mut command: Command, input: &std::path::Path) -> (String, Duration, u64) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let mut child = command
        .stdin(std::fs::File::open(input).unwrap())
        .stdout(out.reopen().unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        peak = peak.max(status_kib(&status_path, "VmHWM:"));
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    assert!(status.success(), "{command:?} failed: {status}");
    (std::fs::read_to_string(out.path()).unwrap(), elapsed, peak)
}

/// sshg-parser and fail2ban-regex on the same log; see the module docs.
fn compare_with_other_tools(
    tools: &std::path::Path,
    log: &[u8],
    attackers: &HashSet<IpAddr>,
    service: &ServiceConfig,
    ctx: &ExplainContext,
    ours_per_sec: f64,
) {
    let root = tools.join("root");
    let path = tools.join("auth.log");
    std::fs::write(&path, log).unwrap();
    let ours = addresses_we_find(log, service, ctx);
    let report = |tool: &str, found: &HashSet<IpAddr>, elapsed: Duration, rss_kib: u64| {
        let per_sec = LINES as f64 / elapsed.as_secs_f64();
        let missed: Vec<&IpAddr> = found
            .iter()
            .filter(|a| attackers.contains(a) && !ours.contains(a))
            .collect();
        let innocent: Vec<&IpAddr> = found.iter().filter(|a| !attackers.contains(a)).collect();
        println!("{tool}_lines_per_sec: {per_sec:.0}");
        println!("{tool}_peak_rss: {:.1} MB", rss_kib as f64 / 1024.0);
        println!("{tool}_attackers_found: {}", found.len() - innocent.len());
        println!("{tool}_innocent_addresses_flagged: {}", innocent.len());
        println!("explain_speedup_over_{tool}: {:.1}", ours_per_sec / per_sec);
        println!("{tool}_attackers_we_miss: {}", missed.len());
        if !missed.is_empty() {
            eprintln!(
                "{tool} found attackers we do not, e.g. {:?}",
                &missed[..missed.len().min(10)]
            );
        }
        if !innocent.is_empty() {
            eprintln!(
                "{tool} flagged addresses that never attacked, e.g. {:?}",
                &innocent[..innocent.len().min(10)]
            );
        }
    };

    // sshg-parser prints "service address kind dangerousness" per attack line.
    let (out, elapsed, rss) = timed_run(
        Command::new(root.join("usr/libexec/sshguard/sshg-parser")),
        &path,
    );
    let found: HashSet<IpAddr> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    report("sshguard_parser", &found, elapsed, rss);

    // fail2ban-regex prints the address of each failure with `--out ip`.
    let mut f2b = Command::new("python3");
    f2b.arg(root.join("usr/bin/fail2ban-regex"))
        .args(["--out", "ip"])
        .arg(&path)
        .arg(root.join("etc/fail2ban/filter.d/sshd.conf"))
        .env("PYTHONPATH", root.join("usr/lib/python3/dist-packages"));
    let (out, elapsed, rss) = timed_run(f2b, &path);
    let found: HashSet<IpAddr> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    report("fail2ban_regex", &found, elapsed, rss);
    let innocent = ours.iter().filter(|a| !attackers.contains(a)).count();
    println!("crmonban_attackers_found: {}", ours.len() - innocent);
    println!("crmonban_innocent_addresses_flagged: {innocent}");
}

fn rss_kib() -> u64 {
    status_kib("/proc/self/status", "VmRSS:")
}

/// A `kB` field of a /proc status file; 0 when unreadable (e.g. the process just ended).
fn status_kib(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Every built-in pack at once over one shared log (a host whose services all write to one
/// syslog file): the sshd log with every third line replaced by a sample line of some pack
/// (every pack's samples in turn), each line given to every pack's matcher.
fn mixed_services(sshd_log: &[u8]) {
    use crmonban_core::config::ServiceCatalog;
    let matchers: Vec<ServiceMatcher> = ServiceCatalog::builtin()
        .packs()
        .map(|pack| {
            let config = ServiceConfig::from_pack(pack, BanDuration::from_secs(3600));
            ServiceMatcher::new(&pack.name, &config).unwrap()
        })
        .collect();
    let samples: Vec<&str> = ServiceCatalog::builtin()
        .packs()
        .flat_map(|pack| pack.tests.iter().map(|t| t.text.as_str()))
        .collect();
    let mut mixed = Vec::with_capacity(sshd_log.len() + sshd_log.len() / 4);
    for (i, line) in sshd_log.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if i % 3 == 2 {
            mixed.extend_from_slice(samples[(i / 3) % samples.len()].as_bytes());
        } else {
            mixed.extend_from_slice(line);
        }
        mixed.push(b'\n');
    }
    let ctx = LineContext::at(START + 30 * 86_400);
    let mut best = Duration::MAX;
    let mut hits = 0;
    for _ in 0..3 {
        hits = 0;
        let started = Instant::now();
        for line in mixed.split(|&b| b == b'\n') {
            for matcher in &matchers {
                if let LineOutcome::Match(_) = matcher.match_line(line, &ctx) {
                    hits += 1;
                }
            }
        }
        best = best.min(started.elapsed());
    }
    println!(
        "mixed_all_packs_lines_per_sec: {:.0}",
        LINES as f64 / best.as_secs_f64()
    );
    println!(
        "mixed_all_packs: {} packs, {} lines, a third of them pack samples; {} matches",
        matchers.len(),
        LINES,
        hits
    );
}

/// Memory per tracked address: 1,000,000 distinct IPv4 addresses inside one window, measured
/// first, in a fresh process (what the allocator does with the benchmark's own large buffers
/// afterwards would otherwise show up in the figure).
fn decider_memory(service: &ServiceConfig) -> [String; 2] {
    let policy = ServicePolicy::new(service, &DeciderOptions::default());
    let before = rss_kib();
    let mut counter = WindowCounter::new(Service::new("ssh"), policy);
    let pattern: Arc<str> = Arc::from("bench");
    let started = Instant::now();
    for i in 0..1_000_000u32 {
        let hit = Hit {
            addr: IpAddr::V4(Ipv4Addr::from(
                0x0100_0000u32.wrapping_add(i.wrapping_mul(2_654_435_761)),
            )),
            port: None,
            kind: EventKind::FailedAuth,
            pattern: pattern.clone(),
            time: Some(START + i64::from(i / 10_000)),
            attempt: None,
        };
        counter.observe(&hit, START);
    }
    let elapsed = started.elapsed();
    let after = rss_kib();
    assert_eq!(counter.stats().tracked, 1_000_000);
    [
        format!(
            "decider_1m_addresses_rss_delta: {:.1} MB ({} bytes per address), observe: {:.0} ns each",
            (after - before) as f64 / 1024.0,
            (after - before) * 1024 / 1_000_000,
            elapsed.as_nanos() as f64 / 1e6
        ),
        format!("process_rss_after: {:.1} MB", after as f64 / 1024.0),
    ]
}

/// 100,000 whitelist CIDRs, IPv4 (/12 to /32) and IPv6 (/32 to /128, mostly /48 to /64) in
/// about equal numbers, drawn from the whole address space except the generated attackers' ranges and the
/// reserved ranges, in one `networks` source.
struct WhitelistBench {
    policy: crmonban_zones::Policy,
    cidrs: Vec<crmonban_core::Target>,
    build: Duration,
    rss_delta_kib: u64,
}

impl WhitelistBench {
    const COUNT: usize = 100_000;

    fn build() -> WhitelistBench {
        use crmonban_core::Target;
        use crmonban_core::config::{WhitelistConfig, WhitelistSource, ZonesConfig};
        let mut rng = Lcg(0x5eed_c1d2);
        let avoid = [
            // The generated attackers: 45.0.0.0 + n * 7919 for n < 50,000, and 2001:db8::/32.
            Target::parse("32.0.0.0/3").unwrap(),
            Target::parse("64.0.0.0/5").unwrap(),
            Target::parse("2001:db8::/32").unwrap(),
        ];
        let mut cidrs = Vec::with_capacity(Self::COUNT);
        while cidrs.len() < Self::COUNT {
            let text = if rng.below(10) < 6 {
                let addr = Ipv4Addr::from(((rng.next() << 32 | rng.next()) & 0xffff_ffff) as u32);
                format!("{addr}/{}", 12 + rng.below(21))
            } else {
                let high = (rng.next() << 32 | rng.next()) as u128;
                let low = (rng.next() << 32 | rng.next()) as u128;
                let addr = Ipv6Addr::from(0x2000u128 << 112 | (high << 64 | low) >> 3);
                let len = match rng.below(10) {
                    0 => 32 + rng.below(16),
                    1 => 65 + rng.below(64),
                    _ => 48 + rng.below(17),
                };
                format!("{addr}/{len}")
            };
            let Ok(target) = Target::parse(&text) else {
                continue;
            };
            let policy = crmonban_zones::Policy::default();
            if avoid.iter().any(|a| a.covers(&target) || target.covers(a))
                || policy.check(&target).is_err()
            {
                continue;
            }
            cidrs.push(target);
        }
        let before = rss_kib();
        let started = Instant::now();
        let whitelist = WhitelistConfig {
            sources: vec![WhitelistSource::Networks(cidrs.clone())],
            ..WhitelistConfig::default()
        };
        let (policy, _) =
            crmonban_zones::Policy::build(&whitelist, &ZonesConfig::default(), [], Vec::new())
                .unwrap();
        let build = started.elapsed();
        let rss_delta_kib = rss_kib().saturating_sub(before);
        WhitelistBench {
            policy,
            cidrs,
            build,
            rss_delta_kib,
        }
    }

    /// One `check` per address, each timed on its own: half are inside a whitelisted CIDR,
    /// half are random addresses (mostly not).
    fn report(&self) {
        let mut rng = Lcg(0xfeed);
        let probes: Vec<crmonban_core::Target> = (0..1_000_000)
            .map(|i| {
                if i % 2 == 0 {
                    let net = self.cidrs[rng.below(self.cidrs.len() as u64) as usize];
                    crmonban_core::Target::from(net.as_net().network())
                } else if i % 4 == 1 {
                    IpAddr::V4(Ipv4Addr::from(
                        rng.next() as u32 ^ (rng.next() << 31) as u32,
                    ))
                    .into()
                } else {
                    IpAddr::V6(Ipv6Addr::from(
                        0x2000u128 << 112 | u128::from(rng.next()) << 64 | u128::from(rng.next()),
                    ))
                    .into()
                }
            })
            .collect();
        let mut nanos = Vec::with_capacity(probes.len());
        let mut refused = 0u64;
        for probe in &probes {
            let started = Instant::now();
            let answer = self.policy.check(std::hint::black_box(probe));
            nanos.push(started.elapsed().as_nanos() as u64);
            refused += u64::from(answer.is_err());
        }
        assert!(
            refused >= probes.len() as u64 / 2,
            "every inside probe is refused"
        );
        nanos.sort_unstable();
        let at = |q: f64| nanos[((nanos.len() - 1) as f64 * q) as usize];
        println!(
            "whitelist_100k_cidrs: {} entries ({} IPv4, {} IPv6), built in {:.1} ms, {:.1} MB",
            self.policy.whitelist_len(),
            self.cidrs.iter().filter(|c| c.is_ipv4()).count(),
            self.cidrs.iter().filter(|c| !c.is_ipv4()).count(),
            self.build.as_secs_f64() * 1000.0,
            self.rss_delta_kib as f64 / 1024.0
        );
        println!("whitelist_100k_check_median: {} ns", at(0.5));
        println!("whitelist_100k_check_p99: {} ns", at(0.99));
    }
}

fn main() {
    let service = ServiceConfig::builtin("ssh", BanDuration::from_secs(3600)).unwrap();
    let decider_memory = decider_memory(&service);
    let (log, attack_lines, attackers) = generate();
    if let Ok(path) = std::env::var("CRMONBAN_BENCH_WRITE") {
        std::fs::write(&path, &log).expect("write the generated log");
        eprintln!("wrote {path}");
    }
    let ctx = ExplainContext {
        line: LineContext::at(START + 30 * 86_400),
        ..Default::default()
    };
    // The same detection with 100,000 whitelist CIDRs configured, asked before every count as
    // in the daemon; runs alternate with the plain ones so that drift hits both alike.
    let whitelist = WhitelistBench::build();
    let timed = |protected: &dyn Fn(&crmonban_core::Target) -> bool| {
        let started = Instant::now();
        let summary = explain::run_protected(
            "ssh",
            &service,
            Cursor::new(&log[..]),
            ExplainMode::Summary,
            &mut std::io::sink(),
            &ctx,
            protected,
        )
        .unwrap();
        (started.elapsed(), summary)
    };
    let mut best = Duration::MAX;
    let mut best_protected = Duration::MAX;
    let mut summary = None;
    let mut protected_summary = None;
    for _ in 0..5 {
        let (elapsed, s) = timed(&|_| false);
        best = best.min(elapsed);
        summary = Some(s);
        let (elapsed, s) = timed(&|target| whitelist.policy.check(target).is_err());
        best_protected = best_protected.min(elapsed);
        protected_summary = Some(s);
    }
    let s = summary.unwrap();
    let p = protected_summary.unwrap();
    assert!(
        p.protected == 0 && p.would_ban == s.would_ban,
        "the whitelist must not cover the attackers (the same work with and without it): \
         {} protected lines",
        p.protected
    );
    assert_eq!(s.lines as usize, LINES);
    assert_eq!(
        s.matched as usize, attack_lines,
        "every generated attack line must match, and nothing else"
    );
    println!(
        "input: {} lines, {} bytes, {} attack lines ({:.1}%), {} addresses, {} would be banned",
        s.lines,
        log.len(),
        attack_lines,
        100.0 * attack_lines as f64 / LINES as f64,
        s.ips,
        s.would_ban.len()
    );
    println!(
        "explain_summary_1m_lines_per_sec: {:.0}",
        LINES as f64 / best.as_secs_f64()
    );
    println!(
        "explain_summary_1m_elapsed: {:.1} ms",
        best.as_secs_f64() * 1000.0
    );
    println!(
        "explain_summary_1m_mb_per_sec: {:.0}",
        log.len() as f64 / best.as_secs_f64() / 1e6
    );
    let plain_rate = LINES as f64 / best.as_secs_f64();
    let protected_rate = LINES as f64 / best_protected.as_secs_f64();
    println!("explain_summary_1m_lines_per_sec_with_100k_whitelist_cidrs: {protected_rate:.0}");
    println!(
        "whitelist_100k_throughput_drop_percent: {:.1}",
        (100.0 * (1.0 - protected_rate / plain_rate)).max(0.0)
    );
    whitelist.report();
    drop(whitelist);
    if let Some(tools) = std::env::var_os("CRMONBAN_BENCH_TOOLS") {
        let ours = LINES as f64 / best.as_secs_f64();
        let tools = std::path::Path::new(&tools);
        compare_with_other_tools(tools, &log, &attackers, &service, &ctx, ours);
    }
    mixed_services(&log);
    drop(log);

    for line in decider_memory {
        println!("{line}");
    }
}

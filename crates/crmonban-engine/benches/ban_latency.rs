//! Ban latency (root; run by `cargo xtask bench`): the time from appending the decisive line to
//! a tailed auth.log until the element is in the nft set — the daemon's own code path (file
//! source, matcher, time windows, engine, netlink), inside a network namespace of its own.
//! The real `NftBackend` is wrapped so that the moment its transaction for the address
//! committed is recorded (`line_to_kernel`); `line_to_ban_added` runs until the engine's
//! `BanAdded`, sent once the database row is written too.
//!
//! Each round: two failed logins from a fresh address (below max_failures = 3), a pause so they
//! are counted, then the third line is appended and timed.
//!
//! Half the rounds run with the slow services on, all pointed at a server inside the namespace
//! that accepts connections and never answers: intel (`auto_intel`, crmonban-engine's
//! `IntelService`, WHOIS with a 30 s timeout: every gather hangs and the intel queue fills)
//! and SIEM export (`SiemService`: a webhook and a TCP syslog target, queues of 64 events that
//! fill and drop their oldest). The `*_hanging_services_*` figures show whether a ban waited
//! for any of it. Plain and hanging passes alternate (four passes of 150 rounds, a fresh
//! engine each), so that a slow stretch of the machine falls on both.

use std::collections::HashMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crmonban_core::Target;
use crmonban_core::config::Config;
use crmonban_engine::{Detection, Engine, EngineEvent, EngineOptions, IntelService, SiemService};
use crmonban_firewall::{
    ApplyReport, Change, ChangeSet, Element, FirewallBackend, FirewallError, Layout, NftBackend,
    NftOptions, Transport,
};
use crmonban_testutil::NetNs;

/// When each added target's transaction committed.
type Committed = Arc<Mutex<HashMap<Target, Instant>>>;

/// The real backend, noting when `apply` returned for each target it added.
struct Timed {
    inner: NftBackend,
    committed: Committed,
}

impl FirewallBackend for Timed {
    fn ensure_layout(&mut self) -> Result<(), FirewallError> {
        self.inner.ensure_layout()
    }
    fn apply(&mut self, changes: &ChangeSet) -> Result<ApplyReport, FirewallError> {
        let report = self.inner.apply(changes)?;
        let at = Instant::now();
        let mut committed = self.committed.lock().unwrap();
        for change in &changes.changes {
            if let Change::Add(e) = change {
                committed.insert(e.target, at);
            }
        }
        Ok(report)
    }
    fn replace_all(&mut self, elements: &[Element]) -> Result<ApplyReport, FirewallError> {
        self.inner.replace_all(elements)
    }
    fn layout_present(&mut self) -> Result<bool, FirewallError> {
        self.inner.layout_present()
    }
    fn list(&mut self) -> Result<Vec<Element>, FirewallError> {
        self.inner.list()
    }
    fn teardown(&mut self) -> Result<(), FirewallError> {
        self.inner.teardown()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

const ROUNDS: u32 = 300;

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let ns = NetNs::new("bench-lat");
    // A server (WHOIS, HTTP, syslog) that takes every connection and never says a word.
    let listener = ns.run(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let whois = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = Arc::clone(&held);
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            holder.lock().unwrap().push(socket);
        }
    });
    // Plain and hanging-services passes alternate, half the rounds each time, so that a slow
    // stretch of the machine falls on both kinds rather than on one.
    let (mut plain, mut with_intel) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for pass in 0..4u32 {
        let intel = pass % 2 == 1;
        let (to_kernel, to_event) = measure(&ns, pass, intel.then_some(whois));
        let into = if intel { &mut with_intel } else { &mut plain };
        into.0.extend(to_kernel);
        into.1.extend(to_event);
    }
    println!(
        "hanging_services_connections_held: {}",
        held.lock().unwrap().len()
    );
    for (suffix, (mut to_kernel, mut to_event)) in [("", plain), ("_hanging_services", with_intel)]
    {
        for (name, times) in [
            ("line_to_kernel", &mut to_kernel),
            ("line_to_ban_added", &mut to_event),
        ] {
            times.sort();
            let pick = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
            println!("{name}{suffix}_median: {}", ms(pick(0.5)));
            println!("{name}{suffix}_p99: {}", ms(pick(0.99)));
            println!("{name}{suffix}_max: {}", ms(pick(1.0)));
        }
    }
}

/// Half of [`ROUNDS`] timed bans in `ns` (pass `pass`, with addresses of its own); with intel
/// and SIEM export against the silent server `whois` when given. Returns (line -> kernel,
/// line -> BanAdded) per round.
fn measure(
    ns: &NetNs,
    pass: u32,
    whois: Option<std::net::SocketAddr>,
) -> (Vec<Duration>, Vec<Duration>) {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("auth.log");
    std::fs::write(
        &log_path,
        "Nov 25 00:00:00 host sshd[1]: Server listening on 0.0.0.0 port 22.\n",
    )
    .unwrap();
    let intel = whois.map_or_else(String::new, |server| {
        format!(
            "[intel]\ngeoip_enabled = false\nwhois_enabled = true\nwhois_server = \"{server}\"\ntimeout_secs = 30\n\
             [siem]\nenabled = true\nqueue_size = 64\n\
             [[siem.targets]]\ntype = \"webhook\"\nurl = \"http://{server}/events\"\ntimeout_secs = 30\n\
             [[siem.targets]]\ntype = \"syslog\"\naddress = \"{server}\"\nprotocol = \"tcp\"\n"
        )
    });
    let config = Config::from_toml_str(
        &format!(
            "[services.ssh]\nlog_path = \"{}\"\nsource = \"file\"\nmax_failures = 3\nfind_time = 600\nban_time = 600\n{intel}",
            log_path.display()
        ),
        "bench.toml",
    )
    .unwrap();
    let committed: Committed = Arc::default();
    ns.run(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = crmonban_store::Store::open(&dir.path().join("bench.db"))
                .await
                .unwrap();
            let firewall = Timed {
                inner: NftBackend::new(NftOptions {
                    layout: Layout::default(),
                    transport: Transport::Auto,
                    ..NftOptions::default()
                })
                .unwrap(),
                committed: committed.clone(),
            };
            let engine = Engine::start(
                EngineOptions::from_config(&config),
                Box::new(firewall),
                store,
            )
            .await
            .unwrap();
            let intel = whois.map(|_| {
                IntelService::start(&engine, &config.intel, true, Duration::from_secs(86_400))
            });
            let siem = match whois {
                Some(_) => {
                    Some(SiemService::start(&engine, SiemService::prepare(&config).unwrap()).await)
                }
                None => None,
            };
            let mut events = engine.subscribe();
            let detection = Detection::start(&engine, &config, 0).unwrap();
            // Let the source open the file (read from its end) before appending.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .open(&log_path)
                .unwrap();
            let mut to_kernel = Vec::with_capacity(ROUNDS as usize / 2);
            let mut to_event = Vec::with_capacity(ROUNDS as usize / 2);
            for round in 0..ROUNDS / 2 {
                // Each pass its own addresses: earlier passes' bans stay in the kernel.
                let addr = Ipv4Addr::from(0xC000_0000u32 + ((pass + 1) << 16) + round).to_string();
                let pid = 10_000 + round * 4;
                let stamp = chrono_like_now();
                for k in 0..2 {
                    writeln!(
                        log,
                        "{stamp} host sshd[{}]: Failed password for root from {addr} port {} ssh2",
                        pid + k,
                        40_000 + k
                    )
                    .unwrap();
                }
                log.flush().unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
                let decisive = format!(
                    "{stamp} host sshd[{}]: Failed password for root from {addr} port 40002 ssh2\n",
                    pid + 2
                );
                let start = Instant::now();
                log.write_all(decisive.as_bytes()).unwrap();
                log.flush().unwrap();
                loop {
                    match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
                        Ok(Ok(EngineEvent::BanAdded { ban })) if ban.target.to_string() == addr => {
                            break;
                        }
                        Ok(Ok(_)) => continue,
                        Ok(Err(_)) => continue,
                        Err(_) => panic!("no ban for {addr} within 5 s"),
                    }
                }
                to_event.push(start.elapsed());
                let target = Target::parse(&addr).unwrap();
                let at = committed.lock().unwrap()[&target];
                to_kernel.push(at - start);
            }
            if let Some(intel) = &intel {
                let stats = intel.stats();
                println!("hanging_services_intel_dropped: {}", stats.dropped);
                println!("hanging_services_intel_waiting: {}", stats.waiting);
                println!("hanging_services_intel_gathered: {}", stats.gathered);
                intel.shutdown().await;
            }
            if let Some(siem) = &siem {
                for target in siem.stats().targets {
                    let kind = target.name.split(' ').next().unwrap_or("target");
                    let s = &target.stats;
                    println!("hanging_services_siem_{kind}_queued: {}", s.queued);
                    println!("hanging_services_siem_{kind}_dropped: {}", s.dropped);
                    println!("hanging_services_siem_{kind}_sent: {}", s.sent);
                }
            }
            detection.shutdown().await;
            engine.shutdown().await;
            if let Some(siem) = &siem {
                siem.shutdown().await;
            }
            (to_kernel, to_event)
        })
    })
}

/// `Nov 25 16:19:59` for now (UTC), as rsyslog writes it.
fn chrono_like_now() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let now = crmonban_core::unix_now();
    let (_, month, day) = crmonban_detect::time::civil_from_days(now.div_euclid(86_400));
    let secs = now.rem_euclid(86_400);
    format!(
        "{} {day:>2} {:02}:{:02}:{:02}",
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

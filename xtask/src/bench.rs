//! `cargo xtask bench`: runs every benchmark harness (each prints `name: value` lines), and
//! writes docs/BENCHMARKS.md with the machine, the date, the command and the figures next to
//! their targets. Benchmarks that need the kernel make their own network namespace.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use crate::{cargo, require_root};

/// (package, bench target, what it measures)
const BENCHES: &[(&str, &str, &str)] = &[
    (
        "crmonban-firewall",
        "nft_scale",
        "nftables backend against the kernel (Transport::Auto: the netlink path, unless noted)",
    ),
    (
        "crmonband",
        "daemon",
        "the real daemon on a private system-like bus: idle, then 100,000 and 1,000,000 active bans in its database",
    ),
    (
        "crmonban-detect",
        "explain",
        "the detector over a generated 1,000,000-line sshd auth.log, one thread",
    ),
    (
        "crmonban-engine",
        "ban_latency",
        "decisive auth.log line appended -> element in the kernel, then BanAdded (file source, matcher, engine, netlink)",
    ),
    (
        "crmonband",
        "peers",
        "ban latency of crmonban, sshguard and fail2ban side by side: decisive auth.log line -> element in the kernel, each real daemon in a network namespace of its own",
    ),
    (
        "crmonban-ebpf",
        "xdp_flood",
        "a 64-byte UDP flood over veth, dropped by nothing, by crmonban's nftables rule and by XDP (a minimal drop-all program, and crmonban's with the same 1,000,000 bans)",
    ),
    (
        "crmonban-store",
        "fleet_sim",
        "50 simulated fleet nodes sharing bans through one PostgreSQL: propagation latency under light load and floods, publish rate sustained, followers keeping up, table size and prune",
    ),
];

/// What a reader needs to compare the figures, by bench target.
const NOTES: &[(&str, &str)] = &[
    (
        "nft_scale",
        "Bans are 50% IPv4 / 50% IPv6 with a 24 h timeout. `apply_*` is one `FirewallBackend::apply` \
     call, one nftables transaction over netlink, into address sets made for 1,000,000 each \
     (an apply past a set's size is refused and the owner rebuilds with `replace_all`; the \
     daemon sizes its sets at each restore for half as many again as it loads). \
     `replace_all_*` is the restore at start \
     (table rebuilt and loaded in one transaction) of 1,000,000 bans plus 10,000 /24 networks; \
     `flush_*` empties it again. The `_nft_binary` figures send the same single ban through \
     the `nft` binary. `plain_nft_f_text_*` loads the same bans (and networks) with `nft -f` \
     in nft's text syntax, in the same run; `replace_all_1m_vs_plain_nft_f` is the ratio of \
     the two times; `apply_10k_vs_plain_nft_f` the same for 10,000 bans. fail2ban bans (and \
     restores) one `nft add element` process per ban: `one_nft_process_per_ban_median` times 200 \
     such processes here, and the `_extrapolated` figures multiply it out for 10,000 and \
     1,000,000 bans.",
    ),
    (
        "explain",
        "`crmonband explain --summary`'s code path (matcher and time windows, no output per line) \
         over a deterministic 1,000,000-line auth.log with ~30% attack lines of every sshd kind, IPv4 \
         and IPv6; the best of several runs. The same file then goes, in the same run, to sshguard's \
         parser (`sshg-parser`, C) and to `fail2ban-regex` with fail2ban's sshd filter, both from \
         Debian 12's packages unpacked into target/bench-tools (not installed: no service starts). \
         The generator knows who attacked: `*_attackers_we_miss` counts attackers a tool found and \
         crmonban did not (must be 0); `*_innocent_addresses_flagged` counts addresses a tool \
         reported that never attacked (fail2ban's multi-line sshd rules can tie a successful login \
         to an earlier failure of a reused sshd pid). Peak RSS is the tool's VmHWM. \
         `decider_1m_addresses_rss_delta` is the memory of tracking 1,000,000 distinct addresses \
         inside one window, measured first in the fresh process; `process_rss_after` the whole \
         process while it holds them. `mixed_all_packs_*` gives every line of a shared log (the \
         sshd log with every third line a sample of some pack) to every built-in pack's matcher. \
         `*_with_100k_whitelist_cidrs` is the same detection with 100,000 whitelist CIDRs \
         configured (IPv4 and IPv6 drawn at random, counts in `whitelist_100k_cidrs`, none \
         covering an attacker, so the work is the same), the protection policy asked before every count as in the daemon; runs \
         alternate with the plain ones. `whitelist_100k_check_*` times 1,000,000 single \
         `Policy::check` calls against that table (half inside an entry, half random), each \
         call timed on its own (the clock read is included).",
    ),
    (
        "ban_latency",
        "300 rounds: two failed logins from a fresh address, a pause, then the decisive third line \
         is appended and timed. `line_to_kernel_*` runs until the nftables transaction holding the \
         address has committed (the real NftBackend, wrapped to note when `apply` returned); \
         `line_to_ban_added_*` until the engine's `BanAdded`, sent once the database row is \
         written too. For comparison (the issue's figures for this VM): sshguard 3.8 ms median, \
         fail2ban 193 ms (pyinotify) to 766 ms (polling), CrowdSec's bouncer polls every 10 s. \
         The `*_hanging_services_*` figures are the rounds run with the slow services on, all \
         pointed at a server in the namespace that accepts connections and never answers: intel \
         (`auto_intel`, WHOIS with a 30 s timeout: every gather hangs and the intel queue fills) \
         and SIEM export (a webhook and a TCP syslog target with queues of 64 events, which fill \
         and drop their oldest); a ban that waited for either would show it there \
         (`hanging_services_intel_*`, `hanging_services_siem_*`: the queues at the end of each \
         such pass). Plain and hanging passes of 150 rounds alternate, a fresh engine each, so \
         that a slow stretch of the machine falls on both.",
    ),
    (
        "peers",
        "The same method for every tool, in one run: the real daemon (`crmonband start -f` on a \
         private bus; Debian's `sshguard` script driving `sshg-logtail | sshg-parser | \
         sshg-blocker | sshg-fw-nft-sets`; `fail2ban-server -xf start` with Debian's \
         configuration, jail sshd and `nftables-multiport`, once with the pyinotify backend and \
         once with polling) runs in a network namespace of its own and tails its own auth.log, \
         banning after 3 failed sshd logins (sshguard: THRESHOLD 30, each attack scoring 10; \
         fail2ban: maxretry 3; find and ban times of a day). The peers are Debian 12's packages \
         unpacked into target/bench-tools, not installed. Each round appends two `Failed password \
         for invalid user` lines from a fresh address, pauses 200 ms, then appends the decisive \
         third line and times until the address is in the kernel: a netlink socket in the \
         tool's namespace, subscribed to nf_tables notifications, timestamps the `NEWSETELEM` \
         the kernel sends when the transaction holding the element commits. A readiness ban and \
         2 warm-up rounds are not counted; 200 timed rounds for crmonban and sshguard, 30 for \
         each fail2ban backend (so its p99 is the maximum). `*_over_crmonban_median` divides a \
         peer's median by crmonban's from the same run.",
    ),
    (
        "daemon",
        "Each start spawns the real `crmonband start -f` (release build) in a network namespace \
         of its own. `*_exec_to_enforced` runs from the spawn until the stored bans are in the \
         kernel, watched from outside by looking two of them up over netlink every millisecond \
         (the first stored and the last: into a kernel without crmonban's table the restore \
         goes in parts of 50,000 in the order of the rows, one transaction each, so the last \
         seen means all; every stored ban is looked up after); `*_until_answering` until `crmonctl status` first succeeds. \
         `engine_restore_100k` is the daemon's own measure of reading and restoring; \
         `engine_read_and_enforce_1m` its measure from reading the store to every ban in the \
         kernel (the rest of `*_exec_to_enforced` is the process starting). \
         `crmonctl_ban_round_trip_*` includes starting the crmonctl process; `dbus_ban_call_*` is \
         the same Ban call from a long-lived client. Memory is the daemon's VmRSS: idle (empty \
         database, default services), after those calls with 100,000 bans, and a second after \
         the start with 1,000,000. `daemon_bytes_per_ban` is (RSS with the bans - idle RSS) / \
         bans. `plain_nft_f_1m_same_elements` loads the same 1,000,000 elements (timeouts \
         included) with `nft -f` in the same run; the start with 1,000,000 and that load run twice \
         each, in turns (this VM's speed drifts by tens of percent over minutes; both passes \
         in `start_1m_passes`), and the better of each is reported; \
         `start_1m_vs_plain_nft_f` is their ratio.",
    ),
    (
        "xdp_flood",
        "One run, two network namespaces joined by veth on this 2-core VM. A thread in the \
         sending one writes pre-built 60-byte IPv4 UDP frames (64 on the wire) to an AF_PACKET \
         socket with `sendmmsg`, 64 a call, as fast as it can: 1 s of warm-up, then 3 s measured. \
         The source, 11.0.0.1, lies between banned addresses (in a trie it would be as deep as \
         most of a large ban list; our program looks single addresses up in a hash map, and \
         networks in a trie after it). The receiving namespace drops the flood: `none` with no \
         rule, at a UDP socket that never reads (the frames climb the whole stack); `nft_input` \
         with crmonban's nftables input rule (NftBackend, 1,000,000 bans 50% IPv4 / 50% IPv6 with \
         a 24 h timeout, plus the sender); `minimal_xdp` with a two-instruction program \
         (`r0 = XDP_DROP; exit`); `crmonban_xdp` with our program, the same bans in its maps \
         (max_entries 1,100,000), attached in the same mode (`xdp_mode`; both through BPF links). \
         `*_pps` is the frames the receiving veth took in per second (its rx_packets, read over \
         netlink): veth counts a frame there once it has handed it on, to XDP or to the stack, and \
         counts one it could not hand on as dropped. Over every pass the bench checks that the \
         frames the sender got through `sendmmsg` equal those taken in plus veth's drops \
         (`xdp_flood_veth_drops`), and that the configuration's own counter agrees within 0.1%: \
         the UDP socket's arrivals, the nft rule counter (a netlink dump), our program's drop \
         counter; and that nothing reaches the socket past a drop. The order is none, nft, \
         minimal, crmonban, then back; each figure is the better of its two passes (both in \
         `xdp_flood_passes_pps`). On veth the sender and the receiver share a core's worth of \
         time: veth hands a frame on in softirq on the sending CPU, mostly within the sender's \
         own system call. `*_cpu_per_frame` splits it (the machine's /proc/stat system and \
         softirq time over the window, sampled at the timer tick, per frame taken in): the \
         sender's own cost (system call, skb, veth's transmit) is the larger part of every \
         frame's, so the ratios to nft are small here. XDP on veth also runs on an skb that already \
         exists, which veth first copies into a page with XDP headroom. A NIC driver runs XDP on the DMA buffer \
         before any skb exists: the XDP paper (Høiland-Jørgensen et al., The eXpress Data Path, \
         CoNEXT 2018) measured 24 Mpps of XDP_DROP on one core (mlx5, 100 Gbit/s ConnectX-5, \
         Xeon E5-1650 v4 at 3.6 GHz), 41.6 ns a packet, against 4.8 Mpps for a drop in iptables' \
         raw table and 1.8 Mpps with conntrack: five times the earliest netfilter drop, and there \
         the program's own time is a large share of the budget. `xdp_ns_per_packet_*` is each \
         program's own time during the flood from the kernel's BPF run-time statistics \
         (run_time_ns / run_cnt over 1.5 s, twice each, the better kept; turned on with \
         BPF_ENABLE_STATS, held by a file descriptor, so they go off again even if the bench \
         dies; their own clock reads are included). `xdp_test_run_ns_*` runs each program alone \
         in the kernel (BPF_PROG_TEST_RUN, 1,000,000 runs a call, the better of two): ours for \
         the banned sender, for 11.0.0.3 (not banned, among the bans), for 198.18.0.1 (far \
         from every ban), and for the sender as its only entry, which separates the map's \
         size from the rest of the program. `xdp_fill_1m_entries` is one `apply` of 1,000,000 \
         adds (batches of 4,096 a bpf(2) call); `xdp_reconcile_1m_unchanged` a reconcile \
         against the same bans, which reads every entry (in batches) and changes none. The \
         ratio to the minimal program varied between 0.84 and 0.93 over runs on this VM with \
         the hash maps (0.77-0.93 with a trie for every address, the first design).",
    ),
    (
        "fleet_sim",
        "One local PostgreSQL 15 (`crmonban_testutil::Postgres`: unix socket, fsync=off, \
         max_connections 200) on this 2-core VM, and 50 simulated nodes in one process on one \
         tokio runtime (2 workers): each a `FleetStore` of its own (a pool of up to 3 \
         connections, its listener holding one of them: `client_connections`) and a follower \
         that reads like the daemon's applier, `changes_after(cursor, 10,000)` on every \
         notification (at most one read every 100 ms, as the applier: notifications arriving \
         meanwhile are taken together; or each second) until a page is short, the cursor then moving to the \
         last id read (it does not read the whitelist, count reporters or ban anything). \
         Propagation (`*_propagation_*`) runs from just before the publisher's `publish` call \
         to the return of the follower's read holding the change, over every (publication, \
         other node) pair; `*_propagation_after_commit_*` from the call's return instead (0 \
         when the read came first). `light_*`: every node publishes single bans at random \
         (Poisson) intervals, 2 a second each, ~100 a second in all, for 10 s. `flood_1_*`, \
         `flood_100_*`: every node publishes as fast as it can for 10 s, one change a \
         transaction, then pages of 100 (the daemon's publisher sends up to \
         `max_publish_rate`, default 100, a second; a page from a backlog), while all 50 \
         follow. `*_changes_per_sec` counts changes committed over the phase, until the last \
         call returned; `*_publish_call_*` is one `publish` call (one statement, its own \
         transaction: the publication advisory lock, one multi-row INSERT, `pg_notify`; \
         publications commit one at a time, in id order, so that no follower passes over one). \
         In the floods the 50 followers share this process's cores: past some rate they, not \
         the server, fall behind (each node has its own CPU in a real fleet). `*_lag_while_publishing_*` is \
         the largest follower's distance behind the newest id (in changes), sampled every \
         100 ms; `*_lag_at_end` the same when the last call returned, and \
         `*_all_followers_at_last_id_after` the time from then until every cursor reached it. \
         `*_follower_reads` counts `changes_after` calls (every notification wakes every \
         follower: about one read per transaction per node), `*_empty_reads` those that found \
         nothing. `*_pairs_skipped` counts pairs whose change lies behind the receiver's \
         cursor but was never read (a transaction that took a lower id committing after one \
         with a higher id had been read: what this bench found before publications were \
         serialised; it must be 0, the bench fails otherwise); `*_pairs_unread` pairs still beyond a cursor when the bench \
         stopped waiting (20 s). CPU is in cores' worth over the phase: the PostgreSQL server \
         (postmaster and its children), this process, and the whole machine's busy time \
         (the VM is shared: the rest is other work); a context line gives what the server's \
         non-idle backends were waiting for (pg_stat_activity, sampled every 100 ms; \
         `Client.ClientRead`: inside a transaction, waiting for the client's next statement). \
         `table_*` is `fleet_changes` after the three phases (`pg_total_relation_size`, \
         indexes included); `prune_*` one `prune(now + 1)` over it: the flood bans last 1 s \
         and have ended (deleted), the light ones an hour (kept).",
    ),
];

/// Targets from the issues, by figure name: (target text, limit, or for rates a floor). A
/// limit is in the figure's own unit (ms, MB, or a bare count or ratio).
const TARGETS: &[(&str, &str, f64)] = &[
    (
        "explain_summary_1m_lines_per_sec",
        ">= 1,500,000 lines/s",
        -1_500_000.0,
    ),
    ("apply_100k_one_batch", "< 1 s", 1000.0),
    ("apply_1m_one_batch", "< 2 s", 2000.0),
    ("replace_all_1m_and_10k_networks", "< 2 s", 2000.0),
    ("replace_all_1m_vs_plain_nft_f", "<= 0.33 (same run)", 0.331),
    ("one_ban_with_1m_loaded_median", "< 0.05 ms", 0.05),
    (
        "one_ban_with_1m_and_10k_networks_loaded_median",
        "< 1 ms",
        1.0,
    ),
    ("engine_restore_100k", "< 2 s", 2000.0),
    ("start_with_100k_bans_until_answering", "< 2 s", 2000.0),
    ("crmonctl_ban_round_trip_median", "< 10 ms", 10.0),
    ("restart_with_100k_bans_exec_to_enforced", "< 300 ms", 300.0),
    ("start_1m_vs_plain_nft_f", "<= 0.33 (same run)", 0.331),
    ("daemon_rss_idle", "< 15 MB", 15.0),
    ("daemon_rss_with_100k_bans", "< 40 MB", 40.0),
    ("daemon_rss_with_1m_bans", "< 200 MB", 200.0),
    ("line_to_kernel_median", "< 1 ms", 1.0),
    ("line_to_kernel_p99", "< 3 ms", 3.0),
    ("line_to_kernel_hanging_services_median", "< 1 ms", 1.0),
    ("line_to_kernel_hanging_services_p99", "< 3 ms", 3.0),
    ("sshguard_over_crmonban_median", ">= 7 (same run)", -7.0),
    (
        "explain_speedup_over_sshguard_parser",
        ">= 3 (same run)",
        -3.0,
    ),
    (
        "explain_speedup_over_fail2ban_regex",
        ">= 40 (same run)",
        -40.0,
    ),
    ("sshguard_parser_attackers_we_miss", "0", 0.5),
    ("fail2ban_regex_attackers_we_miss", "0", 0.5),
    ("process_rss_after", "< 100 MB", 100.0),
    ("whitelist_100k_check_median", "< 1 µs", 1000.0),
    ("whitelist_100k_throughput_drop_percent", "< 5 %", 5.0),
    ("xdp_flood_crmonban_vs_minimal", ">= 0.9 (same run)", -0.9),
];

pub(crate) fn run(root: &Path) -> Result<ExitCode> {
    require_root("bench")?;
    let mut report = String::new();
    let _ = writeln!(report, "# Benchmarks\n");
    let _ = writeln!(
        report,
        "Written by `cargo xtask bench` (run as root; kernel benchmarks run in a network namespace of their own). \
         Figures are from one run on the machine below; rerun to refresh.\n"
    );
    let _ = writeln!(report, "## Machine\n");
    for (label, program, args) in [
        ("date", "date", vec!["-u", "+%Y-%m-%d %H:%M UTC"]),
        ("kernel", "uname", vec!["-r"]),
        ("cpus", "nproc", vec![]),
        ("nft", "nft", vec!["--version"]),
    ] {
        let _ = writeln!(
            report,
            "- {label}: {}",
            capture(program, &args).unwrap_or_else(|e| format!("unknown ({e})"))
        );
    }
    if let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo")
        && let Some(model) = cpuinfo.lines().find(|l| l.starts_with("model name"))
    {
        let _ = writeln!(
            report,
            "- cpu: {}",
            model.split(':').nth(1).unwrap_or("").trim()
        );
    }
    let tools = other_tools(root)?;
    let shipped = shipped_daemon(root, &tools)?;
    let mut failed = false;
    for (package, bench, what) in BENCHES {
        let command = format!("cargo bench -p {package} --bench {bench}");
        eprintln!("xtask: {command}");
        let out = cargo()
            .args(["bench", "--locked", "-p", package, "--bench", bench])
            .env("CRMONBAN_BENCH_TOOLS", &tools)
            .env("CRMONBAN_SHIPPED_DAEMON", &shipped)
            .output()
            .with_context(|| format!("running {command}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        print!("{stdout}");
        let _ = writeln!(report, "\n## {bench}: {what}\n\nCommand: `{command}`\n");
        if let Some(note) = NOTES.iter().find(|n| n.0 == *bench) {
            let _ = writeln!(report, "{}\n", note.1);
        }
        let _ = writeln!(report, "| figure | value | target |\n|---|---|---|");
        for line in stdout.lines() {
            let Some((name, value)) = line.split_once(": ") else {
                continue;
            };
            let target = TARGETS.iter().find(|t| t.0 == name);
            // A negative limit is a floor on a rate; a positive one a ceiling in ms.
            let verdict = match (target, parse_figure(value)) {
                (Some((_, text, limit)), Some(v))
                    if (*limit < 0.0 && v >= -limit) || (*limit > 0.0 && v < *limit) =>
                {
                    format!("{text} (met)")
                }
                (Some((_, text, _)), Some(_)) => format!("{text} (**not met**)"),
                _ => String::new(),
            };
            let _ = writeln!(report, "| {name} | {value} | {verdict} |");
        }
        if !out.status.success() {
            failed = true;
            let _ = writeln!(
                report,
                "\nThe benchmark failed:\n\n```\n{}\n```",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let path = root.join("docs/BENCHMARKS.md");
    std::fs::write(&path, report).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    if failed {
        bail!("a benchmark failed; see {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `12.3 ms`, `74.8 MB`, `437 ns` or a bare number.
fn parse_figure(value: &str) -> Option<f64> {
    value
        .strip_suffix(" ms")
        .or_else(|| value.strip_suffix(" MB"))
        .or_else(|| value.strip_suffix(" ns"))
        .unwrap_or(value)
        .trim()
        .parse()
        .ok()
}

/// What `other_tools` downloads: the peers, and pyinotify for fail2ban's pyinotify backend.
const PEER_PACKAGES: &[&str] = &["fail2ban", "sshguard", "python3-pyinotify"];

/// The daemon as it ships: `cargo build --release -p crmonband`, copied aside. A bench target's
/// own build of the binary carries the features its package's dev-dependencies switch on
/// (wiremock turns on hyper's HTTP/2: ~450 KB more text), so the daemon benchmarks run this
/// one instead (`CRMONBAN_SHIPPED_DAEMON`).
fn shipped_daemon(root: &Path, tools: &Path) -> Result<std::path::PathBuf> {
    eprintln!("xtask: cargo build --release -p crmonband (the daemon as it ships)");
    let status = cargo()
        .args(["build", "--release", "--locked", "-p", "crmonband"])
        .status()
        .context("building the release daemon")?;
    if !status.success() {
        bail!("cargo build --release -p crmonband failed");
    }
    let dir = tools.join("shipped");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let to = dir.join("crmonband");
    // A fresh copy, as an installed binary would be (not hard-linked to the one cargo rewrites).
    let _ = std::fs::remove_file(&to);
    std::fs::copy(root.join("target/release/crmonband"), &to)
        .with_context(|| format!("copying the daemon to {}", to.display()))?;
    Ok(to)
}

/// fail2ban and sshguard (with pyinotify) from Debian's packages, unpacked (never installed: no
/// service may start on this host) into `target/bench-tools/root` for the explain and peers
/// comparisons; returns that directory's parent.
fn other_tools(root: &Path) -> Result<std::path::PathBuf> {
    let dir = root.join("target/bench-tools");
    let unpacked = dir.join("root");
    let ready = unpacked.join("usr/libexec/sshguard/sshg-parser").exists()
        && unpacked.join("usr/bin/fail2ban-regex").exists()
        && unpacked
            .join("usr/lib/python3/dist-packages/pyinotify.py")
            .exists();
    if ready {
        return Ok(dir);
    }
    crate::install_missing(&[("python3", "/usr/bin/python3")])?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let download = || {
        Command::new("apt-get")
            .args(["download", "-q"])
            .args(PEER_PACKAGES)
            .current_dir(&dir)
            .status()
    };
    if !download().is_ok_and(|s| s.success()) {
        crate::status(Command::new("apt-get").args(["update", "-q"]))?;
        crate::status(
            Command::new("apt-get")
                .args(["download", "-q"])
                .args(PEER_PACKAGES)
                .current_dir(&dir),
        )?;
    }
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            crate::status(Command::new("dpkg").arg("-x").arg(&path).arg(&unpacked))?;
        }
    }
    Ok(dir)
}

pub(crate) fn capture(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program).args(args).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

//! crmonctl: the command-line client of crmonband. It talks only D-Bus, through the
//! `crmonban-dbus` proxy, and never touches nftables or the database itself.
//!
//! Behaviour a script can rely on:
//! - exit 0 on success; 1 when the daemon refused or failed the request, with
//!   `crmonctl: refused: <D-Bus error name>: <message>` (a refusal: bad address, whitelisted,
//!   protected, not enabled, access denied) or `crmonctl: failed: ...` (anything else) on
//!   stderr; 2 on usage errors (clap); 3 when the daemon is not reachable, with
//!   `crmonban is not running (no org.crmonban.Daemon on the system bus)` (or "session bus",
//!   "bus at ADDR").
//! - a removal of something absent fails (exit 1: `unban` of an address that is not banned,
//!   `whitelist rm` of an entry that does not exist), an addition of something present
//!   succeeds (exit 0, "already banned" / "already whitelisted"), so a typo never passes
//!   silently and repeating an addition is harmless.
//! - `ban` without `-d` sends the daemon's `default_ban_duration` from `Status()`, or 3600
//!   seconds when the daemon does not report one; `-d 0` bans permanently.
//! - `list -f json` prints an array of `{ip, reason, source, banned_at, expires_at}` (times
//!   as unix-second numbers, `expires_at` 0 = permanent); `-f simple` one target per line;
//!   the table shows UTC RFC 3339 times and "permanent".

// The same generator as crmonband's (manual pages and completions from the clap command).
#[path = "../../crmonband/src/assets.rs"]
mod assets;
mod cli;
mod fail2ban;
mod fleet;
mod intel;
mod live;
mod output;
mod report;
mod stats;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use crmonban_dbus::{
    BANS_PAGE_MAX, BUS_NAME, BanInfo, BusChoice, DaemonProxy, Error, INTEL_SUMMARIES_MAX,
    PROTECTED_PAGE_MAX, status_keys,
};
use zbus::proxy::CacheProperties;

use cli::{BanArgs, Cli, Command, Format, LogFormat, WhitelistCommand};

/// Sent as `duration_secs` when `-d` is not given and the daemon reports no default.
const FALLBACK_BAN_DURATION: u32 = 3600;

/// Why a command did not succeed, and so which exit status it ends with.
enum Failure {
    /// Exit 3: no bus, or nobody owns the daemon's name.
    Unreachable(BusChoice),
    /// Exit 3: the daemon is there but did not answer.
    NoAnswer(BusChoice, Error),
    /// Exit 1: the daemon said no (or failed); the D-Bus error is shown.
    Daemon(Error),
    /// Exit 1: the request ran but did not do what was asked (e.g. unban of an unbanned ip).
    Unsuccessful(String),
    /// Exit 1: writing the output failed.
    Output(std::io::Error),
}

impl Failure {
    fn from_call(bus: &BusChoice, error: Error) -> Failure {
        if error.is_unreachable() {
            return Failure::Unreachable(bus.clone());
        }
        if matches!(&error, Error::ZBus(zbus::Error::FDO(e))
            if matches!(e.as_ref(), zbus::fdo::Error::NoReply(_) | zbus::fdo::Error::Timeout(_)))
        {
            return Failure::NoAnswer(bus.clone(), error);
        }
        Failure::Daemon(error)
    }

    fn report(&self) -> ExitCode {
        match self {
            Failure::Unreachable(bus) => {
                eprintln!("crmonban is not running (no {BUS_NAME} on {bus})");
                ExitCode::from(3)
            }
            Failure::NoAnswer(bus, error) => {
                eprintln!("crmonban did not answer ({BUS_NAME} on {bus}: {error})");
                ExitCode::from(3)
            }
            Failure::Daemon(error) => {
                let verdict = if is_refusal(error) {
                    "refused"
                } else {
                    "failed"
                };
                eprintln!("crmonctl: {verdict}: {error}");
                ExitCode::from(1)
            }
            Failure::Unsuccessful(message) => {
                eprintln!("crmonctl: {message}");
                ExitCode::from(1)
            }
            Failure::Output(e) => {
                eprintln!("crmonctl: writing the output: {e}");
                ExitCode::from(1)
            }
        }
    }
}

/// A refusal is the daemon (or the bus) deciding against the request; anything else failed.
fn is_refusal(error: &Error) -> bool {
    matches!(
        error,
        Error::InvalidAddress(_)
            | Error::Whitelisted(_)
            | Error::Protected(_)
            | Error::NotEnabled(_)
            | Error::AccessDenied(_)
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Flush { yes: false } = cli.command {
        let mut command = Cli::command();
        command.build();
        let flush = command
            .find_subcommand_mut("flush")
            .expect("flush is a subcommand");
        flush
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "flush lifts every ban; confirm with `crmonctl flush --yes`",
            )
            .exit();
    }
    if let Command::Assets { dir } = &cli.command {
        return match assets::write_command(Cli::command(), "1", dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("crmonctl: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    if let Command::ImportFail2ban(args) = &cli.command
        && args.bans.is_none()
    {
        // Converting the configuration needs no daemon.
        return fail2ban::convert_command(args);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("crmonctl: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let bus = cli.bus.choice();
    let conn = crmonban_dbus::connect(bus.clone())
        .await
        .map_err(|_| Failure::Unreachable(bus.clone()))?;
    let proxy = DaemonProxy::builder(&conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| Failure::from_call(&bus, e.into()))?;
    let call = |e: Error| Failure::from_call(&bus, e);
    let text = match cli.command {
        Command::Status => status(&proxy).await.map_err(call)?,
        Command::Stop => {
            proxy.stop().await.map_err(call)?;
            "crmonban is stopping\n".to_owned()
        }
        Command::Reload => {
            if !proxy.reload().await.map_err(call)? {
                return Err(Failure::Unsuccessful(
                    "the daemon kept its configuration (reload refused)".into(),
                ));
            }
            "configuration reloaded\n".to_owned()
        }
        Command::Ban(args) => ban(&proxy, args).await.map_err(call)?,
        Command::Unban { target } => {
            if !proxy.unban(&target).await.map_err(call)? {
                return Err(Failure::Unsuccessful(format!("{target} was not banned")));
            }
            format!("unbanned {target}\n")
        }
        Command::List { format } => {
            let mut bans = Vec::new();
            loop {
                let offset = u32::try_from(bans.len()).unwrap_or(u32::MAX);
                let page = proxy
                    .get_bans_paged(offset, BANS_PAGE_MAX)
                    .await
                    .map_err(call)?;
                let last = page.len() < BANS_PAGE_MAX as usize;
                bans.extend(page);
                if last {
                    break;
                }
            }
            let intel = match format {
                Format::Simple => output::Summaries::new(),
                _ => intel_summaries(&proxy, &bans).await,
            };
            match format {
                Format::Json => output::bans_json(&bans, &intel),
                Format::Simple => bans.iter().map(|b| format!("{}\n", b.0)).collect(),
                Format::Table if bans.is_empty() => "no active bans\n".to_owned(),
                Format::Table => output::bans_table(&bans, &intel),
            }
        }
        Command::Intel { ip, refresh, json } => {
            let intel = proxy.get_intel(&ip, refresh).await.map_err(call)?;
            if json {
                format!("{}\n", intel.trim_end())
            } else {
                intel::intel_text(&intel)
            }
        }
        Command::Whitelist(command) => whitelist(&proxy, command, &bus).await?,
        Command::Logs {
            limit,
            follow: true,
            ..
        } => {
            live::follow_logs(&proxy, limit, call).await?;
            String::new()
        }
        Command::Watch => {
            live::watch(&proxy, call).await?;
            String::new()
        }
        Command::Logs { limit, format, .. } => {
            let entries = proxy.get_logs(limit).await.map_err(call)?;
            match format {
                LogFormat::Json => output::logs_json(&entries),
                LogFormat::Table if entries.is_empty() => "no activity\n".to_owned(),
                LogFormat::Table => output::logs_table(&entries),
            }
        }
        Command::Stats { json } => {
            let stats = proxy.get_stats().await.map_err(call)?;
            if json {
                format!("{}\n", stats.trim_end())
            } else {
                stats::stats_text(&stats)
            }
        }
        Command::Report { html } => {
            let stats = proxy.get_stats().await.map_err(call)?;
            report::write(&stats, &html).map_err(Failure::Unsuccessful)?;
            if html == std::path::Path::new("-") {
                String::new()
            } else {
                format!("wrote {}\n", html.display())
            }
        }
        Command::ImportFail2ban(args) => fail2ban::import_bans(&proxy, &args, call).await?,
        Command::Fleet(command) => fleet::run(&proxy, command).await.map_err(call)?,
        Command::Assets { .. } => unreachable!("handled before connecting"),
        Command::Flush { .. } => {
            let removed = proxy.flush().await.map_err(call)?;
            let plural = if removed == 1 { "" } else { "s" };
            format!("lifted {removed} ban{plural}\n")
        }
    };
    output::print(&text).map_err(Failure::Output)
}

/// Cached intel of the banned addresses, a page at a time; a daemon without
/// `GetIntelSummaries` (older) or an error leaves the columns empty rather than failing `list`.
async fn intel_summaries(proxy: &DaemonProxy<'_>, bans: &[BanInfo]) -> output::Summaries {
    let mut found = output::Summaries::new();
    let addresses: Vec<&str> = bans
        .iter()
        .map(|b| b.0.as_str())
        .filter(|t| !t.contains('/'))
        .collect();
    for page in addresses.chunks(INTEL_SUMMARIES_MAX) {
        match proxy.get_intel_summaries(page).await {
            Ok(rows) => found.extend(rows.into_iter().map(|row| (row.0.clone(), row))),
            Err(_) => break,
        }
    }
    found
}

async fn status(proxy: &DaemonProxy<'_>) -> Result<String, Error> {
    let mut status = proxy.status().await?;
    // Known keys first, in the contract's order, then whatever else the daemon reports.
    let known = [
        status_keys::RUNNING,
        status_keys::VERSION,
        status_keys::UPTIME_SECONDS,
        status_keys::ACTIVE_BANS,
        status_keys::EVENTS_PROCESSED,
        status_keys::SERVICES,
        status_keys::DEFAULT_BAN_DURATION,
        status_keys::RECORDS_PENDING,
        status_keys::RECORDS_FAILED,
        status_keys::RECORDS_DROPPED,
        status_keys::EVENTS_DROPPED,
        status_keys::ACTIVITY_DROPPED,
        status_keys::SIGNALS_DROPPED,
        status_keys::INTEL_SOURCES,
        status_keys::INTEL_PROBLEMS,
        status_keys::INTEL_DROPPED,
        status_keys::SIEM_TARGETS,
        status_keys::SIEM_SENT,
        status_keys::SIEM_DROPPED,
        status_keys::SIEM_FAILING,
        status_keys::XDP_STATE,
        status_keys::XDP_INTERFACES,
        status_keys::XDP_DROPPED_V4,
        status_keys::XDP_DROPPED_V6,
        status_keys::XDP_NOT_MIRRORED,
        status_keys::FLEET,
        status_keys::FLEET_LAG,
        status_keys::FLEET_OUTBOX,
        status_keys::FLEET_PUBLISHED,
        status_keys::FLEET_APPLIED,
        status_keys::FLEET_VETOED,
        status_keys::FLEET_IGNORED,
    ];
    let mut pairs = Vec::new();
    for key in known {
        if let Some(value) = status.remove(key) {
            let text = match key {
                status_keys::UPTIME_SECONDS => output::variant_u64(&value).map(|s| {
                    if s == 0 {
                        "0s".to_owned()
                    } else {
                        output::duration_text(s)
                    }
                }),
                status_keys::DEFAULT_BAN_DURATION => {
                    output::variant_u64(&value).map(output::duration_text)
                }
                status_keys::INTEL_SOURCES => Some(output::variant_list(&value, ", ")),
                status_keys::INTEL_PROBLEMS
                | status_keys::SIEM_FAILING
                | status_keys::XDP_INTERFACES => Some(output::variant_list(&value, "; ")),
                _ => None,
            }
            .unwrap_or_else(|| output::variant_text(&value));
            pairs.push((key.to_owned(), text));
        }
    }
    let mut rest: Vec<_> = status.into_iter().collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.extend(rest.into_iter().map(|(k, v)| (k, output::variant_text(&v))));
    Ok(output::key_values(&pairs))
}

async fn ban(proxy: &DaemonProxy<'_>, args: BanArgs) -> Result<String, Error> {
    let duration = match args.duration {
        Some(secs) => secs,
        None => proxy
            .status()
            .await?
            .get(status_keys::DEFAULT_BAN_DURATION)
            .and_then(|v| output::variant_u64(v))
            .and_then(|secs| u32::try_from(secs).ok())
            .unwrap_or(FALLBACK_BAN_DURATION),
    };
    let target = &args.target;
    let changed = proxy.ban(target, duration, &args.reason).await?;
    // The ban as the daemon made it: escalation may have lengthened it. An older daemon
    // without GetBan gets the requested duration reported.
    let made = match proxy.get_ban(target).await {
        Ok((true, (_, _, _, banned_at, expires_at))) => Some((banned_at, expires_at)),
        _ => None,
    };
    let lasting = |expires_at: i64, banned_at: i64| {
        if expires_at == 0 {
            "permanently".to_owned()
        } else {
            let secs = u64::try_from(expires_at - banned_at).unwrap_or(0);
            format!(
                "for {} (until {})",
                output::duration_text(secs),
                output::expiry_text(expires_at)
            )
        }
    };
    if !changed {
        let how = made.map_or_else(String::new, |(b, e)| format!(", {}", lasting(e, b)));
        return Ok(format!(
            "{target} was already banned at least as long{how} (unban it first to shorten the ban)\n"
        ));
    }
    Ok(match made {
        Some((banned_at, expires_at)) => {
            let longer =
                expires_at != 0 && duration != 0 && expires_at - banned_at > i64::from(duration);
            let note = if longer {
                " (longer than asked: a repeat offender's ban is escalated)"
            } else {
                ""
            };
            format!("banned {target} {}{note}\n", lasting(expires_at, banned_at))
        }
        None if duration == 0 => format!("banned {target} permanently\n"),
        None => format!(
            "banned {target} for {}\n",
            output::duration_text(duration.into())
        ),
    })
}

async fn whitelist(
    proxy: &DaemonProxy<'_>,
    command: WhitelistCommand,
    bus: &BusChoice,
) -> Result<String, Failure> {
    let call = |e: Error| Failure::from_call(bus, e);
    Ok(match command {
        WhitelistCommand::Add { target, comment } => {
            let (added, count, lifted) = proxy
                .whitelist_add_lifting(&target, &comment)
                .await
                .map_err(call)?;
            let mut text = if added {
                format!("whitelisted {target}\n")
            } else {
                format!("{target} was already whitelisted\n")
            };
            for (banned, why) in &lifted {
                text.push_str(&format!(
                    "lifted the ban of {}: {}\n",
                    output::escape_control(banned),
                    output::escape_control(why)
                ));
            }
            if count as usize > lifted.len() {
                text.push_str(&format!(
                    "... and {} more lifted bans (crmonctl logs shows them all)\n",
                    count as usize - lifted.len()
                ));
            }
            text
        }
        WhitelistCommand::Rm { target } => {
            if !proxy.whitelist_remove(&target).await.map_err(call)? {
                return Err(Failure::Unsuccessful(format!(
                    "{target} was not whitelisted"
                )));
            }
            format!("removed {target} from the whitelist\n")
        }
        WhitelistCommand::List { format } => {
            let mut entries = Vec::new();
            loop {
                let offset = u32::try_from(entries.len()).unwrap_or(u32::MAX);
                let page = proxy
                    .get_protected_entries(offset, PROTECTED_PAGE_MAX)
                    .await
                    .map_err(call)?;
                let last = page.len() < PROTECTED_PAGE_MAX as usize;
                entries.extend(page);
                if last {
                    break;
                }
            }
            match format {
                Format::Json => output::whitelist_json(&entries),
                Format::Simple => entries.iter().map(|e| format!("{}\n", e.0)).collect(),
                Format::Table if entries.is_empty() => "the whitelist is empty\n".to_owned(),
                Format::Table => output::whitelist_table(&entries),
            }
        }
        WhitelistCommand::Check { target } => {
            let (protected, why) = proxy.check_protected(&target).await.map_err(call)?;
            let why = output::escape_control(&why);
            if protected {
                format!("protected: {why}\n")
            } else {
                format!("{why}\n")
            }
        }
    })
}

//! `crmonctl import-fail2ban [DIR]`: fail2ban's jail configuration (DIR, default
//! /etc/fail2ban) converted to crmonban's config.toml (stdout, or `-o FILE`), with a report on
//! stderr of what has no equivalent; and `--bans [DB]`: fail2ban's active bans read from its
//! SQLite database and sent to the running daemon with the D-Bus `Ban` call. The reading and
//! the conversion are crmonban-fail2ban's; this is the command line, the output and the calls.
//!
//! The conversion needs no daemon and changes nothing but FILE. The configuration written is
//! parsed with crmonban's own parser before it is written: crmonctl never writes a file the
//! daemon would refuse.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use crmonban_core::text::escape_control;
use crmonban_dbus::{DaemonProxy, Error};
use crmonban_fail2ban::{DEFAULT_DB, DEFAULT_DIR, JailConfig, Left};
use futures_util::StreamExt;

use crate::Failure;

/// `Ban` calls in flight at once.
const IN_FLIGHT: usize = 16;

/// `crmonctl import-fail2ban`'s arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// fail2ban's configuration directory
    #[arg(value_name = "DIR", default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Write the configuration to FILE instead of stdout (an existing FILE is kept unless
    /// --force)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite FILE if it exists
    #[arg(long, requires = "output")]
    pub force: bool,
    /// Instead of converting the configuration, send fail2ban's active bans from its database
    /// (default /var/lib/fail2ban/fail2ban.sqlite3) to the running daemon
    #[arg(
        long,
        value_name = "DB",
        num_args = 0..=1,
        default_missing_value = DEFAULT_DB,
        conflicts_with_all = ["output", "force"]
    )]
    pub bans: Option<PathBuf>,
}

/// `crmonctl import-fail2ban [DIR] [-o FILE [--force]]`.
pub fn convert_command(args: &ImportArgs) -> ExitCode {
    let fail = |message: String| {
        eprintln!("crmonctl: {message}");
        ExitCode::from(1)
    };
    if let Some(path) = &args.output
        && !args.force
        && path.exists()
    {
        return fail(format!(
            "{} exists: it is kept (--force overwrites it)",
            path.display()
        ));
    }
    let config = match JailConfig::read(&args.dir) {
        Ok(config) => config,
        Err(e) => return fail(e.to_string()),
    };
    let mut conversion = crmonban_fail2ban::convert(&config);
    let text = match crmonban_fail2ban::checked_toml(&mut conversion) {
        Ok(text) => text,
        Err(e) => return fail(e.to_string()),
    };
    let written = match &args.output {
        None => crate::output::print(&text).map_err(|e| format!("writing the output: {e}")),
        Some(path) => write_file(path, &text, args.force),
    };
    eprint!("{}{}", conversion.summary(), conversion.report.text());
    match written {
        Ok(()) => {
            if let Some(path) = &args.output {
                eprintln!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// Writes `text` to `path` (creating its directory), never over an existing file unless
/// `force`.
fn write_file(path: &Path, text: &str, force: bool) -> Result<(), String> {
    let shown = path.display();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            format!("{shown} exists: it is kept (--force overwrites it)")
        }
        _ => format!("{shown}: {e}"),
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{shown}: {e}"))
}

/// `crmonctl import-fail2ban --bans [DB]`: sends the active bans, prints a summary; fails
/// (exit 1) when a ban could not be made for another reason than a refusal.
pub async fn import_bans(
    proxy: &DaemonProxy<'_>,
    args: &ImportArgs,
    call: impl Fn(Error) -> Failure,
) -> Result<String, Failure> {
    let db = args.bans.as_deref().unwrap_or(Path::new(DEFAULT_DB));
    let found = crmonban_fail2ban::active_bans(db, &args.dir)
        .await
        .map_err(|e| Failure::Unsuccessful(e.to_string()))?;

    let mut results = futures_util::stream::iter(found.bans.iter())
        .map(|(ip, (jail, left))| async move {
            let secs = match left {
                Left::Permanent => 0,
                Left::Secs(secs) => *secs,
            };
            let answer = proxy.ban(ip, secs, &crmonban_fail2ban::reason(jail)).await;
            (ip, jail, answer)
        })
        .buffered(IN_FLIGHT);
    let (mut imported, mut already) = (0usize, 0usize);
    let mut refused = Vec::new();
    let mut failed = Vec::new();
    while let Some((ip, jail, answer)) = results.next().await {
        let line = |e: &Error| {
            format!(
                "  {} (jail {}): {}\n",
                escape_control(ip),
                escape_control(jail),
                escape_control(&e.to_string())
            )
        };
        match answer {
            Ok(true) => imported += 1,
            Ok(false) => already += 1,
            Err(e @ Error::AccessDenied(_)) => return Err(Failure::Daemon(e)),
            Err(e) if crate::is_refusal(&e) => refused.push(line(&e)),
            Err(e @ Error::ZBus(_)) => return Err(call(e)),
            Err(e) => failed.push(line(&e)),
        }
    }
    let mut text = format!(
        "{}: {} bans (the latest of each address and jail), {} expired (skipped)\n",
        db.display(),
        found.rows,
        found.expired
    );
    if found.unknown > 0 {
        text.push_str(&format!(
            "{} of unknown length skipped (the database has no ban time, and {} no bantime for \
             their jail)\n",
            found.unknown,
            args.dir.display()
        ));
    }
    text.push_str(&format!(
        "sent to crmonban: {} addresses (each with its longest ban)\n",
        found.bans.len()
    ));
    text.push_str(&format!("imported: {imported}\n"));
    text.push_str(&format!("already banned at least as long: {already}\n"));
    text.push_str(&format!("refused: {}\n", refused.len()));
    text.extend(refused);
    if failed.is_empty() {
        return Ok(text);
    }
    text.push_str(&format!("failed: {}\n", failed.len()));
    let count = failed.len();
    text.extend(failed);
    crate::output::print(&text).map_err(Failure::Output)?;
    Err(Failure::Unsuccessful(format!(
        "{count} bans could not be imported"
    )))
}

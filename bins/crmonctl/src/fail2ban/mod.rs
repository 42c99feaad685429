//! `crmonctl import-fail2ban [DIR]`: fail2ban's jail configuration (DIR, default
//! /etc/fail2ban, read as fail2ban reads it: [`reader`]) converted to crmonban's config.toml
//! (stdout, or `-o FILE`), with a report on stderr of what has no equivalent ([`report`]);
//! and `--bans [DB]`: fail2ban's active bans read from its SQLite database and sent to the
//! running daemon with the D-Bus `Ban` call ([`bans`]).
//!
//! The conversion needs no daemon and changes nothing but FILE. The configuration written is
//! parsed with crmonban's own parser before it is written: crmonctl never writes a file the
//! daemon would refuse.

mod bans;
mod escalation;
mod ini;
mod logpath;
mod map;
mod policy;
mod reader;
mod report;
mod toml_out;
mod values;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use crmonban_core::config::Config;

pub use bans::import_bans;

use map::{BanLength, Service, Sourced};
use reader::JailConfig;
use report::{Kind, Report};

/// Where fail2ban keeps its configuration.
pub const DEFAULT_DIR: &str = "/etc/fail2ban";
/// fail2ban's `dbfile` by default.
pub const DEFAULT_DB: &str = "/var/lib/fail2ban/fail2ban.sqlite3";

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

/// What a fail2ban configuration comes to in crmonban.
pub struct Conversion {
    /// The directory read, and its files in reading order.
    pub dir: PathBuf,
    pub files: Vec<Arc<Path>>,
    /// `[DEFAULT] bantime`: crmonban's `default_ban_duration`.
    pub default_ban: Option<Sourced<BanLength>>,
    pub escalation: Option<escalation::Escalation>,
    pub services: Vec<Service>,
    pub whitelist: policy::Whitelist,
    /// Each enabled jail and the service it became (`None`: not converted).
    pub jails: Vec<(String, Option<String>)>,
    pub report: Report,
}

/// Converts the configuration read from a fail2ban directory.
pub fn convert(config: &JailConfig) -> Conversion {
    let mut report = Report::new(&config.files);
    let enabled = map::enabled_jails(config, &mut report);
    let mut services: Vec<Service> = Vec::new();
    let mut converted = Vec::new();
    let mut jails = Vec::new();
    for jail in enabled {
        match map::service_of(config, &mut report, &jail) {
            Some(service) => {
                jails.push((jail.name.to_owned(), Some(service.name.clone())));
                map::merge(&mut services, &mut report, &jail, service);
                converted.push(jail);
            }
            None => jails.push((jail.name.to_owned(), None)),
        }
    }
    let whitelist = policy::whitelist(config, &mut report, &converted);
    policy::actions(config, &mut report, &converted);
    policy::machinery(config, &mut report, &converted);
    let escalation = escalation::escalation(config, &mut report, &converted);
    let default_ban = match config.get("DEFAULT", "bantime") {
        Ok(Some(v)) => {
            map::ban_length(&mut report, "DEFAULT", "bantime", &v).map(|value| Sourced {
                value,
                from: map::from_text(config, "bantime", &v),
            })
        }
        Ok(None) => None,
        Err(why) => {
            report.general(Kind::Lost, "[DEFAULT] bantime", format!("{why}: ignored"));
            None
        }
    };
    Conversion {
        dir: config.dir.clone(),
        files: config.files.clone(),
        default_ban,
        escalation,
        services,
        whitelist,
        jails,
        report,
    }
}

/// The text of the configuration, checked with crmonban's parser; a configuration crmonban
/// would refuse is an error (a defect of the conversion), its warnings join the report.
pub fn checked_toml(conversion: &mut Conversion) -> Result<String, String> {
    let text = toml_out::render(conversion);
    match Config::from_toml_str_with_warnings(&text, "converted configuration") {
        Ok((_, warnings)) => {
            for warning in warnings {
                conversion
                    .report
                    .general(Kind::Note, "config.toml", warning.to_string());
            }
            Ok(text)
        }
        Err(errors) => Err(format!(
            "the converted configuration is not valid, this is a defect of crmonctl (please \
             report it with the fail2ban files):\n{errors}\n--- the configuration ---\n{text}"
        )),
    }
}

/// What was read and what each enabled jail became, for the top of the report.
fn summary(conversion: &Conversion) -> String {
    let files: Vec<String> = conversion
        .files
        .iter()
        .map(|f| {
            f.strip_prefix(&conversion.dir)
                .unwrap_or(f)
                .display()
                .to_string()
        })
        .collect();
    let mut text = format!(
        "read from {}: {}\n",
        conversion.dir.display(),
        files.join(", ")
    );
    if conversion.jails.is_empty() {
        text.push_str("no jail is enabled\n");
    } else {
        let jails: Vec<String> = conversion
            .jails
            .iter()
            .map(|(jail, service)| match service {
                Some(s) => format!("[{jail}] -> services.{s}"),
                None => format!("[{jail}] -> not converted"),
            })
            .collect();
        text.push_str(&format!("enabled jails: {}\n", jails.join(", ")));
    }
    text
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
    let mut conversion = convert(&config);
    let text = match checked_toml(&mut conversion) {
        Ok(text) => text,
        Err(e) => return fail(e),
    };
    let written = match &args.output {
        None => crate::output::print(&text).map_err(|e| format!("writing the output: {e}")),
        Some(path) => write_file(path, &text, args.force),
    };
    eprint!("{}{}", summary(&conversion), conversion.report.text());
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

//! crmonban-fail2ban owns **the migration from fail2ban**: reading fail2ban's configuration
//! directory as fail2ban reads it (`jail.conf`, `jail.d/*.conf`, `jail.local`,
//! `jail.d/*.local`, their includes, and the dialect of Python's `configparser` with its
//! `%(name)s` interpolation: [`JailConfig`]), converting the enabled jails to the text of
//! crmonban's `config.toml` ([`convert`], [`checked_toml`]) with a [`Report`] of what has no
//! equivalent or works differently, and working out which of the bans in fail2ban's database
//! are still active and for how long ([`active_bans`]).
//!
//! The conversion reads the directory and writes nothing: the caller (`crmonctl
//! import-fail2ban`) decides where the text and the report go. The configuration is parsed with
//! crmonban's own parser before it is handed out, so that a file the daemon would refuse is
//! never written. fail2ban's database is read by crmonban-store (the one crate with SQL),
//! read-only; sending the bans to the daemon is the caller's business (the D-Bus `Ban` call).
//! This crate talks to no daemon and starts no task.
//!
//! # Example
//!
//! ```
//! use crmonban_fail2ban::{JailConfig, checked_toml, convert};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! std::fs::write(
//!     dir.path().join("jail.local"),
//!     "[DEFAULT]\nbantime = 1h\nusedns = no\n\n[sshd]\nenabled = true\nfilter = sshd\nmaxretry = 3\n",
//! )?;
//! let config = JailConfig::read(dir.path())?;
//! let mut conversion = convert(&config);
//! let toml = checked_toml(&mut conversion)?;
//! assert!(toml.contains("[services.ssh]\n# fail2ban jail [sshd]\nenabled = true\n"));
//! assert!(toml.contains("\nmax_failures = 3\n"));
//! assert!(toml.contains("\ndefault_ban_duration = \"1h\"\n"));
//! assert!(conversion.summary().contains("enabled jails: [sshd] -> services.ssh\n"));
//! // What had no equivalent, with the file and line that set it.
//! print!("{}", conversion.report.text());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crmonban_core::config::{Config, ConfigErrors};

pub use bans::{Active, Left, Row, active, active_bans, jail_bantime, read_rows, reason};
pub use crmonban_store::Fail2banDbError;
pub use escalation::Escalation;
pub use ini::{IniError, Origin, RawValue};
pub use map::{BanLength, MAX_SECS, Service, Sourced};
pub use policy::Whitelist;
pub use reader::{InterpolationError, JailConfig, ReadError, Resolved};
pub use report::{Entry, Kind, Report};

/// Where fail2ban keeps its configuration.
pub const DEFAULT_DIR: &str = "/etc/fail2ban";
/// fail2ban's `dbfile` by default.
pub const DEFAULT_DB: &str = "/var/lib/fail2ban/fail2ban.sqlite3";

/// Why a migration step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration directory cannot be read as fail2ban's.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// fail2ban's database cannot be read.
    #[error(transparent)]
    Database(#[from] Fail2banDbError),
    /// The configuration converted is one crmonban refuses: a defect of the conversion.
    #[error(
        "the converted configuration is not valid, this is a defect of crmonctl (please \
         report it with the fail2ban files):\n{errors}\n--- the configuration ---\n{text}"
    )]
    InvalidConversion {
        /// What crmonban's parser says.
        errors: ConfigErrors,
        /// The configuration text.
        text: String,
    },
}

/// What a fail2ban configuration comes to in crmonban.
pub struct Conversion {
    /// The directory read.
    pub dir: PathBuf,
    /// Its files in reading order.
    pub files: Vec<Arc<Path>>,
    /// `[DEFAULT] bantime`: crmonban's `default_ban_duration`.
    pub default_ban: Option<Sourced<BanLength>>,
    /// `bantime.increment`: crmonban's escalation of repeat offenders.
    pub escalation: Option<Escalation>,
    /// The services the enabled jails became.
    pub services: Vec<Service>,
    /// The enabled jails' `ignoreip`.
    pub whitelist: Whitelist,
    /// Each enabled jail and the service it became (`None`: not converted).
    pub jails: Vec<(String, Option<String>)>,
    /// What has no equivalent, or works differently.
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
pub fn checked_toml(conversion: &mut Conversion) -> Result<String, Error> {
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
        Err(errors) => Err(Error::InvalidConversion { errors, text }),
    }
}

impl Conversion {
    /// What was read and what each enabled jail became, for the top of the report.
    pub fn summary(&self) -> String {
        let files: Vec<String> = self
            .files
            .iter()
            .map(|f| f.strip_prefix(&self.dir).unwrap_or(f).display().to_string())
            .collect();
        let mut text = format!("read from {}: {}\n", self.dir.display(), files.join(", "));
        if self.jails.is_empty() {
            text.push_str("no jail is enabled\n");
        } else {
            let jails: Vec<String> = self
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
}

//! crmonctl's command line (DESIGN.md §5), parsed by clap: a usage error exits 2.

use clap::{Args, Parser, Subcommand, ValueEnum};
use crmonban_dbus::BusChoice;

/// Control crmonband, the crmonban intrusion-prevention daemon, over D-Bus.
///
/// Exit status: 0 success; 1 the daemon refused or failed the request (the D-Bus error name
/// and message on stderr); 2 usage error; 3 the daemon is not reachable.
#[derive(Debug, Parser)]
#[command(name = "crmonctl", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub bus: BusArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Which bus to find the daemon on (the system bus unless told otherwise).
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct BusArgs {
    /// Use the system bus (default; honours DBUS_SYSTEM_BUS_ADDRESS)
    #[arg(long, global = true)]
    pub system: bool,
    /// Use the session bus
    #[arg(long, global = true)]
    pub session: bool,
    /// Use the bus at this D-Bus address (e.g. unix:path=/run/dbus/system_bus_socket)
    #[arg(long, value_name = "ADDR", global = true, value_parser = parse_address)]
    pub address: Option<String>,
}

impl BusArgs {
    pub fn choice(&self) -> BusChoice {
        match (&self.address, self.session) {
            (Some(address), _) => BusChoice::Address(address.clone()),
            (None, true) => BusChoice::Session,
            (None, false) => BusChoice::System,
        }
    }
}

/// A ban's length as the D-Bus `Ban` call takes it: seconds, 0 for permanent.
fn parse_ban_duration(text: &str) -> Result<u32, String> {
    use crmonban_core::duration::{Length, parse};
    match parse(text, u64::from(u32::MAX)).map_err(|e| e.to_string())? {
        Length::Permanent => Ok(0),
        Length::Secs(secs) => Ok(u32::try_from(secs).unwrap_or(u32::MAX)),
    }
}

fn parse_address(text: &str) -> Result<String, String> {
    text.parse::<zbus::Address>()
        .map(|_| text.to_owned())
        .map_err(|e| format!("not a D-Bus address: {e}"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the daemon's status
    Status,
    /// Stop the daemon (bans stay in the kernel)
    Stop,
    /// Make the daemon re-read its configuration
    Reload,
    /// Ban an address or network
    Ban(BanArgs),
    /// Lift a ban
    Unban {
        /// Address or CIDR network, as banned
        #[arg(value_name = "IP|CIDR")]
        target: String,
    },
    /// List the active bans
    List {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show what is known about an address (GeoIP, ASN, rDNS, WHOIS, reputation)
    Intel {
        /// Address to look up
        ip: String,
        /// Look it up again instead of using the cache
        #[arg(short, long)]
        refresh: bool,
        /// Print the daemon's JSON as is
        #[arg(short, long)]
        json: bool,
    },
    /// Show or change the whitelist
    #[command(subcommand)]
    Whitelist(WhitelistCommand),
    /// Show the activity log (newest first)
    Logs {
        /// How many entries
        #[arg(short, long, default_value_t = 50)]
        limit: u32,
        /// Output format (-o: -f is --follow here, as in tail and journalctl)
        #[arg(short = 'o', long, value_enum, default_value_t = LogFormat::Table)]
        format: LogFormat,
        /// Keep showing new entries as they are written, oldest first (Ctrl-C ends)
        #[arg(short = 'f', short_alias = 'F', long, conflicts_with = "format")]
        follow: bool,
    },
    /// Show bans, unbans and attacks as they happen (Ctrl-C ends)
    Watch,
    /// Show the daemon's statistics
    Stats {
        /// Print the daemon's JSON as is
        #[arg(short, long)]
        json: bool,
    },
    /// Write the statistics as one self-contained HTML page: a world map of the attacks,
    /// attacks and bans per hour, top services, countries, networks and attackers
    Report {
        /// Where to write the page (`-`: standard output); it loads nothing from anywhere
        #[arg(long, value_name = "FILE")]
        html: std::path::PathBuf,
    },
    /// Lift every ban (needs --yes)
    Flush {
        /// Confirm: really lift every ban
        #[arg(long)]
        yes: bool,
    },
    /// Convert fail2ban's jail configuration to a crmonban config.toml (a report of what has
    /// no equivalent on stderr), or with --bans send fail2ban's active bans to the daemon
    ImportFail2ban(crate::fail2ban::ImportArgs),
    /// What the fleet shares ([fleet]): its nodes, or its bans in force
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Write the manual pages and shell completions under DIR/man and DIR/completions
    #[command(hide = true)]
    Assets { dir: std::path::PathBuf },
}

#[derive(Debug, Args)]
pub struct BanArgs {
    /// Address or CIDR network to ban
    #[arg(value_name = "IP|CIDR")]
    pub target: String,
    /// How long: 90s, 15m, 1h, 7d, 2w, 1h30m, plain seconds, or permanent (also 0)
    /// [default: the daemon's default_ban_duration, else 1h]
    #[arg(short, long, value_name = "DURATION", value_parser = parse_ban_duration)]
    pub duration: Option<u32>,
    /// Why (recorded with the ban) [default: chosen by the daemon]
    #[arg(short, long, default_value = "", hide_default_value = true)]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// The fleet's nodes and their last heartbeat
    Nodes,
    /// The fleet's bans in force, newest first
    Bans {
        /// Show at most this many
        #[arg(short = 'n', long, default_value_t = 1_000)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum WhitelistCommand {
    /// Never ban this address or network
    Add {
        /// Address or CIDR network
        #[arg(value_name = "IP|CIDR")]
        target: String,
        /// Note kept with the entry
        #[arg(short, long, default_value = "", hide_default_value = true)]
        comment: String,
    },
    /// Remove an entry
    #[command(alias = "remove")]
    Rm {
        /// Address or CIDR network, as listed
        #[arg(value_name = "IP|CIDR")]
        target: String,
    },
    /// List the entries of every whitelist source (database, networks, files, trusted zones)
    List {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Say whether an address or network is protected from bans, and by what
    Check {
        /// Address or CIDR network
        #[arg(value_name = "IP|CIDR")]
        target: String,
    },
}

/// How lists are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns with human-readable UTC times
    Table,
    /// A JSON array of objects with fixed keys and unix-second times
    Json,
    /// One address or network per line
    Simple,
}

/// How the activity log is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Aligned columns with human-readable UTC times
    Table,
    /// A JSON array of {time, action, target, detail}
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bus_flags() {
        let cli = Cli::try_parse_from(["crmonctl", "status"]).unwrap();
        assert_eq!(cli.bus.choice(), BusChoice::System);
        let cli = Cli::try_parse_from(["crmonctl", "status", "--session"]).unwrap();
        assert_eq!(cli.bus.choice(), BusChoice::Session);
        let cli =
            Cli::try_parse_from(["crmonctl", "--address", "unix:path=/tmp/x", "list"]).unwrap();
        assert_eq!(
            cli.bus.choice(),
            BusChoice::Address("unix:path=/tmp/x".into())
        );
        assert!(Cli::try_parse_from(["crmonctl", "--system", "--session", "status"]).is_err());
        assert!(Cli::try_parse_from(["crmonctl", "--address", "nonsense", "status"]).is_err());
    }

    #[test]
    fn logs_follow_with_f_as_tail_and_journalctl_do() {
        let logs = |args: &[&str]| -> Result<(LogFormat, bool), clap::Error> {
            let cli = Cli::try_parse_from([&["crmonctl", "logs"][..], args].concat())?;
            match cli.command {
                Command::Logs { format, follow, .. } => Ok((format, follow)),
                other => panic!("{other:?}"),
            }
        };
        for follow in ["-f", "-F", "--follow"] {
            assert_eq!(logs(&[follow]).unwrap(), (LogFormat::Table, true));
        }
        assert_eq!(logs(&["-o", "json"]).unwrap(), (LogFormat::Json, false));
        assert!(
            logs(&["-f", "-o", "json"]).is_err(),
            "follow writes lines, not JSON"
        );
    }
}

//! `crmonband`: the crmonban daemon's command line. This binary owns process concerns only —
//! arguments, reading the config file, logging setup, exit codes; everything it does is
//! composed from the library crates (core for config, firewall for nftables, store for SQLite).
//!
//! Commands: `start`, `init`, `gen-config`, `check-config`, `explain` (DESIGN.md §5). The hidden `dbus-xml` prints the D-Bus introspection generated from
//! the interface code (`cargo xtask dbus-xml` writes it to dbus/).

mod assets;
mod bus;
mod config_file;
mod config_page;
mod daemon;
mod dbus_server;
mod dbus_xml;
mod explain;
mod logging;
mod metrics;
mod state;
mod stats;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use crmonban_core::config::{Config, DEFAULT_CONFIG_TOML};
use crmonban_engine::{FirewallBackend, Layout, NftBackend, NftOptions, Transport};

#[derive(Parser)]
#[command(
    name = "crmonband",
    version,
    about = "crmonban intrusion prevention daemon"
)]
struct Cli {
    /// Configuration file; built-in defaults are used when the default path does not exist.
    #[arg(short, long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the daemon: restore bans, protect, serve D-Bus (in the background without -f).
    Start {
        /// Stay in the foreground (for systemd and tests); logs go to stderr.
        #[arg(short, long)]
        foreground: bool,
    },
    /// Create the nftables table, sets and chains and the database (idempotent).
    Init,
    /// Write the commented default configuration (to stdout without -o).
    GenConfig {
        /// Write to this file instead of stdout.
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Overwrite the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Validate the configuration; print every problem with file:line; exit 1 on any.
    CheckConfig,
    /// Run one service's detector over a log file offline (no firewall, database or bus).
    Explain {
        /// The service whose patterns and limits apply (ssh or sshd, nginx, ... or your own).
        #[arg(short, long, required_unless_present = "test_packs")]
        service: Option<String>,
        /// One JSON object per matched line, then a summary object.
        #[arg(long, conflicts_with = "summary")]
        json: bool,
        /// Only the summary.
        #[arg(long)]
        summary: bool,
        /// Also list the service's lines that no pattern matched, grouped by shape (what is
        /// not covered).
        #[arg(long)]
        missed: bool,
        /// Try this regex instead of the service's patterns (like fail2ban-regex): it must
        /// capture the address as `<IP>` (or `<HOST>`, or a group named ip) and is matched against
        /// whole lines.
        #[arg(long, value_name = "RE")]
        regex: Option<String>,
        /// Check the service packs in DIR (each *.toml): their sample lines and forgeries of
        /// their attacker text. Exit 1 on any problem.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["service", "json", "summary", "missed", "regex"])]
        test_packs: Option<PathBuf>,
        /// The log file, or - for standard input.
        #[arg(required_unless_present = "test_packs")]
        file: Option<String>,
    },
    /// Print the D-Bus introspection XML of org.crmonban.Daemon, generated from the code.
    #[command(hide = true)]
    DbusXml,
    /// Write the manual pages (crmonband(8) and its subcommands, crmonban-config.toml(5)) and
    /// the shell completions under DIR/man and DIR/completions, for packages.
    #[command(hide = true)]
    Assets { dir: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::GenConfig { output, force } => gen_config(output, force),
        Commands::CheckConfig => config_file::check(cli.config.as_deref()),
        Commands::Init => init(cli.config.as_deref()),
        Commands::Start { foreground } => daemon::start(cli.config.as_deref(), foreground),
        Commands::DbusXml => dbus_xml::print(),
        Commands::Assets { dir } => {
            use clap::CommandFactory;
            config_page::write_daemon(Cli::command(), &dir).map(|()| ExitCode::SUCCESS)
        }
        Commands::Explain {
            service,
            json,
            summary,
            missed,
            regex,
            test_packs,
            file,
        } => {
            let mode = match (json, summary) {
                (true, _) => crmonban_detect::explain::ExplainMode::Json,
                (_, true) => crmonban_detect::explain::ExplainMode::Summary,
                _ => crmonban_detect::explain::ExplainMode::Human,
            };
            match (test_packs, service, file) {
                (Some(dir), _, _) => explain::test_packs(&dir),
                (None, Some(service), Some(file)) => explain::run(
                    cli.config.as_deref(),
                    &service,
                    explain::Ask {
                        mode,
                        missed,
                        regex,
                    },
                    &file,
                ),
                _ => unreachable!("clap requires --service and FILE without --test-packs"),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crmonband: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn gen_config(output: Option<PathBuf>, force: bool) -> Result<ExitCode> {
    match output {
        None => print!("{DEFAULT_CONFIG_TOML}"),
        Some(path) => {
            if path.exists() && !force {
                anyhow::bail!("{} exists; use --force to overwrite it", path.display());
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&path, DEFAULT_CONFIG_TOML)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote the default configuration to {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The firewall layout named by `[nftables]`.
pub(crate) fn layout(config: &Config) -> Layout {
    Layout::of(&config.nftables)
}

fn init(path: Option<&std::path::Path>) -> Result<ExitCode> {
    let loaded = config_file::load(path)?;
    let config = loaded.config;
    let mut firewall = NftBackend::new(NftOptions {
        layout: layout(&config),
        transport: Transport::Auto,
        ..NftOptions::default()
    })?;
    let existed = firewall.layout_present()?;
    firewall.ensure_layout()?;
    println!(
        "nftables: table inet {} {}",
        config.nftables.table_name,
        if existed {
            "already present, checked"
        } else {
            "created"
        },
    );
    println!("firewall: {}", firewall.describe());
    let db_path = &config.general.db_path;
    if let Some(dir) = db_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let active = runtime.block_on(async {
        let store = crmonban_engine::Store::open(db_path).await?;
        let active = store.count_active(crmonban_core::unix_now()).await?;
        store.close().await;
        Ok::<_, crmonban_engine::StoreError>(active)
    })?;
    println!(
        "database: {} ready ({active} active bans)",
        db_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

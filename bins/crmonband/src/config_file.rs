//! Reading the configuration file: which file (the `-c` path, else the default path, else the
//! built-in defaults), and turning the core crate's errors into `check-config` output.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use crmonban_core::config::{Config, ConfigWarning};
use crmonban_zones::Policy;

pub const DEFAULT_PATH: &str = "/etc/crmonban/config.toml";

pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<ConfigWarning>,
    /// `None` when the built-in defaults are in use.
    pub path: Option<PathBuf>,
}

/// Loads `path`, or the default path, or the built-in defaults when the default path does not
/// exist. A path given explicitly must exist. Errors list every problem, one per line.
pub fn load(path: Option<&Path>) -> Result<Loaded> {
    let (path, explicit) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_PATH), false),
    };
    if !explicit && !path.exists() {
        return Ok(Loaded {
            config: Config::default(),
            warnings: Vec::new(),
            path: None,
        });
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    match Config::from_toml_str_with_warnings(&text, &path.display().to_string()) {
        Ok((config, warnings)) => Ok(Loaded {
            config,
            warnings,
            path: Some(path),
        }),
        Err(errors) => bail!("invalid configuration:\n{errors}"),
    }
}

/// `check-config`: exit 0 with a summary, or 1 with every problem on its own line.
pub fn check(path: Option<&Path>) -> Result<ExitCode> {
    match load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            // The whitelist sources as the daemon would build them (files read now; the
            // database's entries and the host's addresses come at start).
            let problems = match Policy::from_config(&loaded.config, [], Vec::new()) {
                Ok((_, problems)) => problems,
                Err(e) => {
                    eprintln!("invalid zones file: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            for problem in &problems {
                println!("warning: whitelist: {problem}");
            }
            match &loaded.path {
                Some(p) => println!("{}: configuration is valid", p.display()),
                None => println!("no file at {DEFAULT_PATH}: the built-in defaults are valid"),
            }
            let services: Vec<&str> = loaded
                .config
                .enabled_services()
                .map(|(name, _)| name)
                .collect();
            println!("enabled services: {}", services.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

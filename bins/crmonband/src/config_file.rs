//! Reading the configuration file: which file (the `-c` path, else the default path, else the
//! built-in defaults), and turning the core crate's errors into `check-config` output.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use crmonban_core::config::{
    Config, ConfigWarning, DEFAULT_SERVICES_DIR, ServiceCatalog, services_dir_of,
};
use crmonban_zones::Policy;

pub const DEFAULT_PATH: &str = "/etc/crmonban/config.toml";

pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<ConfigWarning>,
    /// `None` when the built-in defaults are in use.
    pub path: Option<PathBuf>,
    /// The service packs read from `[general] services_dir`, by name.
    pub dir_packs: Vec<String>,
}

/// The built-in service packs and those of `dir`, each checked (its samples, forgeries); any
/// problem refuses them all, listed with file:line.
fn catalog(dir: &Path) -> Result<(ServiceCatalog, Vec<String>)> {
    let packs = match crmonban_detect::packs::load_dir(dir) {
        Ok(packs) => packs,
        Err(problems) => {
            let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
            bail!(
                "service packs in {} refused:\n{}",
                dir.display(),
                listed.join("\n")
            );
        }
    };
    let names = packs.iter().map(|p| p.name.clone()).collect();
    let catalog = ServiceCatalog::with(packs)
        .with_context(|| format!("service packs in {}", dir.display()))?;
    Ok((catalog, names))
}

/// Loads `path`, or the default path, or the built-in defaults when the default path does not
/// exist. A path given explicitly must exist. Errors list every problem, one per line.
pub fn load(path: Option<&Path>) -> Result<Loaded> {
    let (path, explicit) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_PATH), false),
    };
    let (text, path) = if !explicit && !path.exists() {
        (String::new(), None)
    } else {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        (text, Some(path))
    };
    let dir = services_dir_of(&text).unwrap_or_else(|| PathBuf::from(DEFAULT_SERVICES_DIR));
    let (catalog, dir_packs) = catalog(&dir)?;
    let origin = path.as_ref().map_or_else(
        || "built-in defaults".to_owned(),
        |p| p.display().to_string(),
    );
    match Config::from_toml_str_with_catalog(&text, &origin, &catalog) {
        Ok((config, warnings)) => Ok(Loaded {
            config,
            warnings,
            path,
            dir_packs,
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
            for problem in crmonban_engine::check_intel_config(&loaded.config.intel) {
                println!("warning: intel: {problem}");
            }
            // SIEM targets as the daemon builds them: headers and TLS files read now.
            if let Err(e) = crmonban_engine::SiemService::prepare(&loaded.config) {
                eprintln!("invalid configuration: {e}");
                return Ok(ExitCode::FAILURE);
            }
            // The built-in packs are checked by the test suite; checked again here, so that a
            // binary built from edited packs cannot pass unnoticed.
            for pack in ServiceCatalog::builtin().packs() {
                if let Err(problems) = crmonban_detect::packs::verify(pack) {
                    for problem in problems {
                        eprintln!("{problem}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            }
            let packs: Vec<String> = loaded
                .config
                .services
                .values()
                .filter_map(|s| s.pack.as_ref())
                .map(|p| {
                    if loaded.dir_packs.contains(&p.name) {
                        format!("{} ({})", p.name, p.origin)
                    } else {
                        p.name.clone()
                    }
                })
                .collect();
            println!("service packs (samples pass): {}", packs.join(", "));
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

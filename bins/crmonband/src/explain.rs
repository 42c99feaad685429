//! `crmonband explain --service NAME [--json|--summary] FILE|-`: runs one service's detector
//! over a file offline — the same matcher and time windows as the daemon, with no firewall,
//! database or bus — and reports what matched and who would be banned. Like the daemon, it
//! does not count addresses the configuration protects (reserved ranges, trusted zones, the
//! `networks` and `file` whitelist sources); the database's entries, daemon sources and this
//! host's addresses are the running daemon's and are not consulted.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use crmonban_core::EventKind;
use crmonban_core::config::Pattern;
use crmonban_core::config::pack::IP_GROUP;
use crmonban_detect::decide::DeciderOptions;
use crmonban_detect::explain::{self, ExplainContext, ExplainMode, ExplainOptions};
use crmonban_detect::matcher::LineContext;
use crmonban_zones::Policy;

use crate::config_file;

/// What `explain` was asked besides the service and the input.
pub struct Ask {
    pub mode: ExplainMode,
    /// Group the unmatched lines of the service by shape.
    pub missed: bool,
    /// An ad-hoc regex that replaces the service's patterns.
    pub regex: Option<String>,
}

pub fn run(config_path: Option<&Path>, service: &str, ask: Ask, input: &str) -> Result<ExitCode> {
    let loaded = config_file::load(config_path)?;
    let Some((service, configured)) = loaded.config.service(service) else {
        let known: Vec<&str> = loaded.config.services.keys().map(String::as_str).collect();
        bail!(
            "no service {service:?} in the configuration; known: {}",
            known.join(", ")
        );
    };
    let mut service_config = configured.clone();
    if let Some(regex) = &ask.regex {
        // Like fail2ban-regex: only this regex, on whole lines.
        let source = regex.replace("<IP>", IP_GROUP).replace("<HOST>", IP_GROUP);
        let pattern = Pattern::new("regex", &source, EventKind::FailedAuth)
            .map_err(|e| anyhow::anyhow!("--regex: {e}"))?;
        service_config.pack = None;
        service_config.patterns = vec![pattern];
    }
    let reader: Box<dyn Read> = if input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(input).with_context(|| format!("cannot read {input}"))?)
    };
    let ctx = ExplainContext {
        line: LineContext {
            utc_offset: local_utc_offset(),
            ..LineContext::default()
        },
        // The daemon's limits: `[general] max_tracked_addresses` (a service's own
        // `ipv6_prefix` is taken from its config by the explain runner).
        decider: DeciderOptions {
            max_tracked: loaded.config.general.max_tracked_addresses,
            ..DeciderOptions::default()
        },
    };
    let (policy, problems) = Policy::from_config(&loaded.config, [], Vec::new())
        .context("the protection policy cannot be built")?;
    for problem in problems {
        eprintln!("warning: whitelist: {problem}");
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let protected = |target: &crmonban_core::Target| policy.check(target).is_err();
    let options = ExplainOptions {
        mode: ask.mode,
        ctx,
        protected: &protected,
        missed: ask.missed,
    };
    explain::run_with(
        service,
        &service_config,
        BufReader::with_capacity(1 << 20, reader),
        &mut out,
        &options,
    )
    .with_context(|| format!("explaining {input} as {service}"))?;
    std::io::Write::flush(&mut out)?;
    Ok(ExitCode::SUCCESS)
}

/// `explain --test-packs DIR`: checks every pack of `dir` as the daemon would when it loads
/// them, and says so per pack; every problem with file:line, exit 1 on any.
pub fn test_packs(dir: &Path) -> Result<ExitCode> {
    let paths = crmonban_detect::packs::pack_files(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?;
    if paths.is_empty() {
        bail!("no service packs (*.toml) in {}", dir.display());
    }
    let ok = crmonban_detect::packs::check_and_report(&paths, &mut std::io::stdout().lock())?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// This host's offset east of UTC in seconds, for log timestamps written in local time.
pub fn local_utc_offset() -> i32 {
    let now = crmonban_core::unix_now() as nix::libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which is ours.
    unsafe {
        let mut tm: nix::libc::tm = std::mem::zeroed();
        if nix::libc::localtime_r(&now, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff as i32
        }
    }
}

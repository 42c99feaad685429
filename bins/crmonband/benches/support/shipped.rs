//! Which daemon binary the benchmarks run.

use std::path::PathBuf;

/// The shipped release build that `cargo xtask bench` copies aside (`CRMONBAN_SHIPPED_DAEMON`);
/// without it (a bench run alone), this bench target's own build of the binary, which carries
/// the features the package's dev-dependencies switch on.
pub fn daemon_binary() -> PathBuf {
    std::env::var_os("CRMONBAN_SHIPPED_DAEMON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_crmonband")))
}

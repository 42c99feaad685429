//! `cargo xtask bpf`: compiles bpf/crmonban.bpf.c with clang and writes the libbpf-rs skeleton
//! (libbpf-cargo) into crates/crmonban-ebpf/src/bpf/, with the SHA-256 of the C source next to
//! it; the eBPF crate's staleness test fails when the source changes and the skeleton does not.
//! The skeleton carries the compiled object, so building the workspace needs no clang.
//!
//! Installing clang and libelf comes first, in the plain xtask; the generator itself is xtask
//! rebuilt with its `bpf` feature (libbpf-cargo), run as `cargo xtask bpf-generate`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::{cargo, install_missing, status};

/// What compiling the program needs: clang for `-target bpf`, the kernel's UAPI headers, and
/// libelf for libbpf (which libbpf-cargo links to read the object back).
const BPF_PACKAGES: &[(&str, &str)] = &[
    ("clang", "/usr/bin/clang"),
    ("llvm", "/usr/bin/llvm-strip"),
    ("linux-libc-dev", "/usr/include/linux/bpf.h"),
    ("libelf-dev", "/usr/include/libelf.h"),
    ("zlib1g-dev", "/usr/include/zlib.h"),
];

/// The C source, relative to the workspace root.
#[cfg_attr(not(feature = "bpf"), allow(dead_code))]
pub(crate) const SOURCE: &str = "bpf/crmonban.bpf.c";
/// The generated skeleton, relative to the workspace root.
#[cfg_attr(not(feature = "bpf"), allow(dead_code))]
pub(crate) const SKELETON: &str = "crates/crmonban-ebpf/src/bpf/crmonban.skel.rs";
/// The SHA-256 (hex) of [`SOURCE`] the skeleton was generated from.
#[cfg_attr(not(feature = "bpf"), allow(dead_code))]
pub(crate) const SOURCE_HASH: &str = "crates/crmonban-ebpf/src/bpf/crmonban.bpf.c.sha256";

/// `cargo xtask bpf`: packages, then the generator.
pub(crate) fn run() -> Result<ExitCode> {
    install_missing(BPF_PACKAGES)?;
    status(cargo().args([
        "run",
        "--quiet",
        "--locked",
        "--package",
        "xtask",
        "--features",
        "bpf",
        "--",
        "bpf-generate",
    ]))?;
    Ok(ExitCode::SUCCESS)
}

/// `cargo xtask bpf-generate` (xtask built with `--features bpf`).
#[cfg(feature = "bpf")]
pub(crate) fn generate(root: &Path) -> Result<ExitCode> {
    let source = root.join(SOURCE);
    let skeleton = root.join(SKELETON);
    // The multiarch directory holds asm/types.h, which linux/types.h includes.
    let multiarch = crate::bench::capture("gcc", &["-print-multiarch"])
        .unwrap_or_else(|_| "x86_64-linux-gnu".to_owned());
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        other => other,
    };
    libbpf_cargo::SkeletonBuilder::new()
        .source(&source)
        .clang("clang")
        .clang_args([
            format!("-I/usr/include/{multiarch}"),
            format!("-D__TARGET_ARCH_{arch}"),
            "-Wall".to_owned(),
            "-Werror".to_owned(),
        ])
        .build_and_generate(&skeleton)
        .with_context(|| format!("compiling {} into {}", source.display(), skeleton.display()))?;
    let hash = source_hash(&source)?;
    std::fs::write(root.join(SOURCE_HASH), format!("{hash}\n"))
        .with_context(|| format!("writing {SOURCE_HASH}"))?;
    eprintln!("xtask: wrote {SKELETON} and {SOURCE_HASH} ({hash})");
    Ok(ExitCode::SUCCESS)
}

/// Without the `bpf` feature: say how to get it.
#[cfg(not(feature = "bpf"))]
pub(crate) fn generate(_root: &Path) -> Result<ExitCode> {
    anyhow::bail!("bpf-generate needs xtask built with --features bpf; run `cargo xtask bpf`")
}

/// SHA-256 of `path` in hex, by coreutils' sha256sum (xtask carries no hashing crate).
#[cfg_attr(not(feature = "bpf"), allow(dead_code))]
fn source_hash(path: &Path) -> Result<String> {
    let out = crate::bench::capture("sha256sum", &[&path.to_string_lossy()])?;
    out.split_whitespace()
        .next()
        .map(str::to_owned)
        .context("sha256sum printed nothing")
}

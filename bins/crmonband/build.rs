//! Link options for the resident daemon.
//!
//! Packed relative relocations (`-z pack-relative-relocs`, DT_RELR; GNU ld 2.38+, glibc 2.36+:
//! Debian 12 has both). A position-independent executable carries one relocation for every
//! pointer in its read-only data, which the dynamic loader reads once at start: 24 bytes each
//! in `.rela.dyn` (528 KB for the daemon, every page of it resident while it runs) against a
//! bitmap of a few kilobytes. The binary stays position-independent (ASLR unchanged).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

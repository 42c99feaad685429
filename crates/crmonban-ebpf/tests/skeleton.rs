//! The committed skeleton was generated from the committed C source: `cargo xtask bpf` writes
//! the source's SHA-256 next to the skeleton, and this test recomputes it.

use std::path::Path;

#[test]
fn skeleton_is_generated_from_the_current_source() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bpf/crmonban.bpf.c");
    let text =
        std::fs::read(&source).unwrap_or_else(|e| panic!("reading {}: {e}", source.display()));
    let digest = ring::digest::digest(&ring::digest::SHA256, &text);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        crmonban_ebpf::SOURCE_SHA256.trim(),
        hex,
        "bpf/crmonban.bpf.c changed since the skeleton was generated: run `cargo xtask bpf` \
         and commit crates/crmonban-ebpf/src/bpf/ with the source"
    );
}

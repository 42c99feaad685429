//! `cargo run -p crmonban-detect --example check_packs -- PATH...`: checks each service pack
//! file (or every `*.toml` of each directory) as the daemon would: its sample lines, and
//! forgeries of every attacker group. One line per pack, or every problem with file:line;
//! exit 1 on any problem. For pack authors working in the source tree; installed systems have
//! `crmonband explain --test-packs DIR`.

use std::path::Path;
use std::process::ExitCode;

use crmonban_detect::packs;

fn main() -> ExitCode {
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        let path = Path::new(&arg);
        if path.is_dir() {
            files.extend(packs::pack_files(path).expect("read the directory"));
        } else {
            files.push(path.to_path_buf());
        }
    }
    match packs::check_and_report(&files, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

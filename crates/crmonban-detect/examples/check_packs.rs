//! `cargo run -p crmonban-detect --example check_packs -- PATH...`: checks each service pack
//! file (or every `*.toml` of each directory) as the daemon would: its sample lines, and
//! forgeries of every attacker group. One line per pack, or every problem with file:line;
//! exit 1 on any problem. For pack authors working in the source tree; installed systems have
//! `crmonband explain --test-packs DIR`.

use std::path::Path;
use std::process::ExitCode;

use crmonban_detect::packs;

fn main() -> ExitCode {
    let mut failed = false;
    for arg in std::env::args().skip(1) {
        let path = Path::new(&arg);
        let files = if path.is_dir() {
            packs::pack_files(path).expect("read the directory")
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            let checked = packs::check_file(&file);
            match checked.outcome {
                Ok((pack, report)) => println!(
                    "{}: ok: service {} ({} patterns, {} samples, {} forgeries tried)",
                    checked.origin,
                    pack.name,
                    pack.patterns.len(),
                    report.samples,
                    report.forgeries
                ),
                Err(problems) => {
                    failed = true;
                    for problem in problems {
                        println!("{problem}");
                    }
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

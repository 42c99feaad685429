//! `cargo run -p crmonban-detect --example check_packs -- PATH...`: reads each service pack
//! file (or every `*.toml` of each directory) and checks it as the daemon would: its sample
//! lines, and forgeries of every attacker group. Prints one line per pack, or every problem
//! with file:line; exits 1 on any problem. For pack authors: the daemon's own check is
//! `crmonband check-config` and `crmonband explain --test-packs DIR`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crmonban_core::config::Pack;
use crmonban_detect::packs;

fn main() -> ExitCode {
    let mut failed = false;
    for arg in std::env::args().skip(1) {
        let path = Path::new(&arg);
        let files: Vec<_> = if path.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(path)
                .expect("read the directory")
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            v.sort();
            v
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    println!("{}: cannot be read: {e}", file.display());
                    failed = true;
                    continue;
                }
            };
            match Pack::from_toml_str(&text, &file.display().to_string()) {
                Err(errors) => {
                    println!("{errors}");
                    failed = true;
                }
                Ok(pack) => {
                    let pack = Arc::new(pack);
                    match packs::verify(&pack) {
                        Ok(report) => println!(
                            "{}: ok: service {} ({} patterns, {} samples, {} forgeries tried)",
                            file.display(),
                            pack.name,
                            pack.patterns.len(),
                            report.samples,
                            report.forgeries
                        ),
                        Err(problems) => {
                            for p in problems {
                                println!("{p}");
                            }
                            failed = true;
                        }
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

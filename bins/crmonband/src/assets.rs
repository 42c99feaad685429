//! What a package installs beside a binary, generated from its command line so that it
//! cannot drift from it: manual pages of the command and its subcommands (clap_mangen) and
//! shell completions for bash, zsh and fish (clap_complete). Run by the hidden `assets DIR`
//! command of each binary (`cargo xtask deb` calls it); crmonctl includes this file.

use std::path::Path;

use anyhow::{Context, Result};
use clap_complete::Shell;

/// Writes `DIR/man/<name>.<section>` for `command` and each visible subcommand
/// (`<name>-<sub>.<section>`), and `DIR/completions/{<name>.bash, _<name>, <name>.fish}`.
pub fn write_command(mut command: clap::Command, section: &str, dir: &Path) -> Result<()> {
    let name = command.get_name().to_owned();
    let man = dir.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    let mut pages = command.clone().disable_help_subcommand(true);
    pages.build();
    write_pages(&pages, &name, section, &man)?;
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)
        .with_context(|| format!("creating {}", completions.display()))?;
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut command, &name, &mut out);
        let path = completions.join(file);
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn write_pages(command: &clap::Command, title: &str, section: &str, dir: &Path) -> Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_title = format!("{title}-{}", sub.get_name());
        write_pages(sub, &sub_title, section, dir)?;
    }
    let page = clap_mangen::Man::new(command.clone().display_name(title.to_owned()))
        .section(section)
        .manual("crmonban")
        .source(format!("crmonban {}", env!("CARGO_PKG_VERSION")));
    let path = dir.join(page.get_filename());
    let mut out = Vec::new();
    page.render(&mut out)?;
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_completions_are_written_for_every_visible_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let command = clap::Command::new("demo")
            .about("A demo")
            .subcommand(clap::Command::new("run").about("Runs"))
            .subcommand(clap::Command::new("secret").hide(true));
        write_command(command, "1", dir.path()).unwrap();
        let mut files: Vec<String> = walk(dir.path());
        files.sort();
        assert_eq!(
            files,
            [
                "completions/_demo",
                "completions/demo.bash",
                "completions/demo.fish",
                "man/demo-run.1",
                "man/demo.1"
            ]
        );
        let page = std::fs::read_to_string(dir.path().join("man/demo.1")).unwrap();
        assert!(page.contains(".TH demo 1"), "{page}");
        assert!(!page.contains("secret"));
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["man", "completions"] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                out.push(format!("{sub}/{name}"));
            }
        }
        out
    }
}

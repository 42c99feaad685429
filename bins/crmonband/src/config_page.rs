//! `crmonban-config.toml(5)`: the manual page of the configuration file, made from the
//! commented default file `crmonband gen-config` writes (so it names every key and default the
//! code knows), for the hidden `crmonband assets DIR`.

use std::path::Path;

use anyhow::{Context, Result};

/// `crmonban-config.toml(5)`: the commented default configuration as a manual page: its
/// leading comment the description, then one subsection per table with its keys, each with
/// its default and the comment above it.
pub fn config_page(default_config: &str) -> String {
    use roff::{Roff, bold, italic, roman};
    let mut page = Roff::new();
    page.control(
        "TH",
        [
            "CRMONBAN-CONFIG.TOML",
            "5",
            "",
            &format!("crmonban {}", env!("CARGO_PKG_VERSION")),
            "crmonban",
        ],
    );
    page.control("SH", ["NAME"]);
    page.text([roman(
        "crmonban-config.toml - configuration of crmonband, the crmonban daemon",
    )]);
    page.control("SH", ["SYNOPSIS"]);
    page.text([bold("/etc/crmonban/config.toml")]);
    page.control("SH", ["DESCRIPTION"]);
    let mut comment: Vec<String> = Vec::new();
    let mut in_header = true;
    for line in default_config.lines() {
        let trimmed = line.trim();
        if let Some(text) = trimmed.strip_prefix('#') {
            let text = text.trim();
            if text.is_empty() && in_header {
                // A bare `#` ends a paragraph of the file's opening comment.
                paragraph(&mut page, &mut comment);
            } else if !text.chars().all(|c| c == '-') {
                // (Rules of dashes only separate the sections visually in the file.)
                comment.push(text.to_owned());
            }
            continue;
        }
        if trimmed.is_empty() {
            if in_header && !comment.is_empty() {
                paragraph(&mut page, &mut comment);
            }
            continue;
        }
        in_header = false;
        if trimmed.starts_with('[') {
            page.control("SH", [trimmed]);
            paragraph(&mut page, &mut comment);
            continue;
        }
        match trimmed.split_once('=') {
            Some((key, value)) => {
                page.control("TP", [] as [&str; 0]);
                page.text([bold(key.trim()), roman(" = "), italic(value.trim())]);
                let text = comment.join(" ");
                comment.clear();
                if !text.is_empty() {
                    page.text([roman(text)]);
                }
            }
            None => {
                // The continuation of a multi-line value (a list): shown as it is.
                page.control("IP", ["", "4"]);
                page.text([italic(trimmed)]);
            }
        }
    }
    paragraph(&mut page, &mut comment);
    page.control("SH", ["SEE ALSO"]);
    page.text([
        bold("crmonband"),
        roman("(8), "),
        bold("crmonctl"),
        roman("(1); docs/CONFIG.md of the source, which explains every key at length."),
    ]);
    page.render()
}

fn paragraph(page: &mut roff::Roff, comment: &mut Vec<String>) {
    if comment.is_empty() {
        return;
    }
    page.control("PP", [] as [&str; 0]);
    page.text([roff::roman(comment.join(" "))]);
    comment.clear();
}

/// The hidden `assets DIR` command of crmonband: its pages (section 8), its completions, and
/// the configuration page (`DIR/man/crmonban-config.toml.5`).
pub fn write_daemon(command: clap::Command, dir: &Path) -> Result<()> {
    crate::assets::write_command(command, "8", dir)?;
    let path = dir.join("man").join("crmonban-config.toml.5");
    std::fs::write(
        &path,
        config_page(crmonban_core::config::DEFAULT_CONFIG_TOML),
    )
    .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_page_has_every_table_and_key_of_the_default_file() {
        let text = crmonban_core::config::DEFAULT_CONFIG_TOML;
        let page = config_page(text);
        assert!(page.contains("\n.TH CRMONBAN-CONFIG.TOML 5"), "{page}");
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') && !line.starts_with("[[") {
                assert!(page.contains(&format!(".SH {line}")), "{line}");
            } else if let Some((key, _)) = line.split_once('=')
                && !line.starts_with('#')
            {
                // roff escapes hyphens and backslashes; keys have neither.
                assert!(page.contains(key.trim()), "{key}");
            }
        }
    }
}

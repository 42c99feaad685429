//! docs/DBUS.md's examples are true: every `$` line of its `console` blocks is run, in order,
//! against a real daemon (in a network namespace of its own) on a private system bus, and what
//! it prints must be the lines the document shows after it (a line ending in `…` matches any
//! text after what it shows). Panics without root.

mod support;

use std::process::Command;

use support::*;

/// One example: the command line and the output lines the document shows.
struct Example {
    line: usize,
    command: String,
    expected: Vec<String>,
}

fn examples(markdown: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut in_console = false;
    for (i, line) in markdown.lines().enumerate() {
        if line.starts_with("```") {
            in_console = line == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        match line.strip_prefix("$ ") {
            Some(command) => out.push(Example {
                line: i + 1,
                command: command.to_owned(),
                expected: Vec::new(),
            }),
            None => out
                .last_mut()
                .expect("output before any command")
                .expected
                .push(line.to_owned()),
        }
    }
    out
}

fn matches(expected: &str, actual: &str) -> bool {
    match expected.strip_suffix('…') {
        Some(prefix) => actual.starts_with(prefix),
        None => expected == actual,
    }
}

#[test]
fn root_the_dbus_document_s_examples_print_what_it_says() {
    let markdown = std::fs::read_to_string(workspace().join("docs/DBUS.md")).unwrap();
    let examples = examples(&markdown);
    assert!(examples.len() >= 10, "found {} examples", examples.len());
    let daemon = Daemon::start("");
    for example in &examples {
        let out = Command::new("sh")
            .args(["-c", &format!("{} 2>&1", example.command)])
            .env("DBUS_SYSTEM_BUS_ADDRESS", daemon.bus.address())
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = printed.lines().collect();
        let same = lines.len() == example.expected.len()
            && example
                .expected
                .iter()
                .zip(&lines)
                .all(|(want, got)| matches(want, got));
        assert!(
            same,
            "docs/DBUS.md:{}: `{}` printed:\n{printed}\nthe document shows:\n{}",
            example.line,
            example.command,
            example.expected.join("\n")
        );
    }
}

//! Naming the element nft refused on the JSON path (the netlink path has the kernel's own
//! pointer). nft's errors for JSON input say what went wrong but not where ("internal:0:0-0"),
//! so after a refusal we find the first element whose inclusion makes
//! the batch fail: a binary search over prefixes of each element command, each checked with a
//! dry run (the kernel validates the batch, then it is aborted). This runs only on the error
//! path, and only for batches up to [`MAX_ELEMENTS_TO_BLAME`] elements.

use super::batch::{Command, Commands, Elem};
use super::runner::Runner;

pub(crate) const MAX_ELEMENTS_TO_BLAME: usize = 100_000;

pub(crate) fn find_refused_element(runner: &mut dyn Runner, commands: &Commands) -> Option<String> {
    let total: usize = commands
        .list
        .iter()
        .map(|o| elements_of(o).map_or(0, <[_]>::len))
        .sum();
    if total == 0 || total > MAX_ELEMENTS_TO_BLAME {
        return None;
    }
    for (index, object) in commands.list.iter().enumerate() {
        let Some(elems) = elements_of(object) else {
            continue;
        };
        let fails = |runner: &mut dyn Runner, keep: usize| {
            let mut prefix: Vec<Command> = commands.list[..index].to_vec();
            if keep > 0 {
                // nft rejects an element command with an empty list: leave it out instead.
                prefix.push(with_elements(object, &elems[..keep]));
            }
            let prefix = Commands {
                layout: commands.layout.clone(),
                list: prefix,
            };
            runner.run(&prefix, true).is_err()
        };
        if !fails(runner, elems.len()) {
            continue;
        }
        if fails(runner, 0) {
            return None; // the command itself fails, whatever its elements
        }
        // Smallest `keep` for which the prefix fails: elems[keep - 1] is the culprit.
        let (mut lo, mut hi) = (1, elems.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if fails(runner, mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        return Some(elems[lo - 1].value_string());
    }
    None
}

fn elements_of(command: &Command) -> Option<&[Elem]> {
    match command {
        Command::Elements { elems, .. } => Some(elems),
        Command::Object(_) => None,
    }
}

fn with_elements(command: &Command, elems: &[Elem]) -> Command {
    match command {
        Command::Elements { delete, set, .. } => Command::Elements {
            delete: *delete,
            set: set.clone(),
            elems: elems.to_vec(),
        },
        Command::Object(_) => command.clone(),
    }
}

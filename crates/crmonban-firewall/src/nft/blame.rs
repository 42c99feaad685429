//! Naming the element nft refused. nft's errors for JSON input say what went wrong but not
//! where ("internal:0:0-0"), so after a refusal we find the first element whose inclusion makes
//! the batch fail: a binary search over prefixes of each element command, each checked with a
//! dry run (the kernel validates the batch, then it is aborted). This runs only on the error
//! path, and only for batches up to [`MAX_ELEMENTS_TO_BLAME`] elements.

use std::borrow::Cow;

use nftables::schema::{NfCmd, NfListObject, NfObject};
use serde_json::Value;

use super::batch::Commands;
use super::runner::Runner;

pub(crate) const MAX_ELEMENTS_TO_BLAME: usize = 100_000;

pub(crate) fn find_refused_element(runner: &mut dyn Runner, commands: &Commands) -> Option<String> {
    let total: usize = commands
        .0
        .iter()
        .map(|o| elements_of(o).map_or(0, <[_]>::len))
        .sum();
    if total == 0 || total > MAX_ELEMENTS_TO_BLAME {
        return None;
    }
    for (index, object) in commands.0.iter().enumerate() {
        let Some(elems) = elements_of(object) else {
            continue;
        };
        let fails = |runner: &mut dyn Runner, keep: usize| {
            let mut prefix: Vec<NfObject<'static>> = commands.0[..index].to_vec();
            if keep > 0 {
                // nft rejects an element command with an empty list: leave it out instead.
                prefix.push(with_elements(object, &elems[..keep]));
            }
            Commands(prefix)
                .to_json()
                .map_or(true, |json| runner.run(&json, true).is_err())
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
        return serde_json::to_value(&elems[lo - 1])
            .ok()
            .map(|v| describe(&v));
    }
    None
}

fn elements_of<'a>(
    object: &'a NfObject<'static>,
) -> Option<&'a [nftables::expr::Expression<'static>]> {
    match object {
        NfObject::CmdObject(
            NfCmd::Add(NfListObject::Element(e)) | NfCmd::Delete(NfListObject::Element(e)),
        ) => Some(&e.elem),
        _ => None,
    }
}

fn with_elements(
    object: &NfObject<'static>,
    elems: &[nftables::expr::Expression<'static>],
) -> NfObject<'static> {
    let mut copy = object.clone();
    if let NfObject::CmdObject(
        NfCmd::Add(NfListObject::Element(e)) | NfCmd::Delete(NfListObject::Element(e)),
    ) = &mut copy
    {
        e.elem = Cow::Owned(elems.to_vec());
    }
    copy
}

/// A readable form of one element expression: `192.0.2.7`, `10.0.0.0/8`, `a-b`, with timeout.
fn describe(value: &Value) -> String {
    if let Some(s) = value.as_str() {
        return s.to_owned();
    }
    if let Some(p) = value.get("prefix") {
        return format!("{}/{}", p["addr"].as_str().unwrap_or("?"), p["len"]);
    }
    if let Some([lo, hi]) = value
        .get("range")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        return format!(
            "{}-{}",
            lo.as_str().unwrap_or("?"),
            hi.as_str().unwrap_or("?")
        );
    }
    if let Some(elem) = value.get("elem") {
        let inner = describe(&elem["val"]);
        return match elem.get("timeout").and_then(Value::as_u64) {
            Some(t) => format!("{inner} timeout {t}s"),
            None => inner,
        };
    }
    value.to_string()
}

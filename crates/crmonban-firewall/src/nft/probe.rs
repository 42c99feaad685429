//! Is our layout intact, and which ruleset generation is this? Asked with read-only nfnetlink
//! requests (`GETTABLE`, `GETSET`, `GETCHAIN`, a `GETRULE` dump of each chain, `GETGEN`) on a
//! netlink socket of the calling thread's network namespace.
//!
//! Why not through nft: every `nft list` command reads all set elements into nft's cache first
//! (tens of seconds at a million elements), and an existence probe by `create` (which fails
//! when the object exists) makes the kernel abort the transaction, which took ~20 ms each here
//! while holding the namespace's nftables commit lock. Seven of those every repair tick stalled
//! bans for up to 100 ms. These requests are answered under RCU, never take that lock, read no
//! element, and cost a few microseconds each; they also see what a `create` probe cannot: a
//! base chain that lost its hook, priority or rules, and a set with the wrong flags.

use super::netlink::{
    Messages, NFPROTO_INET, NLM_F_ACK, NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR, Reply, Socket, attrs,
    be_u32, nested, nft_type, unavailable,
};
use crate::{FirewallError, Layout};

const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_GEN_ID: u16 = 1;

/// `NFTA_TABLE_NAME`, `NFTA_SET_TABLE`, `NFTA_CHAIN_TABLE` and `NFTA_RULE_TABLE` are all 1.
const NFTA_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_TIMEOUT: u32 = 0x10;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_FLAGS: u16 = 5;
const NFT_LOOKUP_F_INV: u32 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NF_DROP: u32 = 0;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFT_SET_ELEM_INTERVAL_END: u32 = 1;
const NF_INET_LOCAL_IN: u32 = 1;
const NF_INET_FORWARD: u32 = 2;

/// Rules the layout puts in each chain (DESIGN.md §3).
const RULES_PER_CHAIN: usize = 4;

/// What is wrong with the layout, or `None` when it is complete and as configured.
pub(crate) fn layout_problem(layout: &Layout) -> Result<Option<String>, FirewallError> {
    let mut socket = Socket::open()?;
    let table = layout.table.as_str();
    if get(&mut socket, NFT_MSG_GETTABLE, &[(NFTA_TABLE, table)])?.is_none() {
        return Ok(Some(format!("table inet {table} is missing")));
    }
    for (ipv4, net) in [(true, false), (false, false), (true, true), (false, true)] {
        let name = layout.set_for(ipv4, net);
        let Some(set) = get(
            &mut socket,
            NFT_MSG_GETSET,
            &[(NFTA_TABLE, table), (NFTA_SET_NAME, &name)],
        )?
        else {
            return Ok(Some(format!("set {name} is missing")));
        };
        let flags = set.attr(NFTA_SET_FLAGS).and_then(be_u32).unwrap_or(0);
        let wanted = NFT_SET_TIMEOUT | if net { NFT_SET_INTERVAL } else { 0 };
        if flags & wanted != wanted {
            return Ok(Some(format!("set {name} lacks its timeout/interval flags")));
        }
    }
    for (chain, hook) in [
        (&layout.input_chain, NF_INET_LOCAL_IN),
        (&layout.forward_chain, NF_INET_FORWARD),
    ] {
        let Some(reply) = get(
            &mut socket,
            NFT_MSG_GETCHAIN,
            &[(NFTA_TABLE, table), (NFTA_CHAIN_NAME, chain)],
        )?
        else {
            return Ok(Some(format!("chain {chain} is missing")));
        };
        let hook_attr = reply.attr(NFTA_CHAIN_HOOK);
        let hooknum = hook_attr
            .and_then(|h| nested(h, NFTA_HOOK_HOOKNUM))
            .and_then(be_u32);
        let priority = hook_attr
            .and_then(|h| nested(h, NFTA_HOOK_PRIORITY))
            .and_then(be_u32)
            .map(|p| p as i32);
        if hooknum != Some(hook) || priority != Some(layout.priority) {
            return Ok(Some(format!(
                "chain {chain} is not on its hook at priority {}",
                layout.priority
            )));
        }
        let rules = dump(
            &mut socket,
            NFT_MSG_GETRULE,
            NFT_MSG_NEWRULE,
            &[(NFTA_TABLE, table), (NFTA_RULE_CHAIN, chain)],
        )?;
        if rules.len() != RULES_PER_CHAIN {
            return Ok(Some(format!(
                "chain {chain} holds {} rules instead of {RULES_PER_CHAIN}",
                rules.len()
            )));
        }
        // Each rule must still drop what one of our sets matches: a verdict changed to
        // accept, an inverted lookup or a rule pointed at another set is damage too.
        let mut sets: Vec<String> = Vec::new();
        for rule in &rules {
            match dropped_set(rule) {
                Some(set) => sets.push(set),
                None => {
                    return Ok(Some(format!(
                        "a rule of chain {chain} no longer drops the sources in its set"
                    )));
                }
            }
        }
        sets.sort();
        let mut wanted: Vec<String> = [(true, false), (false, false), (true, true), (false, true)]
            .into_iter()
            .map(|(ipv4, net)| layout.set_for(ipv4, net))
            .collect();
        wanted.sort();
        if sets != wanted {
            return Ok(Some(format!(
                "the rules of chain {chain} look up {sets:?} instead of {wanted:?}"
            )));
        }
    }
    Ok(None)
}

/// The set a rule drops the matches of: a positive lookup in it and a drop verdict, and no
/// other verdict.
fn dropped_set(rule: &Reply) -> Option<String> {
    let expressions = rule.attr(NFTA_RULE_EXPRESSIONS)?;
    let mut set = None;
    let mut drops = false;
    for (kind, expression) in attrs(expressions) {
        if kind != NFTA_LIST_ELEM {
            continue;
        }
        let name = nested(expression, NFTA_EXPR_NAME)?;
        let name = std::str::from_utf8(name).ok()?.trim_end_matches('\0');
        let data = nested(expression, NFTA_EXPR_DATA).unwrap_or_default();
        match name {
            "lookup" => {
                let flags = nested(data, NFTA_LOOKUP_FLAGS)
                    .and_then(be_u32)
                    .unwrap_or(0);
                if flags & NFT_LOOKUP_F_INV != 0 {
                    return None;
                }
                let name = nested(data, NFTA_LOOKUP_SET)?;
                set = Some(
                    std::str::from_utf8(name)
                        .ok()?
                        .trim_end_matches('\0')
                        .to_owned(),
                );
            }
            "immediate" => {
                let code = nested(data, NFTA_IMMEDIATE_DATA)
                    .and_then(|d| nested(d, NFTA_DATA_VERDICT))
                    .and_then(|v| nested(v, NFTA_VERDICT_CODE))
                    .and_then(be_u32);
                if code != Some(NF_DROP) {
                    return None;
                }
                drops = true;
            }
            _ => {}
        }
    }
    set.filter(|_| drops)
}

/// How many elements each of the layout's sets holds, in the order single IPv4, single IPv6,
/// IPv4 networks, IPv6 networks (elements flagged as an interval's end are not counted; the
/// kernel may still show one more element than intervals). A dump of
/// the elements over netlink: no nft cache, no commit lock, but it reads every element, so it
/// is run only when someone else may have changed the ruleset.
pub(crate) fn element_counts(layout: &Layout) -> Result<[usize; 4], FirewallError> {
    let mut socket = Socket::open()?;
    let table = layout.table.as_str();
    let mut counts = [0; 4];
    for (i, (ipv4, net)) in [(true, false), (false, false), (true, true), (false, true)]
        .into_iter()
        .enumerate()
    {
        let name = layout.set_for(ipv4, net);
        for message in dump(
            &mut socket,
            NFT_MSG_GETSETELEM,
            NFT_MSG_NEWSETELEM,
            &[
                (NFTA_SET_ELEM_LIST_TABLE, table),
                (NFTA_SET_ELEM_LIST_SET, &name),
            ],
        )? {
            let Some(list) = message.attr(NFTA_SET_ELEM_LIST_ELEMENTS) else {
                continue;
            };
            counts[i] += attrs(list)
                .filter(|(kind, _)| *kind == NFTA_LIST_ELEM)
                .filter(|(_, element)| {
                    let flags = nested(element, NFTA_SET_ELEM_FLAGS)
                        .and_then(be_u32)
                        .unwrap_or(0);
                    flags & NFT_SET_ELEM_INTERVAL_END == 0
                })
                .count();
        }
    }
    Ok(counts)
}

/// The nftables ruleset generation of the calling thread's network namespace. The kernel adds
/// one for every committed transaction, whatever it changed and however many netlink messages
/// it carried (an aborted one changes nothing), so the difference between two readings counts
/// the transactions in between: a cheap check that a batch was one transaction, or that
/// someone else changed the ruleset. Read with a `GETGEN` request, which takes no lock.
pub fn ruleset_generation() -> Result<u32, FirewallError> {
    let mut socket = Socket::open()?;
    get(&mut socket, NFT_MSG_GETGEN, &[])?
        .and_then(|reply| reply.attr(NFTA_GEN_ID).and_then(be_u32))
        .ok_or_else(|| FirewallError::Parse("the kernel sent no ruleset generation".into()))
}

/// One object by name: its message, or `None` when the kernel says ENOENT.
fn get(
    socket: &mut Socket,
    msg_type: u16,
    attrs: &[(u16, &str)],
) -> Result<Option<Reply>, FirewallError> {
    let seq = send(socket, msg_type, NLM_F_ACK, attrs)?;
    let mut object = None;
    loop {
        for reply in socket.receive()? {
            if reply.seq != seq {
                continue;
            }
            if reply.kind == NLMSG_ERROR {
                return match reply.error_code() {
                    0 => Ok(object),
                    code if code == -libc::ENOENT => Ok(None),
                    code => Err(unavailable(
                        "query nftables",
                        std::io::Error::from_raw_os_error(-code),
                    )),
                };
            }
            object = Some(reply);
        }
    }
}

/// How many `want` messages a filtered dump returns.
/// The replies of a dump request of kind `want` (empty when the object does not exist).
fn dump(
    socket: &mut Socket,
    msg_type: u16,
    want: u16,
    attrs: &[(u16, &str)],
) -> Result<Vec<Reply>, FirewallError> {
    let seq = send(socket, msg_type, NLM_F_DUMP, attrs)?;
    let mut replies = Vec::new();
    loop {
        for reply in socket.receive()? {
            if reply.seq != seq {
                continue;
            }
            match reply.kind {
                NLMSG_DONE => return Ok(replies),
                NLMSG_ERROR => match reply.error_code() {
                    0 => return Ok(replies),
                    code if code == -libc::ENOENT => return Ok(Vec::new()),
                    code => {
                        return Err(unavailable(
                            "query nftables",
                            std::io::Error::from_raw_os_error(-code),
                        ));
                    }
                },
                kind if kind == nft_type(want) => replies.push(reply),
                _ => {}
            }
        }
    }
}

/// Sends one request of string attributes; returns its sequence number.
fn send(
    socket: &mut Socket,
    msg_type: u16,
    flags: u16,
    attrs: &[(u16, &str)],
) -> Result<u32, FirewallError> {
    let seq = socket.next_seq();
    let mut messages = Messages::default();
    messages.begin(nft_type(msg_type), flags, seq, NFPROTO_INET, 0);
    for (kind, value) in attrs {
        messages.attr_str(*kind, value);
    }
    messages.end();
    socket.send(&messages)?;
    Ok(seq)
}

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
    Messages, NFPROTO_INET, NLM_F_ACK, NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR, Reply, Socket, be_u32,
    nested, nft_type, unavailable,
};
use crate::{FirewallError, Layout};

const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_GETSET: u16 = 10;
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
        let rules = dump_count(
            &mut socket,
            NFT_MSG_GETRULE,
            NFT_MSG_NEWRULE,
            &[(NFTA_TABLE, table), (NFTA_RULE_CHAIN, chain)],
        )?;
        if rules != RULES_PER_CHAIN {
            return Ok(Some(format!(
                "chain {chain} holds {rules} rules instead of {RULES_PER_CHAIN}"
            )));
        }
    }
    Ok(None)
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
fn dump_count(
    socket: &mut Socket,
    msg_type: u16,
    want: u16,
    attrs: &[(u16, &str)],
) -> Result<usize, FirewallError> {
    let seq = send(socket, msg_type, NLM_F_DUMP, attrs)?;
    let mut count = 0;
    loop {
        for reply in socket.receive()? {
            if reply.seq != seq {
                continue;
            }
            match reply.kind {
                NLMSG_DONE => return Ok(count),
                NLMSG_ERROR => match reply.error_code() {
                    0 => return Ok(count),
                    code if code == -libc::ENOENT => return Ok(0),
                    code => {
                        return Err(unavailable(
                            "query nftables",
                            std::io::Error::from_raw_os_error(-code),
                        ));
                    }
                },
                kind if kind == nft_type(want) => count += 1,
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

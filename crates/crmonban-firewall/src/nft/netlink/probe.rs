//! Is our layout intact, how many elements do the sets hold, which ruleset generation is this?
//! Asked with read-only nf_tables requests (`GETTABLE`, `GETSET`, `GETCHAIN`, a `GETRULE` dump
//! of each chain, `GETSETELEM` dumps, `GETGEN`) over a [`Channel`].
//!
//! Why not through nft: every `nft list` command reads all set elements into nft's cache first
//! (tens of seconds at a million elements), and an existence probe by `create` makes the kernel
//! abort a transaction while holding the namespace's nftables commit lock. These requests are
//! answered under RCU, never take that lock, and (but for the element dumps, which the engine
//! runs only when someone else changed the ruleset) read no element. They also see what a
//! `create` probe cannot: a base chain that lost its hook, priority or rules, a set with the
//! wrong flags, a rule whose verdict was changed.

use netlink_packet_core::{
    NLA_HEADER_SIZE, NLM_F_ACK, NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkPayload,
    NlaBuffer, NlasIterator, parse_u32_be, parse_u64_be,
};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, DataAttribute, ExpressionAttribute, Expressions, GenMessage,
    Hook, HookNumber, Immediate, InetHookNumber, ListAttribute, Lookup, NfTablesMessage,
    RuleAttribute, RuleMessage, SetAttribute, SetElementFlags, SetElementList, SetElementMessage,
    SetFlags, SetMessage, TableAttribute, TableMessage, VerdictAttribute,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};

use super::elements::{DATA_VALUE, ELEM_EXPIRATION, ELEM_FLAGS, ELEM_KEY, ELEM_TIMEOUT};
use super::{Channel, ELEMENTS_ATTR, HEADERS, error_code, unavailable};
use std::net::IpAddr;

use crmonban_core::Target;

use crate::{Expiry, FirewallError, Layout, timeout_clock};

/// Rules the layout puts in each chain (DESIGN.md §3).
const RULES_PER_CHAIN: usize = 4;
/// `NF_DROP`.
const NF_DROP: u32 = 0;
/// `NFT_LOOKUP_F_INV`.
const LOOKUP_INVERTED: u32 = 1;
/// The message type of a set element dump's answers (`NFT_MSG_NEWSETELEM` of nf_tables).
const NEWSETELEM: u16 = (10 << 8) | 12;

/// True when the table of `layout` does not exist (one GETTABLE request).
pub(crate) fn table_absent(layout: &Layout) -> Result<bool, FirewallError> {
    let mut channel = Channel::open()?;
    Ok(!table_exists(&mut channel, &layout.table)?)
}

fn table_exists(channel: &mut Channel, table: &str) -> Result<bool, FirewallError> {
    let get_table = NfTablesMessage::GetTable(TableMessage {
        attributes: vec![TableAttribute::Name(table.to_owned())],
    });
    Ok(get(channel, get_table)?.is_some())
}

/// What is wrong with the layout, or `None` when it is complete and as configured.
pub(crate) fn layout_problem(layout: &Layout) -> Result<Option<String>, FirewallError> {
    let mut channel = Channel::open()?;
    let table = layout.table.clone();
    if !table_exists(&mut channel, &table)? {
        return Ok(Some(format!("table inet {table} is missing")));
    }
    for (ipv4, net) in [(true, false), (false, false), (true, true), (false, true)] {
        let name = layout.set_for(ipv4, net);
        let request = NfTablesMessage::GetSet(SetMessage {
            attributes: vec![
                SetAttribute::Table(table.clone()),
                SetAttribute::Name(name.clone()),
            ],
        });
        let Some(NfTablesMessage::NewSet(set)) = get(&mut channel, request)? else {
            return Ok(Some(format!("set {name} is missing")));
        };
        let flags = set.attributes.iter().find_map(|a| match a {
            SetAttribute::Flags(flags) => Some(*flags),
            _ => None,
        });
        let mut wanted = SetFlags::Timeout;
        if net {
            wanted |= SetFlags::Interval;
        }
        if !flags.is_some_and(|f| f.contains(wanted)) {
            return Ok(Some(format!("set {name} lacks its timeout/interval flags")));
        }
    }
    for forward in [false, true] {
        let chain = layout.chain(forward);
        let hook = if forward {
            InetHookNumber::Forward
        } else {
            InetHookNumber::LocalIn
        };
        let request = NfTablesMessage::GetChain(ChainMessage {
            attributes: vec![
                ChainAttribute::Table(table.clone()),
                ChainAttribute::Name(chain.to_owned()),
            ],
        });
        let Some(NfTablesMessage::NewChain(found)) = get(&mut channel, request)? else {
            return Ok(Some(format!("chain {chain} is missing")));
        };
        let hooks: &[Hook] = found
            .attributes
            .iter()
            .find_map(|a| match a {
                ChainAttribute::Hook(hooks) => Some(hooks.as_slice()),
                _ => None,
            })
            .unwrap_or_default();
        let on_hook = hooks.iter().any(
            |h| matches!(h, Hook::Number(n) if u32::from(*n) == u32::from(HookNumber::from(hook))),
        );
        let priority = hooks.iter().find_map(|h| match h {
            Hook::Priority(p) => Some(*p as i32),
            _ => None,
        });
        if !on_hook || priority != Some(layout.priority) {
            return Ok(Some(format!(
                "chain {chain} is not on its hook at priority {}",
                layout.priority
            )));
        }
        let request = NfTablesMessage::GetRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(table.clone()),
                RuleAttribute::Chain(chain.to_owned()),
            ],
        });
        let rules = dump(&mut channel, request)?;
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
            match rule_drops_set(rule) {
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
pub(super) fn rule_drops_set(rule: &NfTablesMessage) -> Option<String> {
    let mut set = None;
    let mut drops = false;
    for part in rule_parts(rule)? {
        match part {
            ExpressionAttribute::Data(Expressions::Lookup(lookup)) => {
                for attribute in lookup {
                    match attribute {
                        Lookup::Flags(flags) if flags & LOOKUP_INVERTED != 0 => return None,
                        Lookup::Set(name) => set = Some(name.clone()),
                        _ => {}
                    }
                }
            }
            ExpressionAttribute::Data(Expressions::Immediate(immediate)) => {
                let code = immediate.iter().find_map(|a| match a {
                    Immediate::Data(DataAttribute::Verdict(verdict)) => {
                        verdict.iter().find_map(|v| match v {
                            VerdictAttribute::Code(code) => Some(u32::from(*code)),
                            _ => None,
                        })
                    }
                    _ => None,
                });
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

/// The parts of every expression of a rule (`None` when the message is not a rule or has no
/// expressions).
pub(super) fn rule_parts(
    rule: &NfTablesMessage,
) -> Option<impl Iterator<Item = &ExpressionAttribute>> {
    let NfTablesMessage::NewRule(rule) = rule else {
        return None;
    };
    let expressions = rule.attributes.iter().find_map(|a| match a {
        RuleAttribute::Expressions(list) => Some(list),
        _ => None,
    })?;
    Some(expressions.iter().flat_map(|expression| match expression {
        ListAttribute::Element(parts) => parts.as_slice(),
        _ => &[],
    }))
}

/// How many elements each of the layout's sets holds, in the order single IPv4, single IPv6,
/// IPv4 networks, IPv6 networks (elements flagged as an interval's end are not counted; the
/// kernel may still show one more element than intervals). A dump of the elements: no nft
/// cache, no commit lock, but it reads every element, so it is run only when someone else may
/// have changed the ruleset.
pub(crate) fn element_counts(layout: &Layout) -> Result<[usize; 4], FirewallError> {
    let mut channel = Channel::open()?;
    let mut counts = [0; 4];
    for (i, (ipv4, net)) in [(true, false), (false, false), (true, true), (false, true)]
        .into_iter()
        .enumerate()
    {
        let request = NfTablesMessage::GetSetElement(SetElementMessage {
            attributes: vec![
                SetElementList::Table(layout.table.clone()),
                SetElementList::Set(layout.set_for(ipv4, net)),
            ],
        });
        counts[i] = count_elements(&mut channel, request)?;
    }
    Ok(counts)
}

/// The elements a `GETSETELEM` dump returns, interval ends not counted.
fn count_elements(channel: &mut Channel, request: NfTablesMessage) -> Result<usize, FirewallError> {
    let mut count = 0;
    walk_elements(channel, request, |entry| {
        let flags = NlasIterator::new(entry)
            .flatten()
            .find(|a| a.kind() == ELEM_FLAGS)
            .and_then(|a| parse_u32_be(a.value()).ok())
            .unwrap_or(0);
        if flags & SetElementFlags::IntervalEnd.bits() == 0 {
            count += 1;
        }
    })?;
    Ok(count)
}

/// Runs a `GETSETELEM` dump and hands each element's attributes to `each`. Walked with
/// `netlink-packet-core`'s attribute iterator rather than parsed into the crate's types: those
/// copy every element (and format the whole list for an error context of every entry), which
/// took a minute at 100,000 elements. A set that does not exist has no elements.
fn walk_elements(
    channel: &mut Channel,
    request: NfTablesMessage,
    mut each: impl FnMut(&[u8]),
) -> Result<(), FirewallError> {
    let seq = channel.next_seq();
    channel.request(
        NetfilterMessage::new(header(NetfilterProtoFamily::Inet), request),
        NLM_F_DUMP,
        seq,
    )?;
    let mut outcome: Option<Result<(), i32>> = None;
    while outcome.is_none() {
        channel.receive_raw(|data| {
            let message = NetlinkBuffer::new(data);
            if message.sequence_number() != seq {
                return;
            }
            match message.message_type() {
                NLMSG_DONE => outcome = Some(Ok(())),
                NLMSG_ERROR => {
                    let code = error_code(data);
                    outcome = Some(if code == 0 { Ok(()) } else { Err(-code) });
                }
                kind if kind == NEWSETELEM => element_entries(data).for_each(&mut each),
                _ => {}
            }
        })?;
    }
    match outcome {
        Some(Err(libc::ENOENT)) | None | Some(Ok(())) => Ok(()),
        Some(Err(errno)) => Err(unavailable(
            "query nftables",
            std::io::Error::from_raw_os_error(errno),
        )),
    }
}

/// The attributes of each element a `NEWSETELEM` message (given whole) carries.
fn element_entries(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    let list = message.get(HEADERS..).and_then(|body| {
        NlasIterator::new(body)
            .flatten()
            .find(|nla| nla.kind() == ELEMENTS_ATTR)
    });
    list.into_iter()
        .flat_map(|l| NlasIterator::new(value_of(l)).flatten())
        .map(value_of)
}

/// An attribute's value, borrowed from the message rather than from the attribute's buffer.
fn value_of(nla: NlaBuffer<&[u8]>) -> &[u8] {
    let end = usize::from(nla.length());
    nla.into_inner()
        .get(NLA_HEADER_SIZE..end)
        .unwrap_or_default()
}

/// The key and expiry of one element's attributes (the time left read from the kernel's
/// expiration, rounded up to the second, from `now` on the timeout clock).
fn read_element(entry: &[u8], now: i64) -> Option<(IpAddr, Expiry)> {
    let mut key = None;
    let mut timed = false;
    let mut left_ms = None;
    for attribute in NlasIterator::new(entry).flatten() {
        match attribute.kind() {
            ELEM_KEY => {
                key = NlasIterator::new(attribute.value())
                    .flatten()
                    .find(|a| a.kind() == DATA_VALUE)
                    .and_then(|a| address(a.value()));
            }
            ELEM_TIMEOUT => timed = true,
            ELEM_EXPIRATION => left_ms = parse_u64_be(attribute.value()).ok(),
            _ => {}
        }
    }
    let expiry = match (timed, left_ms) {
        (true, Some(ms)) => {
            Expiry::At(now + i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX / 2))
        }
        (true, None) => Expiry::At(now + 1),
        (false, _) => Expiry::Never,
    };
    key.map(|addr| (addr, expiry))
}

/// Requests in flight at once in [`lookup`]: their answers (~100 bytes each) stay far below
/// the receive buffer.
const LOOKUPS_IN_FLIGHT: usize = 1024;

/// Whether the kernel holds each of `targets`, and until when: an address in its address set,
/// a network when its first address lies in an interval of the network set (the interval may
/// be a wider, merged one; its expiry is the one given). One `GETSETELEM` get per target, a
/// thousand in flight at a time: no dump, no listing, so sampling a few thousand elements of a
/// million-element set costs milliseconds.
pub(crate) fn lookup(
    layout: &Layout,
    targets: &[Target],
) -> Result<Vec<Option<Expiry>>, FirewallError> {
    let mut channel = Channel::open()?;
    let now = timeout_clock();
    let mut found = vec![None; targets.len()];
    for (chunk_index, chunk) in targets.chunks(LOOKUPS_IN_FLIGHT).enumerate() {
        let first_seq = channel.next_seq();
        for (i, target) in chunk.iter().enumerate() {
            let net = target.as_net();
            let request = NfTablesMessage::GetSetElement(SetElementMessage {
                attributes: vec![
                    SetElementList::Table(layout.table.clone()),
                    SetElementList::Set(
                        layout.set_for(target.is_ipv4(), matches!(target, Target::Net(_))),
                    ),
                    SetElementList::Other(netlink_packet_core::DefaultNla::new(
                        ELEMENTS_ATTR | netlink_packet_core::NLA_F_NESTED,
                        super::elements::key_list(net.network()),
                    )),
                ],
            });
            let seq = if i == 0 {
                first_seq
            } else {
                channel.next_seq()
            };
            channel.request(
                NetfilterMessage::new(header(NetfilterProtoFamily::Inet), request),
                0,
                seq,
            )?;
        }
        let base = chunk_index * LOOKUPS_IN_FLIGHT;
        let mut answered = 0;
        let mut failure = None;
        while answered < chunk.len() {
            channel.receive_raw(|data| {
                let message = NetlinkBuffer::new(data);
                let offset = message.sequence_number().wrapping_sub(first_seq) as usize;
                if offset >= chunk.len() {
                    return;
                }
                match message.message_type() {
                    NLMSG_ERROR => {
                        answered += 1;
                        let code = -error_code(data);
                        if code != 0 && code != libc::ENOENT {
                            failure = Some(code);
                        }
                    }
                    kind if kind == NEWSETELEM => {
                        answered += 1;
                        found[base + offset] = element_entries(data)
                            .next()
                            .and_then(|entry| read_element(entry, now))
                            .map(|(_, expiry)| expiry);
                    }
                    _ => {}
                }
            })?;
        }
        if let Some(errno) = failure {
            return Err(unavailable(
                "look elements up in nftables",
                std::io::Error::from_raw_os_error(errno),
            ));
        }
    }
    Ok(found)
}

fn address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The nftables ruleset generation of the calling thread's network namespace. The kernel adds
/// one for every committed transaction, whatever it changed and however many netlink messages
/// it carried (an aborted one changes nothing), so the difference between two readings counts
/// the transactions in between: a cheap check that a batch was one transaction, or that
/// someone else changed the ruleset. Read with a `GETGEN` request, which takes no lock.
pub fn ruleset_generation() -> Result<u32, FirewallError> {
    let mut channel = Channel::open()?;
    let request = NfTablesMessage::GetGen(GenMessage { attributes: vec![] });
    get_with(&mut channel, request, NetfilterProtoFamily::Unspec)?
        .as_ref()
        .and_then(super::generation_id)
        .ok_or_else(|| FirewallError::Parse("the kernel sent no ruleset generation".into()))
}

fn header(family: NetfilterProtoFamily) -> NetfilterHeader {
    NetfilterHeader::new(family, 0, 0)
}

/// One object by name: its message, or `None` when the kernel says ENOENT.
fn get(
    channel: &mut Channel,
    request: NfTablesMessage,
) -> Result<Option<NfTablesMessage>, FirewallError> {
    get_with(channel, request, NetfilterProtoFamily::Inet)
}

fn get_with(
    channel: &mut Channel,
    request: NfTablesMessage,
    family: NetfilterProtoFamily,
) -> Result<Option<NfTablesMessage>, FirewallError> {
    let seq = channel.next_seq();
    channel.request(
        NetfilterMessage::new(header(family), request),
        NLM_F_ACK,
        seq,
    )?;
    let mut object = None;
    let mut outcome = None;
    while outcome.is_none() {
        channel.receive(|message| {
            if message.header.sequence_number != seq {
                return;
            }
            match &message.payload {
                NetlinkPayload::Error(error) => {
                    outcome = Some(match error.code.map(|c| -c.get()) {
                        None => Ok(()),
                        Some(libc::ENOENT) => Err(None),
                        Some(errno) => Err(Some(errno)),
                    });
                }
                NetlinkPayload::InnerMessage(inner) => {
                    if let NetfilterMessageInner::NfTables(found) = &inner.inner {
                        object = Some(found.clone());
                    }
                }
                _ => {}
            }
        })?;
    }
    match outcome {
        Some(Ok(())) => Ok(object),
        Some(Err(None)) | None => Ok(None),
        Some(Err(Some(errno))) => Err(unavailable(
            "query nftables",
            std::io::Error::from_raw_os_error(errno),
        )),
    }
}

/// The messages of a filtered dump (empty when the object does not exist).
pub(super) fn dump(
    channel: &mut Channel,
    request: NfTablesMessage,
) -> Result<Vec<NfTablesMessage>, FirewallError> {
    let seq = channel.next_seq();
    channel.request(
        NetfilterMessage::new(header(NetfilterProtoFamily::Inet), request),
        NLM_F_DUMP,
        seq,
    )?;
    let mut replies = Vec::new();
    let mut outcome: Option<Result<(), i32>> = None;
    while outcome.is_none() {
        channel.receive(|message| {
            if message.header.sequence_number != seq {
                return;
            }
            match &message.payload {
                NetlinkPayload::Done(_) => outcome = Some(Ok(())),
                NetlinkPayload::Error(error) => {
                    outcome = Some(error.code.map_or(Ok(()), |c| Err(-c.get())));
                }
                NetlinkPayload::InnerMessage(inner) => {
                    if let NetfilterMessageInner::NfTables(found) = &inner.inner {
                        replies.push(found.clone());
                    }
                }
                _ => {}
            }
        })?;
    }
    match outcome {
        Some(Err(libc::ENOENT)) => Ok(Vec::new()),
        Some(Err(errno)) => Err(unavailable(
            "query nftables",
            std::io::Error::from_raw_os_error(errno),
        )),
        _ => Ok(replies),
    }
}

//! The ban path's fast lane: a batch that only adds or removes single addresses (what a ban, an
//! unban or an expiry is) goes to the kernel as one nfnetlink transaction built here —
//! `NEWSETELEM`/`DELSETELEM` between `BATCH_BEGIN` and `BATCH_END` — instead of through nft.
//!
//! Why: before every command, libnftables refreshes its cache, and that includes every element
//! of our interval sets (nft needs them to merge ranges, even for an add to a hash set). With
//! 10,000 network bans loaded, one address ban took 33 ms that way, with 100,000 1.7 s; here it
//! costs the same ~0.1 ms whatever the sets hold, and the ban path never reads a set back.
//!
//! Anything else (networks, layout, listing, dry runs, large batches) goes to the wrapped
//! runner, as does any batch the fast lane could not apply: the kernel aborts a refused batch
//! whole, so the wrapped runner then either applies it or reports the refusal with nft's
//! message and the element that caused it.

use std::collections::HashSet;
use std::net::IpAddr;

use tracing::{debug, warn};

use super::batch::{Command, Commands, ElemVal};
use super::netlink::{
    Messages, NFNL_SUBSYS_NFTABLES, NFPROTO_INET, NLM_F_ACK, NLM_F_CREATE, NLMSG_ERROR, Socket,
    nft_type,
};
use super::runner::Runner;
use crate::FirewallError;

const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_DATA_VALUE: u16 = 1;

/// The most elements the fast lane takes in one batch (~40 bytes each: one datagram well under
/// the socket's send buffer). Bursts of bans are far smaller; restores go through nft.
const FAST_ELEMENTS: usize = 1024;

/// Wraps a runner; see the module docs.
pub(crate) struct FastRunner {
    inner: Box<dyn Runner>,
    /// Opened by the first batch, in that thread's network namespace (like libnftables'
    /// context), and kept; dropped after any failure so that the next batch starts afresh.
    socket: Option<Socket>,
    /// The lane's unavailability was logged at warn (once).
    warned: bool,
}

impl FastRunner {
    pub(crate) fn new(inner: Box<dyn Runner>) -> FastRunner {
        FastRunner {
            warned: false,
            inner,
            socket: None,
        }
    }
}

impl Runner for FastRunner {
    fn run(&mut self, commands: &Commands, dry_run: bool) -> Result<String, FirewallError> {
        if !dry_run && eligible(commands) {
            let result = match self.socket.take() {
                Some(socket) => Ok(socket),
                None => Socket::open(),
            }
            .and_then(|mut socket| apply(&mut socket, commands).map(|()| socket));
            match result {
                Ok(socket) => {
                    self.socket = Some(socket);
                    return Ok(String::new());
                }
                // The lane itself does not work here (no netlink socket, a kernel that does not
                // answer): said once, loud enough to explain slower bans.
                Err(error @ FirewallError::Unavailable(_)) => {
                    if !std::mem::replace(&mut self.warned, true) {
                        warn!(%error, "the nfnetlink fast lane is unavailable; single-address bans go through nft instead (slower)");
                    } else {
                        debug!(%error, "nfnetlink fast lane unavailable; through nft");
                    }
                }
                // The kernel refused the batch: nft applies what it can or names the element.
                Err(error) => {
                    debug!(%error, "nfnetlink did not apply the batch; sending it through nft")
                }
            }
        }
        self.inner.run(commands, dry_run)
    }

    fn describe(&self) -> String {
        format!(
            "{}; single-address changes over nfnetlink",
            self.inner.describe()
        )
    }
}

/// Only element commands of single addresses, and not too many.
fn eligible(commands: &Commands) -> bool {
    let count = commands.element_count();
    count > 0
        && count <= FAST_ELEMENTS
        && commands.list.iter().all(|command| match command {
            Command::Elements { elems, .. } => {
                elems.iter().all(|e| matches!(e.val, ElemVal::Addr(_)))
            }
            Command::Object { .. } => false,
        })
}

/// Sends the batch as one transaction and waits for the kernel's verdict on every message.
/// Answers to earlier batches on the same socket are told apart by their sequence numbers.
fn apply(socket: &mut Socket, commands: &Commands) -> Result<(), FirewallError> {
    let mut messages = Messages::default();
    let begin = socket.next_seq();
    messages.begin(NFNL_MSG_BATCH_BEGIN, 0, begin, 0, NFNL_SUBSYS_NFTABLES);
    messages.end();
    let mut pending = HashSet::new();
    for command in &commands.list {
        let Command::Elements { delete, set, elems } = command else {
            continue;
        };
        let seq = socket.next_seq();
        pending.insert(seq);
        let (kind, flags) = if *delete {
            (NFT_MSG_DELSETELEM, NLM_F_ACK)
        } else {
            (NFT_MSG_NEWSETELEM, NLM_F_ACK | NLM_F_CREATE)
        };
        messages.begin(nft_type(kind), flags, seq, NFPROTO_INET, 0);
        messages.attr_str(NFTA_SET_ELEM_LIST_TABLE, &commands.table);
        messages.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        messages.nest_begin(NFTA_SET_ELEM_LIST_ELEMENTS);
        for elem in elems {
            let ElemVal::Addr(addr) = elem.val else {
                continue;
            };
            messages.nest_begin(NFTA_LIST_ELEM);
            messages.nest_begin(NFTA_SET_ELEM_KEY);
            match addr {
                IpAddr::V4(a) => messages.attr(NFTA_DATA_VALUE, &a.octets()),
                IpAddr::V6(a) => messages.attr(NFTA_DATA_VALUE, &a.octets()),
            }
            messages.nest_end();
            if let Some(secs) = elem.timeout {
                // Milliseconds, big-endian.
                let ms = u64::from(secs) * 1000;
                messages.attr(NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes());
            }
            messages.nest_end();
        }
        messages.nest_end();
        messages.end();
    }
    let end = socket.next_seq();
    messages.begin(NFNL_MSG_BATCH_END, 0, end, 0, NFNL_SUBSYS_NFTABLES);
    messages.end();
    socket.send(&messages)?;

    // One acknowledgement per message (the kernel delivers them once the batch is done), or
    // one error pointing at the batch header when the commit itself failed.
    let mut refused = None;
    while !pending.is_empty() {
        for reply in socket.receive()? {
            if reply.kind != NLMSG_ERROR {
                continue;
            }
            let code = reply.error_code();
            if reply.seq == begin && code != 0 {
                return Err(refusal(code));
            }
            if pending.remove(&reply.seq) && code != 0 && refused.is_none() {
                refused = Some(code);
            }
        }
    }
    match refused {
        None => Ok(()),
        Some(code) => Err(refusal(code)),
    }
}

fn refusal(code: i32) -> FirewallError {
    FirewallError::Refused {
        message: std::io::Error::from_raw_os_error(-code).to_string(),
        element: None,
    }
}

#[cfg(test)]
mod tests {
    use crmonban_core::Target;

    use super::*;
    use crate::nft::batch::BatchBuilder;
    use crate::{Element, Layout};

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    #[test]
    fn only_small_batches_of_single_addresses_take_the_lane() {
        let layout = Layout::default();
        let mut singles = BatchBuilder::new(&layout);
        singles.add_elements("blocked_v4", &[Element::permanent(t("192.0.2.7"))], 0);
        singles.remove_elements("blocked_v6", &[t("2001:db8::1")]);
        assert!(eligible(&singles.finish()));

        let mut nets = BatchBuilder::new(&layout);
        nets.add_elements("blocked_v4_net", &[Element::permanent(t("10.0.0.0/8"))], 0);
        assert!(!eligible(&nets.finish()));
        let mut layout_change = BatchBuilder::new(&layout);
        layout_change.flush_set("blocked_v4_net");
        assert!(!eligible(&layout_change.finish()));
        assert!(!eligible(&BatchBuilder::new(&layout).finish()));
        let many: Vec<Element> = (0..=FAST_ELEMENTS as u32)
            .map(|i| Element::permanent(Target::from(std::net::Ipv4Addr::from(i + 1))))
            .collect();
        let mut bulk = BatchBuilder::new(&layout);
        bulk.add_elements("blocked_v4", &many, 0);
        assert!(!eligible(&bulk.finish()));
    }

    #[test]
    fn root_the_lane_applies_adds_timeouts_and_tolerant_removals() {
        let ns = crmonban_testutil::NetNs::new("fw-fast");
        ns.nft(&["add", "table", "inet", "crmonban"]);
        for (set, kind) in [("blocked_v4", "ipv4_addr"), ("blocked_v6", "ipv6_addr")] {
            let spec = format!("{{ type {kind}; flags timeout; }}");
            ns.nft(&["add", "set", "inet", "crmonban", set, &spec]);
        }
        let layout = Layout::default();
        let now = 1_000;
        let mut batch = BatchBuilder::new(&layout);
        batch.add_elements(
            "blocked_v4",
            &[
                Element::until(t("192.0.2.7"), Some(now + 3600)),
                Element::permanent(t("192.0.2.8")),
            ],
            now,
        );
        batch.add_elements("blocked_v6", &[Element::permanent(t("2001:db8::7"))], now);
        ns.run(|| apply(&mut Socket::open().unwrap(), &batch.finish()))
            .expect("the lane applies the batch");
        let mut batch = BatchBuilder::new(&layout);
        // Removing what is there and what is not, in one transaction.
        batch.remove_elements("blocked_v4", &[t("192.0.2.8"), t("192.0.2.99")]);
        ns.run(|| apply(&mut Socket::open().unwrap(), &batch.finish()))
            .expect("tolerant removal");
        let v4 = ns.nft(&["list", "set", "inet", "crmonban", "blocked_v4"]);
        assert!(v4.contains("192.0.2.7 timeout 1h"), "{v4}");
        assert!(
            !v4.contains("192.0.2.8") && !v4.contains("192.0.2.99"),
            "{v4}"
        );
        let v6 = ns.nft(&["list", "set", "inet", "crmonban", "blocked_v6"]);
        assert!(v6.contains("2001:db8::7"), "{v6}");

        // A set that is not there: the kernel refuses and nothing of the batch stays.
        let mut batch = BatchBuilder::new(&layout);
        batch.add_elements("blocked_v4", &[Element::permanent(t("198.51.100.1"))], now);
        batch.add_elements("no_such_set", &[Element::permanent(t("198.51.100.2"))], now);
        let error = ns
            .run(|| apply(&mut Socket::open().unwrap(), &batch.finish()))
            .unwrap_err();
        assert!(
            error.to_string().contains("No such file or directory"),
            "{error}"
        );
        let v4 = ns.nft(&["list", "set", "inet", "crmonban", "blocked_v4"]);
        assert!(!v4.contains("198.51.100.1"), "half-applied: {v4}");
    }
}

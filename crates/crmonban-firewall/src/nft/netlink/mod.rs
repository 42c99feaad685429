//! The netlink path: every change to our table as one nf_tables transaction sent over a
//! `NETLINK_NETFILTER` socket of the calling thread's network namespace — the socket from
//! `netlink-sys`, the framing from `netlink-packet-core`, the nf_tables messages from
//! `netlink-packet-netfilter` (see `encode`) — plus the read-only requests of `probe`.
//!
//! Why not through nft: before every command libnftables refreshes its cache, which includes
//! every element of our interval sets, and parses and re-encodes every element of a batch; a
//! million elements took as long through nft as the kernel takes several times over. Here a
//! batch is encoded once and handed to the kernel in one `sendmsg`, whose send buffer is sized
//! to the batch (`SO_SNDBUFFORCE`).
//!
//! Answers: the messages ask for no acknowledgement, so the kernel reports only errors — all of
//! them, each pointing (extended ack) at the attribute it refused, which names the element. A
//! `GETGEN` request sent after the batch is answered after every error of the batch, and tells
//! the ruleset generation the batch left.

pub(crate) mod counters;
mod elements;
pub(crate) mod encode;
pub(crate) mod probe;

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkMessage,
    NetlinkPayload, NlaBuffer, NlasIterator, parse_i32, parse_u32,
};
use netlink_packet_netfilter::nftables::{GenAttribute, GenMessage, NfTablesMessage};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use tracing::debug;

use super::batch::{Command, Commands};
use crate::FirewallError;
use elements::attributes_of;
use encode::{Batch, Carried};

const NETLINK_NETFILTER: isize = 12;
/// `NLM_F_ACK_TLVS` on an error: extended-ack attributes follow the echoed header.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// Extended-ack attributes: the kernel's message, and the offset of the refused attribute.
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
/// Message header and `nfgenmsg` before an nf_tables message's attributes.
const HEADERS: usize = 16 + 4;
/// `NFTA_SET_ELEM_LIST_ELEMENTS`.
pub(crate) const ELEMENTS_ATTR: u16 = 3;
/// The kernel answers a request at once or not at all; never hang the firewall thread.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Room for the kernel's errors about a large batch (each a few hundred bytes of buffer).
const RECEIVE_BUFFER: usize = 8 << 20;

/// `cannot {what}: {e}`, with the hint a missing privilege needs.
pub(crate) fn unavailable(what: &str, e: io::Error) -> FirewallError {
    if e.raw_os_error() == Some(libc::EPERM) {
        FirewallError::Unavailable(format!(
            "cannot {what}: {e} (crmonban must run as root or with CAP_NET_ADMIN)"
        ))
    } else {
        FirewallError::Unavailable(format!("cannot {what}: {e}"))
    }
}

/// One refusal of a batch by the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The errno, positive.
    pub(crate) errno: i32,
    /// The kernel's extended-ack message, when it gave one.
    pub(crate) message: Option<String>,
    /// The element refused, as (command index, element index), when the kernel pointed at one.
    pub(crate) element: Option<(usize, usize)>,
}

impl Refused {
    /// As a [`FirewallError`], the element written out from `commands`.
    pub(crate) fn to_error(&self, commands: &Commands) -> FirewallError {
        let reason = io::Error::from_raw_os_error(self.errno).to_string();
        let message = match &self.message {
            Some(text) => format!("{reason}: {text}"),
            None => reason,
        };
        if self.errno == libc::ENOENT && self.element.is_none() {
            return FirewallError::LayoutMissing(message);
        }
        if self.errno == libc::EPERM {
            return unavailable("change nftables", io::Error::from_raw_os_error(libc::EPERM));
        }
        let element = self
            .element
            .and_then(|(index, elem)| match &commands.list[index] {
                Command::Elements { elems, .. } => elems.get(elem).map(|e| e.value_string()),
                Command::Object(_) => None,
            });
        FirewallError::Refused { message, element }
    }
}

/// A `NETLINK_NETFILTER` socket; closed on drop.
pub(crate) struct Channel {
    socket: Socket,
    seq: u32,
    /// The send buffer asked for so far (grown for large batches).
    send_buffer: usize,
    buf: Vec<u8>,
}

impl Channel {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Channel, FirewallError> {
        let open = || -> io::Result<Channel> {
            let mut socket = Socket::new(NETLINK_NETFILTER)?;
            socket.bind_auto()?;
            socket.set_ext_ack(true)?;
            // Errors echo only the refused message's header, not the whole message.
            socket.set_cap_ack(true)?;
            setsockopt(
                &socket.as_fd(),
                sockopt::ReceiveTimeout,
                &TimeVal::new(ANSWER_TIMEOUT.as_secs() as _, 0),
            )?;
            // Without CAP_NET_ADMIN the default stays; it holds the errors of small batches.
            let _ = setsockopt(&socket.as_fd(), sockopt::RcvBufForce, &RECEIVE_BUFFER);
            Ok(Channel {
                socket,
                seq: std::process::id().wrapping_mul(7919),
                send_buffer: 0,
                buf: Vec::with_capacity(64 * 1024),
            })
        };
        open().map_err(|e| unavailable("open a netfilter socket", e))
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `commands` as one transaction. `Ok(Ok(generation))`: committed, leaving the
    /// ruleset at `generation`; `Ok(Err(refusals))`: the kernel refused it (nothing of it
    /// stays); `Err`: the socket failed. `None` when the batch has no netlink form.
    pub(crate) fn transact(
        &mut self,
        commands: &Commands,
    ) -> Option<Result<Result<u32, Vec<Refused>>, FirewallError>> {
        let started = std::time::Instant::now();
        let batch = encode::encode(commands, self.seq.wrapping_add(1))?;
        let encoded = started.elapsed();
        self.seq = batch.next_seq.wrapping_sub(1);
        let outcome = self
            .send_batch(&batch)
            .and_then(|()| self.verdict(commands, &batch));
        debug!(
            bytes = batch.buf.len(),
            messages = batch.sent.len(),
            ?encoded,
            total = ?started.elapsed(),
            "nftables batch over netlink"
        );
        Some(outcome)
    }

    fn send_batch(&mut self, batch: &Batch) -> Result<(), FirewallError> {
        // The kernel refuses a datagram larger than the send buffer (less 32 bytes).
        let wanted = batch.buf.len() + 4096;
        if wanted > self.send_buffer {
            // Without CAP_NET_ADMIN the default (~200 KiB) still takes small batches.
            if let Err(e) = setsockopt(&self.socket.as_fd(), sockopt::SndBufForce, &wanted)
                && batch.buf.len() > 200_000
            {
                return Err(unavailable(
                    "size the netlink send buffer for a large batch",
                    e.into(),
                ));
            }
            self.send_buffer = wanted;
        }
        let kernel = SocketAddr::new(0, 0);
        self.socket
            .send_to(&batch.buf, &kernel, 0)
            .map_err(|e| unavailable("send an nftables batch", e))?;
        Ok(())
    }

    /// Reads the kernel's answers to `batch`, then to a `GETGEN` sent after it.
    fn verdict(
        &mut self,
        commands: &Commands,
        batch: &Batch,
    ) -> Result<Result<u32, Vec<Refused>>, FirewallError> {
        let gen_seq = self.send_getgen()?;
        let mut refused = Vec::new();
        let mut generation = None;
        let last = batch.next_seq.wrapping_sub(1);
        let in_batch = |seq: u32| seq.wrapping_sub(batch.begin) <= last.wrapping_sub(batch.begin);
        loop {
            let mut done = false;
            self.receive(|message| {
                let seq = message.header.sequence_number;
                match &message.payload {
                    NetlinkPayload::Error(error) if in_batch(seq) && error.code.is_some() => {
                        refused.push(refusal(commands, batch, seq, message.header.flags, error));
                    }
                    NetlinkPayload::Error(_) if in_batch(seq) => {}
                    NetlinkPayload::Error(error) if seq == gen_seq => {
                        if let Some(code) = error.code {
                            generation = Some(Err(code.get()));
                        }
                        done = true;
                    }
                    NetlinkPayload::InnerMessage(inner) if seq == gen_seq => {
                        if let NetfilterMessageInner::NfTables(message) = &inner.inner
                            && let Some(id) = generation_id(message)
                        {
                            generation = Some(Ok(id));
                        }
                    }
                    _ => {}
                }
            })?;
            if done {
                break;
            }
        }
        if !refused.is_empty() {
            return Ok(Err(refused));
        }
        match generation {
            Some(Ok(id)) => Ok(Ok(id)),
            Some(Err(code)) => Err(unavailable(
                "read the ruleset generation",
                io::Error::from_raw_os_error(-code),
            )),
            None => Err(FirewallError::Parse(
                "the kernel sent no ruleset generation".into(),
            )),
        }
    }

    fn send_getgen(&mut self) -> Result<u32, FirewallError> {
        let seq = self.next_seq();
        let message = NetfilterMessage::new(
            NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, 0),
            NfTablesMessage::GetGen(GenMessage { attributes: vec![] }),
        );
        self.request(message, NLM_F_ACK, seq)?;
        Ok(seq)
    }

    /// Sends one request message (not a batch).
    pub(crate) fn request(
        &mut self,
        message: NetfilterMessage,
        flags: u16,
        seq: u32,
    ) -> Result<(), FirewallError> {
        let mut message = NetlinkMessage::from(message);
        message.header.flags = NLM_F_REQUEST | flags;
        message.header.sequence_number = seq;
        message.finalize();
        let mut buf = vec![0; message.buffer_len()];
        message.serialize(&mut buf);
        self.socket
            .send_to(&buf, &SocketAddr::new(0, 0), 0)
            .map_err(|e| unavailable("send a netfilter request", e))?;
        Ok(())
    }

    /// Receives one datagram and hands each message in it to `each`, parsed. Messages that do
    /// not parse are skipped (they are not answers to us), but for errors and dump ends,
    /// which are answers whatever they echo.
    pub(crate) fn receive(
        &mut self,
        mut each: impl FnMut(&NetlinkMessage<NetfilterMessage>),
    ) -> Result<(), FirewallError> {
        self.receive_raw(|data| {
            if let Ok(message) = NetlinkMessage::<NetfilterMessage>::deserialize(data) {
                each(&message);
            } else {
                let kind = NetlinkBuffer::new(data).message_type();
                if kind == NLMSG_DONE || kind == NLMSG_ERROR {
                    each(&fallback_message(data));
                }
            }
        })
    }

    /// Receives one datagram and hands each whole message in it to `each`, as bytes.
    pub(crate) fn receive_raw(&mut self, mut each: impl FnMut(&[u8])) -> Result<(), FirewallError> {
        self.buf.clear();
        if self.buf.capacity() < 64 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = self
            .socket
            .recv(&mut self.buf, 0)
            .map_err(|e| unavailable("read a netfilter answer", e))?;
        let mut data = &self.buf[..n.min(self.buf.len())];
        while let Ok(buffer) = NetlinkBuffer::new_checked(data) {
            let len = (buffer.length() as usize).min(data.len());
            each(&data[..len]);
            data = &data[len.next_multiple_of(4).min(data.len())..];
        }
        Ok(())
    }
}

/// The (negative) errno of an `NLMSG_ERROR` message given whole; `-EIO` when it is cut short.
pub(crate) fn error_code(message: &[u8]) -> i32 {
    message
        .get(16..20)
        .and_then(|code| parse_i32(code).ok())
        .unwrap_or(-libc::EIO)
}

/// A message the crate could not read, as an error (or done) with its header kept.
fn fallback_message(data: &[u8]) -> NetlinkMessage<NetfilterMessage> {
    let buffer = NetlinkBuffer::new(data);
    let mut error = netlink_packet_core::ErrorMessage::default();
    if buffer.message_type() == NLMSG_ERROR {
        error.code = std::num::NonZeroI32::new(error_code(data));
    }
    let mut message = NetlinkMessage::new(
        netlink_packet_core::NetlinkHeader::default(),
        NetlinkPayload::Error(error),
    );
    message.header.sequence_number = buffer.sequence_number();
    message.header.message_type = buffer.message_type();
    message
}

fn generation_id(message: &NfTablesMessage) -> Option<u32> {
    match message {
        NfTablesMessage::NewGen(message) => message.attributes.iter().find_map(|a| match a {
            GenAttribute::Id(id) => Some(*id),
            _ => None,
        }),
        _ => None,
    }
}

/// What the kernel said about message `seq` of `batch`.
fn refusal(
    commands: &Commands,
    batch: &Batch,
    seq: u32,
    flags: u16,
    error: &netlink_packet_core::ErrorMessage,
) -> Refused {
    let errno = -error.raw_code();
    let (mut message, mut offset) = (None, None);
    // With NETLINK_CAP_ACK the echo is the refused message's header only (16 bytes).
    if flags & NLM_F_ACK_TLVS != 0 {
        for nla in NlasIterator::new(error.header.get(16..).unwrap_or_default()).flatten() {
            match nla.kind() {
                NLMSGERR_ATTR_MSG => {
                    let text = String::from_utf8_lossy(nla.value());
                    message = Some(text.trim_end_matches('\0').to_owned());
                }
                NLMSGERR_ATTR_OFFS => offset = parse_u32(nla.value()).ok(),
                _ => {}
            }
        }
    }
    let element = batch
        .sent
        .iter()
        .find(|sent| sent.seq == seq)
        .zip(offset)
        .and_then(|(sent, offset)| element_at(commands, batch, sent, offset as usize));
    Refused {
        errno,
        message,
        element,
    }
}

/// The element whose attribute lies at `offset` of message `sent`, as (command, element).
fn element_at(
    commands: &Commands,
    batch: &Batch,
    sent: &encode::Sent,
    offset: usize,
) -> Option<(usize, usize)> {
    let Carried::Elements { index, elems } = &sent.carried else {
        return None;
    };
    let message = batch.buf.get(sent.at.clone())?;
    // The elements attribute, then the list entry the offset falls in.
    let mut at = HEADERS;
    let mut entry = None;
    for nla in NlasIterator::new(message.get(HEADERS..)?) {
        let nla = nla.ok()?;
        if nla.kind() == ELEMENTS_ATTR {
            entry = entry_at(nla, at + 4, offset);
            break;
        }
        at += (nla.length() as usize).next_multiple_of(4);
    }
    // Entries to elements: an interval is two entries.
    let Command::Elements { elems: all, .. } = &commands.list[*index] else {
        return None;
    };
    let mut first_entry = 0;
    for k in elems.clone() {
        let count = attributes_of(all.get(k)?);
        if entry? < first_entry + count {
            return Some((*index, k));
        }
        first_entry += count;
    }
    None
}

/// Which list entry of an elements attribute (its entries starting at `start`) holds `offset`.
fn entry_at(nla: NlaBuffer<&[u8]>, start: usize, offset: usize) -> Option<usize> {
    let mut at = start;
    for (k, entry) in NlasIterator::new(nla.value()).enumerate() {
        let len = entry.ok()?.length() as usize;
        if offset < at + len {
            return (offset >= at).then_some(k);
        }
        at += len.next_multiple_of(4);
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crmonban_core::Target;

    use super::*;
    use crate::nft::batch::BatchBuilder;
    use crate::{Element, Layout};

    /// The kernel's answer to a `NEWSETELEM` whose 4th element it refused (a timeout on a set
    /// without the timeout flag), as captured with strace from kernel 6.18: `NLMSG_ERROR`,
    /// flags `NLM_F_CAPPED | NLM_F_ACK_TLVS`, errno -EINVAL, the echoed 16-byte header of the
    /// 148-byte request, and `NLMSGERR_ATTR_OFFS` = 104. Only the sequence numbers are ours.
    fn captured_refusal(seq: u32) -> Vec<u8> {
        let mut answer = Vec::new();
        answer.extend_from_slice(&44u32.to_ne_bytes());
        answer.extend_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
        answer.extend_from_slice(&0x300u16.to_ne_bytes()); // CAPPED | ACK_TLVS
        answer.extend_from_slice(&seq.to_ne_bytes());
        answer.extend_from_slice(&29_091u32.to_ne_bytes());
        answer.extend_from_slice(&(-22i32).to_ne_bytes());
        answer.extend_from_slice(&148u32.to_ne_bytes());
        answer.extend_from_slice(&0x0a0cu16.to_ne_bytes());
        answer.extend_from_slice(&0x0401u16.to_ne_bytes());
        answer.extend_from_slice(&seq.to_ne_bytes());
        answer.extend_from_slice(&0u32.to_ne_bytes());
        answer.extend_from_slice(&8u16.to_ne_bytes());
        answer.extend_from_slice(&NLMSGERR_ATTR_OFFS.to_ne_bytes());
        answer.extend_from_slice(&104u32.to_ne_bytes());
        answer
    }

    #[test]
    fn a_captured_extended_ack_names_the_refused_element() {
        let layout = Layout::default();
        let mut batch = BatchBuilder::new(&layout);
        let elements: Vec<Element> = (1..=5)
            .map(|last| {
                let target = Target::parse(&format!("192.0.2.{last}")).unwrap();
                if last == 4 {
                    Element::timed(target, Duration::from_secs(60))
                } else {
                    Element::permanent(target)
                }
            })
            .collect();
        batch.add_elements("blocked_v4", &elements, 1_000);
        let commands = batch.finish();
        let encoded = encode::encode(&commands, 7).unwrap();
        let sent = &encoded.sent[0];
        assert_eq!(
            sent.at.len(),
            148,
            "the request the kernel echoed was 148 bytes"
        );

        let answer = captured_refusal(sent.seq);
        let message = NetlinkMessage::<NetfilterMessage>::deserialize(&answer).unwrap();
        let NetlinkPayload::Error(error) = &message.payload else {
            panic!("{message:?}");
        };
        let refused = refusal(&commands, &encoded, sent.seq, message.header.flags, error);
        assert_eq!(
            refused,
            Refused {
                errno: libc::EINVAL,
                message: None,
                element: Some((0, 3)),
            }
        );
        let error = refused.to_error(&commands);
        assert!(
            matches!(&error, FirewallError::Refused { element: Some(e), .. } if e == "192.0.2.4"),
            "{error:?}"
        );
        // An offset outside any element (the set name) names none.
        let mut elsewhere = answer.clone();
        let at = elsewhere.len() - 4;
        elsewhere[at..].copy_from_slice(&40u32.to_ne_bytes());
        let message = NetlinkMessage::<NetfilterMessage>::deserialize(&elsewhere).unwrap();
        let NetlinkPayload::Error(error) = &message.payload else {
            panic!("{message:?}");
        };
        let refused = refusal(&commands, &encoded, sent.seq, message.header.flags, error);
        assert_eq!(refused.element, None);
    }
}

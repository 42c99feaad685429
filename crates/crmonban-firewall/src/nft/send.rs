//! How one batch reaches the kernel: over netlink while that path is in use, else (or when it
//! turns out unusable, said once at warn with the reason, or for a listing) as JSON; and what a
//! refusal becomes: the first refusal for a change that is all or nothing, a retry without the
//! refused elements for a restore.

use tracing::warn;

use super::NftBackend;
use super::batch::{BatchBuilder, Command, Commands};
use super::blame;
use super::netlink::{Channel, Refused};
use super::runner::Runner;
use crate::{ApplyReport, FirewallError};

/// How `ENFILE` (a set at its size) reads in nft's and the kernel's messages.
const SET_FULL: &str = "Too many open files in system";

/// Refusals of one replace-all before it gives up (each drops the elements the kernel named).
const MAX_REFUSAL_ROUNDS: usize = 32;

impl NftBackend {
    /// Sends one transaction: over netlink when that path is in use, else (or when it turns
    /// out unusable, or for a listing) as JSON. A kernel refusal over netlink comes back as
    /// the kernel's own list of what it refused.
    pub(super) fn send(&mut self, commands: Commands) -> Result<String, Sent> {
        if let Some(slot) = &mut self.netlink
            && !commands.is_listing()
        {
            let opened = match slot.take() {
                Some(channel) => Ok(channel),
                None => Channel::open(),
            };
            let outcome = opened.map(|mut channel| (channel.transact(&commands), channel));
            match outcome {
                Ok((Some(Ok(Ok(_generation))), channel)) => {
                    *slot = Some(channel);
                    return Ok(String::new());
                }
                Ok((Some(Ok(Err(refused))), channel)) => {
                    *slot = Some(channel);
                    return Err(Sent::Refused(Box::new(commands), refused));
                }
                Ok((Some(Err(error)), _)) | Err(error) => match error {
                    // The path itself does not work here: said once, with the reason.
                    FirewallError::Unavailable(reason) => {
                        warn!(%reason, fallback = %self.runner.describe(), "the netlink path to nftables is unavailable; changes go through nftables JSON instead");
                        self.netlink = None;
                    }
                    other => return Err(Sent::Failed(other)),
                },
                Ok((None, channel)) => *slot = Some(channel),
            }
        }
        run(&mut *self.runner, commands).map_err(Sent::Failed)
    }

    /// [`NftBackend::send`] for callers that take the first refusal as the answer.
    pub(super) fn send_all_or_nothing(
        &mut self,
        batch: BatchBuilder,
    ) -> Result<String, FirewallError> {
        self.send(batch.finish()).map_err(Sent::into_error)
    }

    /// Sends `commands`; when the kernel refuses elements it names, sends the rest without
    /// them (up to [`MAX_REFUSAL_ROUNDS`] times) and lists them in `report.refused`.
    pub(super) fn send_leaving_out_refused(
        &mut self,
        mut commands: Commands,
        report: &mut ApplyReport,
    ) -> Result<(), FirewallError> {
        for round in 0.. {
            let (mut refused_commands, refused) = match self.send(commands) {
                Ok(_) => return Ok(()),
                Err(Sent::Refused(c, refused))
                    if round < MAX_REFUSAL_ROUNDS
                        && refused.iter().all(|r| r.element.is_some()) =>
                {
                    (c, refused)
                }
                Err(other) => return Err(other.into_error()),
            };
            let mut named: Vec<((usize, usize), String)> = refused
                .iter()
                .filter_map(|r| {
                    let reason = r.to_error(&refused_commands).to_string();
                    r.element.map(|at| (at, reason))
                })
                .collect();
            // From the last, so that the indices of the others stay right.
            named.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
            named.dedup_by(|a, b| a.0 == b.0);
            for ((index, elem), reason) in named {
                if let Command::Elements { elems, .. } = &mut refused_commands.list[index] {
                    let left_out = elems.remove(elem);
                    warn!(element = %left_out.value_string(), %reason, "the kernel refused an element; applying the rest without it");
                    report.added = report.added.saturating_sub(1);
                    report.refused.push((left_out.value_string(), reason));
                }
            }
            commands = *refused_commands;
        }
        unreachable!("the loop returns")
    }
}

/// Why [`NftBackend::send`] did not apply a batch.
pub(super) enum Sent {
    /// The kernel refused it over netlink: what it refused, each naming the element when it
    /// pointed at one.
    Refused(Box<Commands>, Vec<Refused>),
    /// Anything else (including a refusal on the JSON path).
    Failed(FirewallError),
}

impl Sent {
    /// The kernel refused the batch because a set is at its size (`ENFILE`): over netlink by
    /// its errno, on the JSON path by the words nft passes on.
    pub(super) fn is_set_full(&self) -> bool {
        match self {
            Sent::Refused(_, refused) => refused.iter().any(|r| r.errno == libc::ENFILE),
            Sent::Failed(FirewallError::Refused { message, .. }) => message.contains(SET_FULL),
            Sent::Failed(_) => false,
        }
    }

    pub(super) fn into_error(self) -> FirewallError {
        match self {
            Sent::Refused(commands, refused) => refused.first().map_or_else(
                || FirewallError::Refused {
                    message: "refused".into(),
                    element: None,
                },
                |r| r.to_error(&commands),
            ),
            Sent::Failed(error) => error,
        }
    }
}

/// Sends one transaction as JSON. When nft refuses a batch that carries elements, the element
/// that caused it is found by dry runs over ever shorter prefixes of the batch (only on
/// failure, and only for batches small enough that this stays quick).
pub(super) fn run(runner: &mut dyn Runner, commands: Commands) -> Result<String, FirewallError> {
    match runner.run(&commands, false) {
        Err(FirewallError::Refused {
            message,
            element: _,
        }) => {
            let element = blame::find_refused_element(runner, &commands);
            Err(FirewallError::Refused { message, element })
        }
        other => other,
    }
}

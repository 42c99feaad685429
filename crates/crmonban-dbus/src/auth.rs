//! The daemon's own check of who may call a mutating member — the second line behind the bus
//! policy, which a misinstalled or edited policy file would otherwise leave as the only one.

use nix::unistd::{Group, Uid, User};
use zbus::Connection;
use zbus::fdo::DBusProxy;
use zbus::message::Header;
use zbus::proxy::CacheProperties;

use crate::{Error, is_mutating};

/// Besides uid 0, members of this group may call the [mutating](crate::MUTATING_MEMBERS)
/// members (the bus policy names the same group).
pub const PRIVILEGED_GROUP: &str = "crmonban";

/// Says whether the sender of the call `hdr` may call mutating members: its uid is 0, or it is
/// in group [`PRIVILEGED_GROUP`]. The bus reports the caller's uid and groups
/// (`GetConnectionCredentials`); when it does not report the groups, the user database decides
/// (primary group or listed member). No such group means root only.
///
/// The group lookup reads the user database synchronously (NSS); it is one small read per
/// mutating call.
pub async fn caller_may_mutate(conn: &Connection, hdr: &Header<'_>) -> zbus::Result<bool> {
    let sender = hdr.sender().ok_or(zbus::Error::MissingField)?;
    let credentials = DBusProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?
        .get_connection_credentials(sender.into())
        .await?;
    let uid = credentials
        .unix_user_id()
        .ok_or_else(|| zbus::Error::Failure(format!("the bus did not report {sender}'s uid")))?;
    Ok(uid_may_mutate(
        uid,
        credentials.unix_group_ids().map(Vec::as_slice),
    ))
}

/// Refuses the call `hdr` with `org.freedesktop.DBus.Error.AccessDenied` when its member is
/// [mutating](crate::MUTATING_MEMBERS) and the caller is neither uid 0 nor in group
/// [`PRIVILEGED_GROUP`]. Read-only members pass without a bus round trip. Call it first in every
/// method; it takes the member from the header, so it cannot be handed the wrong name. When the
/// caller cannot be identified, the call is refused (fail closed).
pub async fn authorize(conn: &Connection, hdr: &Header<'_>) -> Result<(), Error> {
    let member = hdr.member().map(|m| m.as_str()).unwrap_or_default();
    if !is_mutating(member) {
        return Ok(());
    }
    match caller_may_mutate(conn, hdr).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::access_denied(format!(
            "{member} needs uid 0 or group {PRIVILEGED_GROUP}"
        ))),
        Err(e) => Err(Error::access_denied(format!(
            "{member}: cannot identify the caller: {e}"
        ))),
    }
}

fn uid_may_mutate(uid: u32, groups: Option<&[u32]>) -> bool {
    if uid == 0 {
        return true;
    }
    let Ok(Some(group)) = Group::from_name(PRIVILEGED_GROUP) else {
        return false;
    };
    match groups {
        Some(groups) => groups.contains(&group.gid.as_raw()),
        None => match User::from_uid(Uid::from_raw(uid)) {
            Ok(Some(user)) => user.gid == group.gid || group.mem.contains(&user.name),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_zero_always_others_only_through_the_group() {
        assert!(uid_may_mutate(0, Some(&[])));
        assert!(uid_may_mutate(0, None));
        assert!(!uid_may_mutate(65534, Some(&[65534])));
        if let Ok(Some(group)) = Group::from_name(PRIVILEGED_GROUP) {
            assert!(uid_may_mutate(65534, Some(&[65534, group.gid.as_raw()])));
        }
    }
}

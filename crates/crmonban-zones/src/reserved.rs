//! The special-purpose ranges no host may ban, whatever the configuration says.

use std::sync::LazyLock;

use crmonban_core::Target;

/// A range that is never banned, with how to name what it holds.
pub(crate) struct Reserved {
    pub range: Target,
    /// "a loopback address", for an address inside the range.
    pub one: &'static str,
    /// "loopback addresses", for a network that overlaps it.
    pub many: &'static str,
}

pub(crate) static RESERVED: LazyLock<Vec<Reserved>> = LazyLock::new(|| {
    [
        ("127.0.0.0/8", "a loopback address", "loopback addresses"),
        ("::1", "a loopback address", "loopback addresses"),
        (
            "0.0.0.0",
            "the unspecified address",
            "the unspecified address",
        ),
        ("::", "the unspecified address", "the unspecified address"),
        (
            "169.254.0.0/16",
            "a link-local address",
            "link-local addresses",
        ),
        ("fe80::/10", "a link-local address", "link-local addresses"),
        ("224.0.0.0/4", "a multicast address", "multicast addresses"),
        ("ff00::/8", "a multicast address", "multicast addresses"),
        (
            "255.255.255.255",
            "the limited broadcast address",
            "the limited broadcast address",
        ),
    ]
    .into_iter()
    .map(|(range, one, many)| Reserved {
        range: Target::parse(range).expect("built-in reserved range"),
        one,
        many,
    })
    .collect()
});

/// Why `target` touches a reserved range, or `None`.
pub(crate) fn reserved_why(target: &Target) -> Option<String> {
    RESERVED.iter().find_map(|reserved| {
        if reserved.range.covers(target) {
            Some(match target {
                Target::Addr(_) => format!("{target} is {}", reserved.one),
                Target::Net(_) => {
                    format!("{target} lies in {} ({})", reserved.range, reserved.many)
                }
            })
        } else if target.covers(&reserved.range) {
            Some(format!(
                "{target} contains {} ({})",
                reserved.range, reserved.many
            ))
        } else {
            None
        }
    })
}

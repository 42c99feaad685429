//! The D-Bus specification's rules for the names a `daemon` whitelist source gives (bus name,
//! object path, interface, method) and for a bus address, checked when the configuration is
//! read so that a typo is reported with its line instead of failing every question later.
//! Written out here rather than borrowed from zbus: this crate stays free of the D-Bus stack.
//! Each check returns the message for the user, naming the value (shortened, escaped).

/// The longest bus, interface or member name the specification allows.
const MAX_NAME: usize = 255;
/// The longest object path or address taken (the specification sets no limit; config values
/// are bounded all the same).
const MAX_PATH: usize = 1024;

/// The value as shown in a message: quoted and escaped, cut short when long.
fn shown(text: &str) -> String {
    const SHOWN: usize = 64;
    if text.chars().count() <= SHOWN {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(SHOWN).collect();
        format!("{head:?}...")
    }
}

/// A well-known bus name such as `org.example.Trust`.
pub(super) fn well_known_name(text: &str) -> Result<(), String> {
    let problem = if text.starts_with(':') {
        Some(
            "it is a unique connection name, which changes whenever the service reconnects; \
             give the service's well-known name"
                .to_owned(),
        )
    } else {
        dotted_problem(text, true)
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(format!(
            "{} is not a valid bus name: {why} (e.g. \"org.example.Trust\")",
            shown(text)
        )),
    }
}

/// An interface name such as `org.example.Trust`.
pub(super) fn interface_name(text: &str) -> Result<(), String> {
    match dotted_problem(text, false) {
        None => Ok(()),
        Some(why) => Err(format!(
            "{} is not a valid interface name: {why} (e.g. \"org.example.Trust\")",
            shown(text)
        )),
    }
}

/// A member (method) name such as `IsTrusted`.
pub(super) fn member_name(text: &str) -> Result<(), String> {
    let problem = if text.len() > MAX_NAME {
        Some(format!("it is longer than {MAX_NAME} bytes"))
    } else if text.contains('.') {
        Some("it must not contain `.`: give the interface in `interface`".to_owned())
    } else {
        element_problem(text, false)
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(format!(
            "{} is not a valid method name: {why} (e.g. \"IsTrusted\")",
            shown(text)
        )),
    }
}

/// An object path such as `/` or `/org/example/Trust`.
pub(super) fn object_path(text: &str) -> Result<(), String> {
    let problem = if text.len() > MAX_PATH {
        Some(format!("it is longer than {MAX_PATH} bytes"))
    } else if !text.starts_with('/') {
        Some("it must start with `/`".to_owned())
    } else if text == "/" {
        None
    } else if text.ends_with('/') {
        Some("only the root path `/` may end with `/`".to_owned())
    } else {
        text[1..].split('/').find_map(|element| {
            if element.is_empty() {
                Some("it has an empty element (`//`)".to_owned())
            } else {
                bad_char(element, false)
            }
        })
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(format!(
            "{} is not a valid object path: {why} (e.g. \"/org/example/Trust\")",
            shown(text)
        )),
    }
}

/// A D-Bus address of one of the transports crmonban can connect to: `unix:path=...`,
/// `unix:abstract=...`, `tcp:host=...,port=...` or `nonce-tcp:...`.
pub(super) fn bus_address(text: &str) -> Result<(), String> {
    const TRANSPORTS: &[&str] = &["unix", "tcp", "nonce-tcp"];
    let problem = if text.len() > MAX_PATH {
        Some(format!("it is longer than {MAX_PATH} bytes"))
    } else if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it contains spaces or control characters".to_owned())
    } else if text.contains(';') {
        Some("give one address, not a `;`-separated list".to_owned())
    } else {
        match text.split_once(':') {
            None => Some("it has no `transport:` prefix".to_owned()),
            Some((transport, _)) if !TRANSPORTS.contains(&transport) => Some(format!(
                "the transport {} is not one crmonban connects over (unix, tcp, nonce-tcp)",
                shown(transport)
            )),
            Some((transport, options)) => options_problem(transport, options),
        }
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(format!(
            "{} is not a usable D-Bus address: {why} (e.g. \"unix:path=/run/example/bus\")",
            shown(text)
        )),
    }
}

fn options_problem(transport: &str, options: &str) -> Option<String> {
    let mut keys = Vec::new();
    for option in options.split(',').filter(|_| !options.is_empty()) {
        match option.split_once('=') {
            Some((key, value))
                if !key.is_empty()
                    && key.chars().all(|c| c.is_ascii_alphanumeric())
                    && !value.is_empty() =>
            {
                keys.push(key);
            }
            _ => return Some(format!("{} is not key=value", shown(option))),
        }
    }
    let has = |key: &str| keys.contains(&key);
    match transport {
        "unix" if has("path") == has("abstract") => {
            Some("a unix address needs exactly one of `path=` and `abstract=`".to_owned())
        }
        "tcp" | "nonce-tcp" if !(has("host") && has("port")) => {
            Some(format!("a {transport} address needs `host=` and `port=`"))
        }
        _ => None,
    }
}

/// What is wrong with a dot-separated name of at least two elements (bus or interface name).
fn dotted_problem(text: &str, hyphen: bool) -> Option<String> {
    if text.len() > MAX_NAME {
        return Some(format!("it is longer than {MAX_NAME} bytes"));
    }
    if !text.contains('.') {
        return Some("it needs at least two elements separated by `.`".to_owned());
    }
    text.split('.').find_map(|element| {
        if element.is_empty() {
            Some("it has an empty element (a `.` at either end, or two in a row)".to_owned())
        } else {
            element_problem(element, hyphen)
        }
    })
}

/// What is wrong with one element of a name: a leading digit, or a character out of
/// `[A-Za-z0-9_]` (plus `-` in bus names).
fn element_problem(element: &str, hyphen: bool) -> Option<String> {
    if element.is_empty() {
        return Some("it is empty".to_owned());
    }
    if element.starts_with(|c: char| c.is_ascii_digit()) {
        return Some(format!("{} starts with a digit", shown(element)));
    }
    bad_char(element, hyphen)
}

fn bad_char(element: &str, hyphen: bool) -> Option<String> {
    let bad = element
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || (hyphen && c == '-')))?;
    let allowed = if hyphen {
        "ASCII letters, digits, `_` and `-`"
    } else {
        "ASCII letters, digits and `_`"
    };
    Some(format!("it contains {bad:?}; allowed are {allowed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_specification() {
        for good in ["org.example.Trust", "a.b", "org.ex-ample._1", "A_.b9"] {
            assert_eq!(well_known_name(good), Ok(()), "{good}");
        }
        for bad in [
            "org",
            "org..x",
            ".org.x",
            "org.x.",
            "org.1x",
            "org.ex ample",
            ":1.42",
        ] {
            assert!(well_known_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            well_known_name(":1.42").unwrap_err(),
            "\":1.42\" is not a valid bus name: it is a unique connection name, which changes \
             whenever the service reconnects; give the service's well-known name \
             (e.g. \"org.example.Trust\")"
        );
        assert!(well_known_name(&format!("a.{}", "b".repeat(254))).is_err());
        assert_eq!(well_known_name(&format!("a.{}", "b".repeat(253))), Ok(()));

        assert_eq!(interface_name("org.example.Trust"), Ok(()));
        assert_eq!(
            interface_name("org.ex-ample").unwrap_err(),
            "\"org.ex-ample\" is not a valid interface name: it contains '-'; allowed are ASCII \
             letters, digits and `_` (e.g. \"org.example.Trust\")"
        );
        assert!(interface_name("Trust").is_err());

        assert_eq!(member_name("IsTrusted"), Ok(()));
        assert_eq!(member_name("_x9"), Ok(()));
        for bad in ["9x", "Is-Trusted", "org.example.IsTrusted", "Is Trusted"] {
            assert!(member_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn object_paths_follow_the_specification() {
        for good in ["/", "/org", "/org/example/Trust_1"] {
            assert_eq!(object_path(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "org",
            "/org/",
            "//",
            "/org//x",
            "/org/ex-ample",
            "/org.example",
        ] {
            assert!(object_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_are_one_usable_address() {
        for good in [
            "unix:path=/run/example/bus",
            "unix:path=/tmp/b,guid=0123456789abcdef0123456789abcdef",
            "unix:abstract=/tmp/dbus-x",
            "tcp:host=127.0.0.1,port=4000",
        ] {
            assert_eq!(bus_address(good), Ok(()), "{good}");
        }
        for bad in [
            "unix",
            "unix:",
            "unix:path=",
            "unix:path=/a,abstract=b",
            "tcp:host=localhost",
            "launchd:env=X",
            "unix:path=/a;unix:path=/b",
            "unix:path=/a b",
        ] {
            assert!(bus_address(bad).is_err(), "{bad}");
        }
        let long = format!("unix:path=/{}", "\u{1b}".repeat(100));
        let message = bus_address(&long).unwrap_err();
        assert!(message.starts_with("\"unix:path=/\\u{1b}"), "{message}");
        assert!(message.len() < 700, "{message}");
    }
}

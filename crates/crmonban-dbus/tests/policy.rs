//! The shipped bus policy (`dbus/org.crmonban.Daemon.conf`) and activation file
//! (`dbus/org.crmonban.Daemon.service`) agree with the contract in code: every mutating member
//! is allowed only to root and group crmonban, every read-only member to everyone, and only
//! root may own the name. The XML is read by a small parser that knows exactly the shapes the
//! file uses (`<policy ...>` blocks of self-closing `<allow .../>` / `<deny .../>` rules) and
//! fails on anything else, so a rule it does not understand cannot slip past the checks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crmonban_dbus::{BUS_NAME, INTERFACE, MUTATING_MEMBERS, READ_ONLY_MEMBERS};

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../dbus")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Which users a `<policy>` block applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Context {
    Default,
    User(String),
    Group(String),
}

#[derive(Clone, Debug)]
struct Rule {
    context: Context,
    allow: bool,
    attrs: BTreeMap<String, String>,
}

impl Rule {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    /// A rule about method calls to our interface's `member` on the daemon.
    fn is_call_to(&self, interface: &str, member: &str) -> bool {
        self.attr("send_destination") == Some(BUS_NAME)
            && self.attr("send_interface") == Some(interface)
            && self.attr("send_member") == Some(member)
            && self.attrs.len() == 3
    }
}

fn strip_comments(mut text: &str) -> String {
    let mut out = String::new();
    while let Some(start) = text.find("<!--") {
        out.push_str(&text[..start]);
        let end = text[start..].find("-->").expect("unterminated comment") + start + 3;
        text = &text[end..];
    }
    out.push_str(text);
    out
}

/// `a="x" b="y"` to a map; panics on anything else.
fn parse_attrs(mut text: &str) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    loop {
        text = text.trim_start();
        if text.is_empty() {
            return attrs;
        }
        let eq = text
            .find('=')
            .unwrap_or_else(|| panic!("attribute without '=': {text}"));
        let name = text[..eq].trim();
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad attribute name {name:?}"
        );
        let rest = text[eq + 1..].trim_start();
        let rest = rest
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("attribute {name} is not double-quoted"));
        let close = rest.find('"').expect("unterminated attribute value");
        let previous = attrs.insert(name.to_owned(), rest[..close].to_owned());
        assert!(previous.is_none(), "attribute {name} given twice");
        text = &rest[close + 1..];
    }
}

/// Every rule of the file, in file order.
fn parse_policy(conf: &str) -> Vec<Rule> {
    let body = strip_comments(conf);
    let body = body.trim();
    let body = body
        .strip_prefix("<!DOCTYPE busconfig PUBLIC")
        .and_then(|b| b.split_once('>'))
        .map(|(_, rest)| rest.trim())
        .expect("the busconfig DOCTYPE");
    let body = body
        .strip_prefix("<busconfig>")
        .and_then(|b| b.strip_suffix("</busconfig>"))
        .expect("one <busconfig> element");
    let mut rules = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let open_end = rest.find('>').expect("unterminated tag");
        let open = rest[..open_end]
            .strip_prefix("<policy ")
            .unwrap_or_else(|| {
                panic!("only <policy> blocks expected, found {}", &rest[..open_end])
            });
        let policy_attrs = parse_attrs(open);
        assert_eq!(policy_attrs.len(), 1, "one selector per <policy>: {open}");
        let context = match policy_attrs.iter().next() {
            Some((k, v)) if k == "context" && v == "default" => Context::Default,
            Some((k, v)) if k == "user" => Context::User(v.clone()),
            Some((k, v)) if k == "group" => Context::Group(v.clone()),
            other => panic!("unexpected policy selector {other:?}"),
        };
        let close = rest.find("</policy>").expect("unterminated <policy>");
        let mut inner = rest[open_end + 1..close].trim();
        while !inner.is_empty() {
            let end = inner.find("/>").expect("rules are self-closing");
            let tag = &inner[..end];
            let (allow, attrs) = if let Some(a) = tag.strip_prefix("<allow ") {
                (true, a)
            } else if let Some(a) = tag.strip_prefix("<deny ") {
                (false, a)
            } else {
                panic!("unexpected element {tag}");
            };
            rules.push(Rule {
                context: context.clone(),
                allow,
                attrs: parse_attrs(attrs),
            });
            inner = inner[end + 2..].trim();
        }
        rest = rest[close + "</policy>".len()..].trim();
    }
    rules
}

fn rules() -> Vec<Rule> {
    parse_policy(&repo_file("org.crmonban.Daemon.conf"))
}

fn privileged() -> [Context; 2] {
    [
        Context::User("root".into()),
        Context::Group("crmonban".into()),
    ]
}

#[test]
fn mutating_members_are_allowed_only_to_root_and_group_crmonban() {
    let rules = rules();
    for member in MUTATING_MEMBERS {
        let mentions: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.attr("send_member") == Some(member))
            .collect();
        for rule in &mentions {
            assert!(rule.allow, "{member} appears in a deny rule: {rule:?}");
            assert!(
                privileged().contains(&rule.context),
                "{member} is allowed outside the root/crmonban policies: {rule:?}"
            );
            assert!(rule.is_call_to(INTERFACE, member), "{member}: {rule:?}");
        }
        for context in privileged() {
            assert!(
                mentions.iter().any(|r| r.context == context),
                "{member} is not allowed to {context:?}"
            );
        }
    }
}

#[test]
fn read_only_members_are_allowed_to_everyone() {
    let rules = rules();
    for member in READ_ONLY_MEMBERS {
        let allowed = rules
            .iter()
            .any(|r| r.context == Context::Default && r.allow && r.is_call_to(INTERFACE, member));
        assert!(allowed, "{member} is not allowed in the default context");
    }
    for member in ["Get", "GetAll"] {
        assert!(
            rules.iter().any(|r| r.context == Context::Default
                && r.allow
                && r.is_call_to("org.freedesktop.DBus.Properties", member)),
            "Properties.{member} is not allowed in the default context"
        );
    }
    for interface in [
        "org.freedesktop.DBus.Introspectable",
        "org.freedesktop.DBus.Peer",
    ] {
        assert!(
            rules.iter().any(|r| r.context == Context::Default
                && r.allow
                && r.attr("send_destination") == Some(BUS_NAME)
                && r.attr("send_interface") == Some(interface)
                && r.attrs.len() == 2),
            "{interface} is not open in the default context"
        );
    }
    assert!(
        rules.iter().any(|r| r.context == Context::Default
            && r.allow
            && r.attr("receive_sender") == Some(BUS_NAME)
            && r.attrs.len() == 1),
        "the daemon's signals are not receivable by everyone"
    );
}

#[test]
fn default_context_denies_first_and_opens_nothing_else() {
    let rules = rules();
    let default: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.context == Context::Default)
        .collect();
    // A blanket deny of everything sent to the daemon comes before every allow: a later rule
    // wins, so the allows are the only holes.
    let deny = default
        .iter()
        .position(|r| {
            !r.allow && r.attr("send_destination") == Some(BUS_NAME) && r.attrs.len() == 1
        })
        .expect(
            "a blanket <deny send_destination=\"org.crmonban.Daemon\"/> in the default context",
        );
    assert!(
        default[..deny].iter().all(|r| !r.allow),
        "an allow precedes the blanket deny"
    );
    for rule in &default {
        if !rule.allow || rule.attr("send_destination") != Some(BUS_NAME) {
            continue;
        }
        let ok = match (rule.attr("send_interface"), rule.attr("send_member")) {
            (Some(i), Some(m)) if i == INTERFACE => READ_ONLY_MEMBERS.contains(&m),
            (Some("org.freedesktop.DBus.Properties"), Some(m)) => m == "Get" || m == "GetAll",
            (Some("org.freedesktop.DBus.Introspectable" | "org.freedesktop.DBus.Peer"), None) => {
                true
            }
            _ => false,
        };
        assert!(
            ok && rule.attrs.len() <= 3,
            "unexpected hole in the default context: {rule:?}"
        );
    }
    // Properties.Set only for the privileged.
    for rule in &rules {
        if rule.is_call_to("org.freedesktop.DBus.Properties", "Set") {
            assert!(
                rule.allow && privileged().contains(&rule.context),
                "{rule:?}"
            );
        }
    }
    // Every member the file names is one the contract knows.
    for rule in &rules {
        if rule.attr("send_interface") == Some(INTERFACE) {
            let member = rule
                .attr("send_member")
                .expect("a rule on our interface names a member");
            assert!(
                READ_ONLY_MEMBERS.contains(&member) || MUTATING_MEMBERS.contains(&member),
                "unknown member {member}"
            );
        }
    }
}

#[test]
fn only_root_owns_the_name() {
    let rules = rules();
    let owns: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.attrs.contains_key("own"))
        .collect();
    for rule in &owns {
        assert_eq!(rule.attr("own"), Some(BUS_NAME), "{rule:?}");
        assert_eq!(rule.attrs.len(), 1, "{rule:?}");
        match (&rule.context, rule.allow) {
            (Context::User(u), true) => assert_eq!(u, "root"),
            (Context::Default, false) => {}
            other => panic!("unexpected ownership rule {other:?}"),
        }
    }
    assert!(owns.iter().any(|r| r.allow));
    assert!(
        owns.iter()
            .any(|r| !r.allow && r.context == Context::Default)
    );
}

#[test]
fn parser_rejects_what_it_does_not_understand() {
    let doctype = "<!DOCTYPE busconfig PUBLIC \"x\"\n \"y\">";
    let unknown = format!(
        "{doctype}<busconfig><policy context=\"default\"><allow send_member=Ban/></policy></busconfig>"
    );
    assert!(std::panic::catch_unwind(|| parse_policy(&unknown)).is_err());
    let nested = format!(
        "{doctype}<busconfig><policy user=\"root\"><allow own=\"x\"></allow></policy></busconfig>"
    );
    assert!(std::panic::catch_unwind(|| parse_policy(&nested)).is_err());
    let good = format!(
        "{doctype}<busconfig><!-- c --><policy group=\"g\"><deny own=\"x\"/></policy></busconfig>"
    );
    let rules = parse_policy(&good);
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].context, Context::Group("g".into()));
}

#[test]
fn activation_file_names_the_daemon() {
    let service = repo_file("org.crmonban.Daemon.service");
    let mut keys = BTreeMap::new();
    let mut section = None;
    for line in service.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            section = Some(line.to_owned());
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value");
        assert_eq!(section.as_deref(), Some("[D-BUS Service]"));
        keys.insert(k.to_owned(), v.to_owned());
    }
    let expected: BTreeMap<String, String> = [
        ("Name", BUS_NAME),
        ("Exec", "/usr/sbin/crmonband start --foreground"),
        ("User", "root"),
        ("SystemdService", "crmonban.service"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(keys, expected);
}

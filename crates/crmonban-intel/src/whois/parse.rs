//! Reading WHOIS answers: the refusals and rate-limit notices that must not pass for an
//! empty record, the referral to the next server, and the record itself in the registries'
//! three formats — ARIN's (`NetRange:`/`OrgName:` sections, one per matching network), the
//! RPSL of RIPE, APNIC, AFRINIC and IANA (objects separated by blank lines, referencing each
//! other by handle), and LACNIC's (RPSL-like, with `owner:` and `nic-hdl:` objects).
//!
//! An answer is untrusted input: lines longer than [`MAX_LINE_BYTES`] are skipped, the number
//! of objects and attributes kept is bounded, and every field is cleaned of control
//! characters and cut to [`MAX_FIELD_BYTES`] (at a char boundary) before it is kept.

use std::net::IpAddr;

use super::ServerName;

/// Longer lines are skipped: no registry writes one, and a peer that does is not read.
pub(super) const MAX_LINE_BYTES: usize = 1024;
/// Fields are cut to this many bytes.
pub(super) const MAX_FIELD_BYTES: usize = 256;
/// Objects (RPSL, LACNIC) or network sections (ARIN) looked at in one answer.
const MAX_OBJECTS: usize = 512;
/// Attributes kept per object or section.
const MAX_ATTRIBUTES: usize = 512;

/// What an answer says about the network of the address asked about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Record {
    pub organization: Option<String>,
    pub network_name: Option<String>,
    pub range: Option<String>,
    pub country: Option<String>,
    pub abuse_contact: Option<String>,
}

/// How an answer is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// ARIN: `NetRange:` sections, least specific first.
    Arin,
    /// RPSL: RIPE, APNIC, AFRINIC, IANA.
    Rpsl,
    /// LACNIC (and NIC.br, which LACNIC's joint whois relays).
    Lacnic,
}

impl Format {
    /// The format of `answer` from server `host`: known for the registries, recognised by
    /// its attributes for any other server a referral led to.
    pub(super) fn of(host: &str, answer: &str) -> Format {
        match host {
            "whois.arin.net" => Format::Arin,
            "whois.lacnic.net" => Format::Lacnic,
            "whois.ripe.net" | "whois.apnic.net" | "whois.afrinic.net" | "whois.iana.org" => {
                Format::Rpsl
            }
            // LACNIC's format also starts with inetnum:, so only owner: tells it from RPSL;
            // RPSL is the common case and the default.
            _ => {
                for (key, _) in lines(answer).filter_map(attribute) {
                    if key.eq_ignore_ascii_case("NetRange") {
                        return Format::Arin;
                    }
                    if key.eq_ignore_ascii_case("ownerid") || key.eq_ignore_ascii_case("owner") {
                        return Format::Lacnic;
                    }
                }
                Format::Rpsl
            }
        }
    }
}

/// A registry's refusal to answer, recognised in its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Denial {
    /// Slow down: a query or connection limit, or a daily limit (temporary).
    RateLimited(String),
    /// Denied (e.g. RIPE's permanent `%ERROR:201`), or another error answer.
    Refused(String),
}

/// Whether `answer` is a refusal or a rate-limit notice rather than a record. Only notice
/// lines are read (comments, and lines that are no `key: value` attribute), so a record's
/// `remarks:` cannot trigger this.
pub(super) fn denial(answer: &str) -> Option<Denial> {
    let notices: Vec<&str> = lines(answer)
        .filter(|line| !line.starts_with([' ', '\t', '+']) && attribute(line).is_none())
        .map(|line| line.trim_start_matches(['%', '#']).trim())
        .filter(|line| !line.is_empty())
        .take(MAX_ATTRIBUTES)
        .collect();
    // The error line and the two lines explaining it, as the registry wrote them.
    let message = |at: usize| {
        let text = notices[at..notices.len().min(at + 3)].join(" ");
        clean(&text).unwrap_or_default()
    };
    for (at, notice) in notices.iter().enumerate() {
        let lower = notice.to_ascii_lowercase();
        if let Some(code) = lower.strip_prefix("error:") {
            let code = code.get(..3).unwrap_or(code);
            match code {
                // "no entries found" is an answer: the registry has no record.
                "101" => continue,
                // RIPE (and the RIPE software of APNIC and AFRINIC): access denied, either
                // for today (the daily limit of personal data) or for good.
                "201" => {
                    let temporary = notices[at..].iter().any(|line| {
                        let line = line.to_ascii_lowercase();
                        line.contains("daily limit") || line.contains("temporarily denied")
                    });
                    return Some(if temporary {
                        Denial::RateLimited(message(at))
                    } else {
                        Denial::Refused(message(at))
                    });
                }
                // Too many connections from our address at once.
                "306" => return Some(Denial::RateLimited(message(at))),
                _ => return Some(Denial::Refused(message(at))),
            }
        }
        if lower.contains("rate limit exceeded")
            || lower.contains("too many requests")
            || lower.starts_with("http/1.1 429")
            || lower.starts_with("429 ")
        {
            return Some(Denial::RateLimited(message(at)));
        }
        if lower.contains("has been blocked") {
            return Some(Denial::Refused(message(at)));
        }
    }
    None
}

/// The next server that `answer` sends us to: IANA's `refer:` (then its `whois:`), ARIN's
/// `ReferralServer: whois://host[:port]` (an `rwhois://` referral is another protocol and
/// is not followed: ARIN's own answer stands), or a `Whois Server:` line.
pub(super) fn referral(answer: &str) -> Option<ServerName> {
    let mut refer = None;
    let mut referral_server = None;
    let mut whois = None;
    let mut whois_server = None;
    for (key, value) in lines(answer).filter_map(attribute) {
        let Some(target) = value.split_whitespace().next() else {
            continue;
        };
        if key.eq_ignore_ascii_case("refer") {
            refer = refer.or_else(|| ServerName::parse(target));
        } else if key.eq_ignore_ascii_case("ReferralServer") {
            // Several networks may each carry one; the last is the most specific network's.
            if let Some(server) = whois_url(target) {
                referral_server = Some(server);
            }
        } else if key.eq_ignore_ascii_case("whois") {
            whois = whois.or_else(|| ServerName::parse(target));
        } else if key.eq_ignore_ascii_case("Whois Server")
            || key.eq_ignore_ascii_case("Registrar WHOIS Server")
        {
            whois_server = whois_server.or_else(|| whois_url(target));
        }
    }
    refer.or(referral_server).or(whois).or(whois_server)
}

/// `whois://host[:port][/]` or a bare `host[:port]`; any other scheme (rwhois, http) is not
/// a WHOIS server.
fn whois_url(target: &str) -> Option<ServerName> {
    let rest = match target.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("whois") => rest,
        Some(_) => return None,
        None => target,
    };
    ServerName::parse(rest.trim_end_matches('/'))
}

/// The record in `answer`, read as `format`.
pub(super) fn record(format: Format, answer: &str) -> Record {
    match format {
        Format::Arin => arin(answer),
        Format::Rpsl => rpsl(answer),
        Format::Lacnic => lacnic(answer),
    }
}

/// ARIN: one section per matching network, from `NetRange:` to the next, holding the
/// network's lines, then its organisation's (`OrgName:`, `Country:`) and the organisation's
/// contacts (`OrgAbuseEmail:`), or a customer's (`CustName:`) for a reassignment. The most
/// specific network (the narrowest range; the last on a tie, as ARIN lists them from the
/// least specific) is the one kept; its abuse contact, when it has none (customers have no
/// contacts), is the nearest less specific network's.
fn arin(answer: &str) -> Record {
    let mut sections: Vec<Vec<(&str, &str)>> = Vec::new();
    for (key, value) in lines(answer).filter_map(attribute) {
        if key.eq_ignore_ascii_case("NetRange") {
            if sections.len() == MAX_OBJECTS {
                break;
            }
            sections.push(Vec::new());
        }
        if let Some(section) = sections.last_mut()
            && section.len() < MAX_ATTRIBUTES
        {
            section.push((key, value));
        }
    }
    let get = |section: &[(&str, &str)], key: &str| -> Option<String> {
        section
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .find_map(|(_, value)| clean(value))
    };
    let abuse = |section: &[(&str, &str)]| -> Option<String> {
        ["RAbuseEmail", "OrgAbuseEmail"].iter().find_map(|key| {
            section
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                .find_map(|(_, value)| email(value))
        })
    };
    let Some(chosen) = narrowest(
        sections
            .iter()
            .map(|section| get(section, "NetRange").and_then(|range| range_size(&range))),
    ) else {
        return Record::default();
    };
    let section = &sections[chosen];
    Record {
        organization: get(section, "OrgName")
            .or_else(|| get(section, "Organization").map(without_handle))
            .or_else(|| get(section, "CustName"))
            .or_else(|| get(section, "Customer").map(without_handle)),
        network_name: get(section, "NetName"),
        range: get(section, "NetRange"),
        country: section
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("Country"))
            .find_map(|(_, value)| country(value)),
        abuse_contact: sections[..=chosen]
            .iter()
            .rev()
            .find_map(|section| abuse(section)),
    }
}

/// "Google LLC (GOGL)" → "Google LLC": ARIN appends the handle to names it references.
fn without_handle(name: String) -> String {
    match name.rfind(" (") {
        Some(at) if name.ends_with(')') && at > 0 => name[..at].trim_end().to_owned(),
        _ => name,
    }
}

/// RPSL (RIPE, APNIC, AFRINIC, IANA): the most specific `inetnum:`/`inet6num:` object, its
/// `netname:`, `country:`, the `org-name:` of the `organisation:` object its `org:` names
/// (else IANA's `organisation:` attribute, else the first `descr:`), and the abuse contact
/// from, in order: RIPE's "% Abuse contact for 'range' is 'address'" comment (which RIPE,
/// APNIC and AFRINIC compute from `abuse-c:` through the hierarchy), the network's `abuse-c:`
/// role, its `mnt-irt:` irt object (APNIC's older records), the organisation's `abuse-c:`,
/// and any `abuse-mailbox:` in the answer.
fn rpsl(answer: &str) -> Record {
    let objects = objects(answer);
    let Some(network) = narrowest_network(&objects) else {
        return Record {
            abuse_contact: abuse_comments(answer).find_map(|(_, address)| email(address)),
            ..Record::default()
        };
    };
    let range = clean(network.key());
    let organisation = network.value("org").and_then(|id| {
        objects
            .iter()
            .find(|object| object.is("organisation") && object.key().eq_ignore_ascii_case(id))
    });
    let role = |handle: &str| {
        objects.iter().find(|object| {
            (object.is("role") || object.is("person"))
                && object
                    .value("nic-hdl")
                    .is_some_and(|hdl| hdl.eq_ignore_ascii_case(handle))
        })
    };
    let mailbox = |object: &Object| {
        object
            .values("abuse-mailbox")
            .find_map(email)
            .or_else(|| object.values("e-mail").find_map(email))
    };
    let comment = {
        let comments: Vec<(&str, &str)> = abuse_comments(answer).collect();
        comments
            .iter()
            .find(|(for_range, _)| Some(for_range.trim()) == range.as_deref())
            .or(comments.first())
            .and_then(|(_, address)| email(address))
    };
    let abuse_contact = comment
        .or_else(|| {
            network
                .values("abuse-c")
                .filter_map(&role)
                .find_map(&mailbox)
        })
        .or_else(|| {
            network.values("mnt-irt").find_map(|name| {
                objects
                    .iter()
                    .find(|object| object.is("irt") && object.key().eq_ignore_ascii_case(name))
                    .and_then(&mailbox)
            })
        })
        .or_else(|| {
            organisation?
                .values("abuse-c")
                .filter_map(&role)
                .find_map(|object| object.values("abuse-mailbox").find_map(email))
        })
        .or_else(|| {
            objects
                .iter()
                .find_map(|object| object.values("abuse-mailbox").find_map(email))
        });
    Record {
        organization: organisation
            .and_then(|object| object.value("org-name"))
            .or_else(|| network.value("organisation"))
            .or_else(|| network.value("descr"))
            .and_then(clean),
        network_name: network.value("netname").and_then(clean),
        range,
        country: network.values("country").find_map(country),
        abuse_contact,
    }
}

/// LACNIC: the `inetnum:` object (LACNIC writes it for IPv6 too) with `owner:` and
/// `country:`, and the `e-mail:` of the `nic-hdl:` object its `abuse-c:` names. LACNIC
/// networks have no name.
fn lacnic(answer: &str) -> Record {
    let objects = objects(answer);
    let Some(network) = narrowest_network(&objects) else {
        return Record::default();
    };
    let contact = |handle: &str| {
        objects.iter().find(|object| {
            ["nic-hdl", "nic-hdl-br"].iter().any(|key| {
                object
                    .value(key)
                    .is_some_and(|hdl| hdl.eq_ignore_ascii_case(handle))
            })
        })
    };
    Record {
        organization: network.value("owner").and_then(clean),
        network_name: network.value("netname").and_then(clean),
        range: clean(network.key()),
        country: network.values("country").find_map(country),
        abuse_contact: network
            .values("abuse-c")
            .filter_map(contact)
            .find_map(|object| object.values("e-mail").find_map(email)),
    }
}

/// The lines of an answer without their line ends; over-long lines are skipped.
fn lines(answer: &str) -> impl Iterator<Item = &str> {
    answer
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| line.len() <= MAX_LINE_BYTES)
}

/// `key: value`, where the key starts the line with a letter and is a short run of letters,
/// digits, `-`, `_` and spaces ("Whois Server").
fn attribute(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once(':')?;
    let first = key.bytes().next()?;
    let key_like = first.is_ascii_alphabetic()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b' '));
    key_like.then(|| (key.trim_end(), value.trim()))
}

/// One RPSL (or LACNIC) object: its attributes in order; the first names its class and key.
struct Object<'a> {
    attributes: Vec<(&'a str, &'a str)>,
}

impl<'a> Object<'a> {
    /// Whether this is an object of `class` (its first attribute).
    fn is(&self, class: &str) -> bool {
        self.attributes
            .first()
            .is_some_and(|(key, _)| key.eq_ignore_ascii_case(class))
    }

    /// The object's key: the value of its first attribute.
    fn key(&self) -> &'a str {
        self.attributes.first().map_or("", |(_, value)| value)
    }

    /// The values of `key`, in order, empty ones left out.
    fn values<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.attributes
            .iter()
            .filter(move |(k, value)| k.eq_ignore_ascii_case(key) && !value.is_empty())
            .map(|(_, value)| *value)
    }

    /// The first non-empty value of `key`.
    fn value(&self, key: &str) -> Option<&'a str> {
        self.values(key).next()
    }
}

/// The objects of an RPSL-like answer: runs of attribute lines, ended by a blank line or a
/// server comment (`%`, `#`). Continuation lines (leading space, tab or `+`) are not needed
/// for any field kept and are skipped.
fn objects(answer: &str) -> Vec<Object<'_>> {
    let mut objects = Vec::new();
    let mut current: Vec<(&str, &str)> = Vec::new();
    for line in lines(answer) {
        if line.trim().is_empty() || line.starts_with(['%', '#']) {
            if !current.is_empty() {
                objects.push(Object {
                    attributes: std::mem::take(&mut current),
                });
                if objects.len() == MAX_OBJECTS {
                    return objects;
                }
            }
            continue;
        }
        if line.starts_with([' ', '\t', '+']) {
            continue;
        }
        if let Some(attribute) = attribute(line)
            && current.len() < MAX_ATTRIBUTES
        {
            current.push(attribute);
        }
    }
    if !current.is_empty() {
        objects.push(Object {
            attributes: current,
        });
    }
    objects
}

/// RIPE's "% Abuse contact for '<range>' is '<address>'" comments, as (range, address).
fn abuse_comments(answer: &str) -> impl Iterator<Item = (&str, &str)> {
    lines(answer).filter_map(|line| {
        let rest = line
            .strip_prefix('%')?
            .trim_start()
            .strip_prefix("Abuse contact for '")?;
        let (range, address) = rest.split_once("' is '")?;
        Some((range, address.trim_end().strip_suffix('\'')?))
    })
}

/// The most specific `inetnum:`/`inet6num:` object of an RPSL answer (RIPE, APNIC, AFRINIC,
/// LACNIC), which is the network the address is in.
fn narrowest_network<'o, 'a>(objects: &'o [Object<'a>]) -> Option<&'o Object<'a>> {
    let networks: Vec<&Object> = objects
        .iter()
        .filter(|object| object.is("inetnum") || object.is("inet6num"))
        .collect();
    narrowest(networks.iter().map(|network| range_size(network.key()))).map(|i| networks[i])
}

/// The index of the narrowest range (`None` sizes count as the widest); the last wins a tie.
fn narrowest(sizes: impl Iterator<Item = Option<u128>>) -> Option<usize> {
    let mut best: Option<(usize, u128)> = None;
    for (index, size) in sizes.enumerate() {
        let size = size.unwrap_or(u128::MAX);
        if best.is_none_or(|(_, best_size)| size <= best_size) {
            best = Some((index, size));
        }
    }
    best.map(|(index, _)| index)
}

/// How many addresses after the first a range holds: "a - b" or a CIDR.
fn range_size(range: &str) -> Option<u128> {
    let range = range.trim();
    if let Some((first, last)) = range.split_once('-') {
        let first: IpAddr = first.trim().parse().ok()?;
        let last: IpAddr = last.trim().parse().ok()?;
        return match (first, last) {
            (IpAddr::V4(first), IpAddr::V4(last)) => {
                u128::from(u32::from(last)).checked_sub(u128::from(u32::from(first)))
            }
            (IpAddr::V6(first), IpAddr::V6(last)) => {
                u128::from(last).checked_sub(u128::from(first))
            }
            _ => None,
        };
    }
    let network: ipnet::IpNet = range.parse().ok()?;
    let host_bits = u32::from(network.max_prefix_len() - network.prefix_len());
    Some(
        1u128
            .checked_shl(host_bits)
            .map_or(u128::MAX, |size| size - 1),
    )
}

/// A country code: the first word before any RPSL comment, upper-cased when it is two
/// letters.
fn country(value: &str) -> Option<String> {
    let word = value.split('#').next()?.split_whitespace().next()?;
    if word.len() == 2 && word.bytes().all(|b| b.is_ascii_alphabetic()) {
        Some(word.to_ascii_uppercase())
    } else {
        clean(word)
    }
}

/// An e-mail address, or nothing: registries write placeholders where they filter
/// addresses ("# Filtered", AFRINIC's "***@afrinic.net").
fn email(value: &str) -> Option<String> {
    let address = value.split('#').next()?.trim();
    let address = address
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(address);
    let (local, domain) = address.split_once('@')?;
    let plausible = !local.is_empty()
        && domain.contains('.')
        && !domain.contains('@')
        && address.len() <= MAX_FIELD_BYTES
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '*' | '<' | '>'));
    plausible.then(|| address.to_owned())
}

/// A field as kept: control characters removed, surrounding space trimmed, cut to
/// [`MAX_FIELD_BYTES`] at a char boundary; nothing when nothing is left.
pub(super) fn clean(value: &str) -> Option<String> {
    let text: String = value.chars().filter(|c| !c.is_control()).collect();
    let text = text.trim();
    let mut end = text.len().min(MAX_FIELD_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = text[..end].trim_end();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;

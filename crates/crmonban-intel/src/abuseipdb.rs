//! AbuseIPDB (API v2, <https://docs.abuseipdb.com/>): what other reporters say about an address
//! (`GET /check`), and reporting our own bans (`POST /report`) with categories mapped from the
//! service that banned, within AbuseIPDB's limits ([`Reporter`]: one report of an address per
//! 15 minutes, a daily quota).
//!
//! The key goes in the `Key` header only; [`ApiClient`] keeps it out of every error.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crmonban_core::config::Secret;

use crate::http::{ApiClient, Fields, json_body};
use crate::{AbuseIpdb, IntelError};

const SERVICE: &str = "AbuseIPDB";
/// The period `check` asks about, and the one [`AbuseIpdb::total_reports`] counts.
const MAX_AGE_DAYS: &str = "90";
/// AbuseIPDB cuts report comments at 1,024 characters.
const MAX_COMMENT_CHARS: usize = 1024;

/// An AbuseIPDB API client.
#[derive(Debug)]
pub(crate) struct AbuseIpdbClient {
    api: ApiClient,
}

impl AbuseIpdbClient {
    /// A client for the API at `base_url` (normally `https://api.abuseipdb.com/api/v2`).
    pub(crate) fn new(
        key: Secret,
        base_url: &str,
        timeout: Duration,
    ) -> Result<AbuseIpdbClient, IntelError> {
        Ok(AbuseIpdbClient {
            api: ApiClient::new(SERVICE, base_url, key, timeout)?,
        })
    }

    /// What AbuseIPDB knows about `ip` from the last 90 days.
    pub(crate) async fn check(&self, ip: IpAddr) -> Result<AbuseIpdb, IntelError> {
        let ip = ip.to_string();
        let url = self.api.url(
            "/check",
            &[("ipAddress", ip.as_str()), ("maxAgeInDays", MAX_AGE_DAYS)],
        )?;
        let request = self.api.get(url, &self.headers());
        let answer = self.api.send(request, &[]).await?;
        parse_check(&json_body(SERVICE, &answer.body)?)
    }

    /// Reports `ip` under `categories` (see [`categories_for`]) with `comment` (cleaned of
    /// control characters and cut at AbuseIPDB's 1,024 characters).
    pub(crate) async fn report(
        &self,
        ip: IpAddr,
        categories: &[u8],
        comment: &str,
    ) -> Result<(), IntelError> {
        let ip = ip.to_string();
        let categories = categories
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let comment = bounded_comment(comment);
        let url = self.api.url("/report", &[])?;
        let request = self.api.post_form(
            url,
            &self.headers(),
            &[
                ("ip", ip.as_str()),
                ("categories", categories.as_str()),
                ("comment", comment.as_str()),
            ],
        );
        let answer = self.api.send(request, &[]).await?;
        // The answer is {"data":{"ipAddress":..,"abuseConfidenceScore":..}}; a 2xx is the
        // acceptance, but an "errors" body in it is still a refusal.
        let body = json_body(SERVICE, &answer.body)?;
        match refusal(&body) {
            Some(message) => Err(IntelError::Refused {
                what: format!("{SERVICE} report"),
                message,
            }),
            None => Ok(()),
        }
    }

    fn headers(&self) -> [(&'static str, &str); 2] {
        [("Key", self.api.key()), ("Accept", "application/json")]
    }
}

/// `comment` with control characters (a log line's breaks) made spaces and cut at AbuseIPDB's
/// limit, at a character boundary.
fn bounded_comment(comment: &str) -> String {
    let clean = crate::http::clean_text(comment, MAX_COMMENT_CHARS * 4);
    clean.chars().take(MAX_COMMENT_CHARS).collect()
}

/// The first `errors[].detail` of an answer, when it has one.
fn refusal(body: &serde_json::Value) -> Option<String> {
    let detail = body.get("errors")?.get(0)?.get("detail")?.as_str()?;
    Some(crate::http::clean_text(detail, 200))
}

/// The `check` answer: `{"data": {"abuseConfidenceScore": 0-100, "totalReports": n, ...}}`.
fn parse_check(body: &serde_json::Value) -> Result<AbuseIpdb, IntelError> {
    if let Some(message) = refusal(body) {
        return Err(IntelError::Refused {
            what: SERVICE.to_owned(),
            message,
        });
    }
    let data = Fields::of(SERVICE, "data", body.get("data"))?;
    let count = 0..=u64::from(u32::MAX);
    Ok(AbuseIpdb {
        // The ranges checked make these conversions exact.
        confidence: u8::try_from(data.required_number("abuseConfidenceScore", 0..=100)?)
            .unwrap_or(100),
        total_reports: u32::try_from(data.required_number("totalReports", count.clone())?)
            .unwrap_or(u32::MAX),
        distinct_users: data
            .number("numDistinctUsers", count)?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        usage_type: data.text("usageType")?,
        isp: data.text("isp")?,
        domain: data.text("domain")?,
        country_code: data.text("countryCode")?,
        last_reported_at: data.text("lastReportedAt")?,
        whitelisted: data.boolean("isWhitelisted")?,
    })
}

/// AbuseIPDB's categories (<https://www.abuseipdb.com/categories>) that we use.
mod category {
    pub(super) const FRAUD_VOIP: u8 = 8;
    pub(super) const FTP_BRUTE_FORCE: u8 = 5;
    pub(super) const EMAIL_SPAM: u8 = 11;
    pub(super) const HACKING: u8 = 15;
    pub(super) const BRUTE_FORCE: u8 = 18;
    pub(super) const BAD_WEB_BOT: u8 = 19;
    pub(super) const WEB_APP_ATTACK: u8 = 21;
    pub(super) const SSH: u8 = 22;
}

/// The AbuseIPDB categories of a ban by `service` (a crmonban service name or alias, or the
/// ban's source "dbus" for a manual ban). Never empty: AbuseIPDB needs one.
///
/// A report is a public claim about an address, so each category says only what the service's
/// detector saw:
/// - SSH (ssh, sshd, dropbear): repeated failed logins → Brute-Force (18) and SSH (22).
/// - FTP (vsftpd, proftpd, pure-ftpd, ...): failed logins → FTP Brute-Force (5), Brute-Force.
/// - Web servers' auth and limit packs (nginx, apache, httpd, nginx-http-auth, apache-auth):
///   failed HTTP logins against a web application → Brute-Force and Web App Attack (21).
///   nginx-limit-req alone: excessive requests, which AbuseIPDB files under Bad Web Bot (19).
/// - Scanners for web software (nginx-botsearch, apache-noscript, apache-overflows,
///   nginx-bad-request, ...): probing for installed applications → Web App Attack.
///   apache-badbots: crawlers with known bad user agents → Bad Web Bot.
/// - Mail log-ins (dovecot, courier-auth, sendmail-auth, postfix-sasl, sieve, ...) → Brute-Force.
///   Spam only for the aliases that are about spam senders (postfix-rbl, sendmail-reject,
///   exim-spam) → Email Spam (11). The SMTP packs (postfix, exim, sendmail) count SASL failures
///   and rejected relay/unknown-recipient/RBL clients together; without the event kind we
///   claim only Brute-Force, the claim repeated failed attempts support.
/// - VoIP (asterisk, freeswitch): SIP registration failures → Fraud VoIP (8), Brute-Force.
/// - Other services crmonban knows or a user adds (openvpn, mysqld-auth, recidive, ...):
///   crmonban bans on repeated failures within a window → Brute-Force.
/// - A manual ban (source "dbus", "manual") or no service: nothing says what the address did
///   → Hacking (15), AbuseIPDB's general category.
pub(crate) fn categories_for(service: Option<&str>) -> Vec<u8> {
    use category::*;
    let Some(service) = service.map(str::trim).filter(|s| !s.is_empty()) else {
        return vec![HACKING];
    };
    let s = service.to_ascii_lowercase();
    let is = |names: &[&str]| names.contains(&s.as_str());
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| s.starts_with(p));
    if is(&["dbus", "manual"]) {
        vec![HACKING]
    } else if is(&["ssh", "sshd", "dropbear", "openssh"]) {
        vec![BRUTE_FORCE, SSH]
    } else if starts(&[
        "vsftpd",
        "proftpd",
        "pure-ftpd",
        "pureftpd",
        "ftp",
        "wuftpd",
    ]) {
        vec![FTP_BRUTE_FORCE, BRUTE_FORCE]
    } else if is(&["postfix-rbl", "sendmail-reject", "exim-spam"]) {
        vec![EMAIL_SPAM]
    } else if starts(&["asterisk", "freeswitch"]) {
        vec![FRAUD_VOIP, BRUTE_FORCE]
    } else if starts(&["nginx", "apache", "httpd", "lighttpd", "caddy", "traefik"]) {
        if s.contains("badbot") || s.ends_with("limit-req") {
            vec![BAD_WEB_BOT]
        } else if is(&["nginx", "apache", "httpd", "lighttpd"]) || s.contains("auth") {
            vec![BRUTE_FORCE, WEB_APP_ATTACK]
        } else {
            vec![WEB_APP_ATTACK]
        }
    } else {
        vec![BRUTE_FORCE]
    }
}

/// How long AbuseIPDB refuses a second report of one address from one reporter.
const SAME_ADDRESS_PAUSE: Duration = Duration::from_secs(15 * 60);
/// The window of the daily quota.
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Addresses remembered for [`SAME_ADDRESS_PAUSE`]; beyond it the oldest is forgotten (and
/// AbuseIPDB's own 429 covers the rare repeat).
const MAX_REMEMBERED: usize = 10_000;

/// Decides whether a ban is reported now: at most `per_day` reports in any 24 hours (a sliding
/// window, so no calendar day can exceed the quota either), and one report of an address per
/// 15 minutes. What it declines is counted.
#[derive(Debug)]
pub(crate) struct Reporter {
    per_day: u32,
    /// When each report of the last 24 hours was made, oldest first; at most `per_day`.
    sent: VecDeque<Instant>,
    /// Addresses reported in the last 15 minutes, and when.
    recent: HashMap<IpAddr, Instant>,
    /// The same, in the order they were reported (an address reported again after its pause
    /// appears twice; the stale entry is recognised by its time).
    order: VecDeque<(IpAddr, Instant)>,
    skipped: u64,
}

impl Reporter {
    /// A reporter allowed `per_day` reports in any 24 hours (1,000 on AbuseIPDB's free tier).
    pub(crate) fn new(per_day: u32) -> Reporter {
        Reporter {
            per_day,
            sent: VecDeque::new(),
            recent: HashMap::new(),
            order: VecDeque::new(),
            skipped: 0,
        }
    }

    /// Whether `ip` may be reported at `now`; when it may, the report is counted as made.
    pub(crate) fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.forget_before(now);
        let fresh = !self.recent.contains_key(&ip);
        let budget = (self.sent.len() as u64) < u64::from(self.per_day);
        if !(fresh && budget) {
            self.skipped += 1;
            return false;
        }
        self.sent.push_back(now);
        self.recent.insert(ip, now);
        self.order.push_back((ip, now));
        while self.recent.len() > MAX_REMEMBERED {
            let Some((old, at)) = self.order.pop_front() else {
                break;
            };
            if self.recent.get(&old) == Some(&at) {
                self.recent.remove(&old);
            }
        }
        true
    }

    /// How many reports [`Reporter::allow`] declined.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some(&at) = self.sent.front() {
            if now.saturating_duration_since(at) < DAY {
                break;
            }
            self.sent.pop_front();
        }
        while let Some(&(ip, at)) = self.order.front() {
            if now.saturating_duration_since(at) < SAME_ADDRESS_PAUSE {
                break;
            }
            self.order.pop_front();
            if self.recent.get(&ip) == Some(&at) {
                self.recent.remove(&ip);
            }
        }
        // Stale duplicates may stay queued while an address is re-reported; keep the queue
        // from outgrowing the map by much.
        if self.order.len() > 2 * MAX_REMEMBERED {
            let recent = &self.recent;
            self.order.retain(|(ip, at)| recent.get(ip) == Some(at));
        }
    }
}

#[cfg(test)]
#[path = "abuseipdb_tests.rs"]
mod tests;

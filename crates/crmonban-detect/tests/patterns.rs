//! Built-in patterns against real-format lines of each service: what must match (address,
//! kind, pattern), what must not, and hostile lines that try to inject an address.

use crmonban_core::EventKind;
use crmonban_core::config::{BanDuration, Pattern, ServiceConfig};
use crmonban_detect::matcher::{LineContext, LineOutcome, ServiceMatcher, SkipReason, Utf8Policy};

// 2026-11-26T00:00:00Z
const NOW: i64 = 1_795_651_200;

fn matcher(service: &str) -> ServiceMatcher {
    let config = ServiceConfig::builtin(service, BanDuration::from_secs(3600)).unwrap();
    ServiceMatcher::new(service, &config).unwrap()
}

fn outcome(m: &ServiceMatcher, line: &str) -> LineOutcome {
    m.match_line(line.as_bytes(), &LineContext::at(NOW))
}

/// Asserts `line` matches with `ip`, `kind` and `pattern`.
fn hit(m: &ServiceMatcher, line: &str, ip: &str, kind: EventKind, pattern: &str) {
    match outcome(m, line) {
        LineOutcome::Match(h) => {
            assert_eq!(h.addr.to_string(), ip, "address of {line}");
            assert_eq!(h.kind, kind, "kind of {line}");
            assert_eq!(&*h.pattern, pattern, "pattern of {line}");
        }
        other => panic!("{line}\n  expected a match, got {other:?}"),
    }
}

fn miss(m: &ServiceMatcher, line: &str) {
    let got = outcome(m, line);
    assert_eq!(got, LineOutcome::NoMatch, "{line}");
}

use EventKind::*;

#[test]
fn ssh_attack_lines_ipv4_and_ipv6() {
    let m = matcher("ssh");
    let cases: &[(&str, &str, EventKind, &str)] = &[
        (
            "Nov 25 16:19:59 host sshd[1234]: Failed password for root from 192.0.2.7 port 51234 ssh2",
            "192.0.2.7",
            FailedAuth,
            "ssh-failed-auth",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Failed password for invalid user admin from 2001:db8::7 port 51234 ssh2",
            "2001:db8::7",
            InvalidUser,
            "ssh-failed-invalid-user",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Failed publickey for root from 192.0.2.7 port 51234 ssh2: RSA SHA256:abcdefABCDEF0123456789+/xyz",
            "192.0.2.7",
            FailedAuth,
            "ssh-failed-auth-info",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Failed keyboard-interactive/pam for invalid user oracle from 198.51.100.4 port 4242 ssh2",
            "198.51.100.4",
            InvalidUser,
            "ssh-failed-invalid-user",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Invalid user admin from 192.0.2.7 port 51234",
            "192.0.2.7",
            InvalidUser,
            "ssh-invalid-user",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Invalid user  from 2001:db8:1::2 port 51234",
            "2001:db8:1::2",
            InvalidUser,
            "ssh-invalid-user",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Connection closed by invalid user admin 192.0.2.7 port 51234 [preauth]",
            "192.0.2.7",
            Probe,
            "ssh-closed-preauth",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Connection closed by authenticating user root 2001:db8::7 port 51234 [preauth]",
            "2001:db8::7",
            Probe,
            "ssh-closed-preauth",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Connection closed by 192.0.2.7 port 51234 [preauth]",
            "192.0.2.7",
            Probe,
            "ssh-closed-preauth",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Connection reset by 192.0.2.7 port 51234 [preauth]",
            "192.0.2.7",
            Probe,
            "ssh-closed-preauth",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Connection closed by 192.0.2.7 port 51234",
            "192.0.2.7",
            Probe,
            "ssh-closed-before-auth",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Disconnected from invalid user admin 192.0.2.7 port 51234 [preauth]",
            "192.0.2.7",
            Probe,
            "ssh-disconnected-preauth",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Disconnected from authenticating user root 2001:db8::7 port 51234 [preauth]",
            "2001:db8::7",
            Probe,
            "ssh-disconnected-preauth",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Received disconnect from 192.0.2.7 port 51234:11: Bye Bye [preauth]",
            "192.0.2.7",
            Probe,
            "ssh-received-disconnect-preauth",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: error: maximum authentication attempts exceeded for root from 192.0.2.7 port 51234 ssh2 [preauth]",
            "192.0.2.7",
            FailedAuth,
            "ssh-max-auth-attempts",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: error: maximum authentication attempts exceeded for invalid user test from 2001:db8::7 port 51234 ssh2 [preauth]",
            "2001:db8::7",
            FailedAuth,
            "ssh-max-auth-attempts",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Disconnecting invalid user test 192.0.2.7 port 51234: Too many authentication failures [preauth]",
            "192.0.2.7",
            FailedAuth,
            "ssh-too-many-failures",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: banner exchange: Connection from 192.0.2.7 port 51234: invalid format",
            "192.0.2.7",
            Probe,
            "ssh-banner-exchange",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: banner exchange: Connection from 2001:db8::7 port 51234: could not read protocol version",
            "2001:db8::7",
            Probe,
            "ssh-banner-exchange",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Unable to negotiate with 192.0.2.7 port 51234: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]",
            "192.0.2.7",
            Probe,
            "ssh-unable-to-negotiate",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Unable to negotiate with 2001:db8::7 port 51234: no matching host key type found. Their offer: ssh-rsa,ssh-dss [preauth]",
            "2001:db8::7",
            Probe,
            "ssh-unable-to-negotiate",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.7  user=root",
            "192.0.2.7",
            FailedAuth,
            "ssh-pam-auth-failure",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=2001:db8::7",
            "2001:db8::7",
            FailedAuth,
            "ssh-pam-auth-failure",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.7  user=root",
            "192.0.2.7",
            FailedAuth,
            "ssh-pam-more-failures",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: User root from 192.0.2.7 not allowed because not listed in AllowUsers",
            "192.0.2.7",
            InvalidUser,
            "ssh-user-not-allowed",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Did not receive identification string from 192.0.2.7 port 51234",
            "192.0.2.7",
            Probe,
            "ssh-no-identification",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: Bad protocol version identification '\\026\\003\\001' from 192.0.2.7 port 51234",
            "192.0.2.7",
            Probe,
            "ssh-bad-protocol-version",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: fatal: Timeout before authentication for 192.0.2.7 port 51234",
            "192.0.2.7",
            Probe,
            "ssh-timeout-before-auth",
        ),
        (
            "Nov 25 16:19:59 host sshd[1234]: ssh_dispatch_run_fatal: Connection from 192.0.2.7 port 51234: invalid format [preauth]",
            "192.0.2.7",
            Probe,
            "ssh-dispatch-fatal",
        ),
        // OpenSSH 9.8+ per-session binary, RFC 3339 rsyslog stamps, journal-shaped and bare lines.
        (
            "2026-11-25T16:19:59.123456+00:00 host sshd-session[99]: Failed password for root from 192.0.2.8 port 22 ssh2",
            "192.0.2.8",
            FailedAuth,
            "ssh-failed-auth",
        ),
        (
            "sshd[812]: Failed password for root from 192.0.2.9 port 22 ssh2",
            "192.0.2.9",
            FailedAuth,
            "ssh-failed-auth",
        ),
        (
            "Invalid user guest from 192.0.2.10 port 22\r",
            "192.0.2.10",
            InvalidUser,
            "ssh-invalid-user",
        ),
        // IPv4-mapped IPv6 is reported as IPv4.
        (
            "Nov 25 16:19:59 host sshd[1234]: Invalid user admin from ::ffff:192.0.2.11 port 22",
            "192.0.2.11",
            InvalidUser,
            "ssh-invalid-user",
        ),
    ];
    for (line, ip, kind, pattern) in cases {
        hit(&m, line, ip, kind.clone(), pattern);
    }
}

#[test]
fn ssh_normal_lines_do_not_match() {
    let m = matcher("ssh");
    for line in [
        "Nov 25 16:19:59 host sshd[1234]: Accepted password for bob from 192.0.2.7 port 51234 ssh2",
        "Nov 25 16:19:59 host sshd[1234]: Accepted publickey for bob from 2001:db8::7 port 51234 ssh2: ED25519 SHA256:abc",
        "Nov 25 16:19:59 host sshd[1234]: pam_unix(sshd:session): session opened for user bob(uid=1000) by (uid=0)",
        "Nov 25 16:19:59 host sshd[1234]: pam_unix(sshd:session): session closed for user bob",
        "Nov 25 16:19:59 host sshd[1234]: Received disconnect from 192.0.2.7 port 51234:11: disconnected by user",
        "Nov 25 16:19:59 host sshd[1234]: Disconnected from user bob 192.0.2.7 port 51234",
        "Nov 25 16:19:59 host sshd[1234]: Connection closed by user bob 192.0.2.7 port 51234",
        "Nov 25 16:19:59 host sshd[1234]: Server listening on 0.0.0.0 port 22.",
        "Nov 25 16:19:59 host sshd[1234]: error: kex_exchange_identification: Connection closed by remote host",
        "Nov 25 16:19:59 host sshd[1234]: pam_unix(sshd:auth): check pass; user unknown",
        "Nov 25 16:19:59 host CRON[222]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
        "Nov 25 16:19:59 host systemd-logind[400]: New session 12 of user bob.",
        "Nov 25 16:19:59 host kernel: [12345.678] IN=eth0 SRC=192.0.2.7 DST=10.0.0.1",
        // Another program's line in the same file with sshd's wording: the tag decides.
        "Nov 25 16:19:59 host evil[66]: Failed password for root from 192.0.2.66 port 22 ssh2",
        "Nov 25 16:19:59 host sudo: bob : TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/ls",
        // A host name where the address should be is never taken.
        "Nov 25 16:19:59 host sshd[1234]: Failed password for root from dead.beef port 22 ssh2",
        "Nov 25 16:19:59 host sshd[1234]: Invalid user x from bad.example.com port 22",
        "",
        "garbage",
    ] {
        miss(&m, line);
    }
}

#[test]
fn ssh_hostile_user_names_cannot_supply_the_address() {
    let m = matcher("ssh");
    for (line, ip) in [
        (
            "Nov 25 16:19:59 host sshd[1]: Invalid user x from 6.6.6.6 from 192.0.2.7 port 22",
            "192.0.2.7",
        ),
        (
            "Nov 25 16:19:59 host sshd[1]: Invalid user x from 6.6.6.6 port 22 from 192.0.2.7 port 22",
            "192.0.2.7",
        ),
        (
            "Nov 25 16:19:59 host sshd[1]: Failed password for invalid user x from 6.6.6.6 port 22 ssh2 from 192.0.2.7 port 40000 ssh2",
            "192.0.2.7",
        ),
        (
            "Nov 25 16:19:59 host sshd[1]: Failed password for invalid user x from 6.6.6.6 port 22 ssh2: from 192.0.2.7 port 40000 ssh2",
            "192.0.2.7",
        ),
        (
            "Nov 25 16:19:59 host sshd[1]: Connection closed by invalid user x 6.6.6.6 port 22 [preauth] 192.0.2.7 port 40000 [preauth]",
            "192.0.2.7",
        ),
        (
            "Nov 25 16:19:59 host sshd[1]: Disconnected from invalid user 6.6.6.6 port 1 2001:db8::7 port 40000 [preauth]",
            "2001:db8::7",
        ),
        (
            "Nov 25 16:19:59 host sshd[1]: error: maximum authentication attempts exceeded for invalid user a from 6.6.6.6 port 22 ssh2 [preauth] from 192.0.2.7 port 4 ssh2 [preauth]",
            "192.0.2.7",
        ),
        (
            "Nov 25 16:19:59 host sshd[1]: User x from 6.6.6.6 not allowed because y from 192.0.2.7 not allowed because not listed in AllowUsers",
            "192.0.2.7",
        ),
        (
            "Nov 25 16:19:59 host sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.7  user=x rhost=6.6.6.6",
            "192.0.2.7",
        ),
    ] {
        match outcome(&m, line) {
            LineOutcome::Match(h) => assert_eq!(h.addr.to_string(), ip, "{line}"),
            other => panic!("{line}: {other:?}"),
        }
    }
    // Text after the address that imitates the tail is not a second match either.
    miss(
        &m,
        "Nov 25 16:19:59 host sshd[1]: Accepted password for x from 6.6.6.6 port 22 ssh2 Invalid user",
    );
}

#[test]
fn nginx_lines() {
    let m = matcher("nginx");
    hit(
        &m,
        r#"2026/11/25 16:19:59 [error] 1234#1234: *5 user "admin" was not found in "/etc/nginx/.htpasswd", client: 192.0.2.7, server: example.com, request: "GET /private/ HTTP/1.1", host: "example.com""#,
        "192.0.2.7",
        InvalidUser,
        "nginx-auth-user-not-found",
    );
    hit(
        &m,
        r#"2026/11/25 16:19:59 [error] 1234#1234: *5 user "bob": password mismatch, client: 2001:db8::7, server: example.com, request: "GET / HTTP/2.0", host: "example.com""#,
        "2001:db8::7",
        FailedAuth,
        "nginx-auth-password-mismatch",
    );
    hit(
        &m,
        r#"2026/11/25 16:19:59 [error] 1234#1234: *9 limiting requests, excess: 10.500 by zone "one", client: 192.0.2.7, server: example.com, request: "GET / HTTP/1.1", host: "example.com""#,
        "192.0.2.7",
        RateLimited,
        "nginx-limit-req",
    );
    hit(
        &m,
        r#"2026/11/25 16:19:59 [error] 1234#1234: *9 limiting connections by zone "addr", client: 2001:db8::9, server: example.com, request: "GET / HTTP/1.1", host: "example.com""#,
        "2001:db8::9",
        RateLimited,
        "nginx-limit-conn",
    );
    for line in [
        r#"2026/11/25 16:19:59 [error] 1234#1234: *1 open() "/var/www/html/favicon.ico" failed (2: No such file or directory), client: 192.0.2.7, server: example.com, request: "GET /favicon.ico HTTP/1.1", host: "example.com""#,
        r#"2026/11/25 16:19:59 [error] 1234#1234: *1 no user/password was provided for basic authentication, client: 192.0.2.7, server: example.com, request: "GET / HTTP/1.1", host: "example.com""#,
        r#"2026/11/25 16:19:59 [warn] 1234#1234: *1 delaying request, excess: 0.500, by zone "one", client: 192.0.2.7, server: example.com, request: "GET / HTTP/1.1", host: "example.com""#,
        r#"2026/11/25 16:19:59 [notice] 1234#1234: signal process started"#,
    ] {
        miss(&m, line);
    }
    // The user name cannot contain ':' (nginx splits at it), so a forged "client:" there makes
    // the line unmatched rather than mis-attributed; forged fields in request, host and
    // referrer come after the real one.
    for (line, want) in [
        (
            r#"2026/11/25 16:19:59 [error] 1#1: *5 user "x": password mismatch, client: 192.0.2.7, server: s, request: "GET /, client: 6.6.6.6, server: x HTTP/1.1", host: "h", referrer: "a, client: 6.6.6.6, server: b""#,
            Some("192.0.2.7"),
        ),
        (
            r#"2026/11/25 16:19:59 [error] 1#1: *5 user "a" was not found in "b" was not found in "/etc/nginx/.htpasswd", client: 192.0.2.7, server: s, request: "GET / HTTP/1.1", host: "h""#,
            Some("192.0.2.7"),
        ),
        (
            r#"2026/11/25 16:19:59 [error] 1#1: *5 user "x, client: 6.6.6.6, server: y": password mismatch, client: 192.0.2.7, server: s"#,
            None,
        ),
    ] {
        match (outcome(&m, line), want) {
            (LineOutcome::Match(h), Some(ip)) => assert_eq!(h.addr.to_string(), ip, "{line}"),
            (LineOutcome::NoMatch, None) => {}
            (other, _) => panic!("{line}: {other:?}"),
        }
    }
}

#[test]
fn apache_lines() {
    let m = matcher("apache");
    hit(
        &m,
        "[Wed Nov 25 16:19:59.123456 2026] [auth_basic:error] [pid 1234:tid 140234] [client 192.0.2.7:5555] AH01618: user bob not found: /secret",
        "192.0.2.7",
        InvalidUser,
        "apache-auth-user-not-found",
    );
    hit(
        &m,
        "[Wed Nov 25 16:19:59.123456 2026] [auth_basic:error] [pid 1234:tid 140234] [client 2001:db8::1:5555] AH01617: user bob: authentication failure for \"/secret\": Password Mismatch",
        "2001:db8::1",
        FailedAuth,
        "apache-auth-password-mismatch",
    );
    hit(
        &m,
        "[Wed Nov 25 16:19:59.123456 2026] [auth_basic:error] [pid 1234] [client [2001:db8::1]:5555] AH01617: user bob: authentication failure for \"/secret\": Password Mismatch, referer: http://example.com/",
        "2001:db8::1",
        FailedAuth,
        "apache-auth-password-mismatch",
    );
    hit(
        &m,
        "[Wed Nov 25 16:19:59 2026] [auth_digest:error] [pid 1234:tid 1] [client 192.0.2.7:5555] AH01790: user `bob' in realm `r' not found: /secret",
        "192.0.2.7",
        FailedAuth,
        "apache-auth-digest-failure",
    );
    // fail2ban's apache-auth counts a request mod_authz_core denies too.
    hit(
        &m,
        "[Wed Nov 25 16:19:59.123456 2026] [authz_core:error] [pid 1234:tid 1] [client 192.0.2.7:5555] AH01630: client denied by server configuration: /var/www/secret",
        "192.0.2.7",
        Probe,
        "apache-authz-denied",
    );
    for line in [
        "[Wed Nov 25 16:19:59.123456 2026] [mpm_event:notice] [pid 1234:tid 1] AH00489: Apache/2.4.57 (Debian) configured -- resuming normal operations",
        "[Wed Nov 25 16:19:59.123456 2026] [core:error] [pid 1234:tid 1] [client 192.0.2.7:5555] AH00126: Invalid URI in request GET /x HTTP/1.1",
    ] {
        miss(&m, line);
    }
    // The user and URL come after the fixed [client] header.
    hit(
        &m,
        "[Wed Nov 25 16:19:59 2026] [auth_basic:error] [pid 1] [client 192.0.2.7:5555] AH01618: user [client 6.6.6.6:1] not found: /[client 6.6.6.6:2]",
        "192.0.2.7",
        InvalidUser,
        "apache-auth-user-not-found",
    );
}

#[test]
fn postfix_lines() {
    let m = matcher("postfix");
    hit(
        &m,
        "Nov 25 16:19:59 mail postfix/smtpd[4321]: warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
        "192.0.2.7",
        FailedAuth,
        "postfix-sasl-auth-failed",
    );
    hit(
        &m,
        "Nov 25 16:19:59 mail postfix/submission/smtpd[4321]: warning: host.example[2001:db8::7]: SASL PLAIN authentication failed: authentication failure",
        "2001:db8::7",
        FailedAuth,
        "postfix-sasl-auth-failed",
    );
    hit(
        &m,
        "2026-11-25T16:19:59.000000+01:00 mail postfix/smtps/smtpd[4321]: warning: unknown[192.0.2.8]: SASL CRAM-MD5 authentication failed: authentication failure",
        "192.0.2.8",
        FailedAuth,
        "postfix-sasl-auth-failed",
    );
    for line in [
        "Nov 25 16:19:59 mail postfix/smtpd[4321]: connect from unknown[192.0.2.7]",
        "Nov 25 16:19:59 mail postfix/smtpd[4321]: disconnect from unknown[192.0.2.7] ehlo=1 auth=0/1 quit=1 commands=2/3",
        "Nov 25 16:19:59 mail postfix/smtpd[4321]: warning: hostname x.example does not resolve to address 192.0.2.7",
        "Nov 25 16:19:59 mail postfix/smtpd[4321]: 4AbCd: client=host.example[192.0.2.7], sasl_method=PLAIN, sasl_username=bob",
        "Nov 25 16:19:59 mail sshd[4321]: warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: x",
    ] {
        miss(&m, line);
    }
}

#[test]
fn dovecot_lines() {
    let m = matcher("dovecot");
    hit(
        &m,
        "Nov 25 16:19:59 mail dovecot: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<bob>, method=PLAIN, rip=192.0.2.7, lip=192.0.2.1, TLS, session=<AbCdEf123>",
        "192.0.2.7",
        FailedAuth,
        "dovecot-login-auth-failed",
    );
    hit(
        &m,
        "Nov 25 16:19:59 mail dovecot: pop3-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=2001:db8::7, lip=2001:db8::1, session=<Zz9>",
        "2001:db8::7",
        FailedAuth,
        "dovecot-login-auth-failed",
    );
    hit(
        &m,
        "Nov 25 16:19:59 mail dovecot: imap-login: Disconnected: Inactivity (auth failed, 1 attempts in 178 secs): user=<bob>, method=PLAIN, rip=192.0.2.7, lip=192.0.2.1, TLS, session=<x>",
        "192.0.2.7",
        FailedAuth,
        "dovecot-login-auth-failed",
    );
    hit(
        &m,
        "Nov 25 16:19:59 mail dovecot: auth: passwd-file(admin,192.0.2.7,<AbCdEf123>): unknown user",
        "192.0.2.7",
        InvalidUser,
        "dovecot-auth-unknown-user",
    );
    hit(
        &m,
        "Nov 25 16:19:59 mail dovecot: auth: passwd-file(bob,2001:db8::7): Password mismatch",
        "2001:db8::7",
        FailedAuth,
        "dovecot-auth-password-mismatch",
    );
    hit(
        &m,
        "Nov 25 16:19:59 mail dovecot: auth-worker(1234): pam(bob,192.0.2.7,<s1>): pam_authenticate() failed: Authentication failure (password mismatch?)",
        "192.0.2.7",
        FailedAuth,
        "dovecot-auth-password-mismatch",
    );
    for line in [
        "Nov 25 16:19:59 mail dovecot: imap-login: Login: user=<bob>, method=PLAIN, rip=192.0.2.7, lip=192.0.2.1, mpid=1, TLS, session=<x>",
        "Nov 25 16:19:59 mail dovecot: imap-login: Disconnected (no auth attempts in 0 secs): user=<>, rip=192.0.2.7, lip=192.0.2.1, session=<x>",
        "Nov 25 16:19:59 mail dovecot: imap(bob)<1><x>: Logged out in=1 out=2",
        "Nov 25 16:19:59 mail CRON[1]: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<bob>, method=PLAIN, rip=192.0.2.7, lip=192.0.2.1",
    ] {
        miss(&m, line);
    }
    for line in [
        "Nov 25 16:19:59 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=6.6.6.6, lip=1.1.1.1>, method=PLAIN, rip=192.0.2.7, lip=192.0.2.1, TLS, session=<s>",
        "Nov 25 16:19:59 mail dovecot: auth: passwd-file(x,6.6.6.6): unknown user,192.0.2.7,<s>): unknown user",
        "Nov 25 16:19:59 mail dovecot: auth: passwd-file(x,6.6.6.6,<a>): Password mismatch,192.0.2.7): Password mismatch",
    ] {
        match outcome(&m, line) {
            LineOutcome::Match(h) => assert_eq!(h.addr.to_string(), "192.0.2.7", "{line}"),
            other => panic!("{line}: {other:?}"),
        }
    }
}

#[test]
fn dovecot_login_and_auth_lines_share_the_session() {
    let m = matcher("dovecot");
    let key = |line: &str| match outcome(&m, line) {
        LineOutcome::Match(h) => h.attempt.unwrap().connection,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        key("Nov 25 16:19:59 mail dovecot: auth: passwd-file(x,192.0.2.7,<AbC>): unknown user"),
        key(
            "Nov 25 16:19:59 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=192.0.2.7, lip=192.0.2.1, session=<AbC>"
        )
    );
}

#[test]
fn user_patterns_follow_the_builtins() {
    let mut config = ServiceConfig::builtin("ssh", BanDuration::from_secs(60)).unwrap();
    config.patterns.push(
        Pattern::new(
            "my-ssh",
            r"sshd\[\d+\]: Bad luck from (?P<ip>\S+)$",
            "bad_luck".parse().unwrap(),
        )
        .unwrap(),
    );
    let m = ServiceMatcher::new("ssh", &config).unwrap();
    hit(
        &m,
        "Nov 25 16:19:59 host sshd[1]: Bad luck from 2001:db8::5",
        "2001:db8::5",
        Other("bad_luck".into()),
        "my-ssh",
    );
    hit(
        &m,
        "Nov 25 16:19:59 host sshd[1]: Invalid user a from 192.0.2.7 port 1",
        "192.0.2.7",
        InvalidUser,
        "ssh-invalid-user",
    );
    // A host name in the user's ip group is not an address.
    miss(
        &m,
        "Nov 25 16:19:59 host sshd[1]: Bad luck from evil.example",
    );

    let mut custom = ServiceConfig::custom(BanDuration::from_secs(60));
    assert!(ServiceMatcher::new("myapp", &custom).is_err());
    custom.patterns.push(
        Pattern::new(
            "login",
            r"login failed ip=(?P<ip>[0-9a-f:.]+)",
            "failed_auth".parse().unwrap(),
        )
        .unwrap(),
    );
    let m = ServiceMatcher::new("myapp", &custom).unwrap();
    match outcome(&m, "2026-11-25T16:19:59Z app: login failed ip=192.0.2.7") {
        LineOutcome::Match(h) => {
            assert_eq!(h.addr.to_string(), "192.0.2.7");
            assert_eq!(h.time, Some(1_795_623_599));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn over_long_and_invalid_utf8_lines() {
    let m = matcher("ssh");
    let ctx = LineContext::at(NOW);
    let mut long = b"Nov 25 16:19:59 host sshd[1]: Invalid user ".to_vec();
    long.resize(1 << 20, b'a');
    long.extend_from_slice(b" from 192.0.2.7 port 22");
    assert_eq!(
        m.match_line(&long, &ctx),
        LineOutcome::Skipped(SkipReason::TooLong)
    );
    assert_eq!(m.stats().too_long, 1);

    // Invalid UTF-8 in the user name: still matched (bytes), and counted.
    let bad = b"Nov 25 16:19:59 host sshd[1]: Invalid user \xff\xfe from 192.0.2.7 port 22";
    match m.match_line(bad, &ctx) {
        LineOutcome::Match(h) => assert_eq!(h.addr.to_string(), "192.0.2.7"),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.stats().invalid_utf8, 1);
    let garbage: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    assert_eq!(m.match_line(&garbage, &ctx), LineOutcome::NoMatch);

    let config = ServiceConfig::builtin("ssh", BanDuration::from_secs(60)).unwrap();
    let strict = ServiceMatcher::with_policy("ssh", &config, Utf8Policy::Skip).unwrap();
    assert_eq!(
        strict.match_line(bad, &ctx),
        LineOutcome::Skipped(SkipReason::InvalidUtf8)
    );
    assert_eq!(strict.stats().invalid_utf8, 1);
}

#[test]
fn hits_carry_time_pid_and_port() {
    let m = matcher("ssh");
    let LineOutcome::Match(h) = outcome(
        &m,
        "Nov 25 16:19:59 host sshd[1234]: Failed password for root from 192.0.2.7 port 51234 ssh2",
    ) else {
        panic!()
    };
    assert_eq!(h.time, Some(1_795_623_599));
    assert_eq!(h.port, Some(51234));
    assert_eq!(h.attempt.unwrap().connection, 1234);
    // Journal-shaped line: time and pid come from the context.
    let ctx = LineContext {
        time: Some(1_700_000_000),
        ..LineContext::at(NOW)
    };
    let LineOutcome::Match(h) =
        m.match_line(b"sshd[77]: Invalid user a from 192.0.2.7 port 1", &ctx)
    else {
        panic!()
    };
    assert_eq!(
        (h.time, h.attempt.unwrap().connection),
        (Some(1_700_000_000), 77)
    );
}

/// A message too long for the fast engine (a 30 KB user name) is still read, by the regex
/// crate, with the same answer.
#[test]
fn long_messages_give_the_same_answer() {
    let m = matcher("ssh");
    let user = "a".repeat(30_000);
    hit(
        &m,
        &format!(
            "Nov 25 16:19:59 host sshd[1234]: Failed password for invalid user {user} from 192.0.2.7 port 22 ssh2"
        ),
        "192.0.2.7",
        InvalidUser,
        "ssh-failed-invalid-user",
    );
    let forged = format!("{user} from 198.18.0.66 port 1 ssh2");
    hit(
        &m,
        &format!(
            "Nov 25 16:19:59 host sshd[1234]: Failed password for invalid user {forged} from 192.0.2.7 port 22 ssh2"
        ),
        "192.0.2.7",
        InvalidUser,
        "ssh-failed-invalid-user",
    );
}

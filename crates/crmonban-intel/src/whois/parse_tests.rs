//! Unit tests of `whois/parse.rs`.
use super::*;

fn fixture(name: &str) -> String {
    let bytes = match name {
        "arin-8.8.8.8" => &include_bytes!("fixtures/arin-8.8.8.8.txt")[..],
        "arin-rwhois" => &include_bytes!("fixtures/arin-rwhois.txt")[..],
        "arin-192.162.140.10" => &include_bytes!("fixtures/arin-192.162.140.10.txt")[..],
        "iana-8.8.8.8" => &include_bytes!("fixtures/iana-8.8.8.8.txt")[..],
        "ripe-193.0.6.139" => &include_bytes!("fixtures/ripe-193.0.6.139.txt")[..],
        "ripe-error-201" => &include_bytes!("fixtures/ripe-error-201.txt")[..],
        "ripe-error-201-daily" => &include_bytes!("fixtures/ripe-error-201-daily.txt")[..],
        "lacnic-rate-limit" => &include_bytes!("fixtures/lacnic-rate-limit.txt")[..],
        "apnic-202.12.29.1" => &include_bytes!("fixtures/apnic-202.12.29.1.txt")[..],
        other => panic!("no fixture {other}"),
    };
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn arin_keeps_the_most_specific_network_of_several() {
    let record = record(Format::Arin, &fixture("arin-8.8.8.8"));
    assert_eq!(record.organization.as_deref(), Some("Google LLC"));
    assert_eq!(record.network_name.as_deref(), Some("GOGL"));
    assert_eq!(record.range.as_deref(), Some("8.8.8.0 - 8.8.8.255"));
    assert_eq!(record.country.as_deref(), Some("US"));
    assert_eq!(
        record.abuse_contact.as_deref(),
        Some("network-abuse@google.com")
    );
}

#[test]
fn arin_customer_without_contacts_takes_the_parent_networks_abuse_contact() {
    let answer = "\
NetRange:       198.51.96.0 - 198.51.127.255
NetName:        EXAMPLE-ISP-BLK1
Organization:   Example ISP, Inc. (EXISP)

OrgName:        Example ISP, Inc.
Country:        US
OrgAbuseEmail:  abuse@example-isp.net

NetRange:       198.51.100.0 - 198.51.100.255
CIDR:           198.51.100.0/24
NetName:        EXISP-CUST-4711
NetType:        Reassigned
Customer:       Example Widgets (C01234567)

CustName:       Example Widgets
City:           Springfield
Country:        us
";
    let record = record(Format::Arin, answer);
    assert_eq!(record.organization.as_deref(), Some("Example Widgets"));
    assert_eq!(record.network_name.as_deref(), Some("EXISP-CUST-4711"));
    assert_eq!(record.country.as_deref(), Some("US"));
    assert_eq!(
        record.abuse_contact.as_deref(),
        Some("abuse@example-isp.net")
    );
}

#[test]
fn arin_rwhois_referral_is_not_followed_and_arin_answer_is_read() {
    let answer = fixture("arin-rwhois");
    assert_eq!(referral(&answer), None);
    let record = record(Format::Arin, &answer);
    assert_eq!(record.organization.as_deref(), Some("Example ISP, Inc."));
    assert_eq!(
        record.abuse_contact.as_deref(),
        Some("abuse@example-isp.net")
    );
}

#[test]
fn referrals_are_read_from_iana_arin_and_whois_server_lines() {
    let iana = referral(&fixture("iana-8.8.8.8")).expect("IANA refers");
    assert_eq!((iana.host.as_str(), iana.port), ("whois.arin.net", 43));
    let arin = referral(&fixture("arin-192.162.140.10")).expect("ARIN refers");
    assert_eq!((arin.host.as_str(), arin.port), ("whois.ripe.net", 43));
    let with_port = referral("ReferralServer:  whois://Whois.Example.NET:4343/\n")
        .expect("whois:// with a port");
    assert_eq!(
        (with_port.host.as_str(), with_port.port),
        ("whois.example.net", 4343)
    );
    let whois_server = referral(
        "Domain: x\r\n   Whois Server: whois.example.org\r\nWhois Server: whois.example.org\r\n",
    )
    .expect("Whois Server");
    assert_eq!(whois_server.host, "whois.example.org");
    assert_eq!(referral("ReferralServer: http://example.net/\n"), None);
    assert_eq!(referral("refer: not a host!\n"), None);
    assert_eq!(referral(&fixture("ripe-193.0.6.139")), None);
}

#[test]
fn ripe_org_name_comes_from_the_organisation_object_and_abuse_from_the_comment() {
    let record = record(Format::Rpsl, &fixture("ripe-193.0.6.139"));
    assert_eq!(
        record.organization.as_deref(),
        Some("Reseaux IP Europeens Network Coordination Centre (RIPE NCC)")
    );
    assert_eq!(record.network_name.as_deref(), Some("RIPE-NCC"));
    assert_eq!(record.range.as_deref(), Some("193.0.0.0 - 193.0.7.255"));
    assert_eq!(record.country.as_deref(), Some("NL"));
    assert_eq!(record.abuse_contact.as_deref(), Some("abuse@ripe.net"));
}

#[test]
fn rpsl_abuse_c_role_is_used_when_there_is_no_comment() {
    let answer = "\
inetnum:        192.0.2.0 - 192.0.2.255
netname:        EXAMPLE-NET
descr:          Example network
country:        DE # comment
abuse-c:        AR1-TEST
admin-c:        JD1-TEST
source:         TEST

person:         John Doe
e-mail:         john@example.net
nic-hdl:        JD1-TEST

role:           Abuse role
e-mail:         noc@example.net
abuse-mailbox:  abuse@example.net
nic-hdl:        AR1-TEST
";
    let record = record(Format::Rpsl, answer);
    assert_eq!(record.organization.as_deref(), Some("Example network"));
    assert_eq!(record.country.as_deref(), Some("DE"));
    assert_eq!(record.abuse_contact.as_deref(), Some("abuse@example.net"));
}

#[test]
fn rpsl_keeps_the_narrowest_of_several_networks() {
    let answer = "\
inetnum:        192.0.0.0 - 192.0.255.255
netname:        WIDE
country:        NL

inetnum:        192.0.2.0 - 192.0.2.127
netname:        NARROW
country:        BE

inetnum:        192.0.2.0 - 192.0.2.255
netname:        MIDDLE
country:        FR
";
    let record = record(Format::Rpsl, answer);
    assert_eq!(record.network_name.as_deref(), Some("NARROW"));
    assert_eq!(record.country.as_deref(), Some("BE"));
}

#[test]
fn apnic_abuse_mailbox_comes_from_the_irt_object() {
    let record = record(Format::Rpsl, &fixture("apnic-202.12.29.1"));
    assert_eq!(record.abuse_contact.as_deref(), Some("abuse@apnic.net"));
    assert_eq!(
        record.organization.as_deref(),
        Some("Asia Pacific Network Information Centre")
    );
}

#[test]
fn refusals_and_rate_limits_are_told_apart() {
    match denial(&fixture("ripe-error-201")) {
        Some(Denial::Refused(message)) => {
            assert!(message.starts_with("ERROR:201: access denied"), "{message}");
            assert!(message.contains("permanently"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        denial(&fixture("ripe-error-201-daily")),
        Some(Denial::RateLimited(_))
    ));
    assert!(matches!(
        denial(&fixture("lacnic-rate-limit")),
        Some(Denial::RateLimited(_))
    ));
    assert!(matches!(
        denial("%ERROR:306: connections exceeded\n"),
        Some(Denial::RateLimited(_))
    ));
    assert!(matches!(
        denial("HTTP/1.1 429 Too Many Requests\r\n"),
        Some(Denial::RateLimited(_))
    ));
    assert!(matches!(
        denial("%ERROR:203: you are not allowed to act as a proxy\n"),
        Some(Denial::Refused(_))
    ));
    // "No entries found" is an empty answer, not a refusal.
    assert_eq!(
        denial("%ERROR:101: no entries found\n%\n% No entries found in source RIPE.\n"),
        None
    );
    // A record's remarks never count as a notice.
    assert_eq!(
        denial("inetnum: 192.0.2.0 - 192.0.2.255\nremarks: query rate limit exceeded? not us\n"),
        None
    );
    assert_eq!(denial(&fixture("arin-8.8.8.8")), None);
    assert_eq!(denial(&fixture("ripe-193.0.6.139")), None);
}

#[test]
fn fields_are_bounded_and_cleaned() {
    let long_name = "x".repeat(2000);
    let wide = "é".repeat(200);
    let answer = format!(
        "inetnum: 192.0.2.0 - 192.0.2.255\nnetname: {long_name}\nnetname: EVIL\u{1b}[31mNET\u{7}\ndescr: {wide}\ncountry: nl\n"
    );
    let record = record(Format::Rpsl, &answer);
    // The 2000-byte line is skipped whole; the next netname is cleaned of control bytes.
    assert_eq!(record.network_name.as_deref(), Some("EVIL[31mNET"));
    let organization = record.organization.expect("descr kept");
    assert!(organization.len() <= MAX_FIELD_BYTES);
    assert!(organization.chars().all(|c| c == 'é'));
    assert_eq!(record.country.as_deref(), Some("NL"));
}

#[test]
fn filtered_addresses_are_no_abuse_contact() {
    assert_eq!(email("***@afrinic.net"), None);
    assert_eq!(email("# Filtered"), None);
    assert_eq!(
        email("abuse@example.net # validated"),
        Some("abuse@example.net".into())
    );
    assert_eq!(
        email("<abuse@example.net>"),
        Some("abuse@example.net".into())
    );
}

#[test]
fn range_sizes_compare_both_notations() {
    assert_eq!(range_size("8.8.8.0 - 8.8.8.255"), Some(255));
    assert_eq!(range_size("200.1.112.0/20"), Some(4095));
    assert_eq!(range_size("2001:67c:2e8::/48"), Some((1u128 << 80) - 1));
    assert_eq!(range_size("::/0"), Some(u128::MAX));
    assert_eq!(
        range_size("2001:4860:: - 2001:4860:ffff:ffff:ffff:ffff:ffff:ffff"),
        Some((1u128 << 96) - 1)
    );
    assert_eq!(range_size("garbage"), None);
}

#[test]
fn unknown_servers_answers_are_recognised_by_their_attributes() {
    assert_eq!(
        Format::of("rwhois.example.net", "NetRange: 1.0.0.0 - 1.0.0.255\n"),
        Format::Arin
    );
    assert_eq!(
        Format::of(
            "whois.registro.br",
            "inetnum: 200.160.0.0/20\nowner: NIC.br\n"
        ),
        Format::Lacnic
    );
    assert_eq!(
        Format::of(
            "whois.example.net",
            "inetnum: 1.0.0.0 - 1.0.0.255\nnetname: X\n"
        ),
        Format::Rpsl
    );
}

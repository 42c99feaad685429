//! Intel through the real daemon, as an administrator meets it: GeoIP databases on disk (test
//! fixtures in the real MaxMind format) and a WHOIS server inside the daemon's namespace; a
//! ban through `crmonctl` fills the cache in the background, `crmonctl intel` prints it in the
//! original README's layout for every user, gathering again is for root and group crmonban
//! only, and `crmonctl list` and `status` show it. Panics without root.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;

use crmonban_testutil::mmdb::{self, CityEntry};
use crmonban_testutil::{NetNs, PATIENCE, PrivateBus, wait_until};
use support::*;

const RIPE_ANSWER: &str = "\
% This is the RIPE Database query service.\r
% The objects are in RPSL format.\r
\r
% Abuse contact for '203.0.113.0 - 203.0.113.127' is 'abuse@example-hosting.net'\r
\r
inetnum:        203.0.113.0 - 203.0.113.127\r
netname:        EXAMPLE-HOSTING-NET\r
country:        DE\r
org:            ORG-EH1-RIPE\r
status:         ASSIGNED PA\r
source:         RIPE\r
\r
organisation:   ORG-EH1-RIPE\r
org-name:       Example Hosting GmbH\r
org-type:       LIR\r
source:         RIPE\r
";

/// A WHOIS server answering every query with [`RIPE_ANSWER`], listening inside `host`.
fn whois_server_in(host: &NetNs) -> u16 {
    let listener = host.run(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut socket in listener.incoming().flatten() {
            let mut query = [0u8; 256];
            let _ = socket.read(&mut query);
            let _ = socket.write_all(RIPE_ANSWER.as_bytes());
        }
    });
    port
}

#[test]
fn root_a_ban_gathers_intel_that_crmonctl_shows_to_every_user() {
    let geo = tempfile::tempdir().unwrap();
    let city = geo.path().join("GeoLite2-City.mmdb");
    let asn = geo.path().join("GeoLite2-ASN.mmdb");
    mmdb::write_city(
        &city,
        mmdb::GEOLITE2_CITY,
        &[CityEntry {
            network: "203.0.113.0/24",
            country_code: Some("DE"),
            country_name: Some("Germany"),
            region: Some("Bavaria"),
            city: Some("Nuremberg"),
            latitude: Some(49.4478),
            longitude: Some(11.0683),
            time_zone: Some("Europe/Berlin"),
            ..CityEntry::default()
        }],
    )
    .unwrap();
    mmdb::write_asn(
        &asn,
        mmdb::GEOLITE2_ASN,
        &[("203.0.113.0/24", 24940, "Hetzner Online GmbH")],
    )
    .unwrap();
    let host = NetNs::new("d-intel");
    let port = whois_server_in(&host);
    let daemon = Daemon::start_on(
        host,
        PrivateBus::system_like(&policy_file()),
        &format!(
            "[intel]\ngeoip_city_db = \"{}\"\ngeoip_asn_db = \"{}\"\nwhois_enabled = true\n\
             whois_server = \"127.0.0.1:{port}\"\ntimeout_secs = 5\n",
            city.display(),
            asn.display()
        ),
    );

    let status = text(&daemon.ctl(&["status"]).stdout);
    assert!(status.contains("geoip, whois"), "{status}");
    assert!(
        status.contains("intel_problems:") && status.contains("none"),
        "{status}"
    );

    let out = daemon.ctl(&["ban", "203.0.113.7", "-r", "port scan"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Nobody may read what the ban's background gathering cached, once it is there.
    let shown = wait_until("the ban's intel in the cache", PATIENCE, || {
        let out = daemon.ctl_as_nobody(&["intel", "203.0.113.7"]);
        out.status.success().then(|| text(&out.stdout))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    for line in [
        "IP: 203.0.113.7\n",
        "--- Location ---\nCountry: Germany (DE)\nCity: Nuremberg, Bavaria\n",
        "Timezone: Europe/Berlin\n",
        "--- Network ---\nASN: AS24940 (Hetzner Online GmbH)\n",
        "--- Flags ---\n⚠ Hosting/Datacenter (AS24940 is a hosting network (Hetzner Online))\n",
        "--- WHOIS ---\n",
        "Organization: Example Hosting GmbH\n",
        "Network: EXAMPLE-HOSTING-NET (203.0.113.0 - 203.0.113.127)\n",
        "Abuse contact: abuse@example-hosting.net\n",
    ] {
        assert!(shown.contains(line), "missing {line:?} in:\n{shown}");
    }

    // Gathering again asks remote services: root may, nobody may not.
    let out = daemon.ctl_as_nobody(&["intel", "203.0.113.7", "-r"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("needs uid 0 or group crmonban"),
        "{}",
        text(&out.stderr)
    );
    let out = daemon.ctl(&["intel", "203.0.113.7", "-r", "-j"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["network"]["asn"], 24940);
    assert_eq!(json["whois"]["country"], "DE");
    // Nothing cached about an address never banned: nobody is told so, not given a gather.
    let out = daemon.ctl_as_nobody(&["intel", "198.51.100.1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));

    let list = text(&daemon.ctl(&["list"]).stdout);
    assert!(
        list.contains("COUNTRY") && list.contains(" DE ") && list.contains("AS24940 Hetzner"),
        "{list}"
    );

    // The next ban of the address says who it is.
    assert!(daemon.ctl(&["unban", "203.0.113.7"]).status.success());
    assert!(
        daemon
            .ctl(&["ban", "203.0.113.7", "-r", "again"])
            .status
            .success()
    );
    let list = text(&daemon.ctl(&["list", "-f", "json"]).stdout);
    let bans: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        bans[0]["reason"], "again [DE, AS24940 Hetzner Online GmbH, hosting]",
        "{list}"
    );
    assert_eq!(bans[0]["country"], "DE");
}

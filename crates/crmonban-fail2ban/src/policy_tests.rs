use super::*;
use crate::map::enabled_jails;

fn convert(jail_local: &str) -> (Whitelist, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jail.local"), jail_local).unwrap();
    let config = JailConfig::read(dir.path()).unwrap();
    let mut report = Report::new(&config.files);
    let jails = enabled_jails(&config, &mut report);
    let list = whitelist(&config, &mut report, &jails);
    actions(&config, &mut report, &jails);
    machinery(&config, &mut report, &jails);
    let shown = dir.path().display().to_string();
    (list, report.text().replace(&shown, "DIR"))
}

#[test]
fn ignoreip_entries() {
    let (list, report) = convert(
        "[DEFAULT]\nenabled = true\n\
         ignoreip = 127.0.0.1/8 ::1 fe80::/64 169.254.1.1\n  10.1.2.3/255.255.0.0, 192.0.2.7/32\n  \
         2001:DB8::/32 ::ffff:198.51.100.1 file:///etc/fail2ban/ignore.txt\n  \
         10.0.0.0/255.0.255.0 host-1.example.org 300.1.2.3\n\
         [sshd]\n[postfix]\nignoreself = false\nignorecommand = /usr/local/bin/trusted <ip>\n",
    );
    let networks: Vec<String> = list.networks.iter().map(Target::to_string).collect();
    assert_eq!(
        networks,
        ["10.1.0.0/16", "192.0.2.7", "2001:db8::/32", "198.51.100.1"]
    );
    assert_eq!(list.files, ["/etc/fail2ban/ignore.txt"]);
    for expected in [
        "DIR/jail.local:3: [DEFAULT] ignoreip = 10.0.0.0/255.0.255.0: 255.0.255.0 is not a \
         contiguous netmask (jails: postfix, sshd)",
        "DIR/jail.local:3: [DEFAULT] ignoreip = host-1.example.org: a host name",
        "DIR/jail.local:3: [DEFAULT] ignoreip = 300.1.2.3: invalid address \"300.1.2.3\"",
        "DIR/jail.local:3: [DEFAULT] ignoreip = file:///etc/fail2ban/ignore.txt: a \
         [[whitelist.sources]] file",
        "DIR/jail.local:9: [postfix] ignoreself = false: crmonban never bans the host's own \
         addresses",
        "DIR/jail.local:10: [postfix] ignorecommand = /usr/local/bin/trusted <ip>: crmonban runs \
         no commands",
    ] {
        assert!(report.contains(expected), "{expected}\n{report}");
    }
}

#[test]
fn actions_by_kind() {
    let (_, report) = convert(
        "[DEFAULT]\nenabled = true\nbanaction = firewallcmd-rich-rules\n\
         action = %(banaction)s[port=\"ssh\"]\n  abuseipdb[abuseipdb_apikey=\"secret\"]\n  \
         mail-whois[dest=root]\n  cloudflare\n\
         [sshd]\nusedns = no\n[postfix]\nusedns = yes\nlogencoding = latin-1\n\
         failregex = ^bad from <HOST>$\n",
    );
    for expected in [
        "DIR/jail.local:3: [DEFAULT] banaction = firewallcmd-rich-rules: crmonban bans in its own \
         nftables sets",
        "DIR/jail.local:4: [DEFAULT] action = abuseipdb: crmonban reports bans to AbuseIPDB itself",
        "DIR/jail.local:4: [DEFAULT] action = mail-whois: crmonban sends no mail",
        "DIR/jail.local:4: [DEFAULT] action = cloudflare: crmonban runs no actions besides its own \
         bans",
        "DIR/jail.local:11: [postfix] usedns = yes: crmonban's patterns match addresses only",
        "DIR/jail.local:12: [postfix] logencoding = latin-1: crmonban reads logs as UTF-8",
        "DIR/jail.local:13: [postfix] failregex = ^bad from <HOST>$: regexes in the jail are not \
         carried over",
    ] {
        assert!(report.contains(expected), "{expected}\n{report}");
    }
    assert!(!report.contains("[sshd] usedns"), "{report}");
    assert!(
        !report.contains("secret"),
        "option values are not shown: {report}"
    );
}

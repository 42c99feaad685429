use super::*;
use crate::map::enabled_jails;

fn escalate(jail_local: &str) -> (Option<Escalation>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jail.local"), jail_local).unwrap();
    let config = JailConfig::read(dir.path()).unwrap();
    let mut report = Report::new(&config.files);
    let jails = enabled_jails(&config, &mut report);
    let found = escalation(&config, &mut report, &jails);
    let shown = dir.path().display().to_string();
    (found, report.text().replace(&shown, "DIR"))
}

fn shape(e: &Option<Escalation>) -> (f64, u64) {
    let e = e.as_ref().expect("an escalation");
    (e.increment, e.max_ban_time)
}

#[test]
fn the_default_formula_doubles_without_a_cap() {
    let (e, report) = escalate(
        "[DEFAULT]\nenabled = true\nbantime = 1h\nbantime.increment = true\n\
         bantime.overalljails = true\n[sshd]\n[postfix]\n",
    );
    assert_eq!(shape(&e), (2.0, 0));
    assert_eq!(e.unwrap().jails, ["sshd", "postfix"]);
    assert_eq!(report, "");
}

#[test]
fn doubling_multipliers_are_exact_and_their_last_one_caps() {
    let (e, report) = escalate(
        "[sshd]\nenabled = true\nbantime = 10m\nbantime.increment = true\n\
         bantime.multipliers = 1 2 4 8 16 32 64\nbantime.overalljails = yes\n",
    );
    assert_eq!(shape(&e), (2.0, 64 * 600));
    assert_eq!(report, "");
    // bantime.maxtime caps lower still.
    let (e, _) = escalate(
        "[sshd]\nenabled = true\nbantime = 10m\nbantime.increment = true\n\
         bantime.multipliers = 1 2 4 8 16 32 64\nbantime.maxtime = 2h\n",
    );
    assert_eq!(shape(&e), (2.0, 7200));
}

#[test]
fn other_series_and_factors_are_approximated_and_reported() {
    let (e, report) = escalate(
        "[sshd]\nenabled = true\nbantime = 1m\nbantime.increment = true\n\
         bantime.multipliers = 1 5 30 60 300 720 1440 2880\n",
    );
    // 3.12^7 is about 2880: the last step is reached after as many bans.
    assert_eq!(shape(&e), (3.12, 2880 * 60));
    assert!(
        report.contains(
            "DIR/jail.local:5: [sshd] bantime.multipliers = 1 5 30 60 300 720 1440 2880: not a \
             geometric series"
        ),
        "{report}"
    );
    let (e, report) = escalate(
        "[sshd]\nenabled = true\nbantime = 1h\nbantime.increment = true\nbantime.factor = 3\n\
         bantime.formula = ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)\n\
         bantime.rndtime = 5m\n[nginx-http-auth]\nenabled = true\n",
    );
    assert_eq!(shape(&e), (2.0, 0));
    for expected in [
        "DIR/jail.local:5: [sshd] bantime.factor = 3: crmonban has no factor",
        "DIR/jail.local:6: [sshd] bantime.formula = ban.Time * math.exp",
        "bantime.overalljails: unset or false",
        "DIR/jail.local:9: [nginx-http-auth]: no bantime.increment here",
    ] {
        assert!(report.contains(expected), "{expected}\n{report}");
    }
}

#[test]
fn jails_escalating_differently_share_the_largest() {
    let (e, report) = escalate(
        "[DEFAULT]\nenabled = true\nbantime.increment = true\nbantime.overalljails = true\n\
         [sshd]\nbantime = 1h\nbantime.maxtime = 1d\n\
         [postfix]\nbantime = 1h\nbantime.multipliers = 1 3 9\n",
    );
    assert_eq!(shape(&e), (3.0, 86_400));
    assert!(
        report.contains(
            "bantime.increment: the jails escalate differently ([sshd] ×2, cap 86400 s; \
             [postfix] ×3, cap 32400 s)"
        ),
        "{report}"
    );
    assert_eq!(
        escalate("[sshd]\nenabled = true\n").0,
        None,
        "no bantime.increment, no escalation"
    );
}

//! `crmonctl report --html` as a user sees it: the binary asks a fake daemon (tests/support)
//! for a busy day's statistics (crates/crmonban-report/tests/data/report-stats.json, hostile
//! strings included, shared with that crate's unit tests), writes the page, and headless
//! Chromium (Debian's `chromium`; `cargo xtask deps` installs it) opens it. The page must
//! render without a single console message (a blocked load, a blocked script, an error), and
//! — measured by a checking script in a test copy of the page — show the map with a shape per
//! country and the attacked ones shaded, the hourly bars, the tables, and no script of anyone
//! else. Fails, never skips, without Chromium.

// Shared with tests/cli.rs, which uses the rest of it.
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crmonban_testutil::PrivateBus;
use serde_json::Value;
use support::{Callers, FakeDaemon, run_at};

const STATS: &str = include_str!("../../../crates/crmonban-report/tests/data/report-stats.json");
const CHROMIUM: &str = "/usr/bin/chromium";
/// Long enough for a cold start on a loaded 2-core machine.
const CHROMIUM_PATIENCE: Duration = Duration::from_secs(90);

/// Runs in a test copy of the page before anything else: records errors and blocked loads.
const RECORDER: &str = "<script>window.crmonbanErrors=[];\
addEventListener('error',e=>crmonbanErrors.push('error: '+(e.message||e.target.outerHTML)),true);\
addEventListener('securitypolicyviolation',e=>crmonbanErrors.push('csp: '+e.violatedDirective+' '+e.blockedURI));\
</script>";

/// Runs in a test copy of the page after everything else: what a reader would see, counted
/// and measured after layout, written into the DOM for `--dump-dom`.
const CHECKER: &str = "<script>(()=>{\
const all=s=>[...document.querySelectorAll(s)];\
const box=e=>{if(!e)return[0,0];const r=e.getBoundingClientRect();return[Math.round(r.width),Math.round(r.height)]};\
const result={\
countries:all('svg.map path[data-cc]').length,\
shaded:all('svg.map path.hit').map(p=>p.dataset.cc),\
shadedFills:[...new Set(all('svg.map path.hit').map(p=>getComputedStyle(p).fill))].length,\
plainFill:getComputedStyle(document.querySelector('svg.map path[data-cc=\"FR\"]')).fill,\
mapTitles:all('svg.map path[data-cc] > title').length,\
map:box(document.querySelector('svg.map')),\
germany:box(document.querySelector('svg.map path[data-cc=\"DE\"]')),\
legendSwatches:all('svg.legend rect.swatch').length,\
bars:all('rect.bar').length,\
tallestBar:Math.max(...all('rect.bar').map(r=>r.getBoundingClientRect().height)),\
hbars:all('rect.hbar').length,\
tables:all('table').length,\
rows:all('tbody tr').length,\
scripts:all('script').length,\
images:all('img,image,iframe,object,embed,link').length,\
title:document.title,\
errors:window.crmonbanErrors};\
const out=document.createElement('pre');out.id='crmonban-check';\
out.textContent=JSON.stringify(result);document.body.appendChild(out);})();</script>";

/// Chromium's output for one page: the serialized DOM and its log.
struct Rendered {
    dom: String,
    log: String,
}

impl Rendered {
    /// The console messages Chromium logged (`--log-level=0` prints each as `:CONSOLE`).
    fn console(&self) -> Vec<&str> {
        self.log
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .collect()
    }
}

/// Opens `page` in headless Chromium with a profile of its own under `work`, without network
/// or background services; returns the DOM after loading.
fn chromium(page: &Path, work: &Path, extra: &[&str]) -> Rendered {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package (cargo xtask deps does)"
    );
    static PROFILES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = PROFILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile = work.join(format!("chromium-profile-{n}"));
    let (dom_path, log_path) = (
        work.join(format!("dom-{n}.html")),
        work.join(format!("log-{n}.txt")),
    );
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--log-level=0",
            "--window-size=1280,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom_path).unwrap())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHROMIUM_PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within {CHROMIUM_PATIENCE:?}:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let rendered = Rendered {
        dom: std::fs::read_to_string(&dom_path).unwrap(),
        log: std::fs::read_to_string(&log_path).unwrap(),
    };
    assert!(
        status.success(),
        "chromium failed ({status}):\n{}",
        rendered.log
    );
    rendered
}

/// The page as crmonctl writes it from the fake daemon's [`STATS`], in `work`.
fn write_report(bus: &PrivateBus, work: &Path) -> (PathBuf, String) {
    let daemon = FakeDaemon::start(bus.address(), None, Callers::Trusted);
    daemon.state.lock().unwrap().stats = Some(STATS.to_owned());
    let page = work.join("report.html");
    let r = run_at(bus.address(), &["report", "--html", page.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, format!("wrote {}\n", page.display()));
    assert_eq!(daemon.calls(), ["GetStats"]);
    let html = std::fs::read_to_string(&page).unwrap();
    (page, html)
}

#[test]
fn the_console_check_sees_what_it_must() {
    // The check below is only worth something if a blocked load and a script error show up.
    let bus = PrivateBus::open();
    let work = bus.dir().join("probe");
    std::fs::create_dir_all(&work).unwrap();
    let page = work.join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">\
         <p>x</p><img src=\"https://example.invalid/x.png\">",
    )
    .unwrap();
    let rendered = chromium(&page, &work, &[]);
    assert!(!rendered.console().is_empty(), "{}", rendered.log);
    assert!(rendered.dom.contains("<p>x</p>"), "{}", rendered.dom);
}

#[test]
fn the_report_renders_in_chromium_without_console_messages() {
    let bus = PrivateBus::open();
    let work = bus.dir().join("report");
    std::fs::create_dir_all(&work).unwrap();
    let (page, html) = write_report(&bus, &work);

    // The page as written: nothing blocked, nothing failed, nothing logged.
    let plain = chromium(&page, &work, &[]);
    assert!(
        plain.console().is_empty(),
        "console messages:\n{}",
        plain.console().join("\n")
    );
    assert!(plain.dom.contains("<svg class=\"map\""), "{}", plain.dom);
    assert!(plain.dom.contains("<h1>crmonban report: "), "{}", plain.dom);

    // A test copy with the recorder first and the checker last (the policy lets inline
    // scripts run there, and nothing else).
    let policy = "content=\"default-src 'none'; ";
    assert!(html.contains(policy));
    let checked = html
        .replacen(
            policy,
            "content=\"default-src 'none'; script-src 'unsafe-inline'; ",
            1,
        )
        .replacen(
            "<meta charset=\"utf-8\">",
            &format!("<meta charset=\"utf-8\">{RECORDER}"),
            1,
        )
        .replacen("</body>", &format!("{CHECKER}</body>"), 1);
    let copy = work.join("report-checked.html");
    std::fs::write(&copy, checked).unwrap();
    let rendered = chromium(&copy, &work, &[]);
    assert!(
        rendered.console().is_empty(),
        "console messages:\n{}",
        rendered.console().join("\n")
    );
    let start = rendered
        .dom
        .find("<pre id=\"crmonban-check\">")
        .unwrap_or_else(|| panic!("the checker did not run:\n{}", rendered.log));
    let text = &rendered.dom[start + "<pre id=\"crmonban-check\">".len()..];
    let text = &text[..text.find("</pre>").unwrap()];
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let check: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));

    assert_eq!(check["errors"], serde_json::json!([]), "{check}");
    assert!(check["countries"].as_u64().unwrap() > 200, "{check}");
    assert_eq!(
        check["mapTitles"], check["countries"],
        "a tooltip per country: {check}"
    );
    let mut shaded: Vec<&str> = check["shaded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    shaded.sort_unstable();
    assert_eq!(shaded, ["CN", "DE", "US"], "{check}");
    // Two shades among the three (DE and US share the darkest), none the land's grey.
    assert_eq!(check["shadedFills"], 2, "{check}");
    assert_eq!(check["plainFill"], "rgb(221, 225, 230)", "{check}");
    // Laid out: the map spans the page, Germany is a visible shape, the busiest hour's bar
    // has height.
    let map = &check["map"];
    assert!(
        map[0].as_u64().unwrap() > 900 && map[1].as_u64().unwrap() > 350,
        "{check}"
    );
    let germany = &check["germany"];
    assert!(
        germany[0].as_u64().unwrap() > 5 && germany[1].as_u64().unwrap() > 5,
        "{check}"
    );
    assert!(check["tallestBar"].as_f64().unwrap() > 50.0, "{check}");
    assert_eq!(
        check["legendSwatches"],
        1 + 5,
        "none and five shades: {check}"
    );
    assert_eq!(check["bars"], 48, "{check}");
    assert_eq!(check["hbars"], 3 + 3 + 2 + 3, "{check}");
    assert_eq!(check["tables"], 4, "{check}");
    assert_eq!(check["rows"], 3 + 3 + 2 + 3, "{check}");
    // Only the recorder and the checker: the hostile names stayed text.
    assert_eq!(check["scripts"], 2, "{check}");
    assert_eq!(check["images"], 0, "{check}");
    assert!(
        check["title"]
            .as_str()
            .unwrap()
            .starts_with("crmonban report: "),
        "{check}"
    );

    // And a screenshot that is not blank: a flat page compresses to a few kilobytes.
    let png = work.join("report.png");
    chromium(&page, &work, &[&format!("--screenshot={}", png.display())]);
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 40_000, "screenshot of {size} bytes");
}

#[test]
fn report_to_stdout_and_unwritable_files() {
    let bus = PrivateBus::open();
    let daemon = FakeDaemon::start(bus.address(), None, Callers::Trusted);
    daemon.state.lock().unwrap().stats = Some(STATS.to_owned());
    let r = run_at(bus.address(), &["report", "--html", "-"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("<!DOCTYPE html>") && r.stdout.ends_with("</html>\n"));
    let r = run_at(
        bus.address(),
        &["report", "--html", "/nonexistent/dir/report.html"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .starts_with("crmonctl: cannot write /nonexistent/dir/report.html: "),
        "{r:?}"
    );
    // --html is required; --help says what the page holds.
    assert_eq!(run_at(bus.address(), &["report"]).code, 2);
    let help = run_at(bus.address(), &["report", "--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    assert!(help.stdout.contains("--html <FILE>"), "{help:?}");
    // No daemon: exit 3 like every command.
    drop(daemon);
    assert_eq!(run_at(bus.address(), &["report", "--html", "-"]).code, 3);
}

//! The report page itself: the HTML skeleton with its inline style sheet and a
//! Content-Security-Policy that forbids every load and every script, the header (host, time,
//! totals), and one section per figure, each a chart from [`super::charts`] or
//! [`super::map`] plus a table. Owns HTML escaping: [`escape`] is applied to every string
//! that came from the daemon, in text and in attributes alike.

use std::fmt::Write as _;

use crmonban_dbus::rfc3339_utc;

use super::charts::{self, Bar};
use super::map;
use super::{Attacker, Context, Origin, Stats};

/// Nothing may be loaded or run: the page is complete as written, and an escaping mistake
/// still could not run a script.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STYLE: &str = "\
:root{color-scheme:light;--ink:#1d2430;--muted:#5b6473;--line:#e3e7ec;--card:#ffffff}
*{box-sizing:border-box}
body{margin:0;background:#f1f3f6;color:var(--ink);
  font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,\"DejaVu Sans\",sans-serif}
header{background:#1d2430;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px;font-weight:600}
header p{margin:0;color:#c5ccd6}
main{max-width:1180px;margin:0 auto;padding:20px 28px 40px}
.totals{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;
  margin-bottom:20px}
.total{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.total b{display:block;font-size:24px;font-weight:600}
.total span{color:var(--muted);font-size:12px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;
  padding:16px 18px;margin-bottom:20px}
section h2{margin:0 0 10px;font-size:17px;font-weight:600}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px;
  align-items:start}
figure{margin:0}
figure h3{margin:0 0 6px;font-size:14px;font-weight:600}
svg{display:block;width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#3b4350}
svg.map{border-radius:6px}
svg.legend{max-width:720px;margin-top:8px}
svg .axis{stroke:#8a9099;stroke-width:1}
svg .grid{stroke:#e3e7ec;stroke-width:1;stroke-dasharray:3 3}
path.hit:hover,rect.bar:hover,rect.hbar:hover{opacity:.75}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:12px}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td{overflow-wrap:anywhere}
#attackers td:first-child{white-space:nowrap}
.note,.empty{color:var(--muted);font-size:12px;margin:6px 0 0}
footer{color:var(--muted);font-size:12px;text-align:center;padding:0 28px 24px}
";

/// Colours of the charts.
const BANS: &str = "#c2410c";
const ATTACKS: &str = "#1d4ed8";
const TOPS: &str = "#0f766e";

/// `text` safe in HTML text and in quoted attribute values: `& < > " '` as entities, control
/// characters (other than tab and newline) as U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `1234567` as `1,234,567`.
pub fn number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `3600` as `1h`, `90061` as `1d 1h 1m 1s`, 0 as `permanent`: written as crmonctl writes
/// durations elsewhere (its `duration_text`), so the page and the terminal agree.
fn duration_text(secs: u64) -> String {
    crmonban_core::duration::format((secs != 0).then_some(secs))
}

/// The whole page.
pub fn page(stats: &Stats, context: &Context) -> String {
    let host = escape(&context.host);
    let generated = rfc3339_utc(context.generated_at);
    let window = stats.window_seconds.map_or_else(
        || "the daemon's window".to_owned(),
        |secs| format!("the last {}", duration_text(secs)),
    );
    let mut body = String::new();
    body.push_str(&totals(stats));
    body.push_str(&section(
        "map",
        &format!("Attacks by country ({window})"),
        &map::figure(&stats.country_events, stats.country_events_complete),
    ));
    body.push_str(&over_time(stats, context.generated_at));
    body.push_str(&top_services(stats, &window));
    body.push_str(&top_origins(
        "countries",
        &format!("Top countries ({window})"),
        "Country",
        &stats.countries,
    ));
    body.push_str(&top_origins(
        "networks",
        &format!("Top networks ({window})"),
        "Network",
        &stats.networks,
    ));
    body.push_str(&top_attackers(&stats.attackers, &window));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"crmonctl {version}\">\n\
         <title>crmonban report: {host}, {generated}</title>\n<style>\n{STYLE}</style>\n</head>\n\
         <body>\n<header><h1>crmonban report: {host}</h1>\
         <p>Generated {generated} by crmonctl {version}; figures of {window}, times in UTC.</p>\
         </header>\n<main>\n{body}</main>\n<footer>Map: Natural Earth (public domain) via \
         world-atlas (ISC licence). This page loads nothing and runs no script.</footer>\n\
         </body>\n</html>\n",
        // The workspace's version, which crmonctl shares with this crate.
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// `<section id=ID><h2>TITLE</h2>CONTENT</section>`; `title` is escaped, `content` is HTML.
fn section(id: &str, title: &str, content: &str) -> String {
    format!(
        "<section id=\"{id}\"><h2>{}</h2>{content}</section>\n",
        escape(title)
    )
}

/// A `<table>` of escaped cells; columns whose header starts with `#` are numeric (right
/// aligned, the `#` dropped).
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><thead><tr>");
    let numeric: Vec<bool> = headers.iter().map(|h| h.starts_with('#')).collect();
    for (header, &n) in headers.iter().zip(&numeric) {
        let class = if n { " class=\"n\"" } else { "" };
        let _ = write!(
            out,
            "<th{class}>{}</th>",
            escape(header.trim_start_matches('#'))
        );
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for (cell, &n) in row.iter().zip(&numeric) {
            let class = if n { " class=\"n\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn empty(what: &str) -> String {
    format!("<p class=\"empty\">{}</p>", escape(what))
}

/// The figures at a glance.
fn totals(stats: &Stats) -> String {
    let mut tiles: Vec<(String, String)> = Vec::new();
    if let Some(active) = stats.active_bans {
        let mut detail = Vec::new();
        if let Some(n) = stats.permanent_bans {
            detail.push(format!("{} permanent", number(n)));
        }
        if let Some(n) = stats.network_bans {
            detail.push(format!("{} networks", number(n)));
        }
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", detail.join(", "))
        };
        tiles.push((number(active), format!("active bans{detail}")));
    }
    if let Some(hours) = &stats.bans_per_hour {
        tiles.push((
            number(hours.iter().sum()),
            format!("bans in the last {} h", hours.len()),
        ));
    }
    if let Some(hours) = &stats.events_per_hour {
        tiles.push((
            number(hours.iter().sum()),
            format!("attacks in the last {} h", hours.len()),
        ));
    } else if !stats.services.is_empty() {
        let sum = stats.services.iter().map(|(_, n)| n).sum();
        tiles.push((number(sum), "attacks in the window".to_owned()));
    }
    if let Some(n) = stats.events_processed {
        tiles.push((number(n), "events since start".to_owned()));
    }
    if let Some(secs) = stats.uptime_seconds {
        let up = if secs == 0 {
            "0s".to_owned()
        } else {
            duration_text(secs)
        };
        tiles.push((up, "daemon uptime".to_owned()));
    }
    if !stats.bans_by_source.is_empty() {
        let sources: Vec<String> = stats
            .bans_by_source
            .iter()
            .map(|(source, n)| format!("{source} {}", number(*n)))
            .collect();
        tiles.push((
            number(stats.bans_by_source.len() as u64),
            format!("ban sources: {}", sources.join(", ")),
        ));
    }
    let mut out = String::from("<div class=\"totals\" id=\"totals\">");
    for (figure, label) in &tiles {
        let _ = write!(
            out,
            "<div class=\"total\"><b>{}</b><span>{}</span></div>",
            escape(figure),
            escape(label)
        );
    }
    out.push_str("</div>\n");
    out
}

/// Attacks and bans per hour, side by side.
fn over_time(stats: &Stats, end: i64) -> String {
    let chart = |hours: &Option<Vec<u64>>, title: &str, what: &str, colour: &str| {
        // `what` in the plural; the tooltips take the singular.
        let one = what.strip_suffix('s').unwrap_or(what);
        let inner = match hours {
            Some(counts) if !counts.is_empty() => {
                let total: u64 = counts.iter().sum();
                let peak = counts.iter().copied().max().unwrap_or(0);
                format!(
                    "{}<p class=\"note\">{} {what} in {} hours; busiest hour {}.</p>",
                    charts::hourly(counts, end, one, colour),
                    number(total),
                    counts.len(),
                    number(peak)
                )
            }
            _ => empty(&format!("This daemon does not report {what} per hour.")),
        };
        format!("<figure><h3>{}</h3>{inner}</figure>", escape(title))
    };
    section(
        "over-time",
        "Attacks and bans per hour (last day, UTC)",
        &format!(
            "<div class=\"pair\">{}{}</div>",
            chart(&stats.events_per_hour, "Attacks", "attacks", ATTACKS),
            chart(&stats.bans_per_hour, "Bans", "bans", BANS)
        ),
    )
}

/// A bar chart beside its table, or a line saying there is nothing.
fn chart_and_table(bars: &[Bar], table_html: String, nothing: &str) -> String {
    if bars.is_empty() {
        return empty(nothing);
    }
    format!(
        "<div class=\"pair\">{}{table_html}</div>",
        charts::horizontal(bars, TOPS)
    )
}

fn top_services(stats: &Stats, window: &str) -> String {
    let bars: Vec<Bar> = stats
        .services
        .iter()
        .map(|(service, n)| Bar {
            label: service.clone(),
            value: *n,
            title: format!("{service}: {} attacks", number(*n)),
        })
        .collect();
    let rows: Vec<Vec<String>> = stats
        .services
        .iter()
        .map(|(service, n)| vec![service.clone(), number(*n)])
        .collect();
    section(
        "services",
        &format!("Top services ({window})"),
        &chart_and_table(
            &bars,
            table(&["Service", "#Attacks"], &rows),
            "No attacks on any service in the window.",
        ),
    )
}

fn origin_label(origin: &Origin) -> String {
    if origin.origin.starts_with("AS") {
        match &origin.name {
            Some(name) => format!("{} {name}", origin.origin),
            None => origin.origin.clone(),
        }
    } else {
        map::country_label(&origin.origin)
    }
}

fn top_origins(id: &str, title: &str, first: &str, origins: &[Origin]) -> String {
    let bars: Vec<Bar> = origins
        .iter()
        .map(|o| {
            let label = origin_label(o);
            Bar {
                title: format!(
                    "{label}: {} attacks from {} addresses",
                    number(o.events),
                    number(o.addresses)
                ),
                label,
                value: o.events,
            }
        })
        .collect();
    let rows: Vec<Vec<String>> = origins
        .iter()
        .map(|o| vec![origin_label(o), number(o.events), number(o.addresses)])
        .collect();
    section(
        id,
        title,
        &chart_and_table(
            &bars,
            table(&[first, "#Attacks", "#Addresses"], &rows),
            "None known: no intel (GeoIP, WHOIS) for the window's attackers.",
        ),
    )
}

fn top_attackers(attackers: &[Attacker], window: &str) -> String {
    let network = |a: &Attacker| match (a.asn, &a.organization) {
        (Some(asn), Some(org)) => format!("AS{asn} {org}"),
        (Some(asn), None) => format!("AS{asn}"),
        (None, Some(org)) => org.clone(),
        (None, None) => String::new(),
    };
    let bars: Vec<Bar> = attackers
        .iter()
        .map(|a| Bar {
            label: a.ip.clone(),
            value: a.events,
            title: format!("{}: {} attacks", a.ip, number(a.events)),
        })
        .collect();
    let rows: Vec<Vec<String>> = attackers
        .iter()
        .map(|a| {
            vec![
                a.ip.clone(),
                number(a.events),
                a.country
                    .as_deref()
                    .map(map::country_label)
                    .unwrap_or_default(),
                network(a),
            ]
        })
        .collect();
    section(
        "attackers",
        &format!("Top attackers ({window})"),
        &chart_and_table(
            &bars,
            table(&["Address", "#Attacks", "Country", "Network"], &rows),
            "No attacks in the window (protected addresses are never listed).",
        ),
    )
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn escape_covers_text_and_attributes_and_numbers_are_grouped() {
        assert_eq!(
            escape("<a href=\"x\" title='y'>&\u{1b}[31m</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;\u{fffd}[31m&lt;/a&gt;"
        );
        assert_eq!(number(0), "0");
        assert_eq!(number(999), "999");
        assert_eq!(number(1000), "1,000");
        assert_eq!(number(1_234_567), "1,234,567");
    }
}

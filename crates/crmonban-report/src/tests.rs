//! The report page rendered from a fixed `GetStats` answer, hostile strings included: what a
//! reader would find in it (a map with a shape per country, the countries of the data shaded,
//! one bar per hour, the tables) and what must never be in it (markup from the daemon, loads).

use super::map::world;
use super::*;

/// 2025-11-25T17:06:00Z.
const NOW: i64 = 1_764_090_360;

/// A day of a busy host, with markup where the daemon relays strings from outside (shared
/// with crmonctl's tests/report.rs, which opens the page in Chromium).
const STATS: &str = include_str!("../tests/data/report-stats.json");

fn context() -> Context {
    Context {
        host: "gate<way>".into(),
        generated_at: NOW,
    }
}

/// The `<svg class="map" ...>...</svg>` part of `page`.
fn map_svg(page: &str) -> &str {
    let start = page.find("<svg class=\"map\"").expect("a map");
    let end = start + page[start..].find("</svg>").expect("the map ends");
    &page[start..end]
}

#[test]
fn the_page_has_a_map_shape_per_country_and_shades_those_attacked() {
    let page = render(STATS, &context()).unwrap();
    let map = map_svg(&page);
    let coded = world().countries.iter().filter(|c| c.code != "-").count();
    assert!(coded > 200);
    assert_eq!(map.matches("<path ").count(), world().countries.len());
    assert_eq!(map.matches(" data-cc=\"").count(), coded);
    // DE, US and CN are shaded, the busiest darkest; nobody else is.
    assert_eq!(map.matches("<path class=\"hit ").count(), 3, "{map}");
    assert!(map.contains("<path class=\"hit l4\" data-cc=\"DE\" fill=\"#a31515\""));
    assert!(map.contains("data-cc=\"US\""));
    assert!(
        map.contains("<path class=\"hit l1\" data-cc=\"CN\""),
        "{map}"
    );
    assert!(map.contains("<title>Germany (DE): 4,000 attacks</title>"));
    assert!(map.contains("<title>France (FR): no attacks</title>"));
    // The legend, and the code the map has no shape for, escaped.
    assert!(page.contains("<svg class=\"legend\""));
    assert!(
        page.contains("–4,000</text>"),
        "the legend tops at the peak"
    );
    assert!(page.contains("Not on the map: &quot;&gt;&lt;svg onload=alert(2)&gt; (7)."));
}

#[test]
fn the_page_has_hourly_bars_totals_and_tables() {
    let page = render(STATS, &context()).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert_eq!(
        page.matches("<rect class=\"bar\"").count(),
        48,
        "24 h of attacks and bans"
    );
    assert!(page.contains("<title>16:06–17:06 UTC: 240 attacks</title>"));
    assert!(page.contains("<title>15:06–16:06 UTC: 5 bans</title>"));
    // Header and totals.
    assert!(page.contains("<h1>crmonban report: gate&lt;way&gt;</h1>"));
    assert!(page.contains("Generated 2025-11-25T17:06:00Z"));
    for tile in [
        "<b>1,234</b><span>active bans (3 permanent, 2 networks)</span>",
        "<b>8</b><span>bans in the last 24 h</span>",
        "<b>3,000</b><span>attacks in the last 24 h</span>",
        "<b>987,654</b><span>events since start</span>",
        "<b>1d 1h 1m 1s</b><span>daemon uptime</span>",
    ] {
        assert!(page.contains(tile), "no {tile}");
    }
    // Services, countries, networks, attackers: a table and a bar chart each.
    assert_eq!(page.matches("<table>").count(), 4);
    assert_eq!(page.matches("<svg class=\"bars\"").count(), 4);
    assert_eq!(page.matches("<rect class=\"hbar\"").count(), 3 + 3 + 2 + 3);
    assert!(page.contains("<td>ssh</td><td class=\"n\">5,000</td>"));
    assert!(page.contains("<td>DE Germany</td><td class=\"n\">4,000</td><td class=\"n\">1</td>"));
    assert!(page.contains("<td>198.51.100.9</td><td class=\"n\">1,200</td><td>US United States</td><td>AS15169 Google LLC</td>"));
    assert!(page.contains("<td>2001:db8::1</td><td class=\"n\">3</td><td></td><td></td>"));
}

#[test]
fn strings_from_the_daemon_are_escaped_and_nothing_is_loaded() {
    let page = render(STATS, &context()).unwrap();
    for raw in ["<script", "<img", "<svg onload", "<GmbH>", "gate<way>"] {
        assert!(!page.contains(raw), "{raw} reached the page unescaped");
    }
    assert!(page.contains("&lt;/td&gt;&lt;script&gt;alert(&#39;org&#39;)&lt;/script&gt;"));
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(page.contains("AS24940 Hetzner &quot;Online&quot; &lt;GmbH&gt;"));
    // No address to load anything from: the only URL is the SVG namespace; no tag has a
    // src, href or event handler attribute.
    let namespace = "http://www.w3.org/2000/svg";
    assert_eq!(page.matches("//").count(), page.matches(namespace).count());
    let tags: Vec<&str> = page
        .split('<')
        .skip(1)
        .map(|rest| rest.split('>').next().unwrap_or(rest))
        .collect();
    assert!(tags.len() > 1000);
    for tag in tags {
        assert!(
            !tag.contains(" src=") && !tag.contains(" href=") && !tag.contains(" on"),
            "<{tag}>"
        );
    }
    assert!(page.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:\">"
    ));
}

#[test]
fn an_older_or_quiet_daemon_still_gets_a_page() {
    // Only what the first GetStats had: no events_by_country, no events_per_hour.
    let old =
        r#"{"active_bans": 0, "top_countries": [{"origin": "NL", "events": 2, "addresses": 1}]}"#;
    let page = render(old, &context()).unwrap();
    let map = map_svg(&page);
    assert_eq!(map.matches("<path class=\"hit ").count(), 1);
    assert!(map.contains("<title>France (FR): not among the top countries</title>"));
    assert!(page.contains("This daemon does not report attacks per hour."));
    assert!(page.contains("This daemon does not report bans per hour."));
    assert!(page.contains("No attacks on any service in the window."));
    assert_eq!(page.matches("<table>").count(), 1, "only the countries");
    // Nothing at all.
    let page = render("{}", &context()).unwrap();
    assert_eq!(map_svg(&page).matches("<path class=\"hit ").count(), 0);
    assert!(render("[1, 2]", &context()).is_err());
    assert!(render("not json", &context()).is_err());
}

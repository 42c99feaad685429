//! The report's bar charts as inline SVG: counts per hour over the last day (one vertical bar
//! per hour, `rect.bar`, with its UTC hour and count as a `<title>` tooltip) and top lists (one
//! horizontal bar per row, `rect.hbar`). Labels come in already as plain text and are escaped
//! here; nothing is measured by a browser, so long labels are shortened by characters.

use std::fmt::Write as _;

use crmonban_core::text::shorten;

use super::html::{escape, number};

/// The hourly chart's drawing area, in SVG units.
const HOURLY_WIDTH: u64 = 720;
const HOURLY_HEIGHT: u64 = 180;
/// Room for the count axis on the left and the hour labels below.
const LEFT: u64 = 44;
const BOTTOM: u64 = 22;
const TOP: u64 = 10;

/// One bar per hour of `counts` (oldest first; the last hour ends at `end`, unix seconds), in
/// `colour`, scaled to the busiest hour; `what` names the counted thing in the tooltips, in
/// the singular ("ban", "attack": an `s` is added to any count but one).
pub fn hourly(counts: &[u64], end: i64, what: &str, colour: &str) -> String {
    let peak = counts.iter().copied().max().unwrap_or(0);
    let hours = counts.len().max(1) as u64;
    let plot_width = HOURLY_WIDTH - LEFT - 4;
    let plot_height = HOURLY_HEIGHT - TOP - BOTTOM;
    let slot = plot_width as f64 / hours as f64;
    let bar = (slot * 0.8).max(1.0);
    let base = TOP + plot_height;
    let what = escape(what);
    let mut svg = format!(
        "<svg class=\"hourly\" viewBox=\"0 0 {HOURLY_WIDTH} {HOURLY_HEIGHT}\" role=\"img\" \
         aria-label=\"{what}s per hour\" xmlns=\"http://www.w3.org/2000/svg\">\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\"/>\
         <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text class=\"tick\" x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>",
        HOURLY_WIDTH - 4,
        LEFT - 6,
        TOP + 10,
        number(peak),
        LEFT - 6,
    );
    if peak > 0 {
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{}\" y2=\"{TOP}\"/>",
            HOURLY_WIDTH - 4
        );
    }
    let first_start = end - 3600 * hours as i64;
    for (i, &n) in counts.iter().enumerate() {
        let height = if peak == 0 {
            0.0
        } else {
            // A busy hour next to a peak still shows: at least one unit when above zero.
            (n as f64 / peak as f64 * plot_height as f64).max(if n > 0 { 1.0 } else { 0.0 })
        };
        let x = LEFT as f64 + slot * i as f64 + (slot - bar) / 2.0;
        let start = first_start + 3600 * i as i64;
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{height:.1}\" \
             fill=\"{colour}\"><title>{}–{} UTC: {} {what}{}</title></rect>",
            base as f64 - height,
            clock(start),
            clock(start + 3600),
            number(n),
            if n == 1 { "" } else { "s" }
        );
        // The start of every sixth hour, counted back from the last, so "now" is labelled.
        if (counts.len() - i).is_multiple_of(6) {
            let _ = write!(
                svg,
                "<text class=\"tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x + bar / 2.0 - slot / 2.0,
                HOURLY_HEIGHT - 6,
                clock(start)
            );
        }
    }
    let _ = write!(
        svg,
        "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">now</text></svg>",
        HOURLY_WIDTH - 4,
        HOURLY_HEIGHT - 6
    );
    svg
}

/// `HH:MM` of unix seconds, UTC.
fn clock(unix_secs: i64) -> String {
    let of_day = unix_secs.rem_euclid(86_400);
    format!("{:02}:{:02}", of_day / 3600, of_day % 3600 / 60)
}

/// One row of a horizontal bar chart.
pub struct Bar {
    /// Shown left of the bar (shortened to [`LABEL_CHARS`]).
    pub label: String,
    pub value: u64,
    /// The tooltip (in full).
    pub title: String,
}

/// How many characters of a label fit left of the bars.
const LABEL_CHARS: usize = 26;
const ROW: u64 = 22;
const BARS_WIDTH: u64 = 520;
const LABEL_WIDTH: u64 = 190;

/// `rows` as horizontal bars scaled to the largest value, in `colour`; the value is written
/// after each bar.
pub fn horizontal(rows: &[Bar], colour: &str) -> String {
    let peak = rows.iter().map(|r| r.value).max().unwrap_or(0).max(1);
    let height = ROW * rows.len() as u64 + 4;
    let room = BARS_WIDTH - LABEL_WIDTH - 70;
    let mut svg = format!(
        "<svg class=\"bars\" viewBox=\"0 0 {BARS_WIDTH} {height}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, row) in rows.iter().enumerate() {
        let y = ROW * i as u64 + 2;
        let width = (row.value as f64 / peak as f64 * room as f64).max(1.0);
        let _ = write!(
            svg,
            "<g><title>{}</title><text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect class=\"hbar\" x=\"{LABEL_WIDTH}\" y=\"{}\" width=\"{width:.1}\" height=\"{}\" \
             fill=\"{colour}\"/><text class=\"value\" x=\"{:.1}\" y=\"{}\">{}</text></g>",
            escape(&row.title),
            LABEL_WIDTH - 8,
            y + 15,
            escape(&shorten(&row.label, LABEL_CHARS)),
            y + 3,
            ROW - 6,
            LABEL_WIDTH as f64 + width + 6.0,
            y + 15,
            number(row.value)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_bars_one_per_hour_scaled_to_the_peak_with_utc_tooltips() {
        // 1_764_090_000 is 2025-11-25 17:00 UTC.
        let svg = hourly(&[0, 2, 1], 1_764_090_000, "ban", "#c00");
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 3, "{svg}");
        assert!(
            svg.contains("<title>14:00–15:00 UTC: 0 bans</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("<title>15:00–16:00 UTC: 2 bans</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("<title>16:00–17:00 UTC: 1 ban</title>"),
            "{svg}"
        );
        // The peak's bar fills the plot; half the peak, half of it; none, nothing.
        let plot = HOURLY_HEIGHT - TOP - BOTTOM;
        assert!(svg.contains(&format!("height=\"{plot}.0\"")), "{svg}");
        assert!(
            svg.contains(&format!("height=\"{:.1}\"", plot as f64 / 2.0)),
            "{svg}"
        );
        assert!(svg.contains("height=\"0.0\""), "{svg}");
        assert_eq!(clock(-1), "23:59");
        // Nothing at all draws empty bars, no division by zero.
        let empty = hourly(&[0; 24], 0, "ban", "#c00");
        assert_eq!(empty.matches("height=\"0.0\"").count(), 24);
        assert_eq!(empty.matches("class=\"tick\" x=").count(), 3 + 4, "{empty}");
    }

    #[test]
    fn horizontal_bars_escape_and_shorten_labels() {
        let svg = horizontal(
            &[
                Bar {
                    label: "<script>alert(1)</script> and a very long name".into(),
                    value: 10,
                    title: "a \"quoted\" & <b>bold</b> title".into(),
                },
                Bar {
                    label: "ssh".into(),
                    value: 5,
                    title: "ssh".into(),
                },
            ],
            "#36c",
        );
        assert_eq!(svg.matches("<rect class=\"hbar\"").count(), 2);
        assert!(!svg.contains("<script") && !svg.contains("<b>"), "{svg}");
        assert!(
            svg.contains(">&lt;script&gt;alert(1)&lt;/script&gt;…</text>"),
            "{svg}"
        );
        assert!(
            svg.contains("a &quot;quoted&quot; &amp; &lt;b&gt;bold"),
            "{svg}"
        );
        let room = BARS_WIDTH - LABEL_WIDTH - 70;
        assert!(svg.contains(&format!("width=\"{room}.0\"")), "{svg}");
        assert!(
            svg.contains(&format!("width=\"{:.1}\"", room as f64 / 2.0)),
            "{svg}"
        );
    }
}

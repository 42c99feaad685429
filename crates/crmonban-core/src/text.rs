//! Text from outside (log lines, comments, reasons) made safe to show: control characters —
//! line breaks that would forge a line of a log, escape sequences that would drive a terminal —
//! are written as Rust escapes (`\n`, `\u{1b}`), everything else as it is; and text cut to
//! fit a column.

use std::borrow::Cow;

/// `text` with every control character escaped; borrowed when there is none.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` cut to `max` characters, the last of them an ellipsis when cut.
pub fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    if text.chars().count() <= max {
        return Cow::Borrowed(text);
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    Cow::Owned(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(escape_control("plain ünïcode"), Cow::Borrowed(_)));
        assert_eq!(
            escape_control("a\nb\r\u{1b}[31mred\u{7}\u{85}"),
            "a\\nb\\r\\u{1b}[31mred\\u{7}\\u{85}"
        );
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        assert!(matches!(shorten("short", 5), Cow::Borrowed("short")));
        assert_eq!(shorten("Hetzner Online GmbH", 8), "Hetzner…");
        assert_eq!(shorten("ünïcödé", 3), "ün…");
    }
}

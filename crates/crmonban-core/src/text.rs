//! Text from outside (log lines, comments, reasons) made safe to show: control characters —
//! line breaks that would forge a line of a log, escape sequences that would drive a terminal —
//! are written as Rust escapes (`\n`, `\u{1b}`), everything else as it is.

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
}

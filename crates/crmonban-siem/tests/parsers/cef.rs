//! CEF as the "CEF Implementation Standard" describes it: `CEF:Version|` then six header
//! fields separated by unescaped `|` (escapes `\|`, `\\`), then the extension: `key=value`
//! pairs separated by spaces, where a key is the word before an unescaped `=`, a value runs to
//! the space before the next key, the final value loses its trailing spaces, and values
//! escape `\\`, `\=`, `\n`, `\r`.

/// One parsed CEF line.
#[derive(Debug)]
pub struct Cef {
    pub version: String,
    pub vendor: String,
    pub product: String,
    pub device_version: String,
    pub class_id: String,
    pub name: String,
    pub severity: String,
    pub extension: Vec<(String, String)>,
}

pub fn parse(line: &str) -> Result<Cef, String> {
    let rest = line.strip_prefix("CEF:").ok_or("no CEF: prefix")?;
    if line.contains(['\n', '\r']) {
        return Err("raw line break".into());
    }
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut chars = rest.char_indices();
    let mut extension_at = None;
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '\\')) => current.push('\\'),
                Some((_, '|')) => current.push('|'),
                other => return Err(format!("header escape \\{other:?}")),
            },
            '|' => {
                fields.push(std::mem::take(&mut current));
                if fields.len() == 7 {
                    extension_at = Some(at + 1);
                    break;
                }
            }
            c => current.push(c),
        }
    }
    let extension_at = extension_at.ok_or("fewer than 7 header fields")?;
    let mut fields = fields.into_iter();
    let mut next = || fields.next().unwrap_or_default();
    Ok(Cef {
        version: next(),
        vendor: next(),
        product: next(),
        device_version: next(),
        class_id: next(),
        name: next(),
        severity: next(),
        extension: parse_extension(&rest[extension_at..])?,
    })
}

fn parse_extension(ext: &str) -> Result<Vec<(String, String)>, String> {
    let bytes = ext.as_bytes();
    // Byte offsets of the unescaped `=` (every structural character is ASCII, so scanning
    // bytes is safe in UTF-8).
    let mut equals = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' => {
                equals.push(i);
                i += 1;
            }
            _ => i += 1,
        }
    }
    let mut keys = Vec::new();
    let mut previous_equals = None;
    for &eq in &equals {
        let start = ext[..eq].rfind(' ').map_or(0, |space| space + 1);
        if previous_equals.is_some_and(|p| start <= p) || (previous_equals.is_none() && start != 0)
        {
            return Err(format!("no key before `=` at {eq} in {ext:?}"));
        }
        let key = &ext[start..eq];
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("bad key {key:?}"));
        }
        keys.push((start, eq));
        previous_equals = Some(eq);
    }
    if keys.is_empty() && !ext.trim().is_empty() {
        return Err(format!("extension without keys: {ext:?}"));
    }
    let mut pairs = Vec::new();
    for (n, &(start, eq)) in keys.iter().enumerate() {
        let end = match keys.get(n + 1) {
            // All spaces but the last one before the next key belong to this value.
            Some(&(next_start, _)) => next_start - 1,
            None => ext.trim_end_matches(' ').len().max(eq + 1),
        };
        if end < eq + 1 {
            return Err(format!("no value after {:?}", &ext[start..eq]));
        }
        pairs.push((ext[start..eq].to_owned(), unescape(&ext[eq + 1..end])?));
    }
    Ok(pairs)
}

fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('=') => out.push('='),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => return Err(format!("extension escape \\{other:?} in {raw:?}")),
        }
    }
    Ok(out)
}

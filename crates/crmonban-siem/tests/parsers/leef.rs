//! LEEF 2.0 as IBM's "LEEF event components" describes it:
//! `LEEF:2.0|Vendor|Product|Version|EventID|DelimiterCharacter|attributes`, the delimiter
//! being one character or its hex code (`x` or `0x` and 1-4 hex digits); each attribute is
//! `key=value`, the key ending at the first `=`. LEEF defines no escapes.

#[derive(Debug)]
pub struct Leef {
    pub version: String,
    pub vendor: String,
    pub product: String,
    pub product_version: String,
    pub event_id: String,
    pub delimiter: char,
    pub attributes: Vec<(String, String)>,
}

pub fn parse(line: &str) -> Result<Leef, String> {
    let rest = line.strip_prefix("LEEF:").ok_or("no LEEF: prefix")?;
    let parts: Vec<&str> = rest.splitn(7, '|').collect();
    let [
        version,
        vendor,
        product,
        product_version,
        event_id,
        delimiter,
        attributes,
    ] = parts[..]
    else {
        return Err(format!("{} header fields", parts.len()));
    };
    if version != "2.0" {
        return Err(format!("version {version:?}"));
    }
    let delimiter = parse_delimiter(delimiter)?;
    let mut pairs = Vec::new();
    if !attributes.is_empty() {
        for attribute in attributes.split(delimiter) {
            let (key, value) = attribute
                .split_once('=')
                .ok_or_else(|| format!("attribute without `=`: {attribute:?}"))?;
            pairs.push((key.to_owned(), value.to_owned()));
        }
    }
    Ok(Leef {
        version: version.to_owned(),
        vendor: vendor.to_owned(),
        product: product.to_owned(),
        product_version: product_version.to_owned(),
        event_id: event_id.to_owned(),
        delimiter,
        attributes: pairs,
    })
}

fn parse_delimiter(text: &str) -> Result<char, String> {
    let mut chars = text.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Ok(c);
    }
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix('x'))
        .filter(|h| (1..=4).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("delimiter {text:?}"))?;
    u32::from_str_radix(hex, 16)
        .ok()
        .and_then(char::from_u32)
        .ok_or_else(|| format!("delimiter {text:?}"))
}

//! RFC 5424 (§6) read strictly:
//! `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]`,
//! header fields printable US-ASCII of at most 255/48/128/32 characters or `-`, SD-ELEMENTs
//! `[SD-ID *(SP PARAM-NAME="PARAM-VALUE")]` with `\"`, `\\`, `\]` unescaped (any other
//! backslash kept as it is, §6.3.3), and MSG-UTF8 recognised by its BOM (§6.4).

#[derive(Debug)]
pub struct Syslog {
    pub prival: u8,
    pub version: String,
    /// `None` for NILVALUE.
    pub timestamp: Option<String>,
    pub hostname: Option<String>,
    pub app_name: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    /// Empty for NILVALUE.
    pub structured_data: Vec<SdElement>,
    pub msg: Option<Msg>,
}

#[derive(Debug)]
pub struct SdElement {
    pub id: String,
    pub params: Vec<(String, String)>,
}

#[derive(Debug, PartialEq)]
pub struct Msg {
    /// The MSG started with the UTF-8 BOM (MSG-UTF8).
    pub bom: bool,
    /// The MSG without its BOM.
    pub text: String,
}

struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn expect(&mut self, c: char) -> Result<(), String> {
        self.rest = self
            .rest
            .strip_prefix(c)
            .ok_or_else(|| format!("expected {c:?} at {:?}", head(self.rest)))?;
        Ok(())
    }

    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let end = self.rest.find(|c| !keep(c)).unwrap_or(self.rest.len());
        let (taken, rest) = self.rest.split_at(end);
        self.rest = rest;
        taken
    }

    /// A header field: NILVALUE or 1..=max PRINTUSASCII.
    fn header_field(&mut self, max: usize, what: &str) -> Result<Option<String>, String> {
        let field = self.take_while(|c| c != ' ');
        if field.is_empty() || field.len() > max || !field.bytes().all(|b| (33..=126).contains(&b))
        {
            return Err(format!("{what} {field:?} is not 1..={max} PRINTUSASCII"));
        }
        Ok((field != "-").then(|| field.to_owned()))
    }
}

fn head(text: &str) -> String {
    text.chars().take(20).collect()
}

fn is_sd_name_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"')
}

pub fn parse(line: &str) -> Result<Syslog, String> {
    let mut cur = Cursor { rest: line };
    cur.expect('<')?;
    let pri = cur.take_while(|c| c.is_ascii_digit());
    let prival: u8 = pri
        .parse()
        .ok()
        .filter(|p| (1..=3).contains(&pri.len()) && *p <= 191)
        .ok_or_else(|| format!("PRI {pri:?}"))?;
    cur.expect('>')?;
    let version = cur.take_while(|c| c.is_ascii_digit()).to_owned();
    if version.is_empty() || version.len() > 3 || version.starts_with('0') {
        return Err(format!("VERSION {version:?}"));
    }
    cur.expect(' ')?;
    let timestamp = cur.header_field(64, "TIMESTAMP")?;
    cur.expect(' ')?;
    let hostname = cur.header_field(255, "HOSTNAME")?;
    cur.expect(' ')?;
    let app_name = cur.header_field(48, "APP-NAME")?;
    cur.expect(' ')?;
    let procid = cur.header_field(128, "PROCID")?;
    cur.expect(' ')?;
    let msgid = cur.header_field(32, "MSGID")?;
    cur.expect(' ')?;
    let mut structured_data = Vec::new();
    if cur.peek() == Some('-') {
        cur.expect('-')?;
    } else {
        while cur.peek() == Some('[') {
            structured_data.push(sd_element(&mut cur)?);
        }
        if structured_data.is_empty() {
            return Err(format!("STRUCTURED-DATA at {:?}", head(cur.rest)));
        }
    }
    let msg = if cur.rest.is_empty() {
        None
    } else {
        cur.expect(' ')?;
        Some(match cur.rest.strip_prefix('\u{feff}') {
            Some(text) => Msg {
                bom: true,
                text: text.to_owned(),
            },
            None => Msg {
                bom: false,
                text: cur.rest.to_owned(),
            },
        })
    };
    Ok(Syslog {
        prival,
        version,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        msg,
    })
}

fn sd_name(cur: &mut Cursor<'_>, what: &str) -> Result<String, String> {
    let name = cur.take_while(is_sd_name_char);
    if name.is_empty() || name.len() > 32 {
        return Err(format!("{what} {name:?}"));
    }
    Ok(name.to_owned())
}

fn sd_element(cur: &mut Cursor<'_>) -> Result<SdElement, String> {
    cur.expect('[')?;
    let id = sd_name(cur, "SD-ID")?;
    let mut params = Vec::new();
    while cur.peek() == Some(' ') {
        cur.expect(' ')?;
        let name = sd_name(cur, "PARAM-NAME")?;
        cur.expect('=')?;
        cur.expect('"')?;
        let mut value = String::new();
        let mut chars = cur.rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated value of {name}")),
                Some((at, '"')) => break at,
                Some((_, ']')) => return Err(format!("unescaped ] in value of {name}")),
                Some((_, '\\')) => match chars.next() {
                    Some((_, c @ ('"' | '\\' | ']'))) => value.push(c),
                    // An invalid escape is kept as it is (§6.3.3).
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err(format!("unterminated value of {name}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        cur.rest = &cur.rest[end + 1..];
        params.push((name, value));
    }
    cur.expect(']')?;
    Ok(SdElement { id, params })
}

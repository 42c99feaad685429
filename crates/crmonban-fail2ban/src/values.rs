//! fail2ban's value syntaxes, read without Python: time expressions (`10m`, `1h 30m`, `1d`,
//! `2w`, `-1`, `3600`), booleans, word lists (`ignoreip`), `name[key=value, ...]` invocations
//! (`filter`, `action`, `backend`) and port lists (`ssh`, `http,https`, `2222`, `0:65535`).

/// Seconds in fail2ban's month and year (a quarter of four years, leap day included).
const MONTH: f64 = (365.0 * 3.0 + 366.0) * 86_400.0 / 4.0 / 12.0;
const YEAR: f64 = MONTH * 12.0;

/// The length of a time unit word as fail2ban's `str2seconds` knows it (case ignored).
fn unit(word: &str) -> Option<f64> {
    Some(match word.to_ascii_lowercase().as_str() {
        "s" | "ss" | "se" | "sec" | "second" | "seconds" => 1.0,
        "m" | "mm" | "mi" | "min" | "minute" | "minutes" => 60.0,
        "h" | "hh" | "ho" | "hou" | "hour" | "hours" => 3600.0,
        "d" | "dd" | "da" | "day" | "days" => 86_400.0,
        "w" | "ww" | "we" | "wee" | "week" | "weeks" => 604_800.0,
        "mo" | "mon" | "month" | "months" => MONTH,
        "y" | "yy" | "ye" | "yea" | "year" | "years" => YEAR,
        _ => return None,
    })
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(f64),
    Unit(f64),
    Op(char),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_digit() || c == '.' {
            let mut end = start;
            while let Some(&(i, d)) = chars
                .peek()
                .filter(|(_, d)| d.is_ascii_digit() || *d == '.')
            {
                end = i + d.len_utf8();
                chars.next();
            }
            let number = &text[start..end];
            out.push(Token::Number(
                number
                    .parse()
                    .map_err(|_| format!("{number:?} is not a number"))?,
            ));
        } else if c.is_alphabetic() {
            let mut end = start;
            while let Some(&(i, d)) = chars.peek().filter(|(_, d)| d.is_alphabetic()) {
                end = i + d.len_utf8();
                chars.next();
            }
            let word = &text[start..end];
            out.push(Token::Unit(
                unit(word).ok_or_else(|| format!("{word:?} is not a time unit"))?,
            ));
        } else if "+-*/()".contains(c) {
            out.push(Token::Op(c));
            chars.next();
        } else {
            return Err(format!("unexpected {c:?}"));
        }
    }
    Ok(out)
}

/// A recursive-descent reader of fail2ban's time arithmetic: sums (a blank between two
/// terms adds), products, unary minus, parentheses, a unit after a number multiplying it.
struct Expr {
    tokens: Vec<Token>,
    at: usize,
}

impl Expr {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut value = self.product()?;
        loop {
            match self.peek() {
                Some(Token::Op('+')) => {
                    self.at += 1;
                    value += self.product()?;
                }
                Some(Token::Op('-')) => {
                    self.at += 1;
                    value -= self.product()?;
                }
                Some(Token::Number(_) | Token::Op('(')) => value += self.product()?,
                _ => return Ok(value),
            }
        }
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut value = self.unary()?;
        loop {
            match self.peek() {
                Some(Token::Op('*')) => {
                    self.at += 1;
                    value *= self.unary()?;
                }
                Some(Token::Op('/')) => {
                    self.at += 1;
                    let divisor = self.unary()?;
                    if divisor == 0.0 {
                        return Err("division by zero".into());
                    }
                    value /= divisor;
                }
                _ => return Ok(value),
            }
        }
    }

    fn unary(&mut self) -> Result<f64, String> {
        let value = match self.tokens.get(self.at).cloned() {
            Some(Token::Op('-')) => {
                self.at += 1;
                return Ok(-self.unary()?);
            }
            Some(Token::Op('+')) => {
                self.at += 1;
                return self.unary();
            }
            Some(Token::Op('(')) => {
                self.at += 1;
                let inner = self.sum()?;
                if self.peek() != Some(&Token::Op(')')) {
                    return Err("a `(` is not closed".into());
                }
                self.at += 1;
                inner
            }
            Some(Token::Number(n)) => {
                self.at += 1;
                n
            }
            Some(other) => return Err(format!("unexpected {other:?}")),
            None => return Err("a number is missing".into()),
        };
        if let Some(&Token::Unit(length)) = self.peek() {
            self.at += 1;
            return Ok(value * length);
        }
        Ok(value)
    }
}

/// Seconds of a fail2ban time expression (`bantime`, `findtime`, `bantime.maxtime`), e.g.
/// `600`, `10m`, `1h 30m`, `1d12h`, `2w`, `1mo`, `-1`. `Err` says what is wrong.
pub fn seconds(text: &str) -> Result<f64, String> {
    let tokens = tokens(text.trim())?;
    if tokens.is_empty() {
        return Err("empty".into());
    }
    let mut expr = Expr { tokens, at: 0 };
    let value = expr.sum()?;
    if let Some(extra) = expr.peek() {
        return Err(format!("unexpected {extra:?}"));
    }
    if !value.is_finite() {
        return Err("not a finite length".into());
    }
    Ok(value)
}

/// fail2ban's booleans: `true`, `yes`, `on`, `1` (any case) are true, anything else false.
pub fn boolean(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "1" | "on" | "true" | "yes"
    )
}

/// The words of a list separated by blanks, commas or lines (`ignoreip`).
pub fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect()
}

/// `name[key=value, key="value", ...]`: a filter, action or backend with its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub name: String,
    pub options: Vec<(String, String)>,
    /// The text it was read from.
    pub text: String,
}

#[cfg(test)]
impl Invocation {
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one invocation.
pub fn invocation(text: &str) -> Result<Invocation, String> {
    let text = text.trim();
    let (name, rest) = match text.find('[') {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("no name in {text:?}"));
    }
    let mut options = Vec::new();
    if let Some(rest) = rest {
        let Some(body) = rest.trim_end().strip_suffix(']') else {
            return Err(format!("a `[` is not closed in {text:?}"));
        };
        let mut body = body;
        loop {
            body = body.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
            if body.is_empty() {
                break;
            }
            // Several option groups may follow each other: `act[a=1][b=2]`.
            if let Some(next) = body.strip_prefix(']') {
                body = next.trim_start().strip_prefix('[').unwrap_or(next);
                continue;
            }
            let Some(eq) = body.find('=') else {
                return Err(format!("expected key=value in {text:?}"));
            };
            let key = body[..eq].trim().to_owned();
            body = body[eq + 1..].trim_start();
            let value;
            if let Some(quote) = body.chars().next().filter(|c| *c == '"' || *c == '\'') {
                let inner = &body[1..];
                let end = inner
                    .find(quote)
                    .ok_or_else(|| format!("a quote is not closed in {text:?}"))?;
                value = inner[..end].to_owned();
                body = &inner[end + 1..];
            } else {
                let end = body.find([',', ']']).unwrap_or(body.len());
                value = body[..end].trim().to_owned();
                body = &body[end..];
            }
            options.push((key, value));
        }
    }
    Ok(Invocation {
        name: name.to_owned(),
        options,
        text: text.to_owned(),
    })
}

/// Splits a list of invocations (`action`: one per line or separated by blanks; the options
/// of one may span lines) into their texts.
pub fn invocations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if depth > 0 => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth = depth.saturating_sub(1),
            (None, c) if c.is_whitespace() && depth == 0 => {
                // A blank before `[` belongs to the invocation: `name [opts]`.
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if chars.peek() == Some(&'[') && !current.is_empty() {
                    continue;
                }
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// Well-known service names of fail2ban's `port` lists (as /etc/services has them).
const SERVICE_PORTS: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("http", 80),
    ("www", 80),
    ("pop3", 110),
    ("nntp", 119),
    ("imap", 143),
    ("imap2", 143),
    ("ldap", 389),
    ("https", 443),
    ("smtps", 465),
    ("ssmtp", 465),
    ("submissions", 465),
    ("submission", 587),
    ("ldaps", 636),
    ("rsync", 873),
    ("ftps-data", 989),
    ("ftps", 990),
    ("imaps", 993),
    ("pop3s", 995),
    ("socks", 1080),
    ("openvpn", 1194),
    ("ms-sql-s", 1433),
    ("mysql", 3306),
    ("sieve", 4190),
    ("sip", 5060),
    ("sip-tls", 5061),
    ("xmpp-client", 5222),
    ("postgresql", 5432),
];

/// What a `port` list names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ports {
    /// Single ports, in the order given, without repeats.
    List(Vec<u16>),
    /// `0:65535` or `1:65535`: every port.
    All,
}

/// Reads a `port` list: numbers, service names and ranges `a:b`, separated by commas.
pub fn ports(text: &str) -> Result<Ports, String> {
    let mut list = Vec::new();
    for word in words(text) {
        if let Some((low, high)) = word.split_once(':') {
            if matches!((low, high), ("0" | "1", "65535")) {
                return Ok(Ports::All);
            }
            return Err(format!("the range {word}"));
        }
        let port = match word.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => SERVICE_PORTS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(word))
                .map(|(_, n)| *n)
                .ok_or_else(|| format!("the port name {word:?}"))?,
        };
        if !list.contains(&port) {
            list.push(port);
        }
    }
    Ok(Ports::List(list))
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;

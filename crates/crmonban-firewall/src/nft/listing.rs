//! Reading `list set` JSON output back into [`Element`]s. Elements come as a bare address, a
//! prefix, a range, or an `elem` object wrapping one of those with `timeout`/`expires`.
//! Ranges that are not one CIDR come back as the CIDRs that cover them exactly.

use std::net::IpAddr;

use crmonban_core::Target;
use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use serde_json::Value;

use crate::{Element, Expiry, FirewallError};

pub(crate) fn parse_elements(output: &str, now: i64) -> Result<Vec<Element>, FirewallError> {
    let mut out = Vec::new();
    for doc in serde_json::Deserializer::from_str(output).into_iter::<Value>() {
        let doc = doc.map_err(|e| FirewallError::Parse(format!("list output: {e}")))?;
        let objects = doc
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or_else(|| FirewallError::Parse("list output has no \"nftables\" array".into()))?;
        for set in objects.iter().filter_map(|o| o.get("set")) {
            for elem in set
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                parse_elem(elem, now, &mut out)?;
            }
        }
    }
    Ok(out)
}

fn parse_elem(value: &Value, now: i64, out: &mut Vec<Element>) -> Result<(), FirewallError> {
    let (val, expiry) = match value.get("elem") {
        Some(inner) => {
            let expires = inner
                .get("expires")
                .or_else(|| inner.get("timeout"))
                .and_then(Value::as_i64);
            let expiry = expires.map_or(Expiry::Never, |secs| Expiry::At(now + secs));
            (inner.get("val").unwrap_or(&Value::Null), expiry)
        }
        None => (value, Expiry::Never),
    };
    for target in targets_of(val)? {
        out.push(Element { target, expiry });
    }
    Ok(())
}

fn targets_of(val: &Value) -> Result<Vec<Target>, FirewallError> {
    let bad = || FirewallError::Parse(format!("unexpected set element {val}"));
    if let Some(text) = val.as_str() {
        return Ok(vec![Target::parse(text).map_err(|_| bad())?]);
    }
    if let Some(prefix) = val.get("prefix") {
        let addr = prefix.get("addr").and_then(Value::as_str).ok_or_else(bad)?;
        let len = prefix.get("len").and_then(Value::as_u64).ok_or_else(bad)?;
        return Ok(vec![
            Target::parse(&format!("{addr}/{len}")).map_err(|_| bad())?,
        ]);
    }
    if let Some([lo, hi]) = val
        .get("range")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        let lo: IpAddr = lo.as_str().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let hi: IpAddr = hi.as_str().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let nets: Vec<IpNet> = match (lo, hi) {
            (IpAddr::V4(a), IpAddr::V4(b)) => Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect(),
            (IpAddr::V6(a), IpAddr::V6(b)) => Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect(),
            _ => return Err(bad()),
        };
        return Ok(nets.into_iter().map(Target::from).collect());
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_element_shape() {
        let output = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", "name": "blocked_v4", "table": "crmonban", "type": "ipv4_addr", "handle": 1, "flags": ["timeout"], "elem": ["192.0.2.1", {"elem": {"val": "192.0.2.2", "timeout": 100, "expires": 90}}]}}]}
{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", "name": "blocked_v4_net", "table": "crmonban", "type": "ipv4_addr", "handle": 3, "flags": ["interval", "timeout"], "elem": [{"prefix": {"addr": "10.0.0.0", "len": 8}}, {"elem": {"val": {"range": ["10.1.0.0", "10.2.255.255"]}, "timeout": 60, "expires": 50}}]}}]}"#;
        let got = parse_elements(output, 1000).unwrap();
        let shown: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "192.0.2.1 (permanent)",
                "192.0.2.2 (until 1090)",
                "10.0.0.0/8 (permanent)",
                "10.1.0.0/16 (until 1050)",
                "10.2.0.0/16 (until 1050)"
            ]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_elements("not json", 0).is_err());
        assert!(parse_elements(r#"{"nftables":[{"set":{"elem":[{"weird":1}]}}]}"#, 0).is_err());
    }
}

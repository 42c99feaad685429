//! Property test of every built-in pack: whatever a client writes into the text it controls
//! (each attacker group of a matching sample line), the address that comes out is the one the
//! service wrote, or nothing. Random mixtures of forged address fields, pieces of the line
//! itself with the address forged, and hostile bytes (NUL, invalid UTF-8, ANSI escapes, line
//! breaks, quotes and brackets) are written into each group, 300 times per sample, from a
//! fixed seed; plus one 64 KiB line per sample.

use crmonban_core::config::{BanDuration, ServiceCatalog, ServiceConfig};
use crmonban_detect::matcher::{LineContext, LineOutcome, ServiceMatcher};
use crmonban_detect::packs::{SAMPLE_NOW, attacker_spans};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const FORGED: &str = "198.18.0.66";

const PIECES: &[&[u8]] = &[
    b" from 198.18.0.66 port 22 ssh2",
    b" from 198.18.0.66",
    b" 198.18.0.66 port 1",
    b" [preauth]",
    b"198.18.0.66",
    b"[198.18.0.66]",
    b"(198.18.0.66)",
    b"[client 198.18.0.66:1] ",
    b", client: 198.18.0.66, server: x",
    b"rip=198.18.0.66, lip=10.0.0.1",
    b"rhost=198.18.0.66",
    b",198.18.0.66,<s>)",
    b"'@'198.18.0.66'",
    b"\"198.18.0.66\"",
    b": ",
    b" ",
    b"\0",
    b"\xff\xfe",
    b"\x1b[31m",
    b"\r",
    b"\n",
    b"\"",
    b"'",
    b"<",
    b">",
    b"[",
    b"]",
    b"(",
    b")",
    b",",
    b"port 22",
    b"ssh2",
];

#[test]
fn no_client_text_ever_supplies_the_address() {
    let ctx = LineContext::at(SAMPLE_NOW);
    let mut rng = Lcg(0x00c0_ffee);
    let mut tried = 0usize;
    for pack in ServiceCatalog::builtin().packs() {
        let config = ServiceConfig::from_pack(pack, BanDuration::from_secs(3600));
        let matcher = ServiceMatcher::new(&pack.name, &config).unwrap();
        for test in pack.tests.iter().filter(|t| t.ip.is_some()) {
            let line = test.text.as_bytes();
            let LineOutcome::Match(hit) = matcher.match_line(line, &ctx) else {
                panic!("{}:{}: the sample does not match", pack.origin, test.line);
            };
            let pattern = pack
                .patterns
                .iter()
                .find(|p| *p.name == *hit.pattern)
                .unwrap();
            let Some(spans) = attacker_spans(pattern, line) else {
                continue;
            };
            let real = &line[spans.ip.0..spans.ip.1];
            for &(group, start, end) in &spans.groups {
                for _ in 0..300 {
                    let mut text = line[start..end].to_vec();
                    for _ in 0..1 + rng.below(4) {
                        let piece: Vec<u8> = if rng.below(3) == 0 {
                            // A piece of the service's own line, its address forged.
                            let a = rng.below(line.len());
                            let b = a + rng.below(line.len() - a + 1);
                            let own = String::from_utf8_lossy(&line[a..b])
                                .replace(std::str::from_utf8(real).unwrap(), FORGED);
                            own.into_bytes()
                        } else {
                            PIECES[rng.below(PIECES.len())].to_vec()
                        };
                        let at = rng.below(text.len() + 1);
                        text.splice(at..at, piece);
                    }
                    let mut rewritten = line[..start].to_vec();
                    rewritten.extend_from_slice(&text);
                    rewritten.extend_from_slice(&line[end..]);
                    tried += 1;
                    if let LineOutcome::Match(h) = matcher.match_line(&rewritten, &ctx) {
                        assert_ne!(
                            h.addr.to_string(),
                            FORGED,
                            "{}:{}: pattern {} took the address from group `{group}`: {}",
                            pack.origin,
                            test.line,
                            h.pattern,
                            String::from_utf8_lossy(&rewritten).escape_debug()
                        );
                    }
                }
                // A 64 KiB group: the line is skipped as too long, never mis-read.
                let mut long = line[..start].to_vec();
                long.extend(std::iter::repeat_n(b'x', 64 * 1024));
                long.extend_from_slice(b" from 198.18.0.66 port 22 ssh2");
                long.extend_from_slice(&line[end..]);
                assert!(
                    !matches!(matcher.match_line(&long, &ctx), LineOutcome::Match(ref h) if h.addr.to_string() == FORGED),
                    "{}:{}",
                    pack.origin,
                    test.line
                );
            }
        }
    }
    assert!(tried > 10_000, "only {tried} hostile lines were tried");
}

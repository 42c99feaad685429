//! A real rsyslog ([`Rsyslog`]) for the SIEM tests, started inside a test's network namespace
//! with a private configuration: a unix datagram socket, UDP, plain TCP and TLS (its OpenSSL
//! stream driver, certificates made by `openssl` for a test CA) inputs, the RFC 5424 parser,
//! `mmpstrucdata` (structured data into `$!rfc5424-sd`) and `mmjsonparse` (a JSON MSG into
//! `$!json`); tabs are kept as received (`parser.escapeControlCharacterTab="off"`, as a relay
//! of LEEF must be set up), and every message it receives is written as one JSON object per line, which
//! [`Rsyslog::records`] reads back. Stopped by its PID on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::{NetNs, PATIENCE, wait_until};

/// Port of the plain TCP input (octet-counted or LF-framed), inside the namespace.
pub const RSYSLOG_TCP_PORT: u16 = 10514;
/// Port of the UDP input.
pub const RSYSLOG_UDP_PORT: u16 = 10515;
/// Port of the TLS input (RFC 5425).
pub const RSYSLOG_TLS_PORT: u16 = 10516;

/// A running rsyslogd; see the module documentation.
pub struct Rsyslog {
    child: Child,
    dir: tempfile::TempDir,
}

impl Rsyslog {
    /// Starts rsyslogd inside `ns` (listening on its 127.0.0.1) and waits until every input
    /// is up.
    pub fn start_in(ns: &NetNs) -> Rsyslog {
        crate::require_root();
        let dir = tempfile::tempdir().unwrap();
        crate::certs::make(dir.path(), false);
        let d = dir.path().display().to_string();
        let config = dir.path().join("rsyslog.conf");
        std::fs::write(&config, CONFIG.replace("@DIR@", &d)).unwrap();
        let check = Command::new("rsyslogd")
            .args(["-N1", "-f"])
            .arg(&config)
            .output()
            .expect("rsyslogd (Debian package rsyslog; cargo xtask test installs it)");
        assert!(
            check.status.success(),
            "rsyslog rejects the test configuration: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.path().join("rsyslogd.log")).unwrap();
        let child = ns.run(|| {
            Command::new("rsyslogd")
                .args(["-n", "-f"])
                .arg(&config)
                .arg("-i")
                .arg(dir.path().join("rsyslogd.pid"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting rsyslogd")
        });
        let rsyslog = Rsyslog { child, dir };
        wait_until("rsyslogd's inputs", PATIENCE, || {
            let up = rsyslog.socket().exists()
                && ns.run(|| {
                    [RSYSLOG_TCP_PORT, RSYSLOG_TLS_PORT]
                        .iter()
                        .all(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok())
                });
            up.then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {}", rsyslog.log()));
        rsyslog
    }

    /// The unix datagram socket rsyslog reads (like `/dev/log`).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("log.sock")
    }

    /// The CA that signed the TLS input's certificate (for `CN=localhost`, `IP:127.0.0.1`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Every message received so far, as the configuration's JSON: `hostname`, `app`,
    /// `procid`, `msgid`, `facility`, `severity`, `time` (TIMESTAMP as received), `input`
    /// (`unix`, `udp`, `tcp`, `tls`), `msg`, and `vars` with `rfc5424-sd` (structured data,
    /// unescaped) and `json` (the MSG parsed as JSON, or `{"msg": ...}` when it is not).
    pub fn records(&self) -> Vec<serde_json::Value> {
        let text =
            std::fs::read_to_string(self.dir.path().join("received.json")).unwrap_or_default();
        // A last line without its line feed is still being written.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("rsyslog wrote a line that is not JSON ({e}): {line}")
                })
            })
            .collect()
    }

    /// Waits until a received message satisfies `found`, and returns it.
    pub fn wait_for(
        &self,
        what: &str,
        found: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        wait_until(what, PATIENCE, || {
            self.records().into_iter().find(|r| found(r))
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e}; rsyslog received:\n{:#?}\n{}",
                self.records(),
                self.log()
            )
        })
    }

    /// rsyslogd's own messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.log")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test configuration; `@DIR@` is the instance's directory.
const CONFIG: &str = r#"
global(workDirectory="@DIR@" maxMessageSize="64k" parser.escapeControlCharacterTab="off")
module(load="imuxsock" SysSock.Use="off")
module(load="imudp")
module(load="imtcp")
module(load="mmpstrucdata")
module(load="mmjsonparse")
template(name="received" type="list") {
  constant(value="{")
  property(name="hostname" format="jsonf" outname="hostname") constant(value=",")
  property(name="app-name" format="jsonf" outname="app") constant(value=",")
  property(name="procid" format="jsonf" outname="procid") constant(value=",")
  property(name="msgid" format="jsonf" outname="msgid") constant(value=",")
  property(name="syslogfacility" format="jsonf" outname="facility") constant(value=",")
  property(name="syslogseverity" format="jsonf" outname="severity") constant(value=",")
  property(name="timereported" dateFormat="rfc3339" format="jsonf" outname="time") constant(value=",")
  property(name="inputname" format="jsonf" outname="input") constant(value=",")
  property(name="msg" format="jsonf" outname="msg") constant(value=",\"vars\":")
  property(name="$!")
  constant(value="}\n")
}
ruleset(name="received") {
  action(type="mmpstrucdata")
  action(type="mmjsonparse" cookie="" container="!json")
  action(type="omfile" file="@DIR@/received.json" template="received")
}
input(type="imuxsock" Socket="@DIR@/log.sock" UseSpecialParser="off" ParseHostname="on"
      IgnoreTimestamp="off" ruleset="received")
input(type="imudp" port="10515" address="127.0.0.1" name="udp" ruleset="received")
input(type="imtcp" port="10514" address="127.0.0.1" name="tcp" ruleset="received")
input(type="imtcp" port="10516" address="127.0.0.1" name="tls" ruleset="received"
      streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon"
      streamDriver.CAFile="@DIR@/ca.pem" streamDriver.CertFile="@DIR@/server.pem"
      streamDriver.KeyFile="@DIR@/server.key")
"#;

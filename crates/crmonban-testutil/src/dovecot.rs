//! A real Dovecot IMAP server for end-to-end mail detection tests. It runs in a network
//! namespace with a configuration of its own (nothing under /etc is read or changed), checks
//! logins against a passwd-file, and writes its own log file (`log_path`), the format an admin
//! who sets `log_path` gets: `Dec 03 08:46:16 auth: Info: passwd-file(bob,ADDR,<id>): Password
//! mismatch`.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::NetNs;

/// A running `dovecot -F` in a namespace. Stopped (by its pid) when dropped.
pub struct Dovecot {
    child: Child,
    _dir: tempfile::TempDir,
    pub log: PathBuf,
    pub port: u16,
}

impl Dovecot {
    /// Starts dovecot in `ns`, listening for IMAP on `port` of every address. The one account
    /// is `bob` with password `secret`.
    pub fn start(ns: &NetNs, port: u16) -> Dovecot {
        crate::require_root();
        assert!(
            Path::new("/usr/sbin/dovecot").exists(),
            "dovecot is not installed (cargo xtask test installs dovecot-imapd)"
        );
        // Dovecot's unprivileged login and auth processes must reach its base_dir.
        let dir = crate::bus::tempdir_for_everyone("crmonban-dovecot-");
        let d = dir.path();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(
            d.join("users"),
            format!(
                "bob:{{PLAIN}}secret:65534:65534::{}\n",
                d.join("home").display()
            ),
        )
        .unwrap();
        let log = d.join("dovecot.log");
        let config = d.join("dovecot.conf");
        std::fs::write(
            &config,
            format!(
                "base_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {log}\n\
                 instance_name = crmonban-test-{port}\nprotocols = imap\nlisten = *, ::\nssl = no\n\
                 disable_plaintext_auth = no\nauth_mechanisms = plain login\nauth_verbose = yes\n\
                 auth_failure_delay = 0\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/users\n}}\n\
                 userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={d}/home\n}}\n\
                 service imap-login {{\n  inet_listener imap {{\n    port = {port}\n  }}\n  \
                 inet_listener imaps {{\n    port = 0\n  }}\n}}\n",
                d = d.display(),
                log = log.display()
            ),
        )
        .unwrap();
        let config_arg = config.display().to_string();
        let child = ns.run(|| {
            Command::new("/usr/sbin/dovecot")
                .args(["-F", "-c", &config_arg])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start dovecot")
        });
        let mut dovecot = Dovecot {
            child,
            _dir: dir,
            log,
            port,
        };
        crate::wait_child_listening(&mut dovecot.child, ns, port, "dovecot");
        dovecot
    }

    /// What dovecot has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One IMAP connection from `from` to `addr:port` that tries `LOGIN user password` for each
/// pair, then logs out. Returns the server's tagged answers (empty when the connection failed,
/// e.g. once the address is banned).
pub fn imap_logins(
    from: &NetNs,
    addr: IpAddr,
    port: u16,
    attempts: &[(&str, &str)],
) -> Vec<String> {
    let attempts: Vec<(String, String)> = attempts
        .iter()
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .collect();
    from.run(move || {
        let Ok(stream) =
            TcpStream::connect_timeout(&SocketAddr::new(addr, port), Duration::from_secs(5))
        else {
            return Vec::new();
        };
        // Dovecot delays a failed login by up to 15 s per address (its auth penalty); a ban
        // in the meantime leaves the answer unsent.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
        let mut writer = stream.try_clone().expect("clone the socket");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || !line.starts_with("* OK") {
            return Vec::new();
        }
        let mut answers = Vec::new();
        for (i, (user, password)) in attempts.iter().enumerate() {
            let tag = format!("a{i}");
            if writer
                .write_all(format!("{tag} LOGIN {user} {password}\r\n").as_bytes())
                .is_err()
            {
                break;
            }
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(n) if n > 0 => {}
                    _ => return answers,
                }
                if line.starts_with(&tag) {
                    answers.push(line.trim_end().to_owned());
                    break;
                }
            }
        }
        let _ = writer.write_all(b"z LOGOUT\r\n");
        answers
    })
}

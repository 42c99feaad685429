//! A real OpenSSH server for end-to-end detection tests, logging the way a stock Debian host
//! does: sshd sends its messages to syslog, and a [`SyslogSink`] owned by the test receives them
//! on a private `/dev/log` (bind-mounted in a mount namespace of sshd's own) and appends them to
//! an auth.log in rsyslog's traditional format (`Nov 25 16:19:59 host sshd[1234]: message`).
//!
//! (`sshd -E FILE` would be simpler, but it writes bare messages without the syslog prefix and
//! pid, which is not what the detector meets on a real host.)

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::NetNs;

/// Receives syslog datagrams on a unix socket and appends them to a log file as rsyslog does.
pub struct SyslogSink {
    socket_path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SyslogSink {
    /// Binds `socket_path` and writes every message to `log_path` (created if missing).
    pub fn start(socket_path: &Path, log_path: &Path, hostname: &str) -> SyslogSink {
        let _ = std::fs::remove_file(socket_path);
        let socket = UnixDatagram::bind(socket_path)
            .unwrap_or_else(|e| panic!("bind syslog socket {}: {e}", socket_path.display()));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()));
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let hostname = hostname.to_owned();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !stop_flag.load(Ordering::Relaxed) {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                if let Some(line) = rsyslog_line(&String::from_utf8_lossy(&buf[..n]), &hostname) {
                    let _ = log.write_all(line.as_bytes());
                    let _ = log.flush();
                }
            }
        });
        SyslogSink {
            socket_path: socket_path.to_owned(),
            stop,
            thread: Some(thread),
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

/// `<38>Nov 25 16:19:59 sshd[1234]: msg` -> `Nov 25 16:19:59 HOST sshd[1234]: msg\n`.
fn rsyslog_line(datagram: &str, hostname: &str) -> Option<String> {
    let rest = datagram.strip_prefix('<')?;
    let (_, rest) = rest.split_once('>')?;
    // The BSD timestamp is the first 15 characters ("Nov 25 16:19:59").
    if rest.len() < 16 {
        return None;
    }
    let (stamp, message) = rest.split_at(15);
    let message = message.trim_start().trim_end_matches(['\n', '\r', '\0']);
    Some(format!("{stamp} {hostname} {message}\n"))
}

/// A running sshd inside a network namespace, logging through a [`SyslogSink`] or to a
/// journald.
pub struct Sshd {
    child: Child,
    _sink: Option<SyslogSink>,
    pub port: u16,
}

impl Sshd {
    /// Starts `/usr/sbin/sshd -D` in `ns`, listening on `port` on every address, with password
    /// authentication on and its own host key in `dir`; messages land in `auth_log`.
    pub fn start(ns: &NetNs, dir: &Path, auth_log: &Path, port: u16) -> Sshd {
        let sink = SyslogSink::start(&dir.join("devlog.sock"), auth_log, "testhost");
        let socket = sink.socket_path().to_owned();
        Sshd::spawn(ns, dir, &socket, Some(sink), port)
    }

    /// Like [`Sshd::start`], with `dev_log` (e.g. [`crate::Journald::dev_log`]) as sshd's
    /// `/dev/log`: its messages go to that syslog socket, as on a host without rsyslog.
    pub fn start_logging_to(ns: &NetNs, dir: &Path, dev_log: &Path, port: u16) -> Sshd {
        Sshd::spawn(ns, dir, dev_log, None, port)
    }

    fn spawn(ns: &NetNs, dir: &Path, dev_log: &Path, sink: Option<SyslogSink>, port: u16) -> Sshd {
        crate::require_root();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let key = dir.join("ssh_host_ed25519_key");
        if !key.exists() {
            crate::run(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()],
            );
        }
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 0.0.0.0\nListenAddress ::\nHostKey {key}\n\
                 PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 PermitRootLogin no\nMaxAuthTries 6\nLoginGraceTime 20\nSyslogFacility AUTH\n\
                 LogLevel INFO\nPidFile none\n",
                key = key.display()
            ),
        )
        .unwrap();
        // A mount namespace of sshd's own whose /dev is a small tmpfs with the device nodes
        // sshd needs and /dev/log a symlink to the given socket (a symlink, not a bind mount: a
        // journald's socket lives in another mount namespace, which bind mounts cannot reach) (the host may have no /dev/log at all,
        // and nothing here may change the host's /dev).
        let devdir = dir.join("dev");
        std::fs::create_dir_all(&devdir).unwrap();
        let script = format!(
            "set -e; D={dev}; mount -t tmpfs tmpfs $D; \
             for n in null zero full random urandom tty; do touch $D/$n; mount --bind /dev/$n $D/$n; done; \
             ln -s {sock} $D/log; mount --rbind $D /dev; \
             exec /usr/sbin/sshd -D -f {config}",
            dev = devdir.display(),
            sock = dev_log.display(),
            config = config.display()
        );
        let child = ns.run(|| {
            Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start sshd")
        });
        let mut sshd = Sshd {
            child,
            _sink: sink,
            port,
        };
        sshd.wait_listening(ns);
        sshd
    }

    fn wait_listening(&mut self, ns: &NetNs) {
        crate::wait_child_listening(&mut self.child, ns, self.port, "sshd");
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One failed password login from `from` to `addr:port` (sshpass + ssh with a wrong password).
/// Returns the exit status code (124 when it was cut off after 30 s; a client banned mid-way
/// gives up after about 3 s without an answer to its keep-alives).
pub fn failed_ssh_login(from: &NetNs, addr: &str, port: u16, user: &str) -> Option<i32> {
    from.run(|| {
        // `timeout`: a client whose address gets banned mid-connection would wait forever.
        Command::new("timeout")
            .args([
                "30",
                "sshpass",
                "-p",
                "wrong-password",
                "ssh",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "ServerAliveInterval=1",
                "-o",
                "ServerAliveCountMax=3",
                "-p",
                &port.to_string(),
                &format!("{user}@{addr}"),
                "true",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .and_then(|s| s.code())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_datagrams_become_rsyslog_lines() {
        assert_eq!(
            rsyslog_line("<38>Nov 25 16:19:59 sshd[1234]: Failed password for root from 192.0.2.7 port 22 ssh2", "h").as_deref(),
            Some("Nov 25 16:19:59 h sshd[1234]: Failed password for root from 192.0.2.7 port 22 ssh2\n")
        );
        assert_eq!(rsyslog_line("garbage", "h"), None);
    }

    #[test]
    fn root_sshd_logs_failed_logins_to_an_auth_log() {
        let server = NetNs::new("ssh-srv");
        let client = NetNs::new("ssh-cli");
        crate::connect(
            crate::End {
                ns: &client,
                v4: "10.79.0.1/24",
                v6: "fd79::1/64",
            },
            crate::End {
                ns: &server,
                v4: "10.79.0.2/24",
                v6: "fd79::2/64",
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        let _sshd = Sshd::start(&server, dir.path(), &log, 2222);
        failed_ssh_login(&client, "10.79.0.2", 2222, "nosuchuser");
        failed_ssh_login(&client, "fd79::2", 2222, "root");
        let mut text = String::new();
        crate::wait_until("sshd to log both failures", crate::PATIENCE, || {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            (text.contains("from 10.79.0.1 port") && text.contains("from fd79::1 port"))
                .then_some(())
        })
        .unwrap_or_else(|waited| panic!("{waited}; auth.log:\n{text}"));
        assert!(
            text.lines().all(|l| l.contains(" testhost sshd[")),
            "{text}"
        );
    }
}

//! Throwaway TLS certificates for the test servers that speak TLS (rsyslog's RFC 5425 input,
//! PostgreSQL), made by Debian's `openssl` command: a CA, a server certificate for
//! `localhost` and 127.0.0.1 signed by it, and when asked an unrelated CA for the tests that
//! must be refused. P-256 keys, valid for two days.

use std::path::Path;
use std::process::Command;

/// In `dir`: `ca.pem` (and `ca.key`), `server.pem` and `server.key` signed by it, and with
/// `other_ca` an unrelated `other-ca.pem`.
pub(crate) fn make(dir: &Path, other_ca: bool) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (Debian package openssl; cargo xtask deps installs it)");
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let cas: &[(&str, &str)] = if other_ca {
        &[
            ("ca", "/CN=crmonban test CA"),
            ("other-ca", "/CN=unrelated CA"),
        ]
    } else {
        &[("ca", "/CN=crmonban test CA")]
    };
    for (name, subject) in cas {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        let self_signed = [
            "-days", "2", "-subj", subject, "-keyout", &key, "-out", &pem,
        ];
        openssl(&[&["req", "-x509"][..], &new_key, &self_signed].concat());
    }
    let request = [
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    openssl(&[&["req"][..], &new_key, &request].concat());
    // x509 -req, not req -x509 -CA: the latter marks the server's certificate as a CA's
    // (openssl.cnf's v3_ca), which webpki refuses as a server's.
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        "-out",
        "server.pem",
    ]);
}

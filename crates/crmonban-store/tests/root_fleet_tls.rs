//! The fleet database over TLS, as `[fleet] url` documents it (docs/CONFIG.md): a real
//! PostgreSQL listening on 127.0.0.1 with a certificate for `localhost` signed by a test CA,
//! rejecting TCP without TLS. `verify-full` with that CA connects and the server sees the
//! session encrypted; the wrong CA, or no TLS, is refused with an error that names the server
//! and never the password; `require`, and no `sslmode`, encrypt without checking. They panic
//! without root (PostgreSQL runs as its own user).

use crmonban_core::Target;
use crmonban_store::{ChangeKind, FleetStore, Publication, StoreError};
use crmonban_testutil::Postgres;

fn ban(target: &str) -> Publication {
    Publication {
        kind: ChangeKind::Ban,
        target: Target::parse(target).unwrap(),
        reason: "5 failures of ssh in 40s".into(),
        service: Some("ssh".into()),
        first_seen: Some(1_000),
        last_seen: Some(1_040),
        expires_at: Some(5_000),
    }
}

/// The sessions of role crmonban that came over TCP, as the server counts them: (with TLS,
/// without). psql itself comes through the unix socket and is not counted.
fn tcp_sessions(pg: &Postgres) -> (u32, u32) {
    let out = pg.psql(
        "SELECT count(*) FILTER (WHERE ssl), count(*) FILTER (WHERE NOT ssl)
           FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
          WHERE usename = 'crmonban' AND client_addr IS NOT NULL",
    );
    let (tls, plain) = out.trim().split_once('|').expect("two counts");
    (tls.parse().unwrap(), plain.parse().unwrap())
}

/// The error of connecting to `url`, with the Display and Debug forms a log would show.
async fn connect_error(url: &str) -> (StoreError, String) {
    let err = FleetStore::connect(url)
        .await
        .err()
        .unwrap_or_else(|| panic!("{url} connected"));
    let text = format!("{err}\n{err:?}");
    (err, text)
}

#[tokio::test]
async fn root_verify_full_with_the_servers_ca_connects_encrypted() {
    let pg = Postgres::start_tls();
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.tcp_url(),
        pg.ca_file().display()
    );
    let fleet = FleetStore::connect(&url).await.unwrap();
    assert_eq!(
        fleet.server(),
        format!("crmonban@localhost:{}/postgres", pg.tcp_port())
    );
    let ids = fleet
        .publish("web1", &[ban("203.0.113.7")], 1_050)
        .await
        .unwrap();
    let read = fleet.changes_after(0, 10).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!((read[0].id, read[0].node.as_str()), (ids[0], "web1"));
    assert_eq!(read[0].change, ban("203.0.113.7"));
    // The pool keeps its connections: the server sees them, all over TLS.
    let (tls, plain) = tcp_sessions(&pg);
    assert!(tls >= 1 && plain == 0, "TLS {tls}, plain {plain}");
    fleet.close().await;
}

#[tokio::test]
async fn root_verify_full_with_another_ca_is_refused_naming_the_server_not_the_password() {
    let pg = Postgres::start_tls();
    let server = format!("crmonban@localhost:{}/postgres", pg.tcp_port());
    let with_password = pg.tcp_url().replace("crmonban@", "crmonban:s3cret@");
    let wrong_ca = format!(
        "{with_password}?sslmode=verify-full&sslrootcert={}",
        pg.other_ca_file().display()
    );
    // Without sslrootcert only the system's CAs are trusted, and none of them signed it.
    let no_ca = format!("{with_password}?sslmode=verify-full");
    for url in [wrong_ca, no_ca] {
        let (err, text) = connect_error(&url).await;
        assert!(matches!(err, StoreError::FleetConnect { .. }), "{text}");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot connect to the fleet database {server}: ")),
            "{text}"
        );
        // rustls's "UnknownIssuer" alone does not say where the trusted CAs come from.
        assert!(
            err.to_string().contains(
                "TLS: the server's certificate is signed by no CA this node trusts (the \
                 system's CAs and the file named by sslrootcert= in the URL"
            ),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }
    assert_eq!(tcp_sessions(&pg), (0, 0));
}

#[tokio::test]
async fn root_tcp_without_tls_is_rejected_by_the_server() {
    let pg = Postgres::start_tls();
    let url = format!("{}?sslmode=disable", pg.tcp_url());
    let (err, text) = connect_error(&url).await;
    assert!(matches!(err, StoreError::FleetConnect { .. }), "{text}");
    // PostgreSQL's words, without the " at line 476" (of its C source, not of pg_hba.conf)
    // sqlx's own message ends with.
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to the fleet database crmonban@localhost:{}/postgres: PostgreSQL \
             says: pg_hba.conf rejects connection for host \"127.0.0.1\", user \"crmonban\", \
             database \"postgres\", no encryption",
            pg.tcp_port()
        ),
        "{text}"
    );
}

#[tokio::test]
async fn root_require_and_no_sslmode_encrypt_without_checking_the_certificate() {
    let pg = Postgres::start_tls();
    // No CA at all, and a CA that did not sign the server's certificate: sqlx checks nothing
    // under `require` (libpq would verify against an sslrootcert it is given), nor under its
    // default, `prefer` (which would also go on in clear, were TLS not offered).
    for query in [
        String::new(),
        "sslmode=require".to_owned(),
        format!(
            "sslmode=require&sslrootcert={}",
            pg.other_ca_file().display()
        ),
    ] {
        let url = format!("{}?{query}", pg.tcp_url())
            .trim_end_matches('?')
            .to_owned();
        let fleet = FleetStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        fleet
            .publish("web1", &[ban("198.51.100.9")], 1_050)
            .await
            .unwrap();
        let (tls, plain) = tcp_sessions(&pg);
        assert!(tls >= 1 && plain == 0, "{query}: TLS {tls}, plain {plain}");
        fleet.close().await;
    }
}

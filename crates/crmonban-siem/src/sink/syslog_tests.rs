use std::path::PathBuf;

use crmonban_core::config::{SyslogHeader, SyslogTls};

use super::*;

fn network(address: &str, protocol: SyslogProtocol, tls: Option<SyslogTls>) -> SyslogTransport {
    SyslogTransport::Network {
        address: address.to_owned(),
        protocol,
        tls,
    }
}

#[test]
fn addresses_are_host_and_port() {
    assert_eq!(
        host_of("collector.example:514").unwrap(),
        "collector.example"
    );
    assert_eq!(host_of("10.0.0.5:6514").unwrap(), "10.0.0.5");
    assert_eq!(host_of("[2001:db8::1]:514").unwrap(), "2001:db8::1");
    for bad in [
        "collector",
        "collector:",
        "collector:0",
        "collector:65536",
        ":514",
        "2001:db8::1:514",
        "[2001:db8::1]",
        "[]:514",
    ] {
        let e = host_of(bad).unwrap_err().message;
        assert!(e.starts_with("address "), "{bad}: {e}");
        assert!(e.contains(bad), "{bad}: {e}");
    }
}

#[test]
fn octet_counting_prefixes_each_message_with_its_length_in_bytes() {
    let batch: Vec<Arc<str>> = vec![Arc::from("<38>1 abc"), Arc::from("é")];
    assert_eq!(octet_counted(&batch), b"9 <38>1 abc2 \xc3\xa9".to_vec());
    assert_eq!(line_feed(&batch), "<38>1 abc\né\n".as_bytes().to_vec());
}

#[test]
fn datagrams_are_cut_at_a_character_boundary() {
    assert_eq!(clip("abc", 5), "abc");
    assert_eq!(clip("aé", 2), "a");
    assert_eq!(clip("aéb", 3), "aé");
    let long = "é".repeat(MAX_DATAGRAM);
    let cut = clip(&long, MAX_DATAGRAM);
    assert!(cut.len() <= MAX_DATAGRAM && cut.len() > MAX_DATAGRAM - 2);
}

#[test]
fn build_checks_without_connecting() {
    // Nothing listens there: build does not care.
    let sink = SyslogSink::build(&network("127.0.0.1:9", SyslogProtocol::Tcp, None)).unwrap();
    assert_eq!(sink.describe(), "tcp 127.0.0.1:9");
    let sink = SyslogSink::build(&network("[::1]:514", SyslogProtocol::Udp, None)).unwrap();
    assert_eq!(sink.describe(), "udp [::1]:514");
    let sink = SyslogSink::build(&SyslogTransport::Unix {
        socket: PathBuf::from("/nonexistent/log"),
        socket_type: UnixSocketType::Auto,
        header: SyslogHeader::Auto,
    })
    .unwrap();
    assert_eq!(sink.describe(), "unix /nonexistent/log");

    let e = SyslogSink::build(&network(
        "127.0.0.1:514",
        SyslogProtocol::Udp,
        Some(SyslogTls::default()),
    ))
    .unwrap_err();
    assert!(e.message.contains("tcp"), "{e}");
    let e = SyslogSink::build(&SyslogTransport::Unix {
        socket: PathBuf::from("dev/log"),
        socket_type: UnixSocketType::Auto,
        header: SyslogHeader::Auto,
    })
    .unwrap_err();
    assert!(e.message.contains("socket dev/log"), "{e}");
}

#[test]
fn tls_files_are_read_at_build_and_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let tls = |ca: &std::path::Path| SyslogTls {
        ca_file: Some(ca.to_owned()),
        ..SyslogTls::default()
    };
    let e = SyslogSink::build(&network("h:6514", SyslogProtocol::Tcp, Some(tls(&missing))))
        .unwrap_err()
        .message;
    assert!(e.starts_with("tls_ca_file "), "{e}");
    assert!(e.contains(&missing.display().to_string()), "{e}");
    assert!(e.contains("cannot read"), "{e}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let e = SyslogSink::build(&network("h:6514", SyslogProtocol::Tcp, Some(tls(&garbage))))
        .unwrap_err()
        .message;
    assert!(e.contains(&garbage.display().to_string()), "{e}");
    assert!(e.contains("no PEM certificate"), "{e}");

    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = SyslogSink::build(&network("h:6514", SyslogProtocol::Tcp, Some(tls(&broken))))
        .unwrap_err()
        .message;
    assert!(e.contains("not valid PEM"), "{e}");

    let lone_cert = SyslogTls {
        cert_file: Some(garbage.clone()),
        ..SyslogTls::default()
    };
    let e = SyslogSink::build(&network("h:6514", SyslogProtocol::Tcp, Some(lone_cert)))
        .unwrap_err()
        .message;
    assert!(e.contains("tls_key_file"), "{e}");
}

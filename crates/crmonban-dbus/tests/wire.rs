//! The contract on a real bus (a private `dbus-daemon`): the proxy sends exactly the member
//! names that the member lists (and so the bus policy) name, receives the five signals, every
//! error variant crosses the wire as its own name and comes back as itself, and [`authorize`]
//! refuses an unprivileged caller with `org.freedesktop.DBus.Error.AccessDenied`.

use std::collections::BTreeSet;

use crmonban_dbus::{
    BUS_NAME, DaemonProxy, Error, INTERFACE, MUTATING_MEMBERS, OBJECT_PATH, PROPERTIES,
    READ_ONLY_MEMBERS, SIGNALS, authorize,
};
use crmonban_testutil::{NOBODY, PrivateBus, command_as};
use futures_util::StreamExt;
use zbus::message::{Header, Type};
use zbus::proxy::CacheProperties;
use zbus::{Connection, MessageStream};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn connect(bus: &PrivateBus) -> Connection {
    zbus::connection::Builder::address(bus.address())
        .build()
        .await
        .expect("connect to the private bus")
}

/// Owns the daemon's name and answers every method call with `org.crmonban.Error.Failed`
/// whose message names the member it received (`Properties.Get` adds the property name).
async fn start_recorder(bus: &PrivateBus) -> Connection {
    let conn = zbus::connection::Builder::address(bus.address())
        .name(BUS_NAME)
        .build()
        .await
        .expect("own the daemon's name");
    let mut stream = MessageStream::from(&conn);
    let replier = conn.clone();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if msg.message_type() != Type::MethodCall {
                continue;
            }
            let header = msg.header();
            let interface = header
                .interface()
                .map(|i| i.to_string())
                .unwrap_or_default();
            let member = header.member().map(|m| m.to_string()).unwrap_or_default();
            let seen = if interface == "org.freedesktop.DBus.Properties" {
                let (iface, property): (String, String) =
                    msg.body().deserialize().unwrap_or_default();
                format!("{iface} {member} {property}")
            } else {
                format!("{interface} {member}")
            };
            let _ = replier.reply_dbus_error(&header, Error::Failed(seen)).await;
        }
    });
    conn
}

fn recorded(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Failed(seen)) => seen,
        other => panic!("expected the recorder's reply, got {other:?}"),
    }
}

#[test]
fn proxy_sends_exactly_the_listed_members_and_receives_the_signals() {
    let bus = PrivateBus::open();
    runtime().block_on(async {
        let server = start_recorder(&bus).await;
        let client = connect(&bus).await;
        let proxy = DaemonProxy::builder(&client)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .expect("proxy");

        let ip = "192.0.2.1";
        let methods = [
            recorded(proxy.status().await),
            recorded(proxy.ban(ip, 60, "test").await),
            recorded(proxy.unban(ip).await),
            recorded(proxy.get_bans().await),
            recorded(proxy.get_bans_paged(0, 10).await),
            recorded(proxy.is_banned(ip).await),
            recorded(proxy.get_ban(ip).await),
            recorded(proxy.get_intel(ip, true).await),
            recorded(proxy.get_intel_summaries(&[ip]).await),
            recorded(proxy.whitelist_add(ip, "c").await),
            recorded(proxy.whitelist_add_lifting(ip, "c").await),
            recorded(proxy.whitelist_remove(ip).await),
            recorded(proxy.get_whitelist().await),
            recorded(proxy.get_protected_entries(0, 10).await),
            recorded(proxy.check_protected(ip).await),
            recorded(proxy.get_logs(10).await),
            recorded(proxy.get_stats().await),
            recorded(proxy.get_fleet_nodes().await),
            recorded(proxy.get_fleet_bans(0, 10).await),
            recorded(proxy.flush().await),
            recorded(proxy.reload().await),
            recorded(proxy.stop().await),
        ];
        let sent: BTreeSet<String> = methods.into_iter().collect();
        let listed: BTreeSet<String> = READ_ONLY_MEMBERS
            .iter()
            .chain(MUTATING_MEMBERS)
            .map(|m| format!("{INTERFACE} {m}"))
            .collect();
        assert_eq!(sent, listed);

        let property = |r: zbus::Result<_>| -> String { recorded(r.map_err(Error::from)) };
        let properties: BTreeSet<String> = [
            property(proxy.running().await.map(|_| ())),
            property(proxy.active_ban_count().await.map(|_| ())),
            property(proxy.uptime_seconds().await.map(|_| ())),
            property(proxy.events_processed().await.map(|_| ())),
        ]
        .into_iter()
        .collect();
        let listed: BTreeSet<String> = PROPERTIES
            .iter()
            .map(|p| format!("{INTERFACE} Get {p}"))
            .collect();
        assert_eq!(properties, listed);

        let mut ban_added = proxy.receive_ban_added().await.unwrap();
        let mut ban_removed = proxy.receive_ban_removed().await.unwrap();
        let mut attack = proxy.receive_attack_detected().await.unwrap();
        let mut started = proxy.receive_daemon_started().await.unwrap();
        let mut stopping = proxy.receive_daemon_stopping().await.unwrap();
        let emit = |name: &'static str| {
            let server = server.clone();
            async move {
                match name {
                    "BanAdded" => {
                        let body = (ip, "test", "dbus", 60u32);
                        server
                            .emit_signal(None::<()>, OBJECT_PATH, INTERFACE, name, &body)
                            .await
                    }
                    "BanRemoved" => {
                        let body = (ip, "unban");
                        server
                            .emit_signal(None::<()>, OBJECT_PATH, INTERFACE, name, &body)
                            .await
                    }
                    "AttackDetected" => {
                        let body = (ip, "ssh", "auth_failure");
                        server
                            .emit_signal(None::<()>, OBJECT_PATH, INTERFACE, name, &body)
                            .await
                    }
                    _ => {
                        server
                            .emit_signal(None::<()>, OBJECT_PATH, INTERFACE, name, &())
                            .await
                    }
                }
                .expect("emit");
            }
        };
        for name in SIGNALS {
            emit(name).await;
        }
        let added = ban_added.next().await.unwrap();
        let args = added.args().unwrap();
        assert_eq!(
            (
                *args.ip(),
                *args.reason(),
                *args.source(),
                *args.duration_secs()
            ),
            (ip, "test", "dbus", 60)
        );
        let removed = ban_removed.next().await.unwrap();
        assert_eq!(*removed.args().unwrap().reason(), "unban");
        let detected = attack.next().await.unwrap();
        assert_eq!(*detected.args().unwrap().service(), "ssh");
        started.next().await.unwrap();
        stopping.next().await.unwrap();
    });
}

/// Replies with the error its argument names, through the `#[zbus::interface]` machinery the
/// daemon uses.
struct Failing;

#[zbus::interface(name = "org.crmonban.Daemon")]
impl Failing {
    async fn fail(&self, which: String) -> Result<(), Error> {
        Err(match which.as_str() {
            "InvalidAddress" => Error::InvalidAddress("bad".into()),
            "Whitelisted" => Error::Whitelisted("bad".into()),
            "Protected" => Error::Protected("bad".into()),
            "Firewall" => Error::Firewall("bad".into()),
            "Database" => Error::Database("bad".into()),
            "NotEnabled" => Error::NotEnabled("bad".into()),
            "AccessDenied" => Error::access_denied("bad"),
            "ZBus" => Error::ZBus(zbus::Error::Failure("bad".into())),
            _ => Error::Failed("bad".into()),
        })
    }
}

#[test]
fn every_error_crosses_the_wire_as_its_name() {
    let bus = PrivateBus::open();
    runtime().block_on(async {
        let _server = zbus::connection::Builder::address(bus.address())
            .name(BUS_NAME)
            .serve_at(OBJECT_PATH, Failing)
            .build()
            .await
            .expect("serve");
        let client = connect(&bus).await;
        let cases = [
            ("InvalidAddress", "org.crmonban.Error.InvalidAddress"),
            ("Whitelisted", "org.crmonban.Error.Whitelisted"),
            ("Protected", "org.crmonban.Error.Protected"),
            ("Firewall", "org.crmonban.Error.Firewall"),
            ("Database", "org.crmonban.Error.Database"),
            ("NotEnabled", "org.crmonban.Error.NotEnabled"),
            ("Failed", "org.crmonban.Error.Failed"),
            ("AccessDenied", "org.freedesktop.DBus.Error.AccessDenied"),
            // Internal failures never leak zbus's own error name.
            ("ZBus", "org.crmonban.Error.Failed"),
        ];
        for (which, name) in cases {
            let error = client
                .call_method(
                    Some(BUS_NAME),
                    OBJECT_PATH,
                    Some(INTERFACE),
                    "Fail",
                    &(which,),
                )
                .await
                .map(|_| ())
                .expect_err("Fail fails");
            let error = Error::from(error);
            assert_eq!(
                error.dbus_name().as_deref(),
                Some(name),
                "{which}: {error:?}"
            );
            assert!(error.message().contains("bad"), "{which}: {error:?}");
            assert!(
                !matches!(error, Error::ZBus(_)),
                "{which} came back untyped: {error:?}"
            );
            assert_eq!(error.is_access_denied(), which == "AccessDenied");
        }
    });
}

/// `Status` (read-only) and `Ban` (mutating), both guarded by [`authorize`].
struct Guarded;

#[zbus::interface(name = "org.crmonban.Daemon")]
impl Guarded {
    async fn status(
        &self,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<String, Error> {
        authorize(conn, &hdr).await?;
        Ok("status".into())
    }

    async fn ban(
        &self,
        _ip: String,
        _duration_secs: u32,
        _reason: String,
        #[zbus(connection)] conn: &Connection,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<bool, Error> {
        authorize(conn, &hdr).await?;
        Ok(true)
    }
}

#[test]
fn root_authorize_refuses_nobody_and_admits_root() {
    crmonban_testutil::require_root();
    // An open bus: nothing but the daemon's own check stands between the caller and Ban.
    let bus = PrivateBus::open();
    runtime().block_on(async {
        let _server = zbus::connection::Builder::address(bus.address())
            .name(BUS_NAME)
            .serve_at(OBJECT_PATH, Guarded)
            .build()
            .await
            .expect("serve");
        let call = |uid: u32, member: &'static str| {
            let mut command = command_as("dbus-send", uid, uid);
            command.args([
                format!("--bus={}", bus.address()),
                "--print-reply".into(),
                format!("--dest={BUS_NAME}"),
                OBJECT_PATH.into(),
                format!("{INTERFACE}.{member}"),
            ]);
            if member == "Ban" {
                command.args(["string:192.0.2.7", "uint32:60", "string:test"]);
            }
            async move {
                let out = tokio::task::spawn_blocking(move || command.output())
                    .await
                    .unwrap()
                    .expect("dbus-send");
                (
                    out.status.success(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            }
        };
        let (ok, stderr) = call(NOBODY, "Status").await;
        assert!(ok, "nobody may call Status: {stderr}");
        let (ok, stderr) = call(NOBODY, "Ban").await;
        assert!(!ok, "nobody may not ban");
        assert!(
            stderr.contains("org.freedesktop.DBus.Error.AccessDenied")
                && stderr.contains("Ban needs uid 0 or group crmonban"),
            "{stderr}"
        );
        let (ok, stderr) = call(0, "Ban").await;
        assert!(ok, "root may ban: {stderr}");
    });
}

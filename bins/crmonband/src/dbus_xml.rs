//! The introspection XML of `org.crmonban.Daemon`, generated from the zbus interface code so
//! that dbus/org.crmonban.Daemon.xml can never silently drift from what the daemon serves (a
//! test compares them; `cargo xtask dbus-xml` rewrites the file).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use crmonban_core::config::Config;
use crmonban_engine::EngineBuilder;
use crmonban_engine::RecordingBackend;
use tokio::sync::Notify;
use zbus::object_server::Interface;

use crate::dbus_server::DaemonObject;
use crate::state::Shared;

/// The whole introspection document for the interface.
pub fn generate() -> Result<String> {
    // The interface's description does not depend on its state, but the object needs an
    // engine to exist: a throwaway one over an in-memory firewall and a temporary database.
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = runtime.block_on(async {
        let store = crmonban_engine::Store::open(&dir.path().join("introspect.db")).await?;
        let running = EngineBuilder::new(Config::default())
            .firewall(Box::new(RecordingBackend::new()))
            .store(store)
            .without_detection()
            .start()
            .await?;
        let shared = Arc::new(Shared {
            running,
            config_path: None,
            config_explicit: false,
            stop: Notify::new(),
            metrics: std::sync::Mutex::new(None),
        });
        let object = DaemonObject::new(shared.clone());
        let mut xml = String::new();
        object.introspect_to_writer(&mut xml, 1);
        shared.running.shutdown().await;
        anyhow::Ok(xml)
    })?;
    Ok(format!(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n\
         <!-- Generated from bins/crmonband/src/dbus_server.rs by `cargo xtask dbus-xml`; do not edit. -->\n\
         <node name=\"/org/crmonban/Daemon\">\n{body}</node>\n"
    ))
}

pub fn print() -> Result<ExitCode> {
    print!("{}", generate()?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn shipped_introspection_matches_the_code() {
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../dbus/org.crmonban.Daemon.xml"
        ))
        .expect("dbus/org.crmonban.Daemon.xml is missing: run `cargo xtask dbus-xml`");
        let generated = super::generate().unwrap();
        assert!(
            shipped == generated,
            "dbus/org.crmonban.Daemon.xml is stale: run `cargo xtask dbus-xml` and commit it"
        );
    }
}

//! The catalog of services: the built-in service packs (data files shipped in the binary) and
//! any read from `[general] services_dir`, with their names and aliases unique across all.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use super::pack::Pack;

/// The built-in packs, file name and text.
pub const BUILTIN_PACKS: &[(&str, &str)] = &[
    ("ssh.toml", include_str!("../../packs/ssh.toml")),
    ("nginx.toml", include_str!("../../packs/nginx.toml")),
    ("apache.toml", include_str!("../../packs/apache.toml")),
    ("postfix.toml", include_str!("../../packs/postfix.toml")),
    ("dovecot.toml", include_str!("../../packs/dovecot.toml")),
    (
        "apache-badbots.toml",
        include_str!("../../packs/apache-badbots.toml"),
    ),
    (
        "apache-noscript.toml",
        include_str!("../../packs/apache-noscript.toml"),
    ),
    (
        "apache-overflows.toml",
        include_str!("../../packs/apache-overflows.toml"),
    ),
    (
        "nginx-botsearch.toml",
        include_str!("../../packs/nginx-botsearch.toml"),
    ),
    (
        "nginx-bad-request.toml",
        include_str!("../../packs/nginx-bad-request.toml"),
    ),
    ("dropbear.toml", include_str!("../../packs/dropbear.toml")),
    ("vsftpd.toml", include_str!("../../packs/vsftpd.toml")),
    ("proftpd.toml", include_str!("../../packs/proftpd.toml")),
    ("pure-ftpd.toml", include_str!("../../packs/pure-ftpd.toml")),
    (
        "mysqld-auth.toml",
        include_str!("../../packs/mysqld-auth.toml"),
    ),
    ("openvpn.toml", include_str!("../../packs/openvpn.toml")),
    ("asterisk.toml", include_str!("../../packs/asterisk.toml")),
    ("exim.toml", include_str!("../../packs/exim.toml")),
    (
        "courier-auth.toml",
        include_str!("../../packs/courier-auth.toml"),
    ),
    (
        "sendmail-auth.toml",
        include_str!("../../packs/sendmail-auth.toml"),
    ),
    ("recidive.toml", include_str!("../../packs/recidive.toml")),
];

/// The services crmonban knows: the built-in packs, and any read from a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceCatalog {
    packs: Vec<Arc<Pack>>,
}

static BUILTIN: LazyLock<ServiceCatalog> = LazyLock::new(|| ServiceCatalog {
    packs: BUILTIN_PACKS
        .iter()
        .map(|(file, text)| {
            let origin = format!("built-in {file}");
            // Every built-in pack is read (and its samples run) by the test suite.
            Arc::new(Pack::from_toml_str(text, &origin).unwrap_or_else(|e| panic!("{e}")))
        })
        .collect(),
});

/// Why a set of packs cannot form a catalog.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct CatalogError {
    /// The origin (a path or `built-in NAME.toml`) of the pack whose name or alias an earlier
    /// pack of the catalog already has.
    pub origin: String,
    /// What is wrong, e.g. a name or alias another pack already uses.
    pub message: String,
}

impl ServiceCatalog {
    /// The built-in packs.
    pub fn builtin() -> &'static ServiceCatalog {
        &BUILTIN
    }

    /// The built-in packs with `extra` added; an extra pack with a built-in name replaces it.
    /// Names and aliases must be unique across the result.
    pub fn with(extra: Vec<Pack>) -> Result<ServiceCatalog, CatalogError> {
        let mut packs: Vec<Arc<Pack>> = ServiceCatalog::builtin().packs.clone();
        for pack in extra {
            match packs.iter().position(|p| p.name == pack.name) {
                Some(i) => packs[i] = Arc::new(pack),
                None => packs.push(Arc::new(pack)),
            }
        }
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for pack in &packs {
            for name in std::iter::once(&pack.name).chain(&pack.aliases) {
                if !names.insert(name) {
                    return Err(CatalogError {
                        origin: pack.origin.clone(),
                        message: format!(
                            "the name {name:?} is already used by another service pack"
                        ),
                    });
                }
            }
        }
        Ok(ServiceCatalog { packs })
    }

    /// The pack `name` (a service name or alias) means.
    pub fn find(&self, name: &str) -> Option<&Arc<Pack>> {
        self.packs.iter().find(|p| p.answers_to(name))
    }

    /// Every pack, in catalog order: the built-in ones, then the added ones.
    pub fn packs(&self) -> impl Iterator<Item = &Arc<Pack>> {
        self.packs.iter()
    }

    /// Every service name, in catalog order.
    pub fn names(&self) -> Vec<&str> {
        self.packs.iter().map(|p| p.name.as_str()).collect()
    }

    /// Every service name and alias.
    pub fn all_names(&self) -> Vec<&str> {
        self.packs
            .iter()
            .flat_map(|p| std::iter::once(&p.name).chain(&p.aliases))
            .map(String::as_str)
            .collect()
    }
}

//! [`Layout`]: the names and priority of crmonban's nftables objects (DESIGN.md §3), taken from
//! the `[nftables]` config section.

/// Names of the one table crmonban owns and of everything in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `table inet <table>`.
    pub table: String,
    /// The chain on the input hook (`[nftables] chain_name`).
    pub input_chain: String,
    /// The chain on the forward hook (containers and routed traffic).
    pub forward_chain: String,
    /// Hash set of single IPv4 addresses; its interval twin is `<set_v4>_net`.
    pub set_v4: String,
    /// Hash set of single IPv6 addresses; its interval twin is `<set_v6>_net`.
    pub set_v6: String,
    /// Priority of both base chains (lower runs earlier).
    pub priority: i32,
}

impl Layout {
    /// The layout `[nftables]` describes (the forward chain is always `forward`).
    pub fn of(config: &crmonban_core::config::NftablesConfig) -> Layout {
        Layout {
            table: config.table_name.as_str().to_owned(),
            input_chain: config.chain_name.as_str().to_owned(),
            forward_chain: "forward".to_owned(),
            set_v4: config.set_v4.as_str().to_owned(),
            set_v6: config.set_v6.as_str().to_owned(),
            priority: config.priority,
        }
    }
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            table: "crmonban".into(),
            input_chain: "input".into(),
            forward_chain: "forward".into(),
            set_v4: "blocked_v4".into(),
            set_v6: "blocked_v6".into(),
            priority: -100,
        }
    }
}

impl Layout {
    /// The interval set for IPv4 networks.
    pub fn set_v4_net(&self) -> String {
        format!("{}_net", self.set_v4)
    }

    /// The interval set for IPv6 networks.
    pub fn set_v6_net(&self) -> String {
        format!("{}_net", self.set_v6)
    }

    /// The input chain, or the forward chain.
    pub fn chain(&self, forward: bool) -> &str {
        if forward {
            &self.forward_chain
        } else {
            &self.input_chain
        }
    }

    /// The set that holds `target`.
    pub fn set_for(&self, ipv4: bool, net: bool) -> String {
        match (ipv4, net) {
            (true, false) => self.set_v4.clone(),
            (false, false) => self.set_v6.clone(),
            (true, true) => self.set_v4_net(),
            (false, true) => self.set_v6_net(),
        }
    }
}

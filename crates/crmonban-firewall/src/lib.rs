//! Firewall (being written).

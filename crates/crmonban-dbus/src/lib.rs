//! D-Bus contract (being written).

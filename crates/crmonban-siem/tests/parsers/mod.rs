//! Parsers for the four formats written from their specifications alone, sharing no code with
//! the encoders they check: what a SIEM's parser would read back.

pub mod cef;
pub mod civil;
pub mod leef;
pub mod syslog;

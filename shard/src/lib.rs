//! AutoCache shard: a Redis-protocol cache server.
//!
//! The server is a library function, [`run`], so tests and the proxy's embedded mode start it
//! on any listener; `main.rs` only loads configuration and calls it.
#![forbid(unsafe_code)]

mod clients;
mod clock;
pub mod cluster;
mod cmd;
pub mod config;
mod connection;
pub mod error;
pub mod migrate;
pub mod observe;
pub mod protocol;
mod server;
mod shared;
mod slowlog;
pub mod store;
mod tracking;
pub mod value;

pub use config::Config;
pub use server::{Error, run, run_with_admin};

/// The Redis version this server reports (clients gate features on it).
pub const REDIS_VERSION: &str = "7.2.4";

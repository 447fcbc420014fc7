//! The integration tests: one binary, one module per capability. Every test
//! starts its own gateway in-process on port 0 with its own SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod cluster;
mod console;
mod handshake;
mod helpers;
mod sessions;
mod store_suite;
mod tokens;
mod upstream;
mod users;

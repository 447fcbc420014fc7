//! The integration tests: one binary, one module per capability. Every test
//! starts its own gateway in-process on port 0 with its own SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod attacks;
mod cluster;
mod console;
mod fuzz_corpus;
mod handshake;
mod hardening;
mod helpers;
mod sessions;
mod store_suite;
mod tokens;
mod upstream;
mod users;

//! embedgate: a secure-embed gateway.
//!
//! A host app signs a short JWT with an embed client's secret; the gateway
//! verifies it ([`token`]), finds or provisions the user ([`identity`]),
//! decides access from an in-memory policy ([`policy`]), issues a session
//! ([`session`]) and serves the workbook ([`content`]). [`store`] persists
//! everything; [`embed`] and [`admin`] hold the flows; [`http`] wires them
//! to actix-web; [`app`] builds and binds the server.

pub mod admin;
pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod content;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod embed;
pub mod error;
/// The fuzz targets' bodies (`fuzz/`), shared with the corpus regression test.
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod http;
pub mod identity;
pub mod jti;
pub mod jwks;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod ratelimit;
pub mod session;
pub mod sign;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod token;

/// How the maps a request reads hash their keys (the policy's, the verified
/// session cookies, the rendered pages): foldhash, seeded at random for each
/// map as actix-http's own maps are, rather than the standard library's
/// SipHash, which was 3 % of a session request's instructions. Keys that a
/// request supplies (workbook ids, cookies, query strings) cannot be chosen
/// to collide without the seed.
pub(crate) type HashState = foldhash::quality::RandomState;

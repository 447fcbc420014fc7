//! The admin API, the operations endpoints and the command line (SPEC §1,
//! §8, §9, §10).

mod api;
mod cli;
mod ops;
mod support;

//! The admin API, the operations endpoints and the command line (SPEC §1,
//! §8, §9, §10).

mod api;
mod audit;
mod cli;
mod explain;
mod inspect;
mod ops;
mod support;

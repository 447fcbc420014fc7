//! Sessions, access, content and the tenant directory (SPEC §2, the rate
//! limit of §3, §5, §6).

mod access;
mod content;
mod lifecycle;
mod support;

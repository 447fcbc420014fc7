//! Upstream workbooks (SPEC §6): the proxy, the identity assertion, company
//! separation and the directory, against a recording fake upstream.

mod proxy;
mod recorder;

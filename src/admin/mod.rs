//! The admin API's behaviour (SPEC §8), free of HTTP: validate the input,
//! write through the store, refresh the in-memory policy, and record the
//! change in the audit log. Every function returns the resource as JSON or
//! a [`Problem`] with the contract's code (`validation_failed`,
//! `not_found`, `conflict`).

pub mod account_types;
pub mod audit;
pub mod clients;
pub mod explain;
pub mod grants;
pub mod inspect;
pub mod settings;
pub mod teams;
pub mod users;
pub mod views;
pub mod workbooks;
pub mod workspaces;

use crate::audit::{ADMIN_CHANGE, Entry, Origin};
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::store::StoreError;

pub type AdminResult<T> = Result<T, Problem>;

/// Who is making an admin change, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// The admin token's name.
    pub admin: String,
    pub origin: Origin,
}

/// Maps a store error; `conflict` says what conflicted.
pub fn store_error(conflict: &str) -> impl Fn(StoreError) -> Problem + '_ {
    move |e| match e {
        StoreError::Conflict(_) => Problem::conflict(conflict),
        e => Problem::from_store(&e, "making an admin change"),
    }
}

/// Maps a store error that cannot be a conflict.
pub fn db(e: StoreError) -> Problem {
    store_error("The change conflicts with existing data.")(e)
}

/// Records an `admin_change`.
pub fn record_change(gw: &Gateway, actor: &Actor, note: String) {
    gw.recorder.record(
        &actor.origin,
        Entry {
            event: ADMIN_CHANGE,
            allowed: true,
            note: Some(format!("{} (by admin token {:?})", note, actor.admin)),
            ..Entry::default()
        },
    );
}

/// Checks a free-text name: 1 to `max` characters, no control characters.
pub fn check_text(field: &str, value: &str, max: usize, allow_empty: bool) -> AdminResult<()> {
    if (!allow_empty && value.trim().is_empty()) || value.chars().count() > max {
        return Err(Problem::validation(format!(
            "{field} must be {} to {max} characters long",
            if allow_empty { 0 } else { 1 }
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Problem::validation(format!(
            "{field} may not contain control characters"
        )));
    }
    Ok(())
}

/// Deserialises a field that may be absent, `null`, or a value: absent is
/// `None`, `null` is `Some(None)`.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

//! The policy: settings, clients, users, teams, workbooks and grants, held
//! in memory so that a session request never touches the database.
//!
//! Writes go to the database first; then the changed entity is read back
//! and put into memory ([`Policy::refresh`]). Instances in a cluster receive
//! the same [`Change`] and refresh the same way, so one code path keeps every
//! instance correct. Writers hold [`Policy::write_lock`] from the database
//! write to the refresh, so two refreshes of one entity never cross.

mod decide;
mod settings;
mod sharded;
mod state;

use std::fmt;
use std::str::FromStr;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use decide::{Decision, MAX_WORKSPACE_DEPTH, NoTrace, Reasons, Subject, Trace, source_for};
pub use settings::{CompanySeparation, CompanySeparationPatch, Settings, SettingsPatch};
pub use state::{Client, PolicyState};

use crate::domain::{GrantId, TeamId, UserId, WorkspaceId};
use crate::store::{GrantFilter, GrantTarget, Store, StoreError, StoreResult, UserRecord};

/// Something that changed in the database and must be reloaded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    Settings,
    Client(String),
    AccountType(String),
    Team(TeamId),
    User(UserId),
    Workspace(WorkspaceId),
    Workbook(String),
    Grant(GrantId),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Settings => write!(f, "settings"),
            Change::Client(id) => write!(f, "client:{id}"),
            Change::AccountType(name) => write!(f, "account_type:{name}"),
            Change::Team(id) => write!(f, "team:{id}"),
            Change::User(id) => write!(f, "user:{id}"),
            Change::Workspace(id) => write!(f, "workspace:{id}"),
            Change::Workbook(id) => write!(f, "workbook:{id}"),
            Change::Grant(id) => write!(f, "grant:{id}"),
        }
    }
}

impl FromStr for Change {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, id) = s.split_once(':').unwrap_or((s, ""));
        let num = || id.parse::<i64>().map_err(|_| format!("bad change {s:?}"));
        Ok(match kind {
            "settings" => Change::Settings,
            "client" => Change::Client(id.to_owned()),
            "account_type" => Change::AccountType(id.to_owned()),
            "team" => Change::Team(num()?),
            "user" => Change::User(num()?),
            "workspace" => Change::Workspace(num()?),
            "workbook" => Change::Workbook(id.to_owned()),
            "grant" => Change::Grant(num()?),
            _ => return Err(format!("unknown change {s:?}")),
        })
    }
}

pub struct Policy {
    state: RwLock<PolicyState>,
    writer: tokio::sync::Mutex<()>,
}

/// Proof that the caller holds the policy's write lock.
pub struct WriteGuard<'a>(#[allow(dead_code)] tokio::sync::MutexGuard<'a, ()>);

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Policy")
    }
}

pub fn parse_settings(stored: Option<String>) -> StoreResult<Settings> {
    match stored {
        None => Ok(Settings::default()),
        Some(text) => {
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("settings: {e}")))
        }
    }
}

/// Reads the whole policy from the database.
async fn load_state(store: &Store) -> StoreResult<PolicyState> {
    let mut state = PolicyState::default();
    state.settings = parse_settings(store.load_settings().await?)?;
    for c in store.list_clients().await? {
        state.put_client(&c.client_id.clone(), Some(c));
    }
    for a in store.list_account_types().await? {
        state.put_account_type(&a.name.clone(), Some(a));
    }
    for t in store.list_teams().await? {
        state.put_team(t.id, Some(t));
    }
    for u in store.all_users().await? {
        state.put_user(u.id, Some(u));
    }
    for ws in store.list_workspaces().await? {
        state.put_workspace(ws.id, Some(ws), Vec::new());
    }
    for wb in store.list_workbooks().await? {
        state.put_workbook(&wb.id.clone(), Some(wb), Vec::new());
    }
    for g in store.list_grants(&GrantFilter::default()).await? {
        state.put_grant(g.id, Some(g));
    }
    Ok(state)
}

impl Policy {
    pub async fn load(store: &Store) -> StoreResult<Policy> {
        Ok(Policy {
            state: RwLock::new(load_state(store).await?),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    /// The current policy, for a decision. Never hold it across an `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, PolicyState> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, PolicyState> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Serialises "write to the database, then refresh memory".
    pub async fn write_lock(&self) -> WriteGuard<'_> {
        WriteGuard(self.writer.lock().await)
    }

    /// Puts a user just written by the holder of the write lock, as the
    /// database now has it (see [`UserFields::into_new_record`]), sparing
    /// [`Policy::refresh`]'s read.
    ///
    /// [`UserFields::into_new_record`]: crate::store::UserFields::into_new_record
    pub fn put_user(&self, _guard: &WriteGuard<'_>, record: UserRecord) {
        self.write().put_user(record.id, Some(record));
    }

    /// Reloads what `change` names from the database into memory.
    pub async fn refresh(
        &self,
        store: &Store,
        _guard: &WriteGuard<'_>,
        change: &Change,
    ) -> StoreResult<()> {
        match change {
            Change::Settings => {
                let settings = parse_settings(store.load_settings().await?)?;
                self.write().settings = settings;
            }
            Change::Client(id) => {
                let record = store.get_client(id).await?;
                self.write().put_client(id, record);
            }
            Change::AccountType(name) => {
                let record = store.get_account_type(name).await?;
                self.write().put_account_type(name, record);
            }
            Change::Team(id) => {
                let record = store.get_team(*id).await?;
                self.write().put_team(*id, record);
            }
            Change::User(id) => {
                let record = store.get_user(*id).await?;
                self.write().put_user(*id, record);
            }
            Change::Workspace(id) => {
                let record = store.get_workspace(*id).await?;
                let grants = grants_on(store, &GrantTarget::Workspace(*id)).await?;
                self.write().put_workspace(*id, record, grants);
            }
            Change::Workbook(id) => {
                let record = store.get_workbook(id).await?;
                let grants = grants_on(store, &GrantTarget::Workbook(id.clone())).await?;
                self.write().put_workbook(id, record, grants);
            }
            Change::Grant(id) => {
                let record = store.get_grant(*id).await?;
                self.write().put_grant(*id, record);
            }
        }
        Ok(())
    }

    /// Replaces the whole policy with what the database says now (after a
    /// lost change feed, a missed notification can never leave stale state).
    pub async fn reload(&self, store: &Store) -> StoreResult<()> {
        let _guard = self.write_lock().await;
        let fresh = load_state(store).await?;
        *self.write() = fresh;
        Ok(())
    }
}

async fn grants_on(
    store: &Store,
    target: &GrantTarget,
) -> StoreResult<Vec<crate::store::GrantRecord>> {
    let filter = match target {
        GrantTarget::Workbook(id) => GrantFilter {
            workbook: Some(id.clone()),
            ..GrantFilter::default()
        },
        GrantTarget::Workspace(id) => GrantFilter {
            workspace: Some(*id),
            ..GrantFilter::default()
        },
    };
    store.list_grants(&filter).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_through_text() {
        for c in [
            Change::Settings,
            Change::Client("acme".into()),
            Change::AccountType("Viewer".into()),
            Change::Team(3),
            Change::User(42),
            Change::Workspace(7),
            Change::Workbook("sales".into()),
            Change::Grant(9),
        ] {
            assert_eq!(c.to_string().parse::<Change>().unwrap(), c);
        }
        assert!("user:x".parse::<Change>().is_err());
        assert!("nonsense".parse::<Change>().is_err());
    }
}

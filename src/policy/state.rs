//! [`PolicyState`]: everything an access decision reads, held in memory.
//!
//! Each `put_*` replaces one entity with what the database now says (or
//! removes it when the database no longer has it) and keeps the indexes
//! (email → user, team name → team, team → members, target → grants)
//! consistent with it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use actix_web::http::header::HeaderValue;

use super::settings::Settings;
use super::sharded::Sharded;
use crate::domain::{GrantId, TeamId, UserId, WorkspaceId};
use crate::store::{
    AccountTypeRecord, ClientRecord, ClientStatus, GrantRecord, GrantTarget, TeamRecord,
    UserRecord, WorkbookRecord, WorkspaceRecord,
};
use crate::token::{ClientKeys, KeyLookup, VerificationKey};

type Map<K, V> = HashMap<K, V, crate::HashState>;

/// An embed client with its verification keys ready.
#[derive(Debug)]
pub struct Client {
    pub record: ClientRecord,
    pub keys: Arc<ClientKeys>,
    /// The `Content-Security-Policy` header of content of its sessions,
    /// built once (a session request clones it: a reference count).
    pub csp: HeaderValue,
}

impl Client {
    pub fn new(record: ClientRecord) -> Client {
        let alg = record.algorithm;
        let mut keys = Vec::new();
        let mut add = |material: &[u8], valid_until: Option<i64>| match alg.decoding_key(material) {
            Ok(key) => keys.push(VerificationKey { key, valid_until }),
            Err(e) => tracing::warn!(client_id = %record.client_id, "unusable client key: {e}"),
        };
        if alg.is_hmac() {
            if let Some(secret) = &record.secret {
                add(secret.as_bytes(), None);
            }
            if let (Some(prev), Some(until)) =
                (&record.previous_secret, record.previous_valid_until)
            {
                add(prev.as_bytes(), Some(until.div_euclid(1000)));
            }
        } else if let Some(pem) = &record.public_key_pem {
            add(pem.as_bytes(), None);
        }
        const NO_FRAMING: &str = "frame-ancestors 'none'";
        let csp = if record.allowed_origins.is_empty() {
            HeaderValue::from_static(NO_FRAMING)
        } else {
            // Origins are checked when they are saved; one that is still
            // not a header value must not lift the policy: fail closed.
            let allowed = format!("frame-ancestors {}", record.allowed_origins.join(" "));
            HeaderValue::from_str(&allowed).unwrap_or_else(|_| {
                tracing::warn!(client_id = %record.client_id, "allowed origins unusable in a header; framing denied");
                HeaderValue::from_static(NO_FRAMING)
            })
        };
        Client {
            keys: Arc::new(ClientKeys {
                client_id: crate::domain::ClientId::from_trusted(record.client_id.clone()),
                algorithm: alg,
                keys,
            }),
            csp,
            record,
        }
    }

    pub fn is_active(&self) -> bool {
        self.record.status == ClientStatus::Active
    }

    pub fn id(&self) -> &str {
        &self.record.client_id
    }
}

#[derive(Debug, Default)]
pub struct PolicyState {
    pub settings: Settings,
    clients: Map<String, Arc<Client>>,
    account_types: Map<String, Arc<AccountTypeRecord>>,
    teams: Map<TeamId, Arc<TeamRecord>>,
    team_by_name: Map<String, TeamId>,
    /// Sharded: they grow as handshakes provision users, under the write
    /// lock every reader waits for.
    users: Sharded<UserId, Arc<UserRecord>>,
    user_by_email: Sharded<String, UserId>,
    members: Map<TeamId, BTreeSet<UserId>>,
    workspaces: Map<WorkspaceId, Arc<WorkspaceRecord>>,
    workbooks: Map<String, Arc<WorkbookRecord>>,
    grants: Map<GrantId, Arc<GrantRecord>>,
    /// Grants by what they are on, in two maps so that a decision looks a
    /// workbook up by `&str` without building a [`GrantTarget`].
    grants_on_workbook: Map<String, Vec<Arc<GrantRecord>>>,
    grants_on_workspace: Map<WorkspaceId, Vec<Arc<GrantRecord>>>,
    grants_by_team: Map<TeamId, BTreeSet<GrantId>>,
}

impl PolicyState {
    // ---- reads -------------------------------------------------------------

    pub fn client(&self, id: &str) -> Option<&Arc<Client>> {
        self.clients.get(id)
    }

    pub fn active_client(&self, id: &str) -> Option<&Arc<Client>> {
        self.clients.get(id).filter(|c| c.is_active())
    }

    pub fn account_type(&self, name: &str) -> Option<&Arc<AccountTypeRecord>> {
        self.account_types.get(name)
    }

    pub fn team(&self, id: TeamId) -> Option<&Arc<TeamRecord>> {
        self.teams.get(&id)
    }

    pub fn team_by_name(&self, name: &str) -> Option<&Arc<TeamRecord>> {
        self.team_by_name
            .get(name)
            .and_then(|id| self.teams.get(id))
    }

    pub fn user(&self, id: UserId) -> Option<&Arc<UserRecord>> {
        self.users.get(&id)
    }

    pub fn user_by_email(&self, email: &str) -> Option<&Arc<UserRecord>> {
        self.user_by_email
            .get(email)
            .and_then(|id| self.users.get(id))
    }

    pub fn members(&self, team: TeamId) -> impl Iterator<Item = &Arc<UserRecord>> {
        self.members
            .get(&team)
            .into_iter()
            .flatten()
            .filter_map(|id| self.users.get(id))
    }

    pub fn workspace(&self, id: WorkspaceId) -> Option<&Arc<WorkspaceRecord>> {
        self.workspaces.get(&id)
    }

    pub fn workbook(&self, id: &str) -> Option<&Arc<WorkbookRecord>> {
        self.workbooks.get(id)
    }

    pub fn workbooks(&self) -> impl Iterator<Item = &Arc<WorkbookRecord>> {
        self.workbooks.values()
    }

    pub fn grants_on(&self, target: &GrantTarget) -> &[Arc<GrantRecord>] {
        match target {
            GrantTarget::Workbook(id) => self.grants_on_workbook(id),
            GrantTarget::Workspace(id) => self.grants_on_workspace(*id),
        }
    }

    pub fn grants_on_workbook(&self, id: &str) -> &[Arc<GrantRecord>] {
        self.grants_on_workbook
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn grants_on_workspace(&self, id: WorkspaceId) -> &[Arc<GrantRecord>] {
        self.grants_on_workspace
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn team_names(&self, ids: &[TeamId]) -> Vec<String> {
        let mut names: Vec<String> = ids
            .iter()
            .filter_map(|id| self.teams.get(id).map(|t| t.name.clone()))
            .collect();
        names.sort();
        names
    }

    pub fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.users.len(),
            self.teams.len(),
            self.workbooks.len(),
            self.grants.len(),
        )
    }

    // ---- writes ------------------------------------------------------------

    pub fn put_client(&mut self, id: &str, record: Option<ClientRecord>) {
        match record {
            Some(r) => {
                self.clients.insert(id.to_owned(), Arc::new(Client::new(r)));
            }
            None => {
                self.clients.remove(id);
            }
        }
    }

    pub fn put_account_type(&mut self, name: &str, record: Option<AccountTypeRecord>) {
        match record {
            Some(r) => {
                self.account_types.insert(name.to_owned(), Arc::new(r));
            }
            None => {
                self.account_types.remove(name);
            }
        }
    }

    pub fn put_team(&mut self, id: TeamId, record: Option<TeamRecord>) {
        if let Some(old) = self.teams.remove(&id) {
            self.team_by_name.remove(&old.name);
        }
        match record {
            Some(r) => {
                self.team_by_name.insert(r.name.clone(), id);
                self.teams.insert(id, Arc::new(r));
            }
            None => {
                // The database removed its memberships and grants with it.
                for user in self.members.remove(&id).unwrap_or_default() {
                    if let Some(u) = self.users.get_mut(&user) {
                        Arc::make_mut(u).team_ids.retain(|t| *t != id);
                    }
                }
                for grant in self.grants_by_team.remove(&id).unwrap_or_default() {
                    self.put_grant(grant, None);
                }
            }
        }
    }

    pub fn put_user(&mut self, id: UserId, record: Option<UserRecord>) {
        if let Some(old) = self.users.remove(&id) {
            self.user_by_email.remove(old.email.as_str());
            for team in &old.team_ids {
                if let Some(set) = self.members.get_mut(team) {
                    set.remove(&id);
                }
            }
        }
        if let Some(r) = record {
            self.user_by_email.insert(r.email.as_str().to_owned(), id);
            for team in &r.team_ids {
                self.members.entry(*team).or_default().insert(id);
            }
            self.users.insert(id, Arc::new(r));
        }
    }

    pub fn put_workspace(
        &mut self,
        id: WorkspaceId,
        record: Option<WorkspaceRecord>,
        grants: Vec<GrantRecord>,
    ) {
        match record {
            Some(r) => {
                self.workspaces.insert(id, Arc::new(r));
            }
            None => {
                self.workspaces.remove(&id);
            }
        }
        self.replace_grants_on(&GrantTarget::Workspace(id), grants);
    }

    pub fn put_workbook(
        &mut self,
        id: &str,
        record: Option<WorkbookRecord>,
        grants: Vec<GrantRecord>,
    ) {
        match record {
            Some(r) => {
                self.workbooks.insert(id.to_owned(), Arc::new(r));
            }
            None => {
                self.workbooks.remove(id);
            }
        }
        self.replace_grants_on(&GrantTarget::Workbook(id.to_owned()), grants);
    }

    fn replace_grants_on(&mut self, target: &GrantTarget, grants: Vec<GrantRecord>) {
        let old: Vec<GrantId> = self.grants_on(target).iter().map(|g| g.id).collect();
        for id in old {
            self.put_grant(id, None);
        }
        for g in grants {
            self.put_grant(g.id, Some(g));
        }
    }

    pub fn put_grant(&mut self, id: GrantId, record: Option<GrantRecord>) {
        if let Some(old) = self.grants.remove(&id) {
            match &old.target {
                GrantTarget::Workbook(wb) => remove_grant(&mut self.grants_on_workbook, wb, id),
                GrantTarget::Workspace(ws) => remove_grant(&mut self.grants_on_workspace, ws, id),
            }
            if let Some(set) = self.grants_by_team.get_mut(&old.team_id) {
                set.remove(&id);
            }
        }
        if let Some(r) = record {
            let r = Arc::new(r);
            let list = match &r.target {
                GrantTarget::Workbook(wb) => self.grants_on_workbook.entry(wb.clone()).or_default(),
                GrantTarget::Workspace(ws) => self.grants_on_workspace.entry(*ws).or_default(),
            };
            list.push(Arc::clone(&r));
            self.grants_by_team.entry(r.team_id).or_default().insert(id);
            self.grants.insert(id, r);
        }
    }
}

/// Takes grant `id` out of `key`'s list, and the list out of `map` when it
/// is left empty.
fn remove_grant<K, Q>(map: &mut Map<K, Vec<Arc<GrantRecord>>>, key: &Q, id: GrantId)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(list) = map.get_mut(key) {
        list.retain(|g| g.id != id);
        if list.is_empty() {
            map.remove(key);
        }
    }
}

impl KeyLookup for PolicyState {
    fn client_keys(&self, kid: &str) -> Option<Arc<ClientKeys>> {
        self.active_client(kid).map(|c| Arc::clone(&c.keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ClientStatus;
    use crate::token::SigningAlgorithm;

    fn record(origins: &[&str]) -> ClientRecord {
        ClientRecord {
            client_id: "acme".into(),
            name: "Acme".into(),
            algorithm: SigningAlgorithm::HS256,
            secret: Some("acme-secret-0123456789-abcdefghijklmnopqrstuvwxyz".into()),
            previous_secret: None,
            previous_valid_until: None,
            public_key_pem: None,
            jwks_url: None,
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            allowed_teams: Vec::new(),
            allow_internal_users: false,
            status: ClientStatus::Active,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn the_frame_policy_names_the_allowed_origins_and_fails_closed() {
        let csp = |origins: &[&str]| Client::new(record(origins)).csp;
        assert_eq!(
            csp(&["https://a.example", "https://b.example:8443"]),
            "frame-ancestors https://a.example https://b.example:8443"
        );
        assert_eq!(csp(&[]), "frame-ancestors 'none'");
        // Not reachable through the admin API, which checks origins; a
        // value that cannot be a header must not drop the header.
        assert_eq!(
            csp(&["https://a.example\r\nX-Evil: 1"]),
            "frame-ancestors 'none'"
        );
    }
}

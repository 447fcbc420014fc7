//! The handshakes' user writes, in batches: creating a user on its first
//! handshake, and updating an embed user whose claims changed.
//!
//! A write must see the policy as it is when it writes (another handshake
//! or an admin may have changed it since the handshake planned), so it
//! runs under the policy's write lock, plans again, decides again, writes,
//! and puts the result into memory before the lock is released. One user
//! at a time, that was a transaction per new user behind one lock. Here a
//! single writer task takes every write waiting at that moment, plans each
//! of them against one view of the policy and creates all the new users in
//! one statement ([`Store::insert_users`]) and one commit: under load the
//! batches grow by themselves, as the `jti` ledger's do.
//!
//! Within a batch a user is written once. A second handshake for the same
//! email (two first handshakes racing, or two claim changes) waits for the
//! next batch, where it finds the user created by the first and plans
//! again: it signs that user in, or updates it when its claims differ.
//! Updates are rare (claims changed) and are written one at a time.
//!
//! [`Store::insert_users`]: crate::store::Store::insert_users

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::{OwnedMutexGuard, mpsc, oneshot};

use crate::clock::SharedClock;
use crate::domain::{Email, UserId};
use crate::error::Problem;
use crate::identity::{self, Plan};
use crate::policy::{Change, NoTrace, Policy, PolicyState, WriteGuard};
use crate::store::feed::ChangeFeed;
use crate::store::{MAX_USER_BATCH, Store, StoreError, UserFields, UserRecord};
use crate::tasks::spawn_restarting;
use crate::token::{self, Claims};

use super::denial;

/// How often a write may find its new user's email taken by another
/// instance before it fails (the user it then loads may be deleted again
/// before the next batch).
const MAX_TRIES: u8 = 2;

/// Plans the user of a verified token against `state`; writes nothing.
pub fn plan_user(state: &PolicyState, client_id: &str, claims: &Claims) -> Result<Plan, Problem> {
    let client = state
        .active_client(client_id)
        .ok_or_else(|| Problem::from(token::TokenError::unknown_client(client_id)))?;
    identity::plan(state, client, claims)
}

/// Decides access for the user as `plan` leaves it.
pub fn check_access(
    state: &PolicyState,
    plan: &Plan,
    workbook: &str,
    tag: Option<&str>,
) -> Result<(), Problem> {
    match state
        .decide(plan.subject(), workbook, tag, &mut NoTrace)
        .denied
    {
        Some(code) => Err(denial(code)),
        None => Ok(()),
    }
}

/// A handshake whose plan writes: everything needed to plan it again.
#[derive(Debug)]
pub struct Write {
    pub client_id: String,
    pub claims: Claims,
    pub workbook: String,
    pub tag: Option<String>,
    /// The handshake's time, Unix seconds.
    pub now: i64,
}

impl Write {
    fn plan(&self, state: &PolicyState) -> Result<Plan, Problem> {
        let plan = plan_user(state, &self.client_id, &self.claims)?;
        check_access(state, &plan, &self.workbook, self.tag.as_deref())?;
        Ok(plan)
    }
}

/// What the write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Nothing (any more): the user is as the claims want it, planned
    /// again after another write. `note` says why claims were ignored.
    Nothing {
        user_id: UserId,
        note: Option<String>,
    },
    /// The user was created; `note` is for the audit log.
    Created { user_id: UserId, note: String },
    /// The user was updated; `note` lists what changed.
    Updated { user_id: UserId, note: String },
}

type Reply = oneshot::Sender<Result<Written, Problem>>;

struct Job {
    write: Write,
    reply: Reply,
    tries: u8,
}

impl Job {
    fn answer(self, result: Result<Written, Problem>) {
        // The handshake may have gone (its client hung up): nothing to tell.
        let _ = self.reply.send(result);
    }
}

/// Hands the handshakes' writes to the writer task.
#[derive(Debug, Clone)]
pub struct Provisioner {
    tx: mpsc::UnboundedSender<Job>,
}

/// What the writer task works with.
struct Writer {
    store: Store,
    policy: Arc<Policy>,
    feed: ChangeFeed,
    clock: SharedClock,
}

fn store_problem(e: &StoreError) -> Problem {
    Problem::from_store(e, "writing a handshake's user")
}

impl Provisioner {
    /// Starts the writer task on the current runtime (again after a panic:
    /// [`spawn_restarting`]).
    pub fn start(
        store: Store,
        policy: Arc<Policy>,
        feed: ChangeFeed,
        clock: SharedClock,
    ) -> Provisioner {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            store,
            policy,
            feed,
            clock,
        };
        let writer = Arc::new(writer);
        spawn_restarting("user writer", rx, move |rx| Arc::clone(&writer).run(rx));
        Provisioner { tx }
    }

    /// Plans `write` again under the policy's write lock and writes what
    /// it then needs; the user is in the policy when this returns.
    pub async fn write(&self, write: Write) -> Result<Written, Problem> {
        let (reply, wait) = oneshot::channel();
        let job = Job {
            write,
            reply,
            tries: 0,
        };
        if self.tx.send(job).is_err() {
            return Err(Problem::unavailable());
        }
        wait.await.unwrap_or_else(|_| Err(Problem::unavailable()))
    }
}

impl Writer {
    async fn run(self: Arc<Self>, mut rx: OwnedMutexGuard<mpsc::UnboundedReceiver<Job>>) {
        let mut queue: VecDeque<Job> = VecDeque::new();
        loop {
            if queue.is_empty() {
                match rx.recv().await {
                    Some(job) => queue.push_back(job),
                    None => return,
                }
            }
            let guard = self.policy.write_lock().await;
            // Whatever arrived while the lock was taken joins this batch.
            while let Ok(job) = rx.try_recv() {
                queue.push_back(job);
            }
            let mut batch = Vec::with_capacity(queue.len().min(MAX_USER_BATCH));
            while batch.len() < MAX_USER_BATCH
                && let Some(job) = queue.pop_front()
            {
                // A handshake that has gone needs no user written for it.
                if !job.reply.is_closed() {
                    batch.push(job);
                }
            }
            let again = self.write_batch(&guard, batch).await;
            drop(guard);
            for job in again.into_iter().rev() {
                queue.push_front(job);
            }
        }
    }

    /// Plans and writes `batch`; returns the jobs to plan again in the
    /// next batch.
    async fn write_batch(&self, guard: &WriteGuard<'_>, batch: Vec<Job>) -> Vec<Job> {
        let latest = batch.iter().map(|j| j.write.now * 1000).max();
        let now_ms = self.clock.now().timestamp_millis().max(latest.unwrap_or(0));
        let mut creates: Vec<(Job, UserFields)> = Vec::new();
        let mut updates: Vec<(Job, Arc<UserRecord>, UserFields, Vec<String>)> = Vec::new();
        let mut again = Vec::new();
        {
            let state = self.policy.read();
            // The users this batch writes, once each.
            let mut written: HashSet<Email> = HashSet::new();
            for job in batch {
                match job.write.plan(&state) {
                    Err(problem) => job.answer(Err(problem)),
                    Ok(Plan::Existing { user, note }) => job.answer(Ok(Written::Nothing {
                        user_id: user.id,
                        note,
                    })),
                    Ok(Plan::Create { fields }) if written.insert(fields.email.clone()) => {
                        creates.push((job, fields));
                    }
                    Ok(Plan::Update {
                        user,
                        fields,
                        changes,
                    }) if written.insert(user.email.clone()) => {
                        updates.push((job, user, fields, changes));
                    }
                    // The batch writes this user already: plan it again after.
                    Ok(_) => again.push(job),
                }
            }
        }
        self.create(guard, creates, now_ms, &mut again).await;
        let mut changes = Vec::new();
        for (job, user, fields, what) in updates {
            let result = self.update(guard, &user, &fields, now_ms).await;
            if result.is_ok() {
                changes.push(Change::User(user.id));
            }
            job.answer(result.map(|()| Written::Updated {
                user_id: user.id,
                note: what.join("; "),
            }));
        }
        self.feed.announce(&self.store, &changes).await;
        again
    }

    /// Creates the users of `creates` in one statement, which also
    /// announces them to the other instances, puts them into the policy
    /// and answers their handshakes.
    async fn create(
        &self,
        guard: &WriteGuard<'_>,
        creates: Vec<(Job, UserFields)>,
        now_ms: i64,
        again: &mut Vec<Job>,
    ) {
        if creates.is_empty() {
            return;
        }
        let fields: Vec<&UserFields> = creates.iter().map(|(_, f)| f).collect();
        let announce = self.feed.instance_if_shared();
        let ids: Vec<Result<Option<UserId>, Problem>> =
            match self.store.insert_users(&fields, now_ms, announce).await {
                Ok(ids) => ids.into_iter().map(Ok).collect(),
                // One user the database refuses (say, a team another
                // instance deleted meanwhile) must not fail the others.
                Err(e) if fields.len() > 1 && !e.is_unavailable() => {
                    let mut ids = Vec::with_capacity(fields.len());
                    for one in &fields {
                        let id = self.store.insert_users(&[one], now_ms, announce).await;
                        ids.push(
                            id.map(|mut id| id.pop().flatten())
                                .map_err(|e| store_problem(&e)),
                        );
                    }
                    ids
                }
                Err(e) => {
                    let problem = store_problem(&e);
                    fields.iter().map(|_| Err(problem.clone())).collect()
                }
            };
        for ((job, fields), id) in creates.into_iter().zip(ids) {
            match id {
                Ok(Some(user_id)) => {
                    let teams = self.policy.read().team_names(&fields.team_ids);
                    let note = format!(
                        "embed user created; teams: {}; account_type: {}",
                        teams.join(", "),
                        fields.account_type
                    );
                    self.policy
                        .put_user(guard, fields.into_new_record(user_id, now_ms));
                    job.answer(Ok(Written::Created { user_id, note }));
                }
                // Created meanwhile by another instance: load it, plan again.
                Ok(None) => match self.store.get_user_by_email(&fields.email).await {
                    Ok(Some(user)) => {
                        self.policy.put_user(guard, user);
                        retry(job, again);
                    }
                    Ok(None) => job.answer(Err(Problem::internal())),
                    Err(e) => job.answer(Err(store_problem(&e))),
                },
                Err(problem) => job.answer(Err(problem)),
            }
        }
    }

    async fn update(
        &self,
        guard: &WriteGuard<'_>,
        user: &UserRecord,
        fields: &UserFields,
        now_ms: i64,
    ) -> Result<(), Problem> {
        let updated = self
            .store
            .update_user(user.id, fields, now_ms)
            .await
            .map_err(|e| store_problem(&e))?;
        if !updated {
            // Deleted by another instance since it was planned.
            return Err(Problem::internal());
        }
        self.policy
            .refresh(&self.store, guard, &Change::User(user.id))
            .await
            .map_err(|e| store_problem(&e))
    }
}

/// Puts `job`, whose email another instance took, off to the next batch,
/// or fails it when that has happened too often.
fn retry(mut job: Job, again: &mut Vec<Job>) {
    job.tries += 1;
    if job.tries < MAX_TRIES {
        again.push(job);
    } else {
        job.answer(Err(Problem::internal()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn job() -> (Job, oneshot::Receiver<Result<Written, Problem>>) {
        let (reply, wait) = oneshot::channel();
        let claims = Claims {
            email: Email::parse("ana@example.com").unwrap(),
            jti: "jti-1".into(),
            iat: 0,
            exp: 60,
            nbf: None,
            first_name: None,
            last_name: None,
            teams: None,
            account_type: None,
            user_attributes: None,
            session_length: None,
        };
        let write = Write {
            client_id: "acme-host".into(),
            claims,
            workbook: "sales".into(),
            tag: None,
            now: 0,
        };
        let job = Job {
            write,
            reply,
            tries: 0,
        };
        (job, wait)
    }

    #[test]
    fn a_user_whose_email_is_taken_again_and_again_fails_with_an_internal_error() {
        let (job, mut wait) = job();
        let mut again = Vec::new();
        retry(job, &mut again);
        assert_eq!(again.len(), 1, "planned again after the first time");
        assert!(wait.try_recv().is_err(), "not answered yet");

        let job = again.pop().unwrap();
        retry(job, &mut again);
        assert!(again.is_empty(), "not planned a third time");
        let answer = wait.try_recv().expect("answered");
        assert_eq!(answer.unwrap_err().code, ErrorCode::Internal);
    }
}

//! The audit recorder: handshake outcomes, user changes, settings and admin
//! changes go to the `audit` table, written in batches by one background
//! task so that recording never waits for the database. `last_seen_at` of
//! users is batched the same way.
//!
//! Entries never carry a token, a secret or a session cookie: callers pass
//! codes, ids and notes only.

use std::collections::BTreeSet;

use tokio::sync::{mpsc, oneshot};

use crate::clock::SharedClock;
use crate::domain::UserId;
use crate::store::{AuditRecord, Store};

pub const HANDSHAKE: &str = "handshake";
pub const USER_CREATED: &str = "user_created";
pub const USER_UPDATED: &str = "user_updated";
pub const SETTINGS_CHANGED: &str = "settings_changed";
pub const ADMIN_CHANGE: &str = "admin_change";

/// The request an entry is about.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub request_id: Option<String>,
    pub remote_addr: Option<String>,
}

/// One audit entry before it gets its time.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub event: &'static str,
    pub allowed: bool,
    pub code: Option<String>,
    pub client_id: Option<String>,
    pub email: Option<String>,
    pub workbook: Option<String>,
    pub note: Option<String>,
}

enum Command {
    Record(Box<AuditRecord>),
    Seen(UserId),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Command>,
    clock: SharedClock,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

const BATCH: usize = 512;
/// How long the writer waits for more entries before it writes a batch
/// (readers of the log call [`Recorder::flush`] first, so they never wait).
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

impl Recorder {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Store, clock: SharedClock) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(store, clock.clone(), rx));
        Recorder { tx, clock }
    }

    pub fn record(&self, origin: &Origin, entry: Entry) {
        let record = AuditRecord {
            id: 0,
            at: self.clock.now().timestamp_millis(),
            event: entry.event.to_owned(),
            request_id: origin.request_id.clone(),
            client_id: entry.client_id,
            email: entry.email,
            workbook: entry.workbook,
            outcome: if entry.allowed { "allowed" } else { "denied" }.to_owned(),
            code: entry.code,
            remote_addr: origin.remote_addr.clone(),
            note: entry.note,
        };
        if self.tx.send(Command::Record(Box::new(record))).is_err() {
            tracing::error!("the audit writer has stopped; an audit entry was lost");
        }
    }

    /// Notes that a user just signed in (written as `last_seen_at`).
    pub fn seen(&self, user: UserId) {
        let _ = self.tx.send(Command::Seen(user));
    }

    /// Waits until everything recorded so far is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(store: Store, clock: SharedClock, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut records = Vec::with_capacity(BATCH);
    let mut seen = BTreeSet::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        // Linger a moment so that one transaction carries many entries:
        // every commit takes the database's write lock from the jti ledger.
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Record(r) => records.push(*r),
                Command::Seen(u) => {
                    seen.insert(u);
                }
                Command::Flush(done) => flushes.push(done),
            }
            if records.len() < BATCH && flushes.is_empty() {
                next = tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .ok()
                    .flatten();
            }
        }
        let ids: Vec<UserId> = std::mem::take(&mut seen).into_iter().collect();
        if let Err(e) = store
            .record_activity(&records, &ids, clock.now().timestamp_millis())
            .await
        {
            tracing::error!(error = %e, lost = records.len(), "writing audit entries and last_seen_at failed");
        }
        records.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

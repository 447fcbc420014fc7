//! The audit recorder: handshake outcomes, user changes, settings and admin
//! changes go to the `audit` table, written in batches so that recording
//! never waits for the database: by the `jti` ledger's transactions under
//! load, else by a background task after a short linger. `last_seen_at` of
//! users is batched the same way.
//!
//! Entries never carry a token, a secret or a session cookie: callers pass
//! codes, ids and notes only.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedMutexGuard, mpsc, oneshot};

use crate::clock::SharedClock;
use crate::domain::UserId;
use crate::store::{AuditRecord, JtiUse, MAX_AUDIT_BATCH, MAX_SEEN_BATCH, Store, StoreResult};
use crate::tasks::spawn_restarting;

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

/// What was recorded and not yet written.
struct Pending {
    records: Vec<AuditRecord>,
    /// When the oldest of `records` was recorded.
    since: Option<Instant>,
    seen: BTreeSet<UserId>,
    /// When the sign-ins last due were all written.
    seen_written: Instant,
    /// Callers of [`Recorder::flush`] waiting for the write that takes them.
    flushes: Vec<oneshot::Sender<()>>,
}

/// What one write takes from [`Pending`].
struct Batch {
    records: Vec<AuditRecord>,
    seen: Vec<UserId>,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Pending {
    /// When the pending sign-ins must be written, if there are any.
    fn seen_due(&self) -> Option<Instant> {
        (!self.seen.is_empty()).then(|| self.seen_written + SEEN_EVERY)
    }

    /// When the background writer must write (if nothing else does first):
    /// entries once they have waited [`LINGER`], sign-ins once due.
    fn due(&self) -> Option<Instant> {
        let records = self.since.map(|t| t + LINGER);
        match (records, self.seen_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn has_work(&self, now: Instant) -> bool {
        self.urgent() || self.due().is_some_and(|due| due <= now)
    }

    /// Should the writer write now rather than wait?
    fn urgent(&self) -> bool {
        self.records.len() >= BATCH || !self.flushes.is_empty()
    }

    /// Must a change that left `self` as it is, from a state due at
    /// `before`, wake the writer? Only when it must write now, or sooner
    /// than it planned. The writer sleeps until the due time it read last
    /// and reads it again whenever it wakes, so a change that leaves the
    /// time as it was (another entry behind the oldest, a user already
    /// noted) or makes it later (the ledger took the entries) needs no
    /// wake-up. Under load that is nearly every entry: waking the writer
    /// for each cost a wake of its runtime's thread per handshake.
    fn wake_after(&self, before: Option<Instant>) -> bool {
        self.urgent()
            || match (self.due(), before) {
                (Some(now), Some(before)) => now < before,
                (now, before) => now.is_some() && before.is_none(),
            }
    }

    /// What the next write carries: the entries recorded (up to a batch's
    /// worth), the sign-ins when they are due or a flush asks for them, and
    /// the flushes once nothing recorded before them is left behind.
    fn take(&mut self, now: Instant) -> Batch {
        let records: Vec<AuditRecord> = {
            let n = self.records.len().min(MAX_AUDIT_BATCH);
            self.records.drain(..n).collect()
        };
        self.since = (!self.records.is_empty()).then_some(now);
        let mut seen = Vec::new();
        let flushing = !self.flushes.is_empty();
        if flushing || self.seen_due().is_some_and(|due| due <= now) {
            let limit = if flushing {
                MAX_SEEN_BATCH
            } else {
                SEEN_PER_WRITE
            };
            while seen.len() < limit
                && let Some(user) = self.seen.pop_first()
            {
                seen.push(user);
            }
            // The rest stays due, for the next writes.
            if self.seen.is_empty() {
                self.seen_written = now;
            }
        }
        let flushes = if self.records.is_empty() && self.seen.is_empty() {
            std::mem::take(&mut self.flushes)
        } else {
            Vec::new()
        };
        Batch {
            records,
            seen,
            flushes,
        }
    }
}

struct Shared {
    store: Store,
    clock: SharedClock,
    pending: Mutex<Pending>,
    /// Held from taking `pending` until its write is committed: writes
    /// happen in the order they took their entries, so a flush answered
    /// after its write has everything recorded before it in the database.
    writing: tokio::sync::Mutex<()>,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves a consistent `Pending`.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `jtis` together with everything pending, in one transaction.
    async fn commit_with(&self, jtis: &[JtiUse]) -> StoreResult<Vec<bool>> {
        let _writing = self.writing.lock().await;
        let batch = self.pending().take(Instant::now());
        let result = self
            .store
            .write_batch(
                jtis,
                &batch.records,
                &batch.seen,
                self.clock.now().timestamp_millis(),
            )
            .await;
        if let Err(e) = &result
            && !(batch.records.is_empty() && batch.seen.is_empty())
        {
            tracing::error!(error = %e, lost = batch.records.len(), "writing audit entries and last_seen_at failed");
        }
        for done in batch.flushes {
            let _ = done.send(());
        }
        result
    }
}

/// Records audit entries and sign-ins; a background task writes them, and
/// so does every batch of the `jti` ledger ([`Recorder::commit_with`]).
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
    /// Wakes the writer task; it stops when every `Recorder` is gone.
    wake: mpsc::Sender<()>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

const BATCH: usize = 512;
/// How long the writer waits for more entries before it writes a batch
/// (readers of the log call [`Recorder::flush`] first, so they never wait).
const LINGER: Duration = Duration::from_millis(10);
/// How often sign-ins are written (unless a flush asks): `last_seen_at` is
/// exact to about a second, and a user who signs in many times a second is
/// written once, not with every batch of the ledger.
const SEEN_EVERY: Duration = Duration::from_secs(1);
/// The most sign-ins one write takes once they are due (unless a flush
/// asks for all of them): a second's sign-ins are spread over the writes
/// that follow, rather than all in one. Under provisioning load a second
/// brings thousands of users, and writing them in one of the ledger's
/// batches held every handshake waiting for it (PostgreSQL: 60–110 ms,
/// once a second, which was the p99 of the row).
const SEEN_PER_WRITE: usize = 128;

impl Recorder {
    /// Starts the writer task on the current runtime (again after a panic:
    /// [`spawn_restarting`]).
    pub fn start(store: Store, clock: SharedClock) -> Recorder {
        let shared = Arc::new(Shared {
            store,
            clock,
            pending: Mutex::new(Pending {
                records: Vec::new(),
                since: None,
                seen: BTreeSet::new(),
                seen_written: Instant::now(),
                flushes: Vec::new(),
            }),
            writing: tokio::sync::Mutex::new(()),
        });
        let (wake, rx) = mpsc::channel(1);
        let writing = Arc::clone(&shared);
        spawn_restarting("audit writer", rx, move |rx| {
            writer(Arc::clone(&writing), rx)
        });
        Recorder { shared, wake }
    }

    /// Changes `pending`, then wakes the writer if the change brought its
    /// next write forward (see [`Pending::wake_after`]).
    fn add(&self, change: impl FnOnce(&mut Pending)) {
        let wake = {
            let mut p = self.shared.pending();
            let due = p.due();
            change(&mut p);
            p.wake_after(due)
        };
        // A full channel already holds a wake-up the writer has not seen.
        if wake && let Err(mpsc::error::TrySendError::Closed(())) = self.wake.try_send(()) {
            tracing::error!("the audit writer has stopped; audit entries will be lost");
        }
    }

    pub fn record(&self, origin: &Origin, entry: Entry) {
        let record = AuditRecord {
            id: 0,
            at: self.shared.clock.now().timestamp_millis(),
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
        self.add(|p| {
            p.since.get_or_insert_with(Instant::now);
            p.records.push(record);
        });
    }

    /// Notes that a user just signed in (written as `last_seen_at`).
    pub fn seen(&self, user: UserId) {
        self.add(|p| {
            p.seen.insert(user);
        });
    }

    /// Waits until everything recorded so far is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        self.add(|p| p.flushes.push(done));
        let _ = wait.await;
    }

    /// Consumes `jtis` (see [`Store::consume_jtis`]) and writes everything
    /// recorded so far, in one transaction. The `jti` ledger writes its
    /// batches through here, so under load the audit log costs no commit of
    /// its own and never holds the database's writer while a handshake
    /// waits. When it fails, the entries it carried are lost (and logged),
    /// exactly as a failed write of the background task would lose them.
    pub async fn commit_with(&self, jtis: &[JtiUse]) -> StoreResult<Vec<bool>> {
        self.shared.commit_with(jtis).await
    }
}

async fn writer(shared: Arc<Shared>, mut wake: OwnedMutexGuard<mpsc::Receiver<()>>) {
    loop {
        // Under load the ledger's batches take the entries long before they
        // are due; this task writes only what would otherwise wait longer
        // than LINGER (or a flush, or a full batch, at once).
        let (due, urgent) = {
            let p = shared.pending();
            (p.due(), p.urgent())
        };
        if !urgent {
            let woken = match due {
                Some(at) => match tokio::time::timeout_at(at.into(), wake.recv()).await {
                    Ok(woken) => woken,
                    Err(_) => Some(()),
                },
                None => wake.recv().await,
            };
            if woken.is_none() {
                break;
            }
        }
        // Failures are logged by `commit_with`.
        while shared.pending().has_work(Instant::now()) {
            if shared.commit_with(&[]).await.is_err() {
                break;
            }
        }
    }
    // Every recorder is gone: write what is left, sign-ins included.
    let (done, _) = oneshot::channel();
    shared.pending().flushes.push(done);
    while shared.pending().has_work(Instant::now()) {
        if shared.commit_with(&[]).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(records: usize, seen: i64, flushes: usize) -> (Pending, Instant) {
        let now = Instant::now();
        let p = Pending {
            records: (0..records)
                .map(|i| AuditRecord {
                    id: 0,
                    at: i64::try_from(i).unwrap(),
                    event: HANDSHAKE.into(),
                    request_id: None,
                    client_id: None,
                    email: None,
                    workbook: None,
                    outcome: "allowed".into(),
                    code: None,
                    remote_addr: None,
                    note: None,
                })
                .collect(),
            since: (records > 0).then_some(now),
            seen: (1..=seen).collect(),
            seen_written: now,
            flushes: (0..flushes).map(|_| oneshot::channel().0).collect(),
        };
        (p, now)
    }

    #[test]
    fn a_batch_takes_at_most_its_limit_and_answers_flushes_only_when_nothing_is_left() {
        let (mut p, now) = pending(MAX_AUDIT_BATCH + 5, 0, 1);
        assert!(p.urgent());
        let first = p.take(now);
        assert_eq!(first.records.len(), MAX_AUDIT_BATCH);
        assert_eq!(first.records[0].at, 0, "oldest first");
        assert!(
            first.flushes.is_empty(),
            "five entries recorded before the flush are left"
        );
        assert_eq!(p.since, Some(now));
        let second = p.take(now);
        assert_eq!(second.records.len(), 5);
        assert_eq!(second.flushes.len(), 1);
        assert!(!p.has_work(now + LINGER * 100));
    }

    #[test]
    fn sign_ins_wait_until_due_unless_a_flush_asks() {
        let (mut p, now) = pending(1, 3, 0);
        let early = p.take(now);
        assert_eq!((early.records.len(), early.seen.len()), (1, 0));
        assert_eq!(p.due(), Some(now + SEEN_EVERY));
        assert!(!p.has_work(now + SEEN_EVERY / 2));
        assert!(p.has_work(now + SEEN_EVERY));
        let due = p.take(now + SEEN_EVERY);
        assert_eq!(due.seen, [1, 2, 3]);
        assert_eq!(p.due(), None);

        let (mut p, now) = pending(0, 2, 1);
        let flushed = p.take(now);
        assert_eq!((flushed.seen.len(), flushed.flushes.len()), (2, 1));

        let (mut p, now) = pending(0, MAX_SEEN_BATCH as i64 + 1, 1);
        let first = p.take(now);
        assert_eq!((first.seen.len(), first.flushes.len()), (MAX_SEEN_BATCH, 0));
        let second = p.take(now);
        assert_eq!((second.seen.len(), second.flushes.len()), (1, 1));
    }

    /// What `Recorder::add` does to decide, without a recorder.
    fn wakes(p: &mut Pending, change: impl FnOnce(&mut Pending)) -> bool {
        let due = p.due();
        change(p);
        p.wake_after(due)
    }

    fn entry(p: &mut Pending) {
        p.since.get_or_insert_with(Instant::now);
        p.records.push(AuditRecord::default());
    }

    #[test]
    fn the_writer_is_woken_only_when_its_next_write_comes_forward() {
        let (mut p, now) = pending(0, 0, 0);
        assert!(wakes(&mut p, entry), "the first entry starts the linger");
        assert!(!wakes(&mut p, entry), "a second one is due with the first");
        assert!(
            !wakes(&mut p, |p| {
                p.seen.insert(1);
            }),
            "sign-ins are due a second after the last write, after the entries"
        );
        assert!(!wakes(&mut p, |p| {
            p.seen.insert(2);
        }));
        while p.records.len() < BATCH - 1 {
            assert!(!wakes(&mut p, entry));
        }
        assert!(wakes(&mut p, entry), "a full batch is written at once");

        let (mut p, _) = pending(0, 0, 0);
        assert!(wakes(&mut p, |p| {
            p.seen.insert(1);
        }));
        assert!(
            wakes(&mut p, entry),
            "entries are due before the sign-ins noted earlier"
        );

        let (mut p, _) = pending(3, 0, 0);
        assert!(
            wakes(&mut p, |p| p.flushes.push(oneshot::channel().0)),
            "a flush is answered at once"
        );

        // The ledger took the entries (the due time moved later): nothing to
        // wake for, the writer finds out when it wakes at the old time.
        let (mut p, _) = pending(3, 0, 0);
        assert!(!wakes(&mut p, |p| {
            p.take(now);
        }));
    }

    #[test]
    fn due_sign_ins_are_spread_over_the_writes_that_follow() {
        let many = SEEN_PER_WRITE as i64 * 2 + 1;
        let (mut p, now) = pending(0, many, 0);
        let due = now + SEEN_EVERY;
        assert!(p.take(now).seen.is_empty(), "not due yet");
        let first = p.take(due);
        assert_eq!(first.seen.len(), SEEN_PER_WRITE, "one write's worth");
        assert_eq!(first.seen[0], 1, "oldest ids first");
        assert!(p.has_work(due), "the rest is still due");
        assert_eq!(p.take(due).seen.len(), SEEN_PER_WRITE);
        let last = p.take(due);
        assert_eq!(last.seen, [many]);
        assert_eq!(p.due(), None);

        // Noted after the last of them was written: due a second later.
        p.seen.insert(7);
        assert_eq!(p.due(), Some(due + SEEN_EVERY));
    }

    #[test]
    fn entries_are_due_after_the_linger() {
        let (p, now) = pending(3, 0, 0);
        assert!(!p.urgent());
        assert_eq!(p.due(), Some(now + LINGER));
        assert!(!p.has_work(now));
        assert!(p.has_work(now + LINGER));
    }
}

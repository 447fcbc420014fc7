//! The one-time `jti` ledger with group commit.
//!
//! Every handshake consumes its token's `jti` durably before it may
//! succeed. Rather than one transaction per handshake, a single writer task
//! takes every request waiting at that moment and consumes them in one
//! transaction (one fsync): under load the batches grow by themselves,
//! without a timer and without giving up durability. The same transaction
//! carries the audit entries and sign-ins recorded since the last one
//! ([`Recorder::commit_with`]).

use tokio::sync::{OwnedMutexGuard, mpsc, oneshot};

use crate::audit::Recorder;
use crate::store::{JtiUse, MAX_JTI_BATCH, StoreError};
use crate::tasks::spawn_restarting;

type Reply = oneshot::Sender<Result<bool, String>>;

#[derive(Clone, Debug)]
pub struct JtiLedger {
    tx: mpsc::UnboundedSender<(JtiUse, Reply)>,
}

/// Why a `jti` could not be checked.
#[derive(Debug, thiserror::Error)]
#[error("the jti ledger is unavailable: {0}")]
pub struct LedgerError(pub String);

impl JtiLedger {
    /// Starts the writer task on the current runtime (again after a panic:
    /// [`spawn_restarting`]). Its transactions also carry what `recorder`
    /// has pending (see [`Recorder::commit_with`]).
    pub fn start(recorder: Recorder) -> JtiLedger {
        let (tx, rx) = mpsc::unbounded_channel();
        spawn_restarting("jti ledger", rx, move |rx| writer(recorder.clone(), rx));
        JtiLedger { tx }
    }

    /// `Ok(true)` when this call consumed the id, `Ok(false)` when it had
    /// been consumed before (a replay).
    pub async fn consume(&self, jti: JtiUse) -> Result<bool, LedgerError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((jti, reply))
            .map_err(|_| LedgerError("the ledger task has stopped".into()))?;
        wait.await
            .map_err(|_| LedgerError("the ledger dropped the request".into()))?
            .map_err(LedgerError)
    }
}

async fn writer(
    recorder: Recorder,
    mut rx: OwnedMutexGuard<mpsc::UnboundedReceiver<(JtiUse, Reply)>>,
) {
    let mut batch: Vec<(JtiUse, Reply)> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_JTI_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let uses: Vec<JtiUse> = batch.iter().map(|(u, _)| u.clone()).collect();
        match recorder.commit_with(&uses).await {
            Ok(results) => {
                for ((_, reply), fresh) in batch.drain(..).zip(results) {
                    let _ = reply.send(Ok(fresh));
                }
            }
            Err(e) => {
                let message = describe(&e);
                tracing::error!(error = %e, batch = batch.len(), "consuming jtis failed");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}

fn describe(e: &StoreError) -> String {
    if e.is_unavailable() {
        "the database is unreachable".into()
    } else {
        "the database refused the write".into()
    }
}

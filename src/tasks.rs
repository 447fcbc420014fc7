//! Background tasks that outlive their own panics.
//!
//! The writers that handshakes wait for (the `jti` ledger, the audit log,
//! the new users) are one task each, fed by a channel. If one of them
//! panicked, its channel's receiver would go with it, and every later
//! handshake would be refused until the process restarted. A task started
//! with [`spawn_restarting`] keeps its input (the receiver) outside the
//! task, so after a panic the same input goes to a fresh run: the requests
//! that the panicked run held are answered `503` (their reply channels are
//! dropped), the ones still queued are served by the next run.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::task::JoinHandle;

/// Runs `run(input)` on the current runtime, and again with the same input
/// each time a run panics (logged as an error naming `task`). The returned
/// handle finishes when a run returns or the runtime stops.
pub fn spawn_restarting<I, F, Fut>(task: &'static str, input: I, run: F) -> JoinHandle<()>
where
    I: Send + 'static,
    F: Fn(OwnedMutexGuard<I>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let input = Arc::new(Mutex::new(input));
    tokio::spawn(async move {
        loop {
            // Free at once: the run before has ended, and its guard with it.
            let held = Arc::clone(&input).lock_owned().await;
            match tokio::spawn(run(held)).await {
                Err(e) if e.is_panic() => {
                    tracing::error!(task, "a background task panicked; it starts again");
                }
                _ => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::mpsc;

    use super::*;

    #[tokio::test]
    async fn a_run_that_panics_is_followed_by_one_with_the_same_input() {
        let (tx, rx) = mpsc::unbounded_channel::<u32>();
        let (out, mut seen) = mpsc::unbounded_channel::<u32>();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let handle = spawn_restarting("test", rx, move |mut rx| {
            counted.fetch_add(1, Ordering::SeqCst);
            let out = out.clone();
            async move {
                while let Some(n) = rx.recv().await {
                    assert_ne!(n, 0, "zero makes this run panic");
                    out.send(n).unwrap();
                }
            }
        });
        for n in [1, 0, 2, 0, 3] {
            tx.send(n).unwrap();
        }
        let got: Vec<u32> = [seen.recv().await, seen.recv().await, seen.recv().await]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(got, [1, 2, 3], "what was queued behind a panic is served");
        assert_eq!(runs.load(Ordering::SeqCst), 3);

        drop(tx);
        handle.await.unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "a run that returns is not started again"
        );
    }
}

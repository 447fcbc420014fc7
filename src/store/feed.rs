//! The change feed of cluster mode (SPEC §7): how a change made through one
//! instance reaches the in-memory policy of every other.
//!
//! With PostgreSQL, each change is announced with `pg_notify` after its
//! write committed, and every instance `LISTEN`s on one channel. When the
//! listening connection is lost, the instance reconnects, `LISTEN`s again
//! and only then reloads the whole policy, so a notification missed while
//! disconnected can never leave a stale grant in place. With SQLite there
//! is one instance and nothing to announce.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::{Backend, Store, StoreResult};
use crate::policy::{Change, Policy};

pub const CHANNEL: &str = "embedgate_changes";
/// A payload longer than this is announced as a full reload instead
/// (PostgreSQL limits NOTIFY payloads to 8000 bytes).
const MAX_PAYLOAD: usize = 7000;
/// How a payload names a user ([`Change::User`]'s text before its id).
const USER_TAG: &str = "user:";

/// Announces and receives policy changes.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    /// Identifies this instance, so it can skip its own announcements.
    instance: String,
    url: Option<String>,
}

/// One announcement: `{instance} {change} {change}…`, or `{instance} *`
/// for "reload everything".
fn encode(instance: &str, changes: &[Change]) -> String {
    let mut payload = instance.to_owned();
    for c in changes {
        payload.push(' ');
        payload.push_str(&c.to_string());
    }
    if payload.len() > MAX_PAYLOAD {
        return format!("{instance} *");
    }
    payload
}

/// PostgreSQL: the `WITH` part `told` of a statement whose part `created`
/// inserts users (`RETURNING id`): it announces them, with the instance's
/// name bound to `${instance_param}`, as [`encode`] would. The notification
/// leaves with the statement's commit, so a batch of new users costs one
/// transaction (one commit) rather than two. The final `SELECT` must read
/// `told` (an unread `SELECT` part is not run); it has a row only when a
/// user was created. A batch of [`MAX_USER_BATCH`] users stays under
/// [`MAX_PAYLOAD`] (see the test).
///
/// [`MAX_USER_BATCH`]: super::MAX_USER_BATCH
pub(super) fn announce_created_users(instance_param: usize) -> String {
    format!(
        "told AS (SELECT pg_notify('{CHANNEL}', ${instance_param}::text \
         || string_agg(' {USER_TAG}' || created.id, '')) FROM created HAVING count(*) > 0)"
    )
}

/// `None` for a full reload, else the changes; with the sender.
fn decode(payload: &str) -> Option<(&str, Option<Vec<Change>>)> {
    let mut parts = payload.split(' ');
    let instance = parts.next()?;
    let rest: Vec<&str> = parts.collect();
    if rest == ["*"] {
        return Some((instance, None));
    }
    let changes = rest
        .iter()
        .map(|p| p.parse::<Change>())
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some((instance, Some(changes)))
}

impl ChangeFeed {
    pub fn new(store: &Store, database_url: &str) -> anyhow::Result<ChangeFeed> {
        Ok(ChangeFeed {
            instance: crate::crypto::random_token("i", 6)?,
            url: (store.backend() == Backend::Postgres).then(|| database_url.to_owned()),
        })
    }

    pub fn is_shared(&self) -> bool {
        self.url.is_some()
    }

    /// What a statement that creates users needs to announce them itself
    /// (see [`Store::insert_users`]): this instance's name, when it has
    /// other instances to announce to.
    pub fn instance_if_shared(&self) -> Option<&str> {
        self.url.as_ref().map(|_| self.instance.as_str())
    }

    /// Tells the other instances what changed (after the write committed).
    pub async fn publish(&self, store: &Store, changes: &[Change]) -> StoreResult<()> {
        if self.url.is_none() || changes.is_empty() {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(encode(&self.instance, changes))
            .execute(store.db())
            .await?;
        Ok(())
    }

    /// [`ChangeFeed::publish`] after a committed write, which stands
    /// whether or not the announcement goes out: instances that miss it
    /// catch up when their feed reconnects. A failure is logged.
    pub async fn announce(&self, store: &Store, changes: &[Change]) {
        if let Err(e) = self.publish(store, changes).await {
            tracing::warn!(error = %e, "announcing a change to other instances failed");
        }
    }

    /// Starts listening (PostgreSQL only). Call this *before* loading the
    /// policy, so that no change committed in between can be missed.
    pub async fn listen(&self) -> StoreResult<Option<PgListener>> {
        match &self.url {
            Some(url) => Ok(Some(listen(url).await?)),
            None => Ok(None),
        }
    }

    /// Follows the other instances' changes on `listener` (from
    /// [`ChangeFeed::listen`]), reconnecting and reloading when it is lost.
    pub fn follow(&self, listener: Option<PgListener>, store: Store, policy: Arc<Policy>) {
        let (Some(url), Some(mut listener)) = (self.url.clone(), listener) else {
            return;
        };
        let instance = self.instance.clone();
        tokio::spawn(async move {
            loop {
                follow_until_lost(&mut listener, &instance, &store, &policy).await;
                listener = loop {
                    match listen(&url).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::warn!(error = %e, "change feed: cannot listen; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                };
                // Listening again: anything missed meanwhile is in the database.
                while let Err(e) = policy.reload(&store).await {
                    tracing::warn!(error = %e, "change feed: reloading the policy failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                tracing::info!("change feed: reconnected and reloaded the policy");
            }
        });
    }
}

async fn listen(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn follow_until_lost(
    listener: &mut PgListener,
    instance: &str,
    store: &Store,
    policy: &Policy,
) {
    loop {
        let notification = match listener.try_recv().await {
            Ok(Some(n)) => n,
            Ok(None) => {
                tracing::warn!("change feed: the connection was lost");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "change feed: receiving failed");
                return;
            }
        };
        let Some((from, changes)) = decode(notification.payload()) else {
            tracing::warn!(
                payload = notification.payload(),
                "change feed: unreadable announcement"
            );
            continue;
        };
        if from == instance {
            continue;
        }
        let result = match changes {
            None => policy.reload(store).await,
            Some(changes) => {
                let guard = policy.write_lock().await;
                let mut result = Ok(());
                for c in &changes {
                    if let Err(e) = policy.refresh(store, &guard, c).await {
                        result = Err(e);
                        break;
                    }
                }
                result
            }
        };
        if let Err(e) = result {
            // Could not read the change: start over, which reloads everything.
            tracing::warn!(error = %e, "change feed: applying a change failed");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip() {
        let changes = vec![
            Change::User(4),
            Change::Workbook("sales".into()),
            Change::Settings,
        ];
        let payload = encode("i1", &changes);
        assert_eq!(decode(&payload), Some(("i1", Some(changes))));
        assert_eq!(decode("i2 *"), Some(("i2", None)));
        assert_eq!(decode("i3 nonsense:1"), None);
    }

    /// What [`announce_created_users`] builds in SQL is [`encode`]'s text,
    /// and a full batch of users fits in one announcement.
    #[test]
    fn the_new_users_announcement_is_encodes_text_and_fits() {
        assert_eq!(format!("{USER_TAG}42"), Change::User(42).to_string());
        let instance = crate::crypto::random_token("i", 6).unwrap();
        let ids = [i64::MAX; crate::store::MAX_USER_BATCH];
        let sql_text: String = std::iter::once(instance.clone())
            .chain(ids.iter().map(|id| format!(" {USER_TAG}{id}")))
            .collect();
        let changes: Vec<Change> = ids.iter().copied().map(Change::User).collect();
        assert_eq!(sql_text, encode(&instance, &changes), "not a full reload");
        assert!(announce_created_users(3).contains("$3::text"));
    }

    #[test]
    fn oversized_announcements_become_full_reloads() {
        let many: Vec<Change> = (0..2000).map(Change::User).collect();
        assert_eq!(encode("i1", &many), "i1 *");
    }
}

//! The one-time `jti` ledger.
//!
//! A token's id is consumed by inserting it: the first insert wins, in one
//! process or across many sharing PostgreSQL. Rows are kept until the token
//! could no longer pass the `exp` check anyway.
//!
//! **PostgreSQL** (any number of instances): the primary key of `used_jtis`
//! decides.
//!
//! **SQLite** (one instance): a unique index on random ids takes each new id
//! at a random place, so every handshake of a batch changes a page of its
//! own, which SQLite writes whole to its log at the commit and again to the
//! database at the checkpoint: about one 4 KiB page per handshake, most of
//! the cost of a handshake's write. So this instance remembers the ids it
//! consumed, as SHA-256 digests ([`JtiMemory`], at most
//! [`JTI_MEMORY_MAX`] of them by default, 66 MiB), and writes them, in the
//! same all-or-nothing batch and before any handshake succeeds, to
//! `used_jtis_log`, a table without a unique index whose rows land on its
//! last page. An id is new when it is neither remembered nor in
//! `used_jtis`, which the batch's insert reads. When the memory is full, new
//! ids go to `used_jtis` as on PostgreSQL. The memory is read back from the
//! log on the first batch after start, and again after any failed batch, so
//! that it never misses an id the database holds.

use std::collections::HashMap;

use super::{Backend, Store, StoreResult};

/// One `jti` to consume.
#[derive(Debug, Clone)]
pub struct JtiUse {
    pub client_id: String,
    pub jti: String,
    /// Unix seconds after which the row may be purged.
    pub expires_at: i64,
}

/// How many consumed ids SQLite remembers at most, unless
/// [`Store::set_jti_memory_max`] says otherwise (`database.jti_memory_max`):
/// a hash map of 2^21 slots of 32 bytes (a 16-byte digest, 16-aligned, and
/// an expiry) and a control byte each, 66 MiB, all of it taken when the
/// memory is read back (see `JtiMemory::make_room`).
pub const JTI_MEMORY_MAX: usize = 1_000_000;

/// The largest `database.jti_memory_max` the configuration accepts: 2^24
/// slots of 33 bytes, 528 MiB, taken at the first handshake. The room is
/// taken at once, so a larger max would allocate its gigabytes then (or,
/// past what can be allocated, abort the process) rather than refuse to
/// start.
pub const JTI_MEMORY_LIMIT: usize = 10_000_000;

/// SQLite: the ids in `used_jtis_log`, by digest, with their expiry.
#[derive(Debug)]
pub(super) struct JtiMemory {
    /// False until read from the log, and again after a failed batch.
    loaded: bool,
    ids: HashMap<u128, i64, foldhash::fast::RandomState>,
    max: usize,
}

impl JtiMemory {
    pub(super) fn new() -> JtiMemory {
        JtiMemory {
            loaded: false,
            ids: HashMap::default(),
            max: JTI_MEMORY_MAX,
        }
    }

    /// Sizes the map for `max` ids, so that it never grows while it fills.
    /// Growing rehashes every id already in it, under the lock that every
    /// ledger batch takes: measured under handshake load, all handshakes
    /// stalled at each doubling, for 23 ms at 115,000 ids up to 167 ms at
    /// 917,000 (bench/README.md). Done when the memory is read back (the
    /// first batch after start) and when a read-back memory's `max` grows.
    fn make_room(&mut self) {
        self.ids.reserve(self.max.saturating_sub(self.ids.len()));
    }

    /// Sets `max`; a memory already read back takes its room at once, one
    /// not yet read back when it is.
    fn set_max(&mut self, max: usize) {
        self.max = max;
        if self.loaded {
            self.make_room();
        }
    }

    /// Replaces what is remembered with the log's ids (digest, expiry).
    fn read_back(&mut self, logged: impl Iterator<Item = (u128, i64)>) {
        self.ids.clear();
        self.make_room();
        self.ids.extend(logged);
        self.loaded = true;
    }
}

/// 128 bits of SHA-256 over the client id's length, the client id and the
/// `jti`: two different ids practically never share one.
fn digest(client_id: &str, jti: &str) -> u128 {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&(client_id.len() as u64).to_be_bytes());
    ctx.update(client_id.as_bytes());
    ctx.update(jti.as_bytes());
    let full = ctx.finish();
    let mut first = [0_u8; 16];
    first.copy_from_slice(&full.as_ref()[..16]);
    u128::from_be_bytes(first)
}

/// Where a batch's new ids are written.
pub(super) struct JtiPlan<'a> {
    /// Not remembered, with room in memory: `used_jtis_log`.
    pub(super) logged: Vec<&'a JtiUse>,
    /// Not remembered, and no room (or PostgreSQL): `used_jtis`.
    pub(super) indexed: Vec<&'a JtiUse>,
}

impl Store {
    fn jti_memory(&self) -> std::sync::MutexGuard<'_, JtiMemory> {
        super::locked(&self.jti_memory)
    }

    /// How many consumed ids SQLite remembers at most (default
    /// [`JTI_MEMORY_MAX`], `database.jti_memory_max`); beyond them, and
    /// always at 0, new ids go to the unique index.
    pub fn set_jti_memory_max(&self, max: usize) {
        self.jti_memory().set_max(max);
    }

    /// Splits a batch's distinct ids (on the batch writers' connection, so
    /// that the memory is read back from the log first when it must be):
    /// remembered ones are replays and go nowhere.
    pub(super) async fn plan_jtis<'a>(
        &self,
        conn: &mut sqlx::AnyConnection,
        unique: &[&'a JtiUse],
    ) -> Result<JtiPlan<'a>, sqlx::Error> {
        if self.backend != Backend::Sqlite {
            return Ok(JtiPlan {
                logged: Vec::new(),
                indexed: unique.to_vec(),
            });
        }
        if !unique.is_empty() && !self.jti_memory().loaded {
            let rows: Vec<(String, String, i64)> =
                sqlx::query_as("SELECT client_id, jti, expires_at FROM used_jtis_log")
                    .fetch_all(&mut *conn)
                    .await?;
            self.jti_memory()
                .read_back(rows.iter().map(|(c, j, e)| (digest(c, j), *e)));
        }
        let memory = self.jti_memory();
        let mut room = memory.max.saturating_sub(memory.ids.len());
        let mut plan = JtiPlan {
            logged: Vec::new(),
            indexed: Vec::new(),
        };
        for u in unique {
            if memory.ids.contains_key(&digest(&u.client_id, &u.jti)) {
                continue;
            }
            if room > 0 {
                room -= 1;
                plan.logged.push(u);
            } else {
                plan.indexed.push(u);
            }
        }
        Ok(plan)
    }

    /// After a batch: remembers the logged ids it consumed, or, when it
    /// failed, forgets everything until the next batch reads the log again.
    pub(super) fn settle_jtis(&self, logged: &[&JtiUse], consumed: Option<&[(String, String)]>) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let mut memory = self.jti_memory();
        let Some(rows) = consumed else {
            memory.loaded = false;
            memory.ids.clear();
            return;
        };
        if logged.is_empty() {
            return;
        }
        let taken: std::collections::HashSet<(&str, &str)> =
            rows.iter().map(|(c, j)| (c.as_str(), j.as_str())).collect();
        for u in logged {
            if taken.contains(&(u.client_id.as_str(), u.jti.as_str())) {
                memory
                    .ids
                    .insert(digest(&u.client_id, &u.jti), u.expires_at);
            }
        }
    }

    /// Consumes a batch of at most [`super::MAX_JTI_BATCH`] ids with one statement;
    /// for each, `true` when this call consumed it, `false` when it had been
    /// used before. Duplicates within the batch: only the first wins.
    pub async fn consume_jtis(&self, uses: &[JtiUse]) -> StoreResult<Vec<bool>> {
        self.write_batch(uses, &[], &[], 0).await
    }

    /// Was this id consumed already? Reads only (for the token inspector).
    pub async fn jti_used(&self, client_id: &str, jti: &str) -> StoreResult<bool> {
        let remembered = match self.backend {
            Backend::Sqlite => {
                let memory = self.jti_memory();
                memory
                    .loaded
                    .then(|| memory.ids.contains_key(&digest(client_id, jti)))
            }
            Backend::Postgres => Some(false),
        };
        if remembered == Some(true) {
            return Ok(true);
        }
        // Before the memory is read back, the log is searched too (a scan).
        let sql = if remembered.is_none() {
            "SELECT 1 FROM used_jtis WHERE client_id = $1 AND jti = $2 UNION ALL \
             SELECT 1 FROM used_jtis_log WHERE client_id = $1 AND jti = $2 LIMIT 1"
        } else {
            "SELECT 1 FROM used_jtis WHERE client_id = $1 AND jti = $2"
        };
        let found: Option<i64> = sqlx::query_scalar(sql)
            .bind(client_id)
            .bind(jti)
            .fetch_optional(self.db())
            .await?;
        Ok(found.is_some())
    }

    /// Forgets ids whose tokens have expired (plus skew) before `now`.
    pub async fn purge_jtis(&self, now: i64) -> StoreResult<u64> {
        let mut done = sqlx::query("DELETE FROM used_jtis WHERE expires_at < $1")
            .bind(now)
            .execute(self.db())
            .await?
            .rows_affected();
        if self.backend == Backend::Sqlite {
            done += sqlx::query("DELETE FROM used_jtis_log WHERE expires_at < $1")
                .bind(now)
                .execute(self.db())
                .await?
                .rows_affected();
            self.jti_memory().ids.retain(|_, expires| *expires >= now);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Filling the memory up to its `max` never grows (and so never
    /// rehashes) the map, whether the memory was read back or sized later.
    #[test]
    fn the_memory_is_sized_once_for_max_ids() {
        let mut memory = JtiMemory::new();
        memory.set_max(50_000);
        assert_eq!(
            memory.ids.capacity(),
            0,
            "no room taken before the read-back"
        );
        memory.read_back((0..1_000u128).map(|d| (d, 0)));
        let capacity = memory.ids.capacity();
        assert!(capacity >= 50_000, "room for max ids: {capacity}");
        for d in 1_000..50_000u128 {
            memory.ids.insert(d, 0);
        }
        assert_eq!(memory.ids.capacity(), capacity, "never grown while filling");

        // Read back again (after a failed batch): same room, not less.
        memory.read_back((0..10u128).map(|d| (d, 0)));
        assert_eq!(memory.ids.len(), 10);
        assert!(memory.ids.capacity() >= 50_000);

        // A larger max later (`database.jti_memory_max` set after start):
        // room for it at once.
        memory.set_max(200_000);
        let capacity = memory.ids.capacity();
        assert!(capacity >= 200_000);
        for d in 10..200_000u128 {
            memory.ids.insert(d, 0);
        }
        assert_eq!(memory.ids.capacity(), capacity);
    }
}

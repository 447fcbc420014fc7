-- Ids consumed while the one SQLite instance remembers them in memory
-- (src/store/jti.rs): no unique index, so that a batch's rows land on the
-- table's last page rather than on a page of their own each.
CREATE TABLE used_jtis_log (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX used_jtis_log_by_expiry ON used_jtis_log (expires_at);

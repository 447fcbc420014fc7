-- The audit log's email index on SQLite, third form (see src/store/audit.rs).
--
-- 0002's index of every entry, brought up to date once a second, still put
-- each entry at its email's place: under load one commit a second wrote
-- about a page per email and held every handshake behind it (p99 25-40 ms
-- against 5-8 ms without it). Instead the index says in which chunks of
-- 65,536 consecutive entries (id >> 16) an email appears, one row per email
-- and chunk, written by a trigger as entries are inserted: an email's first
-- entry in a chunk adds a row, later ones only read it. A search by email
-- reads the chunks of that email, newest first, and the entries of each.
-- The 16 is `EMAIL_CHUNK_BITS` in src/store/audit.rs.
DROP TRIGGER audit_emails_forget;
DROP TABLE audit_emails;
DROP TABLE audit_emails_mark;
CREATE TABLE audit_email_chunks (
    email TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    PRIMARY KEY (email, chunk)
) WITHOUT ROWID;
CREATE TRIGGER audit_email_chunk AFTER INSERT ON audit WHEN new.email IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO audit_email_chunks (email, chunk) VALUES (new.email, new.id >> 16);
END;
INSERT OR IGNORE INTO audit_email_chunks (email, chunk)
    SELECT email, id >> 16 FROM audit WHERE email IS NOT NULL;

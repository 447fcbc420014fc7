-- The audit log's `email` index, kept apart on SQLite (see src/store/audit.rs).
--
-- An index on audit(email) takes every new entry at its email's place: the
-- entries of one ledger batch land on as many pages as they have emails, and
-- each such page is written to the log again at every commit. Instead the
-- entries are indexed in bulk, at most once a second, in the ledger's own
-- transaction: `audit_emails` holds (email, id) of every entry up to
-- `audit_emails_mark`, and a search by email reads it plus the entries after
-- the mark.
DROP INDEX audit_by_email;
CREATE TABLE audit_emails (
    email TEXT NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (email, id)
) WITHOUT ROWID;
CREATE TABLE audit_emails_mark (id INTEGER NOT NULL);
-- Pruned entries leave the index with their rows.
CREATE TRIGGER audit_emails_forget AFTER DELETE ON audit WHEN old.email IS NOT NULL
BEGIN
    DELETE FROM audit_emails WHERE email = old.email AND id = old.id;
END;
INSERT INTO audit_emails (email, id) SELECT email, id FROM audit WHERE email IS NOT NULL;
INSERT INTO audit_emails_mark (id) SELECT COALESCE(MAX(id), 0) FROM audit;

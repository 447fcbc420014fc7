//! Cluster mode (SPEC §7): several instances on one PostgreSQL database.
//! Skipped, with a message, when `EMBEDGATE_TEST_POSTGRES_URL` is not set.

mod instances;
pub mod pg;

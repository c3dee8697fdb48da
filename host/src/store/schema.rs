//! Schema versions. `PRAGMA user_version` holds how many migrations a database has had; each
//! migration runs in its own transaction, so a crash leaves the database at a version it knows.

use rusqlite::{Connection, Transaction};

use crate::engine::WorkflowRun;

/// What each migration does, in order (index + 1 = the version it brings the database to).
const MIGRATIONS: &[fn(&Transaction) -> rusqlite::Result<()>] = &[
    v1_run_blobs,
    v2_durable_runs,
    v3_callback_deadlines,
    v4_accepted_callbacks,
];

pub const CURRENT: u32 = MIGRATIONS.len() as u32;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("schema version {0} is newer than this airlock knows")]
    TooNew(u32),
}

pub fn migrate(db: &mut Connection) -> Result<(), MigrationError> {
    let found: u32 = db.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > CURRENT {
        return Err(MigrationError::TooNew(found));
    }
    for (done, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = db.transaction()?;
        migration(&tx)?;
        tx.pragma_update(None, "user_version", done as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The first store: one JSON blob per run, written when the run ended. Databases from before
/// versioning have this table at user_version 0, hence IF NOT EXISTS.
fn v1_run_blobs(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS workflow_runs (
             identifier TEXT PRIMARY KEY,
             workflow   TEXT NOT NULL,
             status     TEXT NOT NULL,
             result     TEXT,
             created_at TEXT NOT NULL,
             run        TEXT NOT NULL
         );
         CREATE INDEX IF NOT EXISTS workflow_runs_created ON workflow_runs (created_at);",
    )
}

/// Workflows with versions; runs and node runs as rows updated at every state change; callback
/// token hashes. The blobs of v1 are moved into the new tables.
fn v2_durable_runs(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE workflows (
             identifier     TEXT PRIMARY KEY,
             latest_version INTEGER NOT NULL,
             deleted        INTEGER NOT NULL DEFAULT 0,
             created_at     TEXT NOT NULL,
             updated_at     TEXT NOT NULL
         );
         CREATE TABLE workflow_versions (
             workflow   TEXT NOT NULL,
             version    INTEGER NOT NULL,
             source     TEXT NOT NULL,
             created_at TEXT NOT NULL,
             PRIMARY KEY (workflow, version)
         );
         CREATE TABLE runs (
             identifier       TEXT PRIMARY KEY,
             workflow         TEXT NOT NULL,
             workflow_version INTEGER,
             status           TEXT NOT NULL,
             result           TEXT,
             trigger          TEXT NOT NULL,
             created_at       TEXT NOT NULL,
             updated_at       TEXT NOT NULL,
             finished_at      TEXT
         );
         CREATE INDEX runs_created ON runs (created_at);
         CREATE INDEX runs_status ON runs (status);
         CREATE TABLE node_runs (
             identifier  TEXT PRIMARY KEY,
             run         TEXT NOT NULL REFERENCES runs (identifier),
             seq         INTEGER NOT NULL,
             node        TEXT NOT NULL,
             type        TEXT NOT NULL,
             status      TEXT NOT NULL,
             result      TEXT,
             output      TEXT NOT NULL,
             error       TEXT,
             logs        TEXT NOT NULL,
             attempts    INTEGER NOT NULL,
             created_at  TEXT NOT NULL,
             updated_at  TEXT NOT NULL,
             duration_ms INTEGER NOT NULL,
             UNIQUE (run, seq)
         );
         CREATE TABLE callback_tokens (
             node_run     TEXT PRIMARY KEY REFERENCES node_runs (identifier),
             token_sha256 TEXT NOT NULL
         );",
    )?;
    let blobs: Vec<String> = tx
        .prepare("SELECT run FROM workflow_runs")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for blob in blobs {
        // A blob that does not parse was unreadable before too; it is dropped with the table.
        let Ok(run) = serde_json::from_str::<WorkflowRun>(&blob) else {
            tracing::warn!("run store migration: dropping an unreadable stored run");
            continue;
        };
        super::sqlite::insert_run(tx, &run)?;
        for (seq, node_run) in run.node_runs.iter().enumerate() {
            super::sqlite::insert_node_run(tx, &run.identifier, seq, node_run)?;
        }
    }
    tx.execute_batch("DROP TABLE workflow_runs;")?;
    Ok(())
}

/// When an asynchronous webhook's wait for its callback ends (Unix ms; NULL: never), so a
/// restarted server can set its timers again; tokens found by hash (to tell a foreign token
/// from a wrong one).
fn v3_callback_deadlines(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "ALTER TABLE callback_tokens ADD COLUMN deadline_ms INTEGER;
         CREATE INDEX callback_tokens_sha256 ON callback_tokens (token_sha256);",
    )
}

/// Whether an asynchronous webhook's request was answered (its node run waits for the callback),
/// as opposed to cut off in flight by a crash.
fn v4_accepted_callbacks(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch("ALTER TABLE callback_tokens ADD COLUMN accepted INTEGER NOT NULL DEFAULT 0;")
}

//! [`Store`] on SQLite: one file under the state dir, WAL. Each state change is atomic; the
//! run journal's changes are committed in groups (see `group`), the rest one transaction each.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Params, Row, Transaction, params};
use serde_json::Value;

use super::group::{GroupCommit, GroupError};
use super::schema::{self, MigrationError};
use super::{RunFilter, Store, StoreError, WaitingCallback, WorkflowRecord};
use crate::engine::{
    Committed, ExpectedCallback, NodeRun, RunJournal, RunResult, RunStatus, WorkflowRun,
};
use crate::sync::lock;
use crate::time::now;

/// Every statement this store runs fits: each is parsed once per connection, then reused (the
/// SQL parser was a visible share of `serve`'s CPU per run when each call prepared anew).
const STATEMENT_CACHE: usize = 64;

/// `execute` and `query_row` through the connection's statement cache.
trait CachedStatements {
    fn execute_cached(&self, sql: &str, params: impl Params) -> rusqlite::Result<usize>;
    fn row_cached<T>(
        &self,
        sql: &str,
        params: impl Params,
        read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl CachedStatements for Connection {
    fn execute_cached(&self, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row_cached<T>(
        &self,
        sql: &str,
        params: impl Params,
        read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, read)
    }
}

pub struct SqliteStore {
    path: String,
    /// The writer's connection: the group-commit thread holds it while it commits a group.
    db: Arc<Mutex<Connection>>,
    /// Reads have their own connection: in WAL mode a read sees the last commit without waiting
    /// for the writer (a run's start reads its workflow's version; the API reads runs), so no
    /// request blocks a runtime thread for as long as a group takes to commit.
    reader: Mutex<Connection>,
    /// The latest version of each live workflow looked up so far. Only this store writes
    /// workflows (`airlock serve` claims its state dir); see `write_workflows`.
    /// A run's start looks its workflow up; from the database that was ~3% of `serve`'s CPU.
    latest: Mutex<HashMap<String, u32>>,
    journal: GroupCommit,
}

/// A read-only connection to the (migrated) database at `path`. Its page cache stays small:
/// every commit by the writer makes a reader drop what it had cached.
fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    reader.execute_batch("PRAGMA busy_timeout = 5000;")?;
    reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(reader)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let display = path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: display.clone(),
            source,
        };
        let mut db = Connection::open(path).map_err(err)?;
        // WAL: readers never block the writer. synchronous=NORMAL: a commit survives the
        // process being killed (the WAL is in the OS's hands); only an OS crash can lose the
        // last commits. A 16 MiB page cache (default 2 MiB) and a checkpoint every 8192 WAL
        // pages (default 1000) instead: +7-11% serve throughput, measured side by side.
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;
             PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -16384;
             PRAGMA wal_autocheckpoint = 8192;",
        )
        .map_err(err)?;
        db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::migrate(&mut db).map_err(|e| match e {
            MigrationError::Sqlite(source) => err(source),
            MigrationError::TooNew(found) => StoreError::TooNew {
                path: display.clone(),
                found,
                known: schema::CURRENT,
            },
        })?;
        let reader = open_reader(path).map_err(err)?;
        let db = Arc::new(Mutex::new(db));
        let journal = GroupCommit::start(db.clone()).map_err(|e| StoreError::Commit {
            path: display.clone(),
            reason: format!("starting the writer thread: {e}"),
        })?;
        Ok(SqliteStore {
            path: display,
            db,
            reader: Mutex::new(reader),
            latest: Mutex::default(),
            journal,
        })
    }

    /// The writer's connection.
    pub(super) fn db(&self) -> MutexGuard<'_, Connection> {
        lock(&self.db)
    }

    /// The readers' connection. A statement reads the database as of one commit; reads of
    /// several statements that must agree take a transaction.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        lock(&self.reader)
    }

    /// Queues a run-journal change for the next group commit; Ok once it is committed.
    async fn commit<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.journal.commit(change).await.map_err(|e| match e {
            GroupError::Change(source) => self.sqlite(source),
            GroupError::Commit(reason) => StoreError::Commit {
                path: self.path.clone(),
                reason,
            },
            GroupError::Stopped => StoreError::Commit {
                path: self.path.clone(),
                reason: "the writer thread has stopped".into(),
            },
        })
    }

    fn sqlite(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `change` in one transaction and commits it.
    fn write<T>(
        &self,
        change: impl FnOnce(&Transaction) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.commit_on(&mut self.db(), change)
    }

    fn commit_on<T>(
        &self,
        db: &mut Connection,
        change: impl FnOnce(&Transaction) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let tx = db.transaction().map_err(|e| self.sqlite(e))?;
        let value = change(&tx).map_err(|e| self.sqlite(e))?;
        tx.commit().map_err(|e| self.sqlite(e))?;
        Ok(value)
    }

    /// Like `write`, for a change to the stored workflows; `remember` then updates the latest
    /// versions. Those are locked only once the writer's connection is held, so a lookup (which
    /// holds them while it reads) never waits for a group commit; and until they are updated,
    /// so no lookup sees, or puts back, the version from before the change.
    fn write_workflows<T>(
        &self,
        change: impl FnOnce(&Transaction) -> rusqlite::Result<T>,
        remember: impl FnOnce(&mut HashMap<String, u32>, &T),
    ) -> Result<T, StoreError> {
        let mut db = self.db();
        let mut latest = lock(&self.latest);
        let value = self.commit_on(&mut db, change)?;
        remember(&mut latest, &value);
        Ok(value)
    }

    fn new_version(
        &self,
        identifier: &str,
        source: &Value,
        must_exist: bool,
    ) -> Result<WorkflowRecord, StoreError> {
        let text = source.to_string();
        let at = now();
        let outcome = self.write_workflows(
            |tx| {
            let existing: Option<(u32, bool, String)> = tx
                .row_cached(
                    "SELECT latest_version, deleted, created_at FROM workflows WHERE identifier = ?1",
                    [identifier],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let live = existing.as_ref().is_some_and(|(_, deleted, _)| !deleted);
            if live != must_exist {
                return Ok(None);
            }
            let version = existing.as_ref().map_or(1, |(latest, _, _)| latest + 1);
            let created_at = match &existing {
                Some((_, false, created)) => created.clone(),
                _ => at.clone(),
            };
            tx.execute_cached(
                "INSERT INTO workflows (identifier, latest_version, deleted, created_at, updated_at)
                 VALUES (?1, ?2, 0, ?3, ?4)
                 ON CONFLICT (identifier) DO UPDATE SET
                     latest_version = ?2, deleted = 0, created_at = ?3, updated_at = ?4",
                params![identifier, version, created_at, at],
            )?;
            tx.execute_cached(
                "INSERT INTO workflow_versions (workflow, version, source, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![identifier, version, text, at],
            )?;
            Ok(Some((version, created_at)))
            },
            |latest, outcome| {
                if let Some((version, _)) = outcome {
                    latest.insert(identifier.to_owned(), *version);
                }
            },
        )?;
        match outcome {
            Some((version, created_at)) => Ok(WorkflowRecord {
                identifier: identifier.to_owned(),
                version,
                source: source.clone(),
                created_at,
                updated_at: at,
            }),
            None if must_exist => Err(StoreError::NoWorkflow(identifier.to_owned())),
            None => Err(StoreError::WorkflowExists(identifier.to_owned())),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        text: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
            path: self.path.clone(),
            what: what.to_owned(),
            source,
        })
    }

    fn workflow_record(&self, row: StoredWorkflow) -> Result<WorkflowRecord, StoreError> {
        Ok(WorkflowRecord {
            source: self.parse(&format!("workflow \"{}\"", row.identifier), &row.source)?,
            identifier: row.identifier,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    fn node_run_record(&self, what: &str, node_run: StoredNodeRun) -> Result<NodeRun, StoreError> {
        Ok(NodeRun {
            output: self.parse(what, &node_run.output)?,
            logs: self.parse(what, &node_run.logs)?,
            status: status_from(&node_run.status),
            result: node_run.result.as_deref().map(result_from),
            identifier: node_run.identifier,
            node: node_run.node,
            node_type: node_run.node_type,
            error: node_run.error,
            created_at: node_run.created_at,
            duration_ms: node_run.duration_ms,
            attempts: node_run.attempts,
        })
    }

    /// Reads the node runs of the run in `row` and assembles it.
    fn assemble(&self, db: &Connection, row: StoredRun) -> Result<WorkflowRun, StoreError> {
        let what = format!("run {}", row.identifier);
        let mut statement = db
            .prepare_cached(&format!(
                "SELECT {NODE_RUN_COLUMNS} FROM node_runs WHERE run = ?1 ORDER BY seq"
            ))
            .map_err(|e| self.sqlite(e))?;
        let stored: Vec<StoredNodeRun> = statement
            .query_map([&row.identifier], StoredNodeRun::from_row)
            .map_err(|e| self.sqlite(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.sqlite(e))?;
        let node_runs = stored
            .into_iter()
            .map(|node_run| self.node_run_record(&what, node_run))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WorkflowRun {
            trigger: self.parse(&what, &row.trigger)?,
            status: status_from(&row.status),
            result: row.result.as_deref().map(result_from),
            identifier: row.identifier,
            workflow: row.workflow,
            workflow_version: row.workflow_version,
            created_at: row.created_at,
            finished_at: row.finished_at,
            node_runs,
        })
    }
}

const WORKFLOW_COLUMNS: &str = "w.identifier, v.version, v.source, w.created_at, v.created_at";
const RUN_COLUMNS: &str =
    "identifier, workflow, workflow_version, status, result, trigger, created_at, finished_at";

const NODE_RUN_COLUMNS: &str = "identifier, node, type, status, result, output, error, logs, \
                                attempts, created_at, duration_ms";

struct StoredWorkflow {
    identifier: String,
    version: u32,
    source: String,
    created_at: String,
    updated_at: String,
}

impl StoredWorkflow {
    fn from_row(row: &Row) -> rusqlite::Result<StoredWorkflow> {
        Ok(StoredWorkflow {
            identifier: row.get(0)?,
            version: row.get(1)?,
            source: row.get(2)?,
            created_at: row.get(3)?,
            updated_at: row.get(4)?,
        })
    }
}

struct StoredRun {
    identifier: String,
    workflow: String,
    workflow_version: Option<u32>,
    status: String,
    result: Option<String>,
    trigger: String,
    created_at: String,
    finished_at: Option<String>,
}

impl StoredRun {
    fn from_row(row: &Row) -> rusqlite::Result<StoredRun> {
        Ok(StoredRun {
            identifier: row.get(0)?,
            workflow: row.get(1)?,
            workflow_version: row.get(2)?,
            status: row.get(3)?,
            result: row.get(4)?,
            trigger: row.get(5)?,
            created_at: row.get(6)?,
            finished_at: row.get(7)?,
        })
    }
}

struct StoredNodeRun {
    identifier: String,
    node: String,
    node_type: String,
    status: String,
    result: Option<String>,
    output: String,
    error: Option<String>,
    logs: String,
    attempts: u32,
    created_at: String,
    duration_ms: u64,
}

impl StoredNodeRun {
    fn from_row(row: &Row) -> rusqlite::Result<StoredNodeRun> {
        Ok(StoredNodeRun {
            identifier: row.get(0)?,
            node: row.get(1)?,
            node_type: row.get(2)?,
            status: row.get(3)?,
            result: row.get(4)?,
            output: row.get(5)?,
            error: row.get(6)?,
            logs: row.get(7)?,
            attempts: row.get(8)?,
            created_at: row.get(9)?,
            duration_ms: row.get(10)?,
        })
    }
}

fn status_text(status: RunStatus) -> &'static str {
    match status {
        RunStatus::InProgress => "IN_PROGRESS",
        RunStatus::Completed => "COMPLETED",
    }
}

fn status_from(text: &str) -> RunStatus {
    match text {
        "COMPLETED" => RunStatus::Completed,
        _ => RunStatus::InProgress,
    }
}

fn result_text(result: RunResult) -> &'static str {
    match result {
        RunResult::Success => "SUCCESS",
        RunResult::Failed => "FAILED",
        RunResult::Cancelled => "CANCELLED",
    }
}

fn result_from(text: &str) -> RunResult {
    match text {
        "SUCCESS" => RunResult::Success,
        "CANCELLED" => RunResult::Cancelled,
        _ => RunResult::Failed,
    }
}

fn run_in_progress(db: &Connection, run: &str) -> rusqlite::Result<bool> {
    db.row_cached(
        "SELECT status = 'IN_PROGRESS' FROM runs WHERE identifier = ?1",
        [run],
        |row| row.get(0),
    )
    .optional()
    .map(|in_progress| in_progress.unwrap_or(false))
}

fn applied_or_ended(applied: bool, identifier: &str) -> Result<(), StoreError> {
    if applied {
        Ok(())
    } else {
        Err(StoreError::NotInProgress(identifier.to_owned()))
    }
}

pub(super) fn insert_run(db: &Connection, run: &WorkflowRun) -> rusqlite::Result<()> {
    db.execute_cached(
        "INSERT INTO runs (identifier, workflow, workflow_version, status, result, trigger,
                           created_at, updated_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            run.identifier,
            run.workflow,
            run.workflow_version,
            status_text(run.status),
            run.result.map(result_text),
            run.trigger.to_string(),
            run.created_at,
            now(),
            run.finished_at,
        ],
    )?;
    Ok(())
}

pub(super) fn insert_node_run(
    db: &Connection,
    run: &str,
    seq: usize,
    node_run: &NodeRun,
) -> rusqlite::Result<()> {
    db.execute_cached(
        "INSERT INTO node_runs (identifier, run, seq, node, type, status, result, output, error,
                                logs, attempts, created_at, updated_at, duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            node_run.identifier,
            run,
            seq as i64,
            node_run.node,
            node_run.node_type,
            status_text(node_run.status),
            node_run.result.map(result_text),
            node_run.output.to_string(),
            node_run.error,
            Value::from(node_run.logs.clone()).to_string(),
            node_run.attempts,
            node_run.created_at,
            now(),
            node_run.duration_ms as i64,
        ],
    )?;
    Ok(())
}

impl RunJournal for SqliteStore {
    fn run_started<'a>(&'a self, run: &'a WorkflowRun) -> Committed<'a, ()> {
        let run = run.clone();
        Box::pin(self.commit(move |db| {
            insert_run(db, &run)?;
            for (seq, node_run) in run.node_runs.iter().enumerate() {
                insert_node_run(db, &run.identifier, seq, node_run)?;
            }
            Ok(())
        }))
    }

    fn node_started<'a>(
        &'a self,
        run: &'a WorkflowRun,
        node_run: &'a NodeRun,
    ) -> Committed<'a, ()> {
        let (wfr, seq, node_run) = (
            run.identifier.clone(),
            run.node_runs.len(),
            node_run.clone(),
        );
        let applied = self.commit(move |db| {
            if !run_in_progress(db, &wfr)? {
                return Ok(false);
            }
            insert_node_run(db, &wfr, seq, &node_run)?;
            Ok(true)
        });
        Box::pin(async move { applied_or_ended(applied.await?, &run.identifier) })
    }

    fn node_restarted<'a>(
        &'a self,
        _run: &'a WorkflowRun,
        node_run: &'a NodeRun,
    ) -> Committed<'a, ()> {
        let (wfnr, attempts) = (node_run.identifier.clone(), node_run.attempts);
        let applied = self.commit(move |db| {
            let changed = db.execute_cached(
                "UPDATE node_runs SET attempts = ?2, updated_at = ?3
                 WHERE identifier = ?1 AND status = 'IN_PROGRESS'",
                params![wfnr, attempts, now()],
            )?;
            db.execute_cached("DELETE FROM callback_tokens WHERE node_run = ?1", [&wfnr])?;
            Ok(changed == 1)
        });
        Box::pin(async move { applied_or_ended(applied.await?, &node_run.identifier) })
    }

    fn node_finished<'a>(
        &'a self,
        _run: &'a WorkflowRun,
        node_run: &'a NodeRun,
    ) -> Committed<'a, ()> {
        let end = NodeEnd::of(node_run);
        let applied = self.commit(move |db| end.record(db));
        Box::pin(async move { applied_or_ended(applied.await?, &node_run.identifier) })
    }

    fn callback_expected<'a>(
        &'a self,
        _run: &'a WorkflowRun,
        node_run: &'a NodeRun,
        expected: &'a ExpectedCallback,
    ) -> Committed<'a, ()> {
        let (wfnr, expected) = (node_run.identifier.clone(), expected.clone());
        Box::pin(self.commit(move |db| {
            db.execute_cached(
                "INSERT INTO callback_tokens (node_run, token_sha256, deadline_ms)
                 VALUES (?1, ?2, ?3)",
                params![
                    wfnr,
                    expected.token_sha256,
                    expected.deadline_ms.map(|ms| ms as i64)
                ],
            )?;
            Ok(())
        }))
    }

    fn node_waiting<'a>(
        &'a self,
        _run: &'a WorkflowRun,
        node_run: &'a NodeRun,
    ) -> Committed<'a, Option<NodeRun>> {
        let (wfnr, duration_ms) = (node_run.identifier.clone(), node_run.duration_ms);
        let logs = Value::from(node_run.logs.clone()).to_string();
        let stored = self.commit(move |db| {
            let changed = db.execute_cached(
                "UPDATE node_runs SET logs = ?2, duration_ms = ?3, updated_at = ?4
                 WHERE identifier = ?1 AND status = 'IN_PROGRESS'",
                params![wfnr, logs, duration_ms as i64, now()],
            )?;
            if changed == 1 {
                db.execute_cached(
                    "UPDATE callback_tokens SET accepted = 1 WHERE node_run = ?1",
                    [&wfnr],
                )?;
                return Ok(None);
            }
            db.row_cached(
                &format!("SELECT {NODE_RUN_COLUMNS} FROM node_runs WHERE identifier = ?1"),
                [&wfnr],
                StoredNodeRun::from_row,
            )
            .optional()
        });
        Box::pin(async move {
            let what = format!("node run {}", node_run.identifier);
            stored
                .await?
                .map(|stored| self.node_run_record(&what, stored))
                .transpose()
        })
    }

    fn run_finished<'a>(
        &'a self,
        run: &'a WorkflowRun,
        last: Option<&'a NodeRun>,
    ) -> Committed<'a, ()> {
        let (wfr, status, result, finished_at) = (
            run.identifier.clone(),
            status_text(run.status),
            run.result.map(result_text),
            run.finished_at.clone(),
        );
        let last = last.map(NodeEnd::of);
        // The identifier of what is no longer in progress (then nothing is changed), if any.
        let ended = self.commit(move |db| {
            if !run_in_progress(db, &wfr)? {
                return Ok(Some(wfr));
            }
            if let Some(last) = last
                && !last.record(db)?
            {
                return Ok(Some(last.identifier));
            }
            db.execute_cached(
                "UPDATE runs SET status = ?2, result = ?3, finished_at = ?4, updated_at = ?5
                 WHERE identifier = ?1",
                params![wfr, status, result, finished_at, now()],
            )?;
            Ok(None)
        });
        Box::pin(async move {
            match ended.await? {
                None => Ok(()),
                Some(identifier) => Err(StoreError::NotInProgress(identifier)),
            }
        })
    }
}

/// A node run's end as the store writes it, its JSON serialised by the caller (not on the
/// writer thread every run's changes go through).
struct NodeEnd {
    identifier: String,
    status: &'static str,
    result: Option<&'static str>,
    output: String,
    error: Option<String>,
    logs: String,
    attempts: u32,
    duration_ms: i64,
}

impl NodeEnd {
    fn of(node_run: &NodeRun) -> NodeEnd {
        NodeEnd {
            identifier: node_run.identifier.clone(),
            status: status_text(node_run.status),
            result: node_run.result.map(result_text),
            output: node_run.output.to_string(),
            error: node_run.error.clone(),
            // Serialising JSON values into a String cannot fail (no I/O, string keys only).
            logs: serde_json::to_string(&node_run.logs).expect("JSON values serialise"),
            attempts: node_run.attempts,
            duration_ms: node_run.duration_ms as i64,
        }
    }

    /// False when the node run is no longer in progress (nothing is changed then).
    fn record(&self, db: &Connection) -> rusqlite::Result<bool> {
        let changed = db.execute_cached(
            "UPDATE node_runs SET status = ?2, result = ?3, output = ?4, error = ?5, logs = ?6,
                                  attempts = ?7, duration_ms = ?8, updated_at = ?9
             WHERE identifier = ?1 AND status = 'IN_PROGRESS'",
            params![
                self.identifier,
                self.status,
                self.result,
                self.output,
                self.error,
                self.logs,
                self.attempts,
                self.duration_ms,
                now(),
            ],
        )?;
        Ok(changed == 1)
    }
}

impl Store for SqliteStore {
    fn create_workflow(
        &self,
        identifier: &str,
        source: &Value,
    ) -> Result<WorkflowRecord, StoreError> {
        self.new_version(identifier, source, false)
    }

    fn update_workflow(
        &self,
        identifier: &str,
        source: &Value,
    ) -> Result<WorkflowRecord, StoreError> {
        self.new_version(identifier, source, true)
    }

    fn workflow(
        &self,
        identifier: &str,
        version: Option<u32>,
    ) -> Result<Option<WorkflowRecord>, StoreError> {
        let db = self.reader();
        let row = match version {
            Some(version) => db.row_cached(
                &format!(
                    "SELECT {WORKFLOW_COLUMNS} FROM workflows w JOIN workflow_versions v
                     ON v.workflow = w.identifier WHERE w.identifier = ?1 AND v.version = ?2"
                ),
                params![identifier, version],
                StoredWorkflow::from_row,
            ),
            None => db.row_cached(
                &format!(
                    "SELECT {WORKFLOW_COLUMNS} FROM workflows w JOIN workflow_versions v
                     ON v.workflow = w.identifier AND v.version = w.latest_version
                     WHERE w.identifier = ?1 AND w.deleted = 0"
                ),
                [identifier],
                StoredWorkflow::from_row,
            ),
        }
        .optional()
        .map_err(|e| self.sqlite(e))?;
        drop(db);
        row.map(|row| self.workflow_record(row)).transpose()
    }

    fn latest_version(&self, identifier: &str) -> Result<Option<u32>, StoreError> {
        let mut latest = lock(&self.latest);
        if let Some(version) = latest.get(identifier) {
            return Ok(Some(*version));
        }
        let stored: Option<u32> = self
            .reader()
            .row_cached(
                "SELECT latest_version FROM workflows WHERE identifier = ?1 AND deleted = 0",
                [identifier],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        // Only workflows that exist: lookups of made-up names leave nothing behind.
        if let Some(version) = stored {
            latest.insert(identifier.to_owned(), version);
        }
        Ok(stored)
    }

    fn workflows(&self) -> Result<Vec<WorkflowRecord>, StoreError> {
        let rows: Vec<StoredWorkflow> = {
            let db = self.reader();
            let mut statement = db
                .prepare(&format!(
                    "SELECT {WORKFLOW_COLUMNS} FROM workflows w JOIN workflow_versions v
                     ON v.workflow = w.identifier AND v.version = w.latest_version
                     WHERE w.deleted = 0 ORDER BY w.identifier"
                ))
                .map_err(|e| self.sqlite(e))?;
            statement
                .query_map([], StoredWorkflow::from_row)
                .map_err(|e| self.sqlite(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.sqlite(e))?
        };
        rows.into_iter()
            .map(|row| self.workflow_record(row))
            .collect()
    }

    fn delete_workflow(&self, identifier: &str) -> Result<bool, StoreError> {
        let at = now();
        self.write_workflows(
            |tx| {
                let changed = tx.execute_cached(
                    "UPDATE workflows SET deleted = 1, updated_at = ?2
                     WHERE identifier = ?1 AND deleted = 0",
                    params![identifier, at],
                )?;
                Ok(changed == 1)
            },
            |latest, _| {
                latest.remove(identifier);
            },
        )
    }

    fn run(&self, identifier: &str) -> Result<Option<WorkflowRun>, StoreError> {
        let mut reader = self.reader();
        // One read transaction: the run and its node runs as of one commit.
        let db = reader.transaction().map_err(|e| self.sqlite(e))?;
        let row = db
            .row_cached(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE identifier = ?1"),
                [identifier],
                StoredRun::from_row,
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        row.map(|row| self.assemble(&db, row)).transpose()
    }

    fn runs(&self, filter: &RunFilter) -> Result<Vec<WorkflowRun>, StoreError> {
        let mut reader = self.reader();
        let db = reader.transaction().map_err(|e| self.sqlite(e))?;
        let rows: Vec<StoredRun> = {
            let mut statement = db
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs
                     WHERE (?1 IS NULL OR workflow = ?1) AND (?2 IS NULL OR status = ?2)
                     ORDER BY created_at DESC, rowid DESC LIMIT ?3 OFFSET ?4"
                ))
                .map_err(|e| self.sqlite(e))?;
            statement
                .query_map(
                    params![
                        filter.workflow,
                        filter.status.map(status_text),
                        filter.limit as i64,
                        filter.offset as i64
                    ],
                    StoredRun::from_row,
                )
                .map_err(|e| self.sqlite(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.sqlite(e))?
        };
        rows.into_iter()
            .map(|row| self.assemble(&db, row))
            .collect()
    }

    fn cancel_run(&self, identifier: &str) -> Result<bool, StoreError> {
        let at = now();
        self.write(|tx| {
            let changed = tx.execute_cached(
                "UPDATE runs SET status = 'COMPLETED', result = 'CANCELLED', finished_at = ?2,
                                 updated_at = ?2
                 WHERE identifier = ?1 AND status = 'IN_PROGRESS'",
                params![identifier, at],
            )?;
            tx.execute_cached(
                "UPDATE node_runs SET status = 'COMPLETED', result = 'CANCELLED', updated_at = ?2
                 WHERE run = ?1 AND status = 'IN_PROGRESS'",
                params![identifier, at],
            )?;
            Ok(changed == 1)
        })
    }

    fn callback_token(&self, node_run: &str) -> Result<Option<String>, StoreError> {
        self.reader()
            .row_cached(
                "SELECT token_sha256 FROM callback_tokens WHERE node_run = ?1",
                [node_run],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.sqlite(e))
    }

    fn node_run_of_token(&self, token_sha256: &str) -> Result<Option<String>, StoreError> {
        self.reader()
            .row_cached(
                "SELECT node_run FROM callback_tokens WHERE token_sha256 = ?1",
                [token_sha256],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.sqlite(e))
    }

    fn node_run_owner(&self, node_run: &str) -> Result<Option<String>, StoreError> {
        self.reader()
            .row_cached(
                "SELECT run FROM node_runs WHERE identifier = ?1",
                [node_run],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.sqlite(e))
    }

    fn append_logs(&self, node_run: &str, logs: &[Value]) -> Result<bool, StoreError> {
        self.write(|tx| {
            let stored: Option<String> = tx
                .row_cached(
                    "SELECT logs FROM node_runs WHERE identifier = ?1 AND status = 'IN_PROGRESS'",
                    [node_run],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(stored) = stored else {
                return Ok(false);
            };
            let mut all: Vec<Value> = serde_json::from_str(&stored).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
            })?;
            all.extend_from_slice(logs);
            tx.execute_cached(
                "UPDATE node_runs SET logs = ?2, updated_at = ?3 WHERE identifier = ?1",
                params![node_run, Value::from(all).to_string(), now()],
            )?;
            Ok(true)
        })
    }

    fn runs_in_progress(&self) -> Result<Vec<String>, StoreError> {
        let db = self.reader();
        let mut statement = db
            .prepare("SELECT identifier FROM runs WHERE status = 'IN_PROGRESS' ORDER BY created_at")
            .map_err(|e| self.sqlite(e))?;
        statement
            .query_map([], |row| row.get(0))
            .map_err(|e| self.sqlite(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.sqlite(e))
    }

    fn waiting_callbacks(&self) -> Result<Vec<WaitingCallback>, StoreError> {
        let db = self.reader();
        let mut statement = db
            .prepare(
                "SELECT n.run, c.node_run, c.deadline_ms FROM callback_tokens c
                 JOIN node_runs n ON n.identifier = c.node_run
                 WHERE n.status = 'IN_PROGRESS' AND c.accepted = 1 ORDER BY n.created_at",
            )
            .map_err(|e| self.sqlite(e))?;
        statement
            .query_map([], |row| {
                Ok(WaitingCallback {
                    run: row.get(0)?,
                    node_run: row.get(1)?,
                    deadline_ms: row.get::<_, Option<i64>>(2)?.map(|ms| ms.max(0) as u64),
                })
            })
            .map_err(|e| self.sqlite(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.sqlite(e))
    }
}

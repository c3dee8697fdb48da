//! Workflow runs kept in SQLite under the state dir, so `airlock runs` can show what ran.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::engine::WorkflowRun;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("run store {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("run store: a stored run is not readable: {0}")]
    Corrupt(serde_json::Error),
}

pub struct RunStore {
    path: String,
    db: Mutex<Connection>,
}

/// A line of `airlock runs`.
pub struct RunSummary {
    pub identifier: String,
    pub workflow: String,
    pub result: Option<String>,
    pub created_at: String,
}

impl RunStore {
    pub fn open(path: &Path) -> Result<RunStore, StoreError> {
        let display = path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: display.clone(),
            source,
        };
        let db = Connection::open(path).map_err(err)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS workflow_runs (
                 identifier TEXT PRIMARY KEY,
                 workflow   TEXT NOT NULL,
                 status     TEXT NOT NULL,
                 result     TEXT,
                 created_at TEXT NOT NULL,
                 run        TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS workflow_runs_created ON workflow_runs (created_at);",
        )
        .map_err(err)?;
        Ok(RunStore {
            path: display,
            db: Mutex::new(db),
        })
    }

    /// Inserts or replaces the run (called when it starts and when it ends).
    pub fn save(&self, run: &WorkflowRun) -> Result<(), StoreError> {
        let json = serde_json::to_string(run).map_err(StoreError::Corrupt)?;
        let status = serde_json::to_value(run.status).map_err(StoreError::Corrupt)?;
        let result = run
            .result
            .map(|r| serde_json::to_value(r).map_err(StoreError::Corrupt))
            .transpose()?;
        let db = self
            .db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        db.execute(
            "INSERT OR REPLACE INTO workflow_runs (identifier, workflow, status, result, created_at, run)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                run.identifier,
                run.workflow,
                status.as_str(),
                result.as_ref().and_then(|r| r.as_str()),
                run.created_at,
                json
            ],
        )
        .map_err(|source| StoreError::Sqlite { path: self.path.clone(), source })?;
        Ok(())
    }

    pub fn get(&self, identifier: &str) -> Result<Option<WorkflowRun>, StoreError> {
        let db = self
            .db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let json: Option<String> = db
            .query_row(
                "SELECT run FROM workflow_runs WHERE identifier = ?1",
                [identifier],
                |row| row.get(0),
            )
            .optional()
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })?;
        json.map(|j| serde_json::from_str(&j).map_err(StoreError::Corrupt))
            .transpose()
    }

    /// The most recent runs, newest first.
    pub fn list(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
        let db = self
            .db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let err = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let mut statement = db
            .prepare(
                "SELECT identifier, workflow, result, created_at FROM workflow_runs
                 ORDER BY created_at DESC LIMIT ?1",
            )
            .map_err(err)?;
        let rows = statement
            .query_map([limit as i64], |row| {
                Ok(RunSummary {
                    identifier: row.get(0)?,
                    workflow: row.get(1)?,
                    result: row.get(2)?,
                    created_at: row.get(3)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{RunResult, RunStatus};
    use serde_json::{Map, json};

    fn run(id: &str, created_at: &str) -> WorkflowRun {
        WorkflowRun {
            identifier: id.into(),
            workflow: "deploy".into(),
            status: RunStatus::Completed,
            result: Some(RunResult::Success),
            created_at: created_at.into(),
            finished_at: None,
            trigger: json!({"payload": {"service": "api"}}),
            node_runs: Vec::new(),
            outputs: Map::new(),
        }
    }

    #[test]
    fn saves_replaces_and_lists_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::open(&dir.path().join("runs.db")).unwrap();
        store
            .save(&run("wfr_a", "2026-01-01T00:00:00.000Z"))
            .unwrap();
        let mut later = run("wfr_b", "2026-01-02T00:00:00.000Z");
        later.result = Some(RunResult::Failed);
        store.save(&later).unwrap();
        store.save(&later).unwrap();
        let listed = store.list(10).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].identifier, "wfr_b");
        assert_eq!(listed[0].result.as_deref(), Some("FAILED"));
        let back = store.get("wfr_a").unwrap().expect("stored");
        assert_eq!(back.trigger["payload"]["service"], "api");
        assert!(store.get("wfr_missing").unwrap().is_none());
    }
}

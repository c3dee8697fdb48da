//! Durable runs: starts them, drives each on its own task (one task per run at a time), completes
//! the node runs of asynchronous webhooks from their callbacks or timeouts, and resumes the run
//! after. `airlock serve` and a one-shot `airlock run` with asynchronous webhooks both use it.
//!
//! A callback can come while the request that carried its token is still in flight, or just
//! after the driving task decided to stop: a run's entry in `live` is taken under one lock by
//! whoever drives it, and a completion for a run that is being driven only marks the entry
//! (`poked`), so the driving task reads the run again before it lets go. No run is driven twice
//! and no completion is left without a driver.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::engine::{
    Committed, Completion, ExpectedCallback, NodeRun, RunJournal, RunStatus, Runtime, WorkflowRun,
    start_first_node,
};
use crate::secrets::token_sha256;
use crate::store::{Store, StoreError, WorkflowRecord};
use crate::sync::lock;
use crate::time::unix_ms;
use crate::workflow::{Workflow, WorkflowError};

#[derive(Debug, thiserror::Error)]
pub enum ConductorError {
    #[error("{0}")]
    NotFound(String),
    /// The run or node run has already ended: nothing was changed.
    #[error("{0}")]
    Conflict(String),
    /// A valid callback token, of another node run.
    #[error("{0}")]
    Forbidden(String),
    /// No token, or one that is nobody's.
    #[error("{0}")]
    Unauthorized(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
}

/// Told when node runs and runs end (the server's metrics).
pub trait RunObserver: Send + Sync {
    fn node_finished(&self, _node_run: &NodeRun) {}
    fn run_finished(&self, _run: &WorkflowRun) {}
}

/// An observer that does nothing (a one-shot run).
pub struct Unobserved;

impl RunObserver for Unobserved {}

pub struct Conductor {
    pub runtime: Arc<Runtime>,
    pub store: Arc<dyn Store>,
    observer: Arc<dyn RunObserver>,
    /// Runs a task is driving, by run id.
    live: Mutex<HashMap<String, LiveRun>>,
    /// Who waits for a run to complete (`?wait=true`, a one-shot run), by run id: each is
    /// handed the completed run as its driver left it (what it just committed).
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<WorkflowRun>>>>,
    /// Parsed workflows by (identifier, version): versions never change once stored.
    parsed: Mutex<HashMap<(String, u32), Arc<Workflow>>>,
    /// Workflows run from a file rather than the store (a one-shot run), by identifier.
    files: Mutex<HashMap<String, Arc<Workflow>>>,
}

struct LiveRun {
    cancel: Arc<AtomicBool>,
    abort: AbortHandle,
    /// A callback completed a node run of this run while it was being driven.
    poked: bool,
}

impl Conductor {
    pub fn new(
        runtime: Arc<Runtime>,
        store: Arc<dyn Store>,
        observer: Arc<dyn RunObserver>,
    ) -> Arc<Conductor> {
        Arc::new(Conductor {
            runtime,
            store,
            observer,
            live: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            parsed: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
        })
    }

    /// The stored workflow `record`, parsed once per version.
    pub fn parse(&self, record: &WorkflowRecord) -> Result<Arc<Workflow>, WorkflowError> {
        let key = (record.identifier.clone(), record.version);
        if let Some(parsed) = lock(&self.parsed).get(&key) {
            return Ok(parsed.clone());
        }
        let origin = format!("workflow {} version {}", record.identifier, record.version);
        let workflow = Workflow::from_json(
            &record.source.to_string(),
            &origin,
            &self.runtime.nodes.custom_types(),
        )?;
        let workflow = Arc::new(workflow);
        lock(&self.parsed).insert(key, workflow.clone());
        Ok(workflow)
    }

    /// The latest version of stored workflow `identifier`, parsed once per version (its source
    /// is read from the store only the first time).
    pub fn latest(&self, identifier: &str) -> Result<Option<(Arc<Workflow>, u32)>, ConductorError> {
        let Some(version) = self.store.latest_version(identifier)? else {
            return Ok(None);
        };
        let key = (identifier.to_owned(), version);
        if let Some(parsed) = lock(&self.parsed).get(&key) {
            return Ok(Some((parsed.clone(), version)));
        }
        // Versions stay readable once stored, even when the workflow is deleted meanwhile.
        let record = self
            .store
            .workflow(identifier, Some(version))?
            .ok_or_else(|| {
                ConductorError::NotFound(format!("no workflow \"{identifier}\" version {version}"))
            })?;
        Ok(Some((self.parse(&record)?, version)))
    }

    /// Makes a workflow that is not in the store (a file) known, for runs of it to resume.
    pub fn add_file_workflow(&self, workflow: Arc<Workflow>) {
        lock(&self.files).insert(workflow.identifier.clone(), workflow);
    }

    /// The workflow `run` follows: its stored version, or the file it was run from.
    fn workflow_of(&self, run: &WorkflowRun) -> Result<Arc<Workflow>, ConductorError> {
        let Some(version) = run.workflow_version else {
            return lock(&self.files)
                .get(&run.workflow)
                .cloned()
                .ok_or_else(|| {
                    ConductorError::NotFound(format!(
                        "run {} follows the workflow file \"{}\", which this process did not load",
                        run.identifier, run.workflow
                    ))
                });
        };
        let record = self
            .store
            .workflow(&run.workflow, Some(version))?
            .ok_or_else(|| {
                ConductorError::NotFound(format!(
                    "no workflow \"{}\" version {version}",
                    run.workflow
                ))
            })?;
        Ok(self.parse(&record)?)
    }

    pub fn stored_run(&self, wfr: &str) -> Result<WorkflowRun, ConductorError> {
        self.store
            .run(wfr)?
            .ok_or_else(|| ConductorError::NotFound(format!("no run {wfr}")))
    }

    /// Commits `run` (new, IN_PROGRESS) with its first node run started, then drives it on its
    /// own task. Returns the run as committed.
    pub async fn start(
        self: &Arc<Self>,
        workflow: Arc<Workflow>,
        run: WorkflowRun,
    ) -> Result<WorkflowRun, StoreError> {
        self.begin(workflow, run, WorkflowRun::clone).await
    }

    /// Like [`Conductor::start`]; `answer` says what the caller keeps of the committed run.
    /// The driving task commits the run's start itself, registered in `live` before: a cancel,
    /// which needs the run stored, always finds its driver; and a caller that stops waiting
    /// cannot leave a committed run undriven.
    async fn begin<T: Send + 'static>(
        self: &Arc<Self>,
        workflow: Arc<Workflow>,
        mut run: WorkflowRun,
        answer: fn(&WorkflowRun) -> T,
    ) -> Result<T, StoreError> {
        start_first_node(&workflow, &mut run);
        let wfr = run.identifier.clone();
        let (told, committed) = oneshot::channel();
        let on_commit: OnCommit = Box::new(move |outcome| {
            let _ = told.send(outcome.map(answer));
        });
        self.spawn_driver(&mut lock(&self.live), workflow, run, Resume::New(on_commit));
        // Only a panic in the driving task drops `told` unanswered.
        committed.await.unwrap_or_else(|_| {
            Err(StoreError::Commit {
                path: wfr,
                reason: "the run's driver stopped before its start was committed".into(),
            })
        })
    }

    /// Drives `run` on a new task, registered in `live` (whose lock the caller holds, so the
    /// task cannot let go of the run before it is registered).
    fn spawn_driver(
        self: &Arc<Self>,
        live: &mut HashMap<String, LiveRun>,
        workflow: Arc<Workflow>,
        run: WorkflowRun,
        how: Resume,
    ) {
        let identifier = run.identifier.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        let conductor = self.clone();
        let journal = self.journal(cancel.clone());
        let runtime = self.runtime.clone();
        let task = tokio::spawn(async move {
            let mut run = match how {
                Resume::New(on_commit) => match journal.run_started(&run).await {
                    Ok(()) => {
                        on_commit(Ok(&run));
                        runtime.drive_new(&workflow, run, &journal).await
                    }
                    Err(e) => {
                        on_commit(Err(e));
                        lock(&conductor.live).remove(&run.identifier);
                        return;
                    }
                },
                Resume::Drive => runtime.drive(&workflow, run, &journal).await,
                Resume::Interrupted => runtime.resume_interrupted(&workflow, run, &journal).await,
            };
            while let Some(again) = conductor.let_go(run, journal.end_committed()) {
                run = runtime.drive(&workflow, again, &journal).await;
            }
        });
        live.insert(
            identifier,
            LiveRun {
                cancel,
                abort: task.abort_handle(),
                poked: false,
            },
        );
    }

    /// Called by the driving task when `drive` returned: it lets go of the run, unless a
    /// callback completed one of its node runs meanwhile (then the run as stored, to drive on).
    /// `end_stored`: the run's end was committed, so waiters may have the run as it is.
    fn let_go(&self, run: WorkflowRun, end_stored: bool) -> Option<WorkflowRun> {
        let mut live = lock(&self.live);
        let poked = live.get(&run.identifier).is_some_and(|entry| entry.poked);
        if poked && run.status == RunStatus::InProgress {
            if let Some(entry) = live.get_mut(&run.identifier) {
                entry.poked = false;
            }
            drop(live);
            match self.store.run(&run.identifier) {
                Ok(Some(stored)) => return Some(stored),
                Ok(None) => {}
                Err(e) => tracing::error!(run = %run.identifier, "resuming: {e}"),
            }
            live = lock(&self.live);
        }
        live.remove(&run.identifier);
        drop(live);
        if run.status == RunStatus::Completed {
            if end_stored {
                self.notify(run);
            } else {
                // The store failed to record the end: waiters get what it holds.
                match self.store.run(&run.identifier) {
                    Ok(Some(stored)) => self.notify(stored),
                    _ => self.notify(run),
                }
            }
        }
        None
    }

    /// Drives the stored run `wfr` on from where it stands, unless a task already drives it
    /// (that task is told to read the run again before it lets go).
    pub fn resume(self: &Arc<Self>, wfr: &str) -> Result<(), ConductorError> {
        let mut live = lock(&self.live);
        if let Some(entry) = live.get_mut(wfr) {
            entry.poked = true;
            return Ok(());
        }
        let run = self.stored_run(wfr)?;
        if run.status == RunStatus::Completed {
            return Ok(());
        }
        let workflow = self.workflow_of(&run)?;
        self.spawn_driver(&mut live, workflow, run, Resume::Drive);
        Ok(())
    }

    fn journal(self: &Arc<Self>, cancel: Arc<AtomicBool>) -> Tracked {
        Tracked {
            conductor: self.clone(),
            cancel,
            end_committed: AtomicBool::new(false),
        }
    }

    /// Commits `run` and drives it like [`Conductor::start`], then waits until it has completed
    /// or `timeout` passed; returns it as it then stands. The waiter is registered before the
    /// run starts, so its completion cannot be missed and the store is not read to check.
    pub async fn start_and_wait(
        self: &Arc<Self>,
        workflow: Arc<Workflow>,
        run: WorkflowRun,
        timeout: Option<Duration>,
    ) -> Result<WorkflowRun, ConductorError> {
        let wfr = run.identifier.clone();
        let completion = self.await_completion(&wfr);
        if let Err(e) = self.begin(workflow, run, |_| ()).await {
            lock(&self.waiters).remove(&wfr);
            return Err(e.into());
        }
        self.completed_or_stored(&wfr, completion, timeout).await
    }

    fn await_completion(&self, wfr: &str) -> oneshot::Receiver<WorkflowRun> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.waiters)
            .entry(wfr.to_owned())
            .or_default()
            .push(sender);
        receiver
    }

    /// The completed run when it comes within `timeout`, else the run as stored.
    async fn completed_or_stored(
        &self,
        wfr: &str,
        completion: oneshot::Receiver<WorkflowRun>,
        timeout: Option<Duration>,
    ) -> Result<WorkflowRun, ConductorError> {
        let completed = match timeout {
            Some(timeout) => tokio::time::timeout(timeout, completion).await.ok(),
            None => Some(completion.await),
        };
        match completed {
            Some(Ok(run)) => Ok(run),
            _ => {
                self.forget_waiters_gone(wfr);
                self.stored_run(wfr)
            }
        }
    }

    /// A waiter that gave up is not kept until its run completes (which may be never).
    fn forget_waiters_gone(&self, wfr: &str) {
        let mut waiters = lock(&self.waiters);
        if let Some(waiting) = waiters.get_mut(wfr) {
            waiting.retain(|waiter| !waiter.is_closed());
            if waiting.is_empty() {
                waiters.remove(wfr);
            }
        }
    }

    /// Hands the completed `run` to its waiters (the last one takes it, the others a copy).
    fn notify(&self, run: WorkflowRun) {
        let Some(mut waiters) = lock(&self.waiters).remove(&run.identifier) else {
            return;
        };
        let last = waiters.pop();
        for waiter in waiters {
            let _ = waiter.send(run.clone());
        }
        if let Some(last) = last {
            let _ = last.send(run);
        }
    }

    /// Without force, the run stops before its next node; with force, at once (the node run in
    /// flight is abandoned and recorded CANCELLED). A run waiting for a callback stops at once.
    pub fn cancel(&self, wfr: &str, force: bool) -> Result<WorkflowRun, ConductorError> {
        let run = self.stored_run(wfr)?;
        if run.status == RunStatus::Completed {
            return Err(ConductorError::Conflict(format!(
                "run {wfr} has already completed"
            )));
        }
        let stop_in_store = {
            let mut live = lock(&self.live);
            match live.get(wfr) {
                Some(entry) if !force => {
                    entry.cancel.store(true, Ordering::Release);
                    false
                }
                Some(entry) => {
                    entry.abort.abort();
                    live.remove(wfr);
                    true
                }
                // Not driven (waiting on a callback): nothing is in flight to stop.
                None => true,
            }
        };
        if !stop_in_store {
            return self.stored_run(wfr);
        }
        // The store refuses later writes of an aborted task: they need the run IN_PROGRESS.
        // When it was no longer in progress, the aborted driver's last change (the run's end)
        // was committed while it waited: its waiters are told here, as the driver could not.
        let cancelled = self.store.cancel_run(wfr)?;
        let run = self.stored_run(wfr)?;
        if cancelled {
            self.observer.run_finished(&run);
        }
        if run.status == RunStatus::Completed {
            self.notify(run.clone());
        }
        Ok(run)
    }

    /// Who may complete node run `wfnr`: its own callback token, or (`admin`) the admin token.
    pub fn authorize(
        &self,
        wfnr: &str,
        token: Option<&str>,
        admin: bool,
    ) -> Result<(), ConductorError> {
        let Some(token) = token else {
            return Err(ConductorError::Unauthorized(
                "a callback needs Authorization: Bearer <callback token>".into(),
            ));
        };
        if admin {
            return Ok(());
        }
        let presented = token_sha256(token);
        if self.store.callback_token(wfnr)?.as_deref() == Some(presented.as_str()) {
            return Ok(());
        }
        match self.store.node_run_of_token(&presented)? {
            Some(_) => Err(ConductorError::Forbidden(format!(
                "this callback token belongs to another node run, not {wfnr}"
            ))),
            None => Err(ConductorError::Unauthorized(
                "the bearer token is not valid".into(),
            )),
        }
    }

    /// Completes the waiting node run `wfnr` with `completion`, then drives its run on.
    /// Returns the run as it stands.
    pub async fn complete(
        self: &Arc<Self>,
        wfnr: &str,
        completion: Completion,
    ) -> Result<WorkflowRun, ConductorError> {
        let (conductor, wfnr) = (self.clone(), wfnr.to_owned());
        detached(async move { conductor.complete_now(&wfnr, completion).await }).await
    }

    async fn complete_now(
        self: &Arc<Self>,
        wfnr: &str,
        completion: Completion,
    ) -> Result<WorkflowRun, ConductorError> {
        let (run, waiting) = self.waiting_node_run(wfnr)?;
        let workflow = self.workflow_of(&run)?;
        let node = workflow.node(&waiting.node).ok_or_else(|| {
            ConductorError::NotFound(format!(
                "the workflow has no node \"{}\" (node run {wfnr})",
                waiting.node
            ))
        })?;
        let done = self.runtime.complete_waiting(node, &waiting, completion);
        match self.store.node_finished(&run, &done).await {
            Err(StoreError::NotInProgress(_)) => return Err(completed(wfnr)),
            other => other?,
        }
        self.observer.node_finished(&done);
        self.resume(&run.identifier)?;
        self.stored_run(&run.identifier)
    }

    /// Appends `logs` to the node run `wfnr` while it is in progress.
    pub fn append_logs(&self, wfnr: &str, logs: &[Value]) -> Result<(), ConductorError> {
        let logs: Vec<Value> = logs
            .iter()
            .map(|line| self.runtime.secrets.redact_json(line.clone()))
            .collect();
        self.waiting_node_run(wfnr)?;
        if !self.store.append_logs(wfnr, &logs)? {
            return Err(completed(wfnr));
        }
        Ok(())
    }

    /// The run and node run `wfnr`, which must wait for a callback.
    fn waiting_node_run(&self, wfnr: &str) -> Result<(WorkflowRun, NodeRun), ConductorError> {
        let owner = self
            .store
            .node_run_owner(wfnr)?
            .ok_or_else(|| ConductorError::NotFound(format!("no node run {wfnr}")))?;
        let run = self.stored_run(&owner)?;
        let node_run = run
            .node_runs
            .iter()
            .find(|n| n.identifier == wfnr)
            .cloned()
            .ok_or_else(|| ConductorError::NotFound(format!("no node run {wfnr}")))?;
        if node_run.status == RunStatus::Completed {
            return Err(completed(wfnr));
        }
        if self.store.callback_token(wfnr)?.is_none() {
            return Err(ConductorError::Conflict(format!(
                "node run {wfnr} is not an asynchronous webhook's: it takes no callback"
            )));
        }
        Ok((run, node_run))
    }

    /// Ends the wait of node run `wfnr` at `deadline_ms` (Unix ms), unless a callback came first.
    fn time_out_at(self: &Arc<Self>, wfnr: String, deadline_ms: u64) {
        let conductor = self.clone();
        tokio::spawn(async move {
            let wait = deadline_ms.saturating_sub(unix_ms());
            tokio::time::sleep(Duration::from_millis(wait)).await;
            match conductor.complete(&wfnr, Completion::TimedOut).await {
                Ok(_) | Err(ConductorError::Conflict(_)) => {}
                Err(e) => tracing::error!(node_run = %wfnr, "timing out: {e}"),
            }
        });
    }

    /// After a restart, every IN_PROGRESS run goes on: a node run waiting for its callback keeps
    /// waiting (its timer set again, its token still good); one cut off mid-request is sent again
    /// or fails (see `Runtime::resume_interrupted`); a run between nodes goes on.
    pub fn recover(self: &Arc<Self>) -> Result<Recovered, StoreError> {
        let mut recovered = Recovered::default();
        let mut waiting = HashSet::new();
        for callback in self.store.waiting_callbacks()? {
            if let Some(deadline) = callback.deadline_ms {
                self.time_out_at(callback.node_run.clone(), deadline);
            }
            waiting.insert(callback.node_run);
        }
        for wfr in self.store.runs_in_progress()? {
            let Some(run) = self.store.run(&wfr)? else {
                continue;
            };
            let cut = run
                .node_runs
                .last()
                .filter(|last| last.status == RunStatus::InProgress);
            if cut.is_some_and(|last| waiting.contains(&last.identifier)) {
                recovered.waiting += 1;
                continue;
            }
            let how = match cut {
                Some(_) => Resume::Interrupted,
                None => Resume::Drive,
            };
            match self.workflow_of(&run) {
                Ok(workflow) => {
                    recovered.resumed += 1;
                    self.spawn_driver(&mut lock(&self.live), workflow, run, how);
                }
                Err(e) => tracing::warn!(run = %wfr, "not resumed: {e}"),
            }
        }
        Ok(recovered)
    }
}

/// Told whether a new run's start was committed.
type OnCommit = Box<dyn FnOnce(Result<&WorkflowRun, StoreError>) + Send>;

/// How a driving task starts.
enum Resume {
    /// A new run: the task commits its start (with its first node run, started), says how that
    /// went, and drives it from that first node run.
    New(OnCommit),
    /// From the run's last completed node run.
    Drive,
    /// The last node run was cut off mid-request by a crash.
    Interrupted,
}

/// What `recover` found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Runs driven on (between nodes, or with a node run cut off mid-request).
    pub resumed: usize,
    /// Runs whose node run waits for its callback.
    pub waiting: usize,
}

/// Runs `work` to its end on a task of its own, even when the caller stops waiting (a client
/// that hung up): a committed state change is always followed by what must come after it (the
/// run driven on), never left alone.
async fn detached<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    match tokio::spawn(work).await {
        Ok(value) => value,
        // The task is never aborted: only a panic ends it early, and it goes on to the caller.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn completed(wfnr: &str) -> ConductorError {
    ConductorError::Conflict(format!("node run {wfnr} has already completed"))
}

/// The store, plus what the conductor keeps in memory about a run it drives.
struct Tracked {
    conductor: Arc<Conductor>,
    cancel: Arc<AtomicBool>,
    /// The run's end has been committed.
    end_committed: AtomicBool,
}

impl Tracked {
    fn end_committed(&self) -> bool {
        self.end_committed.load(Ordering::Acquire)
    }
}

impl RunJournal for Tracked {
    fn run_started<'a>(&'a self, run: &'a WorkflowRun) -> Committed<'a, ()> {
        self.conductor.store.run_started(run)
    }
    fn node_started<'a>(
        &'a self,
        run: &'a WorkflowRun,
        node_run: &'a NodeRun,
    ) -> Committed<'a, ()> {
        self.conductor.store.node_started(run, node_run)
    }
    fn node_restarted<'a>(
        &'a self,
        run: &'a WorkflowRun,
        node_run: &'a NodeRun,
    ) -> Committed<'a, ()> {
        self.conductor.store.node_restarted(run, node_run)
    }
    fn node_finished<'a>(
        &'a self,
        run: &'a WorkflowRun,
        node_run: &'a NodeRun,
    ) -> Committed<'a, ()> {
        Box::pin(async move {
            self.conductor.store.node_finished(run, node_run).await?;
            self.conductor.observer.node_finished(node_run);
            Ok(())
        })
    }
    fn callback_expected<'a>(
        &'a self,
        run: &'a WorkflowRun,
        node_run: &'a NodeRun,
        expected: &'a ExpectedCallback,
    ) -> Committed<'a, ()> {
        Box::pin(async move {
            self.conductor
                .store
                .callback_expected(run, node_run, expected)
                .await?;
            if let Some(deadline) = expected.deadline_ms {
                self.conductor
                    .time_out_at(node_run.identifier.clone(), deadline);
            }
            Ok(())
        })
    }
    fn node_waiting<'a>(
        &'a self,
        run: &'a WorkflowRun,
        node_run: &'a NodeRun,
    ) -> Committed<'a, Option<NodeRun>> {
        self.conductor.store.node_waiting(run, node_run)
    }
    fn run_finished<'a>(
        &'a self,
        run: &'a WorkflowRun,
        last: Option<&'a NodeRun>,
    ) -> Committed<'a, ()> {
        Box::pin(async move {
            self.conductor.store.run_finished(run, last).await?;
            self.end_committed.store(true, Ordering::Release);
            if let Some(last) = last {
                self.conductor.observer.node_finished(last);
            }
            self.conductor.observer.run_finished(run);
            Ok(())
        })
    }
    fn cancel_requested(&self, _run: &str) -> bool {
        self.cancel.load(Ordering::Acquire)
    }
}

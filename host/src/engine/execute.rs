//! Walks one workflow run from its trigger (or from where it stopped) to the end of the chosen
//! path. An asynchronous WEBHOOK stops the walk: its node run waits for a callback, and the walk
//! goes on from there once the callback (or its timeout) has completed it.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::context::template_context;
use super::ids::new_node_run_id;
use super::journal::{ExpectedCallback, NoJournal, RunJournal};
use super::run::{NodeRun, RunResult, RunStatus, WorkflowRun, new_run};
use super::{RegisteredNode, Runtime};
use crate::egress::{BodyBudget, Caller};
use crate::sandbox::{Invocation, cap_error};
use crate::secrets::Bindings;
use crate::store::StoreError;
use crate::template::truthy;
use crate::time::{now, unix_ms};
use crate::workflow::{Callback, Node, NodeKind, OnFailure, Workflow};

/// The secret name the callback token goes by in audit records and masked text.
pub const CALLBACK_TOKEN_SECRET: &str = "airlock-callback-token";

/// How a node run ended, before it is recorded.
struct Step {
    output: Value,
    error: Option<String>,
    logs: Vec<Value>,
    /// An asynchronous webhook's request was accepted: the node run waits for its callback.
    waits: bool,
}

/// Where the walk goes after a node run.
enum After<'w> {
    /// On to this node, or to the end of the path (the run succeeds).
    Next(Option<&'w Node>),
    /// The last node run waits for its callback; the run stays IN_PROGRESS.
    Wait,
    /// The run ends with this result (and a store failure to log, if that is why).
    End(RunResult, Option<String>),
    /// The run has ended, and its end is recorded (with its last node run's, in one change).
    Ended,
}

impl Runtime {
    /// Runs `workflow` from the trigger `trigger` with its `payload` (the inputs of a
    /// SELF_SERVE_TRIGGER or the event of an EVENT_TRIGGER), in memory only. Never fails: a
    /// failing node fails its node run and, unless it continues on failure, the run.
    pub async fn run(&self, workflow: &Workflow, trigger: &Node, payload: Value) -> WorkflowRun {
        let run = self.new_run(workflow, None, trigger, payload);
        self.drive(workflow, run, &NoJournal).await
    }

    /// A new run (see [`new_run`]) whose inputs are stored and printed like any output: no
    /// secret value among them either.
    pub fn new_run(
        &self,
        workflow: &Workflow,
        version: Option<u32>,
        trigger: &Node,
        payload: Value,
    ) -> WorkflowRun {
        new_run(
            workflow,
            version,
            trigger,
            self.secrets.redact_json(payload),
        )
    }

    /// Records a new run (`new_run`) in `journal`, then runs it to its end (or to a node run
    /// that waits for a callback).
    pub async fn run_recorded(
        &self,
        workflow: &Workflow,
        mut run: WorkflowRun,
        journal: &dyn RunJournal,
    ) -> WorkflowRun {
        start_first_node(workflow, &mut run);
        if let Err(e) = journal.run_started(&run).await {
            run.node_runs
                .pop_if(|first| first.status == RunStatus::InProgress);
            return finish(run, RunResult::Failed, Some(e.to_string()), journal).await;
        }
        self.drive_new(workflow, run, journal).await
    }

    /// Runs a new run recorded with its first node run started (see [`start_first_node`]): that
    /// node run is executed, and the walk goes on from it. A cancel that came first ends it
    /// CANCELLED, with the run, in one change.
    pub async fn drive_new(
        &self,
        workflow: &Workflow,
        mut run: WorkflowRun,
        journal: &dyn RunJournal,
    ) -> WorkflowRun {
        let Some(mut first) = run
            .node_runs
            .pop_if(|last| last.status == RunStatus::InProgress)
        else {
            return self.drive(workflow, run, journal).await;
        };
        let node = workflow.node(&first.node);
        let after = match node {
            _ if journal.cancel_requested(&run.identifier) => {
                first.status = RunStatus::Completed;
                first.result = Some(RunResult::Cancelled);
                end_with(workflow, &mut run, first, RunResult::Cancelled, journal).await
            }
            Some(node) => {
                self.execute_node(workflow, node, &mut run, first, journal)
                    .await
            }
            // Not reached: the first node run was started from this workflow.
            None => {
                let error = format!("the workflow has no node \"{}\"", first.node);
                first.fail(error, 0);
                end_with(workflow, &mut run, first, RunResult::Failed, journal).await
            }
        };
        self.walk(workflow, run, after, journal).await
    }

    /// Goes on from the last completed node run of `run` to the end of its path, recording each
    /// change in `journal` before acting on it. Returns the run COMPLETED, or IN_PROGRESS when a
    /// node run waits for its callback.
    pub async fn drive(
        &self,
        workflow: &Workflow,
        run: WorkflowRun,
        journal: &dyn RunJournal,
    ) -> WorkflowRun {
        if run.status == RunStatus::Completed {
            return run;
        }
        let after = resume_point(workflow, &run);
        self.walk(workflow, run, after, journal).await
    }

    /// Goes on with a run whose last node run was cut off by a crash while it ran (its request
    /// may or may not have reached the server): a WEBHOOK with an idempotent method is sent again
    /// (the same node run, one more attempt); anything else fails, saying why, and the run
    /// follows `onFailure`.
    pub async fn resume_interrupted(
        &self,
        workflow: &Workflow,
        mut run: WorkflowRun,
        journal: &dyn RunJournal,
    ) -> WorkflowRun {
        let Some(mut cut) = run
            .node_runs
            .pop_if(|last| last.status == RunStatus::InProgress)
        else {
            return self.drive(workflow, run, journal).await;
        };
        let Some(node) = workflow.node(&cut.node) else {
            let error = format!("the workflow has no node \"{}\"", cut.node);
            run.node_runs.push(cut);
            return finish(run, RunResult::Failed, Some(error), journal).await;
        };
        let after = match resend_method(node) {
            Ok(_) => {
                cut.attempts += 1;
                match journal.node_restarted(&run, &cut).await {
                    Ok(()) => {
                        self.execute_node(workflow, node, &mut run, cut, journal)
                            .await
                    }
                    Err(e) => fail_node(&mut run, cut, e.to_string()),
                }
            }
            Err(why) => {
                let error = format!(
                    "interrupted: airlock stopped while this node run was in flight, and it was not sent again because {why}"
                );
                cut.fail(error, cut.duration_ms);
                match journal.node_finished(&run, &cut).await {
                    Ok(()) => record(workflow, &mut run, cut),
                    Err(e) => fail_node(&mut run, cut, e.to_string()),
                }
            }
        };
        self.walk(workflow, run, after, journal).await
    }

    /// Follows `after` from node to node until the run ends or waits.
    async fn walk<'w>(
        &self,
        workflow: &'w Workflow,
        mut run: WorkflowRun,
        mut after: After<'w>,
        journal: &dyn RunJournal,
    ) -> WorkflowRun {
        loop {
            let node = match after {
                After::Next(Some(node)) => node,
                After::Next(None) => return finish(run, RunResult::Success, None, journal).await,
                After::Wait => return run,
                After::End(result, error) => return finish(run, result, error, journal).await,
                After::Ended => return run,
            };
            if journal.cancel_requested(&run.identifier) {
                return finish(run, RunResult::Cancelled, None, journal).await;
            }
            after = self.node_step(workflow, node, &mut run, journal).await;
        }
    }

    /// Runs `node` as the next node run of `run`, recording its start and its end.
    async fn node_step<'w>(
        &self,
        workflow: &'w Workflow,
        node: &'w Node,
        run: &mut WorkflowRun,
        journal: &dyn RunJournal,
    ) -> After<'w> {
        let mut node_run = NodeRun::started(node, new_node_run_id(), now());
        if let Err(e) = journal.node_started(run, &node_run).await {
            node_run.fail(e.to_string(), 0);
            run.node_runs.push(node_run);
            return After::End(RunResult::Failed, None);
        }
        self.execute_node(workflow, node, run, node_run, journal)
            .await
    }

    /// Runs the started `node_run` of `node` and records how it ended.
    async fn execute_node<'w>(
        &self,
        workflow: &'w Workflow,
        node: &'w Node,
        run: &mut WorkflowRun,
        mut node_run: NodeRun,
        journal: &dyn RunJournal,
    ) -> After<'w> {
        let started = Instant::now();
        let mut bindings = Bindings::new(self.secrets.clone());
        // A static config with no variables reads nothing of the run: its context (a copy of
        // every output so far) is built only for a node that reads it.
        let reads_context = matches!(node.kind, NodeKind::Condition)
            || !node.config_template.is_static()
            || node.variables.is_some();
        let ctx = if reads_context {
            node_context(workflow, run, &node_run, &bindings)
        } else {
            Value::Null
        };
        let step = match &node.kind {
            NodeKind::Condition => condition_step(node, &ctx),
            _ => {
                let at = NodeRunAt {
                    run,
                    node_run: &node_run,
                    journal,
                };
                self.action_step(workflow, node, at, &mut bindings, &ctx)
                    .await
            }
        }
        .scrubbed(&bindings);
        node_run.duration_ms = started.elapsed().as_millis() as u64;
        if step.waits {
            node_run.logs = step.logs;
            return match journal.node_waiting(run, &node_run).await {
                Ok(None) => {
                    run.node_runs.push(node_run);
                    After::Wait
                }
                // The callback came before the request's answer did.
                Ok(Some(completed)) => record(workflow, run, completed),
                Err(e) => fail_node(run, node_run, e.to_string()),
            };
        }
        step.into_node_run(node, &mut node_run);
        // An asynchronous webhook's end may meet its callback's: that check needs its own change.
        if node.callback.is_none()
            && let Some(result) = run_result_after(workflow, &node_run)
        {
            return end_with(workflow, run, node_run, result, journal).await;
        }
        match journal.node_finished(run, &node_run).await {
            Ok(()) => record(workflow, run, node_run),
            // A callback completed the node run while its request was failing: it stands.
            Err(StoreError::NotInProgress(_)) if node.callback.is_some() => {
                match journal.node_waiting(run, &node_run).await {
                    Ok(Some(completed)) => record(workflow, run, completed),
                    _ => fail_node(run, node_run, "the node run ended elsewhere".into()),
                }
            }
            Err(e) => {
                run.node_runs.push(node_run);
                After::End(RunResult::Failed, Some(e.to_string()))
            }
        }
    }

    async fn action_step(
        &self,
        workflow: &Workflow,
        node: &Node,
        at: NodeRunAt<'_>,
        bindings: &mut Bindings,
        ctx: &Value,
    ) -> Step {
        // The invocation moves into the sandbox's future; scoped to this block, it is not also
        // kept beside that future while the node runs.
        let outcome = {
            let (registered, invocation) =
                match self.invocation(workflow, node, at, bindings, ctx).await {
                    Ok(prepared) => prepared,
                    Err(error) => return Step::failed(error),
                };
            self.sandbox
                .run(&registered.component, self.gate.clone(), invocation)
        }
        .await;
        let logs: Vec<Value> = outcome
            .logs
            .iter()
            .map(|line| serde_json::to_value(line).unwrap_or(Value::Null))
            .collect();
        let output = outcome.result.map_err(|f| f.to_string());
        let step = match output {
            // Its output is what the callback brings; the request's answer only said "accepted".
            Ok(_) if node.callback.is_some() => Step {
                waits: true,
                ..Step::done(Value::Null)
            },
            Ok(output) => match apply_variables(node, ctx, output) {
                Ok(output) => Step::done(output),
                Err(error) => Step::failed(error),
            },
            Err(error) => Step::failed(error),
        };
        Step { logs, ..step }
    }

    /// Renders the node's config and sets up its egress: the secrets it may use, its limits,
    /// and for an asynchronous webhook the callback headers (its token stored hashed first).
    async fn invocation(
        &self,
        workflow: &Workflow,
        node: &Node,
        at: NodeRunAt<'_>,
        bindings: &mut Bindings,
        ctx: &Value,
    ) -> Result<(&RegisteredNode, Invocation), String> {
        let type_name = node.kind.type_name();
        let registered = self
            .nodes
            .get(type_name)
            .ok_or_else(|| format!("no node component serves type {type_name}"))?;
        let config = match (&node.callback, node.config_template.static_text()) {
            (None, Some(text)) => text.to_owned(),
            (callback, _) => {
                let mut config = node
                    .config_template
                    .render(ctx)
                    .map_err(|e| format!("node \"{}\": {e}", node.identifier))?;
                if let Some(callback) = callback {
                    self.expect_callback(node, callback, at, bindings, &mut config)
                        .await?;
                }
                config.to_string()
            }
        };
        if let Some(key) = &self.platform_key {
            bindings.bind_run_token(key, &at.run.identifier);
        }
        bindings.retain_used(&config);
        // Validation checks the secrets a config names; this also catches dynamic references.
        let used = bindings.used_in(config.as_bytes());
        registered
            .check_secrets(&node.identifier, &used)
            .map_err(|e| e.to_string())?;
        let limits = self.limits.for_node(
            &node.identifier,
            registered.limits.as_ref().unwrap_or(self.limits.defaults()),
        );
        let caller = Caller {
            run: at.run.identifier.clone(),
            node_run: at.node_run.identifier.clone(),
            node: node.identifier.clone(),
            component: registered.component.digest().to_string(),
            bindings: Arc::new(bindings.clone()),
            requests_made: AtomicU32::new(0),
            node_allow: registered.egress_allow(),
            buffers: BodyBudget::new(limits.memory_bytes),
            flights: Arc::default(),
            carried_value: Arc::default(),
        };
        let invocation = Invocation {
            workflow: workflow.identifier.clone(),
            node: node.identifier.clone(),
            config,
            caller,
            limits,
        };
        Ok((registered, invocation))
    }

    /// Adds the callback headers to an asynchronous webhook's rendered config; the token is a
    /// handle the gate swaps for the token at send time, and only its hash is stored.
    async fn expect_callback(
        &self,
        node: &Node,
        callback: &Callback,
        at: NodeRunAt<'_>,
        bindings: &mut Bindings,
        config: &mut Value,
    ) -> Result<(), String> {
        let base = self.callback_base.as_deref().ok_or_else(|| {
            format!(
                "node \"{}\": an asynchronous webhook needs a callback listener (airlock serve, or airlock run)",
                node.identifier
            )
        })?;
        let token = bindings.bind_token(CALLBACK_TOKEN_SECRET);
        let expected = ExpectedCallback {
            token_sha256: token.sha256,
            deadline_ms: callback.timeout_ms.map(|ms| unix_ms() + ms),
        };
        at.journal
            .callback_expected(at.run, at.node_run, &expected)
            .await
            .map_err(|e| e.to_string())?;
        let node_run = &at.node_run.identifier;
        let headers = [
            ("Airlock-Run", at.run.identifier.clone()),
            ("Airlock-Node-Run", node_run.clone()),
            (
                "Airlock-Callback-Url",
                format!(
                    "{}/v1/workflows/nodes/runs/{node_run}",
                    base.trim_end_matches('/')
                ),
            ),
            ("Airlock-Callback-Token", token.handle),
        ];
        let fields = config
            .as_object_mut()
            .ok_or_else(|| format!("node \"{}\": the config is not an object", node.identifier))?;
        let entry = fields
            .entry("headers")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(map) = entry {
            // The host's headers replace any of the same name the workflow wrote.
            map.retain(|name, _| !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(name)));
            for (name, value) in headers {
                map.insert(name.to_owned(), Value::String(value));
            }
        }
        Ok(())
    }
}

/// The run, node run and journal an action runs under.
#[derive(Clone, Copy)]
struct NodeRunAt<'a> {
    run: &'a WorkflowRun,
    node_run: &'a NodeRun,
    journal: &'a dyn RunJournal,
}

/// A node run cut short by the store: it fails, and so does the run.
fn fail_node<'w>(run: &mut WorkflowRun, mut node_run: NodeRun, error: String) -> After<'w> {
    node_run.fail(error.clone(), node_run.duration_ms);
    run.node_runs.push(node_run);
    After::End(RunResult::Failed, Some(error))
}

fn node_context(
    workflow: &Workflow,
    run: &WorkflowRun,
    node_run: &NodeRun,
    bindings: &Bindings,
) -> Value {
    let workflow_ctx = json!({ "identifier": workflow.identifier, "title": workflow.title, "versionIdentifier": run.workflow_version });
    let run_ctx = json!({
        "identifier": run.identifier,
        "createdAt": run.created_at,
        "trigger": run.trigger,
    });
    template_context(
        &workflow_ctx,
        &run_ctx,
        &run.outputs().to_map(),
        bindings.context_object(),
        &node_run.identifier,
        &node_run.created_at,
    )
}

/// Takes a completed node run into `run` (its output becomes `.outputs.<node>`), and says where
/// the walk goes next.
fn record<'w>(workflow: &'w Workflow, run: &mut WorkflowRun, completed: NodeRun) -> After<'w> {
    match run
        .node_runs
        .iter_mut()
        .find(|n| n.identifier == completed.identifier)
    {
        Some(slot) => *slot = completed,
        None => run.node_runs.push(completed),
    }
    match run.node_runs.last() {
        Some(last) => after(workflow, last),
        None => After::End(RunResult::Failed, None),
    }
}

/// Why a node run cut off mid-request may not be sent again: only a WEBHOOK says what its request
/// is, and only GET, HEAD, PUT, DELETE and OPTIONS mean the same when sent twice.
fn resend_method(node: &Node) -> Result<&str, String> {
    if node.kind != NodeKind::Webhook {
        return Err(format!(
            "a {} node's requests are not known to be idempotent",
            node.kind.type_name()
        ));
    }
    let method = node
        .config
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("POST");
    match method {
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" => Ok(method),
        other => Err(format!("{other} is not idempotent")),
    }
}

/// Starts the first node run of the new `run`, when its trigger leads to a node: recorded with
/// the run's start, the two take one change instead of two. [`Runtime::drive_new`] runs it.
pub fn start_first_node(workflow: &Workflow, run: &mut WorkflowRun) {
    if let After::Next(Some(node)) = resume_point(workflow, run) {
        run.node_runs
            .push(NodeRun::started(node, new_node_run_id(), now()));
    }
}

/// Where a run goes on from: after its last node run (the trigger's, for a new run).
fn resume_point<'w>(workflow: &'w Workflow, run: &WorkflowRun) -> After<'w> {
    match run.node_runs.last() {
        Some(last) if last.status == RunStatus::InProgress => After::Wait,
        Some(last) => after(workflow, last),
        None => After::End(RunResult::Failed, Some("the run has no trigger".into())),
    }
}

/// Where the walk goes after the completed node run `last`.
fn after<'w>(workflow: &'w Workflow, last: &NodeRun) -> After<'w> {
    let Some(node) = workflow.node(&last.node) else {
        return After::End(
            RunResult::Failed,
            Some(format!("the workflow has no node \"{}\"", last.node)),
        );
    };
    let failed = last.result != Some(RunResult::Success);
    if failed && node.on_failure == OnFailure::Terminate {
        return After::End(RunResult::Failed, None);
    }
    if node.kind == NodeKind::Condition && !failed {
        let outlet = last.output.get("outlet").and_then(Value::as_str);
        return After::Next(workflow.next_from_condition(&node.identifier, outlet));
    }
    After::Next(workflow.next(&node.identifier))
}

/// The result of the run if the completed `last` ends it (None: the run goes on, waits, or ends
/// for a reason that needs logging).
fn run_result_after(workflow: &Workflow, last: &NodeRun) -> Option<RunResult> {
    match after(workflow, last) {
        After::Next(None) => Some(RunResult::Success),
        After::End(result, None) => Some(result),
        _ => None,
    }
}

/// Completes the run with `result`; `error` (a store failure) is logged, as there is no node run
/// to carry it.
async fn finish(
    mut run: WorkflowRun,
    result: RunResult,
    error: Option<String>,
    journal: &dyn RunJournal,
) -> WorkflowRun {
    if let Some(error) = error {
        tracing::error!(run = %run.identifier, "{error}");
    }
    complete(&mut run, result);
    if let Err(e) = journal.run_finished(&run, None).await {
        tracing::error!(run = %run.identifier, "{e}");
    }
    run
}

/// Records the end of `last` and of the run it ends with `result`, in one change (nothing acts
/// between the two). If that change fails, the run fails as when a node run's end fails to
/// commit: `finish` then records the run's end alone.
async fn end_with<'w>(
    workflow: &'w Workflow,
    run: &mut WorkflowRun,
    last: NodeRun,
    result: RunResult,
    journal: &dyn RunJournal,
) -> After<'w> {
    complete(run, result);
    match journal.run_finished(run, Some(&last)).await {
        Ok(()) => {
            record(workflow, run, last);
            After::Ended
        }
        Err(e) => {
            run.node_runs.push(last);
            After::End(RunResult::Failed, Some(e.to_string()))
        }
    }
}

fn complete(run: &mut WorkflowRun, result: RunResult) {
    run.status = RunStatus::Completed;
    run.result = Some(result);
    run.finished_at = Some(now());
}

impl Step {
    fn done(output: Value) -> Step {
        Step {
            output,
            error: None,
            logs: Vec::new(),
            waits: false,
        }
    }

    fn failed(error: String) -> Step {
        Step {
            output: Value::Null,
            error: Some(error),
            logs: Vec::new(),
            waits: false,
        }
    }

    /// Everything a node run leaves behind (its output, error and logs) goes to later nodes, the
    /// run store and stdout: no secret value in any recognised encoding, and no handle either
    /// (handles are not secrets, but they mean nothing outside their node run: show names).
    fn scrubbed(self, bindings: &Bindings) -> Step {
        Step {
            output: bindings.scrub_json(self.output),
            error: self.error.map(|error| cap_error(&bindings.scrub(&error))),
            logs: self
                .logs
                .into_iter()
                .map(|line| bindings.scrub_json(line))
                .collect(),
            waits: self.waits,
        }
    }

    /// Completes `node_run` with this step: a failure that continues leaves
    /// `{"error": {"message"}}` as the output.
    fn into_node_run(self, node: &Node, node_run: &mut NodeRun) {
        let failed = self.error.is_some();
        node_run.output = if failed && node.on_failure == OnFailure::Continue {
            json!({ "error": { "message": self.error } })
        } else {
            self.output
        };
        node_run.status = RunStatus::Completed;
        node_run.result = Some(if failed {
            RunResult::Failed
        } else {
            RunResult::Success
        });
        node_run.error = self.error;
        node_run.logs = self.logs;
    }
}

/// A node's `variables`, when present, replace its output; each is evaluated with `.result`
/// bound to the raw output (and the usual context alongside).
fn apply_variables(node: &Node, ctx: &Value, output: Value) -> Result<Value, String> {
    let Some(variables) = &node.variables else {
        return Ok(output);
    };
    let mut input = ctx.clone();
    if let Value::Object(fields) = &mut input {
        fields.insert("result".into(), output);
    }
    let mut replaced = Map::new();
    for (name, expr) in variables {
        let value = expr
            .eval(&input)
            .map_err(|e| format!("node \"{}\": {e}", node.identifier))?;
        replaced.insert(name.clone(), value);
    }
    Ok(Value::Object(replaced))
}

/// First outlet whose expression is true wins; else the fallback (outlet None).
fn condition_step(node: &Node, ctx: &Value) -> Step {
    for outlet in &node.outlets {
        match outlet.expression.eval(ctx) {
            Ok(value) if truthy(&value) => {
                return Step::done(json!({ "outlet": outlet.identifier }));
            }
            Ok(_) => {}
            Err(e) => {
                return Step::failed(format!("node \"{}\": {e}", node.identifier));
            }
        }
    }
    Step::done(json!({ "outlet": null, "fallback": true }))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::config::PolicyFile;
    use crate::engine::StateDir;
    use crate::engine::journal::Committed;
    use crate::sandbox::Slots;
    use crate::secrets::SecretStore;

    /// A journal whose run was cancelled before its driver began; it keeps each run end.
    #[derive(Default)]
    struct CancelledAtOnce {
        ends: Mutex<Vec<(Option<RunResult>, Option<NodeRun>)>>,
    }

    fn ok<'a, T: Send + 'a>(value: T) -> Committed<'a, T> {
        Box::pin(std::future::ready(Ok(value)))
    }

    impl RunJournal for CancelledAtOnce {
        fn run_started<'a>(&'a self, _: &'a WorkflowRun) -> Committed<'a, ()> {
            ok(())
        }
        fn node_started<'a>(&'a self, _: &'a WorkflowRun, _: &'a NodeRun) -> Committed<'a, ()> {
            ok(())
        }
        fn node_restarted<'a>(&'a self, _: &'a WorkflowRun, _: &'a NodeRun) -> Committed<'a, ()> {
            ok(())
        }
        fn node_finished<'a>(&'a self, _: &'a WorkflowRun, _: &'a NodeRun) -> Committed<'a, ()> {
            ok(())
        }
        fn callback_expected<'a>(
            &'a self,
            _: &'a WorkflowRun,
            _: &'a NodeRun,
            _: &'a ExpectedCallback,
        ) -> Committed<'a, ()> {
            ok(())
        }
        fn node_waiting<'a>(
            &'a self,
            _: &'a WorkflowRun,
            _: &'a NodeRun,
        ) -> Committed<'a, Option<NodeRun>> {
            ok(None)
        }
        fn run_finished<'a>(
            &'a self,
            run: &'a WorkflowRun,
            last: Option<&'a NodeRun>,
        ) -> Committed<'a, ()> {
            self.ends.lock().unwrap().push((run.result, last.cloned()));
            ok(())
        }
        fn cancel_requested(&self, _run: &str) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_cancel_before_the_first_node_run_ends_it_with_the_run_in_one_change() {
        let state = tempfile::tempdir().unwrap();
        let policy = PolicyFile::parse("", "policy").unwrap();
        let state = StateDir::new(state.path());
        let runtime = Runtime::open(&state, policy, SecretStore::empty(), Slots::new(2)).unwrap();
        let text = json!({
            "identifier": "cancelled",
            "nodes": [
                {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
                {"identifier": "route", "config": {"type": "CONDITION", "outlets": [
                    {"identifier": "yes", "expression": "true"}]}}
            ],
            "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "route"}]
        });
        let workflow = Workflow::from_json(&text.to_string(), "test", &[]).unwrap();
        let run = runtime.new_run(
            &workflow,
            None,
            workflow.node("trigger").unwrap(),
            json!({}),
        );
        let journal = CancelledAtOnce::default();

        let run = runtime.run_recorded(&workflow, run, &journal).await;

        assert_eq!(run.result, Some(RunResult::Cancelled));
        let first = &run.node_runs[1];
        assert_eq!(first.node, "route");
        assert_eq!(first.status, RunStatus::Completed);
        assert_eq!(first.result, Some(RunResult::Cancelled));
        let ends = journal.ends.lock().unwrap();
        assert_eq!(ends.len(), 1, "one change ends both");
        assert_eq!(ends[0].0, Some(RunResult::Cancelled));
        let last = ends[0]
            .1
            .as_ref()
            .expect("the first node run ends with the run");
        assert_eq!(last.identifier, first.identifier);
        assert_eq!(last.result, Some(RunResult::Cancelled));
    }
}

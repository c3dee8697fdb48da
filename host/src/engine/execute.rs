//! Walks one workflow run from its trigger to the end of the chosen path.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::Runtime;
use super::context::template_context;
use super::ids::new_node_run_id;
use super::journal::{NoJournal, RunJournal};
use super::run::{NodeRun, RunResult, RunStatus, WorkflowRun, new_run};
use crate::egress::{BodyBudget, Caller};
use crate::sandbox::{Invocation, cap_error};
use crate::secrets::Bindings;
use crate::template::truthy;
use crate::time::now;
use crate::workflow::{Node, NodeKind, OnFailure, Workflow};

/// How a node run ended, before it is recorded.
struct Step {
    output: Value,
    error: Option<String>,
    logs: Vec<Value>,
    /// The CONDITION's chosen outlet (None = fallback), for the walk.
    outlet: Option<Option<String>>,
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

    /// Records a new run (`new_run`) in `journal`, then runs it to its end.
    pub async fn run_recorded(
        &self,
        workflow: &Workflow,
        run: WorkflowRun,
        journal: &dyn RunJournal,
    ) -> WorkflowRun {
        if let Err(e) = journal.run_started(&run) {
            return finish(run, RunResult::Failed, Some(e.to_string()), journal);
        }
        self.drive(workflow, run, journal).await
    }

    /// Goes on from the last completed node run of `run` to the end of its path, recording each
    /// change in `journal` before acting on it.
    pub async fn drive(
        &self,
        workflow: &Workflow,
        mut run: WorkflowRun,
        journal: &dyn RunJournal,
    ) -> WorkflowRun {
        let workflow_ctx = json!({ "identifier": workflow.identifier, "title": workflow.title, "versionIdentifier": run.workflow_version });
        let run_ctx = json!({
            "identifier": run.identifier,
            "createdAt": run.created_at,
            "trigger": run.trigger,
        });
        let mut current = next_after(workflow, &run);
        while let Some(node) = current {
            if journal.cancel_requested(&run.identifier) {
                return finish(run, RunResult::Cancelled, None, journal);
            }
            let mut node_run = NodeRun::started(node, new_node_run_id(), now());
            if let Err(e) = journal.node_started(&run, &node_run) {
                node_run.fail(e.to_string(), 0);
                run.node_runs.push(node_run);
                return finish(run, RunResult::Failed, None, journal);
            }
            let started = Instant::now();
            let mut bindings = Bindings::new(self.secrets.clone());
            let ctx = template_context(
                &workflow_ctx,
                &run_ctx,
                &run.outputs,
                bindings.context_object(),
                &node_run.identifier,
                &node_run.created_at,
            );
            let step = match &node.kind {
                NodeKind::Condition => condition_step(node, &ctx),
                _ => {
                    self.action_step(
                        workflow,
                        node,
                        &run.identifier,
                        &node_run.identifier,
                        &mut bindings,
                        &ctx,
                    )
                    .await
                }
            }
            .scrubbed(&bindings);
            let failed = step.error.is_some();
            let output = if failed && node.on_failure == OnFailure::Continue {
                json!({ "error": { "message": step.error } })
            } else {
                step.output
            };
            run.outputs.insert(node.identifier.clone(), output.clone());
            node_run.status = RunStatus::Completed;
            node_run.result = Some(if failed {
                RunResult::Failed
            } else {
                RunResult::Success
            });
            node_run.output = output;
            node_run.error = step.error;
            node_run.logs = step.logs;
            node_run.duration_ms = started.elapsed().as_millis() as u64;
            run.node_runs.push(node_run);
            if let Some(recorded) = run.node_runs.last()
                && let Err(e) = journal.node_finished(&run, recorded)
            {
                return finish(run, RunResult::Failed, Some(e.to_string()), journal);
            }
            if failed && node.on_failure == OnFailure::Terminate {
                return finish(run, RunResult::Failed, None, journal);
            }
            current = match step.outlet {
                Some(outlet) => workflow.next_from_condition(&node.identifier, outlet.as_deref()),
                None => workflow.next(&node.identifier),
            };
        }
        finish(run, RunResult::Success, None, journal)
    }

    async fn action_step(
        &self,
        workflow: &Workflow,
        node: &Node,
        run_id: &str,
        node_run_id: &str,
        bindings: &mut Bindings,
        ctx: &Value,
    ) -> Step {
        let fail = |error: String| Step {
            output: Value::Null,
            error: Some(error),
            logs: Vec::new(),
            outlet: None,
        };
        let type_name = node.kind.type_name();
        let Some(registered) = self.nodes.get(type_name) else {
            return fail(format!("no node component serves type {type_name}"));
        };
        let component = &registered.component;
        let config = match node.config_template.render(ctx) {
            Ok(config) => config,
            Err(e) => return fail(format!("node \"{}\": {e}", node.identifier)),
        };
        let config = config.to_string();
        bindings.retain_used(&config);
        // Validation checks the secrets a config names; this also catches dynamic references.
        let used = bindings.used_in(config.as_bytes());
        if let Err(e) = registered.check_secrets(&node.identifier, &used) {
            return fail(e.to_string());
        }
        let limits = self.limits.for_node(
            &node.identifier,
            registered.limits.as_ref().unwrap_or(self.limits.defaults()),
        );
        let caller = Caller {
            run: run_id.to_string(),
            node_run: node_run_id.to_string(),
            node: node.identifier.clone(),
            component: component.digest().to_string(),
            bindings: Arc::new(bindings.clone()),
            requests_made: AtomicU32::new(0),
            node_allow: registered.egress_allow(),
            buffers: BodyBudget::new(limits.memory_bytes),
            flights: Arc::default(),
        };
        let invocation = Invocation {
            workflow: workflow.identifier.clone(),
            node: node.identifier.clone(),
            config,
            caller,
            limits,
        };
        let outcome = self
            .sandbox
            .run(component, self.gate.clone(), invocation)
            .await;
        let logs = outcome
            .logs
            .iter()
            .map(|line| serde_json::to_value(line).unwrap_or(Value::Null))
            .collect();
        let output = match outcome.result {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(output) => output,
                Err(e) => {
                    return Step {
                        logs,
                        ..fail(format!("the node returned invalid JSON: {e}"))
                    };
                }
            },
            Err(message) => {
                return Step {
                    logs,
                    ..fail(message.to_string())
                };
            }
        };
        match apply_variables(node, ctx, output) {
            Ok(output) => Step {
                output,
                error: None,
                logs,
                outlet: None,
            },
            Err(error) => Step {
                logs,
                ..fail(error)
            },
        }
    }
}

/// Completes the run with `result`; `error` (a store failure) is logged, as there is no node run
/// to carry it.
fn finish(
    mut run: WorkflowRun,
    result: RunResult,
    error: Option<String>,
    journal: &dyn RunJournal,
) -> WorkflowRun {
    if let Some(error) = error {
        tracing::error!(run = %run.identifier, "{error}");
    }
    run.status = RunStatus::Completed;
    run.result = Some(result);
    run.finished_at = Some(now());
    if let Err(e) = journal.run_finished(&run) {
        tracing::error!(run = %run.identifier, "{e}");
    }
    run
}

/// The node after the last node run of `run` (the trigger's, for a new run), if the path goes on.
fn next_after<'w>(workflow: &'w Workflow, run: &WorkflowRun) -> Option<&'w Node> {
    let last = run.node_runs.last()?;
    let node = workflow.node(&last.node)?;
    if node.kind == NodeKind::Condition {
        let outlet = last.output.get("outlet").and_then(Value::as_str);
        return workflow.next_from_condition(&node.identifier, outlet);
    }
    workflow.next(&node.identifier)
}

impl Step {
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
            outlet: self.outlet,
        }
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
                return Step {
                    output: json!({ "outlet": outlet.identifier }),
                    error: None,
                    logs: Vec::new(),
                    outlet: Some(Some(outlet.identifier.clone())),
                };
            }
            Ok(_) => {}
            Err(e) => {
                return Step {
                    output: Value::Null,
                    error: Some(format!("node \"{}\": {e}", node.identifier)),
                    logs: Vec::new(),
                    outlet: None,
                };
            }
        }
    }
    Step {
        output: json!({ "outlet": null, "fallback": true }),
        error: None,
        logs: Vec::new(),
        outlet: Some(None),
    }
}

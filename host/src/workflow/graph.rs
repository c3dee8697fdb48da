//! Connections and the checks that need the whole graph: endpoints, fan-out, outlets, cycles,
//! reachability, and whether each `.outputs.X` reference can have run before its reader.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::Value;

use super::error::{Problems, child, index};
use super::fields::Fields;
use super::model::{Connection, NodeKind};
use super::node::{NodeDraft, TRIGGER_ALIAS};

const CONNECTION_KEYS: &[&str] = &[
    "sourceIdentifier",
    "targetIdentifier",
    "sourceOutletIdentifier",
    "fallback",
    "description",
];

/// Which of its source's branches a connection leaves by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Branch {
    Next,
    Outlet(String),
    Fallback,
}

/// An edge between two existing, distinct nodes (indexes into the drafts).
struct Edge {
    /// Index in `connections[]`, for problem paths.
    connection: usize,
    source: usize,
    target: usize,
    branch: Branch,
}

/// Validates `connections` against the nodes; returns the parsed connections (complete only when
/// no problem was recorded).
pub(super) fn check(
    connections: Option<&Value>,
    drafts: &[NodeDraft],
    problems: &mut Problems,
) -> Vec<Connection> {
    let ids: HashMap<&str, usize> = drafts
        .iter()
        .enumerate()
        .rev() // so the first of duplicated identifiers wins
        .filter_map(|(i, draft)| Some((draft.id.as_deref()?, i)))
        .collect();
    let items: &[Value] = match connections {
        None => &[],
        Some(Value::Array(items)) => items,
        Some(_) => {
            problems.push("$.connections", None, "\"connections\" must be an array");
            &[]
        }
    };
    let mut parsed = Vec::with_capacity(items.len());
    let mut edges = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = index("$.connections", i);
        if let Some((connection, edge)) = connection(i, &path, item, &ids, drafts, problems) {
            edges.extend(edge);
            parsed.push(connection);
        }
    }
    branching(&edges, drafts, problems);
    let adjacency = adjacency(drafts.len(), &edges);
    cycle(&adjacency, &edges, drafts, problems);
    reachability(&adjacency, drafts, problems);
    references(&adjacency, &ids, drafts, problems);
    parsed
}

fn connection(
    i: usize,
    path: &str,
    item: &Value,
    ids: &HashMap<&str, usize>,
    drafts: &[NodeDraft],
    problems: &mut Problems,
) -> Option<(Connection, Option<Edge>)> {
    let Value::Object(map) = item else {
        problems.push(path, None, "a connection must be an object");
        return None;
    };
    let fields = Fields::new(map, path, None);
    fields.reject_unknown(CONNECTION_KEYS, "a connection", problems);
    let source = fields.required_string("sourceIdentifier", problems);
    let target = fields.required_string("targetIdentifier", problems);
    let outlet = fields.string("sourceOutletIdentifier", problems);
    let fallback = fields.bool("fallback", problems);
    let description = fields.string("description", problems);
    let (source, target) = (source?, target?);

    let source_index = endpoint(&fields, "sourceIdentifier", source, ids, problems);
    let target_index = endpoint(&fields, "targetIdentifier", target, ids, problems);
    let connection = Connection {
        source: source.to_owned(),
        target: target.to_owned(),
        outlet: outlet.map(str::to_owned),
        fallback: fallback == Some(true),
        description: description.map(str::to_owned),
    };
    if source == target {
        problems.push(path, Some(source), "a node cannot connect to itself");
        return Some((connection, None));
    }
    let (Some(source_index), Some(target_index)) = (source_index, target_index) else {
        return Some((connection, None));
    };
    if drafts[target_index]
        .kind
        .as_ref()
        .is_some_and(NodeKind::is_trigger)
    {
        problems.push(
            fields.path_of("targetIdentifier"),
            Some(target),
            "a trigger cannot be the target of a connection",
        );
    }
    outlet_rules(&fields, &connection, &drafts[source_index], problems);
    let edge = Edge {
        connection: i,
        source: source_index,
        target: target_index,
        branch: branch_of(&connection),
    };
    Some((connection, Some(edge)))
}

fn branch_of(connection: &Connection) -> Branch {
    match (&connection.outlet, connection.fallback) {
        (Some(outlet), false) => Branch::Outlet(outlet.clone()),
        (None, true) => Branch::Fallback,
        // Both set is reported by `outlet_rules`; it has no single branch to compete for.
        _ => Branch::Next,
    }
}

/// The index of the node a connection names in `key`, or a problem saying there is none.
fn endpoint(
    fields: &Fields<'_>,
    key: &str,
    id: &str,
    ids: &HashMap<&str, usize>,
    problems: &mut Problems,
) -> Option<usize> {
    let found = ids.get(id).copied();
    if found.is_none() {
        problems.push(
            fields.path_of(key),
            None,
            format!("there is no node \"{id}\""),
        );
    }
    found
}

/// A connection leaves a CONDITION by exactly one of an existing outlet or the fallback, and
/// leaves any other node by neither.
fn outlet_rules(
    fields: &Fields<'_>,
    connection: &Connection,
    source: &NodeDraft,
    problems: &mut Problems,
) {
    let id = Some(connection.source.as_str());
    let outlet = connection.outlet.as_deref();
    match &source.kind {
        Some(NodeKind::Condition) => {
            let message = match (outlet, connection.fallback) {
                (Some(_), true) => {
                    "takes \"sourceOutletIdentifier\" or \"fallback\": true, not both"
                }
                (None, false) => "needs \"sourceOutletIdentifier\" or \"fallback\": true",
                (Some(outlet), false) if !source.outlets.iter().any(|known| known == outlet) => {
                    let message =
                        format!("node \"{}\" has no outlet \"{outlet}\"", connection.source);
                    problems.push(fields.path_of("sourceOutletIdentifier"), id, message);
                    return;
                }
                _ => return,
            };
            problems.push(
                fields.path,
                id,
                format!("a connection from a CONDITION {message}"),
            );
        }
        Some(kind) => {
            let set = [
                ("sourceOutletIdentifier", outlet.is_some()),
                ("fallback", connection.fallback),
            ];
            for (key, _) in set.into_iter().filter(|(_, set)| *set) {
                let message = format!(
                    "\"{key}\" is only for connections from a CONDITION; \"{}\" is a {}",
                    connection.source,
                    kind.type_name()
                );
                problems.push(fields.path_of(key), id, message);
            }
        }
        None => {}
    }
}

/// One next node per non-CONDITION node; one connection per outlet and one fallback per CONDITION.
fn branching(edges: &[Edge], drafts: &[NodeDraft], problems: &mut Problems) {
    let mut first: HashMap<(usize, &Branch), &Edge> = HashMap::new();
    for edge in edges {
        let source = &drafts[edge.source];
        let branch = match source.kind {
            // A CONDITION connection with neither or both of outlet and fallback was reported.
            Some(NodeKind::Condition) if edge.branch == Branch::Next => continue,
            Some(NodeKind::Condition) => &edge.branch,
            _ => &Branch::Next,
        };
        let Some(earlier) = first.get(&(edge.source, branch)) else {
            first.insert((edge.source, branch), edge);
            continue;
        };
        let id = source.id.as_deref().unwrap_or_default();
        let earlier_path = index("$.connections", earlier.connection);
        let message = match branch {
            Branch::Next => format!(
                "\"{id}\" already connects to \"{}\" ({earlier_path}); only a CONDITION may branch",
                drafts[earlier.target].id.as_deref().unwrap_or_default()
            ),
            Branch::Outlet(outlet) => {
                format!("outlet \"{outlet}\" of \"{id}\" is already connected ({earlier_path})")
            }
            Branch::Fallback => {
                format!("\"{id}\" already has a fallback connection ({earlier_path})")
            }
        };
        problems.push(index("$.connections", edge.connection), Some(id), message);
    }
}

/// Successors of each node, with the edge that leads there.
fn adjacency(nodes: usize, edges: &[Edge]) -> Vec<Vec<(usize, usize)>> {
    let mut adjacency = vec![Vec::new(); nodes];
    for (i, edge) in edges.iter().enumerate() {
        adjacency[edge.source].push((edge.target, i));
    }
    adjacency
}

fn name(drafts: &[NodeDraft], i: usize) -> &str {
    drafts[i].id.as_deref().unwrap_or_default()
}

/// Reports the first cycle found, as the path of nodes it goes through. Iterative, so a huge file
/// cannot overflow the stack.
fn cycle(
    adjacency: &[Vec<(usize, usize)>],
    edges: &[Edge],
    drafts: &[NodeDraft],
    problems: &mut Problems,
) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; adjacency.len()];
    for start in 0..adjacency.len() {
        if marks[start] != Mark::New {
            continue;
        }
        marks[start] = Mark::Open;
        let mut stack = vec![(start, 0)];
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            let Some(&(next, edge)) = adjacency[node].get(top.1) else {
                marks[node] = Mark::Done;
                stack.pop();
                continue;
            };
            top.1 += 1;
            match marks[next] {
                Mark::New => {
                    marks[next] = Mark::Open;
                    stack.push((next, 0));
                }
                Mark::Open => {
                    let from = stack
                        .iter()
                        .position(|(open, _)| *open == next)
                        .unwrap_or_default();
                    let mut path: Vec<&str> = stack[from..]
                        .iter()
                        .map(|(open, _)| name(drafts, *open))
                        .collect();
                    path.push(name(drafts, next));
                    problems.push(
                        index("$.connections", edges[edge].connection),
                        Some(name(drafts, next)),
                        format!("connections form a cycle: {}", path.join(" -> ")),
                    );
                    return;
                }
                Mark::Done => {}
            }
        }
    }
}

/// Every node reachable from `starts` (the starts included).
fn reachable(
    adjacency: &[Vec<(usize, usize)>],
    starts: impl IntoIterator<Item = usize>,
) -> Vec<bool> {
    let mut seen = vec![false; adjacency.len()];
    let mut queue: VecDeque<usize> = starts.into_iter().collect();
    while let Some(node) = queue.pop_front() {
        if std::mem::replace(&mut seen[node], true) {
            continue;
        }
        queue.extend(
            adjacency[node]
                .iter()
                .map(|(next, _)| *next)
                .filter(|next| !seen[*next]),
        );
    }
    seen
}

fn reachability(adjacency: &[Vec<(usize, usize)>], drafts: &[NodeDraft], problems: &mut Problems) {
    let is_trigger = |draft: &NodeDraft| draft.kind.as_ref().is_some_and(NodeKind::is_trigger);
    let triggers: Vec<usize> = (0..drafts.len())
        .filter(|i| is_trigger(&drafts[*i]))
        .collect();
    if triggers.is_empty() {
        if drafts.is_empty() {
            return; // "no nodes" says it already
        }
        problems.push(
            "$.nodes",
            None,
            format!(
                "the workflow needs a trigger node ({} or {})",
                NodeKind::SELF_SERVE_TRIGGER,
                NodeKind::EVENT_TRIGGER
            ),
        );
        return;
    }
    let seen = reachable(adjacency, triggers);
    for (draft, seen) in drafts.iter().zip(seen) {
        // Nodes of unknown type or identifier were reported already, and may be meant as triggers.
        if seen || draft.kind.is_none() {
            continue;
        }
        if let Some(id) = draft.id.as_deref() {
            problems.push(
                &draft.path,
                Some(id),
                "no connection path leads here from a trigger, so it would never run",
            );
        }
    }
}

/// A node may only read the outputs of its ancestors: the nodes that always or possibly ran
/// before it.
fn references(
    adjacency: &[Vec<(usize, usize)>],
    ids: &HashMap<&str, usize>,
    drafts: &[NodeDraft],
    problems: &mut Problems,
) {
    let mut predecessors = vec![Vec::new(); adjacency.len()];
    for (source, targets) in adjacency.iter().enumerate() {
        for (target, edge) in targets {
            predecessors[*target].push((source, *edge));
        }
    }
    for (i, draft) in drafts.iter().enumerate() {
        if draft.references.is_empty() {
            continue;
        }
        let node = draft.id.as_deref();
        let starts = predecessors[i].iter().map(|(source, _)| *source);
        let ancestors = reachable(&predecessors, starts);
        let mut reported = HashSet::new();
        for reference in &draft.references {
            let output = reference.output.as_str();
            if output == TRIGGER_ALIAS || !reported.insert((&reference.path, output)) {
                continue;
            }
            let shown = child(".outputs", output);
            match ids.get(output) {
                None => {
                    let message =
                        format!("{shown} refers to no node: there is no node \"{output}\"");
                    problems.push(&reference.path, node, message);
                }
                Some(&source) if !ancestors[source] => {
                    let message = format!(
                        "{shown} refers to node \"{output}\", which cannot have run before this \
                         node (no connection path leads from it to here)"
                    );
                    problems.push(&reference.path, node, message);
                }
                Some(_) => {}
            }
        }
    }
}

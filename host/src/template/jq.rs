//! Compiling and running jq through the jaq crates.

use jaq_core::load::{Arena, File, Loader, lex, parse};
use jaq_core::{Ctx, Filter, Native, RcIter, compile};
use jaq_json::Val;
use serde_json::Value;

/// A compiled jq filter. It holds only terms and function pointers, so it is `Send + Sync` and
/// is compiled once, then run from any thread.
pub(super) type JqFilter = Filter<Native<Val>>;

/// Natives that reach outside the template: the process environment (`env`, which would expose
/// the host's secrets), process exit (`halt`, `halt_error`) and stderr logging (`debug`,
/// `stderr`, which could print secrets). They are replaced by the definitions in `SAFE_DEFS`.
const DENIED_NATIVES: &[&str] = &["env", "halt", "halt_error", "debug", "stderr"];

/// Harmless stand-ins for `DENIED_NATIVES`; listed before jaq-std's definitions, which call some
/// of them (`debug(msgs)`, `halt_error/0`).
const SAFE_DEFS: &str = r#"
def env: {};
def halt: "halt is not available in templates" | error;
def halt_error($code): "halt_error is not available in templates" | error;
def debug: .;
def stderr: .;
"#;

/// Parses and compiles `code`, reporting syntax errors and undefined names.
pub(super) fn compile(code: &str) -> Result<JqFilter, String> {
    let safe_defs = jaq_core::load::parse(SAFE_DEFS, |p| p.defs())
        .ok_or("internal error: template prelude does not parse")?;
    let defs = safe_defs
        .into_iter()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_std::funs()
        .chain(jaq_json::funs())
        .filter(|(name, _, _)| !DENIED_NATIVES.contains(name));
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(&arena, File { code, path: () })
        .map_err(|errs| describe_load_errors(errs.into_iter().map(|(_, e)| e)))?;
    jaq_core::Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| {
            let names: Vec<String> = errs
                .into_iter()
                .flat_map(|(_, e)| e)
                .map(describe_undefined)
                .collect();
            names.join("; ")
        })
}

fn describe_load_errors<'s>(errs: impl Iterator<Item = jaq_core::load::Error<&'s str>>) -> String {
    use jaq_core::load::Error;
    let mut messages = Vec::new();
    for err in errs {
        match err {
            Error::Io(io) => {
                messages.extend(io.into_iter().map(|(path, e)| format!("{path}: {e}")))
            }
            Error::Lex(lex) => messages.extend(lex.into_iter().map(describe_lex_error)),
            Error::Parse(parse) => messages.extend(parse.into_iter().map(describe_parse_error)),
        }
    }
    messages.join("; ")
}

fn describe_lex_error((expected, found): lex::Error<&str>) -> String {
    if found.is_empty() {
        return format!(
            "syntax error: expected {}, found end of expression",
            expected.as_str()
        );
    }
    // `found` is the unlexed remainder; a short prefix is enough to locate the problem.
    let near: String = found.chars().take(20).collect();
    format!("syntax error: expected {} near {near:?}", expected.as_str())
}

fn describe_parse_error((expected, found): parse::Error<&str>) -> String {
    if found.is_empty() {
        format!(
            "syntax error: expected {}, found end of expression",
            expected.as_str()
        )
    } else {
        format!(
            "syntax error: expected {}, found {found:?}",
            expected.as_str()
        )
    }
}

fn describe_undefined((name, kind): compile::Error<&str>) -> String {
    match kind {
        compile::Undefined::Filter(arity) => format!("undefined function {name}/{arity}"),
        other => format!("undefined {} {name}", other.as_str()),
    }
}

/// Runs `filter` on `input`, returning its first output (`None` when it yields nothing).
pub(super) fn first_output(filter: &JqFilter, input: Val) -> Result<Option<Value>, String> {
    let inputs = RcIter::new(core::iter::empty());
    let mut outputs = filter.run((Ctx::new([], &inputs), input));
    match outputs.next() {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some(to_json(v))),
        Some(Err(e)) => Err(match e.into_val() {
            // `error("msg")` and most native errors carry a string: show it unquoted.
            Val::Str(s) => (*s).clone(),
            other => other.to_string(),
        }),
    }
}

/// Converts a jaq value to JSON. Unlike jaq-json's `From`, this cannot panic on a number that
/// JSON cannot hold (such as the literal `1e1000`): it becomes `null`, as in jq.
fn to_json(v: Val) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(b),
        Val::Int(i) => Value::from(i),
        Val::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Val::Num(n) => n.parse::<serde_json::Number>().map_or_else(
            |_| {
                n.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            },
            Value::Number,
        ),
        Val::Str(s) => Value::String((*s).clone()),
        Val::Arr(a) => a.iter().cloned().map(to_json).collect(),
        Val::Obj(o) => Value::Object(
            o.iter()
                .map(|(k, v)| ((**k).clone(), to_json(v.clone())))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(code: &str, input: Value) -> Result<Option<Value>, String> {
        first_output(&compile(code)?, Val::from(input))
    }

    #[test]
    fn filter_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<JqFilter>();
    }

    #[test]
    fn runs_std_and_json_functions() {
        assert_eq!(run("map(. * 2) | add", json!([1, 2])), Ok(Some(json!(6))));
        assert_eq!(
            run(".a | tojson", json!({"a": [1]})),
            Ok(Some(json!("[1]")))
        );
        assert_eq!(run("empty", json!(null)), Ok(None));
        assert_eq!(run("1e1000", json!(null)), Ok(Some(Value::Null)));
    }

    #[test]
    fn environment_and_process_exit_are_unavailable() {
        std::env::var("PATH").expect("PATH is set in the test environment");
        assert_eq!(run("env", json!(null)), Ok(Some(json!({}))));
        assert_eq!(
            run("$ENV", json!(null)).map(|_| ()),
            Err("undefined variable $ENV".into())
        );
        let halt = run("halt", json!(null)).unwrap_err();
        assert!(halt.contains("not available"), "{halt}");
        assert_eq!(run("1 | debug", json!(null)), Ok(Some(json!(1))));
    }

    #[test]
    fn errors_are_described() {
        let undefined = compile(".x | foo").map(|_| ()).unwrap_err();
        assert_eq!(undefined, "undefined function foo/0");
        let syntax = compile(".x |").map(|_| ()).unwrap_err();
        assert!(syntax.starts_with("syntax error: expected"), "{syntax}");
        let runtime = run("error(\"boom\")", json!(null)).unwrap_err();
        assert_eq!(runtime, "boom");
    }
}

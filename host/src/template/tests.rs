use super::*;
use serde_json::json;

fn ctx() -> Value {
    json!({
        "outputs": {
            "trigger": {"service": "billing", "environment": "prod", "count": 3},
            "a-b": {"id": "r-42"},
            "create_resource": {"id": 7, "tags": ["x", "y"]},
        },
        "secrets": {"api-token": "handle-api-token"},
        "workflow": {"identifier": "wf"},
        "workflowRun": {"id": "wfr_0123456789abcdef"},
        "workflowNodeRun": {"id": "wfnr_0123456789abcdef"},
    })
}

fn render(value: Value) -> Result<Value, TemplateError> {
    Template::compile(&value, "$.config")?.render(&ctx())
}

#[test]
fn template_and_expr_are_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<Expr>();
}

#[test]
fn whole_template_keeps_the_result_type() {
    let rendered = render(json!({
        "n": "{{ .outputs.trigger.count }}",
        "obj": " {{ .outputs.create_resource }} ",
        "bool": "{{ .outputs.trigger.count > 2 }}",
        "null": "{{ .outputs.nothing }}",
        "empty": "{{ empty }}",
        "first": "{{ 1, 2 }}",
    }))
    .unwrap();
    assert_eq!(
        rendered,
        json!({
            "n": 3,
            "obj": {"id": 7, "tags": ["x", "y"]},
            "bool": true,
            "null": null,
            "empty": null,
            "first": 1,
        })
    );
}

#[test]
fn text_around_templates_makes_a_string() {
    let rendered = render(json!([
        "{{ .outputs.trigger.service }}_{{ .outputs.trigger.environment }}",
        "{{ .outputs.trigger.service }} ({{ .outputs.trigger.environment }})",
        "n={{ .outputs.trigger.count }} tags={{ .outputs.create_resource.tags }} x={{ .none }}.",
    ]))
    .unwrap();
    assert_eq!(
        rendered,
        json!([
            "billing_prod",
            "billing (prod)",
            "n=3 tags=[\"x\",\"y\"] x=."
        ])
    );
}

#[test]
fn go_date_form_renders_utc_timestamp() {
    let rendered = render(json!(r#"{{ now | date "2006-01-02T15:04:05Z" }}"#)).unwrap();
    let s = rendered.as_str().expect("a string");
    let re = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").unwrap();
    assert!(re.is_match(s), "{s}");
    let iso = render(json!("{{ 0 | todateiso8601 }}")).unwrap();
    assert_eq!(iso, json!("1970-01-01T00:00:00Z"));
    let fixed = render(json!(r#"{{ 86400 | date "Jan _2, 2006 15:04" }}"#)).unwrap();
    assert_eq!(fixed, json!("Jan  2, 1970 00:00"));
}

#[test]
fn quoted_keys_work() {
    let rendered = render(json!({
        "auth": "Bearer {{ .secrets[\"api-token\"] }}",
        "id": "{{ .outputs[\"a-b\"].id }}",
        "svc": "{{ .outputs.trigger.service }}",
    }))
    .unwrap();
    assert_eq!(
        rendered,
        json!({"auth": "Bearer handle-api-token", "id": "r-42", "svc": "billing"})
    );
}

#[test]
fn compile_errors_name_path_and_expression() {
    let value = json!({"body": {"name": "x {{ .outputs.x | foo }}"}});
    let err = Template::compile(&value, "$.nodes[1].config").unwrap_err();
    assert_eq!(err.path, "$.nodes[1].config.body.name");
    assert_eq!(err.expr, "{{ .outputs.x | foo }}");
    assert_eq!(
        err.to_string(),
        "$.nodes[1].config.body.name: template \"{{ .outputs.x | foo }}\": undefined function foo/0"
    );

    let err = Template::compile(&json!({"h": {"x-y": ["{{ .a | }}"]}}), "$").unwrap_err();
    assert_eq!(err.path, "$.h[\"x-y\"][0]");
    assert!(err.message.starts_with("syntax error"), "{}", err.message);

    let err = Template::compile(&json!("a {{ .b "), "$.u").unwrap_err();
    assert_eq!((err.path.as_str(), err.expr.as_str()), ("$.u", "{{ .b "));
    assert!(err.message.contains("closing"), "{}", err.message);
}

#[test]
fn runtime_errors_name_path_and_expression() {
    let t = Template::compile(
        &json!({"n": "{{ .outputs.trigger.service | tonumber }}"}),
        "$.c",
    )
    .unwrap();
    let err = t.render(&ctx()).unwrap_err();
    assert_eq!(err.path, "$.c.n");
    assert_eq!(err.expr, "{{ .outputs.trigger.service | tonumber }}");
    assert!(err.message.contains("billing"), "{}", err.message);
}

#[test]
fn references_are_found_in_all_forms() {
    let t = Template::compile(
        &json!({
            "a": "{{ .outputs.create_resource.id }}",
            "b": ["x {{ .outputs[\"a-b\"].id }} {{ .outputs.trigger.service }}"],
            "c": "{{ .secrets[\"api-token\"] }}-{{ .secrets.other }}",
            "d": "{{ .outputs.\"q\" }}",
        }),
        "$",
    )
    .unwrap();
    assert_eq!(t.referenced_outputs(), ["create_resource", "a-b", "q"]);
    assert_eq!(t.referenced_secrets(), ["api-token", "other"]);

    let e = Expr::compile(".outputs.gate.ok and .outputs[\"x-y\"].n > 1", "$.e").unwrap();
    assert_eq!(e.referenced_outputs(), ["gate", "x-y"]);
}

#[test]
fn strings_without_templates_are_static() {
    let value = json!({"url": "https://x/{ not }", "n": [1, {"b": null}]});
    let t = Template::compile(&value, "$").unwrap();
    assert!(t.is_static());
    assert_eq!(t.render(&Value::Null).unwrap(), value);
    assert!(t.referenced_outputs().is_empty());

    let t = Template::compile(&json!({"a": 1, "b": "{{ .x }}"}), "$").unwrap();
    assert!(!t.is_static());
    assert_eq!(t.render(&json!({"x": 2})).unwrap(), json!({"a": 1, "b": 2}));
}

#[test]
fn expr_accepts_bare_and_braced_forms() {
    let input = json!({"result": {"status": 201}});
    for src in [".result.status == 201", "{{ .result.status == 201 }}"] {
        let e = Expr::compile(src, "$.x").unwrap();
        assert_eq!(e.eval(&input).unwrap(), json!(true));
    }
    let e = Expr::compile("empty", "$.x").unwrap();
    assert_eq!(e.eval(&input).unwrap(), Value::Null);
    let err = Expr::compile(".a |", "$.nodes[0].outlets[1]").unwrap_err();
    assert_eq!(err.path, "$.nodes[0].outlets[1]");
    assert_eq!(err.expr, ".a |");
    let err = Expr::compile(".result | error(\"bad\")", "$.v")
        .unwrap()
        .eval(&input)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"$.v: template ".result | error("bad")": bad"#
    );
}

#[test]
fn truthiness_follows_jq() {
    assert!(!truthy(&Value::Null));
    assert!(!truthy(&json!(false)));
    for v in [json!(0), json!(""), json!([]), json!({}), json!(true)] {
        assert!(truthy(&v), "{v}");
    }
}

#[test]
fn rendering_a_compiled_template_many_times_stays_cheap() {
    let t = Template::compile(
        &json!({"id": "{{ .outputs.trigger.service }}_{{ .outputs.trigger.environment }}"}),
        "$",
    )
    .unwrap();
    let ctx = ctx();
    for _ in 0..10_000 {
        assert_eq!(t.render(&ctx).unwrap(), json!({"id": "billing_prod"}));
    }
}

//! Test node: a well-formed component exporting `greet` instead of the `action-node` world's
//! `run`, so loading it as a node must fail with a clear error.

wit_bindgen::generate!({
    inline: r#"
        package airlock-test:wrong;

        world greeter {
            export greet: func(name: string) -> string;
        }
    "#,
});

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

export!(Greeter);

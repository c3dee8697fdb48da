//! `airlock node build`: each language's real toolchain, run in the project directory, writing
//! the component the project's `node.toml` names. A tool that is not installed is reported with
//! the exact command that installs it (the versions `.ci/install-guest-toolchains` installs).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{AuthoringError, Language, io_error};
use crate::engine::{MANIFEST_FILE, NodeManifest};

/// The WIT world every node implements.
const WORLD: &str = "action-node";
const RUST_TARGET: &str = "wasm32-wasip2";
const PIP_INSTALL: &str = "pip install componentize-py==0.25.1";
const NPM_INSTALL: &str = "npm install -g @bytecodealliance/componentize-js@0.23.0";
const APT_INSTALL: &str = "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32";
const WIT_BINDGEN_INSTALL: &str = "cargo install --locked wit-bindgen-cli@0.63.0";
const COMPONENT_LD_INSTALL: &str = "cargo install --locked wasm-component-ld@0.5.31";
/// Debian's wasi-libc (a WASI preview 1 sysroot, which clang finds by itself).
const WASI_LIBC: &str = "/usr/lib/wasm32-wasi/libc.a";

/// One external command of a build, and the tools it needs installed.
struct Step {
    program: String,
    args: Vec<String>,
}

impl Step {
    fn new(program: &str, args: &[&str]) -> Step {
        Step {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn text(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Builds the project in `dir` and returns the component's path.
pub fn build(dir: &Path) -> Result<PathBuf, AuthoringError> {
    let language = Language::detect(dir).ok_or_else(|| AuthoringError::UnknownProject {
        dir: dir.to_path_buf(),
        markers: Language::ALL.map(Language::marker).join(", "),
    })?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).map_err(io_error(&manifest_path))?;
    let manifest = NodeManifest::parse(&text, &manifest_path, dir)?;
    // Absolute, because the tools run in the project directory.
    let output = std::path::absolute(&manifest.component).map_err(io_error(&manifest.component))?;
    require_tools(language)?;
    let linker = find_tool("wasm-component-ld").unwrap_or_default();
    for step in steps(language, dir, &output, &linker.to_string_lossy()) {
        run(dir, &step)?;
    }
    if language == Language::Rust {
        let built = dir
            .join("target")
            .join(RUST_TARGET)
            .join("release")
            .join(format!("{}.wasm", rust_crate(dir)?.replace('-', "_")));
        std::fs::copy(&built, &output).map_err(io_error(&built))?;
    }
    if !output.is_file() {
        return Err(AuthoringError::NoOutput {
            dir: dir.to_path_buf(),
            path: output,
        });
    }
    Ok(output)
}

/// The commands that build a project, in order.
/// `component_ld` is the path of `wasm-component-ld`, the C build's linker.
fn steps(language: Language, dir: &Path, output: &Path, component_ld: &str) -> Vec<Step> {
    let out = output.to_string_lossy().into_owned();
    let out = out.as_str();
    match language {
        Language::Rust => vec![Step::new(
            "cargo",
            &[
                "build",
                "--release",
                "--target",
                RUST_TARGET,
                "--target-dir",
                "target",
            ],
        )],
        Language::Python => vec![Step::new(
            "componentize-py",
            &[
                "-d",
                "wit",
                "-w",
                WORLD,
                "componentize",
                "app",
                "-p",
                ".",
                "-o",
                out,
            ],
        )],
        Language::JavaScript => {
            let source = std::fs::read_to_string(dir.join("app.js")).unwrap_or_default();
            // wasi:http is linked only for nodes that use fetch(); the others need only the
            // egress import, and an incoming-request handler is never exported.
            let mut disable = vec!["fetch-event"];
            if !source.contains("fetch(") {
                disable.push("http");
            }
            let mut args = vec!["--wit", "wit", "--world-name", WORLD, "-d"];
            args.extend(disable);
            args.extend(["-o", out, "app.js"]);
            vec![Step::new("componentize-js", &args)]
        }
        Language::C => {
            // wasm-component-ld runs wasm-ld, then wraps the module as a component with the
            // WASI preview 1 adapter it carries (Debian's wasi-libc is preview 1).
            let linker = format!("-fuse-ld={component_ld}");
            vec![
                Step::new(
                    "wit-bindgen",
                    &["c", "wit", "--world", WORLD, "--out-dir", "build/bindings"],
                ),
                Step::new(
                    "clang",
                    &[
                        "--target=wasm32-wasi",
                        "-mexec-model=reactor",
                        "-O2",
                        "-Wall",
                        "-Ibuild/bindings",
                        "-I.",
                        &linker,
                        "node.c",
                        "airlock.c",
                        "build/bindings/action_node.c",
                        "build/bindings/action_node_component_type.o",
                        "-o",
                        out,
                    ],
                ),
            ]
        }
    }
}

/// Fails with the install command of the first missing tool.
fn require_tools(language: Language) -> Result<(), AuthoringError> {
    let tools: &[(&str, &str)] = match language {
        Language::Rust => &[(
            "cargo",
            "install Rust with rustup, then `rustup target add wasm32-wasip2`",
        )],
        Language::Python => &[("componentize-py", PIP_INSTALL)],
        Language::JavaScript => &[("componentize-js", NPM_INSTALL)],
        Language::C => &[
            ("clang", APT_INSTALL),
            ("wasm-ld", APT_INSTALL),
            (WASI_LIBC, APT_INSTALL),
            ("wit-bindgen", WIT_BINDGEN_INSTALL),
            ("wasm-component-ld", COMPONENT_LD_INSTALL),
        ],
    };
    for (tool, install) in tools {
        let found = if tool.starts_with('/') {
            Path::new(tool).exists()
        } else {
            find_tool(tool).is_some()
        };
        if !found {
            return Err(AuthoringError::MissingTool {
                language,
                tool: tool.to_string(),
                install: install.to_string(),
            });
        }
    }
    Ok(())
}

/// The executable `name` on PATH.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs a step in `dir`; the tool's output (stdout too) goes to this process's stderr.
fn run(dir: &Path, step: &Step) -> Result<(), AuthoringError> {
    eprintln!("  running {}", step.text());
    let status = Command::new(&step.program)
        .args(&step.args)
        .current_dir(dir)
        // A build started from inside another cargo build must not inherit its target.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdout(std::io::stderr())
        .status()
        .map_err(io_error(Path::new(&step.program)))?;
    if status.success() {
        Ok(())
    } else {
        Err(AuthoringError::ToolFailed {
            dir: dir.to_path_buf(),
            command: step.text(),
            status: status.to_string(),
        })
    }
}

/// The `[package] name` of a Rust project.
fn rust_crate(dir: &Path) -> Result<String, AuthoringError> {
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
    let table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| AuthoringError::CargoToml {
                path: path.clone(),
                reason: e.message().to_string(),
            })?;
    table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| AuthoringError::CargoToml {
            path,
            reason: "no [package] name".into(),
        })
}

/// What `node build` runs for a language, for the project's README.
pub(super) fn describe_build(language: Language) -> String {
    steps(
        language,
        Path::new("."),
        Path::new("node.wasm"),
        "$(which wasm-component-ld)",
    )
    .iter()
    .map(|s| format!("`{}`", s.text()))
    .collect::<Vec<_>>()
    .join(", then ")
}

/// How to install a language's toolchain, for the project's README.
pub(super) fn describe_install(language: Language) -> String {
    match language {
        Language::Rust => {
            format!("Rust with the {RUST_TARGET} target (`rustup target add {RUST_TARGET}`).")
        }
        Language::Python => format!("componentize-py (`{PIP_INSTALL}`)."),
        Language::JavaScript => format!("componentize-js (`{NPM_INSTALL}`)."),
        Language::C => format!(
            "Debian's clang, lld, wasi-libc and wasm32 compiler-rt (`{APT_INSTALL}`), wit-bindgen (`{WIT_BINDGEN_INSTALL}`) and wasm-component-ld (`{COMPONENT_LD_INSTALL}`)."
        ),
    }
}

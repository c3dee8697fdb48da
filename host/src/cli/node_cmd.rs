//! `airlock node new|build|inspect`: writing, building and checking node components.

use std::path::Path;

use anyhow::anyhow;

use super::args::{NodeAction, NodeArgs};
use super::{Exit, failed, invalid};
use crate::authoring::{self, AuthoringError};
use crate::engine::StateDir;
use crate::sandbox::{ComponentReport, Sandbox, Slots};

pub(crate) fn node(args: NodeArgs) -> Result<u8, Exit> {
    match args.action {
        NodeAction::New {
            dir,
            lang,
            node_type,
        } => {
            let made =
                authoring::new_project(&dir, lang, node_type.as_deref()).map_err(authoring_exit)?;
            println!(
                "created a {lang} node of type {} in {}:",
                made.node_type,
                dir.display()
            );
            for file in &made.files {
                println!("  {}", file.display());
            }
            println!(
                "next: fill in [egress] allow in node.toml, then `airlock node build {}`",
                dir.display()
            );
            Ok(0)
        }
        NodeAction::Build { dir, state_dir } => {
            let component = authoring::build(&dir).map_err(authoring_exit)?;
            // Compiling now is both the check that the component can run here and the
            // compile cache's first entry: the first run does not pay for it.
            let sandbox = loader(&state_dir)?;
            let bytes = read(&component)?;
            sandbox
                .load(&component.display().to_string(), &bytes)
                .map_err(invalid)?;
            println!(
                "built {} ({}), compiled and cached in {}",
                component.display(),
                size(bytes.len()),
                StateDir::new(&state_dir).cache().display()
            );
            Ok(0)
        }
        NodeAction::Inspect { file, state_dir } => {
            let sandbox = loader(&state_dir)?;
            let bytes = read(&file)?;
            let report = sandbox
                .inspect(&file.display().to_string(), &bytes)
                .map_err(invalid)?;
            print!("{}", describe(&file, &report));
            report.runnable.map(|()| 0).map_err(invalid)
        }
    }
}

/// A sandbox that loads components and runs none: one instance slot is enough.
fn loader(state_dir: &Path) -> Result<Sandbox, Exit> {
    Sandbox::new(&StateDir::new(state_dir).cache(), Slots::new(1)).map_err(failed)
}

fn authoring_exit(error: AuthoringError) -> Exit {
    if error.is_invalid_input() {
        invalid(error)
    } else {
        failed(error)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Exit> {
    std::fs::read(path).map_err(|e| invalid(anyhow!("{}: cannot read: {e}", path.display())))
}

fn describe(file: &Path, report: &ComponentReport) -> String {
    let world = match &report.runnable {
        Ok(()) => "airlock:node/action-node",
        Err(_) => "not airlock:node/action-node as this host provides it",
    };
    let mut text = format!(
        "file      {}\nsize      {}\ndigest    {}\nworld     {world}\nexports   {}\nimports\n",
        file.display(),
        size(report.size),
        report.digest,
        report.exports.join(", "),
    );
    for import in &report.imports {
        let provided = import.provided.unwrap_or("NOT PROVIDED by this host");
        text.push_str(&format!("  {:<42} {provided}\n", import.name));
    }
    let runnable = match &report.runnable {
        Ok(()) => "yes".to_string(),
        Err(e) => format!("no: {e}"),
    };
    text.push_str(&format!("runnable  {runnable}\n"));
    text
}

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!(
            "{:.1} MiB, {bytes} bytes",
            bytes as f64 / f64::from(1 << 20)
        )
    } else {
        format!("{:.1} KiB, {bytes} bytes", bytes as f64 / 1024.0)
    }
}

//! Finding custom node manifests (`node.toml`, parsed by `config`) in `--nodes` directories.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, NodeManifest};

/// The file a node directory must contain.
pub const MANIFEST_FILE: &str = "node.toml";

/// Every manifest found under `dirs`. Each directory holds one node (`DIR/node.toml`) or
/// several, one per sub-directory. A config type may be served only once.
pub fn load_dirs(dirs: &[PathBuf]) -> Result<Vec<NodeManifest>, ConfigError> {
    let mut manifests: Vec<NodeManifest> = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for dir in dirs {
        for path in manifest_paths(dir)? {
            let manifest = NodeManifest::load(&path)?;
            if let Some(first) = seen.get(&manifest.node_type) {
                return Err(ConfigError {
                    file: path.display().to_string(),
                    line: None,
                    key: Some("type".into()),
                    reason: format!(
                        "{} is already served by {}",
                        manifest.node_type,
                        first.display()
                    ),
                });
            }
            seen.insert(manifest.node_type.clone(), path);
            manifests.push(manifest);
        }
    }
    Ok(manifests)
}

/// `DIR/node.toml`, or else `DIR/*/node.toml` in name order.
fn manifest_paths(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let dir_err = |reason: String| ConfigError {
        file: dir.display().to_string(),
        line: None,
        key: None,
        reason,
    };
    if !dir.is_dir() {
        return Err(dir_err("--nodes: not a directory".into()));
    }
    let single = dir.join(MANIFEST_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| dir_err(format!("cannot read: {e}")))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path().join(MANIFEST_FILE))
        .filter(|path| path.is_file())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(dir_err(format!(
            "--nodes: no {MANIFEST_FILE} in it or in any of its sub-directories"
        )));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_directory_holds_one_node_or_one_per_sub_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let one = tmp.path().join("one");
        write(
            &one,
            "node.toml",
            "type = \"ONE\"\ncomponent = \"one.wasm\"",
        );
        write(&one, "one.wasm", "");
        let many = tmp.path().join("many");
        for name in ["b", "a"] {
            let text = format!("type = \"{}\"\ncomponent = \"n.wasm\"", name.to_uppercase());
            write(&many, &format!("{name}/node.toml"), &text);
            write(&many, &format!("{name}/n.wasm"), "");
        }
        write(&many, "notes/readme.txt", "not a node");
        let found = load_dirs(&[one.clone(), many.clone()]).unwrap();
        let types: Vec<&str> = found.iter().map(|m| m.node_type.as_str()).collect();
        assert_eq!(types, ["ONE", "A", "B"]);
        assert_eq!(found[1].component, many.join("a/n.wasm"));

        let e = load_dirs(&[one.clone(), one.clone()]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("type"));
        assert!(e.reason.contains("already served by"), "{}", e.reason);

        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let e = load_dirs(&[empty]).unwrap_err();
        assert!(e.reason.contains("no node.toml"), "{}", e.reason);
        let e = load_dirs(&[tmp.path().join("absent")]).unwrap_err();
        assert!(e.reason.contains("not a directory"), "{}", e.reason);
    }

    #[test]
    fn a_missing_component_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            "node.toml",
            "type = \"X\"\ncomponent = \"gone.wasm\"",
        );
        let e = load_dirs(&[tmp.path().to_path_buf()]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("component"));
        assert!(e.reason.contains("gone.wasm"), "{}", e.reason);
    }
}

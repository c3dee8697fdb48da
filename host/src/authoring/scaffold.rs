//! `airlock node new`: a ready node project in one of the four languages. Every file is
//! embedded in the binary, the WIT contract included, so a project always matches the host
//! that made it.

use std::path::{Path, PathBuf};

use super::{AuthoringError, Language, io_error, toolchain};
use crate::engine::{MANIFEST_FILE, NodeManifest};

/// The contract, as this binary implements it.
const WIT: &str = include_str!("../../../wit/node.wit");
const NODE_TOML: &str = include_str!("../../../guest-sdk/templates/node.toml");
const README: &str = include_str!("../../../guest-sdk/templates/README.md");
const GITIGNORE: &str = include_str!("../../../guest-sdk/templates/gitignore");

/// What `new_project` made.
#[derive(Debug)]
pub struct Scaffold {
    pub node_type: String,
    /// Every file written, relative to the project directory.
    pub files: Vec<PathBuf>,
}

/// Writes a node project for `language` into `dir` (new, or empty). The node type defaults to
/// the directory's name in UPPER_SNAKE (`my-node` → `MY_NODE`).
pub fn new_project(
    dir: &Path,
    language: Language,
    node_type: Option<&str>,
) -> Result<Scaffold, AuthoringError> {
    let node_type = match node_type {
        Some(given) => given.to_string(),
        None => type_from_dir(dir)?,
    };
    let manifest = NODE_TOML.replace("{{TYPE}}", &node_type);
    // The manifest parser is the one authority on what a node type may be.
    if let Err(e) = NodeManifest::parse(&manifest, &dir.join(MANIFEST_FILE), dir) {
        return Err(AuthoringError::BadType {
            node_type,
            reason: e.reason,
        });
    }
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(AuthoringError::NotEmpty {
            dir: dir.to_path_buf(),
        });
    }
    let mut files = vec![
        ("node.toml".to_string(), manifest),
        ("wit/node.wit".to_string(), WIT.to_string()),
        (".gitignore".to_string(), GITIGNORE.to_string()),
        ("README.md".to_string(), readme(language, &node_type)),
    ];
    let crate_name = crate_name(dir);
    for (path, text) in language_files(language) {
        let text = text
            .replace("{{TYPE}}", &node_type)
            .replace("{{CRATE}}", &crate_name);
        files.push((path.to_string(), text));
    }
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        std::fs::write(&path, text).map_err(io_error(&path))?;
    }
    Ok(Scaffold {
        node_type,
        files: files.into_iter().map(|(path, _)| path.into()).collect(),
    })
}

/// The source and helper files of a language's project.
fn language_files(language: Language) -> Vec<(&'static str, &'static str)> {
    match language {
        Language::Rust => vec![
            (
                "Cargo.toml",
                include_str!("../../../guest-sdk/templates/rust/Cargo.toml"),
            ),
            (
                "src/lib.rs",
                include_str!("../../../guest-sdk/templates/rust/lib.rs"),
            ),
            (
                "airlock-guest/Cargo.toml",
                include_str!("../../../guest-sdk/templates/rust/airlock-guest.toml"),
            ),
            (
                "airlock-guest/src/lib.rs",
                include_str!("../../../guest-sdk/src/lib.rs"),
            ),
            (
                "airlock-guest/src/log.rs",
                include_str!("../../../guest-sdk/src/log.rs"),
            ),
            (
                "airlock-guest/src/request.rs",
                include_str!("../../../guest-sdk/src/request.rs"),
            ),
        ],
        Language::Python => vec![
            (
                "app.py",
                include_str!("../../../guest-sdk/templates/python/app.py"),
            ),
            (
                "airlock_node.py",
                include_str!("../../../guest-sdk/python/airlock_node.py"),
            ),
        ],
        Language::JavaScript => vec![
            (
                "app.js",
                include_str!("../../../guest-sdk/templates/js/app.js"),
            ),
            (
                "airlock.js",
                include_str!("../../../guest-sdk/js/airlock.js"),
            ),
        ],
        Language::C => vec![
            (
                "node.c",
                include_str!("../../../guest-sdk/templates/c/node.c"),
            ),
            ("airlock.h", include_str!("../../../guest-sdk/c/airlock.h")),
            ("airlock.c", include_str!("../../../guest-sdk/c/airlock.c")),
        ],
    }
}

fn readme(language: Language, node_type: &str) -> String {
    let (source, helper) = match language {
        Language::Rust => ("src/lib.rs", "airlock-guest/ (crate airlock-guest)"),
        Language::Python => ("app.py", "airlock_node.py"),
        Language::JavaScript => ("app.js", "airlock.js"),
        Language::C => ("node.c", "airlock.h and airlock.c"),
    };
    README
        .replace("{{TYPE}}", node_type)
        .replace("{{LANGUAGE}}", &language.to_string())
        .replace("{{SOURCE}}", source)
        .replace("{{HELPER}}", helper)
        .replace("{{BUILD}}", &toolchain::describe_build(language))
        .replace("{{TOOLCHAIN}}", &toolchain::describe_install(language))
}

/// `my-node` → `MY_NODE`.
fn type_from_dir(dir: &Path) -> Result<String, AuthoringError> {
    let name = dir_name(dir);
    let node_type: String = name
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => Some(c.to_ascii_uppercase()),
            '-' | '_' | ' ' | '.' => Some('_'),
            _ => None,
        })
        .collect();
    let node_type = node_type.trim_matches('_').to_string();
    if node_type.starts_with(|c: char| c.is_ascii_uppercase()) {
        Ok(node_type)
    } else {
        Err(AuthoringError::NoTypeName {
            dir: dir.to_path_buf(),
            name,
        })
    }
}

/// A Cargo package name from the directory's name (`My Node` → `my-node`).
fn crate_name(dir: &Path) -> String {
    let name: String = dir_name(dir)
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name
    } else {
        format!("node-{name}")
    }
}

fn dir_name(dir: &Path) -> String {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_is_the_directory_name_in_upper_snake() {
        assert_eq!(type_from_dir(Path::new("/x/my-node")).unwrap(), "MY_NODE");
        assert_eq!(
            type_from_dir(Path::new("status.ping")).unwrap(),
            "STATUS_PING"
        );
        assert!(matches!(
            type_from_dir(Path::new("/x/42")),
            Err(AuthoringError::NoTypeName { .. })
        ));
    }

    #[test]
    fn crate_names_are_cargo_package_names() {
        assert_eq!(crate_name(Path::new("/x/My Node")), "my-node");
        assert_eq!(crate_name(Path::new("/x/9lives")), "node-9lives");
    }

    #[test]
    fn a_non_empty_directory_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let error = new_project(dir.path(), Language::Python, Some("KEEP")).unwrap_err();
        assert!(matches!(error, AuthoringError::NotEmpty { .. }), "{error}");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_bad_type_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let error = new_project(&dir.path().join("n"), Language::C, Some("WEBHOOK")).unwrap_err();
        assert!(matches!(error, AuthoringError::BadType { .. }), "{error}");
        assert!(!dir.path().join("n").exists(), "nothing written");
    }

    #[test]
    fn every_language_gets_its_source_helper_contract_and_manifest() {
        for language in Language::ALL {
            let dir = tempfile::tempdir().unwrap();
            let project = dir.path().join("my-node");
            let made = new_project(&project, language, None).unwrap();
            assert_eq!(made.node_type, "MY_NODE");
            assert!(project.join(language.marker()).is_file(), "{language}");
            assert_eq!(
                std::fs::read_to_string(project.join("wit/node.wit")).unwrap(),
                WIT
            );
            let manifest = NodeManifest::parse(
                &std::fs::read_to_string(project.join("node.toml")).unwrap(),
                &project.join("node.toml"),
                &project,
            )
            .unwrap();
            assert_eq!(manifest.node_type, "MY_NODE");
            assert!(
                manifest.egress_allow.is_empty(),
                "left for the author to fill"
            );
            let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
            assert!(readme.contains("airlock node build ."), "{readme}");
            assert!(!readme.contains("{{"), "{readme}");
        }
    }
}

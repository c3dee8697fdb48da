//! Port's identifier rule, shared by workflows, nodes and outlets.

use std::sync::LazyLock;

use regex::Regex;

use super::error::Problems;

static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[\p{L}0-9@_:-]+$").expect("the identifier pattern is a valid regex")
});

/// Records a problem and returns false when `id` is not a valid identifier.
pub(super) fn check(
    id: &str,
    path: &str,
    node: Option<&str>,
    what: &str,
    problems: &mut Problems,
) -> bool {
    if PATTERN.is_match(id) {
        return true;
    }
    let message = if id.is_empty() {
        format!("the {what} must not be empty")
    } else {
        format!("the {what} \"{id}\" may only contain letters, digits, '@', '_', ':' and '-'")
    };
    problems.push(path, node, message);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_port_identifiers_and_rejects_others() {
        let mut problems = Problems::default();
        for good in [
            "send-webhook",
            "create_resource",
            "ns:name@2",
            "déploiement",
            "日本",
        ] {
            assert!(check(good, "$", None, "id", &mut problems), "{good}");
        }
        assert!(problems.is_empty());
        for bad in ["", "a b", "a.b", "a/b", "x\"y"] {
            assert!(!check(bad, "$", None, "id", &mut problems), "{bad}");
        }
        assert_eq!(problems.into_vec().len(), 5);
    }
}

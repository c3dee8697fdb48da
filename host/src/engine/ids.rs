//! Run ids in Port's form: a prefix and 16 alphanumerics.

use rand::Rng;
use rand::distr::Alphanumeric;

pub fn new_run_id() -> String {
    with_prefix("wfr_")
}

pub fn new_node_run_id() -> String {
    with_prefix("wfnr_")
}

fn with_prefix(prefix: &str) -> String {
    let suffix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    format!("{prefix}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_port_shape_and_differ() {
        let a = new_run_id();
        let b = new_run_id();
        assert!(a.starts_with("wfr_") && a.len() == 20, "{a}");
        assert!(a[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        let n = new_node_run_id();
        assert!(n.starts_with("wfnr_") && n.len() == 21, "{n}");
    }
}

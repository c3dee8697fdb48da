//! Run ids in Port's form: a prefix and 16 alphanumerics. The first 7 are the creation time (ms
//! since the Unix epoch, base 62, in ASCII order) so that ids made later sort later: the run
//! store's indexes on them then grow at their right edge instead of dirtying a random page per
//! insert. The other 9 are random (53 bits), so ids made in the same millisecond still differ.
//! Ids are names, not credentials: every API route checks a token.

use rand::Rng;
use rand::distr::Alphanumeric;

/// In ASCII order, so that the text order of ids is their time order.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const TIME_DIGITS: usize = 7;
const RANDOM_DIGITS: usize = 9;

pub fn new_run_id() -> String {
    with_prefix("wfr_")
}

pub fn new_node_run_id() -> String {
    with_prefix("wfnr_")
}

fn with_prefix(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + TIME_DIGITS + RANDOM_DIGITS);
    id.push_str(prefix);
    push_time_digits(&mut id, crate::time::unix_ms());
    id.extend(
        rand::rng()
            .sample_iter(&Alphanumeric)
            .take(RANDOM_DIGITS)
            .map(char::from),
    );
    id
}

/// `ms` in base 62, most significant digit first; 7 digits last until the year 5138.
fn push_time_digits(id: &mut String, ms: u64) {
    let mut digits = [0u8; TIME_DIGITS];
    let mut rest = ms;
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    id.extend(digits.iter().map(|&d| char::from(d)));
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

    #[test]
    fn later_ids_sort_later() {
        let time_part = |ms| {
            let mut id = String::new();
            push_time_digits(&mut id, ms);
            id
        };
        let now = crate::time::unix_ms();
        let times = [
            0,
            61,
            62,
            3843,
            3844,
            now - 1,
            now,
            now + 1,
            62u64.pow(7) - 1,
        ];
        let ids: Vec<String> = times.iter().map(|&ms| time_part(ms)).collect();
        assert!(ids.iter().all(|id| id.len() == TIME_DIGITS), "{ids:?}");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(time_part(61), "000000z");
        assert_eq!(time_part(62), "0000010");
    }
}

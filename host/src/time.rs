//! The one timestamp format: RFC 3339 UTC with milliseconds, as Port's API shows times (run and
//! node-run times, audit records).

/// Now, e.g. `2026-11-26T22:44:41.110Z`.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now as Unix milliseconds (callback deadlines).
pub fn unix_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

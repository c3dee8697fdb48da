//! Checks an audit log's hash chain and its `.head` sidecar.

use std::fs::File;
use std::iter::Peekable;
use std::path::Path;

use serde::Deserialize;

use super::file::{self, FileLock, Head, Line};
use super::{AuditError, AuditRecord, GENESIS, chain_hash, io_error};

fn broken(line: usize, seq: u64, reason: impl Into<String>) -> AuditError {
    AuditError::VerifyFailed {
        line,
        seq,
        reason: reason.into(),
    }
}

/// A line parsed as far as it goes: the JSON object and the record it holds.
fn parse(
    bytes: &[u8],
) -> Result<(serde_json::Map<String, serde_json::Value>, AuditRecord), String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON ({e})"))?;
    let record =
        AuditRecord::deserialize(&value).map_err(|e| format!("not an audit record ({e})"))?;
    match value {
        serde_json::Value::Object(object) => Ok((object, record)),
        _ => Err("not a JSON object".into()),
    }
}

/// Verifies the chain of the log at `path`: every record's hash, seq and prev, and the last
/// record against the `.head` sidecar. Returns the number of records.
pub fn verify(path: &Path) -> Result<usize, AuditError> {
    let log = File::open(path).map_err(io_error(path))?;
    let _lock = FileLock::shared(&log, path)?;
    let head = Head::read(path);
    let mut lines = file::lines(&log).peekable();

    let mut count = 0;
    let mut prev_hash = GENESIS.to_owned();
    let mut head_seq_hash = None;
    while let Some(line) = lines.next() {
        let line = line.map_err(io_error(path))?;
        let number = line.number;
        let expected = count as u64;
        let is_last = lines.peek().is_none();
        if !line.complete {
            return Err(broken(
                number,
                expected,
                "truncated: the last line is incomplete",
            ));
        }
        let (object, record) = parse(&line.bytes).map_err(|reason| {
            let kind = if is_last { "truncated" } else { "edited" };
            broken(number, expected, format!("{kind}: line is {reason}"))
        })?;
        let seq = record.seq;
        let hash = chain_hash(object).map_err(|e| broken(number, seq, format!("edited: {e}")))?;
        if hash != record.hash {
            return Err(broken(
                number,
                seq,
                "edited: hash does not match the record's contents",
            ));
        }
        if seq != expected {
            let reason = if seq < expected || next_seq(&mut lines) == Some(expected) {
                format!("reordered: expected seq {expected}, found seq {seq}")
            } else {
                format!("deleted: expected seq {expected}, found seq {seq}")
            };
            return Err(broken(number, seq, reason));
        }
        if record.prev != prev_hash {
            return Err(broken(
                number,
                seq,
                "deleted: prev does not match the previous record's hash",
            ));
        }
        if let Ok(Some((head_seq, _))) = &head
            && *head_seq == seq
        {
            head_seq_hash = Some(record.hash.clone());
        }
        prev_hash = record.hash;
        count += 1;
    }

    check_head(path, head, count, head_seq_hash)?;
    Ok(count)
}

/// The seq of the next line, if it is a readable record.
fn next_seq<I: Iterator<Item = std::io::Result<Line>>>(lines: &mut Peekable<I>) -> Option<u64> {
    match lines.peek() {
        Some(Ok(line)) => parse(&line.bytes).ok().map(|(_, r)| r.seq),
        _ => None,
    }
}

/// The chain cannot show its last records were removed; the head sidecar can. The head may lag
/// the log by up to `MAX_BATCH` records: the writer moves it when it has nothing more to write,
/// or before the log would run further past it, so a crash can leave that many behind.
fn check_head(
    path: &Path,
    head: Result<Option<(u64, String)>, String>,
    count: usize,
    head_seq_hash: Option<String>,
) -> Result<(), AuditError> {
    let next_line = count + 1;
    let next_seq = count as u64;
    let head =
        head.map_err(|reason| broken(next_line, next_seq, format!("truncated: {reason}")))?;
    let Some((head_seq, head_hash)) = head else {
        if count == 0 {
            return Ok(());
        }
        return Err(broken(
            next_line,
            next_seq,
            format!(
                "truncated: head file {} is missing or empty, so the end of the log cannot be checked",
                Head::path(path).display()
            ),
        ));
    };
    if head_seq >= next_seq {
        return Err(broken(
            next_line,
            next_seq,
            format!(
                "truncated: the head file records seq {head_seq} but the log has {count} records"
            ),
        ));
    }
    if head_seq + super::MAX_BATCH as u64 + 1 < next_seq {
        return Err(broken(
            next_line - 1,
            next_seq - 1,
            format!("the head file records seq {head_seq}, far behind the log's last record"),
        ));
    }
    if head_seq_hash.as_deref() != Some(head_hash.as_str()) {
        return Err(broken(
            (head_seq + 1) as usize,
            head_seq,
            "truncated: the record does not match the head file's hash (the log's end was replaced)",
        ));
    }
    Ok(())
}

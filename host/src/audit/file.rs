//! File-level pieces of the audit log: the cross-process lock, the log's tail, the `.head`
//! sidecar and a line reader.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{AuditError, AuditRecord, GENESIS, io_error};

/// Holds a `File::lock`/`lock_shared` until dropped. Locks belong to the open file description,
/// so two `AuditLog`s on one file exclude each other even inside one process.
pub(super) struct FileLock<'f>(&'f File);

impl<'f> FileLock<'f> {
    pub(super) fn exclusive(file: &'f File, path: &Path) -> Result<Self, AuditError> {
        file.lock().map_err(io_error(path))?;
        Ok(FileLock(file))
    }

    pub(super) fn shared(file: &'f File, path: &Path) -> Result<Self, AuditError> {
        file.lock_shared().map_err(io_error(path))?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        // Closing the file would release it too; an error here leaves nothing to undo.
        let _ = self.0.unlock();
    }
}

/// The end of the log: its length and what the next record chains onto.
pub(super) struct Tail {
    pub(super) len: u64,
    pub(super) next_seq: u64,
    pub(super) last_hash: String,
}

impl Tail {
    /// Reads the last record. Call with the file locked.
    pub(super) fn read(file: &File, path: &Path) -> Result<Tail, AuditError> {
        let io = io_error(path);
        let len = file.metadata().map_err(&io)?.len();
        let Some(line) = last_line(file, len).map_err(&io)? else {
            return Ok(Tail {
                len,
                next_seq: 0,
                last_hash: GENESIS.to_owned(),
            });
        };
        let corrupt = |reason: String| AuditError::Corrupt {
            path: path.display().to_string(),
            line: 0,
            reason,
        };
        // Chaining onto a damaged tail would bury the damage mid-file: refuse instead.
        let Some(line) = line.strip_suffix(b"\n") else {
            return Err(corrupt("the last line is incomplete".into()));
        };
        let record: AuditRecord = serde_json::from_slice(line)
            .map_err(|e| corrupt(format!("the last line is not an audit record: {e}")))?;
        Ok(Tail {
            len,
            next_seq: record.seq + 1,
            last_hash: record.hash,
        })
    }
}

/// The last line of the first `len` bytes, with its newline if it has one; `None` when empty.
fn last_line(mut file: &File, len: u64) -> std::io::Result<Option<Vec<u8>>> {
    const CHUNK: u64 = 4096;
    let mut tail: Vec<u8> = Vec::new();
    let mut start = len;
    while start > 0 {
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        chunk.append(&mut tail);
        tail = chunk;
        start = from;
        // A newline before the final byte ends the previous line.
        let body = &tail[..tail.len() - 1];
        if let Some(nl) = body.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(tail[nl + 1..].to_vec()));
        }
    }
    Ok((!tail.is_empty()).then_some(tail))
}

/// `<log>.head`: a record's seq and hash, overwritten in place as the writer moves it (at most
/// `MAX_BATCH` records behind the last).
/// Fixed width ("{seq:020} {hash}\n") so that an overwrite never leaves stale bytes behind.
pub(super) struct Head {
    file: File,
    path: PathBuf,
    /// Nothing written yet: `verify` reads a log without a head as truncated, not as a crash.
    pub(super) empty: bool,
}

impl Head {
    pub(super) fn path(log: &Path) -> PathBuf {
        let mut name = log.as_os_str().to_owned();
        name.push(".head");
        PathBuf::from(name)
    }

    pub(super) fn open(log: &Path) -> Result<Head, AuditError> {
        let path = Self::path(log);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error(&path))?;
        let empty = file.metadata().map_err(io_error(&path))?.len() == 0;
        Ok(Head { file, path, empty })
    }

    /// Call with the log locked, after the records it names are synced. Synced like the log, so
    /// that after a crash it names a record the log still has.
    pub(super) fn write(&mut self, seq: u64, hash: &str) -> Result<(), AuditError> {
        let io = io_error(&self.path);
        self.file.seek(SeekFrom::Start(0)).map_err(&io)?;
        self.file
            .write_all(format!("{seq:020} {hash}\n").as_bytes())
            .map_err(&io)?;
        self.file.sync_data().map_err(&io)?;
        self.empty = false;
        Ok(())
    }

    /// `Ok(None)` when the sidecar is missing or empty; `Err(reason)` when it is malformed.
    pub(super) fn read(log: &Path) -> Result<Option<(u64, String)>, String> {
        let path = Self::path(log);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if text.is_empty() {
            return Ok(None);
        }
        let malformed = || format!("head file {} is malformed", path.display());
        let (seq, hash) = text.trim_end().split_once(' ').ok_or_else(malformed)?;
        let seq = seq.parse().map_err(|_| malformed())?;
        Ok(Some((seq, hash.to_owned())))
    }
}

pub(super) struct Line {
    /// 1-based.
    pub(super) number: usize,
    /// Without the newline.
    pub(super) bytes: Vec<u8>,
    /// False only for a last line cut short.
    pub(super) complete: bool,
}

pub(super) fn lines(file: &File) -> impl Iterator<Item = std::io::Result<Line>> + '_ {
    let mut reader = BufReader::new(file);
    let mut number = 0;
    std::iter::from_fn(move || {
        let mut bytes = Vec::new();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) => None,
            Ok(_) => {
                number += 1;
                let complete = bytes.last() == Some(&b'\n');
                if complete {
                    bytes.pop();
                }
                Some(Ok(Line {
                    number,
                    bytes,
                    complete,
                }))
            }
            Err(e) => Some(Err(e)),
        }
    })
}

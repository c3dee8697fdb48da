//! Append-only, hash-chained JSON Lines audit log of every egress attempt.
//!
//! Each record carries `prev` (the previous record's `hash`, "0"×64 for the first) and `hash`
//! (sha256 of the record's compact JSON without `hash`, fields in struct order). A chain alone
//! cannot show that its LAST records were removed, so a sidecar `<file>.head` holds the last seq
//! and hash; `verify` checks the log against it.

mod file;
mod table;
mod verify;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use table::{escape_invisible, format_table};
pub use verify::verify;

use file::{FileLock, Head, Tail};

/// `prev` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Set by `append`.
    pub seq: u64,
    /// RFC 3339 UTC with milliseconds, set by the caller.
    pub time: String,
    pub run: String,
    pub node_run: String,
    pub node: String,
    /// "sha256:<hex>" of the node's component.
    pub component: String,
    pub method: String,
    /// As the node wrote it, secrets masked as `[secret:NAME]`.
    pub url: String,
    /// What the URL reaches once parsed (`http://0x7f.1/` is `http://127.0.0.1/`), masked too;
    /// `None` when it does not parse.
    #[serde(default)]
    pub normalized_url: Option<String>,
    /// The host it reaches; for a URL that does not parse, the host as written, with invisible
    /// characters escaped.
    #[serde(default)]
    pub host: Option<String>,
    pub resolved_ip: Option<String>,
    pub decision: Decision,
    /// The rule or check that decided.
    pub rule: Option<String>,
    /// Names only.
    pub secrets: Vec<String>,
    pub status: Option<u16>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// Set by `append`: hash of the previous record, "0"×64 for the first.
    pub prev: String,
    /// Set by `append`: sha256 hex over the record's compact JSON without `hash`. Last, and
    /// left out while empty: `append` hashes the record's JSON as written up to here.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub run: Option<String>,
    pub node: Option<String>,
    pub decision: Option<Decision>,
}

impl AuditFilter {
    fn matches(&self, record: &AuditRecord) -> bool {
        self.run.as_ref().is_none_or(|r| *r == record.run)
            && self.node.as_ref().is_none_or(|n| *n == record.node)
            && self.decision.is_none_or(|d| d == record.decision)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A line that `open`, `append` or `read` cannot use (not a verification verdict; see
    /// `verify`). `line` is 0 when it is the last line of a file not read from the start.
    #[error("audit log {path}: line {line}: {reason}; run `airlock audit verify`")]
    Corrupt {
        path: String,
        line: usize,
        reason: String,
    },
    /// Writing the batch a record was in failed.
    #[error(transparent)]
    Batch(Arc<AuditError>),
    /// `seq` is the broken record's own seq, or the seq expected at that line when unreadable.
    #[error("audit chain broken at line {line} (seq {seq}): {reason}")]
    VerifyFailed {
        line: usize,
        seq: u64,
        reason: String,
    },
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// sha256 hex of `object` (a record as JSON) serialised compactly without its `hash` field.
fn chain_hash(
    mut object: serde_json::Map<String, serde_json::Value>,
) -> Result<String, serde_json::Error> {
    object.shift_remove("hash");
    Ok(hex::encode(Sha256::digest(serde_json::to_vec(&object)?)))
}

/// Appends `record` (its `seq` and `prev` set, its `hash` empty) to `lines` as one JSON line
/// ending in its hash, and returns the hash. Serialised once: the hash covers the bytes as
/// written up to the `hash` field, which comes last, so they are the record's compact JSON
/// without `hash` (what `verify` recomputes).
fn append_line(lines: &mut Vec<u8>, record: &AuditRecord) -> Result<String, serde_json::Error> {
    let start = lines.len();
    serde_json::to_writer(&mut *lines, record)?;
    let hash = hex::encode(Sha256::digest(&lines[start..]));
    lines.pop(); // The object's closing brace, after which `hash` goes.
    lines.extend_from_slice(b",\"hash\":\"");
    lines.extend_from_slice(hash.as_bytes());
    lines.extend_from_slice(b"\"}\n");
    Ok(hash)
}

/// Where the next record goes, as of our last look at the file. Owned by the writer thread.
struct Writer {
    path: PathBuf,
    file: File,
    head: HeadMark,
    tail: Tail,
}

/// The head file, and what this writer knows of the log relative to it.
struct HeadMark {
    file: Head,
    /// Records in the log past the last one the head names, as far as this writer knows
    /// (counted from the head file when another process has appended); kept at or below
    /// [`MAX_BATCH`] by moving the head before a batch would pass it.
    behind: u64,
    /// How much of the log this writer knows to be synced: the head may only name those lines.
    synced: u64,
}

/// A record waiting for the writer thread, and who to tell once it is on disk.
struct Pending {
    record: AuditRecord,
    /// A failed batch fails every record in it: the error is shared.
    written: tokio::sync::oneshot::Sender<Result<(), Arc<AuditError>>>,
}

/// The most bytes a text field of a record keeps: a node cannot grow the log by a megabyte per
/// request with a huge URL or error.
pub const MAX_FIELD_BYTES: usize = 2048;

impl AuditRecord {
    /// Cuts every text field the node controls to [`MAX_FIELD_BYTES`], saying so in the field.
    fn clip(&mut self) {
        let texts = [
            Some(&mut self.method),
            Some(&mut self.url),
            self.normalized_url.as_mut(),
            self.host.as_mut(),
            self.rule.as_mut(),
            self.error.as_mut(),
        ];
        for text in texts.into_iter().flatten() {
            if text.len() > MAX_FIELD_BYTES {
                let mut end = MAX_FIELD_BYTES;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                *text = format!(
                    "{}… [cut: {} bytes exceed the audit field limit of {MAX_FIELD_BYTES} bytes]",
                    &text[..end],
                    text.len()
                );
            }
        }
    }
}

/// The most records one batch writes and syncs together, and the most the head may lag.
const MAX_BATCH: usize = 512;
/// How long the writer waits for more records before it moves the head.
const HEAD_DELAY: std::time::Duration = std::time::Duration::from_millis(10);

/// The audit log; `Send + Sync`, append from many tasks.
///
/// Appends go to one writer thread per log that commits them in groups: every record that
/// arrived while the previous batch was syncing is written with one `write` and made durable
/// with one `sync_data`. Each caller still gets its answer only once its own record is on disk;
/// the fsync cost is shared instead of paid per record. The head is moved (and synced) after
/// the callers are answered, once the writer is idle or before the log would run too far past
/// it (see [`Writer::serve`]): callers wait for one sync, not two.
pub struct AuditLog {
    path: PathBuf,
    /// `None` only while dropping: closing the queue lets the writer finish and exit.
    queue: Option<std::sync::mpsc::Sender<Pending>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl AuditLog {
    /// Opens (creating dirs/file) an append-only JSON Lines file; finds the last hash and seq.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let io = io_error(path);
        let mut writer = Writer::open(path)?;
        let (queue, pending) = std::sync::mpsc::channel::<Pending>();
        let writer = std::thread::Builder::new()
            .name("airlock-audit".into())
            .spawn(move || writer.serve(&pending))
            .map_err(&io)?;
        Ok(AuditLog {
            path: path.to_owned(),
            queue: Some(queue),
            writer: Some(writer),
        })
    }

    fn enqueue(&self, pending: Pending) -> Result<(), AuditError> {
        self.queue
            .as_ref()
            .and_then(|queue| queue.send(pending).ok())
            .ok_or_else(|| self.writer_gone())
    }

    /// Queues a record without waiting for it, for callers that cannot wait (a node run being
    /// stopped inside a synchronous host call). It is written before this log is dropped.
    pub fn append_detached(&self, record: AuditRecord) -> Result<(), AuditError> {
        let (written, _) = tokio::sync::oneshot::channel();
        self.enqueue(Pending { record, written })
    }

    /// Fills `seq`, `prev`, `hash`, and returns once the record is written and synced.
    pub async fn append(&self, record: AuditRecord) -> Result<(), AuditError> {
        let (written, done) = tokio::sync::oneshot::channel();
        self.enqueue(Pending { record, written })?;
        let outcome = done.await.map_err(|_| self.writer_gone())?;
        outcome.map_err(AuditError::Batch)
    }

    /// [`AuditLog::append`] for code outside an async runtime.
    pub fn append_blocking(&self, record: AuditRecord) -> Result<(), AuditError> {
        let (written, done) = tokio::sync::oneshot::channel();
        self.enqueue(Pending { record, written })?;
        let outcome = done.blocking_recv().map_err(|_| self.writer_gone())?;
        outcome.map_err(AuditError::Batch)
    }

    fn writer_gone(&self) -> AuditError {
        AuditError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other("the audit writer thread stopped"),
        }
    }
}

impl Drop for AuditLog {
    /// Every queued record, detached ones included, is on disk before the log goes away.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Writer {
    fn open(path: &Path) -> Result<Writer, AuditError> {
        let io = io_error(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(&io)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(&io)?;
        let head = HeadMark {
            file: Head::open(path)?,
            behind: 0,
            synced: 0,
        };
        let tail = {
            let _lock = FileLock::shared(&file, path)?;
            Tail::read(&file, path)?
        };
        Ok(Writer {
            path: path.to_owned(),
            file,
            head,
            tail,
        })
    }

    /// Writes the queued records in batches until every [`AuditLog`] handle is gone and the
    /// queue is drained. The head is moved once no record has come for [`HEAD_DELAY`] (the
    /// callers already have their answers), at the end, or before the log would run more than
    /// [`MAX_BATCH`] records past it: under a steady stream it is synced once per
    /// [`MAX_BATCH`] records instead of once per batch, and a crash leaves it at most
    /// [`MAX_BATCH`] records behind, which `verify` accepts.
    fn serve(&mut self, queue: &std::sync::mpsc::Receiver<Pending>) {
        use std::sync::mpsc::RecvTimeoutError;
        loop {
            let first = match queue.recv_timeout(HEAD_DELAY) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => {
                    // A failure leaves the head behind; the batch that would take the log too
                    // far past it retries first, and fails if it cannot.
                    let _ = self.move_head();
                    match queue.recv() {
                        Ok(first) => first,
                        Err(_) => break,
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            batch.extend(queue.try_iter().take(MAX_BATCH - 1));
            let (records, waiters): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.record, p.written)).unzip();
            let outcome = self.write_batch(records).map_err(Arc::new);
            for waiter in waiters {
                let _ = waiter.send(outcome.clone());
            }
        }
        if let Err(err) = self.move_head() {
            tracing::error!(error = %err, "could not move the audit log's head to its last record");
        }
    }

    /// Chains and writes `records` (at most [`MAX_BATCH`]) in order and syncs them once; the
    /// head stays behind unless it must move first (see [`Writer::serve`]). Serialises with other
    /// processes through `File::lock`, re-reading the tail if one appended since.
    fn write_batch(&mut self, records: Vec<AuditRecord>) -> Result<(), AuditError> {
        let io = io_error(&self.path);
        let mut file: &File = &self.file;
        let _lock = FileLock::exclusive(file, &self.path)?;
        let len = file.metadata().map_err(&io)?.len();
        if len != self.tail.len {
            self.tail = Tail::read(file, &self.path)?;
            // Another process appended, and its head may be behind as well: count from the head.
            self.head.behind = match Head::read(&self.path) {
                Ok(Some((seq, _))) => self.tail.next_seq.saturating_sub(seq.saturating_add(1)),
                _ => u64::MAX,
            };
        }
        let count = records.len() as u64;
        if self.head.behind > 0 && self.head.behind.saturating_add(count) > MAX_BATCH as u64 {
            self.head.move_to_tail(&self.file, &self.path, &self.tail)?;
        }
        // A WEBHOOK's record is ~600 bytes.
        let mut lines = Vec::with_capacity(records.len() * 1024);
        let mut next_seq = self.tail.next_seq;
        let mut last_hash = self.tail.last_hash.clone();
        for mut record in records {
            record.clip();
            record.seq = next_seq;
            record.prev = last_hash;
            record.hash.clear();
            // serde_json's errors convert to io::Error; none is expected for this plain struct.
            last_hash = append_line(&mut lines, &record).map_err(|e| io(e.into()))?;
            next_seq += 1;
        }
        // The audit must survive a crash: one sync_data per batch (~0.2-0.4 ms here).
        let written = file
            .write_all(&lines)
            .and_then(|()| file.flush())
            .and_then(|()| file.sync_data());
        // What is on the file now, whole or not: a failed write makes the next batch re-read.
        self.tail = Tail {
            len: len + lines.len() as u64,
            next_seq,
            last_hash,
        };
        // Counted even if the sync failed: the lines are in the file, and the head moves past
        // them only after a sync that succeeds.
        self.head.behind = self.head.behind.saturating_add(count);
        written.map_err(&io)?;
        self.head.synced = self.tail.len;
        if self.head.file.empty {
            // A log without a head fails `verify`; only a head behind is a crash's mark.
            self.head.move_to_tail(&self.file, &self.path, &self.tail)?;
        }
        Ok(())
    }

    /// Moves the head to the log's last record, re-reading the tail if another process
    /// appended since. A log shorter than this writer left it had its end cut: the head stays,
    /// so that `verify` still shows the cut.
    fn move_head(&mut self) -> Result<(), AuditError> {
        if self.head.behind == 0 {
            return Ok(());
        }
        let _lock = FileLock::exclusive(&self.file, &self.path)?;
        let len = self.file.metadata().map_err(io_error(&self.path))?.len();
        if len < self.tail.len {
            return Err(AuditError::Corrupt {
                path: self.path.display().to_string(),
                line: 0,
                reason: format!(
                    "the log is {} bytes shorter than this writer left it (its end was cut, \
                     or a write failed); the head is left where it was",
                    self.tail.len - len
                ),
            });
        }
        if len != self.tail.len {
            self.tail = Tail::read(&self.file, &self.path)?;
        }
        self.head.move_to_tail(&self.file, &self.path, &self.tail)
    }
}

impl HeadMark {
    /// Moves the head to the log's last record, after making sure every line up to it is
    /// synced (a failed sync, ours or another process's, leaves lines a crash could lose, and a
    /// head naming one would read as a cut log). Call with the log locked and `tail` current.
    fn move_to_tail(&mut self, log: &File, path: &Path, tail: &Tail) -> Result<(), AuditError> {
        let Some(last) = tail.next_seq.checked_sub(1) else {
            // An empty log has no record to name.
            self.behind = 0;
            return Ok(());
        };
        if self.synced != tail.len {
            log.sync_data().map_err(io_error(path))?;
            self.synced = tail.len;
        }
        self.file.write(last, &tail.last_hash)?;
        self.behind = 0;
        Ok(())
    }
}

/// The records of the log at `path` that pass `filter`, in file order. A missing file has none.
pub fn read(path: &Path, filter: &AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(path)(e)),
    };
    let _lock = FileLock::shared(&file, path)?;
    let mut records = Vec::new();
    for line in file::lines(&file) {
        let line = line.map_err(io_error(path))?;
        let record: AuditRecord =
            serde_json::from_slice(&line.bytes).map_err(|e| AuditError::Corrupt {
                path: path.display().to_string(),
                line: line.number,
                reason: format!("not an audit record: {e}"),
            })?;
        if filter.matches(&record) {
            records.push(record);
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests;

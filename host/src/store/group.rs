//! Group commit of the run journal: one writer thread takes every change queued while it was
//! committing the last group and commits them together, in one transaction, each in its own
//! savepoint (a change that fails is undone alone). Nobody hears that a change is done before the
//! transaction holding it has committed, so the engine still acts only on committed state; many
//! runs in flight share one commit's WAL write and locking instead of paying for their own.
//!
//! Under load the writer keeps a group open a little longer: draining only what has already
//! arrived gave groups of ~3 changes in the serve benchmark (the writer is quicker than the runs
//! feeding it), each commit rewriting the same right-edge pages of every index. A run's driver
//! awaits each of its changes, so a group is hardly ever larger than the runs in flight: the
//! writer waits only after a group of GATHER_AFTER or more, and a few runs never wait for company.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

/// Enough to amortise a commit over a burst of runs without making one group's wait long.
const MAX_GROUP: usize = 256;

/// How long a group stays open for more changes after a group of GATHER_AFTER or more: ~20% more
/// serve throughput at concurrency 64 than no wait (0.5 to 4 ms measured; 1 ms best), while it
/// adds at most this much to a change's wait, and only when the store is busy.
const GATHER: Duration = Duration::from_millis(1);

/// The size of group after which the next one waits for GATHER (so at least this many runs are
/// in flight, enough for the wait to fill the group).
const GATHER_AFTER: usize = 4;

/// Why a queued change is not committed.
#[derive(Debug)]
pub(super) enum GroupError {
    /// The change itself failed (and was undone); the rest of its group stands.
    Change(rusqlite::Error),
    /// The group's transaction could not begin, or commit: nothing in it was stored.
    Commit(String),
    /// The writer thread is gone (it only stops when the store is dropped).
    Stopped,
}

/// A change waiting for the writer thread, and who to tell how it fared.
trait Change: Send {
    /// Applies the change in its own savepoint. Err only when the transaction is no longer
    /// usable (a savepoint could not be undone): the whole group is then abandoned.
    fn apply(&mut self, db: &Connection) -> rusqlite::Result<()>;
    /// Told once the group has committed, or failed to.
    fn answer(self: Box<Self>, group: Result<(), &str>);
}

struct Queued<T, F> {
    change: Option<F>,
    applied: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<Result<T, GroupError>>,
}

impl<T, F> Change for Queued<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send,
{
    fn apply(&mut self, db: &Connection) -> rusqlite::Result<()> {
        let Some(change) = self.change.take() else {
            return Ok(());
        };
        db.prepare_cached("SAVEPOINT change")?.execute([])?;
        let applied = change(db);
        if applied.is_err() {
            db.prepare_cached("ROLLBACK TO change")?.execute([])?;
        }
        db.prepare_cached("RELEASE change")?.execute([])?;
        self.applied = Some(applied);
        Ok(())
    }

    fn answer(self: Box<Self>, group: Result<(), &str>) {
        let answer = match (self.applied, group) {
            (Some(Err(e)), _) => Err(GroupError::Change(e)),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(reason)) => Err(GroupError::Commit(reason.to_owned())),
            (None, Ok(())) => Err(GroupError::Commit("the change was not applied".into())),
        };
        // A caller that stopped waiting (its task was aborted) needs no answer.
        let _ = self.reply.send(answer);
    }
}

pub(super) struct GroupCommit {
    queue: Option<mpsc::Sender<Box<dyn Change>>>,
    writer: Option<JoinHandle<()>>,
}

impl GroupCommit {
    pub(super) fn start(db: Arc<Mutex<Connection>>) -> std::io::Result<GroupCommit> {
        let (queue, changes) = mpsc::channel::<Box<dyn Change>>();
        let writer = std::thread::Builder::new()
            .name("airlock-run-store".into())
            .spawn(move || write_groups(&db, &changes))?;
        Ok(GroupCommit {
            queue: Some(queue),
            writer: Some(writer),
        })
    }

    /// Queues `change`; the answer comes once its group has committed.
    pub(super) async fn commit<T, F>(&self, change: F) -> Result<T, GroupError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let queued = Box::new(Queued {
            change: Some(change),
            applied: None,
            reply,
        });
        let queue = self.queue.as_ref().ok_or(GroupError::Stopped)?;
        queue.send(queued).map_err(|_| GroupError::Stopped)?;
        answer.await.map_err(|_| GroupError::Stopped)?
    }
}

impl Drop for GroupCommit {
    /// Every queued change is committed and answered before the store is gone.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_groups(db: &Mutex<Connection>, changes: &mpsc::Receiver<Box<dyn Change>>) {
    let mut last_group = 0;
    while let Ok(first) = changes.recv() {
        let mut group = vec![first];
        gather(changes, &mut group, gather_deadline(last_group));
        last_group = group.len();
        let committed = {
            let mut db = crate::sync::lock(db);
            commit_group(&mut db, &mut group).map_err(|e| e.to_string())
        };
        for change in group {
            change.answer(committed.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

/// How long the next group may wait for company, after a group of `last_group` changes.
fn gather_deadline(last_group: usize) -> Option<Instant> {
    (last_group >= GATHER_AFTER).then(|| Instant::now() + GATHER)
}

/// Adds to `group` every change already queued and, with a deadline, those that come before it,
/// up to MAX_GROUP.
fn gather<T>(changes: &mpsc::Receiver<T>, group: &mut Vec<T>, deadline: Option<Instant>) {
    group.extend(changes.try_iter().take(MAX_GROUP - group.len()));
    let Some(deadline) = deadline else {
        return;
    };
    while group.len() < MAX_GROUP {
        let left = deadline.saturating_duration_since(Instant::now());
        match changes.recv_timeout(left) {
            Ok(change) => group.push(change),
            Err(_) => return,
        }
    }
}

fn commit_group(db: &mut Connection, group: &mut [Box<dyn Change>]) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    for change in group.iter_mut() {
        change.apply(&tx)?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_deadline_a_group_takes_only_what_has_arrived() {
        let (queue, changes) = mpsc::channel();
        for n in 1..=3 {
            queue.send(n).unwrap();
        }
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            queue.send(4).unwrap();
        });
        let mut group = vec![0];
        gather(&changes, &mut group, None);
        assert_eq!(group, [0, 1, 2, 3]);
        late.join().unwrap();
    }

    #[test]
    fn with_a_deadline_a_group_takes_what_comes_before_it_and_no_more() {
        let (queue, changes) = mpsc::channel();
        let sender = std::thread::spawn(move || {
            queue.send(1).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            queue.send(2).unwrap();
            std::thread::sleep(Duration::from_millis(400));
            queue.send(3).unwrap();
        });
        let mut group = vec![0];
        let started = Instant::now();
        gather(
            &changes,
            &mut group,
            Some(started + Duration::from_millis(200)),
        );
        assert_eq!(group, [0, 1, 2]);
        assert!(started.elapsed() >= Duration::from_millis(200));
        sender.join().unwrap();
        assert_eq!(changes.recv().unwrap(), 3);
    }

    #[test]
    fn only_a_group_of_several_runs_makes_the_next_one_wait() {
        for alone in 0..GATHER_AFTER {
            assert_eq!(gather_deadline(alone), None, "after a group of {alone}");
        }
        let deadline = gather_deadline(GATHER_AFTER).expect("a busy store waits");
        assert!(deadline <= Instant::now() + GATHER);
    }

    #[test]
    fn a_group_stops_at_its_size_limit() {
        let (queue, changes) = mpsc::channel();
        for n in 0..MAX_GROUP + 10 {
            queue.send(n).unwrap();
        }
        let mut group = vec![];
        let started = Instant::now();
        gather(
            &changes,
            &mut group,
            Some(started + Duration::from_secs(10)),
        );
        assert_eq!(group.len(), MAX_GROUP);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "it waited although the group was full"
        );
    }
}

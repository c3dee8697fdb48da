//! Locking state shared between tasks and threads.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Takes the lock even when a thread panicked holding it: no guarded value here is left half
/// changed by a panic (each is changed by one statement, or rebuilt on failure), and one node
/// run's or request's panic must not take every later one down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

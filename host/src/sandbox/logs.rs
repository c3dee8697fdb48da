//! A node run's log: the lines the node writes through the `log` import, and the host's notes on
//! requests its standard HTTP client could not make (wasi:http error codes carry no reason).

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::sync::lock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    #[serde(rename = "logLevel")]
    pub level: LogLevel,
    #[serde(rename = "log")]
    pub message: String,
}

/// Shared by the node run's store and the wasi:http requests it has in flight, which end
/// outside any host call.
#[derive(Debug, Clone, Default)]
pub(super) struct NodeLog {
    lines: Arc<Mutex<Vec<LogLine>>>,
}

impl NodeLog {
    pub(super) fn push(&self, level: LogLevel, message: String) {
        lock(&self.lines).push(LogLine { level, message });
    }

    pub(super) fn take(&self) -> Vec<LogLine> {
        std::mem::take(&mut *lock(&self.lines))
    }
}

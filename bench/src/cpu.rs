//! CPU time (user + system) of this process and of the bench server's threads, read from
//! `/proc`. A side's CPU per op is the process's CPU over its batches minus the server's share
//! (the server stands in for a remote service, so its cost is not the side's), over the ops.

use std::ops::{AddAssign, Sub};
use std::time::Duration;

use anyhow::Context as _;

use crate::server::SERVER_THREAD;

/// Process and server CPU at one moment (or, after a subtraction, over an interval).
#[derive(Clone, Copy, Default)]
pub struct CpuTimes {
    pub process: Duration,
    pub server: Duration,
}

impl CpuTimes {
    pub fn now() -> anyhow::Result<CpuTimes> {
        Ok(CpuTimes {
            process: process_cpu()?,
            server: server_cpu()?,
        })
    }

    /// The process's CPU without the server's share.
    pub fn client(&self) -> Duration {
        self.process.saturating_sub(self.server)
    }
}

impl Sub for CpuTimes {
    type Output = CpuTimes;
    fn sub(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            process: self.process.saturating_sub(earlier.process),
            server: self.server.saturating_sub(earlier.server),
        }
    }
}

impl AddAssign for CpuTimes {
    fn add_assign(&mut self, other: CpuTimes) {
        self.process += other.process;
        self.server += other.server;
    }
}

/// The process's user + system time, to the microsecond.
fn process_cpu() -> anyhow::Result<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given and returns 0.
    let usage = unsafe {
        anyhow::ensure!(
            libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) == 0,
            "getrusage failed: {}",
            std::io::Error::last_os_error()
        );
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(time(usage.ru_utime) + time(usage.ru_stime))
}

/// User + system time of every thread named for the bench server (clock-tick resolution, which
/// is fine over batches of seconds).
fn server_cpu() -> anyhow::Result<Duration> {
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
        let stat = match std::fs::read_to_string(task?.path().join("stat")) {
            Ok(stat) => stat,
            // A thread that ended between the listing and the read used no more CPU.
            Err(_) => continue,
        };
        ticks += server_ticks(&stat).unwrap_or(0);
    }
    Ok(Duration::from_micros(ticks * 1_000_000 / ticks_per_second))
}

/// utime + stime of a `/proc/…/task/…/stat` line, if the thread is the server's.
fn server_ticks(stat: &str) -> Option<u64> {
    let (head, tail) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    if !name.starts_with(SERVER_THREAD) {
        return None;
    }
    // After the name: state is field 3 of stat(5); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = tail.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_thread_line_gives_its_ticks_and_another_thread_none() {
        let line = "4242 (bench-server) S 1 2 3 4 5 6 7 8 9 10 120 35 0 0 20 0 1 0";
        assert_eq!(server_ticks(line), Some(155));
        let other = "4243 (tokio-runtime-w) S 1 2 3 4 5 6 7 8 9 10 120 35 0 0 20 0 1 0";
        assert_eq!(server_ticks(other), None);
    }
}

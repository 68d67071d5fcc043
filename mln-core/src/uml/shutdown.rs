//! Clean shutdown of a UML guest: Ctrl-Alt-Del through the management
//! console, sent only once the guest's init will act on it.
//!
//! The kernel answers Ctrl-Alt-Del in one of two ways, chosen by the
//! `kernel.ctrl-alt-del` sysctl: `1` (the value every boot starts with)
//! reboots at once, `0` sends SIGINT to init. An init that handles
//! Ctrl-Alt-Del sets `0` with `reboot(RB_DISABLE_CAD)` as it starts
//! (busybox, sysvinit and systemd all do). A `cad` sent before that makes
//! UML reboot in the same process, where the new boot cannot even open its
//! copy-on-write disk (the old run still holds its lock): the guest panics
//! or hangs instead of shutting down.
//!
//! So the request waits until the guest's `/proc/sys/kernel/ctrl-alt-del`
//! (read through the management console's `proc` request) says `0`. This
//! holds for any template, not only the busybox one. Busybox init blocks
//! signals before it disables the reboot and handles a SIGINT that arrives
//! during its `sysinit` script once that script is done, so a guest stopped
//! right after it started still finishes booting (startup lines included)
//! and then runs its shutdown lines.

use std::path::Path;
use std::time::{Duration, Instant};

use super::mconsole::{McError, Mconsole};
use super::process::{Liveness, ProcessRecord};
use super::tail;

/// How often the guest is asked whether its init took Ctrl-Alt-Del over.
/// While its `/proc` is not ready, every failed request prints a line on
/// the guest's console: ask a few times a second, not more.
const POLL: Duration = Duration::from_millis(100);

/// How long one `proc` request may take before the next one is sent (early
/// in boot, a request can go unnoticed until the next one arrives).
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);

/// What the kernel prints when it reboots.
const RESTARTING: &str = "reboot: Restarting system";

/// How a wait for the guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The guest's process exited (after its init powered it off, or by
    /// dying).
    Exited,
    /// The time ran out with the guest still running.
    TimedOut,
}

/// The guest whose console log is `log`, whose management console socket
/// is `socket` and whose main process is `proc`.
pub(super) struct CtrlAltDel<'a> {
    pub name: &'a str,
    pub socket: &'a Path,
    pub log: &'a Path,
    pub proc: &'a ProcessRecord,
    /// How long the `cad` request itself may wait for its answer.
    pub request_timeout: Duration,
}

impl CtrlAltDel<'_> {
    /// Ask the guest's init to shut down and wait, at most `timeout`, for
    /// the guest to exit. Returns early when the guest dies, whatever the
    /// reason.
    pub fn run(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let probe = Mconsole::new(self.name, self.socket, PROBE_TIMEOUT);
        // After a reboot, the old kernel's answer ("0") may still be in
        // flight: trust a "0" only after the new boot showed itself.
        let mut after_restart = false;
        loop {
            if let Some(outcome) = self.wait_init_takes_cad(&probe, deadline, after_restart) {
                return outcome;
            }
            let offset = log_len(self.log);
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mc = Mconsole::new(self.name, self.socket, self.request_timeout.min(remaining));
            match mc.request_raw("cad") {
                Ok(_) => {}
                // Gone (or going): nothing more to ask, only to wait for.
                Err(McError::Unreachable(_)) => return self.wait_exit(deadline),
                // The request may still have arrived: watch what happens.
                Err(e) => log::warn!("uml guest {}: Ctrl-Alt-Del: {e:?}", self.name),
            }
            loop {
                if self.proc.wait_exit(POLL) {
                    return Outcome::Exited;
                }
                if Instant::now() >= deadline {
                    return Outcome::TimedOut;
                }
                // Only an init that gave Ctrl-Alt-Del back to the kernel
                // (e.g. while it reboots) gets here.
                if since(self.log, offset).contains(RESTARTING) {
                    log::info!(
                        "uml guest {}: rebooted on Ctrl-Alt-Del; asking its next boot again",
                        self.name
                    );
                    after_restart = true;
                    break;
                }
            }
        }
    }

    /// Wait until the guest's kernel hands Ctrl-Alt-Del to init (`None`),
    /// or the guest exits, or `deadline` passes.
    fn wait_init_takes_cad(
        &self,
        probe: &Mconsole,
        deadline: Instant,
        mut after_restart: bool,
    ) -> Option<Outcome> {
        loop {
            if self.proc.liveness() != Liveness::Alive {
                return Some(Outcome::Exited);
            }
            match probe.request_raw("proc sys/kernel/ctrl-alt-del") {
                Ok(value) if value.trim() == "0" => {
                    if !after_restart {
                        return None;
                    }
                }
                // "1", or no answer yet (no /proc, or the console not
                // serving yet): a kernel that has not handed it over, so
                // any later "0" comes from a live init.
                Ok(_) | Err(_) => after_restart = false,
            }
            if Instant::now() >= deadline {
                log::warn!(
                    "uml guest {}: its init never took Ctrl-Alt-Del over \
                     (kernel.ctrl-alt-del stayed 1); not sending it",
                    self.name
                );
                return Some(Outcome::TimedOut);
            }
            std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
        }
    }

    fn wait_exit(&self, deadline: Instant) -> Outcome {
        if self
            .proc
            .wait_exit(deadline.saturating_duration_since(Instant::now()))
        {
            Outcome::Exited
        } else {
            Outcome::TimedOut
        }
    }
}

fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len())
}

/// What the log gained since `offset` (at most its last 4 KiB).
fn since(log: &Path, offset: u64) -> String {
    tail(log, log_len(log).saturating_sub(offset).min(4096))
}

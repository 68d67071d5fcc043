//! The QEMU backend's [`Hypervisor`] implementation: a QEMU process per
//! guest (started in `spawn.rs`), driven through QMP.

use std::fs;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::qmp::{
    Balloon, Cont, QmpClient, QueryBalloon, QueryStatus, Quit, SetRebootAction, Stop,
    SystemPowerdown, SystemReset,
};
use super::spawn::reap;
use super::{args, bridge, Phase, Qemu, Record, BACKEND, QMP, RECORD};
use crate::console::{self, last_lines, powered_off};
use crate::domain::{BackendKind, BootStatus, DomainInfo, DomainSpec, DomainState, Hypervisor};
use crate::error::{Error, Result};
use crate::name::SafeName;
use crate::uml::process::{self, Liveness};

/// How often the power button is pressed again during a clean shutdown:
/// a press before the guest's ACPI daemon runs is lost.
const POWER_BUTTON_EVERY: Duration = Duration::from_secs(2);

/// How long a guest without a boot marker must stay up to count as
/// booted (as for UML guests).
const SETTLE: Duration = Duration::from_secs(3);

/// The smallest memory target accepted (a guest ballooned below this
/// stops being useful, or gets killed by its own OOM killer).
const MIN_MEMORY: u64 = 16 << 20;

impl Qemu {
    /// The run state QEMU reports, mapped; `None` when QMP does not answer.
    fn queried_state(&self, name: &str) -> Option<(DomainState, Option<u64>)> {
        let mut qmp = QmpClient::connect(
            name,
            &self.dir(name).ok()?.join(QMP),
            Duration::from_secs(2),
        )
        .ok()?;
        let status = qmp.execute(&QueryStatus).ok()?;
        let state = match status.status.as_str() {
            "running" => DomainState::Running,
            "shutdown" => DomainState::Shutdown,
            "guest-panicked" | "internal-error" | "io-error" => DomainState::Crashed,
            _ if status.running => DomainState::Running,
            _ => DomainState::Paused,
        };
        let memory = qmp.execute(&QueryBalloon).ok().map(|b| b.actual);
        Some((state, memory))
    }

    /// Has guest `name` finished booting: printed its spec's boot marker
    /// on the console in this run, or, without a marker, answered QMP and
    /// stayed up a few seconds? A guest whose QEMU exited meanwhile is
    /// [`BootStatus::Failed`], with the end of its console.
    pub fn boot_status(&self, name: &str) -> Result<BootStatus> {
        let record = self.read_record(name)?;
        let info = self.info(name)?;
        if !matches!(info.state, DomainState::Running | DomainState::Paused) {
            let console = self.log_since(name, record.log_offset);
            let reason =
                crate::uml::CrashCause::diagnose(&console).map(|c| format!("{c}; {}", c.fix()));
            return Ok(BootStatus::Failed {
                state: info.state,
                reason,
                console: last_lines(&console, 12),
                // A QEMU guest's disk is a real block device: a journal it
                // cannot load is damaged, not a passing fault.
                transient: false,
            });
        }
        let booted = match &record.spec.boot_marker {
            Some(marker) => {
                console::contains_from(&self.console_log(name)?, record.log_offset, marker)
            }
            None => {
                let settled = record
                    .started_at
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|up| up >= SETTLE);
                settled && self.queried_state(name).is_some()
            }
        };
        if booted && record.balloon_pending {
            self.balloon_after_boot(record)?;
        }
        Ok(if booted {
            BootStatus::Booted
        } else {
            BootStatus::Booting
        })
    }

    /// The balloon target a guest booted without: set it now.
    fn balloon_after_boot(&self, mut record: Record) -> Result<()> {
        self.qmp(&record.spec.name)?.execute(&Balloon {
            value: record.memory,
        })?;
        record.balloon_pending = false;
        self.write_record(&record)
    }
}

impl Hypervisor for Qemu {
    fn kind(&self) -> BackendKind {
        BackendKind::Qemu
    }

    fn create(&self, spec: &DomainSpec) -> Result<DomainInfo> {
        let dir = self.dir(&spec.name)?;
        args::check(spec)?;
        bridge::check(spec)?;
        Self::check_files(spec)?;
        let sock = dir.join(QMP);
        if sock.as_os_str().len() > crate::uml::MAX_SOCKET_PATH {
            return Err(Error::UnusablePath {
                path: sock,
                what: "QMP socket",
                reason: "longer than a unix socket path may be (107 bytes)",
            });
        }
        if dir.join(RECORD).exists() {
            return Err(Error::AlreadyExists {
                domain: spec.name.clone(),
            });
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        self.write_record(&Record {
            spec: spec.clone(),
            memory: spec.memory,
            phase: Phase::Defined,
            log_offset: 0,
            started_at: None,
            acceleration: None,
            balloon_pending: false,
        })?;
        self.info(&spec.name)
    }

    fn start(&self, name: &str) -> Result<()> {
        let mut record = self.read_record(name)?;
        if record.phase != Phase::Defined && self.live_process(name)?.is_some() {
            return Err(Error::WrongState {
                domain: name.to_string(),
                op: "start",
                state: self.info_state(name).to_string(),
            });
        }
        if let Some(old) = self.process(name)? {
            old.kill_group(&self.marker(name)?);
        }
        record.memory = record.spec.memory;
        let proc = self.spawn(&mut record, false)?;
        self.balloon_and_run(&mut record).inspect_err(|_| {
            proc.kill_group(&self.marker(name).unwrap_or_default());
        })
    }

    fn pause(&self, name: &str) -> Result<()> {
        let (mut record, _) = self.require_live(name, "pause")?;
        if self.info(name)?.state != DomainState::Running {
            return Err(Error::WrongState {
                domain: name.to_string(),
                op: "pause",
                state: self.info_state(name).to_string(),
            });
        }
        self.qmp(name)?.execute(&Stop)?;
        record.phase = Phase::Paused;
        self.write_record(&record)
    }

    fn resume(&self, name: &str) -> Result<()> {
        if self.read_record(name)?.phase == Phase::Defined {
            return self.start(name);
        }
        let (mut record, _) = self.require_live(name, "resume")?;
        if self.info(name)?.state != DomainState::Paused {
            return Err(Error::WrongState {
                domain: name.to_string(),
                op: "resume",
                state: self.info_state(name).to_string(),
            });
        }
        self.qmp(name)?.execute(&Cont)?;
        record.phase = Phase::Running;
        self.write_record(&record)
    }

    fn shutdown(&self, name: &str, timeout: Duration) -> Result<()> {
        let mut record = self.read_record(name)?;
        if let (Some(proc), true) = (self.live_process(name)?, record.phase != Phase::Defined) {
            let deadline = Instant::now() + timeout;
            let mut qmp = self.qmp(name)?;
            if !qmp.execute(&QueryStatus)?.running {
                qmp.execute(&Cont)?;
            }
            drop(qmp);
            record.phase = Phase::Stopping;
            self.write_record(&record)?;
            // The ACPI power button, pressed again until the guest acts on
            // it: its init runs the shutdown actions and powers off, and
            // QEMU exits with it.
            let mut exited = false;
            while !exited && Instant::now() < deadline {
                if let Err(e) = self.qmp(name).and_then(|mut q| q.execute(&SystemPowerdown)) {
                    log::debug!("qemu guest {name}: power button: {e}");
                }
                let wait =
                    POWER_BUTTON_EVERY.min(deadline.saturating_duration_since(Instant::now()));
                exited = proc.wait_exit(wait);
            }
            if !exited {
                log::warn!("qemu guest {name}: no clean shutdown within {timeout:?}, ending it");
                let _ = self.qmp(name).and_then(|mut q| q.execute(&Quit));
                proc.wait_exit(Duration::from_secs(5));
            }
        }
        if let Some(proc) = self.process(name)? {
            proc.kill_group(&self.marker(name)?);
            reap(&proc);
        }
        self.remove(name)
    }

    fn reboot(&self, name: &str) -> Result<()> {
        self.require_live(name, "reboot")?;
        let mut qmp = self.qmp(name)?;
        // QEMU decides at the request whether a reset reboots or ends it.
        qmp.execute(&SetRebootAction { reboot: "reset" })?;
        let reset = qmp.execute(&SystemReset);
        qmp.execute(&SetRebootAction { reboot: "shutdown" })?;
        reset.map(drop)
    }

    fn destroy(&self, name: &str) -> Result<()> {
        self.read_record(name)?;
        if let Some(proc) = self.process(name)? {
            if !proc.kill_group(&self.marker(name)?) {
                return Err(Error::Timeout {
                    what: name.to_string(),
                    op: "destroy",
                    after: Duration::from_secs(10),
                });
            }
            reap(&proc);
        }
        self.remove(name)
    }

    fn info(&self, name: &str) -> Result<DomainInfo> {
        let record = self.read_record(name)?;
        let proc = self.process(name)?;
        let mut memory = record.memory;
        let (state, id, cpu_time) = match (record.phase, proc) {
            (Phase::Defined, _) => (DomainState::Paused, 0, Duration::ZERO),
            (_, None) => (DomainState::Unknown, 0, Duration::ZERO),
            (phase, Some(p)) => match p.liveness() {
                Liveness::Alive => {
                    let state = match (self.queried_state(name), phase) {
                        (Some((state, actual)), _) => {
                            memory = actual.unwrap_or(memory);
                            state
                        }
                        // QMP busy (another client) or not up yet.
                        (None, Phase::Paused) => DomainState::Paused,
                        (None, _) => DomainState::Running,
                    };
                    let state = match (phase, state) {
                        (Phase::Stopping, DomainState::Running) => DomainState::Dying,
                        (_, s) => s,
                    };
                    (state, p.pid, process::cpu_time(p.pid).unwrap_or_default())
                }
                Liveness::Exited(_) => {
                    let halted = phase == Phase::Stopping
                        || powered_off(&self.log_since(name, record.log_offset));
                    let state = if halted {
                        DomainState::Shutdown
                    } else {
                        DomainState::Crashed
                    };
                    (state, p.pid, Duration::ZERO)
                }
            },
        };
        Ok(DomainInfo {
            name: record.spec.name.clone(),
            id,
            backend: BackendKind::Qemu,
            state,
            memory,
            max_memory: record.spec.effective_max_memory(),
            vcpus: record.spec.vcpus,
            cpu_time,
        })
    }

    fn list(&self) -> Result<Vec<DomainInfo>> {
        let entries = fs::read_dir(&self.state_dir).map_err(|e| Error::io(&self.state_dir, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.state_dir, e))?;
            let Some(name) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            if SafeName::new(&name).is_err() || !entry.path().join(RECORD).exists() {
                continue;
            }
            match self.info(&name) {
                Ok(info) => out.push(info),
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn set_memory(&self, name: &str, bytes: u64) -> Result<()> {
        let (mut record, _) = self.require_live(name, "set memory")?;
        let max = record.spec.effective_max_memory();
        if bytes > max || bytes < MIN_MEMORY {
            return Err(Error::Backend {
                what: name.to_string(),
                message: format!(
                    "memory {bytes} bytes is outside {MIN_MEMORY} ..= the maximum {max} bytes \
                     QEMU started with"
                ),
            });
        }
        self.qmp(name)?.execute(&Balloon { value: bytes })?;
        record.memory = bytes;
        self.write_record(&record)
    }

    fn set_vcpus(&self, name: &str, count: u32) -> Result<()> {
        let record = self.read_record(name)?;
        if count == record.spec.vcpus {
            Ok(())
        } else {
            Err(Error::Unsupported {
                backend: BACKEND,
                op: "changing the number of vCPUs of a running guest",
            })
        }
    }

    fn boot_status(&self, name: &str) -> Result<BootStatus> {
        Qemu::boot_status(self, name)
    }

    fn exec(
        &self,
        name: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<crate::exec::ExecOutput> {
        self.require_live(name, "run a command")?;
        let dir = self.dir(name)?;
        let socket = dir.join(super::AGENT_SOCKET);
        crate::exec::locked(&dir.join("exec.lock"), || {
            let stream = std::os::unix::net::UnixStream::connect(&socket)
                .map_err(|e| Error::io(&socket, e))?;
            stream
                .set_nonblocking(true)
                .map_err(|e| Error::io(&socket, e))?;
            crate::exec::run(name, stream, argv, timeout)
        })
    }

    fn console(&self, name: &str) -> Result<crate::attach::ConsoleEndpoint> {
        self.require_live(name, "attach to its console")?;
        Ok(crate::attach::ConsoleEndpoint::Socket(
            self.dir(name)?.join(super::CONSOLE_SOCKET),
        ))
    }

    fn save(&self, name: &str, path: &Path) -> Result<()> {
        self.save_to_file(name, path)
    }

    fn restore(&self, spec: &DomainSpec, path: &Path) -> Result<DomainInfo> {
        self.restore_from_file(spec, path)
    }

    fn migrate_send(&self, name: &str, stream: BorrowedFd<'_>) -> Result<()> {
        self.send_state(name, stream)
    }

    fn migrate_receive(&self, spec: &DomainSpec, stream: BorrowedFd<'_>) -> Result<DomainInfo> {
        self.receive_state(spec, stream)
    }
}

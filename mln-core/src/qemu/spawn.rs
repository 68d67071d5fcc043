//! Starting a guest's QEMU process: checking what its spec names, the
//! command line, the console log and pid file, waiting for the QMP socket;
//! then its balloon and the first `cont`. And reaping a killed QEMU.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::qmp::{Balloon, Cont, QmpClient};
use super::{args, bridge, Phase, Qemu, Record, CONSOLE, PID, QMP};
use crate::console::last_lines;
use crate::domain::{Attachment, Boot, DomainSpec};
use crate::error::{Error, Result};
use crate::uml::process::{Liveness, ProcessRecord};

/// util-linux's `setsid`: the guest leads a session of its own (no
/// controlling terminal, its own process group), in the very process we
/// spawn (see `uml::guest_command`).
const SETSID: &str = "setsid";
/// util-linux's `taskset`, for a pinned guest (`cpus`).
const TASKSET: &str = "taskset";

impl Qemu {
    /// Check that what the spec names exists, and that its switches answer.
    pub(super) fn check_files(spec: &DomainSpec) -> Result<()> {
        let exists = |path: &Path, what: &'static str| {
            if path.exists() {
                Ok(())
            } else {
                Err(Error::MissingFile {
                    what,
                    path: path.to_path_buf(),
                })
            }
        };
        if let Boot::Kernel {
            kernel, ramdisk, ..
        } = &spec.boot
        {
            exists(kernel, "kernel")?;
            if let Some(rd) = ramdisk {
                exists(rd, "ramdisk")?;
            }
        }
        for disk in &spec.disks {
            exists(&disk.path, "disk image")?;
        }
        for iface in &spec.interfaces {
            if let Attachment::Vde(sock) = &iface.attach {
                let ctl = sock.join("ctl");
                exists(&ctl, "vde switch control socket")?;
                // A killed switch leaves its socket file behind.
                if let Err(e) = std::os::unix::net::UnixStream::connect(&ctl) {
                    return Err(Error::Backend {
                        what: spec.name.clone(),
                        message: format!(
                            "the switch at {} for {} does not answer ({e}); is it running?",
                            sock.display(),
                            iface.name
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Start QEMU for `record` (paused: `-S`, or waiting for its state
    /// with `incoming`, to run once it is in if it ran at the sender) and
    /// wait until its QMP socket answers.
    pub(super) fn spawn(&self, record: &mut Record, incoming: bool) -> Result<ProcessRecord> {
        let name = record.spec.name.clone();
        let dir = self.dir(&name)?;
        Self::check_files(&record.spec)?;
        let accel = self.chosen_acceleration();
        let args = args::args(&dir, &record.spec, accel, incoming)?;
        let socket = dir.join(QMP);
        match fs::remove_file(&socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(&socket, e))
            }
            _ => {}
        }
        let log_path = dir.join(CONSOLE);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(&log_path, e))?;
        let log2 = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
        record.log_offset = log.metadata().map_or(0, |m| m.len());
        record.started_at = Some(SystemTime::now());
        record.acceleration = Some(accel);
        let mut cmd = Command::new(SETSID);
        cmd.arg("--");
        if !record.spec.cpus.is_empty() {
            // `cpus` pins as Xen's `cpus=` does (every vCPU may run on
            // these CPUs): util-linux's `taskset` sets the affinity and
            // execs QEMU in the same process, so every thread QEMU makes
            // inherits it.
            let list: Vec<String> = record.spec.cpus.iter().map(u32::to_string).collect();
            cmd.args([TASKSET, "-c", &list.join(",")]);
        }
        let child = cmd
            .arg(&self.program)
            .args(&args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|source| Error::Spawn {
                program: format!("{SETSID} (to run {})", self.program.display()),
                source,
            })?;
        let pid = child.id();
        // Not waited for: the guest outlives this process; liveness checks
        // reap it should it exit while we run.
        drop(child);
        let proc = ProcessRecord::of(pid).unwrap_or(ProcessRecord { pid, start_time: 0 });
        proc.write(&dir.join(PID))?;
        record.phase = Phase::Running;
        self.write_record(record)?;

        let deadline = Instant::now() + self.boot_timeout;
        loop {
            if proc.liveness() != Liveness::Alive {
                return Err(Error::Backend {
                    what: name,
                    message: format!(
                        "QEMU exited while starting; it said:\n{}",
                        last_lines(&self.log_since(&record.spec.name, record.log_offset), 12)
                    ),
                });
            }
            if socket.exists() {
                let left = deadline.saturating_duration_since(Instant::now());
                if QmpClient::connect(&name, &socket, left.min(Duration::from_secs(2))).is_ok() {
                    break;
                }
            }
            if Instant::now() >= deadline {
                proc.kill_group(&self.marker(&name)?);
                return Err(Error::Timeout {
                    what: name,
                    op: "starting QEMU (its QMP socket never answered)",
                    after: self.boot_timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = bridge::plug(&dir, &record.spec) {
            proc.kill_group(&self.marker(&name)?);
            return Err(e);
        }
        Ok(proc)
    }

    /// Set the balloon to the record's memory (when below the maximum the
    /// guest was started with) and let the guest run. A guest that
    /// confirms its boot with a marker is ballooned once it has (see
    /// [`Qemu::boot_status`]): it boots with its whole maximum.
    pub(super) fn balloon_and_run(&self, record: &mut Record) -> Result<()> {
        let name = record.spec.name.clone();
        let mut qmp = self.qmp(&name)?;
        let max = record.spec.effective_max_memory();
        record.balloon_pending = false;
        if record.memory < max {
            if record.spec.boot_marker.is_some() {
                record.balloon_pending = true;
            } else {
                qmp.execute(&Balloon {
                    value: record.memory,
                })?;
            }
        }
        qmp.execute(&Cont)?;
        record.phase = Phase::Running;
        self.write_record(record)
    }
}

/// Wait (a little) until a killed QEMU of ours is reaped, not a zombie: a
/// killed process whose threads are still ending (QEMU has many) shows as
/// a zombie that cannot be reaped yet. Not our child: its parent reaps it.
pub(super) fn reap(proc: &ProcessRecord) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let still_there =
        || ProcessRecord::of(proc.pid).is_some_and(|p| p.start_time == proc.start_time);
    while still_there() && Instant::now() < deadline {
        // Reaps it once it can be (when it is our child).
        let _ = proc.liveness();
        std::thread::sleep(Duration::from_millis(10));
    }
}

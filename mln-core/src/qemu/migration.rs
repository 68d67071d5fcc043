//! Save, restore and live migration of QEMU guests: the guest's state goes
//! through a file descriptor handed to QEMU over its QMP socket (`getfd`,
//! SCM_RIGHTS), then `migrate fd:NAME` on the sending side and
//! `migrate-incoming fd:NAME` on a QEMU started with `-incoming defer` on
//! the receiving side. No `exec:` URI (which runs a shell), no TCP port.
//!
//! A saved file is a migration stream of the paused guest; its disks are
//! not in it (they stay where they are, as with Xen's save). A migration
//! between two backends on one machine shares the disks; between
//! machines, they must be moved first (see [`crate::disk::transfer`]).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use super::qmp::{
    Cont, GetFd, Migrate, MigrateIncoming, QueryBalloon, QueryMigrate, QueryStatus, Quit,
    SetMaxBandwidth, Stop,
};
use super::{Phase, Qemu};
use crate::console::last_lines;
use crate::domain::{DomainInfo, DomainSpec, Hypervisor};
use crate::error::{Error, Result};

/// How long a migration (or save, or restore) may take.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(300);

/// What QEMU measured of a completed migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MigrationFigures {
    /// How long the guest was stopped, milliseconds.
    pub downtime_ms: Option<u64>,
    /// How long the whole migration took, milliseconds.
    pub total_ms: Option<u64>,
}

/// The name the descriptor gets inside QEMU.
const FD_NAME: &str = "mln-migration";

/// No bandwidth limit to speak of: the stream stays on this machine, or
/// goes through a pipe the caller chose.
const MAX_BANDWIDTH: u64 = 1 << 40;

impl Qemu {
    /// Pause `name`, write its state to `path` and end it.
    pub(super) fn save_to_file(&self, name: &str, path: &Path) -> Result<()> {
        self.require_live(name, "save")?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        self.qmp(name)?.execute(&Stop)?;
        if let Err(e) = self.send(name, file.as_fd(), false) {
            // Not saved: the guest goes on as it was.
            let _ = self.qmp(name).and_then(|mut q| q.execute(&Cont));
            return Err(e);
        }
        file.sync_all().map_err(|e| Error::io(path, e))
    }

    /// A new guest from `spec` whose state comes from `path`, running.
    pub(super) fn restore_from_file(&self, spec: &DomainSpec, path: &Path) -> Result<DomainInfo> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        self.receive(spec, file.as_fd())
    }

    /// Live-migrate `name` over `stream`, then end it here.
    pub(super) fn send_state(&self, name: &str, stream: BorrowedFd<'_>) -> Result<()> {
        self.migrate_send_measured(name, stream).map(drop)
    }

    /// [`Hypervisor::migrate_send`] (the receiver sees the guest's disks,
    /// only its memory and devices travel), returning what QEMU measured;
    /// the guest is gone here once this returns `Ok`.
    pub fn migrate_send_measured(
        &self,
        name: &str,
        stream: BorrowedFd<'_>,
    ) -> Result<MigrationFigures> {
        self.require_live(name, "migrate")?;
        self.send(name, stream, false)
    }

    /// Live-migrate `name` over `stream` to a receiver that does not see
    /// its disks: what its disks' top images hold travels in the stream
    /// too (QEMU's incremental block migration), into overlays the
    /// receiver made over its own copy of the same template. Returns what
    /// QEMU measured; the guest is gone here once this returns `Ok`.
    pub fn migrate_send_with_disks(
        &self,
        name: &str,
        stream: BorrowedFd<'_>,
    ) -> Result<MigrationFigures> {
        self.require_live(name, "migrate")?;
        self.send(name, stream, true)
    }

    /// A new guest from `spec` whose state comes over `stream`, running.
    pub(super) fn receive_state(
        &self,
        spec: &DomainSpec,
        stream: BorrowedFd<'_>,
    ) -> Result<DomainInfo> {
        self.receive(spec, stream)
    }

    /// Send the guest's state (and, with `disks`, its disks' top images)
    /// into `fd`, wait for the end, end QEMU and forget the guest.
    fn send(&self, name: &str, fd: BorrowedFd<'_>, disks: bool) -> Result<MigrationFigures> {
        let mut qmp = self.qmp(name)?;
        qmp.execute(&SetMaxBandwidth {
            max_bandwidth: MAX_BANDWIDTH,
        })?;
        qmp.execute_with_fd(
            &GetFd {
                fdname: FD_NAME.into(),
            },
            fd,
        )?;
        qmp.execute(&Migrate {
            uri: format!("fd:{FD_NAME}"),
            blk: disks,
            inc: disks,
        })?;
        // Polled on fresh sessions, so other callers (info, list) get
        // their turn on the one QMP socket meanwhile.
        drop(qmp);
        let deadline = Instant::now() + MIGRATION_TIMEOUT;
        let figures = loop {
            let info = self.qmp(name)?.execute(&QueryMigrate)?;
            match info.status.as_deref() {
                Some("completed") => {
                    break MigrationFigures {
                        downtime_ms: info.downtime,
                        total_ms: info.total_time,
                    }
                }
                Some("failed") | Some("cancelled") => {
                    return Err(Error::Backend {
                        what: name.to_string(),
                        message: format!(
                            "sending its state failed: {}",
                            info.error_desc.as_deref().unwrap_or("QEMU gave no reason")
                        ),
                    })
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: name.to_string(),
                    op: "sending its state",
                    after: MIGRATION_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let (Some(down), Some(total)) = (figures.downtime_ms, figures.total_ms) {
            log::info!("{name}: migrated in {total} ms, stopped for {down} ms");
        }
        // Its state is elsewhere now: this copy goes.
        let _ = self.qmp(name).and_then(|mut q| q.execute(&Quit));
        self.destroy(name)?;
        Ok(figures)
    }

    /// Create `spec`, start QEMU waiting for its state, load it from `fd`
    /// and let the guest run.
    fn receive(&self, spec: &DomainSpec, fd: BorrowedFd<'_>) -> Result<DomainInfo> {
        self.create(spec)?;
        let result = self.load(spec, fd);
        if result.is_err() {
            let _ = self.destroy(&spec.name);
        }
        result
    }

    fn load(&self, spec: &DomainSpec, fd: BorrowedFd<'_>) -> Result<DomainInfo> {
        let name = spec.name.as_str();
        let mut record = self.read_record(name)?;
        let proc = self.spawn(&mut record, true)?;
        let mut qmp = self.qmp(name)?;
        qmp.execute_with_fd(
            &GetFd {
                fdname: FD_NAME.into(),
            },
            fd,
        )?;
        qmp.execute(&MigrateIncoming {
            uri: format!("fd:{FD_NAME}"),
        })?;
        drop(qmp);
        let deadline = Instant::now() + MIGRATION_TIMEOUT;
        let status = loop {
            if proc.liveness() != crate::uml::process::Liveness::Alive {
                return Err(Error::Backend {
                    what: name.to_string(),
                    message: format!(
                        "QEMU exited while loading the guest's state; it said:\n{}",
                        last_lines(&self.log_since(name, record.log_offset), 12)
                    ),
                });
            }
            let status = self.qmp(name)?.execute(&QueryStatus)?;
            if status.status != "inmigrate" {
                break status;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: name.to_string(),
                    op: "loading the guest's state",
                    after: MIGRATION_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut qmp = self.qmp(name)?;
        // A guest that ran at the sender runs already (QEMU started it as
        // its state came in, see `args`); one saved, or paused there, is
        // let run here.
        if !status.running {
            qmp.execute(&Cont)?;
        }
        // The balloon's target came with the state.
        record.memory = qmp
            .execute(&QueryBalloon)
            .map_or(record.memory, |b| b.actual);
        // QEMU serves one QMP client at a time: `info` opens its own
        // session, which would wait out its 2 s timeout behind this one.
        drop(qmp);
        record.phase = Phase::Running;
        self.write_record(&record)?;
        self.info(name)
    }
}

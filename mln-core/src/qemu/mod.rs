//! The QEMU backend: every domain is a `qemu-system-x86_64` process, run
//! without root and without any daemon.
//!
//! A guest lives in its own folder under the backend's state folder:
//!
//! ```text
//! STATE/NAME/domain.json   the spec and what the backend did with it
//! STATE/NAME/pid           pid and start time of the QEMU process
//! STATE/NAME/console.log   the guest's first serial port (its console), and QEMU's own messages
//! STATE/NAME/qmp           QEMU's QMP socket
//! ```
//!
//! Everything is found again from these files, so a later process can
//! list, inspect and stop guests it did not start. Guests run in their own
//! session (`setsid`, as UML guests do) and survive the process that
//! started them. Control goes through QMP ([`qmp::QmpClient`]): `stop` and
//! `cont` pause and resume, `system_powerdown` presses the ACPI power
//! button (a clean shutdown; the busybox template's `acpid` turns it into
//! init's Ctrl-Alt-Del action), `balloon` sets the memory through the
//! virtio balloon, and save, restore and migration send the guest's state
//! through a file descriptor handed to QEMU over the QMP socket (`getfd`,
//! then `migrate fd:NAME`; never an `exec:` URI, which would run a shell).
//!
//! Disks are virtio-blk (`vda`, `vdb`, ...), qcow2 or raw as the image
//! says; interfaces are virtio-net on a vde switch or (as root) a tap on a
//! Linux bridge. A guest boots a kernel ([`crate::Boot::Kernel`]: the first disk
//! as root, console on `ttyS0`; [`GuestKernel`] is a Debian kernel with an
//! initramfs for the busybox template) or its first disk's boot loader
//! ([`crate::Boot::Disk`]). KVM is used only where a probe boot shows it runs
//! guests (see [`accel`]), else TCG; [`Qemu::acceleration`] says which a
//! guest got.
//!
//! `create` only checks and records (the domain then reports as
//! [`DomainState::Paused`] with id 0); `start` (or `resume`) runs it.
//!
//! ```no_run
//! use std::time::Duration;
//! use mln_core::{Boot, DiskSpec, DomainSpec, Hypervisor};
//! use mln_core::qemu::{GuestKernel, Qemu};
//!
//! let kernel = GuestKernel::fetch("/var/lib/mln/kernels")?;
//! let qemu = Qemu::new("/var/lib/mln/lab/qemu")?.with_guest_kernel(&kernel);
//! let mut spec = DomainSpec::new("alice", 128 << 20, kernel.boot("root=/dev/vda rw"));
//! spec.disks.push(DiskSpec { path: "/var/lib/mln/lab/alice.qcow2".into(), target: "vda".into(), readonly: false });
//! qemu.create(&spec)?;
//! qemu.start("alice")?;
//! println!("alice runs under {:?}", qemu.acceleration("alice")?);
//! qemu.shutdown("alice", Duration::from_secs(60))?;
//! # Ok::<(), mln_core::Error>(())
//! ```

pub mod accel;
mod args;
mod bridge;
mod cpio;
mod initramfs;
mod kept_probe;
mod kernel;
mod lifecycle;
mod migration;
mod modinfo;
pub mod qmp;
mod spawn;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

pub use accel::Acceleration;
pub use kernel::GuestKernel;
pub use migration::MigrationFigures;
use qmp::QmpClient;

use crate::console;
use crate::domain::{DomainSpec, DomainState};
use crate::error::{Error, Result};
use crate::name::SafeName;
use crate::uml::process::{write_atomic, Liveness, ProcessRecord};

const BACKEND: &str = "qemu";
/// The unix socket of the guest's second serial port, where its agent
/// answers `mln exec` (see [`crate::exec`]).
const AGENT_SOCKET: &str = "agent";
const RECORD: &str = "domain.json";
const PID: &str = "pid";
const CONSOLE: &str = "console.log";
/// The unix socket of the guest's first serial port, where `mln console`
/// attaches (see [`crate::attach`]).
const CONSOLE_SOCKET: &str = "console";
const QMP: &str = "qmp";

/// The QEMU backend over one state folder.
#[derive(Debug, Clone)]
pub struct Qemu {
    state_dir: PathBuf,
    program: PathBuf,
    boot_timeout: Duration,
    request_timeout: Duration,
    acceleration: Option<Acceleration>,
    probe: Option<(PathBuf, PathBuf)>,
}

/// Where a domain is in its life, as the backend recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    /// Created, never started.
    Defined,
    /// Started and not paused (QMP's `query-status` has the last word).
    Running,
    /// Paused with `stop`.
    Paused,
    /// A clean shutdown was asked for.
    Stopping,
}

/// What `domain.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    spec: DomainSpec,
    /// The current memory target, bytes.
    memory: u64,
    phase: Phase,
    /// Where the current run's output starts in the console log.
    #[serde(default)]
    log_offset: u64,
    /// When the current run started.
    #[serde(default)]
    started_at: Option<SystemTime>,
    /// The accelerator of the current run.
    #[serde(default)]
    acceleration: Option<Acceleration>,
    /// The balloon is still to be set to `memory`: a guest with a boot
    /// marker boots with its whole maximum (a kernel and initramfs need
    /// more at boot than a small guest runs on afterwards) and is
    /// ballooned down once it confirms its boot.
    #[serde(default)]
    balloon_pending: bool,
}

/// The spec of a QEMU host the way MLN lays one out: booted by `kernel`
/// (its initramfs mounts the root disk) with `root=/dev/vda rw
/// mln.config=vdb` and `extra` on the command line; its root disk is
/// `root` (a copy-on-write overlay over a template, `vda`), its guest
/// configuration disk `config_disk` (written by
/// [`crate::guest::GuestConfig::write_disk`], `vdb`, read-only); it prints
/// the busybox template's boot marker.
///
/// ```
/// use mln_core::disk::{CowFormat, Overlay};
/// use mln_core::qemu::{host_spec, GuestKernel};
/// let kernel = GuestKernel { version: "6.1.0-57-amd64".into(), package: "linux-image-6.1.0-57-amd64".into(),
///     kernel: "/k/vmlinuz".into(), initrd: "/k/initrd.gz".into(), probe_initrd: "/k/probe.gz".into(), modules: vec![],
///     init: String::new() };
/// let root = Overlay { path: "/p/alice.qcow2".into(), template: "/t/busybox.ext4".into(), format: CowFormat::Qcow2, size: 64 << 20 };
/// let spec = host_spec("alice", 128 << 20, &kernel, &root, "/p/alice.config".as_ref(), Vec::new(), "quiet");
/// assert_eq!(spec.disks[1].target, "vdb");
/// ```
pub fn host_spec(
    name: &str,
    memory: u64,
    kernel: &GuestKernel,
    root: &crate::disk::Overlay,
    config_disk: &Path,
    interfaces: Vec<crate::domain::InterfaceSpec>,
    extra: &str,
) -> DomainSpec {
    let cmdline = format!("root=/dev/vda rw mln.config=vdb {extra}");
    let mut spec = DomainSpec::new(name, memory, kernel.boot(cmdline.trim_end()));
    spec.disks.push(root.disk_spec("vda"));
    spec.disks.push(crate::domain::DiskSpec {
        path: config_disk.to_path_buf(),
        target: "vdb".into(),
        readonly: true,
    });
    spec.interfaces = interfaces;
    spec.boot_marker = Some(crate::template::BOOT_FINISHED.to_string());
    spec
}

impl Qemu {
    /// The emulator run for guests.
    pub const PROGRAM: &'static str = "qemu-system-x86_64";

    /// A backend keeping its guests under `state_dir` (created if missing;
    /// made absolute, because it ends up on QEMU command lines).
    pub fn new(state_dir: impl Into<PathBuf>) -> Result<Self> {
        let dir: PathBuf = state_dir.into();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let dir = dir.canonicalize().map_err(|e| Error::io(&dir, e))?;
        Ok(Qemu {
            state_dir: dir,
            program: PathBuf::from(Self::PROGRAM),
            boot_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            acceleration: None,
            probe: None,
        })
    }

    /// Probe KVM with this guest kernel (see [`accel`]); without one, or
    /// an explicit [`Qemu::with_acceleration`], guests get TCG.
    pub fn with_guest_kernel(mut self, kernel: &GuestKernel) -> Self {
        self.probe = Some((kernel.kernel.clone(), kernel.probe_initrd.clone()));
        self
    }

    /// Run every guest under `acceleration`, without a probe.
    pub fn with_acceleration(mut self, acceleration: Acceleration) -> Self {
        self.acceleration = Some(acceleration);
        self
    }

    /// How long `start` waits for a new guest's QMP socket (default 30 s).
    pub fn with_boot_timeout(mut self, timeout: Duration) -> Self {
        self.boot_timeout = timeout;
        self
    }

    /// The state folder.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The file that captures the guest's serial console and QEMU's
    /// messages.
    pub fn console_log(&self, name: &str) -> Result<PathBuf> {
        Ok(self.dir(name)?.join(CONSOLE))
    }

    /// The accelerator guest `name` runs under in its current run (`None`
    /// before its first start).
    pub fn acceleration(&self, name: &str) -> Result<Option<Acceleration>> {
        Ok(self.read_record(name)?.acceleration)
    }

    /// The accelerator the next guest started gets: the one set with
    /// [`Qemu::with_acceleration`], else the probe's answer.
    pub fn chosen_acceleration(&self) -> Acceleration {
        self.acceleration.unwrap_or_else(|| {
            accel::choose(self.probe.as_ref().map(|(k, i)| (k.as_path(), i.as_path())))
        })
    }

    /// The program and arguments `start` runs for `spec` from this state
    /// folder (under `setsid`, and `taskset` for a pinned guest), with the
    /// accelerator the next guest gets ([`Qemu::chosen_acceleration`]).
    /// The guest starts paused (`-S`): `start` lets it run over QMP once
    /// its balloon is set. The disks it names must exist (their format is
    /// read from them).
    pub fn command_line(&self, spec: &DomainSpec) -> Result<(PathBuf, Vec<std::ffi::OsString>)> {
        let args = args::args(
            &self.dir(&spec.name)?,
            spec,
            self.chosen_acceleration(),
            false,
        )?;
        Ok((self.program.clone(), args))
    }

    /// A QMP session with the running guest `name`, for commands this
    /// trait does not cover.
    pub fn qmp(&self, name: &str) -> Result<QmpClient> {
        QmpClient::connect(name, &self.dir(name)?.join(QMP), self.request_timeout)
    }

    /// The console output of the guest's current run, once it contains
    /// `needle`; polls the log, at most `timeout`. Fails at once, with the
    /// output so far, when the guest stops running first.
    pub fn wait_console(&self, name: &str, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let path = self.console_log(name)?;
        loop {
            let offset = self.read_record(name)?.log_offset;
            let text = fs::read(&path)
                .map(|b| {
                    String::from_utf8_lossy(b.get(offset as usize..).unwrap_or(&[])).into_owned()
                })
                .unwrap_or_default();
            if text.contains(needle) {
                return Ok(text);
            }
            if self.live_process(name)?.is_none() {
                return Err(Error::Backend {
                    what: name.to_string(),
                    message: format!(
                        "{} before printing {needle:?}; its console said:\n{}",
                        self.info_state(name),
                        console::last_lines(&text, 20)
                    ),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: name.to_string(),
                    op: "waiting for console output",
                    after: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn info_state(&self, name: &str) -> DomainState {
        crate::Hypervisor::info(self, name).map_or(DomainState::Unknown, |i| i.state)
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        let name = SafeName::new(name)?;
        Ok(self.state_dir.join(name.as_str()))
    }

    /// What every QEMU process of this backend's guest `name` has on its
    /// command line.
    fn marker(&self, name: &str) -> Result<String> {
        Ok(self.dir(name)?.join(QMP).display().to_string())
    }

    fn read_record(&self, name: &str) -> Result<Record> {
        let path = self.dir(name)?.join(RECORD);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    domain: name.to_string(),
                })
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        serde_json::from_slice(&text).map_err(|e| {
            Error::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    fn write_record(&self, record: &Record) -> Result<()> {
        let path = self.dir(&record.spec.name)?.join(RECORD);
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
        write_atomic(&path, &bytes)
    }

    fn process(&self, name: &str) -> Result<Option<ProcessRecord>> {
        ProcessRecord::read(&self.dir(name)?.join(PID))
    }

    /// The guest's QEMU process when it is alive.
    fn live_process(&self, name: &str) -> Result<Option<ProcessRecord>> {
        Ok(self
            .process(name)?
            .filter(|p| p.liveness() == Liveness::Alive))
    }

    /// The record and process of a started guest whose QEMU runs.
    fn require_live(&self, name: &str, op: &'static str) -> Result<(Record, ProcessRecord)> {
        let record = self.read_record(name)?;
        match self.live_process(name)? {
            Some(p) if record.phase != Phase::Defined => Ok((record, p)),
            _ => Err(Error::WrongState {
                domain: name.to_string(),
                op,
                state: self.info_state(name).to_string(),
            }),
        }
    }

    /// The console of the current run (its last 4 KiB at most).
    fn log_since(&self, name: &str, offset: u64) -> String {
        let Ok(path) = self.console_log(name) else {
            return String::new();
        };
        console::since(&path, offset, console::CRASH_WINDOW)
    }

    fn remove(&self, name: &str) -> Result<()> {
        let dir = self.dir(name)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&dir, e)),
        }
    }
}

//! The User-Mode Linux backend: every domain is a `linux.uml` process.
//!
//! A guest lives in its own folder under the backend's state folder:
//!
//! ```text
//! STATE/NAME/domain.json   the spec and what the backend did with it
//! STATE/NAME/pid           pid and start time of the guest's main process
//! STATE/NAME/console.log   the guest's console, stdout and stderr
//! STATE/NAME/uml/          UML's own folder (umid `uml`): mconsole socket, pid
//! ```
//!
//! Everything is found again from these files, so a later process (or the
//! same one after a restart) can list, inspect and stop guests it did not
//! start. Guests run in their own session (and so their own process group)
//! and survive the process that started them. Control goes through the
//! management console ([`Mconsole`]): `stop`/`go` pause and resume, `cad`
//! asks the guest's init to shut down (sent only once init handles it, see
//! `shutdown.rs`), `config mem=±N` unplugs and replugs memory.
//!
//! UML boots at `mem=` the domain's maximum memory, plus what the kernel
//! keeps for its own image (`footprint.rs`), so that the guest has its
//! memory to itself; a smaller `memory` is reached by unplugging the
//! difference once the guest runs. UML 6.1 has one
//! CPU; save, restore and migration do not exist for it
//! ([`Error::Unsupported`]).
//!
//! `create` only checks and records (the domain then reports as
//! [`DomainState::Paused`] with id 0); `start` (or `resume`) runs it.
//!
//! ```no_run
//! use std::time::Duration;
//! use mln_core::{Boot, DiskSpec, DomainSpec, Hypervisor};
//! use mln_core::uml::Uml;
//!
//! let uml = Uml::new("/var/lib/mln/lab/uml")?;
//! let mut spec = DomainSpec::new("alice", 64 << 20, Boot::Kernel {
//!     kernel: Uml::DEFAULT_KERNEL.into(),
//!     ramdisk: None,
//!     cmdline: "root=/dev/ubda rw".into(),
//! });
//! spec.disks.push(DiskSpec { path: "/var/lib/mln/lab/alice.cow".into(), target: "ubda".into(), readonly: false });
//! uml.create(&spec)?;
//! uml.start("alice")?;
//! uml.shutdown("alice", Duration::from_secs(30))?;
//! # Ok::<(), mln_core::Error>(())
//! ```

mod cmdline;
mod crash;
mod fetch;
mod footprint;
mod kernel;
mod kernels;
mod mconsole;
pub mod probe;
pub(crate) mod process;
mod shutdown;
mod sources;

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

pub use cmdline::host_spec;
use cmdline::{interface_index, round_pages};
pub use crash::CrashCause;
pub(crate) use fetch::which;
pub use fetch::{FetchSource, FetchedKernel};
pub use kernel::{NetDriver, UmlKernel};
pub use kernels::{
    cpu, kernels_dir, FetchReport, KernelChoice, KernelSource, KernelStore, KERNELS_DIR_ENV,
    KERNEL_ENV,
};
pub use mconsole::Mconsole;
pub use probe::ProbeOutcome;
use process::write_atomic;
pub use process::{processes_mentioning, Liveness, ProcessRecord};

use crate::console::contains_from as console_contains;
pub(crate) use crate::console::{last_lines, powered_off, tail};
use crate::domain::{
    Attachment, BackendKind, Boot, BootStatus, DomainInfo, DomainSpec, DomainState, Hypervisor,
    MacAddr,
};
use crate::error::{Error, Result};
use crate::name::SafeName;

const BACKEND: &str = "uml";
const RECORD: &str = "domain.json";
const PID: &str = "pid";
const CONSOLE: &str = "console.log";
/// How long `exec` waits for the guest's agent to open its line (again,
/// see [`Uml::exec`]'s comment; or for the first time, a guest just up on
/// a busy machine: seen take over 5 s in CI).
const AGENT_LINE_WAIT: Duration = Duration::from_secs(30);
const UMID: &str = "uml";
const PAGE: u64 = 4096;
/// Below this (bytes), UML guests may run out of memory while booting.
const MIN_COMFORTABLE_MEMORY: u64 = 32 << 20;
/// How long a guest whose template prints no boot marker must stay up
/// to count as booted: UML kernels that cannot run on the host die at the
/// first user process, within about a second of starting.
pub const SETTLE: Duration = Duration::from_secs(3);
/// Longest unix socket path (`sun_path` is 108 bytes with its NUL).
pub(crate) const MAX_SOCKET_PATH: usize = 107;

/// The User-Mode Linux backend over one state folder.
#[derive(Debug, Clone)]
pub struct Uml {
    state_dir: PathBuf,
    boot_timeout: Duration,
    request_timeout: Duration,
}

/// Where a domain is in its life, as the backend recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    /// Created, never started.
    Defined,
    /// Started (and not paused).
    Running,
    /// Paused through the management console.
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
    /// Where the current run's output starts in the console log (earlier
    /// runs' output stays above it).
    #[serde(default)]
    log_offset: u64,
    /// When the current run started.
    #[serde(default)]
    started_at: Option<SystemTime>,
}

impl Uml {
    /// The kernel Debian's `user-mode-linux` package installs.
    pub const DEFAULT_KERNEL: &'static str = "/usr/bin/linux.uml";

    /// The kernel to boot with when none is named and no
    /// [`KernelStore`] is at hand: `MLN_UML_KERNEL` when set, else
    /// [`Uml::DEFAULT_KERNEL`].
    pub fn default_kernel() -> PathBuf {
        std::env::var_os(KERNEL_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(Self::DEFAULT_KERNEL), PathBuf::from)
    }

    /// A backend keeping its guests under `state_dir` (created if missing;
    /// made absolute, because it ends up on guest command lines).
    pub fn new(state_dir: impl Into<PathBuf>) -> Result<Self> {
        let dir: PathBuf = state_dir.into();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let dir = dir.canonicalize().map_err(|e| Error::io(&dir, e))?;
        Ok(Uml {
            state_dir: dir,
            boot_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        })
    }

    /// How long `start` waits for a new guest's management console
    /// (default 30 s) before it kills the guest and fails.
    pub fn with_boot_timeout(mut self, timeout: Duration) -> Self {
        self.boot_timeout = timeout;
        self
    }

    /// The state folder.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The file that captures the console, stdout and stderr of `name`.
    pub fn console_log(&self, name: &str) -> Result<PathBuf> {
        Ok(self.dir(name)?.join(CONSOLE))
    }

    /// The console output of the guest's current run (since its last
    /// start), once it contains `needle`; polls the log, at most `timeout`.
    ///
    /// Fails at once, with the output so far, when the guest stops running
    /// (crashed, powered off, destroyed) before printing `needle`: a
    /// result read from a guest's console never waits on a dead guest.
    /// With the busybox template,
    /// [`crate::template::BOOT_FINISHED`] marks the end of boot (after
    /// the startup lines).
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
            let state = self.info(name)?.state;
            if !matches!(state, DomainState::Running | DomainState::Paused) {
                return Err(Error::Backend {
                    what: name.to_string(),
                    message: format!(
                        "{state} before printing {needle:?}; its console said:\n{text}"
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

    /// A management console client for the running guest `name`, for
    /// requests this trait does not cover (`proc meminfo`, `sysrq`, ...).
    pub fn mconsole(&self, name: &str) -> Result<Mconsole> {
        let dir = self.dir(name)?;
        Ok(Mconsole::new(
            name,
            &dir.join(UMID).join("mconsole"),
            self.request_timeout,
        ))
    }

    /// The `linux.uml` argument list (without the program) that runs `spec`
    /// from this state folder. `start` runs exactly this.
    pub fn command_line(&self, spec: &DomainSpec) -> Result<(PathBuf, Vec<OsString>)> {
        cmdline::args(&self.dir(&spec.name)?, spec, Self::net_driver(spec)?)
    }

    /// How the spec's kernel takes network interfaces; asked of the kernel
    /// only when the spec has interfaces on a switch.
    fn net_driver(spec: &DomainSpec) -> Result<NetDriver> {
        let wired = spec
            .interfaces
            .iter()
            .any(|i| matches!(i.attach, Attachment::Vde(_)));
        match &spec.boot {
            Boot::Kernel { kernel, .. } if wired => Ok(UmlKernel::inspect(kernel)?.net),
            _ => Ok(NetDriver::Eth),
        }
    }

    /// Has guest `name` finished booting: printed its spec's boot marker
    /// on its console in this run, or, for a spec without one, answered
    /// its management console and stayed up [`SETTLE`] since it started?
    /// A guest that died meanwhile is [`BootStatus::Failed`], with the end
    /// of its console and, for a known cause, what fixes it.
    pub fn boot_status(&self, name: &str) -> Result<BootStatus> {
        let record = self.read_record(name)?;
        let info = self.info(name)?;
        match info.state {
            DomainState::Running | DomainState::Paused => {}
            state => {
                let console = self.log_since(name, record.log_offset);
                let cause = CrashCause::diagnose(&console);
                return Ok(BootStatus::Failed {
                    state,
                    reason: cause.map(|c| format!("{c}; {}", c.fix())),
                    console: last_lines(&console, 12),
                    transient: cause.is_some_and(CrashCause::is_transient),
                });
            }
        }
        let booted = match &record.spec.boot_marker {
            Some(marker) => {
                let path = self.console_log(name)?;
                console_contains(&path, record.log_offset, marker)
            }
            None => {
                let settled = record
                    .started_at
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|up| up >= SETTLE);
                settled && self.mconsole(name)?.request("version").is_ok()
            }
        };
        Ok(if booted {
            BootStatus::Booted
        } else {
            BootStatus::Booting
        })
    }

    /// Plug interface `interface` (`ethN`) of running guest `name` into
    /// the switch at `socket` again (after the switch was recreated), with
    /// its `mac`: through the management console, by removing the
    /// kernel's device and configuring it anew, in the syntax of the
    /// guest's kernel. The guest names the new device `ethN` again (the
    /// template's hot-plug script). UML swaps only a device the guest has
    /// down: one in use is refused with [`Error::Unsupported`], and the
    /// caller restarts the guest instead.
    pub fn replug(&self, name: &str, interface: &str, socket: &Path, mac: MacAddr) -> Result<()> {
        let index = interface_index(interface)?;
        let (record, _) = self.require_live(name, "re-plug an interface")?;
        let net = match &record.spec.boot {
            Boot::Kernel { kernel, .. } => UmlKernel::inspect(kernel)?.net,
            Boot::Disk => NetDriver::Eth,
        };
        let sock = cmdline::cmdline_path(socket, "vde switch socket")?;
        let mc = self.mconsole(name)?;
        if mc
            .request(&format!("remove {}", net.device(index)))
            .is_err()
        {
            return Err(Error::Unsupported {
                backend: BACKEND,
                op: "re-plugging an interface the guest has up",
            });
        }
        mc.request(&format!("config {}", net.attach(index, &sock, &mac)))
            .map(drop)
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        let name = SafeName::new(name)?;
        Ok(self.state_dir.join(name.as_str()))
    }

    /// What every process of guest `name` has on its command line.
    fn marker(&self, name: &str) -> Result<String> {
        Ok(format!("uml_dir={}", self.dir(name)?.display()))
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
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| {
            Error::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        write_atomic(&path, &bytes)
    }

    fn process(&self, name: &str) -> Result<Option<ProcessRecord>> {
        ProcessRecord::read(&self.dir(name)?.join(PID))
    }

    /// The guest's process when it is alive.
    fn live_process(&self, name: &str) -> Result<Option<ProcessRecord>> {
        Ok(self
            .process(name)?
            .filter(|p| p.liveness() == Liveness::Alive))
    }

    fn require_live(&self, name: &str, op: &'static str) -> Result<(Record, ProcessRecord)> {
        let record = self.read_record(name)?;
        match self.live_process(name)? {
            Some(p) if record.phase != Phase::Defined => Ok((record, p)),
            _ => Err(Error::WrongState {
                domain: name.to_string(),
                op,
                state: self.info(name)?.state.to_string(),
            }),
        }
    }

    /// The end of the console log, but nothing before `offset` (an earlier
    /// run's output).
    fn log_since(&self, name: &str, offset: u64) -> String {
        let Ok(path) = self.console_log(name) else {
            return String::new();
        };
        crate::console::since(&path, offset, crate::console::CRASH_WINDOW)
    }

    fn check_files(spec: &DomainSpec) -> Result<()> {
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
            // A copy-on-write disk needs its template, unchanged: say so
            // rather than let the guest die at boot. Other images (not a
            // UML COW file) are not looked into.
            if let Err(e @ (Error::MissingFile { .. } | Error::Backend { .. })) =
                crate::disk::Overlay::open(&disk.path)
            {
                return Err(e);
            }
        }
        for iface in &spec.interfaces {
            if let Attachment::Vde(sock) = &iface.attach {
                let ctl = sock.join("ctl");
                exists(&ctl, "vde switch control socket")?;
                // A killed switch leaves its socket file behind: only a
                // connection tells a live switch.
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

    /// Spawn the guest process and wait until its management console
    /// answers.
    fn spawn(&self, record: &mut Record) -> Result<()> {
        let name = record.spec.name.clone();
        let dir = self.dir(&name)?;
        let (kernel, args) = self.command_line(&record.spec)?;
        Self::check_files(&record.spec)?;
        // UML refuses a umid folder whose pid file names a live process and
        // wipes a stale one; we remove ours so nothing old is reused.
        let umid_dir = dir.join(UMID);
        if umid_dir.exists() {
            fs::remove_dir_all(&umid_dir).map_err(|e| Error::io(&umid_dir, e))?;
        }
        let log_path = dir.join(CONSOLE);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(&log_path, e))?;
        record.log_offset = log.metadata().map_or(0, |m| m.len());
        record.started_at = Some(SystemTime::now());
        let terminal = ConsoleTerminal::open()?;
        let mut cmd = guest_command(&kernel, &args);
        cmd.current_dir(&dir)
            .stdin(terminal.master)
            .stdout(terminal.slave)
            .stderr(log);
        let child = cmd.spawn().map_err(|e| Error::Spawn {
            program: format!("{SETSID} (to run {})", kernel.display()),
            source: e,
        })?;
        let pid = child.id();
        // The Child handle is dropped without waiting: the guest must outlive
        // this process. Liveness checks reap it if it exits while we run.
        drop(child);
        let proc = match ProcessRecord::of(pid) {
            Some(p) => p,
            None => ProcessRecord { pid, start_time: 0 },
        };
        proc.write(&dir.join(PID))?;
        record.phase = Phase::Running;
        record.memory = record.spec.memory;
        self.write_record(record)?;

        let mc = self.mconsole(&name)?;
        // While the guest kernel sets its console up, a request can go
        // unnoticed until the next one arrives: ask often, wait briefly.
        let probe = Mconsole::new(
            &name,
            &dir.join(UMID).join("mconsole"),
            Duration::from_millis(250),
        );
        let deadline = Instant::now() + self.boot_timeout;
        loop {
            if proc.liveness() != Liveness::Alive {
                let console = self.log_since(&name, record.log_offset);
                let cause = CrashCause::diagnose(&console);
                // Worded as the executor words a crash it sees later, while
                // it waits for the boot marker: the same fault reads the
                // same whenever it strikes.
                let why = match cause {
                    Some(c) => format!("{c}; {}", c.fix()),
                    None => "its process ended before its management console answered".into(),
                };
                return Err(Error::BootCrash {
                    domain: name.clone(),
                    message: format!("{why}; its console ends:\n{}", last_lines(&console, 12)),
                    transient: cause.is_some_and(CrashCause::is_transient),
                });
            }
            if probe.request_raw("version").is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                proc.kill_group(&self.marker(&name)?);
                return Err(Error::Timeout {
                    what: name,
                    op: "boot (management console never answered)",
                    after: self.boot_timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let max = round_pages(record.spec.effective_max_memory());
        let target = round_pages(record.spec.memory);
        if target < max {
            mc.request(&format!("config mem=-{}", max - target))?;
        }
        record.memory = target;
        self.write_record(record)
    }

    /// Kill every process of guest `name` (its command line carries the
    /// guest's `uml_dir=` word exactly), recorded or not, and wait until
    /// they are gone.
    fn end_unrecorded(&self, name: &str) -> Result<()> {
        let mut word = std::ffi::OsString::from(self.marker(name)?);
        // A whole argument: `uml_dir=/s/lab.a` must not match `/s/lab.ab`.
        word.push("\0");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = processes_mentioning(&word);
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: name.to_string(),
                    op: "ending the processes of an earlier run",
                    after: Duration::from_secs(10),
                });
            }
            for pid in left {
                process::kill(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

impl Hypervisor for Uml {
    fn kind(&self) -> BackendKind {
        BackendKind::Uml
    }

    fn create(&self, spec: &DomainSpec) -> Result<DomainInfo> {
        let dir = self.dir(&spec.name)?;
        if spec.effective_max_memory() < MIN_COMFORTABLE_MEMORY {
            // Debian's UML kernel keeps about 12 MiB for itself.
            log::warn!(
                "uml guest {}: {} MiB of memory is tight for UML (32 MiB or more boots reliably)",
                spec.name,
                spec.effective_max_memory() >> 20
            );
        }
        if spec.effective_max_vcpus() > 1 {
            return Err(Error::Unsupported {
                backend: BACKEND,
                op: "more than one vCPU",
            });
        }
        // Builds (and so checks) the command line before anything is written.
        self.command_line(spec)?;
        Self::check_files(spec)?;
        let sock = dir.join(UMID).join("mconsole");
        if sock.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(Error::UnusablePath {
                path: sock,
                what: "management console socket",
                reason: "longer than a unix socket path may be (107 bytes)",
            });
        }
        if dir.join(RECORD).exists() {
            return Err(Error::AlreadyExists {
                domain: spec.name.clone(),
            });
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let record = Record {
            spec: spec.clone(),
            memory: spec.memory,
            phase: Phase::Defined,
            log_offset: 0,
            started_at: None,
        };
        self.write_record(&record)?;
        self.info(&spec.name)
    }

    fn start(&self, name: &str) -> Result<()> {
        let mut record = self.read_record(name)?;
        if record.phase != Phase::Defined && self.live_process(name)?.is_some() {
            return Err(Error::WrongState {
                domain: name.to_string(),
                op: "start",
                state: self.info(name)?.state.to_string(),
            });
        }
        // A guest that died leaves UML helper processes behind: end them.
        if let Some(old) = self.process(name)? {
            old.kill_group(&self.marker(name)?);
        }
        // And one whose start was never recorded (its starter was killed
        // between spawning it and writing its pid) still holds the lock
        // on its disks: a new one could not open them.
        self.end_unrecorded(name)?;
        self.spawn(&mut record)
    }

    fn pause(&self, name: &str) -> Result<()> {
        let (mut record, _) = self.require_live(name, "pause")?;
        if record.phase != Phase::Running {
            return Err(Error::WrongState {
                domain: name.to_string(),
                op: "pause",
                state: "paused".into(),
            });
        }
        self.mconsole(name)?.request("stop")?;
        record.phase = Phase::Paused;
        self.write_record(&record)
    }

    fn resume(&self, name: &str) -> Result<()> {
        let record = self.read_record(name)?;
        if record.phase == Phase::Defined {
            return self.start(name);
        }
        let (mut record, _) = self.require_live(name, "resume")?;
        if record.phase != Phase::Paused {
            return Err(Error::WrongState {
                domain: name.to_string(),
                op: "resume",
                state: "running".into(),
            });
        }
        self.mconsole(name)?.request("go")?;
        record.phase = Phase::Running;
        self.write_record(&record)
    }

    fn shutdown(&self, name: &str, timeout: Duration) -> Result<()> {
        let mut record = self.read_record(name)?;
        if let Some(proc) = self.live_process(name)? {
            let mc = self.mconsole(name)?;
            if record.phase == Phase::Paused {
                mc.request("go")?;
            }
            record.phase = Phase::Stopping;
            self.write_record(&record)?;
            // Ctrl-Alt-Del, once the guest's init handles it: init runs
            // its shutdown actions and powers off. A guest still booting
            // gets there first; one that never does is killed after
            // `timeout`.
            let dir = self.dir(name)?;
            let cad = shutdown::CtrlAltDel {
                name,
                socket: &dir.join(UMID).join("mconsole"),
                log: &dir.join(CONSOLE),
                proc: &proc,
                request_timeout: self.request_timeout,
            };
            if cad.run(timeout) == shutdown::Outcome::TimedOut {
                log::warn!("uml guest {name}: no clean shutdown within {timeout:?}, killing it");
            }
        }
        // Also ends what a guest that died earlier left behind.
        if let Some(proc) = self.process(name)? {
            proc.kill_group(&self.marker(name)?);
        }
        self.remove(name)
    }

    fn reboot(&self, name: &str) -> Result<()> {
        self.require_live(name, "reboot")?;
        self.mconsole(name)?.request("reboot").map(drop)
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
        }
        self.end_unrecorded(name)?;
        self.remove(name)
    }

    fn info(&self, name: &str) -> Result<DomainInfo> {
        let record = self.read_record(name)?;
        let proc = self.process(name)?;
        let (state, id, cpu_time) = match (record.phase, proc) {
            (Phase::Defined, _) => (DomainState::Paused, 0, Duration::ZERO),
            (_, None) => (DomainState::Unknown, 0, Duration::ZERO),
            (phase, Some(p)) => match p.liveness() {
                Liveness::Alive => (
                    match phase {
                        Phase::Paused => DomainState::Paused,
                        Phase::Stopping => DomainState::Dying,
                        _ => DomainState::Running,
                    },
                    p.pid,
                    process::cpu_time(p.pid).unwrap_or_default(),
                ),
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
            backend: BackendKind::Uml,
            state,
            memory: record.memory,
            max_memory: round_pages(record.spec.effective_max_memory()),
            vcpus: 1,
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
                // Destroyed by someone else between read_dir and info.
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn set_memory(&self, name: &str, bytes: u64) -> Result<()> {
        let (mut record, _) = self.require_live(name, "set memory")?;
        // A paused UML serves only simple console requests: plugging memory
        // needs the guest kernel to run.
        if record.phase != Phase::Running {
            return Err(Error::WrongState {
                domain: name.to_string(),
                op: "set memory",
                state: "paused".into(),
            });
        }
        let max = round_pages(record.spec.effective_max_memory());
        let target = round_pages(bytes);
        if target > max || target == 0 {
            return Err(Error::Backend {
                what: name.to_string(),
                message: format!(
                    "memory {target} bytes is outside 1 page ..= the maximum {max} bytes UML booted with"
                ),
            });
        }
        let current = record.memory;
        let request = match target.cmp(&current) {
            std::cmp::Ordering::Equal => return Ok(()),
            std::cmp::Ordering::Less => format!("config mem=-{}", current - target),
            std::cmp::Ordering::Greater => format!("config mem=+{}", target - current),
        };
        self.mconsole(name)?.request(&request)?;
        record.memory = target;
        self.write_record(&record)
    }

    fn set_vcpus(&self, name: &str, count: u32) -> Result<()> {
        self.read_record(name)?;
        if count == 1 {
            Ok(())
        } else {
            Err(Error::Unsupported {
                backend: BACKEND,
                op: "more than one vCPU",
            })
        }
    }

    fn boot_status(&self, name: &str) -> Result<BootStatus> {
        Uml::boot_status(self, name)
    }

    fn console(&self, name: &str) -> Result<crate::attach::ConsoleEndpoint> {
        let (_, proc) = self.require_live(name, "attach to its console")?;
        let pts = pts_of(proc.pid, "0").ok_or_else(|| Error::Backend {
            what: name.to_string(),
            message: "it has no console terminal (started by an mln older than \
                      `mln console`: restart it)"
                .into(),
        })?;
        Ok(crate::attach::ConsoleEndpoint::Pty(pts))
    }

    fn exec(
        &self,
        name: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<crate::exec::ExecOutput> {
        let (_, proc) = self.require_live(name, "run a command")?;
        let lock = self.dir(name)?.join("exec.lock");
        let until = (Instant::now() + timeout, timeout);
        crate::exec::locked(&lock, || loop {
            let pts = wait_for_agent_line(name, proc.pid, until.0)?;
            let replaced = || agent_lines(proc.pid).last() != Some(&pts);
            let channel = crate::exec::open_pts(&pts)?;
            match crate::exec::run_on_line(name, channel, argv, until, &replaced)? {
                crate::exec::Sent::Answered(out) => return Ok(out),
                crate::exec::Sent::LineReplaced => {
                    log::debug!("{name}: its agent's line {} was replaced", pts.display());
                }
            }
        })
    }

    fn save(&self, _name: &str, _path: &Path) -> Result<()> {
        Err(Error::Unsupported {
            backend: BACKEND,
            op: "save",
        })
    }

    fn restore(&self, _spec: &DomainSpec, _path: &Path) -> Result<DomainInfo> {
        Err(Error::Unsupported {
            backend: BACKEND,
            op: "restore",
        })
    }

    fn migrate_send(&self, _name: &str, _stream: BorrowedFd<'_>) -> Result<()> {
        Err(Error::Unsupported {
            backend: BACKEND,
            op: "live migration",
        })
    }

    fn migrate_receive(&self, _spec: &DomainSpec, _stream: BorrowedFd<'_>) -> Result<DomainInfo> {
        Err(Error::Unsupported {
            backend: BACKEND,
            op: "live migration",
        })
    }
}

fn exists(path: &Path, what: &'static str) -> Result<()> {
    if path.exists() {
        Ok(())
    } else {
        Err(Error::MissingFile {
            what,
            path: path.to_path_buf(),
        })
    }
}

/// util-linux's programs that start a guest (see [`guest_command`]).
const SETSID: &str = "setsid";
const SETARCH: &str = "setarch";

/// The command that runs `kernel` with `args` as a guest: in a session of
/// its own and without address space randomisation.
///
/// Why a session of its own: a rare UML root-mount panic went away once
/// guests stopped sharing the caller's session; with one, a guest has no
/// controlling terminal (a Ctrl-C or hangup of the caller's terminal never
/// reaches it), it leads its own process group (what `kill_group`
/// signals), and the scheduler gives it an autogroup of its own, as a
/// shell does: left in the caller's session, guests booted together shared
/// one autogroup and came up 20-30% later (benches/README.md, UML section).
/// Why no randomisation: UML sizes its page tables by where the host put
/// it; randomised, a 64 MiB guest keeps 25 to 50 MiB for itself, at
/// random, and sometimes cannot boot; a fixed layout leaves it a steady
/// 53 MiB.
///
/// Both used to be set between fork and exec (setsid(2) and personality(2)
/// in a `pre_exec` hook), which only `unsafe` code can register. util-linux
/// (in Debian's base system) has a program for each that makes the call and
/// then execs the next word, in the same process: `setsid -- setarch
/// --addr-no-randomize -- KERNEL ARGS...`. The pid we spawn is therefore the
/// guest's own, its start time is the guest's, and after the two execs its
/// command line is the kernel's (the marker `kill_group` looks for is there
/// from the start anyway, in the arguments). `setsid` forks only when its
/// process already leads a group, which a fresh child never does: so the
/// command must not ask for `process_group(0)` (which would also make
/// `linux.uml`'s own `setsid()` in its `main` fail). The two extra execs
/// cost a few milliseconds of a boot that takes seconds
/// (`benches/uml_bringup.rs` compares against a shell).
fn guest_command(kernel: &Path, args: &[OsString]) -> Command {
    let mut cmd = Command::new(SETSID);
    cmd.arg("--")
        .args([SETARCH, "--addr-no-randomize", "--"])
        .arg(kernel)
        .args(args);
    cmd
}

/// The host pseudo-terminals of a UML guest's second serial line
/// (`ssl1=pts`, where its agent listens), in descriptor order: the pty
/// masters the guest's main process opened itself (fd 0 is its console's,
/// see [`ConsoleTerminal`]), each by its `tty-index` in
/// `/proc/PID/fdinfo`. Normally one.
fn agent_lines(pid: u32) -> Vec<PathBuf> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut fds: Vec<u32> = fds
        .flatten()
        .filter_map(|fd| fd.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd != 0)
        .collect();
    fds.sort_unstable();
    fds.iter()
        .filter_map(|fd| pts_of(pid, &fd.to_string()))
        .collect()
}

/// The agent's line of guest `name` (process `pid`), waiting for one
/// until `deadline`, at most [`AGENT_LINE_WAIT`]: the newest where there
/// are several.
///
/// UML gives a line its host terminal when the guest opens it, and may
/// close one for good when a read of it fails, after which the agent
/// opens the line again (a new terminal) within a moment.
fn wait_for_agent_line(name: &str, pid: u32, deadline: Instant) -> Result<PathBuf> {
    let deadline = deadline.min(Instant::now() + AGENT_LINE_WAIT);
    loop {
        if let Some(pts) = agent_lines(pid).pop() {
            return Ok(pts);
        }
        if Instant::now() >= deadline {
            return Err(Error::Backend {
                what: name.to_string(),
                message: "its agent's serial line is not open (a template without \
                          MLN's agent, or a guest still booting)"
                    .into(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The slave `/dev/pts/N` of the pty master that is `fd` of process
/// `pid`; `None` when that descriptor is not a pty master.
fn pts_of(pid: u32, fd: &str) -> Option<PathBuf> {
    let target = fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    if target != Path::new("/dev/ptmx") && target != Path::new("/dev/pts/ptmx") {
        return None;
    }
    let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    let index = info
        .lines()
        .find_map(|l| l.strip_prefix("tty-index:"))
        .map(str::trim)?;
    Some(PathBuf::from(format!("/dev/pts/{index}")))
}

/// A new pseudo-terminal for a guest's interactive console, both ends
/// given to the guest: the master as its standard input, which its second
/// console uses both ways (`con1=fd:0`), the slave as its standard output,
/// only held. `mln console` opens the slave again, found from the guest's
/// fd 0 ([`pts_of`]).
///
/// Why the guest holds its own slave: once every holder of a slave has
/// closed it, a read of the master fails (EIO), and UML answers that by
/// closing the line for good and hanging up the guest's side. A session
/// ends by closing the slave; with the guest holding it too, the master
/// just finds nothing to read, and the next session finds the line as the
/// last one left it (logged in or at the prompt, as with `xl console`).
/// The kernel's console therefore writes to stderr (`con0=null,fd:2`),
/// the console log; UML writes nothing to stdout once the console is on
/// stderr.
struct ConsoleTerminal {
    master: std::os::fd::OwnedFd,
    slave: std::os::fd::OwnedFd,
}

impl ConsoleTerminal {
    fn open() -> Result<Self> {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let fail = |e: rustix::io::Errno| Error::io("/dev/ptmx", e.into());
        let master =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).map_err(fail)?;
        grantpt(&master).map_err(fail)?;
        unlockpt(&master).map_err(fail)?;
        let path = ptsname(&master, Vec::new()).map_err(fail)?;
        let slave = rustix::fs::open(
            path.as_c_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::io(path.to_string_lossy().as_ref(), e.into()))?;
        Ok(ConsoleTerminal { master, slave })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_kernel_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let uml = Uml::new(dir.path()).unwrap();
        let spec = DomainSpec::new("a", 32 << 20, Boot::kernel("/nonexistent/linux.uml"));
        match uml.create(&spec) {
            Err(Error::MissingFile { what, path }) => {
                assert_eq!(what, "kernel");
                assert_eq!(path, Path::new("/nonexistent/linux.uml"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(uml.info("a"), Err(Error::NotFound { .. })));
        assert!(uml.list().unwrap().is_empty());
    }

    /// Fields 5 to 7 of `/proc/PID/stat`: process group, session,
    /// controlling terminal.
    fn group_session_tty(pid: u32) -> (u32, u32, u32) {
        let text = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = &text[text.rfind(')').unwrap() + 1..];
        let f: Vec<u32> = rest
            .split_whitespace()
            .skip(2)
            .take(3)
            .map(|w| w.parse().unwrap())
            .collect();
        (f[0], f[1], f[2])
    }

    #[test]
    fn guest_runs_in_its_own_session_without_randomisation() {
        // A stand-in for the kernel: the same wrappers, then `sh`, which
        // stays (its child `sleep` keeps it waiting) with the marker in
        // its arguments.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("guest-marker");
        let marker = marker.to_str().unwrap();
        let args: Vec<OsString> = ["-c", "sleep 30; :", marker]
            .into_iter()
            .map(OsString::from)
            .collect();
        let child = guest_command(Path::new("/bin/sh"), &args)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        drop(child);
        let record = ProcessRecord::of(pid).unwrap();
        // Neither `setsid` nor `setarch` forks: the pid spawned becomes `sh`.
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(format!("/proc/{pid}/comm")).unwrap() != "sh\n" {
            assert!(Instant::now() < deadline, "the wrappers never ran sh");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            record.liveness(),
            Liveness::Alive,
            "same process, same start"
        );
        let (pgrp, session, tty) = group_session_tty(pid);
        let (_, my_session, _) = group_session_tty(std::process::id());
        assert_eq!(session, pid, "leads a session of its own");
        assert_ne!(session, my_session);
        assert_eq!(pgrp, pid, "leads its process group");
        assert_eq!(tty, 0, "no controlling terminal");
        let personality = fs::read_to_string(format!("/proc/{pid}/personality")).unwrap();
        let personality = u32::from_str_radix(personality.trim(), 16).unwrap();
        assert_ne!(
            personality & 0x0040000,
            0,
            "ADDR_NO_RANDOMIZE in {personality:#x}"
        );
        // Only `sh` carries the marker; but the child it forks for `sleep`
        // carries `sh`'s arguments too until it execs: wait that out.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = process::processes_mentioning(marker);
            if found == vec![pid] {
                break;
            }
            assert!(Instant::now() < deadline, "{found:?} mention the marker");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The group goes as a guest's does: `sh` and its `sleep`.
        assert!(record.kill_group(marker));
        assert_eq!(process::processes_mentioning(marker), Vec::<u32>::new());
    }

    #[test]
    fn unsupported_operations_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let uml = Uml::new(dir.path()).unwrap();
        assert!(matches!(
            uml.save("a", Path::new("/x")),
            Err(Error::Unsupported { .. })
        ));
        let mut spec = DomainSpec::new("a", 32 << 20, Boot::kernel("/usr/bin/linux.uml"));
        spec.vcpus = 2;
        assert!(matches!(uml.create(&spec), Err(Error::Unsupported { .. })));
    }
}

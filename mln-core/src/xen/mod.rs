//! The Xen backend: [`Hypervisor`] over libxenlight (libxl 4.17).
//!
//! One [`XenHypervisor`] owns one libxl context. Every libxl call is made
//! synchronously (`ao_how == NULL`); libxl's log goes to the `log` crate under
//! target `libxl`; libxl owns SIGCHLD but reaps only its own children
//! (`libxl_sigchld_owner_libxl_always_selective_reap`), so a host program's
//! `std::process::Command` children keep working; a disaster hook is
//! registered so libxl never `exit()`s the process.
//!
//! All `unsafe` code of mln-core lives in this module.
//!
//! ```no_run
//! use mln_core::{Boot, DomainSpec, Hypervisor};
//! use mln_core::xen::XenHypervisor;
//! # fn main() -> mln_core::Result<()> {
//! let xen = XenHypervisor::connect()?; // Error::XenUnavailable outside a dom0
//! let spec = DomainSpec::new("web1", 128 << 20, Boot::kernel("/boot/vmlinuz"));
//! xen.create(&spec)?;
//! xen.start("web1")?;
//! println!("{:?}", xen.info("web1")?);
//! xen.destroy("web1")?;
//! # Ok(()) }
//! ```

mod agent;
mod config;
mod context;
mod error;
mod idl;
mod logger;

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::raw::c_int;
use std::path::Path;
use std::ptr;
use std::time::{Duration, Instant};

use xenlight_sys as sys;

pub use self::config::domain_config;
pub use self::context::Context;
pub use self::error::code_name;
pub use self::idl::DomainConfig;

use self::error::check;
use self::idl::{Bitmap, DomInfo, DomInfoList, MallocString, RestoreParams};

/// How long a destroy waits for a domain lock another process holds.
const DESTROY_LOCK_WAIT: Duration = Duration::from_secs(15);

/// Xen's page size on x86 (`XC_PAGE_SIZE`): physinfo counts pages.
const XEN_PAGE_SIZE: u64 = 4096;
use crate::domain::{BackendKind, DomainInfo, DomainSpec, DomainState, Hypervisor};
use crate::error::{Error, Result};

/// How long `reboot` waits for the guest to act on the request.
pub const REBOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// The first 8 bytes of every libxl migration stream (`"LibxlFmt"`).
const STREAM_IDENT: &[u8; 8] = b"LibxlFmt";
/// How often state is polled while waiting for a guest.
const POLL: Duration = Duration::from_millis(200);
/// How a successful [`Hypervisor::migrate_send`] reports a live move
/// (memory copied while the guest ran), in its log line.
pub const MOVED_LIVE: &str = "moved live:";
/// How it reports a move with the guest suspended for the whole transfer.
pub const MOVED_SUSPENDED: &str = "moved suspended:";

/// The Xen backend. `Send + Sync` because its [`Context`] is (see there).
pub struct XenHypervisor {
    ctx: Context,
    live_migration: bool,
}

/// A domain's state from libxl's flags.
fn state_of(d: &sys::libxl_dominfo) -> DomainState {
    if d.dying {
        DomainState::Dying
    } else if d.shutdown {
        if d.shutdown_reason == sys::LIBXL_SHUTDOWN_REASON_CRASH {
            DomainState::Crashed
        } else {
            DomainState::Shutdown
        }
    } else if d.paused {
        DomainState::Paused
    } else {
        DomainState::Running
    }
}

fn to_info(name: &str, d: &sys::libxl_dominfo) -> DomainInfo {
    DomainInfo {
        name: name.to_string(),
        id: d.domid,
        backend: BackendKind::Xen,
        state: state_of(d),
        memory: d.current_memkb * 1024,
        max_memory: d.max_memkb * 1024,
        vcpus: d.vcpu_online,
        cpu_time: Duration::from_nanos(d.cpu_time),
    }
}

impl XenHypervisor {
    /// Connect to the local Xen toolstack (must run in dom0, as root).
    ///
    /// Returns [`Error::XenUnavailable`] on a machine that is not a Xen dom0.
    pub fn connect() -> Result<Self> {
        Ok(XenHypervisor {
            ctx: Context::connect()?,
            live_migration: true,
        })
    }

    /// Choose how [`Hypervisor::migrate_send`] sends: live (the default;
    /// memory is copied while the guest runs, then the last dirty pages
    /// with the guest paused) or not (the guest is suspended for the whole
    /// transfer). Live mode needs Xen's log-dirty paging for the guest; a
    /// Xen built without it (e.g. without shadow paging, for PV guests)
    /// refuses it with EOPNOTSUPP, and the guest then runs on unmoved.
    pub fn with_live_migration(mut self, live: bool) -> Self {
        self.live_migration = live;
        self
    }

    fn ctx(&self) -> *mut sys::libxl_ctx {
        self.ctx.raw()
    }

    /// The domid of domain `name` ([`Error::NotFound`] when none).
    pub fn domid(&self, name: &str) -> Result<u32> {
        let c = CString::new(name).map_err(|_| Error::NotFound {
            domain: name.to_string(),
        })?;
        let mut domid = 0u32;
        // SAFETY: live context, NUL-terminated name, valid out-pointer.
        let rc = unsafe { sys::libxl_name_to_domid(self.ctx(), c.as_ptr(), &mut domid) };
        match rc {
            0 => Ok(domid),
            // libxl_name_to_domid answers ERROR_INVAL when no domain matches.
            sys::ERROR_INVAL | sys::ERROR_NOTFOUND | sys::ERROR_DOMAIN_NOTFOUND => {
                Err(Error::NotFound {
                    domain: name.to_string(),
                })
            }
            rc => check(rc, "libxl_name_to_domid", name).map(|()| domid),
        }
    }

    fn dominfo(&self, domid: u32, name: &str) -> Result<DomInfo> {
        let mut info = DomInfo::new();
        // SAFETY: live context; `info` is an initialised dominfo libxl fills
        // (disposing any previous content is libxl's job on success).
        let rc = unsafe { sys::libxl_domain_info(self.ctx(), info.as_mut_ptr(), domid) };
        check(rc, "libxl_domain_info", name)?;
        Ok(info)
    }

    /// A domain's report. Xen's own `max_memkb` is the current allocation
    /// ceiling (target + 1 MiB slack), not the balloon maximum, so the
    /// maximum comes from the configuration libxl keeps (xenstore
    /// `memory/static-max`) when it can be read.
    fn report(&self, domid: u32, name: &str, d: &sys::libxl_dominfo) -> DomainInfo {
        let mut info = to_info(name, d);
        if let Ok(cfg) = self.retrieve_config(domid, name) {
            let max_kb = cfg.raw().b_info.max_memkb;
            if max_kb > 0 && max_kb != u64::MAX {
                info.max_memory = max_kb * 1024;
            }
        }
        info
    }

    /// The balloon target libxl recorded for domain `name`, bytes.
    pub fn memory_target(&self, name: &str) -> Result<u64> {
        let domid = self.domid(name)?;
        let mut kb = 0u64;
        // SAFETY: live context, valid out-pointer.
        let rc = unsafe { sys::libxl_get_memory_target(self.ctx(), domid, &mut kb) };
        check(rc, "libxl_get_memory_target", name)?;
        Ok(kb * 1024)
    }

    /// Memory Xen has not given to any domain, bytes (`xl info`'s
    /// `free_memory`): what new domains can still get.
    pub fn free_memory_bytes(&self) -> Result<u64> {
        let mut kb = 0u64;
        // SAFETY: live context, valid out-pointer; libxl only writes it.
        let rc = unsafe { sys::libxl_get_free_memory(self.ctx(), &mut kb) };
        check(rc, "libxl_get_free_memory", "xen")?;
        Ok(kb * 1024)
    }

    /// All the machine's memory Xen manages, bytes (`xl info`'s
    /// `total_memory`): dom0's and every guest's included.
    pub fn total_memory_bytes(&self) -> Result<u64> {
        let mut info = idl::PhysInfo::new();
        // SAFETY: live context; `info` is initialised and libxl fills it.
        let rc = unsafe { sys::libxl_get_physinfo(self.ctx(), info.as_mut_ptr()) };
        check(rc, "libxl_get_physinfo", "xen")?;
        Ok(info.get().total_pages * XEN_PAGE_SIZE)
    }

    /// The config libxl holds for a running domain (`xl list -l`).
    pub fn domain_config(&self, name: &str) -> Result<DomainConfig> {
        let domid = self.domid(name)?;
        self.retrieve_config(domid, name)
    }

    fn retrieve_config(&self, domid: u32, name: &str) -> Result<DomainConfig> {
        let mut cfg = DomainConfig::new();
        // SAFETY: live context; `cfg` is initialised and libxl fills it.
        let rc = unsafe {
            sys::libxl_retrieve_domain_configuration(self.ctx(), domid, cfg.raw_mut(), ptr::null())
        };
        check(rc, "libxl_retrieve_domain_configuration", name)?;
        Ok(cfg)
    }

    fn create_from(&self, cfg: &mut DomainConfig, name: &str) -> Result<u32> {
        let mut domid = 0u32;
        // SAFETY: live context; `cfg` is a complete, initialised config libxl
        // may update (it fills in defaults); synchronous call.
        let rc = unsafe {
            sys::libxl_domain_create_new(
                self.ctx(),
                cfg.raw_mut(),
                &mut domid,
                ptr::null(),
                ptr::null(),
            )
        };
        check(rc, "libxl_domain_create_new", name)?;
        Ok(domid)
    }

    /// Pin every vCPU of `domid` to `spec.cpus` (Xen's `cpus=`), when it
    /// names any. A domain that cannot be pinned is destroyed: it is made
    /// as its spec says or not at all.
    fn pin(&self, domid: u32, spec: &DomainSpec, name: &str) -> Result<()> {
        if spec.cpus.is_empty() {
            return Ok(());
        }
        let pinned = Bitmap::cpus(self.ctx(), &spec.cpus, name).and_then(|mut map| {
            // SAFETY: live context; `map` is a CPU map libxl allocated
            // for this machine; no soft affinity.
            let rc = unsafe {
                sys::libxl_set_vcpuaffinity_all(
                    self.ctx(),
                    domid,
                    spec.effective_max_vcpus(),
                    map.as_mut_ptr(),
                    ptr::null(),
                )
            };
            check(rc, "libxl_set_vcpuaffinity_all", name)
        });
        if pinned.is_err() {
            let _ = self.destroy_domid(domid, name);
        }
        pinned
    }

    fn destroy_domid(&self, domid: u32, name: &str) -> Result<()> {
        // Another toolstack process (`xl`'s monitor of a domain it
        // received with `xl migrate`) may hold the domain's lock for a
        // moment: tried again, within a bound.
        let deadline = Instant::now() + DESTROY_LOCK_WAIT;
        loop {
            // SAFETY: live context; synchronous call.
            let rc = unsafe { sys::libxl_domain_destroy(self.ctx(), domid, ptr::null()) };
            match check(rc, "libxl_domain_destroy", name) {
                Err(Error::Libxl {
                    code: "ERROR_LOCK_FAIL",
                    ..
                }) if Instant::now() < deadline => {
                    log::info!("{name}: its lock is held by another toolstack process; again");
                    std::thread::sleep(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    fn unpause_domid(&self, domid: u32, name: &str) -> Result<()> {
        // SAFETY: live context; synchronous call.
        let rc = unsafe { sys::libxl_domain_unpause(self.ctx(), domid, ptr::null()) };
        check(rc, "libxl_domain_unpause", name)
    }

    fn rename(&self, domid: u32, from: &str, to: &str) -> Result<()> {
        let (f, t) = match (CString::new(from), CString::new(to)) {
            (Ok(f), Ok(t)) => (f, t),
            _ => {
                return Err(Error::InvalidName {
                    name: to.to_string(),
                    reason: "contains a NUL byte",
                })
            }
        };
        // SAFETY: live context, NUL-terminated names.
        let rc = unsafe { sys::libxl_domain_rename(self.ctx(), domid, f.as_ptr(), t.as_ptr()) };
        check(rc, "libxl_domain_rename", from)
    }

    /// Wait until `domid` has shut down (returning its reason) or vanished
    /// (`None`), or `timeout` passes (`Err(Timeout)`).
    fn wait_shutdown(
        &self,
        domid: u32,
        name: &str,
        op: &'static str,
        timeout: Duration,
    ) -> Result<Option<sys::libxl_shutdown_reason>> {
        let start = Instant::now();
        loop {
            match self.dominfo(domid, name) {
                Ok(d) if d.get().shutdown || d.get().dying => {
                    return Ok(Some(d.get().shutdown_reason))
                }
                Ok(_) => {}
                Err(Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
            if start.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: name.to_string(),
                    op,
                    after: timeout,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Restore a domain named `as_name` from `fd`, paused.
    fn restore_fd(&self, spec: &DomainSpec, as_name: &str, fd: c_int) -> Result<u32> {
        let mut cfg = config::config_as(spec, as_name)?;
        if spec.agent {
            agent::prepare()?;
        }
        let params = RestoreParams::new();
        let mut domid = 0u32;
        // SAFETY: live context; initialised config and params; `fd` is open
        // for reading for the whole (synchronous) call; no send-back fd.
        let rc = unsafe {
            sys::libxl_domain_create_restore(
                self.ctx(),
                cfg.raw_mut(),
                &mut domid,
                fd,
                -1,
                params.get(),
                ptr::null(),
                ptr::null(),
            )
        };
        check(rc, "libxl_domain_create_restore", as_name)?;
        self.pin(domid, spec, as_name)?;
        Ok(domid)
    }

    /// Refuse input that is not a libxl stream before libxl sees it: libxl
    /// 4.17 crashes the process (a NULL call in its error path) after
    /// logging "Invalid ident" when `libxl_domain_create_restore` is handed
    /// anything else. `head` is the start of the input, or `None` when it
    /// cannot be looked at without consuming it.
    fn check_stream_head(head: Option<&[u8]>, what: &str, name: &str) -> Result<()> {
        match head {
            Some(h) if h != STREAM_IDENT => Err(Error::Backend {
                what: name.to_string(),
                message: format!(
                    "{what} is not a libxl save/migration stream (starts {:02x?}, not \"LibxlFmt\")",
                    h
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The first bytes waiting on socket `fd`, without consuming them;
    /// `None` when `fd` is not a socket (a pipe cannot be peeked at).
    fn peek_socket(fd: c_int) -> Option<Vec<u8>> {
        let mut buf = [0u8; 8];
        loop {
            // SAFETY: `buf` is valid for 8 bytes; MSG_PEEK leaves the data
            // in the socket; `fd` is borrowed for this call.
            let n = unsafe {
                libc::recv(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_PEEK | libc::MSG_WAITALL,
                )
            };
            if n >= 0 {
                return Some(buf[..n as usize].to_vec());
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return None;
            }
        }
    }

    fn suspend_fd(&self, domid: u32, name: &str, fd: c_int, live: bool) -> Result<()> {
        let flags = if live {
            sys::LIBXL_SUSPEND_LIVE as c_int
        } else {
            0
        };
        // SAFETY: live context; `fd` is open for writing for the whole
        // (synchronous) call.
        let rc = unsafe { sys::libxl_domain_suspend(self.ctx(), domid, fd, flags, ptr::null()) };
        check(rc, "libxl_domain_suspend", name)
    }
}

impl Hypervisor for XenHypervisor {
    fn kind(&self) -> BackendKind {
        BackendKind::Xen
    }

    fn free_memory(&self) -> Result<Option<u64>> {
        self.free_memory_bytes().map(Some)
    }

    fn total_memory(&self) -> Result<Option<u64>> {
        self.total_memory_bytes().map(Some)
    }

    /// `xl console NAME`: Xen's console daemon serves the PV console, and
    /// `xl` attaches the caller's terminal to it (Ctrl-] detaches).
    fn console(&self, name: &str) -> Result<crate::attach::ConsoleEndpoint> {
        self.info(name)?;
        Ok(crate::attach::ConsoleEndpoint::Program(vec![
            "xl".into(),
            "console".into(),
            name.into(),
        ]))
    }

    /// `libxl_domain_create_new`: builds the domain and leaves it paused.
    fn create(&self, spec: &DomainSpec) -> Result<DomainInfo> {
        let name = spec.name.as_str();
        let mut cfg = domain_config(spec)?;
        if spec.agent {
            agent::prepare()?;
        }
        match self.domid(name) {
            Ok(_) => {
                return Err(Error::AlreadyExists {
                    domain: name.to_string(),
                })
            }
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        // SAFETY: `c_info.uuid` is a plain 16-byte value inside our config.
        unsafe { sys::libxl_uuid_generate(&mut cfg.raw_mut().c_info.uuid) };
        let domid = self.create_from(&mut cfg, name)?;
        self.pin(domid, spec, name)?;
        Ok(self.report(domid, name, self.dominfo(domid, name)?.get()))
    }

    /// `libxl_domain_unpause` of a freshly created domain.
    fn start(&self, name: &str) -> Result<()> {
        let domid = self.domid(name)?;
        self.unpause_domid(domid, name)
    }

    /// `libxl_domain_pause`.
    fn pause(&self, name: &str) -> Result<()> {
        let domid = self.domid(name)?;
        let state = state_of(self.dominfo(domid, name)?.get());
        if state != DomainState::Running {
            return Err(Error::WrongState {
                domain: name.to_string(),
                op: "pause",
                state: state.to_string(),
            });
        }
        // SAFETY: live context; synchronous call.
        let rc = unsafe { sys::libxl_domain_pause(self.ctx(), domid, ptr::null()) };
        check(rc, "libxl_domain_pause", name)
    }

    /// `libxl_domain_unpause` of a paused domain.
    fn resume(&self, name: &str) -> Result<()> {
        let domid = self.domid(name)?;
        let state = state_of(self.dominfo(domid, name)?.get());
        if state != DomainState::Paused {
            return Err(Error::WrongState {
                domain: name.to_string(),
                op: "resume",
                state: state.to_string(),
            });
        }
        self.unpause_domid(domid, name)
    }

    /// `libxl_domain_shutdown` (the guest's PV control/shutdown node), then
    /// wait for the guest to power off, then `libxl_domain_destroy` to free
    /// what is left (no `xl` monitor acts on `on_poweroff` for us). When
    /// `timeout` passes first, or the guest does not acknowledge the request
    /// (libxl's own wait for that may outlast `timeout`), the domain is
    /// destroyed anyway.
    fn shutdown(&self, name: &str, timeout: Duration) -> Result<()> {
        let domid = self.domid(name)?;
        // SAFETY: live context; synchronous call.
        let rc = unsafe { sys::libxl_domain_shutdown(self.ctx(), domid, ptr::null()) };
        let waited = match rc {
            // libxl waits for the guest to acknowledge the request; a guest
            // that cannot (paused, no PV drivers) is destroyed at once.
            sys::ERROR_TIMEDOUT | sys::ERROR_NOPARAVIRT => {
                log::warn!(
                    "domain {name}: did not acknowledge the shutdown request ({})",
                    code_name(rc)
                );
                Err(Error::Timeout {
                    what: name.to_string(),
                    op: "shutdown",
                    after: timeout,
                })
            }
            rc => {
                check(rc, "libxl_domain_shutdown", name)?;
                self.wait_shutdown(domid, name, "shutdown", timeout)
            }
        };
        match waited {
            Ok(None) => return Ok(()),
            Ok(Some(_)) => {}
            Err(Error::Timeout { .. }) => {
                log::warn!("domain {name}: no clean shutdown within {timeout:?}; destroying it");
            }
            Err(e) => return Err(e),
        }
        match self.destroy_domid(domid, name) {
            Err(Error::NotFound { .. }) => Ok(()),
            r => r,
        }
    }

    /// `libxl_domain_reboot`, then what `xl`'s monitor does on a reboot:
    /// wait for the guest to shut down with reason "reboot", destroy it and
    /// create it again (running) from the configuration libxl kept for it.
    fn reboot(&self, name: &str) -> Result<()> {
        let domid = self.domid(name)?;
        let mut cfg = self.retrieve_config(domid, name)?;
        // SAFETY: live context; synchronous call.
        let rc = unsafe { sys::libxl_domain_reboot(self.ctx(), domid, ptr::null()) };
        check(rc, "libxl_domain_reboot", name)?;
        let reason = self.wait_shutdown(domid, name, "reboot", REBOOT_TIMEOUT)?;
        if let Some(r) = reason {
            if r != sys::LIBXL_SHUTDOWN_REASON_REBOOT {
                log::warn!("domain {name}: asked to reboot, shut down with reason {r}");
            }
        }
        match self.destroy_domid(domid, name) {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let new = self.create_from(&mut cfg, name)?;
        self.unpause_domid(new, name)
    }

    /// `libxl_domain_destroy`.
    fn destroy(&self, name: &str) -> Result<()> {
        let domid = self.domid(name)?;
        self.destroy_domid(domid, name)?;
        agent::forget(name);
        Ok(())
    }

    /// Through the guest's channel to MLN's agent (see `agent.rs`).
    fn exec(
        &self,
        name: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<crate::exec::ExecOutput> {
        self.domid(name)?;
        agent::exec(name, argv, timeout)
    }

    /// `libxl_domain_info`.
    fn info(&self, name: &str) -> Result<DomainInfo> {
        let domid = self.domid(name)?;
        Ok(self.report(domid, name, self.dominfo(domid, name)?.get()))
    }

    /// `libxl_list_domain`, without Domain-0.
    fn list(&self) -> Result<Vec<DomainInfo>> {
        let mut n: c_int = 0;
        // SAFETY: live context, valid out-pointer; the list is owned below.
        let list = unsafe {
            let p = sys::libxl_list_domain(self.ctx(), &mut n);
            if p.is_null() && n != 0 {
                return Err(Error::Libxl {
                    op: "libxl_list_domain",
                    domain: "-".to_string(),
                    code: "ERROR_FAIL",
                });
            }
            DomInfoList::from_raw(p, n)
        };
        let mut out = Vec::new();
        for d in list.as_slice().iter().filter(|d| d.domid != 0) {
            // SAFETY: live context; the result is malloc'ed or NULL.
            let name =
                unsafe { MallocString::from_raw(sys::libxl_domid_to_name(self.ctx(), d.domid)) };
            // A domain being torn down may have lost its name already.
            if let Some(name) = name.to_string_lossy() {
                out.push(self.report(d.domid, &name, d));
            }
        }
        Ok(out)
    }

    /// `libxl_set_memory_target` (absolute, enforced): the guest's balloon
    /// driver follows.
    fn set_memory(&self, name: &str, bytes: u64) -> Result<()> {
        let domid = self.domid(name)?;
        let kb = i64::try_from(bytes / 1024).map_err(|_| Error::Backend {
            what: name.to_string(),
            message: format!("memory target {bytes} is too large"),
        })?;
        // SAFETY: live context.
        let rc = unsafe { sys::libxl_set_memory_target(self.ctx(), domid, kb, 0, 1) };
        check(rc, "libxl_set_memory_target", name)
    }

    /// `libxl_set_vcpuonline` with the first `count` vCPUs online.
    fn set_vcpus(&self, name: &str, count: u32) -> Result<()> {
        let domid = self.domid(name)?;
        let max = self.dominfo(domid, name)?.get().vcpu_max_id + 1;
        if count == 0 || count > max {
            return Err(Error::Backend {
                what: name.to_string(),
                message: format!("cannot set {count} vCPUs online: the domain has 1 to {max}"),
            });
        }
        let mut map = Bitmap::first(max, count)?;
        // SAFETY: live context; `map` is a valid bitmap of `max` bits.
        let rc =
            unsafe { sys::libxl_set_vcpuonline(self.ctx(), domid, map.as_mut_ptr(), ptr::null()) };
        check(rc, "libxl_set_vcpuonline", name)
    }

    /// `libxl_domain_suspend` into `path`, then `libxl_domain_destroy` (as
    /// `xl save`). The file holds libxl's migration stream only.
    fn save(&self, name: &str, path: &Path) -> Result<()> {
        let domid = self.domid(name)?;
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        self.suspend_fd(domid, name, file.as_raw_fd(), false)?;
        file.sync_all().map_err(|e| Error::io(path, e))?;
        self.destroy_domid(domid, name)
    }

    /// `libxl_domain_create_restore` from `path`, then unpause: the guest
    /// carries on from where it was saved. A file that does not start with
    /// libxl's stream ident is refused with [`Error::Backend`] before libxl
    /// reads it (libxl 4.17 crashes the process on such input).
    fn restore(&self, spec: &DomainSpec, path: &Path) -> Result<DomainInfo> {
        let name = spec.name.as_str();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut head = [0u8; 8];
        let got = {
            use std::os::unix::fs::FileExt;
            let mut n = 0;
            while n < head.len() {
                match file.read_at(&mut head[n..], n as u64) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io(path, e)),
                }
            }
            n
        };
        Self::check_stream_head(Some(&head[..got]), &path.display().to_string(), name)?;
        let domid = self.restore_fd(spec, name, file.as_raw_fd())?;
        self.unpause_domid(domid, name)?;
        Ok(self.report(domid, name, self.dominfo(domid, name)?.get()))
    }

    /// `libxl_domain_suspend` into `stream` (live unless turned off with
    /// [`XenHypervisor::with_live_migration`]), then destroy the source.
    /// As `xl migrate` does, the domain is renamed `NAME--migratedaway`
    /// first, so a receiver on the same host can take the name; on failure
    /// it gets its name back and runs on.
    ///
    /// On success it logs (warning level, which `mln` shows and passes on
    /// from a server's agent) how the guest moved, `moved live:` or
    /// `moved suspended:`, with the whole send and the time from the
    /// guest's suspension to the end of the stream (the stop-and-copy
    /// part; the receiver's restore adds to the guest's pause).
    fn migrate_send(&self, name: &str, stream: BorrowedFd<'_>) -> Result<()> {
        let domid = self.domid(name)?;
        let away = format!("{name}--migratedaway");
        self.rename(domid, name, &away)?;
        let live = self.live_migration;
        let started = Instant::now();
        self.ctx.logger().watch_suspension(true);
        let sent = self.suspend_fd(domid, name, stream.as_raw_fd(), live);
        self.ctx.logger().watch_suspension(false);
        let suspended_at = self.ctx.logger().suspended_at();
        if let Err(e) = sent {
            // SAFETY: live context; cancel the suspend so the guest runs on.
            let rc = unsafe { sys::libxl_domain_resume(self.ctx(), domid, 1, ptr::null()) };
            if rc != 0 {
                log::error!(
                    "domain {name}: resume after failed migration: {}",
                    code_name(rc)
                );
            }
            if let Err(r) = self.rename(domid, &away, name) {
                log::error!("domain {name}: cannot take its name back: {r}");
            }
            return Err(e);
        }
        let total = started.elapsed();
        let stopped = suspended_at.map_or_else(
            || "for an unseen time".to_string(),
            |t| format!("for {} ms before the stream ended", t.elapsed().as_millis()),
        );
        log::warn!(
            "{} {name} in {} ms (libxl {} migration), the guest suspended {stopped}",
            if live { MOVED_LIVE } else { MOVED_SUSPENDED },
            total.as_millis(),
            if live { "live" } else { "non-live" },
        );
        self.destroy_domid(domid, name)
    }

    /// `libxl_domain_create_restore` from `stream` under the name
    /// `NAME--incoming`, renamed to `NAME` once complete, then unpaused.
    /// On a socket the stream's ident is checked first (peeked, not
    /// consumed), as for [`Hypervisor::restore`]; a pipe cannot be peeked.
    fn migrate_receive(&self, spec: &DomainSpec, stream: BorrowedFd<'_>) -> Result<DomainInfo> {
        let name = spec.name.as_str();
        let incoming = format!("{name}--incoming");
        let head = Self::peek_socket(stream.as_raw_fd());
        Self::check_stream_head(head.as_deref(), "the migration stream", name)?;
        let domid = self.restore_fd(spec, &incoming, stream.as_raw_fd())?;
        if let Err(e) = self.rename(domid, &incoming, name) {
            let _ = self.destroy_domid(domid, &incoming);
            return Err(e);
        }
        self.unpause_domid(domid, name)?;
        Ok(self.report(domid, name, self.dominfo(domid, name)?.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connecting_outside_xen_is_a_clear_error() {
        if Path::new("/dev/xen/privcmd").exists() || Path::new("/proc/xen/privcmd").exists() {
            eprintln!("skipped: this machine is a Xen dom0");
            return;
        }
        match XenHypervisor::connect() {
            Err(Error::XenUnavailable { reason }) => assert!(reason.contains("privcmd")),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("connected to Xen on a machine without privcmd"),
        }
    }

    #[test]
    fn hypervisor_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<XenHypervisor>();
    }
}

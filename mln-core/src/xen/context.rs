//! The owned libxl context: allocation, SIGCHLD mode, the disaster hook,
//! and `libxl_ctx_free` on drop.

use std::os::raw::{c_char, c_int, c_void};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use xenlight_sys as sys;

use super::error::code_name;
use super::logger::Logger;
use crate::error::{Error, Result};

/// libxl owns SIGCHLD but reaps only the children it forked itself
/// (`libxl-save-helper`, hotplug scripts, bootloaders), so a host program's
/// own `std::process::Command` children keep their exit statuses.
static CHILDPROC_HOOKS: sys::libxl_childproc_hooks = sys::libxl_childproc_hooks {
    chldowner: sys::libxl_sigchld_owner_libxl_always_selective_reap,
    fork_replacement: None,
    reaped_callback: None,
};

/// Events are collected synchronously by each call (`ao_how == NULL`); only
/// the disaster hook is registered, so libxl reports an unrecoverable event
/// loop failure to us instead of calling `exit()`.
static EVENT_HOOKS: sys::libxl_event_hooks = sys::libxl_event_hooks {
    event_occurs_mask: 0,
    event_occurs: None,
    disaster: Some(disaster),
};

unsafe extern "C" fn disaster(
    user: *mut c_void,
    type_: sys::libxl_event_type,
    msg: *const c_char,
    errnoval: c_int,
) {
    let text = if msg.is_null() {
        String::new()
    } else {
        // SAFETY: libxl passes a NUL-terminated message valid for this call.
        unsafe { std::ffi::CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    };
    log::error!(target: "libxl", "libxl disaster (event type {type_}, errno {errnoval}): {text}");
    if !user.is_null() {
        // SAFETY: `user` is the `AtomicBool` boxed in the `Context` that
        // registered this hook; the box outlives the libxl context.
        let flag = unsafe { &*(user as *const AtomicBool) };
        flag.store(true, Ordering::SeqCst);
    }
}

/// Where the privcmd device of a Xen dom0 appears (new and old kernels).
const PRIVCMD: [&str; 2] = ["/dev/xen/privcmd", "/proc/xen/privcmd"];

/// An owned libxl context.
///
/// # Threads
/// `Context` is `Send` and `Sync`: libxl's own documentation (libxl.h,
/// "libxl ... is thread-safe") allows one `libxl_ctx` to be used by several
/// threads at once; it takes its internal lock around shared state, and each
/// synchronous call (`ao_how == NULL`) runs its own event loop on the calling
/// thread. The logger and disaster flag it points at are owned here and never
/// move (both boxed).
pub struct Context {
    raw: *mut sys::libxl_ctx,
    // Dropped after `raw` is freed (see `Drop`): libxl logs until then.
    logger: Box<Logger>,
    disaster: Box<AtomicBool>,
}

// SAFETY: see the "Threads" section above; libxl_ctx is thread-safe and the
// boxed logger/flag are only touched through libxl's own synchronisation or
// atomically.
unsafe impl Send for Context {}
// SAFETY: as above.
unsafe impl Sync for Context {}

impl Context {
    /// Connect to the local Xen toolstack.
    ///
    /// Returns [`Error::XenUnavailable`] when this is not a Xen dom0 (no
    /// privcmd device) or libxl refuses a context.
    pub fn connect() -> Result<Self> {
        if !PRIVCMD.iter().any(|p| Path::new(p).exists()) {
            return Err(Error::XenUnavailable {
                reason: "no /dev/xen/privcmd or /proc/xen/privcmd: this is not a Xen dom0 \
                         (or the xen-privcmd module and xenfs are not loaded)"
                    .to_string(),
            });
        }
        let mut logger = Logger::new();
        let disaster = Box::new(AtomicBool::new(false));
        let mut raw: *mut sys::libxl_ctx = ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; the logger is boxed and kept in
        // the returned Context, so it outlives the libxl context.
        let rc = unsafe {
            sys::libxl_ctx_alloc(&mut raw, sys::LIBXL_VERSION as c_int, 0, logger.as_raw())
        };
        if rc != 0 || raw.is_null() {
            return Err(Error::XenUnavailable {
                reason: format!("libxl_ctx_alloc failed: {}", code_name(rc)),
            });
        }
        let ctx = Context {
            raw,
            logger,
            disaster,
        };
        let flag = &*ctx.disaster as *const AtomicBool as *mut c_void;
        // SAFETY: `ctx.raw` is a live context; both hook tables are statics and
        // `flag` points into a box that lives as long as the context.
        unsafe {
            sys::libxl_childproc_setmode(ctx.raw, &CHILDPROC_HOOKS, ptr::null_mut());
            sys::libxl_event_register_callbacks(ctx.raw, &EVENT_HOOKS, flag);
        }
        Ok(ctx)
    }

    /// The raw context for libxl calls; valid while `self` lives. Not
    /// public: `Drop` frees it, so a copy kept or freed elsewhere would be
    /// used after free or freed twice.
    pub(super) fn raw(&self) -> *mut sys::libxl_ctx {
        self.raw
    }

    /// The logger libxl reports through on this context.
    pub(crate) fn logger(&self) -> &Logger {
        &self.logger
    }

    /// True once libxl has reported a disaster on this context.
    pub fn had_disaster(&self) -> bool {
        self.disaster.load(Ordering::SeqCst)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: `raw` came from libxl_ctx_alloc and is freed exactly once;
        // the logger is still alive here (fields drop after this body).
        unsafe { sys::libxl_ctx_free(self.raw) };
        let _ = &self.logger;
    }
}

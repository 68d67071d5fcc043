//! A xentoollog logger that hands libxl's messages to the `log` crate
//! (target `libxl`), so a host program sees them through its usual logger.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_ulong};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use xenlight_sys as sys;

extern "C" {
    // libc's vsnprintf with the va_list type bindgen generated for libxl's
    // callbacks (`*mut __va_list_tag` on x86-64), so the pointer libxl hands
    // us can be passed on unchanged.
    fn vsnprintf(
        buf: *mut c_char,
        size: usize,
        format: *const c_char,
        ap: *mut sys::__va_list_tag,
    ) -> c_int;
}

/// What libxl says when a guest it asked to suspend has (its
/// `suspend_common_wait_guest_check`, debug level).
const GUEST_SUSPENDED: &str = "guest has suspended";

/// The logger object libxl holds a pointer to. `repr(C)` with the vtable
/// first, so a `*mut Logger` is a valid `*mut xentoollog_logger`.
///
/// While watching (see [`Logger::watch_suspension`]) it also notes when
/// libxl reports a guest suspended: the start of a migration's final
/// stop, learnt without a hypercall of our own (a thread polling Xen while
/// libxl forks would leave libxencall's global buffer lock held in the
/// child, which then deadlocks).
#[repr(C)]
pub struct Logger {
    vtable: sys::xentoollog_logger,
    watching: AtomicBool,
    suspended: Mutex<Option<Instant>>,
}

impl Logger {
    /// A boxed logger: its address must stay fixed while libxl uses it.
    pub fn new() -> Box<Self> {
        Box::new(Logger {
            vtable: sys::xentoollog_logger {
                vmessage: Some(vmessage),
                progress: Some(progress),
                destroy: Some(destroy),
            },
            watching: AtomicBool::new(false),
            suspended: Mutex::new(None),
        })
    }

    /// Start (forgetting an earlier time) or stop noting when libxl
    /// reports a guest suspended.
    pub fn watch_suspension(&self, on: bool) {
        if on {
            *self.suspended.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        self.watching.store(on, Ordering::SeqCst);
    }

    /// When libxl last reported a guest suspended while watching.
    pub fn suspended_at(&self) -> Option<Instant> {
        *self.suspended.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pointer to give to `libxl_ctx_alloc`.
    pub fn as_raw(&mut self) -> *mut sys::xentoollog_logger {
        &mut self.vtable
    }
}

fn level(l: sys::xentoollog_level) -> log::Level {
    match l {
        sys::XTL_DEBUG | sys::XTL_VERBOSE => log::Level::Trace,
        sys::XTL_DETAIL | sys::XTL_PROGRESS => log::Level::Debug,
        sys::XTL_INFO | sys::XTL_NOTICE => log::Level::Info,
        sys::XTL_WARN => log::Level::Warn,
        _ => log::Level::Error,
    }
}

/// A C string from libxl, or "" for NULL.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string alive for `'a`.
unsafe fn text<'a>(p: *const c_char) -> std::borrow::Cow<'a, str> {
    if p.is_null() {
        return "".into();
    }
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }.to_string_lossy()
}

unsafe extern "C" fn vmessage(
    logger: *mut sys::xentoollog_logger,
    lvl: sys::xentoollog_level,
    errnoval: c_int,
    context: *const c_char,
    format: *const c_char,
    al: *mut sys::__va_list_tag,
) {
    let lvl = level(lvl);
    // SAFETY: libxl hands back the pointer `Logger::as_raw` gave it: the
    // first field of a live `repr(C)` Logger (the Context keeps it alive
    // until libxl is freed), so it is a valid `*const Logger`.
    let this = unsafe { &*(logger as *const Logger) };
    let watching = this.watching.load(Ordering::SeqCst);
    if (!watching && !log::log_enabled!(target: "libxl", lvl)) || format.is_null() {
        return;
    }
    let mut buf = [0 as c_char; 1024];
    // SAFETY: `format` and `al` come from libxl's own varargs call and match;
    // vsnprintf writes at most `buf.len()` bytes including the final NUL, and
    // `al` is consumed exactly once.
    let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), format, al) };
    if n < 0 {
        return;
    }
    // SAFETY: vsnprintf NUL-terminated `buf` (n >= 0).
    let msg = unsafe { text(buf.as_ptr()) };
    // SAFETY: libxl passes a static context string or NULL.
    let ctx = unsafe { text(context) };
    let msg = msg.trim_end();
    if watching && msg.contains(GUEST_SUSPENDED) {
        *this.suspended.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }
    if !log::log_enabled!(target: "libxl", lvl) {
        return;
    }
    if errnoval >= 0 {
        let e = std::io::Error::from_raw_os_error(errnoval);
        log::log!(target: "libxl", lvl, "{ctx}: {msg}: {e}");
    } else {
        log::log!(target: "libxl", lvl, "{ctx}: {msg}");
    }
}

unsafe extern "C" fn progress(
    _logger: *mut sys::xentoollog_logger,
    context: *const c_char,
    doing_what: *const c_char,
    percent: c_int,
    done: c_ulong,
    total: c_ulong,
) {
    if !log::log_enabled!(target: "libxl", log::Level::Debug) {
        return;
    }
    // SAFETY: libxl passes NUL-terminated strings or NULL.
    let (ctx, what) = unsafe { (text(context), text(doing_what)) };
    log::debug!(target: "libxl", "{ctx}: {what}: {percent}% ({done}/{total})");
}

unsafe extern "C" fn destroy(_logger: *mut sys::xentoollog_logger) {
    // The Box in `Context` owns the logger; nothing to free here.
}

//! A xentoollog logger that hands libxl's messages to the `log` crate
//! (target `libxl`), so a host program sees them through its usual logger.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_ulong};

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

/// The logger object libxl holds a pointer to. `repr(C)` with the vtable
/// first, so a `*mut Logger` is a valid `*mut xentoollog_logger`.
#[repr(C)]
pub struct Logger {
    vtable: sys::xentoollog_logger,
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
        })
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
    _logger: *mut sys::xentoollog_logger,
    lvl: sys::xentoollog_level,
    errnoval: c_int,
    context: *const c_char,
    format: *const c_char,
    al: *mut sys::__va_list_tag,
) {
    let lvl = level(lvl);
    if !log::log_enabled!(target: "libxl", lvl) || format.is_null() {
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

//! Owning Rust types for libxl's IDL structs: each is `_init`ed when made
//! and `_dispose`d exactly once in `Drop`.

use std::ffi::CString;
use std::os::raw::{c_char, c_int};
use std::ptr;

use xenlight_sys as sys;

use crate::error::{Error, Result};

/// A `malloc`ed copy of `s`, as libxl's `_dispose` functions `free()` every
/// string they find. `what` names the object for the error.
pub(super) fn c_string(s: &str, what: &str) -> Result<*mut c_char> {
    let c = CString::new(s).map_err(|_| Error::Backend {
        what: what.to_string(),
        message: format!("{s:?} contains a NUL byte"),
    })?;
    // SAFETY: `c` is a valid NUL-terminated string; strdup copies it.
    let p = unsafe { libc::strdup(c.as_ptr()) };
    if p.is_null() {
        return Err(Error::Backend {
            what: what.to_string(),
            message: "out of memory".to_string(),
        });
    }
    Ok(p)
}

/// An owned `libxl_domain_config`: made by [`domain_config`] or
/// [`XenHypervisor::domain_config`], rendered by [`DomainConfig::to_json`].
///
/// The C struct itself stays inside mln-core: `Drop` hands it to
/// `libxl_domain_config_dispose`, which frees every pointer in it and walks
/// every array by its count, so a caller able to change a field could make
/// it free memory it does not own.
///
/// ```
/// use mln_core::{Boot, DomainSpec};
/// let spec = DomainSpec::new("web1", 128 << 20, Boot::kernel("/boot/vmlinuz"));
/// let mut cfg = mln_core::xen::domain_config(&spec)?;
/// assert!(cfg.to_json()?.contains("web1"));
/// # Ok::<(), mln_core::Error>(())
/// ```
///
/// ```compile_fail,E0624
/// let mut cfg = mln_core::xen::DomainConfig::new();
/// cfg.raw_mut().num_disks = 4; // the struct is not reachable from outside
/// ```
///
/// [`domain_config`]: super::domain_config
/// [`XenHypervisor::domain_config`]: super::XenHypervisor::domain_config
pub struct DomainConfig {
    raw: sys::libxl_domain_config,
}

impl DomainConfig {
    /// An initialised, empty config.
    pub fn new() -> Self {
        let mut raw = sys::libxl_domain_config::default();
        // SAFETY: `raw` is fresh; init is called once, dispose once in Drop.
        // The struct holds no pointers into itself, so moving it is fine.
        unsafe { sys::libxl_domain_config_init(&mut raw) };
        DomainConfig { raw }
    }

    /// The struct, for filling in or for libxl to fill.
    ///
    /// Whatever is stored must keep what `Drop` relies on: every pointer
    /// NULL or allocated with `malloc`/`calloc` (see [`c_string`],
    /// [`calloc_array`]) and owned by this config alone, every array's count
    /// its number of initialised elements, `b_info` typed once. Hence not
    /// public: a safe caller outside this module could break it.
    pub(super) fn raw_mut(&mut self) -> &mut sys::libxl_domain_config {
        &mut self.raw
    }

    /// The struct, for reading.
    pub(super) fn raw(&self) -> &sys::libxl_domain_config {
        &self.raw
    }

    /// libxl's own JSON rendering of this config (what `xl -N create`
    /// prints), generated without a libxl context.
    pub fn to_json(&mut self) -> Result<String> {
        use sys::json::*;
        let fail = |m: &str| Error::Backend {
            what: "libxl_domain_config".to_string(),
            message: m.to_string(),
        };
        // SAFETY: the generator is freed on every path after use; the buffer
        // it returns is copied before the free; `self.raw` is initialised.
        unsafe {
            let g = yajl_gen_alloc(ptr::null());
            if g.is_null() {
                return Err(fail("yajl_gen_alloc failed"));
            }
            let mut out = Err(fail("libxl_domain_config_gen_json failed"));
            if libxl_domain_config_gen_json(g, &mut self.raw) == yajl_gen_status_ok {
                let mut buf = ptr::null();
                let mut len = 0usize;
                if yajl_gen_get_buf(g, &mut buf, &mut len) == yajl_gen_status_ok && !buf.is_null() {
                    let bytes = std::slice::from_raw_parts(buf, len);
                    out = Ok(String::from_utf8_lossy(bytes).into_owned());
                }
            }
            yajl_gen_free(g);
            out
        }
    }
}

impl Default for DomainConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for DomainConfig {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, disposed exactly once here; every
        // pointer in it is NULL or malloc'ed (see `c_string`, `calloc_array`).
        unsafe { sys::libxl_domain_config_dispose(&mut self.raw) };
    }
}

/// A zeroed C array of `n` `T`s from `calloc`, each passed through `init`,
/// for the device arrays libxl frees with `free()`.
///
/// # Safety
/// `init` must be the libxl `_init` function of `T`.
pub(super) unsafe fn calloc_array<T>(
    n: usize,
    init: unsafe extern "C" fn(*mut T),
) -> Result<*mut T> {
    if n == 0 {
        return Ok(ptr::null_mut());
    }
    // SAFETY: calloc with a non-zero count; checked for NULL below.
    let p = unsafe { libc::calloc(n, std::mem::size_of::<T>()) } as *mut T;
    if p.is_null() {
        return Err(Error::Backend {
            what: "libxl_domain_config".to_string(),
            message: "out of memory".to_string(),
        });
    }
    for i in 0..n {
        // SAFETY: `p` has room for `n` elements; each is initialised once.
        unsafe { init(p.add(i)) };
    }
    Ok(p)
}

/// A `libxl_bitmap` of `bits` bits with the first `set` bits set, allocated
/// with `calloc` (libxl_bitmap_dispose frees it with `free()`).
pub(super) fn bitmap_first(bits: u32, set: u32) -> Result<sys::libxl_bitmap> {
    let bytes = bits.div_ceil(8).max(1);
    // SAFETY: plain allocation, checked for NULL.
    let map = unsafe { libc::calloc(bytes as usize, 1) } as *mut u8;
    if map.is_null() {
        return Err(Error::Backend {
            what: "libxl_bitmap".to_string(),
            message: "out of memory".to_string(),
        });
    }
    let mut bm = sys::libxl_bitmap { size: bytes, map };
    for bit in 0..set.min(bits) {
        // SAFETY: `bit` < bits <= size * 8.
        unsafe { sys::libxl_bitmap_set(&mut bm, bit as c_int) };
    }
    Ok(bm)
}

/// An owned `libxl_bitmap`. The field is private so that only
/// [`Bitmap::first`] and [`Bitmap::cpus`] make one: `Drop` frees its map.
pub(super) struct Bitmap(sys::libxl_bitmap);

impl Bitmap {
    /// A CPU map of this machine (libxl sizes it to its CPUs, as `xl`'s
    /// `cpus=` does) with `cpus` set: a CPU the machine does not have is
    /// an error naming it.
    pub(super) fn cpus(ctx: *mut sys::libxl_ctx, cpus: &[u32], what: &str) -> Result<Self> {
        // SAFETY: an all-zero libxl_bitmap is the empty bitmap; init makes
        // it so explicitly before libxl allocates its map.
        let mut bm = Bitmap(unsafe { std::mem::zeroed() });
        // SAFETY: `bm.0` is a valid, empty bitmap.
        unsafe { sys::libxl_bitmap_init(&mut bm.0) };
        // SAFETY: live context; `bm.0` is empty; 0 means "this machine's
        // CPUs". On success the map is libxl's, freed by our Drop.
        let rc = unsafe { sys::libxl_cpu_bitmap_alloc(ctx, &mut bm.0, 0) };
        super::error::check(rc, "libxl_cpu_bitmap_alloc", what)?;
        // SAFETY: live context.
        let max = unsafe { sys::libxl_get_max_cpus(ctx) };
        let have = u32::try_from(max)
            .unwrap_or(0)
            .min(bm.0.size.saturating_mul(8));
        for &cpu in cpus {
            if cpu >= have {
                return Err(Error::Backend {
                    what: what.to_string(),
                    message: format!(
                        "cannot pin to CPU {cpu} (`cpus`): this machine has {have} (0-{})",
                        have.saturating_sub(1)
                    ),
                });
            }
            // SAFETY: `cpu` < have <= size * 8.
            unsafe { sys::libxl_bitmap_set(&mut bm.0, cpu as c_int) };
        }
        Ok(bm)
    }

    /// [`bitmap_first`], owned.
    pub(super) fn first(bits: u32, set: u32) -> Result<Self> {
        bitmap_first(bits, set).map(Bitmap)
    }

    /// The struct, for libxl calls that read it.
    pub(super) fn as_mut_ptr(&mut self) -> *mut sys::libxl_bitmap {
        &mut self.0
    }
}

impl Drop for Bitmap {
    fn drop(&mut self) {
        // SAFETY: the map was calloc'ed by `bitmap_first` or by libxl (which
        // allocates with calloc too), or is NULL; disposed once.
        unsafe { sys::libxl_bitmap_dispose(&mut self.0) };
    }
}

/// An owned `libxl_dominfo`. The field is private so that only
/// [`DomInfo::new`] makes one and only libxl fills it: `Drop` disposes it.
pub(super) struct DomInfo(sys::libxl_dominfo);

impl DomInfo {
    /// An initialised, empty dominfo.
    pub(super) fn new() -> Self {
        let mut raw = sys::libxl_dominfo::default();
        // SAFETY: fresh struct, init once, dispose once in Drop.
        unsafe { sys::libxl_dominfo_init(&mut raw) };
        DomInfo(raw)
    }

    /// The struct, for reading.
    pub(super) fn get(&self) -> &sys::libxl_dominfo {
        &self.0
    }

    /// The struct, for libxl to fill (`libxl_domain_info`).
    pub(super) fn as_mut_ptr(&mut self) -> *mut sys::libxl_dominfo {
        &mut self.0
    }
}

impl Drop for DomInfo {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, disposed once.
        unsafe { sys::libxl_dominfo_dispose(&mut self.0) };
    }
}

/// An owned `libxl_physinfo` (`xl info`'s host figures), disposed on drop.
pub(super) struct PhysInfo(sys::libxl_physinfo);

impl PhysInfo {
    /// An initialised, empty physinfo.
    pub(super) fn new() -> Self {
        let mut raw = sys::libxl_physinfo::default();
        // SAFETY: fresh struct, init once, dispose once in Drop.
        unsafe { sys::libxl_physinfo_init(&mut raw) };
        PhysInfo(raw)
    }

    /// The struct, for reading.
    pub(super) fn get(&self) -> &sys::libxl_physinfo {
        &self.0
    }

    /// The struct, for libxl to fill (`libxl_get_physinfo`).
    pub(super) fn as_mut_ptr(&mut self) -> *mut sys::libxl_physinfo {
        &mut self.0
    }
}

impl Drop for PhysInfo {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, disposed once.
        unsafe { sys::libxl_physinfo_dispose(&mut self.0) };
    }
}

/// The array `libxl_list_domain` returns, freed with `libxl_dominfo_list_free`.
pub(super) struct DomInfoList {
    ptr: *mut sys::libxl_dominfo,
    len: c_int,
}

impl DomInfoList {
    /// Take ownership of libxl's list (`ptr` may be NULL when `len` is 0).
    ///
    /// # Safety
    /// `ptr`/`len` come from one `libxl_list_domain` call.
    pub(super) unsafe fn from_raw(ptr: *mut sys::libxl_dominfo, len: c_int) -> Self {
        DomInfoList { ptr, len }
    }

    /// The entries.
    pub(super) fn as_slice(&self) -> &[sys::libxl_dominfo] {
        if self.ptr.is_null() || self.len <= 0 {
            return &[];
        }
        // SAFETY: libxl returned `len` initialised entries at `ptr`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len as usize) }
    }
}

impl Drop for DomInfoList {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: frees the list (and disposes each entry) exactly once.
            unsafe { sys::libxl_dominfo_list_free(self.ptr, self.len) };
        }
    }
}

/// An owned `libxl_domain_restore_params`. The field is private so that
/// only [`RestoreParams::new`] makes one: `Drop` disposes it.
pub(super) struct RestoreParams(sys::libxl_domain_restore_params);

impl RestoreParams {
    /// Initialised params for a stream written by `libxl_domain_suspend`
    /// (libxl's migration stream version 2, not checkpointed).
    pub(super) fn new() -> Self {
        let mut raw = sys::libxl_domain_restore_params::default();
        // SAFETY: fresh struct, init once, dispose once in Drop.
        unsafe { sys::libxl_domain_restore_params_init(&mut raw) };
        raw.checkpointed_stream = 0;
        raw.stream_version = 2;
        RestoreParams(raw)
    }

    /// The struct, for libxl calls that read it.
    pub(super) fn get(&self) -> &sys::libxl_domain_restore_params {
        &self.0
    }
}

impl Drop for RestoreParams {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, disposed once.
        unsafe { sys::libxl_domain_restore_params_dispose(&mut self.0) };
    }
}

/// A string libxl `malloc`ed for us (e.g. from `libxl_domid_to_name`).
pub(super) struct MallocString(*mut c_char);

impl MallocString {
    /// Take ownership of `p` (may be NULL).
    ///
    /// # Safety
    /// `p` is NULL or a NUL-terminated string allocated with `malloc`.
    pub(super) unsafe fn from_raw(p: *mut c_char) -> Self {
        MallocString(p)
    }

    /// The text, or `None` for NULL.
    pub(super) fn to_string_lossy(&self) -> Option<String> {
        if self.0.is_null() {
            return None;
        }
        // SAFETY: non-null, NUL-terminated per `from_raw`'s contract.
        Some(
            unsafe { std::ffi::CStr::from_ptr(self.0) }
                .to_string_lossy()
                .into_owned(),
        )
    }
}

impl Drop for MallocString {
    fn drop(&mut self) {
        // SAFETY: malloc'ed per `from_raw`'s contract; free(NULL) is a no-op.
        unsafe { libc::free(self.0.cast()) };
    }
}

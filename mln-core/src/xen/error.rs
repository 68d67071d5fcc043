//! libxl's integer error codes turned into names for [`Error::Libxl`].

use std::os::raw::c_int;

use xenlight_sys as sys;

use crate::error::{Error, Result};

/// The name of libxl error code `rc` (`ERROR_DOMAIN_NOTFOUND`), or
/// `ERROR_UNKNOWN` for a code this libxl version does not define.
pub fn code_name(rc: c_int) -> &'static str {
    match rc {
        0 => "OK",
        sys::ERROR_NONSPECIFIC => "ERROR_NONSPECIFIC",
        sys::ERROR_VERSION => "ERROR_VERSION",
        sys::ERROR_FAIL => "ERROR_FAIL",
        sys::ERROR_NI => "ERROR_NI",
        sys::ERROR_NOMEM => "ERROR_NOMEM",
        sys::ERROR_INVAL => "ERROR_INVAL",
        sys::ERROR_BADFAIL => "ERROR_BADFAIL",
        sys::ERROR_GUEST_TIMEDOUT => "ERROR_GUEST_TIMEDOUT",
        sys::ERROR_TIMEDOUT => "ERROR_TIMEDOUT",
        sys::ERROR_NOPARAVIRT => "ERROR_NOPARAVIRT",
        sys::ERROR_NOT_READY => "ERROR_NOT_READY",
        sys::ERROR_OSEVENT_REG_FAIL => "ERROR_OSEVENT_REG_FAIL",
        sys::ERROR_BUFFERFULL => "ERROR_BUFFERFULL",
        sys::ERROR_UNKNOWN_CHILD => "ERROR_UNKNOWN_CHILD",
        sys::ERROR_LOCK_FAIL => "ERROR_LOCK_FAIL",
        sys::ERROR_JSON_CONFIG_EMPTY => "ERROR_JSON_CONFIG_EMPTY",
        sys::ERROR_DEVICE_EXISTS => "ERROR_DEVICE_EXISTS",
        sys::ERROR_CHECKPOINT_DEVOPS_DOES_NOT_MATCH => "ERROR_CHECKPOINT_DEVOPS_DOES_NOT_MATCH",
        sys::ERROR_CHECKPOINT_DEVICE_NOT_SUPPORTED => "ERROR_CHECKPOINT_DEVICE_NOT_SUPPORTED",
        sys::ERROR_VNUMA_CONFIG_INVALID => "ERROR_VNUMA_CONFIG_INVALID",
        sys::ERROR_DOMAIN_NOTFOUND => "ERROR_DOMAIN_NOTFOUND",
        sys::ERROR_ABORTED => "ERROR_ABORTED",
        sys::ERROR_NOTFOUND => "ERROR_NOTFOUND",
        sys::ERROR_DOMAIN_DESTROYED => "ERROR_DOMAIN_DESTROYED",
        sys::ERROR_FEATURE_REMOVED => "ERROR_FEATURE_REMOVED",
        sys::ERROR_PROTOCOL_ERROR_QMP => "ERROR_PROTOCOL_ERROR_QMP",
        sys::ERROR_UNKNOWN_QMP_ERROR => "ERROR_UNKNOWN_QMP_ERROR",
        sys::ERROR_QMP_GENERIC_ERROR => "ERROR_QMP_GENERIC_ERROR",
        sys::ERROR_QMP_COMMAND_NOT_FOUND => "ERROR_QMP_COMMAND_NOT_FOUND",
        sys::ERROR_QMP_DEVICE_NOT_ACTIVE => "ERROR_QMP_DEVICE_NOT_ACTIVE",
        sys::ERROR_QMP_DEVICE_NOT_FOUND => "ERROR_QMP_DEVICE_NOT_FOUND",
        sys::ERROR_QEMU_API => "ERROR_QEMU_API",
        _ => "ERROR_UNKNOWN",
    }
}

/// `Ok` for `rc == 0`; otherwise [`Error::NotFound`] for a missing domain and
/// [`Error::Libxl`] naming `op`, `domain` and the code for everything else.
pub fn check(rc: c_int, op: &'static str, domain: &str) -> Result<()> {
    if rc == 0 {
        return Ok(());
    }
    if rc == sys::ERROR_DOMAIN_NOTFOUND {
        return Err(Error::NotFound {
            domain: domain.to_string(),
        });
    }
    Err(Error::Libxl {
        op,
        domain: domain.to_string(),
        code: code_name(rc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libxl_error_code_has_its_c_name() {
        for rc in -32..0 {
            let name = code_name(rc);
            assert!(
                name.starts_with("ERROR_") && name != "ERROR_UNKNOWN",
                "{rc}"
            );
            // SAFETY: libxl_error_to_string returns a static string or NULL.
            let c = unsafe { sys::libxl_error_to_string(rc) };
            assert!(!c.is_null());
            // SAFETY: non-null, static, NUL-terminated.
            let c = unsafe { std::ffi::CStr::from_ptr(c) }.to_string_lossy();
            assert_eq!(name, format!("ERROR_{}", c.to_ascii_uppercase()));
        }
        assert_eq!(code_name(-999), "ERROR_UNKNOWN");
    }

    #[test]
    fn missing_domain_becomes_not_found_with_its_name() {
        match check(sys::ERROR_DOMAIN_NOTFOUND, "libxl_domain_pause", "web1") {
            Err(Error::NotFound { domain }) => assert_eq!(domain, "web1"),
            other => panic!("{other:?}"),
        }
        match check(sys::ERROR_FAIL, "libxl_domain_pause", "web1") {
            Err(e @ Error::Libxl { .. }) => assert_eq!(
                e.to_string(),
                "libxl libxl_domain_pause failed for web1: ERROR_FAIL"
            ),
            other => panic!("{other:?}"),
        }
    }
}

//! What the kernel-side switches ([`super::LinuxBridge`], [`super::Vxlan`])
//! share: running `ip`, the `/sys/class/net` view of interfaces, the
//! ownership token each device carries as its alias, stable hashes of
//! names, and their JSON records.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::uml::process::write_atomic;

/// Where the kernel lists network interfaces.
pub(super) const SYS_NET: &str = "/sys/class/net";

/// iproute2's `ip`.
pub(super) const IP: &str = "ip";

/// Run `ip ARGS` (argv, never a shell); its stderr becomes the error.
pub(super) fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new(IP)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::Spawn {
            program: IP.to_string(),
            source: e,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            program: format!("{IP} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Does network interface `name` exist?
pub(super) fn interface_exists(name: &str) -> bool {
    Path::new(SYS_NET).join(name).exists()
}

/// The alias a device mln made carries: its record's token.
pub(super) fn alias(token: &str) -> String {
    format!("mln:{token}")
}

/// A token no other device carries: where, what and when it was made.
pub(super) fn token(dir: &Path, device: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{}/{device}/{}/{now}", dir.display(), std::process::id());
    format!("{:016x}", fnv1a(&seed))
}

/// Write `record` as pretty JSON to `path`, atomically.
pub(super) fn write_record<T: Serialize>(path: &Path, record: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    write_atomic(path, &bytes)
}

/// FNV-1a, 64 bit: stable across Rust versions, unlike `DefaultHasher`,
/// so names and VNIs derived from it stay the same from build to build.
pub(super) fn fnv1a(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        // Test vectors of FNV-1a 64.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn tokens_differ_between_devices_and_aliases_name_them() {
        let dir = Path::new("/state/p/sw");
        assert_ne!(token(dir, "mlnbr0"), token(dir, "mlnbr1"));
        assert_eq!(alias("abc"), "mln:abc");
    }
}

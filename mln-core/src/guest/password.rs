//! Passwords for guests: a crypt(3) hash passes through, plain text is
//! hashed with SHA-512 crypt before it goes anywhere (guest, state, plan).

use sha_crypt::{PasswordHasher, ShaCrypt};

use crate::error::{Error, Result};

/// True when `value` is already a crypt(3) hash in the modular format
/// (`$1$`, `$5$`, `$6$`, `$y$`, `$2b$`, ...) or a locked/empty marker
/// (`!`, `*`).
pub fn is_crypt_hash(value: &str) -> bool {
    if value.starts_with('!') || value == "*" {
        return true;
    }
    let mut parts = value.split('$');
    // "$id$...": an empty first field, a short identifier, then more.
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(""), Some(id), Some(_)) if !id.is_empty() && id.len() <= 4
            && id.chars().all(|c| c.is_ascii_alphanumeric())
    )
}

/// The crypt(3) hash to write into the guest's `/etc/shadow` for `value`:
/// `value` itself when it is a hash, else its SHA-512 crypt.
///
/// The salt is derived from `salt_seed` (for example `project/host`), so
/// the same password on the same host always gives the same hash (a plan
/// sees no change where there is none) while two hosts sharing a password
/// get different hashes.
///
/// ```
/// use mln_core::guest::password_hash;
/// let h = password_hash("secret", "lab/router").unwrap();
/// assert!(h.starts_with("$6$"));
/// assert!(!h.contains("secret"));
/// assert_eq!(h, password_hash("secret", "lab/router").unwrap());
/// assert_ne!(h, password_hash("secret", "lab/alice").unwrap());
/// assert_eq!(password_hash("$6$salt$abc", "x").unwrap(), "$6$salt$abc");
/// ```
pub fn password_hash(value: &str, salt_seed: &str) -> Result<String> {
    if is_crypt_hash(value) {
        return Ok(value.to_string());
    }
    let salt = derived_salt(salt_seed);
    ShaCrypt::SHA512
        .hash_password_with_salt(value.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::InvalidGuestConfig {
            host: salt_seed.to_string(),
            field: "root_passwd".to_string(),
            reason: format!("cannot hash it: {e}"),
        })
}

/// 12 salt bytes from `seed` (FNV-1a, stable across Rust versions).
fn derived_salt(seed: &str) -> [u8; 12] {
    let mut out = [0u8; 12];
    for (round, chunk) in out.chunks_mut(4).enumerate() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ round as u64;
        for b in seed.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        chunk.copy_from_slice(&h.to_be_bytes()[..4]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_pass_through_and_plain_text_does_not() {
        for h in ["$6$abc$def", "$1$x$y", "$y$j9T$a$b", "!", "*", "!$6$a$b"] {
            assert!(is_crypt_hash(h), "{h}");
        }
        for p in ["secret", "$", "$$", "pa$$word", "", "$toolongid$x"] {
            assert!(!is_crypt_hash(p), "{p}");
        }
    }

    #[test]
    fn known_answer_verified_by_glibc_crypt() {
        // glibc's crypt("hunter2", H) returns exactly H (checked with
        // Python's crypt module on Debian 12): the guest's login accepts it.
        assert_eq!(
            password_hash("hunter2", "p/h").unwrap(),
            "$6$rounds=5000$sF5INwqrdYVWYvO4$UhH.kzrm0kyN8oXXbCFCYV3BD4rXW7oDqWTyMs6phKkmL7h0YHMGBi5O38Vfj6viHOHH1FG3l0waVwQjxoega."
        );
    }
}

//! Names that become file names, bridge names and process arguments.
//!
//! Project, host and switch names are checked once when a project is read,
//! and again here, at every place they turn into a path or an argument.

use std::fmt;

use crate::error::{Error, Result};

/// The longest name accepted (a DNS label).
pub const MAX_NAME_LEN: usize = 63;

/// The longest Linux network interface name (`IFNAMSIZ` less its NUL).
pub const MAX_INTERFACE_LEN: usize = 15;

/// A name made only of ASCII letters, digits, `-`, `_` and `.` (never first),
/// at most [`MAX_NAME_LEN`] long, not starting with `-`.
///
/// ```
/// use mln_core::SafeName;
/// assert!(SafeName::new("web-1").is_ok());
/// assert!(SafeName::new("../etc").is_err());
/// assert!(SafeName::new("-rf").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SafeName(String);

impl SafeName {
    /// Check `name`.
    pub fn new(name: &str) -> Result<Self> {
        check(name).map_err(|reason| Error::InvalidName {
            name: name.to_string(),
            reason,
        })?;
        Ok(SafeName(name.to_string()))
    }

    /// Check `name` as a Linux network interface name (a tap or a bridge):
    /// a safe name of at most [`MAX_INTERFACE_LEN`] characters.
    ///
    /// ```
    /// use mln_core::SafeName;
    /// assert!(SafeName::interface("br-lan").is_ok());
    /// assert!(SafeName::interface("a-very-long-name").is_err()); // 16
    /// ```
    pub fn interface(name: &str) -> Result<Self> {
        let safe = Self::new(name)?;
        if name.len() > MAX_INTERFACE_LEN {
            return Err(Error::InvalidName {
                name: name.to_string(),
                reason: "an interface name has at most 15 characters",
            });
        }
        Ok(safe)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SafeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SafeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why `name` is not safe, or `Ok` when it is.
pub fn check(name: &str) -> std::result::Result<(), &'static str> {
    let first = name.chars().next().ok_or("the name is empty")?;
    if name.len() > MAX_NAME_LEN {
        return Err("longer than 63 characters");
    }
    if first == '.' || first == '-' {
        return Err("must not start with `.` or `-`");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("only letters, digits, `-`, `_` and `.` are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_hostile_shape() {
        for bad in [
            "",
            "../x",
            "a/b",
            "a\0b",
            "-rf",
            ".hidden",
            "a;b",
            "a b",
            "$(x)",
            "a`b`",
            "é",
            &"x".repeat(64),
        ] {
            assert!(SafeName::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "web-1", "node_01", "a.b", &"x".repeat(63)] {
            assert!(SafeName::new(good).is_ok(), "{good:?} refused");
        }
    }
}

//! MLN's `owner`, `group` and `sudo` keys, which hosts and switches both
//! take (see [`crate::plan::Ownership`] for what they mean here).

use serde::{Deserialize, Serialize};

/// The `owner`, `group` and `sudo` statements of one host or switch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerKeys {
    /// `owner USER`: the Unix user it runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `group GROUP`: the Unix group its files belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `sudo USER`: as `owner` (MLN ran it through `sudo -u`); it wins
    /// over `owner` when both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<String>,
}

impl OwnerKeys {
    /// The keywords, in the order they print.
    pub const KEYWORDS: [&'static str; 3] = ["owner", "group", "sudo"];

    /// The value of `keyword` (one of [`Self::KEYWORDS`]).
    pub fn get(&self, keyword: &str) -> Option<&String> {
        match keyword {
            "owner" => self.owner.as_ref(),
            "group" => self.group.as_ref(),
            "sudo" => self.sudo.as_ref(),
            _ => None,
        }
    }

    /// Set `keyword` to `value`; false when `keyword` is not one of these.
    pub fn set(&mut self, keyword: &str, value: String) -> bool {
        let slot = match keyword {
            "owner" => &mut self.owner,
            "group" => &mut self.group,
            "sudo" => &mut self.sudo,
            _ => return false,
        };
        *slot = Some(value);
        true
    }

    /// The user it runs as, and the keyword that said so: `sudo` when
    /// given, else `owner`.
    pub fn user(&self) -> Option<(&'static str, &String)> {
        match (&self.sudo, &self.owner) {
            (Some(u), _) => Some(("sudo", u)),
            (None, Some(u)) => Some(("owner", u)),
            (None, None) => None,
        }
    }
}

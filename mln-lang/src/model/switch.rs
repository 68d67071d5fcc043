//! Virtual switches.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{GenericBlock, OwnerKeys};

/// A project switch: `switch NAME { ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    /// The switch's name.
    pub name: String,
    /// `service_host`: the server that runs it; `None` for the local
    /// machine.
    #[serde(default)]
    pub service_host: Option<String>,
    /// `hub`: flood every port.
    #[serde(default)]
    pub hub: bool,
    /// `bridge BR`: the bridge name to use on Xen.
    #[serde(default)]
    pub bridge: Option<String>,
    /// `socket PATH`: join an existing switch socket.
    #[serde(default)]
    pub socket: Option<String>,
    /// `tap IFACE`: connect a host tap interface.
    #[serde(default)]
    pub tap: Option<String>,
    /// `owner`, `group` and `sudo`: whose switch it is.
    #[serde(default, flatten)]
    pub owner_keys: OwnerKeys,
    /// The host interfaces that attach to this switch, in host order then
    /// interface order. Computed by the resolver, never written in a file.
    #[serde(default)]
    pub members: Vec<SwitchPort>,
    /// Keywords this implementation does not know, value after expansion.
    #[serde(default)]
    pub unknown: BTreeMap<String, String>,
    /// Nested blocks this implementation gives no meaning to.
    #[serde(default)]
    pub blocks: Vec<GenericBlock>,
}

impl Switch {
    /// A switch called `name` with nothing set.
    pub fn new(name: impl Into<String>) -> Self {
        Switch {
            name: name.into(),
            service_host: None,
            hub: false,
            bridge: None,
            socket: None,
            tap: None,
            owner_keys: OwnerKeys::default(),
            members: Vec::new(),
            unknown: BTreeMap::new(),
            blocks: Vec::new(),
        }
    }
}

/// One host interface plugged into a switch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SwitchPort {
    /// The host's name.
    pub host: String,
    /// The interface's name (`eth0`, ...).
    pub interface: String,
}

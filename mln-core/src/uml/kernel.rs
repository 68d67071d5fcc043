//! UML kernels: what a `linux.uml` binary is, asked of the binary itself.
//!
//! Two generations are in use. Debian 12's kernel (6.1) takes network
//! interfaces as `ethN=vde,SOCKET,MAC`; the kernels from 6.x on that boot
//! on hosts with a large XSAVE area (Intel AMX) dropped that driver and
//! take `vecN:transport=vde,vnl=vde://SOCKET,mac=MAC` (the vector driver;
//! the guest sees `vecN`, which the template renames to `ethN`). Which one
//! a binary takes is read from its `--help`, which prints every option
//! its drivers register and exits at once, without booting.
//!
//! ```no_run
//! use mln_core::uml::{NetDriver, UmlKernel};
//! let k = UmlKernel::inspect("/usr/bin/linux.uml".as_ref())?;
//! println!("{} {}: {:?}", k.path.display(), k.version, k.net);
//! assert!(matches!(k.net, NetDriver::Eth | NetDriver::Vector));
//! # Ok::<(), mln_core::Error>(())
//! ```

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::bounded::output_within;
use crate::error::{Error, Result};

/// How a UML kernel attaches a network interface to a `vde_switch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetDriver {
    /// The classic driver: `ethN=vde,SOCKET,MAC`; the guest sees `ethN`.
    Eth,
    /// The vector driver: `vecN:transport=vde,vnl=vde://SOCKET,mac=MAC`;
    /// the guest sees `vecN`.
    Vector,
}

impl NetDriver {
    /// The kernel's device name for interface number `index`, as used on
    /// its command line and in management console requests.
    pub fn device(self, index: u32) -> String {
        match self {
            NetDriver::Eth => format!("eth{index}"),
            NetDriver::Vector => format!("vec{index}"),
        }
    }

    /// The command-line word (and management console `config` argument)
    /// that plugs interface `index` into the switch at `socket` with `mac`.
    /// `socket` must already be a valid command-line path.
    pub fn attach(self, index: u32, socket: &str, mac: &crate::MacAddr) -> String {
        match self {
            NetDriver::Eth => format!("eth{index}=vde,{socket},{mac}"),
            NetDriver::Vector => {
                format!("vec{index}:transport=vde,vnl=vde://{socket},mac={mac}")
            }
        }
    }
}

/// A UML kernel binary and what it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UmlKernel {
    /// The binary.
    pub path: PathBuf,
    /// Its version (`--version`), e.g. `6.1.176`.
    pub version: String,
    /// How it attaches network interfaces.
    pub net: NetDriver,
}

/// What identifies one build of a binary cheaply: a replaced file has
/// another size or modification time.
type Identity = (PathBuf, u64, Option<SystemTime>);

fn cache() -> &'static Mutex<HashMap<Identity, UmlKernel>> {
    static CACHE: OnceLock<Mutex<HashMap<Identity, UmlKernel>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

impl UmlKernel {
    /// Ask the binary at `path` (once per binary and process: the answer
    /// is kept while the file is unchanged) what it is.
    pub fn inspect(path: &Path) -> Result<UmlKernel> {
        let meta = fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingFile {
                what: "UML kernel",
                path: path.to_path_buf(),
            },
            _ => Error::io(path, e),
        })?;
        let id: Identity = (path.to_path_buf(), meta.len(), meta.modified().ok());
        if let Some(k) = cache().lock().ok().and_then(|c| c.get(&id).cloned()) {
            return Ok(k);
        }
        let kernel = Self::ask(path)?;
        if let Ok(mut c) = cache().lock() {
            c.insert(id, kernel.clone());
        }
        Ok(kernel)
    }

    fn ask(path: &Path) -> Result<UmlKernel> {
        let what = path.display().to_string();
        let limit = Duration::from_secs(10);
        let help = output_within(Command::new(path).arg("--help"), &what, limit)
            .map_err(|e| missing_interpreter(path, e))?;
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        let net = Self::net_driver_from_help(&help).ok_or_else(|| Error::Backend {
            what: what.clone(),
            message: "not a UML kernel with a network driver MLN knows \
                      (its --help lists neither `eth[0-9]+=` nor `vec[0-9]+:`)"
                .into(),
        })?;
        let version = output_within(Command::new(path).arg("--version"), &what, limit)?;
        let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
        Ok(UmlKernel {
            path: path.to_path_buf(),
            version,
            net,
        })
    }

    /// The driver a kernel's `--help` text offers; the classic one when
    /// both are there (it needs nothing renamed in the guest).
    pub fn net_driver_from_help(help: &str) -> Option<NetDriver> {
        let has = |prefix: &str| help.lines().any(|l| l.trim_start().starts_with(prefix));
        if has("eth[0-9]+=") {
            Some(NetDriver::Eth)
        } else if has("vec[0-9]+:") {
            Some(NetDriver::Vector)
        } else {
            None
        }
    }
}

/// A kernel file that is there but "not found" when run: the program that
/// loads it (its ELF interpreter) is missing. A fetched kernel names the C
/// library unpacked beside it, so it stops running when its folder moves.
fn missing_interpreter(path: &Path, e: Error) -> Error {
    match e {
        Error::Spawn { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound && path.exists() =>
        {
            Error::Backend {
                what: path.display().to_string(),
                message: "it is there but cannot be started: the C library it runs with (its \
                          ELF interpreter) is missing; a kernel from `mln kernel fetch` runs only \
                          from the folder it was fetched into: `mln kernel fetch --refresh` \
                          fetches it again"
                    .into(),
            }
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_whose_interpreter_is_gone_says_so_and_how_to_fetch_it_again() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("linux.uml");
        // Run, it fails as a moved fetched kernel does: ENOENT for a file
        // that is there.
        fs::write(&kernel, "#!/nonexistent/ld-linux-x86-64.so.2\n").unwrap();
        fs::set_permissions(&kernel, fs::Permissions::from_mode(0o755)).unwrap();
        let e = UmlKernel::inspect(&kernel).unwrap_err().to_string();
        assert!(e.contains("ELF interpreter"), "{e}");
        assert!(e.contains("mln kernel fetch --refresh"), "{e}");
    }
    use crate::MacAddr;

    #[test]
    fn both_generations_are_told_apart_by_their_help() {
        let old = "vec[0-9]+:<option>=<value>,<option>=<value>\n    Configure a vector io network device.\n\neth[0-9]+=<transport>,<options>\n";
        let new = "ssl[0-9]*=<channel description>\nvec[0-9]+:<option>=<value>,<option>=<value>\n";
        assert_eq!(UmlKernel::net_driver_from_help(old), Some(NetDriver::Eth));
        assert_eq!(
            UmlKernel::net_driver_from_help(new),
            Some(NetDriver::Vector)
        );
        assert_eq!(UmlKernel::net_driver_from_help("usage: ls"), None);
    }

    #[test]
    fn attachment_words_for_each_driver() {
        let mac: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        assert_eq!(
            NetDriver::Eth.attach(2, "/s/lan", &mac),
            "eth2=vde,/s/lan,52:54:00:00:00:01"
        );
        assert_eq!(
            NetDriver::Vector.attach(2, "/s/lan", &mac),
            "vec2:transport=vde,vnl=vde:///s/lan,mac=52:54:00:00:00:01"
        );
        assert_eq!(NetDriver::Vector.device(3), "vec3");
    }

    #[test]
    fn a_program_that_is_no_uml_kernel_is_refused() {
        let err = UmlKernel::inspect(Path::new("/bin/true")).unwrap_err();
        assert!(err.to_string().contains("not a UML kernel"), "{err}");
        let err = UmlKernel::inspect(Path::new("/nonexistent/linux.uml")).unwrap_err();
        assert!(matches!(err, Error::MissingFile { .. }), "{err}");
    }
}

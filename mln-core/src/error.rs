//! The one error type of mln-core: every variant names the object it failed on.

use std::path::PathBuf;
use std::time::Duration;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a lifecycle, switch or disk operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// This machine is not a Xen host (no `/proc/xen`, no privcmd), or libxl
    /// could not get a context.
    #[error("Xen is not available on this machine: {reason}")]
    XenUnavailable {
        /// Why, in words.
        reason: String,
    },
    /// A libxl call failed; `code` is libxl's error name (`ERROR_DOMAIN_NOTFOUND`).
    #[error("libxl {op} failed for {domain}: {code}")]
    Libxl {
        /// The operation (`libxl_domain_pause`).
        op: &'static str,
        /// The domain, or `-` when none.
        domain: String,
        /// libxl's error name, e.g. `ERROR_FAIL`.
        code: &'static str,
    },
    /// No domain of that name.
    #[error("domain {domain}: not found")]
    NotFound {
        /// The name looked for.
        domain: String,
    },
    /// A domain of that name already exists.
    #[error("domain {domain}: already exists")]
    AlreadyExists {
        /// The name.
        domain: String,
    },
    /// The operation needs another state (e.g. resume on a running domain).
    #[error("domain {domain}: cannot {op} while {state}")]
    WrongState {
        /// The domain.
        domain: String,
        /// The operation tried.
        op: &'static str,
        /// Its current state.
        state: String,
    },
    /// A name that would be unsafe as a file name, bridge name or argument.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A malformed MAC address.
    #[error("invalid MAC address {0:?}")]
    InvalidMac(String),
    /// An operation did not finish in time.
    #[error("{what}: {op} did not finish within {after:?}")]
    Timeout {
        /// The object (domain or switch name).
        what: String,
        /// The operation.
        op: &'static str,
        /// The limit that passed.
        after: Duration,
    },
    /// A helper program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A helper program ran and failed.
    #[error("{program} failed ({status}): {stderr}")]
    Command {
        /// The program.
        program: String,
        /// Its exit status, in words.
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// This backend cannot do that.
    #[error("the {backend} backend does not support {op}")]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// The operation.
        op: &'static str,
    },
    /// A file an operation needs does not exist (a kernel, a template, a
    /// disk image, a switch socket).
    #[error("{what} {path} does not exist")]
    MissingFile {
        /// What the file was meant to be (`kernel`, `template`, ...).
        what: &'static str,
        /// The path looked for.
        path: PathBuf,
    },
    /// A path that cannot be used where it has to go (it contains a
    /// separator of UML's command line, or is too long for a unix socket).
    #[error("{path}: unusable as {what}: {reason}")]
    UnusablePath {
        /// The path.
        path: PathBuf,
        /// Where it was to be used.
        what: &'static str,
        /// Why it cannot be.
        reason: &'static str,
    },
    /// A guest configuration value that cannot be written into the guest
    /// safely (a `:` in a user name, a newline in a hash, ...).
    #[error("guest {host}: invalid {field}: {reason}")]
    InvalidGuestConfig {
        /// The guest (host name).
        host: String,
        /// The setting, e.g. `user alice`.
        field: String,
        /// Why it was refused.
        reason: String,
    },
    /// A QEMU guest's QMP command failed, or QEMU answered outside the
    /// protocol.
    #[error("domain {domain}: QMP {command}: {message}")]
    Qmp {
        /// The domain.
        domain: String,
        /// The command (`migrate`, `query-status`, ...).
        command: String,
        /// QEMU's error class and description, or what was wrong.
        message: String,
    },
    /// A template image that cannot be built, imported or used as asked.
    #[error("template {path}: {reason}")]
    Template {
        /// The image (or, while building, the folder it is built in).
        path: PathBuf,
        /// What is wrong, and what to do about it where that is known.
        reason: String,
    },
    /// A host's disk cannot take the size asked for.
    #[error("disk {path}: {reason}")]
    DiskSize {
        /// The disk (overlay, swap file).
        path: PathBuf,
        /// Why, with the sizes.
        reason: String,
    },
    /// A guest died while it booted, before it answered.
    #[error("{domain} crashed while booting: {message}")]
    BootCrash {
        /// The guest.
        domain: String,
        /// How it ended, with the end of its console.
        message: String,
        /// Of a fault known to pass, met before the guest changed anything
        /// on its disks: starting it again is safe (see
        /// [`crate::uml::CrashCause::is_transient`]).
        transient: bool,
    },
    /// A guest or switch process misbehaved (died, answered nonsense).
    #[error("{what}: {message}")]
    Backend {
        /// The object.
        what: String,
        /// What happened.
        message: String,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

//! Domain lifecycle for MLN.
//!
//! One backend-neutral API ([`DomainSpec`] in, [`Hypervisor`] does the work)
//! with real backends: Xen through libxenlight (module `xen`, behind the
//! cargo feature `xen`, off by default: it links Xen's libraries) and
//! User-Mode Linux (module `uml`) and QEMU/KVM (module `qemu`). Virtual
//! switches live in `net`, disk images in `disk`.
//!
//! `unsafe` code is denied everywhere but in module `xen`, the binding to
//! libxl; every `unsafe` block there says why it is sound (`// SAFETY:`).
//!
//! ```
//! use mln_core::{DomainSpec, Boot};
//! let spec = DomainSpec::new("web1", 128 << 20, Boot::kernel("/boot/vmlinuz"));
//! assert_eq!(spec.vcpus, 1);
//! ```

#![warn(missing_docs)]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod attach;
pub mod base64;
pub mod bounded;
mod console;
pub mod disk;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod exec;
pub mod guest;
pub mod name;
pub mod net;
pub mod qemu;
pub mod template;
pub mod uml;
#[cfg(feature = "xen")]
#[allow(unsafe_code)] // FFI to libxl: the one module allowed `unsafe`.
pub mod xen;

pub use domain::DomainSpec;
pub use domain::{
    Attachment, BackendKind, Boot, BootStatus, DiskSpec, DomainHandle, DomainInfo, DomainState,
    Hypervisor, InterfaceSpec, MacAddr,
};
pub use error::{Error, Result};
pub use name::SafeName;

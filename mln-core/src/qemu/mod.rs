//! The QEMU backend (in progress): its QMP client, the guest kernel and
//! the choice of accelerator.

pub mod accel;
mod cpio;
mod initramfs;
mod kernel;
mod modinfo;
pub mod qmp;

pub use accel::Acceleration;
pub use kernel::GuestKernel;

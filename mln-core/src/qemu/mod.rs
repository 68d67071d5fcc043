//! The QEMU backend (in progress): its QMP client.

pub mod qmp;

// SPDX-License-Identifier: GPL-2.0

//! Safe abstractions the VDCM needs and the kernel crate does not have yet.
//!
//! This tree is written as if it were part of `rust/kernel/`: every `unsafe`
//! of the project lives in `rust/`, each block with a `// SAFETY:` proof.
//! Rust out-of-tree modules are one crate each and cannot share a library
//! crate, so each module compiles the part of `rust/` it uses in as a
//! module of its own; this root is the VDCM's
//! (`#[path = "../../rust/vdcm_core.rs"] pub mod vdcm_kernel;`). PF drivers
//! use `pf_driver.rs`. Modules talk to each other only through C ABI
//! (`include/vdcm_pf.h`).

pub mod bindings;
pub mod compat;
pub mod crc;
pub mod eventfd;
pub mod footprint;
pub mod mdev;
pub mod pasid;
pub mod pci_regs;
pub mod pf_host;
pub mod ratelimit;
pub mod revocable;
pub mod sysfs;
pub mod tenant;
pub mod vfio;
pub mod wire;

/// The raw `struct device` behind a [`kernel::device::Device`].
///
/// The kernel crate keeps its own accessor private to itself; the cast is
/// valid because `Device` is a transparent wrapper of `struct device`.
pub fn raw_device(dev: &kernel::device::Device) -> *mut kernel::bindings::device {
    core::ptr::from_ref(dev).cast_mut().cast()
}

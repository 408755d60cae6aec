// SPDX-License-Identifier: GPL-2.0

//! Safe abstractions the VDCM needs and the kernel crate does not have yet.
//!
//! This tree is written as if it were part of `rust/kernel/`: every `unsafe`
//! of the project lives here, each block with a `// SAFETY:` proof. Rust
//! out-of-tree modules are one crate each and cannot share a library crate,
//! so each module that needs these abstractions compiles this tree in as a
//! module of its own (`#[path = "../../rust/lib.rs"] pub mod vdcm_kernel;`).
//! Modules talk to each other only through C ABI (see `pf`).

pub mod bindings;
pub mod class;
pub mod doorbell;
pub mod eventfd;
pub mod mdev;
pub mod pasid;
pub mod pci_config;
pub mod pf;
pub mod poller;
pub mod ratelimit;
pub mod sysfs;
pub mod vfio;

/// The raw `struct device` behind a [`kernel::device::Device`].
///
/// The kernel crate keeps its own accessor private to itself; the cast is
/// valid because `Device` is a transparent wrapper of `struct device`.
pub fn raw_device(dev: &kernel::device::Device) -> *mut kernel::bindings::device {
    core::ptr::from_ref(dev).cast_mut().cast()
}

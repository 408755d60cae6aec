// SPDX-License-Identifier: GPL-2.0

//! Safe abstractions for a Rust PF driver of the VDCM: the client side of
//! the PF contract (`pf`, `tenant`) and what the simulated PF needs besides
//! (class devices with counters, doorbell pages, a polling work item).
//!
//! A PF driver compiles this root in as a module of its own
//! (`#[path = "../../rust/pf_driver.rs"] pub mod vdcm_kernel;`); nothing in
//! it calls VFIO, mdev, iommufd or eventfd, so a PF module depends on the
//! VDCM's exported symbols only. The VDCM's own root is `vdcm_core.rs`.

pub mod bindings;
pub mod class;
pub mod compat;
pub mod crc;
pub mod doorbell;
pub mod footprint;
pub mod pf;
pub mod poller;
pub mod sysfs;
pub mod tenant;
pub mod wire;

/// The raw `struct device` behind a [`kernel::device::Device`].
///
/// The kernel crate keeps its own accessor private to itself; the cast is
/// valid because `Device` is a transparent wrapper of `struct device`.
pub fn raw_device(dev: &kernel::device::Device) -> *mut kernel::bindings::device {
    core::ptr::from_ref(dev).cast_mut().cast()
}

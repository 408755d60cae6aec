// SPDX-License-Identifier: GPL-2.0

//! Emulated VFIO devices.
//!
//! A driver embeds its state in a [`Device`], whose first field is the C
//! `struct vfio_device`. The VFIO core allocates the whole object and owns
//! its lifetime: a [`Device`] is reference counted ([`ARef`]), and the
//! driver's data is dropped from the core's `release` callback once the last
//! reference is gone. [`Registration`] makes the device visible to user
//! space (the iommufd cdev and, with `CONFIG_VFIO_GROUP`, the legacy group)
//! and unregisters it on drop, waiting for every user to close it.
//!
//! The device is an *emulated IOMMU* device: it has no IOMMU of its own;
//! iommufd gives it an access object to the user's I/O address space, used
//! through DMA read/write and page pinning.
//!
//! C headers: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h).

//!
//! Files, as `rust/kernel/pci/` is split: `device.rs` the device, its
//! allocation and registration; `vtable.rs` the C ops table; `ioctl.rs`
//! the device ioctls; `irq.rs` `SET_IRQS`; `region.rs` region info and its
//! capabilities; `mmap.rs` mapping pages; `dma.rs` DMA and pinning;
//! `pci.rs` the vfio-pci constants.

use kernel::error::VTABLE_DEFAULT_ERROR;
use kernel::prelude::*;
use kernel::uaccess::UserSliceReader;
use kernel::uaccess::UserSliceWriter;

use super::bindings;

mod device;
mod dma;
mod ioctl;
mod irq;
mod mmap;
pub mod pci;
mod region;
mod vtable;

pub use device::*;
pub use dma::*;
pub use ioctl::*;
pub use irq::*;
pub use mmap::*;
pub use region::*;

/// The VFIO API version the running kernel's headers define, as returned by
/// `VFIO_GET_API_VERSION`.
pub const API_VERSION: u32 = bindings::VFIO_API_VERSION;

/// The operations of an emulated VFIO device.
///
/// Every callback receives the [`Device`] it was called for; the driver's
/// own state is reached through it (it dereferences to `Self`). Callbacks
/// that are not implemented are left out of the C ops table, so the VFIO
/// core answers them with its defaults (e.g. `-EINVAL` for read/write).
#[vtable]
pub trait Driver: Sized + Send + Sync {
    /// Name of the ops table, shown in debugging output.
    const NAME: &'static CStr;

    /// Called when the first user opens the device (`open_device`).
    fn open(_dev: &Device<Self>) -> Result {
        Ok(())
    }

    /// Called when the last user closes the device (`close_device`).
    fn close(_dev: &Device<Self>) {}

    /// Reads region data at the device-defined `offset` into `out`.
    ///
    /// Returns the number of bytes written to `out`.
    fn read(_dev: &Device<Self>, _out: &mut UserSliceWriter, _offset: u64) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Writes region data from `input` at the device-defined `offset`.
    ///
    /// Returns the number of bytes consumed from `input`.
    fn write(_dev: &Device<Self>, _input: &mut UserSliceReader, _offset: u64) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Describes region `index` for `VFIO_DEVICE_GET_REGION_INFO`, which
    /// the VFIO core handles (argument copying, `argsz`, the capability
    /// chain's placement); capabilities are added through `caps`.
    fn region_info(
        _dev: &Device<Self>,
        _index: u32,
        _caps: &mut RegionCaps<'_>,
    ) -> Result<RegionInfo> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Handles a device ioctl; `arg` is the user's argument (usually a
    /// pointer, see [`Ioctl::user_slice`]). `VFIO_DEVICE_GET_REGION_INFO`
    /// and `VFIO_DEVICE_FEATURE` never arrive here: the core handles them.
    fn ioctl(_dev: &Device<Self>, _ioctl: Ioctl) -> Result<isize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Asks the user to release the device: called, with a growing
    /// `count`, while unregistration waits for the device to be closed.
    fn request(_dev: &Device<Self>, _count: u32) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Maps part of a region into the user's address space (`mmap(2)` on the
    /// device fd); the region and offset are encoded in `vma`'s page offset
    /// as the driver's region layout defines.
    fn mmap(_dev: &Device<Self>, _vma: &Vma) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The user unmapped `[iova, iova + length)` from the I/O address space
    /// the device is attached to: stop using it and release every pin in it
    /// before returning.
    fn dma_unmap(_dev: &Device<Self>, _iova: u64, _length: u64) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

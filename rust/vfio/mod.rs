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
//! `pci.rs` the vfio-pci constants; `migration.rs` migration v2; `dirty.rs` DMA dirty logging.

use kernel::error::VTABLE_DEFAULT_ERROR;
use kernel::prelude::*;
use kernel::uaccess::UserSliceReader;
use kernel::uaccess::UserSliceWriter;

use super::bindings;

mod device;
pub mod dirty;
mod dma;
mod ioctl;
mod irq;
pub mod migration;
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

    /// Which migration arcs the device supports ([`migration::flags`]),
    /// asked once, before the device is registered; 0 (the default)
    /// offers no migration for it.
    fn migration_flags(_data: &Self) -> u32 {
        0
    }

    /// Takes the device from its migration state to `new`, one arc at a
    /// time ([`Device::next_mig_state`]); returns the data file of an arc
    /// that opens one (to STOP_COPY, PRE_COPY or RESUMING).
    fn migration_set_state(
        _dev: &Device<Self>,
        _new: migration::MigState,
    ) -> Result<Option<migration::DataFile>> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The device's migration state.
    fn migration_get_state(_dev: &Device<Self>) -> Result<migration::MigState> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The bytes a STOP_COPY would produce now, at most.
    fn migration_data_size(_dev: &Device<Self>) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Starts logging the device's DMA writes into `ranges` (checked by
    /// the core: aligned, disjoint); `page_size` is the granularity asked
    /// for, which the driver may change to the one it logs at. Offered
    /// only with migration.
    fn log_start(
        _dev: &Device<Self>,
        _ranges: &[dirty::IovaRange],
        _page_size: &mut u64,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Stops logging.
    fn log_stop(_dev: &Device<Self>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Sets in `dirty` every page of `[iova, iova + length)` written since
    /// the last call, and forgets them.
    fn log_read_and_clear(
        _dev: &Device<Self>,
        _iova: u64,
        _length: u64,
        _dirty: &mut dirty::IovaBitmap<'_>,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

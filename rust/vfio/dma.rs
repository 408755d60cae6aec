// SPDX-License-Identifier: GPL-2.0

//! DMA on the user's behalf: copies into and out of the I/O address space
//! the device is attached to, and pinned pages.

use kernel::error::to_result;
use kernel::prelude::*;
use kernel::sync::aref::ARef;

use super::bindings;
use super::Device;
use super::Driver;

/// Pages of the user's I/O address space pinned for the device, unpinned
/// when dropped.
///
/// The VFIO core requires a device that pins pages to give them up when
/// the user unmaps them: its [`Driver::dma_unmap`] must drop every
/// `PinnedPages` overlapping the range (see [`PinnedPages::overlaps`]).
/// They must also be dropped before the device is closed.
///
/// # Invariants
///
/// `npage` pages from the page-aligned `iova` are pinned through `dev`,
/// whose pointers are in `pages`; they are unpinned once, in `drop`.
pub struct PinnedPages<T: Driver> {
    dev: ARef<Device<T>>,
    iova: u64,
    pages: KVec<*mut bindings::page>,
}

// SAFETY: the pins are owned by this value; the page pointers are only
// handed out as long as it lives, and unpinning may happen on any thread.
unsafe impl<T: Driver> Send for PinnedPages<T> {}
// SAFETY: `&self` only reads.
unsafe impl<T: Driver> Sync for PinnedPages<T> {}

impl<T: Driver> PinnedPages<T> {
    /// First IOVA of the pinned range (page aligned).
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// Bytes pinned.
    pub fn len(&self) -> u64 {
        self.pages.len() as u64 * kernel::page::PAGE_SIZE as u64
    }

    /// Whether nothing is pinned (never, for a value that exists).
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Whether the pinned range overlaps `[iova, iova + length)`.
    pub fn overlaps(&self, iova: u64, length: u64) -> bool {
        let end = iova.saturating_add(length);
        iova < self.iova.saturating_add(self.len()) && self.iova < end
    }
}

impl<T: Driver> Drop for PinnedPages<T> {
    fn drop(&mut self) {
        // SAFETY: the pins were taken through `dev` (type invariant) and
        // are given back once; `pages.len()` fits in `c_int` (checked when
        // pinning).
        unsafe {
            bindings::vfio_unpin_pages(self.dev.as_raw(), self.iova, self.pages.len() as i32)
        };
    }
}

impl<T: Driver> Device<T> {
    /// Copies between `buf` and the user's I/O address space at `iova`, as
    /// the device's DMA would: through the iommufd access (or the legacy
    /// container) the device is attached to. `write` copies `buf` to the
    /// user's memory.
    ///
    /// Fails with `EINVAL` if the device is not attached to an address space
    /// and `EFAULT` if the range is not mapped (or, for a write, is mapped
    /// read-only). May sleep.
    pub fn dma_rw(&self, iova: u64, buf: &mut [u8], write: bool) -> Result {
        // SAFETY: the device is live; `buf` is valid for reads and writes of
        // `buf.len()` bytes for the duration of the call, which copies and
        // keeps no reference.
        to_result(unsafe {
            bindings::vfio_dma_rw(
                self.as_raw(),
                iova,
                buf.as_mut_ptr().cast(),
                buf.len(),
                write,
            )
        })
    }
}

impl<T: Driver> Device<T> {
    /// Pins the `npage` pages of the user's I/O address space from the
    /// page containing `iova`, for reading (and writing, if `write`).
    ///
    /// Only valid while the device is open (`EINVAL` otherwise, and when
    /// the driver has no `dma_unmap`); `EFAULT`/`ENOENT`-class errors from
    /// the core when the range is not mapped.
    pub fn pin_pages(&self, iova: u64, npage: usize, write: bool) -> Result<PinnedPages<T>> {
        let count = i32::try_from(npage).map_err(|_| EINVAL)?;
        if count == 0 || !T::HAS_DMA_UNMAP {
            return Err(EINVAL);
        }
        let iova = iova & !(kernel::page::PAGE_SIZE as u64 - 1);
        let mut pages = KVec::from_elem(core::ptr::null_mut(), npage, GFP_KERNEL)?;
        let prot = if write {
            bindings::IOMMU_READ | bindings::IOMMU_WRITE
        } else {
            bindings::IOMMU_READ
        };
        // SAFETY: the device is live; `pages` has room for `npage` page
        // pointers. The core asserts the device is open (and fails cleanly
        // otherwise: callers only pin between open and close).
        let ret = unsafe {
            bindings::vfio_pin_pages(self.as_raw(), iova, count, prot as i32, pages.as_mut_ptr())
        };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        if ret != count {
            // The core pins all or nothing; anything else is a bug there.
            return Err(EFAULT);
        }
        // INVARIANT: all `npage` pages are pinned through this device.
        Ok(PinnedPages {
            dev: ARef::from(self),
            iova,
            pages,
        })
    }
}

// SPDX-License-Identifier: GPL-2.0

//! DMA dirty logging of an emulated device (`vfio_log_ops`): which pages
//! of the user's I/O address space the device wrote since the last report,
//! so a VMM migrating a running guest re-sends them.
//!
//! The VFIO core owns the uapi (`VFIO_DEVICE_FEATURE_DMA_LOGGING_*`): it
//! checks the ranges (aligned, not overlapping, at most a fixed number)
//! and walks the user's bitmap; the driver records what its device wrote
//! and sets those pages in the [`IovaBitmap`] it is handed.
//!
//! C headers: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/linux/iova_bitmap.h`](srctree/include/linux/iova_bitmap.h).

use core::marker::PhantomData;

use kernel::ffi;
use kernel::prelude::*;

use super::bindings;
use super::Device;
use super::Driver;

/// One IOVA range the user asked to log: `[start, start + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IovaRange {
    /// First IOVA.
    pub start: u64,
    /// Bytes.
    pub len: u64,
}

/// The part of the user's dirty bitmap one report covers.
///
/// # Invariants
///
/// `raw` is the core's live bitmap iterator for the duration of the
/// `log_read_and_clear` call that made this value.
pub struct IovaBitmap<'a> {
    raw: *mut bindings::iova_bitmap,
    _call: PhantomData<&'a mut ()>,
}

impl IovaBitmap<'_> {
    /// Marks `[iova, iova + len)` dirty in the user's bitmap.
    pub fn set(&mut self, iova: u64, len: u64) {
        // SAFETY: `raw` is live for this call (type invariant); the
        // function clips the range to what the iterator maps.
        unsafe { bindings::iova_bitmap_set(self.raw, iova as ffi::c_ulong, len as usize) };
    }
}

/// The `log_ops` table of a [`Driver`].
pub(super) struct LogVTable<T: Driver>(PhantomData<T>);

impl<T: Driver> LogVTable<T> {
    pub(super) const OPS: bindings::vfio_log_ops = bindings::vfio_log_ops {
        log_start: Some(Self::log_start),
        log_stop: Some(Self::log_stop),
        log_read_and_clear: Some(Self::log_read_and_clear),
    };

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device of this driver, an
    /// interval tree of `nnodes` ranges and a valid page size pointer.
    unsafe extern "C" fn log_start(
        vdev: *mut bindings::vfio_device,
        ranges: *mut bindings::rb_root_cached,
        nnodes: u32,
        page_size: *mut u64,
    ) -> ffi::c_int {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        let mut list = KVec::new();
        if list.reserve(nnodes as usize, GFP_KERNEL).is_err() {
            return ENOMEM.to_errno();
        }
        // SAFETY: `ranges` is the core's tree, alive and unchanged for the
        // call; iteration only reads it.
        let mut node = unsafe { bindings::interval_tree_iter_first(ranges, 0, ffi::c_ulong::MAX) };
        while !node.is_null() {
            // SAFETY: `node` is a live node of the tree.
            let (start, last) = unsafe { ((*node).start as u64, (*node).last as u64) };
            let range = IovaRange {
                start,
                len: last - start + 1,
            };
            if list.push(range, GFP_KERNEL).is_err() {
                return ENOMEM.to_errno();
            }
            // SAFETY: as for the first node.
            node = unsafe { bindings::interval_tree_iter_next(node, 0, ffi::c_ulong::MAX) };
        }
        // SAFETY: valid for reads and writes during the call.
        let page_size = unsafe { &mut *page_size };
        match T::log_start(dev, &list, page_size) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device of this driver.
    unsafe extern "C" fn log_stop(vdev: *mut bindings::vfio_device) -> ffi::c_int {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        match T::log_stop(dev) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device of this driver and
    /// a live bitmap iterator.
    unsafe extern "C" fn log_read_and_clear(
        vdev: *mut bindings::vfio_device,
        iova: ffi::c_ulong,
        length: ffi::c_ulong,
        dirty: *mut bindings::iova_bitmap,
    ) -> ffi::c_int {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        // INVARIANT: `dirty` is live for this call.
        let mut bitmap = IovaBitmap {
            raw: dirty,
            _call: PhantomData,
        };
        match T::log_read_and_clear(dev, iova as u64, length as u64, &mut bitmap) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }
}

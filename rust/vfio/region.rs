// SPDX-License-Identifier: GPL-2.0

//! `VFIO_DEVICE_GET_REGION_INFO`: what a driver says of a region and the
//! capabilities it adds to the answer.

use core::marker::PhantomData;

use kernel::error::to_result;
use kernel::prelude::*;
use kernel::transmute::AsBytes;

use super::bindings;

// SAFETY: `struct vfio_region_sparse_mmap_area` is two `__u64`s.
unsafe impl AsBytes for bindings::vfio_region_sparse_mmap_area {}
// SAFETY: `struct vfio_region_info_cap_sparse_mmap` is a capability
// header (`__u16`, `__u16`, `__u32`), two `__u32`s and a flexible array of
// size 0: no padding.
unsafe impl AsBytes for bindings::vfio_region_info_cap_sparse_mmap {}

/// What a device reports for one region in `VFIO_DEVICE_GET_REGION_INFO`
/// (see [`Driver::region_info`]).
#[derive(Clone, Copy, Debug)]
pub struct RegionInfo {
    /// `VFIO_REGION_INFO_FLAG_*` (read, write, mmap).
    pub flags: u32,
    /// Size of the region in bytes; 0 for an absent region.
    pub size: u64,
    /// Offset of the region in the device fd's file offsets.
    pub offset: u64,
}

/// The capability chain of a `VFIO_DEVICE_GET_REGION_INFO` answer.
///
/// # Invariants
///
/// `raw` is the core's `struct vfio_info_cap` for the request being
/// answered, valid for `'a`.
pub struct RegionCaps<'a> {
    pub(super) raw: *mut bindings::vfio_info_cap,
    pub(super) _p: PhantomData<&'a mut bindings::vfio_info_cap>,
}

impl RegionCaps<'_> {
    /// Appends one capability: `cap` is its complete encoding, starting with
    /// a `struct vfio_info_cap_header` (id, version; `next` is set by the
    /// core) and padded to 8 bytes.
    pub fn add(&mut self, cap: &[u8]) -> Result {
        const HEADER: usize = core::mem::size_of::<bindings::vfio_info_cap_header>();
        if cap.len() < HEADER || cap.len() % 8 != 0 {
            return Err(EINVAL);
        }
        // SAFETY: `raw` is valid (type invariant); `vfio_info_add_capability`
        // only reads `cap.len()` bytes from `cap` (header included), which
        // is long enough per the check above, and copies them.
        to_result(unsafe {
            bindings::vfio_info_add_capability(self.raw, cap.as_ptr().cast_mut().cast(), cap.len())
        })
    }
}

impl RegionCaps<'_> {
    /// Appends a `VFIO_REGION_INFO_CAP_SPARSE_MMAP` capability: the parts
    /// of the region user space may `mmap`, as `(offset, size)` pairs
    /// relative to the region's start. A VMM maps exactly these and traps
    /// the rest.
    pub fn add_sparse_mmap(&mut self, areas: &[(u64, u64)]) -> Result {
        let head = bindings::vfio_region_info_cap_sparse_mmap {
            header: bindings::vfio_info_cap_header {
                id: bindings::VFIO_REGION_INFO_CAP_SPARSE_MMAP as u16,
                version: 1,
                next: 0,
            },
            nr_areas: u32::try_from(areas.len()).map_err(|_| EINVAL)?,
            ..Default::default()
        };
        let area_size = core::mem::size_of::<bindings::vfio_region_sparse_mmap_area>();
        let mut cap = KVec::with_capacity(
            core::mem::size_of_val(&head) + areas.len() * area_size,
            GFP_KERNEL,
        )?;
        cap.extend_from_slice(head.as_bytes(), GFP_KERNEL)?;
        for &(offset, size) in areas {
            let area = bindings::vfio_region_sparse_mmap_area { offset, size };
            cap.extend_from_slice(area.as_bytes(), GFP_KERNEL)?;
        }
        self.add(&cap)
    }
}

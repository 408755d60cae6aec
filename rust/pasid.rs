// SPDX-License-Identifier: GPL-2.0

//! PASID allocation for the ADIs of one PF.
//!
//! A PF behind an IOMMU with PASID support shares the system's global PASID
//! space (`iommu_alloc_global_pasid`), so a PASID given to an ADI can later
//! be attached to the PF's IOMMU domain for that tenant. A PF without one
//! (the simulated PF; a PF whose IOMMU lacks PASID) gets a PF-local space
//! of `2^bits` IDs. PASID 0 is never handed out: it is `IOMMU_NO_PASID`,
//! the ID of the PF's own untagged DMA.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h).

use kernel::device;
use kernel::id_pool::IdPool;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;
use kernel::sync::Mutex;

use super::bindings;

/// `IOMMU_PASID_INVALID`: what `iommu_alloc_global_pasid` returns on
/// failure.
const PASID_INVALID: u32 = u32::MAX;

/// The PASIDs one PF can give its ADIs.
///
/// # Invariants
///
/// When `global` is set, the device has an IOMMU with PASID support and
/// IDs come from (and go back to) the global space; otherwise from `local`,
/// whose IDs are in `1..limit`.
#[pin_data]
pub struct PasidSpace {
    global: Option<ARef<device::Device>>,
    limit: u32,
    /// PASIDs handed out and not yet given back.
    in_use: Atomic<u32>,
    /// The local space's IDs in use.
    #[pin]
    local: Mutex<IdPool>,
}

/// One allocated PASID, given back when dropped.
pub struct Pasid {
    space: Arc<PasidSpace>,
    id: u32,
}

impl PasidSpace {
    /// The PASID space for ADIs of the PF `dev`, whose queues carry `bits`
    /// bits of PASID (1..=20).
    pub fn new(dev: &device::Device, bits: u32) -> Result<Arc<Self>> {
        if !(1..=20).contains(&bits) {
            return Err(EINVAL);
        }
        let raw = crate::vdcm_kernel::raw_device(dev);
        // SAFETY: `raw` is a live device (we hold a reference through
        // `dev`); `iommu` is set by the IOMMU core when the device is probed
        // by an IOMMU and stays until it is released, so a plain read of
        // the pointer is sound.
        let has_iommu = unsafe { !(*raw).iommu.is_null() };
        let probe = if has_iommu {
            // SAFETY: `raw` is live and has IOMMU data, which the function
            // dereferences; it allocates from the global space if the IOMMU
            // supports PASIDs for the device and returns
            // `IOMMU_PASID_INVALID` otherwise.
            unsafe { bindings::iommu_alloc_global_pasid(raw) }
        } else {
            PASID_INVALID
        };
        let global = if probe == PASID_INVALID {
            None
        } else {
            // SAFETY: gives back the ID just allocated.
            unsafe { bindings::iommu_free_global_pasid(probe) };
            Some(ARef::from(dev))
        };
        Arc::pin_init(
            try_pin_init!(PasidSpace {
                global,
                limit: 1 << bits,
                in_use: Atomic::new(0),
                local <- new_mutex!(IdPool::with_capacity(64, GFP_KERNEL)?),
            }),
            GFP_KERNEL,
        )
    }

    /// Whether PASIDs come from the system's global space.
    pub fn is_global(&self) -> bool {
        self.global.is_some()
    }

    /// How many more PASIDs can be allocated: exact for a PF-local space;
    /// for the global space, shared with the whole system, an upper bound
    /// (`2^20 - 1` minus those this space holds).
    pub fn available(&self) -> u32 {
        let size = if self.global.is_some() {
            1 << 20
        } else {
            self.limit
        };
        // ID 0 is never handed out.
        (size - 1).saturating_sub(self.in_use.load(Relaxed))
    }

    /// Allocates a PASID; `ENOSPC` when the space is exhausted.
    pub fn alloc(self: &Arc<Self>) -> Result<Pasid> {
        if let Some(dev) = &self.global {
            // SAFETY: `dev` is live (we hold a reference); see `new`.
            let id =
                unsafe { bindings::iommu_alloc_global_pasid(crate::vdcm_kernel::raw_device(dev)) };
            if id == PASID_INVALID {
                return Err(ENOSPC);
            }
            self.in_use.fetch_add(1, Relaxed);
            return Ok(Pasid {
                space: self.clone(),
                id,
            });
        }
        let mut pool = self.local.lock();
        loop {
            // ID 0 is IOMMU_NO_PASID.
            if let Some(unused) = pool.find_unused_id(1) {
                let id = u32::try_from(unused.as_usize()).map_err(|_| ENOSPC)?;
                if id >= self.limit {
                    return Err(ENOSPC);
                }
                unused.acquire();
                self.in_use.fetch_add(1, Relaxed);
                return Ok(Pasid {
                    space: self.clone(),
                    id,
                });
            }
            if pool.capacity() >= self.limit as usize {
                return Err(ENOSPC);
            }
            let request = pool.grow_request().ok_or(ENOSPC)?;
            // Growing allocates: done under the mutex, which may sleep.
            let resizer = request.realloc(GFP_KERNEL)?;
            pool.grow(resizer);
        }
    }
}

impl Pasid {
    /// The PASID's value.
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl Drop for Pasid {
    fn drop(&mut self) {
        self.space.in_use.fetch_sub(1, Relaxed);
        if self.space.global.is_some() {
            // SAFETY: `id` came from `iommu_alloc_global_pasid` and is given
            // back once, here.
            unsafe { bindings::iommu_free_global_pasid(self.id) };
        } else {
            self.space.local.lock().release_id(self.id as usize);
        }
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The tenant object of an ADI: what its PF reaches the tenant through —
//! DMA into the tenant's I/O address space, the ADI's MSI-X vectors, and
//! pins of the tenant's memory.
//!
//! It holds the device only while user space has it open: closing (or
//! revoking) the device empties it, so a PF that still holds the tenant
//! gets `ENODEV` and reaches nothing. Pins live here, one per slot; the
//! core drops them when the tenant unmaps what they cover (after telling
//! the PF) and when the device closes.
//!
//! Locking: `dev` and `pins` are leaf locks as far as the core goes: the PF
//! calls in here with its own locks held, and nothing here calls the PF.
//! They are never held together.

use kernel::new_mutex;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::Mutex;

use crate::vdcm_kernel::tenant::TenantOps;
use crate::vdcm_kernel::vfio;
use crate::vdev::Adi;

/// A pin slot: the pinned pages, and whether the PF may write them.
type PinSlot = Option<(vfio::PinnedPages<Adi>, bool)>;

/// The tenant of one ADI.
#[pin_data]
pub struct AdiTenant {
    /// The device, while open and not revoked.
    #[pin]
    dev: Mutex<Option<ARef<vfio::Device<Adi>>>>,
    /// Pin slot `i` of the ADI's type, while the PF holds a pin there,
    /// and whether the PF may write the pages.
    #[pin]
    pins: Mutex<KVec<PinSlot>>,
}

impl AdiTenant {
    /// The heap bytes of the pin slots.
    pub fn heap_bytes(&self) -> usize {
        crate::vdcm_kernel::footprint::of_vec(&self.pins.lock())
    }

    /// A tenant with `slots` pin slots, reaching no device yet.
    pub fn new(slots: u32) -> Result<impl PinInit<Self, Error>> {
        let mut pins = KVec::with_capacity(slots as usize, GFP_KERNEL)?;
        for _ in 0..slots {
            pins.push(None, GFP_KERNEL)?;
        }
        Ok(try_pin_init!(AdiTenant {
            dev <- new_mutex!(None),
            pins <- new_mutex!(pins),
        }))
    }

    /// Lets the PF reach `dev` (the device was opened).
    pub fn attach(&self, dev: &vfio::Device<Adi>) {
        *self.dev.lock() = Some(ARef::from(dev));
    }

    /// Cuts the PF off the device and drops every pin (the device closes
    /// or is revoked).
    pub fn detach(&self) {
        *self.dev.lock() = None;
        self.drop_pins(|_| true);
    }

    /// The pin slots whose pinned range overlaps `[iova, iova + length)`,
    /// as a bit mask (slots are below 64).
    pub fn pins_overlapping(&self, iova: u64, length: u64) -> u64 {
        self.pins
            .lock()
            .iter()
            .enumerate()
            .filter(|(_, p)| p.as_ref().is_some_and(|(p, _)| p.overlaps(iova, length)))
            .fold(0, |mask, (i, _)| mask | 1 << i)
    }

    /// Calls `f` with the IOVA range of every pin the PF may write.
    pub fn written_pins(&self, mut f: impl FnMut(u64, u64)) {
        for (p, _) in self.pins.lock().iter().flatten().filter(|(_, w)| *w) {
            f(p.iova(), p.len());
        }
    }

    /// Drops the pins of the slots `which` selects.
    pub fn drop_pins(&self, which: impl Fn(usize) -> bool) {
        // Unpinning happens when the taken values drop, outside the lock.
        let mut taken = KVec::new();
        for (i, p) in self.pins.lock().iter_mut().enumerate() {
            if which(i) {
                if let Some(pin) = p.take() {
                    // On allocation failure the pin drops here, under the
                    // lock, which is still correct.
                    let _ = taken.push(pin, GFP_KERNEL);
                }
            }
        }
        drop(taken);
    }
}

impl TenantOps for AdiTenant {
    fn dma_rw(&self, iova: u64, buf: &mut [u8], write: bool) -> Result {
        let dev = self.dev.lock();
        let dev = dev.as_ref().ok_or(ENODEV)?;
        if !dev.dma_allowed() {
            return Err(EPERM);
        }
        dev.dma_rw(iova, buf, write)?;
        if write {
            dev.dirty().mark(iova, buf.len() as u64);
        }
        Ok(())
    }

    fn raise_irq(&self, vector: u32) {
        if let Some(dev) = self.dev.lock().as_ref() {
            dev.raise_irq(vector);
        }
    }

    fn pin(&self, slot: u32, iova: u64, len: u64, write: bool) -> Result {
        if len == 0 {
            return Err(EINVAL);
        }
        let page = PAGE_SIZE as u64;
        let npage = (iova % page).checked_add(len).ok_or(EINVAL)?.div_ceil(page);
        let free = |pins: &KVec<PinSlot>| match pins.get(slot as usize) {
            Some(None) => Ok(()),
            Some(Some(_)) => Err(EBUSY),
            None => Err(EINVAL),
        };
        free(&self.pins.lock())?;
        let pinned = {
            let dev = self.dev.lock();
            let dev = dev.as_ref().ok_or(ENODEV)?;
            dev.pin_pages(iova, usize::try_from(npage)?, write)
                .map_err(|_| EFAULT)?
        };
        let mut pins = self.pins.lock();
        // Another pin of the slot may have raced this one: then ours is
        // dropped (unpinned) on return.
        free(&pins)?;
        if let Some(s) = pins.get_mut(slot as usize) {
            *s = Some((pinned, write));
        }
        Ok(())
    }

    fn unpin(&self, slot: u32) {
        self.drop_pins(|i| i == slot as usize);
    }
}

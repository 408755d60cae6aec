// SPDX-License-Identifier: GPL-2.0

//! The interrupts of an ADI: its MSI-X vectors as VFIO user space set them
//! up (an eventfd per vector, masks and pending bits from `SET_IRQS`), the
//! error and request notifiers, and the MSI-X table and pending bit array
//! the guest sees in a BAR.
//!
//! Delivery follows `SET_IRQS`, as with vfio-pci: a VMM emulates the MSI-X
//! table for its guest itself and translates the guest's masking into
//! `SET_IRQS` masks. The table here is what a user of the device file reads
//! and writes directly; the PBA shows the vectors left pending by those
//! masks. There is one pending bit per vector, not two copies.

use kernel::prelude::*;

use crate::layout::MSIX_ENTRY_SIZE;
use crate::vdcm_kernel::eventfd::EventFd;
use crate::vdcm_kernel::vfio;
use crate::vdcm_kernel::wire::Reader;
use crate::vdcm_kernel::wire::Writer;

/// `Vector Control` mask bit (word 3 of an MSI-X entry).
const MSIX_MASKED: u32 = 1;

/// One MSI-X table entry at reset: zero address and data, masked.
const ENTRY_RESET: [u32; 4] = [0, 0, 0, MSIX_MASKED];

/// Whether interrupt `i` of a `SET_IRQS` range is acted on: all of them,
/// or those whose flag is set for `DATA_BOOL`.
fn selected(data: &vfio::IrqData, i: usize) -> bool {
    match data {
        vfio::IrqData::Bool(flags) => flags.get(i).copied().unwrap_or(false),
        _ => true,
    }
}

/// One MSI-X vector.
#[derive(Default)]
struct Vector {
    trigger: Option<EventFd>,
    masked: bool,
    pending: bool,
}

/// The interrupt state of one ADI.
pub struct Irqs {
    vectors: KVec<Vector>,
    table: KVec<[u32; 4]>,
    /// `VFIO_PCI_ERR_IRQ_INDEX`: signalled when the device logs an error.
    err: Option<EventFd>,
    /// `VFIO_PCI_REQ_IRQ_INDEX`: signalled when the device must go.
    req: Option<EventFd>,
}

impl Irqs {
    /// The heap bytes of the vectors and the MSI-X table.
    pub fn heap_bytes(&self) -> usize {
        use crate::vdcm_kernel::footprint::of_vec;
        of_vec(&self.vectors) + of_vec(&self.table)
    }

    /// The state of an ADI with `vectors` MSI-X vectors, as after reset.
    pub fn new(vectors: u16) -> Result<Self> {
        let n = usize::from(vectors);
        let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            v.push(Vector::default(), GFP_KERNEL)?;
        }
        Ok(Irqs {
            vectors: v,
            table: KVec::from_elem(ENTRY_RESET, n, GFP_KERNEL)?,
            err: None,
            req: None,
        })
    }

    /// The number of MSI-X vectors.
    pub fn count(&self) -> u32 {
        self.vectors.len() as u32
    }

    /// A function reset: masks, pending bits and the table go back to
    /// their reset values; the eventfds stay (they are the VMM's).
    pub fn reset(&mut self) {
        for v in self.vectors.iter_mut() {
            v.masked = false;
            v.pending = false;
        }
        self.table.iter_mut().for_each(|e| *e = ENTRY_RESET);
    }

    /// The state of a freshly opened device: no eventfd either.
    pub fn clear(&mut self) {
        self.reset();
        for v in self.vectors.iter_mut() {
            v.trigger = None;
        }
        self.err = None;
        self.req = None;
    }

    /// Delivers `vector` now, or marks it pending while masked. Returns
    /// whether an eventfd was signalled.
    pub fn fire(&mut self, vector: usize) -> bool {
        let Some(v) = self.vectors.get_mut(vector) else {
            return false;
        };
        if v.masked {
            v.pending = true;
            return false;
        }
        match &v.trigger {
            Some(efd) => {
                efd.signal();
                true
            }
            None => false,
        }
    }

    /// Signals the error notifier, if user space installed one.
    pub fn notify_error(&self) {
        if let Some(efd) = &self.err {
            efd.signal();
        }
    }

    /// Signals the request notifier; whether one was installed.
    pub fn notify_request(&self) -> bool {
        match &self.req {
            Some(efd) => {
                efd.signal();
                true
            }
            None => false,
        }
    }

    /// `SET_IRQS` on the error or request index (one interrupt each, not
    /// maskable): install or remove its eventfd, or fire it (loopback).
    pub fn set_notifier(&mut self, set: vfio::IrqSet, err: bool) -> Result {
        let slot = if err { &mut self.err } else { &mut self.req };
        match (set.action, set.data) {
            (vfio::IrqAction::Trigger, vfio::IrqData::EventFd(mut fds)) => {
                *slot = fds.pop().flatten();
            }
            (vfio::IrqAction::Trigger, vfio::IrqData::None) if set.all => *slot = None,
            (vfio::IrqAction::Trigger, data) => {
                if selected(&data, 0) {
                    if let Some(efd) = slot.as_ref() {
                        efd.signal();
                    }
                }
            }
            _ => return Err(EINVAL),
        }
        Ok(())
    }

    /// A validated `SET_IRQS` on the MSI-X index; returns the interrupts
    /// it delivered (loopback triggers, unmasking a pending vector).
    pub fn set_msix(&mut self, set: vfio::IrqSet) -> u64 {
        let range = set.start as usize..(set.start + set.count) as usize;
        let mut delivered = 0;
        match (set.action, set.data) {
            (vfio::IrqAction::Trigger, vfio::IrqData::EventFd(fds)) => {
                for (v, fd) in range.zip(fds) {
                    if let Some(v) = self.vectors.get_mut(v) {
                        v.trigger = fd;
                    }
                }
            }
            (vfio::IrqAction::Trigger, vfio::IrqData::None) if set.all => {
                for v in self.vectors.iter_mut() {
                    *v = Vector::default();
                }
            }
            (vfio::IrqAction::Trigger, data) => {
                for (i, v) in range.enumerate() {
                    if selected(&data, i) && self.fire(v) {
                        delivered += 1;
                    }
                }
            }
            (vfio::IrqAction::Mask, data) => {
                for (i, v) in range.enumerate() {
                    if let Some(v) = self.vectors.get_mut(v).filter(|_| selected(&data, i)) {
                        v.masked = true;
                    }
                }
            }
            (vfio::IrqAction::Unmask, data) => {
                for (i, v) in range.enumerate() {
                    if !selected(&data, i) {
                        continue;
                    }
                    let was_pending = match self.vectors.get_mut(v) {
                        Some(vec) => {
                            vec.masked = false;
                            core::mem::take(&mut vec.pending)
                        }
                        None => false,
                    };
                    if was_pending && self.fire(v) {
                        delivered += 1;
                    }
                }
            }
        }
        delivered
    }

    /// Checks a table or PBA access: 4 or 8 bytes, naturally aligned.
    fn check(offset: u64, len: usize) -> Result {
        // `len` is 4 or 8, so the mask is its alignment (and no division
        // with its panic path is needed).
        if !matches!(len, 4 | 8) || offset & (len as u64 - 1) != 0 {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` of the MSI-X table.
    pub fn table_read(&self, offset: u64, len: usize) -> Result<u64> {
        Self::check(offset, len)?;
        let entry = self
            .table
            .get((offset / MSIX_ENTRY_SIZE) as usize)
            .ok_or(EINVAL)?;
        let word = ((offset % MSIX_ENTRY_SIZE) / 4) as usize;
        let lo = u64::from(entry.get(word).copied().unwrap_or(0));
        Ok(if len == 8 {
            lo | u64::from(entry.get(word + 1).copied().unwrap_or(0)) << 32
        } else {
            lo
        })
    }

    /// Writes `len` bytes at `offset` of the MSI-X table.
    pub fn table_write(&mut self, offset: u64, len: usize, value: u64) -> Result {
        Self::check(offset, len)?;
        let entry = self
            .table
            .get_mut((offset / MSIX_ENTRY_SIZE) as usize)
            .ok_or(EINVAL)?;
        let word = ((offset % MSIX_ENTRY_SIZE) / 4) as usize;
        if let Some(w) = entry.get_mut(word) {
            *w = value as u32;
        }
        if len == 8 {
            if let Some(w) = entry.get_mut(word + 1) {
                *w = (value >> 32) as u32;
            }
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` of the PBA; writes to it are ignored.
    pub fn pba_read(&self, offset: u64, len: usize) -> Result<u64> {
        Self::check(offset, len)?;
        let first = (offset * 8) as usize;
        let bits = (len * 8).min(64);
        Ok((0..bits).fold(0u64, |acc, i| {
            let pending = self.vectors.get(first + i).is_some_and(|v| v.pending);
            acc | (u64::from(pending) << i)
        }))
    }

    /// Bytes [`Irqs::save`] writes: the table, then one byte per vector
    /// (its pending bit).
    pub fn saved_size(vectors: u16) -> usize {
        usize::from(vectors) * (MSIX_ENTRY_SIZE as usize + 1)
    }

    /// Writes the MSI-X table and the pending bits, for a migration. The
    /// eventfds and VFIO masks are the VMM's: it sets them again on the
    /// destination.
    pub fn save(&self, w: &mut Writer<'_>) -> Result {
        for entry in self.table.iter() {
            for word in entry {
                w.u32(*word)?;
            }
        }
        for v in self.vectors.iter() {
            w.u8(u8::from(v.pending))?;
        }
        Ok(())
    }

    /// Checks what [`Irqs::save`] wrote for as many vectors as `self` has
    /// (`EINVAL` for a pending byte other than 0 or 1), without changing
    /// anything; [`Irqs::load`] then applies it.
    pub fn check_saved(&self, saved: &[u8]) -> Result {
        if saved.len() != Self::saved_size(self.vectors.len() as u16) {
            return Err(EINVAL);
        }
        let table = self.vectors.len() * MSIX_ENTRY_SIZE as usize;
        if saved.get(table..).unwrap_or(&[]).iter().any(|&b| b > 1) {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Applies a state [`Irqs::check_saved`] accepted.
    pub fn load(&mut self, saved: &[u8]) -> Result {
        self.check_saved(saved)?;
        let mut r = Reader::new(saved);
        for entry in self.table.iter_mut() {
            for word in entry.iter_mut() {
                *word = r.u32()?;
            }
        }
        for v in self.vectors.iter_mut() {
            v.pending = r.u8()? == 1;
        }
        Ok(())
    }
}

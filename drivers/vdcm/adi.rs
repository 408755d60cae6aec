// SPDX-License-Identifier: GPL-2.0

//! The virtual PCI device of one ADI, as user space sees it through VFIO.
//!
//! Regions follow the vfio-pci layout; region `i` starts at file offset
//! `i << REGION_SHIFT`:
//!
//! - BAR0: the trapped slow-path register file ([`regs::Bar0`]), 16 KiB;
//! - BAR2: the fast path, one doorbell page per queue pair, mapped straight
//!   into user space (`mmap`); the tenant writes a queue's tail to offset 0
//!   of its page and the PF sees it with no trap. Reads and writes through
//!   the device fd are refused: the doorbells have no trapped path;
//! - config space: emulated, 4 KiB;
//! - every other region is absent (size 0).
//!
//! Every access to a trapped region is counted per region, so tests can
//! prove which paths trap and which do not.
//!
//! Locking: `bar0` protects the register file; it is taken for one guest
//! access at a time and never held across calls into the PF.

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;
use kernel::sync::Mutex;
use kernel::uaccess::UserSliceReader;
use kernel::uaccess::UserSliceWriter;

use crate::host::PfLink;
use crate::host::QpReservation;
use crate::regs;
use crate::regs::Bar0;
use crate::regs::Bar0Access;
use crate::regs::Bar0Effect;
use crate::regs::QueueError;
use crate::regs::QueueState;
use crate::vdcm_kernel::vfio;
use crate::vdcm_kernel::vfio::pci;

/// File offsets of region `i` start at `i << REGION_SHIFT`.
pub const REGION_SHIFT: u32 = 40;

/// Region index of BAR2, the doorbells.
const BAR2_REGION_INDEX: u32 = pci::BAR0_REGION_INDEX + 2;

/// MSI-X vectors of an ADI: one per queue pair plus one for errors.
fn vectors_for(queues: u16) -> u16 {
    queues.saturating_add(1).min(regs::MAX_VECTORS)
}

/// Accesses that reached the device model, per trapped region.
pub struct TrapCounters {
    /// BAR0 reads and writes.
    pub bar0: Atomic<u64>,
    /// Config-space reads and writes.
    pub config: Atomic<u64>,
}

/// One ADI: the virtual device's state.
#[pin_data]
pub struct Adi {
    link: Arc<PfLink>,
    qps: QpReservation,
    /// The PF's queue pairs backing queues 0..n; emptied when they go back
    /// to the PF.
    #[pin]
    queues: Mutex<KVec<u32>>,
    #[pin]
    bar0: Mutex<Bar0>,
    traps: TrapCounters,
}

impl Adi {
    /// A new ADI over the reserved queue pairs `qps`, taking them from the
    /// PF of `link`.
    pub fn new(link: Arc<PfLink>, qps: QpReservation) -> Result<impl PinInit<Self, Error>> {
        let n = u16::try_from(qps.count()).map_err(|_| EINVAL)?;
        let bar0 = Bar0::new(n, vectors_for(n))?;
        let mut queues = KVec::with_capacity(n.into(), GFP_KERNEL)?;
        for _ in 0..n {
            match link.pf.qp_alloc() {
                Ok(qp) => queues.push(qp, GFP_KERNEL)?,
                Err(e) => {
                    for &qp in queues.iter() {
                        link.pf.qp_free(qp);
                    }
                    dev_err!(link.pf.device(), "PF refused a queue pair: {:?}\n", e);
                    return Err(e);
                }
            }
        }
        Ok(try_pin_init!(Adi {
            link,
            qps,
            queues <- new_mutex!(queues),
            bar0 <- new_mutex!(bar0),
            traps: TrapCounters {
                bar0: Atomic::new(0),
                config: Atomic::new(0),
            },
        }))
    }

    /// How many queue pairs the ADI holds.
    pub fn queue_pairs(&self) -> u32 {
        self.qps.count()
    }

    /// Gives the ADI's queue pairs back to the PF (stopped and unbound
    /// first). Called once the device is unregistered and closed.
    pub fn release_queues(&self) {
        let queues = core::mem::take(&mut *self.queues.lock());
        for &qp in queues.iter() {
            self.link.pf.qp_stop(qp);
            self.link.pf.qp_unbind(qp);
            self.link.pf.qp_free(qp);
        }
    }

    /// Size of BAR2: one doorbell page per queue pair.
    fn bar2_size(&self) -> u64 {
        u64::from(self.qps.count()) * u64::from(self.link.caps.doorbell_size)
    }

    /// Resets the whole device, as `VFIO_DEVICE_RESET` and a function-level
    /// reset do: queues stop, every register returns to its reset value,
    /// pending interrupts are dropped. The host-set PASIDs stay.
    pub fn reset(&self) {
        self.bar0.lock().reset();
    }

    /// The trap counters.
    pub fn traps(&self) -> &TrapCounters {
        &self.traps
    }

    /// Splits a file offset into a region index and an offset inside it.
    fn region_of(offset: u64) -> (u64, u64) {
        (offset >> REGION_SHIFT, offset & ((1 << REGION_SHIFT) - 1))
    }

    /// Acts on what a BAR0 write asked for.
    ///
    /// Queues are started and stopped in the register file only: the PF's
    /// queue operations join through the PF contract next, so a "running"
    /// queue does not process descriptors yet.
    fn apply(bar0: &mut Bar0, effect: Bar0Effect) {
        match effect {
            Bar0Effect::None | Bar0Effect::VectorUnmasked(_) | Bar0Effect::QueueDrain(_) => {}
            Bar0Effect::DeviceEnable(on) => {
                bar0.set_device_enabled(on);
                if !on {
                    for q in 0..bar0.num_queues() {
                        bar0.set_queue_state(q, QueueState::Stopped);
                    }
                }
            }
            // Called with `bar0` locked: the same as `Adi::reset`.
            Bar0Effect::DeviceReset => bar0.reset(),
            Bar0Effect::QueueEnable(q) => {
                let state = match Self::check_queue(bar0, q) {
                    Some(e) => QueueState::Failed(e),
                    None => QueueState::Running,
                };
                bar0.set_queue_state(q, state);
            }
            Bar0Effect::QueueDisable(q) => bar0.set_queue_state(q, QueueState::Stopped),
            Bar0Effect::QueueReset(q) => {
                bar0.set_queue_state(q, QueueState::Stopped);
                bar0.reset_queue(q);
            }
        }
    }

    /// Why queue `q` cannot start, if it cannot.
    fn check_queue(bar0: &Bar0, q: u16) -> Option<QueueError> {
        let (_, size) = bar0.queue_ring(q)?;
        if !bar0.device_enabled() {
            return Some(QueueError::DeviceDisabled);
        }
        if !size.is_power_of_two() || !(2..=1 << regs::MAX_RING_ORDER).contains(&size) {
            return Some(QueueError::BadRingSize);
        }
        None
    }
}

#[vtable]
impl vfio::Driver for Adi {
    const NAME: &'static CStr = c"vdcm-adi";

    fn region_info(
        dev: &vfio::Device<Self>,
        index: u32,
        _caps: &mut vfio::RegionCaps<'_>,
    ) -> Result<vfio::RegionInfo> {
        let rw = pci::REGION_FLAG_READ | pci::REGION_FLAG_WRITE;
        let (flags, size) = match index {
            pci::BAR0_REGION_INDEX => (rw, regs::BAR0_SIZE),
            BAR2_REGION_INDEX => (rw | pci::REGION_FLAG_MMAP, dev.bar2_size()),
            pci::CONFIG_REGION_INDEX => (rw, 4096),
            i if i < pci::NUM_REGIONS => (0, 0),
            _ => return Err(EINVAL),
        };
        Ok(vfio::RegionInfo {
            flags,
            size,
            offset: u64::from(index) << REGION_SHIFT,
        })
    }

    fn read(dev: &vfio::Device<Self>, out: &mut UserSliceWriter, offset: u64) -> Result<usize> {
        let len = out.len();
        match Self::region_of(offset) {
            (r, off) if r == u64::from(pci::BAR0_REGION_INDEX) => {
                dev.traps.bar0.fetch_add(1, Relaxed);
                let access = Bar0Access::decode(off, len)?;
                let value = dev.bar0.lock().read(access, len);
                out.write_slice(&value.to_le_bytes()[..len])?;
                Ok(len)
            }
            _ => Err(EINVAL),
        }
    }

    fn write(dev: &vfio::Device<Self>, input: &mut UserSliceReader, offset: u64) -> Result<usize> {
        let len = input.len();
        match Self::region_of(offset) {
            (r, off) if r == u64::from(pci::BAR0_REGION_INDEX) => {
                dev.traps.bar0.fetch_add(1, Relaxed);
                let access = Bar0Access::decode(off, len)?;
                let mut bytes = [0u8; 8];
                input.read_slice(&mut bytes[..len])?;
                let mut bar0 = dev.bar0.lock();
                let effect = bar0.write(access, len, u64::from_le_bytes(bytes));
                Self::apply(&mut bar0, effect);
                Ok(len)
            }
            _ => Err(EINVAL),
        }
    }

    fn mmap(dev: &vfio::Device<Self>, vma: &vfio::Vma) -> Result {
        let (region, off) = Self::region_of(vma.offset());
        if region != u64::from(BAR2_REGION_INDEX) {
            dev_err!(
                dev.parent(),
                "mmap of region {} refused: only BAR2 (doorbells) maps\n",
                region
            );
            return Err(EINVAL);
        }
        let page = u64::from(dev.link.caps.doorbell_size);
        let end = off.checked_add(vma.len() as u64).ok_or(EINVAL)?;
        if off % page != 0 || end > dev.bar2_size() {
            dev_err!(
                dev.parent(),
                "mmap of BAR2 [{:#x}, {:#x}) refused: BAR2 is {:#x} bytes of {:#x}-byte pages\n",
                off,
                end,
                dev.bar2_size(),
                page
            );
            return Err(EINVAL);
        }
        let queues = dev.queues.lock();
        let first = (off / page) as usize;
        for (i, at) in (0..vma.len()).step_by(page as usize).enumerate() {
            let qp = *queues.get(first + i).ok_or(ENODEV)?;
            let doorbell = dev.link.pf.qp_doorbell(qp).ok_or(ENODEV)?;
            vma.insert_page(at, &doorbell)?;
        }
        Ok(())
    }

    fn ioctl(dev: &vfio::Device<Self>, ioctl: vfio::Ioctl) -> Result<isize> {
        match ioctl.cmd {
            vfio::DEVICE_GET_INFO => ioctl.reply_device_info(vfio::DeviceInfo {
                flags: pci::DEVICE_FLAGS_PCI | pci::DEVICE_FLAGS_RESET,
                num_regions: pci::NUM_REGIONS,
                num_irqs: pci::NUM_IRQS,
            }),
            vfio::DEVICE_RESET => {
                dev.reset();
                Ok(0)
            }
            _ => Err(ENOTTY),
        }
    }

    fn request(dev: &vfio::Device<Self>, count: u32) {
        // The core calls this every 10 s while removal waits for the user.
        if count == 0 {
            dev_notice!(
                dev.parent(),
                "removal requested: waiting for the user to close the device\n"
            );
        }
    }
}

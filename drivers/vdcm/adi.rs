// SPDX-License-Identifier: GPL-2.0

//! The virtual PCI device of one ADI, as user space sees it through VFIO.
//!
//! Regions follow the vfio-pci layout; region `i` starts at file offset
//! `i << REGION_SHIFT`:
//!
//! - BAR0: the trapped slow-path register file ([`regs::Bar0`]), 16 KiB;
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
use kernel::sync::Mutex;
use kernel::uaccess::UserSliceReader;
use kernel::uaccess::UserSliceWriter;

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
    qps: QpReservation,
    #[pin]
    bar0: Mutex<Bar0>,
    traps: TrapCounters,
}

impl Adi {
    /// A new ADI over the reserved queue pairs `qps`.
    pub fn new(qps: QpReservation) -> Result<impl PinInit<Self, Error>> {
        let queues = u16::try_from(qps.count()).map_err(|_| EINVAL)?;
        let bar0 = Bar0::new(queues, vectors_for(queues))?;
        Ok(try_pin_init!(Adi {
            qps,
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
        _dev: &vfio::Device<Self>,
        index: u32,
        _caps: &mut vfio::RegionCaps<'_>,
    ) -> Result<vfio::RegionInfo> {
        let rw = pci::REGION_FLAG_READ | pci::REGION_FLAG_WRITE;
        let (flags, size) = match index {
            pci::BAR0_REGION_INDEX => (rw, regs::BAR0_SIZE),
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

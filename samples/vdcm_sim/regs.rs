// SPDX-License-Identifier: GPL-2.0

//! BAR0 of the simulated PF's ADIs: the trapped slow-path register file.
//!
//! This is the personality of the simulated PF's virtual device: the VDCM
//! core knows only that BAR0 is one trapped range with the MSI-X table and
//! PBA in it (which the core emulates). Every other guest access to BAR0
//! reaches the PF's trap callbacks and is decoded here into the register it
//! names before anything acts on it. Layout (offsets in bytes):
//!
//! | offset            | register                      | width |
//! |-------------------|-------------------------------|-------|
//! | `0x000`           | `DEVCAP` device capabilities  | 64    |
//! | `0x008`           | `DEVCTL` device control       | 32    |
//! | `0x00c`           | `DEVSTS` device status        | 32    |
//! | `0x010`           | `INTCTL` interrupt control    | 32    |
//! | `0x018`           | `ERRLOG` error log            | 64    |
//! | `0x100 + 0x20*q`  | queue `q` block (see [`QueueReg`]) |  |
//! | `0x2000`          | MSI-X table (the VDCM's)      |       |
//! | `0x3000`          | MSI-X pending bits (VDCM's)   | 64    |
//!
//! Accesses are 4 or 8 bytes, naturally aligned, and stay inside one
//! register; a 4-byte access may address either half of a 64-bit register
//! (as PCI devices commonly allow). Anything else is refused with `EINVAL`
//! before it can reach a register. Offsets inside BAR0 that name no register
//! decode to [`Bar0Reg::Reserved`]: they read as zero and ignore writes.

use kernel::prelude::*;

use crate::abi;
use crate::vdcm_kernel::wire::Reader;
use crate::vdcm_kernel::wire::Writer;

/// Size of BAR0 in bytes.
pub const BAR0_SIZE: u64 = abi::BAR0_SIZE;
/// Number of queue register blocks in BAR0.
pub const MAX_QUEUES: u16 = abi::MAX_QUEUES;
/// Number of MSI-X vectors BAR0's table holds.
pub const MAX_VECTORS: u16 = 256;

const QUEUE_BASE: u64 = abi::QUEUE_BASE;
const QUEUE_STRIDE: u64 = abi::QUEUE_STRIDE;
/// Offset of the MSI-X table in BAR0 (emulated by the VDCM).
pub const MSIX_TABLE: u32 = abi::MSIX_TABLE;
/// Offset of the MSI-X pending bit array in BAR0 (emulated by the VDCM).
pub const MSIX_PBA: u32 = abi::MSIX_PBA;

/// A register inside one queue's block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueReg {
    /// `+0x00`, 64 bits: IOVA of the descriptor ring.
    RingBase,
    /// `+0x08`, 32 bits: number of descriptors in the ring.
    RingSize,
    /// `+0x0c`, 32 bits: enable, drain and reset controls.
    Control,
    /// `+0x10`, 32 bits: state and error of the queue.
    Status,
    /// `+0x14`, 32 bits: the PASID the host bound; read-only to the guest.
    Pasid,
}

impl QueueReg {
    /// Offset and width of each queue register, relative to its block.
    const LAYOUT: [(QueueReg, u64, usize); 5] = [
        (QueueReg::RingBase, abi::Q_RING_BASE, 8),
        (QueueReg::RingSize, abi::Q_RING_SIZE, 4),
        (QueueReg::Control, abi::Q_CONTROL, 4),
        (QueueReg::Status, abi::Q_STATUS, 4),
        (QueueReg::Pasid, abi::Q_PASID, 4),
    ];
}

/// The register a BAR0 offset names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar0Reg {
    /// Device capabilities (read-only).
    DevCap,
    /// Device control.
    DevCtl,
    /// Device status.
    DevSts,
    /// Interrupt control.
    IntCtl,
    /// Error log (read-only).
    ErrLog,
    /// A register in the block of queue `index`.
    Queue {
        /// Queue slot, below [`MAX_QUEUES`].
        index: u16,
        /// Which register of the block.
        reg: QueueReg,
    },
    /// No register: reads return zero, writes are ignored.
    Reserved,
}

/// A decoded BAR0 access: the register and where in it the access starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar0Access {
    /// The register addressed.
    pub reg: Bar0Reg,
    /// Byte offset of the access inside the register (0, or 4 for the upper
    /// half of a 64-bit register).
    pub shift: u8,
}

/// Width in bytes of the fixed device registers at the start of BAR0.
fn device_reg(offset: u64) -> Option<(Bar0Reg, u64, usize)> {
    [
        (Bar0Reg::DevCap, abi::DEVCAP, 8),
        (Bar0Reg::DevCtl, abi::DEVCTL, 4),
        (Bar0Reg::DevSts, abi::DEVSTS, 4),
        (Bar0Reg::IntCtl, abi::INTCTL, 4),
        (Bar0Reg::ErrLog, abi::ERRLOG, 8),
    ]
    .into_iter()
    .find(|&(_, start, width)| (start..start + width as u64).contains(&offset))
}

/// Finds the register containing `offset`: the register, its start and its
/// width in bytes. `None` for offsets that name no register.
fn containing_reg(offset: u64) -> Option<(Bar0Reg, u64, usize)> {
    if let Some(found) = device_reg(offset) {
        return Some(found);
    }
    let queues_end = QUEUE_BASE + QUEUE_STRIDE * u64::from(MAX_QUEUES);
    if (QUEUE_BASE..queues_end).contains(&offset) {
        let index = (offset - QUEUE_BASE) / QUEUE_STRIDE;
        let block = QUEUE_BASE + index * QUEUE_STRIDE;
        let index = u16::try_from(index).ok()?;
        return QueueReg::LAYOUT
            .iter()
            .find(|(_, start, width)| {
                (block + start..block + start + *width as u64).contains(&offset)
            })
            .map(|&(reg, start, width)| (Bar0Reg::Queue { index, reg }, block + start, width));
    }
    None
}

impl Bar0Access {
    /// Whether a write here can ask the device model to act (a
    /// [`Bar0Effect`] other than `None`): only `DEVCTL` and the queues'
    /// `CONTROL` registers can.
    pub fn has_effects(&self) -> bool {
        matches!(
            self.reg,
            Bar0Reg::DevCtl
                | Bar0Reg::Queue {
                    reg: QueueReg::Control,
                    ..
                }
        )
    }

    /// Decodes an access of `len` bytes at `offset` into BAR0.
    ///
    /// Returns `EINVAL` for a width other than 4 or 8, a misaligned access,
    /// an access past the end of BAR0, or one that does not fit inside the
    /// register it starts in (an 8-byte access to a 32-bit register).
    pub fn decode(offset: u64, len: usize) -> Result<Self> {
        if len != 4 && len != 8 {
            return Err(EINVAL);
        }
        let width = len as u64;
        if offset % width != 0 || offset.checked_add(width).is_none_or(|end| end > BAR0_SIZE) {
            return Err(EINVAL);
        }
        let Some((reg, start, reg_width)) = containing_reg(offset) else {
            return Ok(Bar0Access {
                reg: Bar0Reg::Reserved,
                shift: 0,
            });
        };
        if len > reg_width {
            return Err(EINVAL);
        }
        Ok(Bar0Access {
            reg,
            // `offset - start` < `reg_width` <= 8.
            shift: (offset - start) as u8,
        })
    }
}

// ---------------------------------------------------------------------------
// Register values and the register file's state.

kernel::bitfield! {
    /// `DEVCAP`: what the virtual device offers. Read-only.
    pub(crate) struct DevCap(u64) {
        /// Queue pairs of this ADI.
        7:0 num_queues;
        /// MSI-X vectors of this ADI.
        17:8 num_vectors;
        /// log2 of the largest ring, in descriptors.
        23:20 max_ring_order;
        /// Register-layout version ([`BAR0_VERSION`]).
        63:56 version;
    }
}

kernel::bitfield! {
    /// `DEVCTL`: device control.
    pub(crate) struct DevCtl(u32) {
        /// The device may process queues. Read-write.
        0:0 enable;
        /// Write 1: reset the device (as a function-level reset). Reads 0.
        1:1 reset;
    }
}

kernel::bitfield! {
    /// `DEVSTS`: device status.
    pub(crate) struct DevSts(u32) {
        /// The device is enabled. Read-only.
        0:0 enabled;
        /// An error was logged in `ERRLOG`. Write 1 to clear.
        1:1 error;
    }
}

kernel::bitfield! {
    /// `INTCTL`: interrupt control.
    pub(crate) struct IntCtl(u32) {
        /// Signal `error_vector` when an error is logged. Read-write.
        0:0 error_enable;
        /// MSI-X vector for errors; values past the ADI's vectors are
        /// ignored.
        15:8 error_vector;
    }
}

kernel::bitfield! {
    /// A queue's `CONTROL` register.
    pub(crate) struct QueueCtl(u32) {
        /// The queue processes descriptors. Read-write; turning it on asks
        /// the device model to validate and start the queue.
        0:0 enable;
        /// Write 1: finish outstanding descriptors. Reads 0.
        1:1 drain;
        /// Write 1: reset the queue. Reads 0.
        2:2 reset;
        /// MSI-X vector for completions; values past the ADI's vectors are
        /// ignored.
        23:16 vector;
    }
}

kernel::bitfield! {
    /// A queue's `STATUS` register. Set by the device model.
    pub(crate) struct QueueSts(u32) {
        /// The queue is running. Read-only.
        0:0 enabled;
        /// The queue stopped on an error. Write 1 to clear.
        1:1 error;
        /// Why the queue stopped ([`QueueError`]). Read-only.
        15:8 error_code;
    }
}

/// Value of `DEVCAP.version` for the layout in this file.
pub const BAR0_VERSION: u8 = abi::VERSION;
/// log2 of the largest ring the device accepts, in descriptors.
pub const MAX_RING_ORDER: u32 = abi::MAX_RING_ORDER;
/// Required alignment of `RING_BASE` (one descriptor).
pub const RING_ALIGN: u64 = abi::RING_ALIGN;

/// Why a queue stopped, in `STATUS.error_code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum QueueError {
    /// `RING_SIZE` is not a power of two in 2..=2^[`MAX_RING_ORDER`].
    BadRingSize = abi::queue_error::BAD_RING_SIZE,
    /// The device is not enabled (`DEVCTL.enable`).
    DeviceDisabled = abi::queue_error::DEVICE_DISABLED,
    /// The PF refused to start the queue.
    PfRefused = abi::queue_error::PF_REFUSED,
    /// The ring could not be read (unmapped IOVA).
    RingFault = abi::queue_error::RING_FAULT,
}

/// The state of a queue, as the device model reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueState {
    /// Not processing descriptors.
    Stopped,
    /// Processing descriptors.
    Running,
    /// Stopped on an error.
    Failed(QueueError),
}

/// One queue's registers.
#[derive(Clone, Copy, Default)]
struct QueueRegs {
    ring_base: u64,
    ring_size: u32,
    control: u32,
    status: u32,
    pasid: u32,
}

/// What a BAR0 write asks the device model to do; the register file itself
/// has already been updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar0Effect {
    /// Nothing beyond the register update.
    None,
    /// `DEVCTL.enable` changed to the given value.
    DeviceEnable(bool),
    /// `DEVCTL.reset` was written: reset the whole device.
    DeviceReset,
    /// `CONTROL.enable` of the queue went from 0 to 1.
    QueueEnable(u16),
    /// `CONTROL.enable` of the queue went from 1 to 0.
    QueueDisable(u16),
    /// `CONTROL.drain` of the queue was written.
    QueueDrain(u16),
    /// `CONTROL.reset` of the queue was written.
    QueueReset(u16),
}

/// The BAR0 register file of one ADI.
///
/// Holds the registers' values and applies the guest's writes with each
/// register's semantics; the device model acts on the returned
/// [`Bar0Effect`] and reports back through the `set_*` methods (queue
/// status, PASID), which the guest cannot write.
///
/// # Invariants
///
/// `queues.len()` and `vectors` are the ADI's queue and vector counts, at
/// most [`MAX_QUEUES`] and [`MAX_VECTORS`].
pub struct Bar0 {
    devcap: DevCap,
    devctl: u32,
    devsts: u32,
    intctl: u32,
    errlog: u64,
    queues: KVec<QueueRegs>,
    vectors: u16,
}

impl Bar0 {
    /// The heap bytes of the per-queue registers.
    pub fn heap_bytes(&self) -> usize {
        crate::vdcm_kernel::footprint::of_vec(&self.queues)
    }

    /// The register file of an ADI with `queues` queue pairs and `vectors`
    /// MSI-X vectors, in its reset state.
    pub fn new(queues: u16, vectors: u16) -> Result<Self> {
        if queues == 0 || queues > MAX_QUEUES || vectors == 0 || vectors > MAX_VECTORS {
            return Err(EINVAL);
        }
        let devcap = DevCap::zeroed()
            .try_with_num_queues(u64::from(queues))?
            .try_with_num_vectors(u64::from(vectors))?
            .try_with_max_ring_order(u64::from(MAX_RING_ORDER))?
            .try_with_version(u64::from(BAR0_VERSION))?;
        Ok(Bar0 {
            devcap,
            devctl: 0,
            devsts: 0,
            intctl: 0,
            errlog: 0,
            queues: KVec::from_elem(QueueRegs::default(), queues.into(), GFP_KERNEL)?,
            vectors,
        })
    }

    /// Returns every register to its reset value, keeping the host-set
    /// PASIDs (they belong to the ADI, not to the tenant).
    pub fn reset(&mut self) {
        self.devctl = 0;
        self.devsts = 0;
        self.intctl = 0;
        self.errlog = 0;
        for q in self.queues.iter_mut() {
            *q = QueueRegs {
                pasid: q.pasid,
                ..QueueRegs::default()
            };
        }
    }

    /// Reads `len` (4 or 8) bytes at the decoded `access`.
    pub fn read(&self, access: Bar0Access, len: usize) -> u64 {
        let value = match access.reg {
            Bar0Reg::DevCap => self.devcap.into_raw(),
            Bar0Reg::DevCtl => u64::from(self.devctl),
            Bar0Reg::DevSts => u64::from(self.devsts),
            Bar0Reg::IntCtl => u64::from(self.intctl),
            Bar0Reg::ErrLog => self.errlog,
            Bar0Reg::Queue { index, reg } => match self.queues.get(usize::from(index)) {
                None => 0,
                Some(q) => match reg {
                    QueueReg::RingBase => q.ring_base,
                    QueueReg::RingSize => u64::from(q.ring_size),
                    QueueReg::Control => u64::from(q.control),
                    QueueReg::Status => u64::from(q.status),
                    QueueReg::Pasid => u64::from(q.pasid),
                },
            },
            Bar0Reg::Reserved => 0,
        };
        let value = value >> (u32::from(access.shift) * 8);
        if len == 4 {
            value & 0xffff_ffff
        } else {
            value
        }
    }

    /// Writes `value` (`len` = 4 or 8 bytes) at the decoded `access`.
    pub fn write(&mut self, access: Bar0Access, len: usize, value: u64) -> Bar0Effect {
        let shift = u32::from(access.shift) * 8;
        // Merge a partial write of a 64-bit register with its other half.
        let merge = |old: u64| -> u64 {
            if len == 8 {
                value
            } else {
                let mask = 0xffff_ffffu64 << shift;
                (old & !mask) | ((value << shift) & mask)
            }
        };
        // 32-bit registers are always written whole (decode refuses 8-byte
        // accesses to them), so their new value is `value`.
        let v32 = value as u32;
        let vectors = usize::from(self.vectors);
        match access.reg {
            Bar0Reg::DevCap | Bar0Reg::ErrLog | Bar0Reg::Reserved => Bar0Effect::None,
            Bar0Reg::DevCtl => {
                let new = DevCtl::from(v32);
                let old = DevCtl::from(self.devctl);
                self.devctl = DevCtl::zeroed().with_enable(new.enable()).into_raw();
                if bool::from(new.reset()) {
                    Bar0Effect::DeviceReset
                } else if new.enable() != old.enable() {
                    Bar0Effect::DeviceEnable(new.enable().into())
                } else {
                    Bar0Effect::None
                }
            }
            Bar0Reg::DevSts => {
                // ERROR is write-1-to-clear; ENABLED is read-only.
                self.devsts &= !(v32 & DevSts::ERROR_MASK);
                Bar0Effect::None
            }
            Bar0Reg::IntCtl => {
                let new = IntCtl::from(v32);
                let mut kept = IntCtl::from(self.intctl).with_error_enable(new.error_enable());
                if usize::from(new.error_vector().get() as u8) < vectors {
                    kept = kept.with_error_vector(new.error_vector());
                }
                self.intctl = kept.into_raw();
                Bar0Effect::None
            }
            Bar0Reg::Queue { index, reg } => {
                let Some(q) = self.queues.get_mut(usize::from(index)) else {
                    return Bar0Effect::None;
                };
                let running = bool::from(QueueCtl::from(q.control).enable());
                match reg {
                    // The ring is locked while the queue runs.
                    QueueReg::RingBase if !running => {
                        q.ring_base = merge(q.ring_base) & !(RING_ALIGN - 1);
                        Bar0Effect::None
                    }
                    QueueReg::RingSize if !running => {
                        q.ring_size = v32;
                        Bar0Effect::None
                    }
                    QueueReg::RingBase | QueueReg::RingSize => Bar0Effect::None,
                    QueueReg::Control => Self::write_queue_control(q, index, v32, vectors),
                    QueueReg::Status => {
                        q.status &= !(v32 & QueueSts::ERROR_MASK);
                        Bar0Effect::None
                    }
                    // Host-programmed: the guest never changes it.
                    QueueReg::Pasid => Bar0Effect::None,
                }
            }
        }
    }

    fn write_queue_control(q: &mut QueueRegs, index: u16, v32: u32, vectors: usize) -> Bar0Effect {
        let new = QueueCtl::from(v32);
        let old = QueueCtl::from(q.control);
        let mut kept = old.with_enable(new.enable());
        if usize::from(new.vector().get() as u8) < vectors {
            kept = kept.with_vector(new.vector());
        }
        q.control = kept.into_raw();
        match (bool::from(old.enable()), bool::from(new.enable())) {
            _ if bool::from(new.reset()) => Bar0Effect::QueueReset(index),
            (false, true) => Bar0Effect::QueueEnable(index),
            (true, false) => Bar0Effect::QueueDisable(index),
            _ if bool::from(new.drain()) => Bar0Effect::QueueDrain(index),
            _ => Bar0Effect::None,
        }
    }

    /// The ring of queue `index`: base IOVA and size in descriptors.
    pub fn queue_ring(&self, index: u16) -> Option<(u64, u32)> {
        self.queues
            .get(usize::from(index))
            .map(|q| (q.ring_base, q.ring_size))
    }

    /// The MSI-X vector queue `index` signals completions on.
    pub fn queue_vector(&self, index: u16) -> Option<u16> {
        self.queues
            .get(usize::from(index))
            .map(|q| u16::from(QueueCtl::from(q.control).vector().get() as u8))
    }

    /// Sets the PASID the host bound to queue `index` (never the guest).
    pub fn set_queue_pasid(&mut self, index: u16, pasid: u32) {
        if let Some(q) = self.queues.get_mut(usize::from(index)) {
            q.pasid = pasid;
        }
    }

    /// Reports the state of queue `index` in its `STATUS` register. A queue
    /// that is not running reads back with `CONTROL.enable` clear.
    pub fn set_queue_state(&mut self, index: u16, state: QueueState) {
        if let Some(q) = self.queues.get_mut(usize::from(index)) {
            let sts = match state {
                QueueState::Running => QueueSts::zeroed().with_enabled(true),
                QueueState::Stopped => QueueSts::zeroed(),
                QueueState::Failed(e) => {
                    QueueSts::zeroed().with_error(true).with_error_code(e as u8)
                }
            };
            if state != QueueState::Running {
                q.control = QueueCtl::from(q.control).with_enable(false).into_raw();
            }
            q.status = sts.into_raw();
        }
    }

    /// Returns queue `index`'s registers to their reset values, keeping its
    /// host-set PASID.
    pub fn reset_queue(&mut self, index: u16) {
        if let Some(q) = self.queues.get_mut(usize::from(index)) {
            *q = QueueRegs {
                pasid: q.pasid,
                ..QueueRegs::default()
            };
        }
    }

    /// Number of queues of the ADI.
    pub fn num_queues(&self) -> u16 {
        // At most `MAX_QUEUES` by the type invariant.
        self.queues.len() as u16
    }

    /// Whether the guest enabled the device (`DEVCTL.enable`).
    pub fn device_enabled(&self) -> bool {
        DevCtl::from(self.devctl).enable().into()
    }

    /// Reports the device as enabled or not (`DEVSTS.enabled`).
    pub fn set_device_enabled(&mut self, enabled: bool) {
        self.devsts = DevSts::from(self.devsts).with_enabled(enabled).into_raw();
    }

    /// Bytes [`Bar0::save`] writes for `queues` queues.
    pub const fn saved_size(queues: u16) -> usize {
        2 + 4 * 3 + 8 + queues as usize * (8 + 4 * 3)
    }

    /// Writes the registers the guest set, for a migration: everything but
    /// `DEVCAP` (the type's) and the PASIDs (the host's, which stay with
    /// the ADI).
    pub fn save(&self, w: &mut Writer<'_>) -> Result {
        w.u16(self.num_queues())?;
        w.u32(self.devctl)?;
        w.u32(self.devsts)?;
        w.u32(self.intctl)?;
        w.u64(self.errlog)?;
        for q in self.queues.iter() {
            w.u64(q.ring_base)?;
            w.u32(q.ring_size)?;
            w.u32(q.control)?;
            w.u32(q.status)?;
        }
        Ok(())
    }

    /// Reads what [`Bar0::save`] wrote into a register file of the same
    /// geometry as `self`, checking it first: `EINVAL` for another queue
    /// count or a value the guest could not have written (an unknown
    /// control bit, a vector the ADI does not have, a misaligned ring),
    /// and `self` is unchanged. The PASIDs stay `self`'s.
    pub fn restored(&self, r: &mut Reader<'_>) -> Result<Bar0> {
        if r.u16()? != self.num_queues() {
            return Err(EINVAL);
        }
        let vectors = usize::from(self.vectors);
        let devctl = r.u32()?;
        let devsts = r.u32()?;
        let intctl = r.u32()?;
        let errlog = r.u64()?;
        let vector_ok = |v: u64| usize::try_from(v).is_ok_and(|v| v < vectors);
        if DevCtl::zeroed()
            .with_enable(DevCtl::from(devctl).enable())
            .into_raw()
            != devctl
            || !vector_ok(u64::from(IntCtl::from(intctl).error_vector().get()))
        {
            return Err(EINVAL);
        }
        let mut queues = KVec::with_capacity(self.queues.len(), GFP_KERNEL)?;
        for q in self.queues.iter() {
            let ring_base = r.u64()?;
            let ring_size = r.u32()?;
            let control = r.u32()?;
            let status = r.u32()?;
            let ctl = QueueCtl::from(control);
            let kept = QueueCtl::zeroed()
                .with_enable(ctl.enable())
                .with_vector(ctl.vector());
            if kept.into_raw() != control
                || !vector_ok(u64::from(ctl.vector().get()))
                || ring_base % RING_ALIGN != 0
            {
                return Err(EINVAL);
            }
            queues.push(
                QueueRegs {
                    ring_base,
                    ring_size,
                    control,
                    status,
                    pasid: q.pasid,
                },
                GFP_KERNEL,
            )?;
        }
        // INVARIANT: the same queue and vector counts as `self`.
        Ok(Bar0 {
            devcap: self.devcap,
            devctl,
            devsts,
            intctl,
            errlog,
            queues,
            vectors: self.vectors,
        })
    }

    /// Whether queue `index`'s `CONTROL.enable` is set.
    pub fn queue_enabled(&self, index: u16) -> bool {
        self.queues
            .get(usize::from(index))
            .is_some_and(|q| QueueCtl::from(q.control).enable().into())
    }
}

#[kunit_tests(vdcm_sim_bar0)]
mod tests {
    use super::*;

    fn reg(offset: u64, len: usize) -> Result<(Bar0Reg, u8)> {
        Bar0Access::decode(offset, len).map(|a| (a.reg, a.shift))
    }

    #[test]
    fn device_registers() -> Result {
        assert_eq!(reg(0x000, 8)?, (Bar0Reg::DevCap, 0));
        assert_eq!(reg(0x004, 4)?, (Bar0Reg::DevCap, 4));
        assert_eq!(reg(0x008, 4)?, (Bar0Reg::DevCtl, 0));
        assert_eq!(reg(0x00c, 4)?, (Bar0Reg::DevSts, 0));
        assert_eq!(reg(0x010, 4)?, (Bar0Reg::IntCtl, 0));
        assert_eq!(reg(0x018, 8)?, (Bar0Reg::ErrLog, 0));
        assert_eq!(reg(0x01c, 4)?, (Bar0Reg::ErrLog, 4));
        Ok(())
    }

    #[test]
    fn queue_blocks() -> Result {
        let q = |index, reg| Bar0Reg::Queue { index, reg };
        assert_eq!(reg(0x100, 8)?, (q(0, QueueReg::RingBase), 0));
        assert_eq!(reg(0x104, 4)?, (q(0, QueueReg::RingBase), 4));
        assert_eq!(reg(0x108, 4)?, (q(0, QueueReg::RingSize), 0));
        assert_eq!(reg(0x12c, 4)?, (q(1, QueueReg::Control), 0));
        assert_eq!(reg(0x130, 4)?, (q(1, QueueReg::Status), 0));
        assert_eq!(reg(0x134, 4)?, (q(1, QueueReg::Pasid), 0));
        // Last slot, and the reserved tail of a block.
        let last = 0x100 + 0x20 * (u64::from(MAX_QUEUES) - 1);
        assert_eq!(
            reg(last + 0x14, 4)?,
            (q(MAX_QUEUES - 1, QueueReg::Pasid), 0)
        );
        assert_eq!(reg(last + 0x18, 8)?, (Bar0Reg::Reserved, 0));
        Ok(())
    }

    #[test]
    fn bad_accesses_are_refused() {
        // Widths other than 4 and 8.
        for len in [0, 1, 2, 3, 16] {
            assert_eq!(reg(0x008, len), Err(EINVAL));
        }
        // Misaligned.
        assert_eq!(reg(0x002, 4), Err(EINVAL));
        assert_eq!(reg(0x004, 8), Err(EINVAL));
        // An 8-byte access to 32-bit registers.
        assert_eq!(reg(0x008, 8), Err(EINVAL));
        assert_eq!(reg(0x108, 8), Err(EINVAL));
        // Past the end of BAR0, including offsets that would wrap.
        assert_eq!(reg(BAR0_SIZE, 4), Err(EINVAL));
        assert_eq!(reg(BAR0_SIZE - 4, 8), Err(EINVAL));
        assert_eq!(reg(u64::MAX - 3, 4), Err(EINVAL));
        assert_eq!(reg(u64::MAX - 7, 8), Err(EINVAL));
        // The last word is still fine.
        assert_eq!(reg(BAR0_SIZE - 4, 4), Ok((Bar0Reg::Reserved, 0)));
    }
}

#[kunit_tests(vdcm_sim_bar0_regs)]
mod reg_tests {
    use super::*;

    fn at(offset: u64, len: usize) -> Result<Bar0Access> {
        Bar0Access::decode(offset, len)
    }

    fn rd(b: &Bar0, offset: u64, len: usize) -> Result<u64> {
        Ok(b.read(at(offset, len)?, len))
    }

    fn wr(b: &mut Bar0, offset: u64, len: usize, v: u64) -> Result<Bar0Effect> {
        Ok(b.write(at(offset, len)?, len, v))
    }

    const Q1: u64 = 0x100 + 0x20;

    /// The VDCM skips its control lock for writes without effects: no
    /// write to a register `has_effects` says no to may ask for an action.
    #[test]
    fn writes_without_effects_are_flagged() -> Result {
        let mut b = Bar0::new(4, 8)?;
        let mut flagged = 0;
        for offset in (0..BAR0_SIZE).step_by(4) {
            let access = at(offset, 4)?;
            if access.has_effects() {
                flagged += 1;
                continue;
            }
            for v in [0, u64::from(u32::MAX), 1, 0x5a5a_5a5a] {
                let effect = b.write(access, 4, v);
                assert_eq!(effect, Bar0Effect::None);
            }
        }
        // DEVCTL and the 64 queues' CONTROL registers.
        assert_eq!(flagged, 1 + u32::from(MAX_QUEUES));
        Ok(())
    }

    #[test]
    fn devcap_describes_the_adi_and_is_read_only() -> Result {
        let mut b = Bar0::new(4, 8)?;
        let cap = rd(&b, 0x000, 8)?;
        assert_eq!(cap & 0xff, 4);
        assert_eq!((cap >> 8) & 0x3ff, 8);
        assert_eq!((cap >> 20) & 0xf, u64::from(MAX_RING_ORDER));
        assert_eq!(cap >> 56, u64::from(BAR0_VERSION));
        assert_eq!(rd(&b, 0x004, 4)?, cap >> 32);
        assert_eq!(wr(&mut b, 0x000, 8, u64::MAX)?, Bar0Effect::None);
        assert_eq!(rd(&b, 0x000, 8)?, cap);
        Ok(())
    }

    #[test]
    fn device_control_and_status() -> Result {
        let mut b = Bar0::new(1, 1)?;
        assert_eq!(wr(&mut b, 0x008, 4, 1)?, Bar0Effect::DeviceEnable(true));
        assert_eq!(rd(&b, 0x008, 4)?, 1);
        assert_eq!(wr(&mut b, 0x008, 4, 1)?, Bar0Effect::None);
        // Reset is a command: it reads back 0 and leaves enable as written.
        assert_eq!(wr(&mut b, 0x008, 4, 3)?, Bar0Effect::DeviceReset);
        assert_eq!(rd(&b, 0x008, 4)?, 1);
        // ENABLED is read-only, ERROR is write-1-to-clear.
        b.set_device_enabled(true);
        b.devsts |= 2;
        assert_eq!(wr(&mut b, 0x00c, 4, 0)?, Bar0Effect::None);
        assert_eq!(rd(&b, 0x00c, 4)?, 3);
        wr(&mut b, 0x00c, 4, 3)?;
        assert_eq!(rd(&b, 0x00c, 4)?, 1);
        Ok(())
    }

    #[test]
    fn queue_ring_registers() -> Result {
        let mut b = Bar0::new(2, 4)?;
        // 64-bit base, written whole or by halves; low bits are hardwired.
        wr(&mut b, Q1, 8, 0x1234_5678_9abc_def7)?;
        assert_eq!(rd(&b, Q1, 8)?, 0x1234_5678_9abc_dec0);
        wr(&mut b, Q1 + 4, 4, 0xaaaa_bbbb)?;
        assert_eq!(rd(&b, Q1, 8)?, 0xaaaa_bbbb_9abc_dec0);
        wr(&mut b, Q1 + 8, 4, 256)?;
        assert_eq!(b.queue_ring(1), Some((0xaaaa_bbbb_9abc_dec0, 256)));
        // Queue 2 does not exist on a 2-queue ADI: reserved.
        assert_eq!(wr(&mut b, 0x100 + 2 * 0x20 + 0xc, 4, 1)?, Bar0Effect::None);
        assert_eq!(rd(&b, 0x100 + 2 * 0x20 + 0xc, 4)?, 0);
        assert_eq!(b.queue_ring(2), None);
        Ok(())
    }

    #[test]
    fn queue_control_effects_and_locking() -> Result {
        let mut b = Bar0::new(2, 4)?;
        wr(&mut b, Q1, 8, 0x10000)?;
        assert_eq!(
            wr(&mut b, Q1 + 0xc, 4, 1 | (3 << 16))?,
            Bar0Effect::QueueEnable(1)
        );
        assert_eq!(b.queue_vector(1), Some(3));
        // The ring is locked while the queue is enabled.
        wr(&mut b, Q1, 8, 0x20000)?;
        wr(&mut b, Q1 + 8, 4, 8)?;
        assert_eq!(b.queue_ring(1), Some((0x10000, 0)));
        // Drain and reset are commands that read back 0.
        assert_eq!(
            wr(&mut b, Q1 + 0xc, 4, 1 | 2 | (3 << 16))?,
            Bar0Effect::QueueDrain(1)
        );
        assert_eq!(rd(&b, Q1 + 0xc, 4)?, 1 | (3 << 16));
        assert_eq!(wr(&mut b, Q1 + 0xc, 4, 4)?, Bar0Effect::QueueReset(1));
        assert_eq!(wr(&mut b, Q1 + 0xc, 4, 1)?, Bar0Effect::QueueEnable(1));
        assert_eq!(wr(&mut b, Q1 + 0xc, 4, 0)?, Bar0Effect::QueueDisable(1));
        // A vector past the ADI's vectors is ignored.
        wr(&mut b, Q1 + 0xc, 4, 9 << 16)?;
        assert_eq!(b.queue_vector(1), Some(0));
        Ok(())
    }

    #[test]
    fn queue_status_and_host_only_pasid() -> Result {
        let mut b = Bar0::new(1, 1)?;
        b.set_queue_pasid(0, 0x1234);
        assert_eq!(wr(&mut b, 0x114, 4, 0xdead)?, Bar0Effect::None);
        assert_eq!(rd(&b, 0x114, 4)?, 0x1234);
        wr(&mut b, 0x10c, 4, 1)?;
        b.set_queue_state(0, QueueState::Failed(QueueError::RingFault));
        assert_eq!(rd(&b, 0x110, 4)?, 2 | ((QueueError::RingFault as u64) << 8));
        // A stopped queue reads as disabled; ERROR clears on write-1.
        assert_eq!(rd(&b, 0x10c, 4)? & 1, 0);
        wr(&mut b, 0x110, 4, 2)?;
        assert_eq!(rd(&b, 0x110, 4)? & 2, 0);
        b.set_queue_state(0, QueueState::Running);
        assert_eq!(rd(&b, 0x110, 4)?, 1);
        b.set_queue_state(0, QueueState::Stopped);
        assert_eq!(rd(&b, 0x110, 4)?, 0);
        // A queue reset keeps the PASID and clears the rest.
        wr(&mut b, 0x100, 8, 0x4000)?;
        b.reset_queue(0);
        assert_eq!(rd(&b, 0x100, 8)?, 0);
        assert_eq!(rd(&b, 0x114, 4)?, 0x1234);
        Ok(())
    }

    #[test]
    fn reset_restores_everything_but_the_pasid() -> Result {
        let mut b = Bar0::new(1, 1)?;
        b.set_queue_pasid(0, 77);
        wr(&mut b, 0x008, 4, 1)?;
        wr(&mut b, 0x100, 8, 0x4000)?;
        wr(&mut b, 0x108, 4, 64)?;
        wr(&mut b, 0x10c, 4, 1)?;
        b.reset();
        assert_eq!(rd(&b, 0x008, 4)?, 0);
        assert_eq!(rd(&b, 0x100, 8)?, 0);
        assert_eq!(rd(&b, 0x108, 4)?, 0);
        assert_eq!(rd(&b, 0x10c, 4)?, 0);
        assert_eq!(rd(&b, 0x114, 4)?, 77);
        Ok(())
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert_eq!(Bar0::new(0, 1).err(), Some(EINVAL));
        assert_eq!(Bar0::new(1, 0).err(), Some(EINVAL));
        assert_eq!(Bar0::new(MAX_QUEUES + 1, 1).err(), Some(EINVAL));
        assert_eq!(Bar0::new(1, MAX_VECTORS + 1).err(), Some(EINVAL));
    }
}

// SPDX-License-Identifier: GPL-2.0

//! BAR0 of the virtual device: the trapped slow-path register file.
//!
//! Every guest access to BAR0 arrives as a `read`/`write` on the VFIO
//! region and is decoded here into the register it names before anything
//! acts on it. Layout (offsets in bytes):
//!
//! | offset            | register                      | width |
//! |-------------------|-------------------------------|-------|
//! | `0x000`           | `DEVCAP` device capabilities  | 64    |
//! | `0x008`           | `DEVCTL` device control       | 32    |
//! | `0x00c`           | `DEVSTS` device status        | 32    |
//! | `0x010`           | `INTCTL` interrupt control    | 32    |
//! | `0x018`           | `ERRLOG` error log            | 64    |
//! | `0x100 + 0x20*q`  | queue `q` block (see [`QueueReg`]) |  |
//! | `0x2000`          | MSI-X table, 16 bytes/vector  |       |
//! | `0x3000`          | MSI-X pending bit array       | 64    |
//!
//! Accesses are 4 or 8 bytes, naturally aligned, and stay inside one
//! register; a 4-byte access may address either half of a 64-bit register
//! (as PCI devices commonly allow). Anything else is refused with `EINVAL`
//! before it can reach a register. Offsets inside BAR0 that name no register
//! decode to [`Bar0Reg::Reserved`]: they read as zero and ignore writes.

use kernel::prelude::*;

/// Size of BAR0 in bytes.
pub const BAR0_SIZE: u64 = 0x4000;
/// Number of queue register blocks in BAR0.
pub const MAX_QUEUES: u16 = 64;
/// Number of MSI-X vectors BAR0's table holds.
pub const MAX_VECTORS: u16 = 256;

const QUEUE_BASE: u64 = 0x100;
const QUEUE_STRIDE: u64 = 0x20;
const MSIX_TABLE: u64 = 0x2000;
const MSIX_ENTRY_SIZE: u64 = 16;
const MSIX_PBA: u64 = 0x3000;

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
        (QueueReg::RingBase, 0x00, 8),
        (QueueReg::RingSize, 0x08, 4),
        (QueueReg::Control, 0x0c, 4),
        (QueueReg::Status, 0x10, 4),
        (QueueReg::Pasid, 0x14, 4),
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
    /// A 32-bit word of MSI-X table entry `vector` (word 0..=3: address low,
    /// address high, data, vector control).
    MsixEntry {
        /// Vector, below [`MAX_VECTORS`].
        vector: u16,
        /// 32-bit word within the 16-byte entry, 0..=3.
        word: u8,
    },
    /// A 64-bit word of the MSI-X pending bit array.
    MsixPba {
        /// Index of the 64-bit word; covers vectors `64*qword..64*qword+63`.
        qword: u16,
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
    match offset {
        0x000..0x008 => Some((Bar0Reg::DevCap, 0x000, 8)),
        0x008..0x00c => Some((Bar0Reg::DevCtl, 0x008, 4)),
        0x00c..0x010 => Some((Bar0Reg::DevSts, 0x00c, 4)),
        0x010..0x014 => Some((Bar0Reg::IntCtl, 0x010, 4)),
        0x018..0x020 => Some((Bar0Reg::ErrLog, 0x018, 8)),
        _ => None,
    }
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
    let table_end = MSIX_TABLE + MSIX_ENTRY_SIZE * u64::from(MAX_VECTORS);
    if (MSIX_TABLE..table_end).contains(&offset) {
        let vector = u16::try_from((offset - MSIX_TABLE) / MSIX_ENTRY_SIZE).ok()?;
        let word = u8::try_from((offset - MSIX_TABLE) % MSIX_ENTRY_SIZE / 4).ok()?;
        return Some((Bar0Reg::MsixEntry { vector, word }, offset & !3, 4));
    }
    let pba_end = MSIX_PBA + u64::from(MAX_VECTORS).div_ceil(64) * 8;
    if (MSIX_PBA..pba_end).contains(&offset) {
        let qword = u16::try_from((offset - MSIX_PBA) / 8).ok()?;
        return Some((Bar0Reg::MsixPba { qword }, offset & !7, 8));
    }
    None
}

impl Bar0Access {
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

#[kunit_tests(vdcm_bar0_decode)]
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
    fn msix_table_and_pba() -> Result {
        assert_eq!(
            reg(0x2000, 4)?,
            (Bar0Reg::MsixEntry { vector: 0, word: 0 }, 0)
        );
        assert_eq!(
            reg(0x201c, 4)?,
            (Bar0Reg::MsixEntry { vector: 1, word: 3 }, 0)
        );
        let last = 0x2000 + 16 * (u64::from(MAX_VECTORS) - 1);
        assert_eq!(
            reg(last + 8, 4)?,
            (
                Bar0Reg::MsixEntry {
                    vector: MAX_VECTORS - 1,
                    word: 2
                },
                0
            )
        );
        assert_eq!(reg(0x3000, 8)?, (Bar0Reg::MsixPba { qword: 0 }, 0));
        assert_eq!(reg(0x3018, 8)?, (Bar0Reg::MsixPba { qword: 3 }, 0));
        assert_eq!(reg(0x3020, 8)?, (Bar0Reg::Reserved, 0));
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
        assert_eq!(reg(0x2000, 8), Err(EINVAL));
        // Past the end of BAR0, including offsets that would wrap.
        assert_eq!(reg(BAR0_SIZE, 4), Err(EINVAL));
        assert_eq!(reg(BAR0_SIZE - 4, 8), Err(EINVAL));
        assert_eq!(reg(u64::MAX - 3, 4), Err(EINVAL));
        assert_eq!(reg(u64::MAX - 7, 8), Err(EINVAL));
        // The last word is still fine.
        assert_eq!(reg(BAR0_SIZE - 4, 4), Ok((Bar0Reg::Reserved, 0)));
    }
}

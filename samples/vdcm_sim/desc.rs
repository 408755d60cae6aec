// SPDX-License-Identifier: GPL-2.0

//! The simulated PF's descriptor and completion-record formats: the ABI a
//! tenant (a user-space test, a guest driver) programs the data mover with.
//!
//! Both sides use this file: the simulated PF's engine decodes descriptors
//! and encodes completion records; the guest driver (`samples/vdcm_guest`)
//! encodes descriptors and decodes completion records.
//!
//! A descriptor is 64 bytes, little endian, in the tenant's memory on a
//! ring of 64-byte slots:
//!
//! | offset | size | field                                                 |
//! |--------|------|-------------------------------------------------------|
//! | 0      | 1    | opcode ([`Opcode`])                                   |
//! | 1      | 1    | flags ([`FLAG_INTERRUPT`])                            |
//! | 2      | 2    | reserved, 0                                           |
//! | 4      | 4    | size: bytes (data ops) or descriptors (BATCH)         |
//! | 8      | 8    | source IOVA (BATCH: the descriptor array)             |
//! | 16     | 8    | destination IOVA (COMPARE: the second source)         |
//! | 24     | 8    | completion-record IOVA, 0 for none                    |
//! | 32     | 8    | operand: FILL pattern (8 bytes), CRC32C seed (low 32) |
//! | 40     | 24   | reserved, 0                                           |
//!
//! A completion record is 32 bytes, written once the descriptor is done:
//!
//! | offset | size | field                                                 |
//! |--------|------|-------------------------------------------------------|
//! | 0      | 1    | status ([`Status`]); 0 means "not done yet"           |
//! | 1      | 1    | opcode of the descriptor                              |
//! | 2      | 2    | reserved                                              |
//! | 4      | 4    | bytes (or batch descriptors) completed                |
//! | 8      | 8    | faulting IOVA (status `PageFault`)                    |
//! | 16     | 8    | result: CRC32C value; COMPARE: 0 equal, 1 different   |
//! | 24     | 8    | reserved                                              |

/// Size of one descriptor and of one ring slot.
pub const DESC_SIZE: usize = 64;
/// Size of a completion record.
pub const COMPLETION_SIZE: usize = 32;
/// Largest transfer of one data descriptor.
pub const MAX_TRANSFER: u32 = 256 * 1024;
/// Most descriptors in one BATCH.
pub const MAX_BATCH: u32 = 32;
/// Descriptor flag: raise the queue's completion interrupt when done.
pub const FLAG_INTERRUPT: u8 = 1 << 0;

/// What a descriptor asks the data mover to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// Nothing; completes at once.
    Nop = 0,
    /// Copy `size` bytes from source to destination.
    MemMove = 1,
    /// Fill `size` bytes at destination with the 8-byte pattern.
    Fill = 2,
    /// Compare `size` bytes at source and destination.
    Compare = 3,
    /// CRC32C (Castagnoli) of `size` bytes at source, seeded by the operand.
    Crc32c = 4,
    /// Run `size` descriptors from the array at source, in order.
    Batch = 5,
}

impl Opcode {
    /// The opcode a raw byte names, if any.
    pub fn from_raw(raw: u8) -> Option<Self> {
        Some(match raw {
            0 => Opcode::Nop,
            1 => Opcode::MemMove,
            2 => Opcode::Fill,
            3 => Opcode::Compare,
            4 => Opcode::Crc32c,
            5 => Opcode::Batch,
            _ => return None,
        })
    }
}

/// The outcome of a descriptor, as written to its completion record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Success = 1,
    /// An IOVA the descriptor named is not mapped (or not writable) in the
    /// tenant's address space; nothing was written.
    PageFault = 2,
    /// Unknown opcode.
    InvalidOpcode = 3,
    /// Size 0 where data is needed, above [`MAX_TRANSFER`], or a BATCH of
    /// more than [`MAX_BATCH`].
    InvalidSize = 4,
    /// Reserved flag bits or fields set, or a BATCH inside a BATCH.
    InvalidField = 5,
    /// A descriptor of the BATCH failed (see its own completion record).
    BatchFailed = 6,
    /// Not run: the portal held more descriptors than its QoS `threshold`
    /// allows in flight; submit it again later (a shared work queue's
    /// "retry").
    Retry = 7,
}

impl Status {
    /// The status a raw byte names; `None` for 0 ("not done yet") and for
    /// values the device never writes.
    pub fn from_raw(raw: u8) -> Option<Self> {
        Some(match raw {
            1 => Status::Success,
            2 => Status::PageFault,
            3 => Status::InvalidOpcode,
            4 => Status::InvalidSize,
            5 => Status::InvalidField,
            6 => Status::BatchFailed,
            7 => Status::Retry,
            _ => return None,
        })
    }
}

/// A decoded descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// The raw opcode byte.
    pub opcode: u8,
    /// Flags.
    pub flags: u8,
    /// Bytes, or descriptors for BATCH.
    pub size: u32,
    /// Source IOVA.
    pub src: u64,
    /// Destination IOVA.
    pub dst: u64,
    /// Completion-record IOVA; 0 for none.
    pub completion: u64,
    /// Pattern or seed.
    pub operand: u64,
    /// Whether any reserved bit or byte is set.
    reserved_set: bool,
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

impl Descriptor {
    /// A descriptor for `op` with every reserved field zero and no
    /// completion record: what a driver builds before
    /// [`Descriptor::encode`].
    pub fn new(op: Opcode, size: u32, src: u64, dst: u64) -> Self {
        Descriptor {
            opcode: op as u8,
            flags: 0,
            size,
            src,
            dst,
            completion: 0,
            operand: 0,
            reserved_set: false,
        }
    }

    /// The same descriptor with its completion record at IOVA `completion`.
    pub fn with_completion(self, completion: u64) -> Self {
        Descriptor { completion, ..self }
    }

    /// The same descriptor with the FILL pattern or CRC32C seed `operand`.
    pub fn with_operand(self, operand: u64) -> Self {
        Descriptor { operand, ..self }
    }

    /// The same descriptor, asking for the queue's completion interrupt.
    pub fn with_interrupt(self) -> Self {
        Descriptor {
            flags: self.flags | FLAG_INTERRUPT,
            ..self
        }
    }

    /// The descriptor's 64 bytes, as eight little-endian 64-bit words (the
    /// unit a driver stores to its ring). Reserved fields are zero.
    pub fn encode(&self) -> [u64; DESC_SIZE / 8] {
        let mut w = [0u64; DESC_SIZE / 8];
        w[0] = u64::from(self.opcode) | u64::from(self.flags) << 8 | u64::from(self.size) << 32;
        w[1] = self.src;
        w[2] = self.dst;
        w[3] = self.completion;
        w[4] = self.operand;
        w
    }

    /// The descriptor's 64 bytes (see [`Descriptor::encode`]).
    pub fn to_bytes(&self) -> [u8; DESC_SIZE] {
        let mut b = [0u8; DESC_SIZE];
        for (chunk, w) in b.chunks_exact_mut(8).zip(self.encode()) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    /// Decodes the 64 bytes of a descriptor.
    pub fn decode(raw: &[u8; DESC_SIZE]) -> Self {
        let word0 = le_u64(raw, 0);
        Descriptor {
            opcode: raw[0],
            flags: raw[1],
            size: (word0 >> 32) as u32,
            src: le_u64(raw, 8),
            dst: le_u64(raw, 16),
            completion: le_u64(raw, 24),
            operand: le_u64(raw, 32),
            reserved_set: raw[1] & !FLAG_INTERRUPT != 0
                || raw[2] != 0
                || raw[3] != 0
                || raw[40..].iter().any(|&b| b != 0),
        }
    }

    /// What the descriptor asks for, or why it cannot be run. `in_batch`:
    /// the descriptor comes from a BATCH's array.
    pub fn validate(&self, in_batch: bool) -> core::result::Result<Opcode, Status> {
        let op = Opcode::from_raw(self.opcode).ok_or(Status::InvalidOpcode)?;
        if self.reserved_set || (in_batch && op == Opcode::Batch) {
            return Err(Status::InvalidField);
        }
        let size_ok = match op {
            Opcode::Nop => true,
            Opcode::Batch => (1..=MAX_BATCH).contains(&self.size),
            _ => (1..=MAX_TRANSFER).contains(&self.size),
        };
        if !size_ok {
            return Err(Status::InvalidSize);
        }
        Ok(op)
    }

    /// Whether the descriptor asks for a completion interrupt.
    pub fn wants_interrupt(&self) -> bool {
        self.flags & FLAG_INTERRUPT != 0
    }
}

/// A completion record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Outcome.
    pub status: Status,
    /// The descriptor's opcode byte.
    pub opcode: u8,
    /// Bytes (or batch descriptors) completed.
    pub done: u32,
    /// Faulting IOVA, for [`Status::PageFault`].
    pub fault_iova: u64,
    /// CRC32C value, or COMPARE's outcome.
    pub result: u64,
}

impl Completion {
    /// The record's 32 bytes.
    pub fn encode(&self) -> [u8; COMPLETION_SIZE] {
        let mut b = [0u8; COMPLETION_SIZE];
        b[0] = self.status as u8;
        b[1] = self.opcode;
        b[4..8].copy_from_slice(&self.done.to_le_bytes());
        b[8..16].copy_from_slice(&self.fault_iova.to_le_bytes());
        b[16..24].copy_from_slice(&self.result.to_le_bytes());
        b
    }

    /// Decodes a completion record from its four little-endian 64-bit
    /// words; `None` while the status is 0 (not written yet) or not one the
    /// device writes.
    pub fn decode(w: &[u64; COMPLETION_SIZE / 8]) -> Option<Self> {
        Some(Completion {
            status: Status::from_raw(w[0] as u8)?,
            opcode: (w[0] >> 8) as u8,
            done: (w[0] >> 32) as u32,
            fault_iova: w[1],
            result: w[2],
        })
    }
}

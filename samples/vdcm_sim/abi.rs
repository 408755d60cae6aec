// SPDX-License-Identifier: GPL-2.0

//! The register ABI of the simulated PF's virtual device, defined once.
//!
//! Three programs speak it and all of them include this file: the
//! simulated PF, which implements it (`regs.rs` decodes BAR0 with it); the
//! guest driver (`samples/vdcm_guest`), which drives it from inside a VM;
//! and the user-space tests (`qemu-test/userspace`), which drive it through
//! VFIO. It is plain Rust with no dependency, so user space can compile it
//! too. The descriptor format is the same kind of shared file, `desc.rs`.
//!
//! BAR0 (trapped), offsets in bytes:
//!
//! | offset                     | register                        | width |
//! |----------------------------|---------------------------------|-------|
//! | [`DEVCAP`]                 | device capabilities (RO)        | 64    |
//! | [`DEVCTL`]                 | device control                  | 32    |
//! | [`DEVSTS`]                 | device status                   | 32    |
//! | [`INTCTL`]                 | interrupt control               | 32    |
//! | [`ERRLOG`]                 | error log (RO)                  | 64    |
//! | [`queue`]`(q)` + `Q_*`     | queue `q`'s block               |       |
//! | [`MSIX_TABLE`]             | MSI-X table (the VDCM's)        |       |
//! | [`MSIX_PBA`]               | MSI-X pending bits (the VDCM's) |       |
//!
//! BAR2 (mapped, no trap): one page per queue. For a queue pair, the
//! tenant stores the free-running ring tail at [`DOORBELL_TAIL`]; for a
//! portal, it writes descriptors into slot `tail % PORTAL_SLOTS` of the
//! page and then the new tail at [`PORTAL_TAIL`].

/// PCI vendor ID: 0xfffe is not assigned to any vendor by the PCI-SIG; the
/// IDs are experimental and name no product.
pub const VENDOR_ID: u16 = 0xfffe;
/// PCI device ID.
pub const DEVICE_ID: u16 = 0x51a0;
/// Class code: system peripheral, other (as DMA engines use).
pub const CLASS_CODE: u32 = 0x08_80_00;

/// Size of BAR0.
pub const BAR0_SIZE: u64 = 0x4000;
/// Size of one doorbell or portal page in BAR2.
pub const DOORBELL_PAGE: u64 = 0x1000;

/// `DEVCAP`, 64 bits: 7:0 queues, 17:8 MSI-X vectors, 23:20 log2 of the
/// largest ring, 63:56 layout version ([`VERSION`]).
pub const DEVCAP: u64 = 0x000;
/// `DEVCTL`: [`DEVCTL_ENABLE`], [`DEVCTL_RESET`].
pub const DEVCTL: u64 = 0x008;
/// `DEVCTL` bit: the device may process queues.
pub const DEVCTL_ENABLE: u32 = 1 << 0;
/// `DEVCTL` bit: write 1 to reset the device (reads 0).
pub const DEVCTL_RESET: u32 = 1 << 1;
/// `DEVSTS`: bit 0 enabled (RO), bit 1 error (write 1 to clear).
pub const DEVSTS: u64 = 0x00c;
/// `INTCTL`: bit 0 error interrupt enable, 15:8 error vector.
pub const INTCTL: u64 = 0x010;
/// `ERRLOG`, 64 bits, read-only.
pub const ERRLOG: u64 = 0x018;

/// Offset of queue 0's register block.
pub const QUEUE_BASE: u64 = 0x100;
/// Bytes between two queues' blocks.
pub const QUEUE_STRIDE: u64 = 0x20;
/// Queue blocks in BAR0.
pub const MAX_QUEUES: u16 = 64;

/// The offset of queue `q`'s register block.
pub const fn queue(q: u16) -> u64 {
    QUEUE_BASE + q as u64 * QUEUE_STRIDE
}

/// In a queue block, 64 bits: IOVA of the ring ([`RING_ALIGN`]-aligned).
pub const Q_RING_BASE: u64 = 0x00;
/// In a queue block: descriptors in the ring, a power of two.
pub const Q_RING_SIZE: u64 = 0x08;
/// In a queue block: [`CONTROL_ENABLE`], drain, reset, 23:16 vector.
pub const Q_CONTROL: u64 = 0x0c;
/// In a queue block: [`STATUS_RUNNING`], bit 1 error, 15:8 error code.
pub const Q_STATUS: u64 = 0x10;
/// In a queue block: the PASID the host bound (read-only to the guest).
pub const Q_PASID: u64 = 0x14;

/// `CONTROL` bit: the queue processes descriptors.
pub const CONTROL_ENABLE: u32 = 1 << 0;
/// `CONTROL` bit: write 1 to finish outstanding descriptors (reads 0).
pub const CONTROL_DRAIN: u32 = 1 << 1;
/// `CONTROL` bit: write 1 to reset the queue (reads 0).
pub const CONTROL_RESET: u32 = 1 << 2;
/// `CONTROL` field shift: the MSI-X vector for completions (8 bits).
pub const CONTROL_VECTOR_SHIFT: u32 = 16;
/// `STATUS` bit: the queue is running.
pub const STATUS_RUNNING: u32 = 1 << 0;
/// `STATUS` bit: the queue stopped on an error.
pub const STATUS_ERROR: u32 = 1 << 1;
/// `STATUS` field shift: why the queue stopped (8 bits).
pub const STATUS_CODE_SHIFT: u32 = 8;

/// Offset of the MSI-X table in BAR0.
pub const MSIX_TABLE: u32 = 0x2000;
/// Offset of the MSI-X pending bit array in BAR0.
pub const MSIX_PBA: u32 = 0x3000;

/// Value of `DEVCAP.version` for this layout.
pub const VERSION: u8 = 1;
/// log2 of the largest ring, in descriptors.
pub const MAX_RING_ORDER: u32 = 12;
/// Required alignment of a ring's base (one descriptor).
pub const RING_ALIGN: u64 = 64;

/// Offset of the ring tail in a queue pair's doorbell page.
pub const DOORBELL_TAIL: usize = 0;
/// Descriptor slots of a portal page.
pub const PORTAL_SLOTS: u32 = 63;
/// Offset of the tail in a portal page (after the slots).
pub const PORTAL_TAIL: usize = PORTAL_SLOTS as usize * 64;

/// Why a queue stopped, in `STATUS` bits 15:8.
pub mod queue_error {
    /// `RING_SIZE` is not a power of two in 2..=2^`MAX_RING_ORDER`, or
    /// the base is misaligned.
    pub const BAD_RING_SIZE: u8 = 1;
    /// The device is not enabled (`DEVCTL.enable`).
    pub const DEVICE_DISABLED: u8 = 2;
    /// The PF refused to start the queue.
    pub const PF_REFUSED: u8 = 3;
    /// The ring could not be read (unmapped IOVA), or was unmapped.
    pub const RING_FAULT: u8 = 4;
}

// SPDX-License-Identifier: GPL-2.0

//! Register offsets and capability layouts of PCI configuration space.
//!
//! The kernel's own register definitions (`include/uapi/linux/pci_regs.h`)
//! come through `rust/pci_regs.rs`; only what the kernel does not define
//! (the SIOV DVSEC's layout) is written here.

pub use crate::vdcm_kernel::pci_regs::*;

/// The Command register bits a guest can write.
pub(super) const COMMAND_WMASK: u16 = COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE;

pub(super) const PM_CTRL_STATE: u16 = 0x3;
pub(super) const PM_SIZE: usize = 8;

/// Device Control bits a guest can write: error reporting enables, relaxed
/// ordering, max payload size, no snoop, max read request size.
pub(super) const EXP_DEVCTL_WMASK: u16 = 0x78ff;
/// Device Control after reset: relaxed ordering and no snoop enabled, max
/// read request size 512 bytes (the values the specification requires).
pub(super) const EXP_DEVCTL_DEFAULT: u16 = 0x2810;
/// PCI Express Capabilities register: version 2, Endpoint.
pub(super) const EXP_FLAGS_V2_ENDPOINT: u16 = 0x0002;
/// Size of a version 2 PCI Express capability (through Slot Status 2).
pub(super) const EXP_SIZE: usize = 0x3c;

pub(super) const MSIX_SIZE: usize = 12;
pub(super) const MSIX_ENTRY_SIZE: u64 = 16;

/// DVSEC: offset of the vendor-defined body.
pub const DVSEC_BODY: usize = 0x0a;
/// Version of the DVSEC extended capability structure.
pub(super) const DVSEC_VERSION: u32 = 1;

/// DVSEC ID of the Scalable IOV capability.
///
/// The Intel Scalable I/O Virtualization specification (section 3.7)
/// identifies a function that supports SIOV by a DVSEC whose DVSEC vendor
/// ID is [`INTEL_VENDOR_ID`] and whose DVSEC ID is 5, revision 0.
pub const SIOV_DVSEC_ID: u16 = 5;

/// Standard capabilities live between the end of the header and `0x100`.
pub(super) const CAP_START: usize = 0x40;
pub(super) const CAP_END: usize = 0x100;
/// Extended capabilities live between `0x100` and the end of the space.
pub(super) const EXT_CAP_START: usize = 0x100;
/// Upper bound of the length of a capability chain (every capability takes
/// at least 4 bytes), so that a corrupted chain cannot loop forever.
pub(super) const MAX_CHAIN: usize = CONFIG_SPACE_SIZE / 4;

/// The identity of the function, written into its header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceIds {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Revision ID.
    pub revision: u8,
    /// Class code, 24 bits: base class, sub-class, programming interface
    /// (from the most significant byte).
    pub class: u32,
    /// Subsystem Vendor ID.
    pub subsystem_vendor: u16,
    /// Subsystem ID.
    pub subsystem: u16,
}

/// Where the MSI-X table and pending bit array of a function are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsixLayout {
    /// Number of vectors, `1..=`[`MSIX_MAX_VECTORS`].
    pub vectors: u16,
    /// The BAR holding the table (BAR Indicator Register).
    pub table_bar: u8,
    /// Offset of the table in its BAR, 8-byte aligned.
    pub table_offset: u32,
    /// The BAR holding the pending bit array.
    pub pba_bar: u8,
    /// Offset of the pending bit array in its BAR, 8-byte aligned.
    pub pba_offset: u32,
}

/// The fields of the Scalable IOV DVSEC after its headers (see
/// [`SIOV_DVSEC_ID`]).
///
/// Body layout, offsets from the start of the DVSEC: `0x0a` flags, `0x0b`
/// function dependency link, `0x0c` supported page sizes, `0x10` system page
/// size, `0x14` capabilities; 24 bytes in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SiovDvsec {
    /// Flags; bit 0 is Homogeneous (all functions of the device alike).
    pub flags: u8,
    /// Function Dependency Link.
    pub function_dependency_link: u8,
    /// Supported Page Sizes: bit `n` set means pages of `2^(n+12)` bytes.
    pub supported_page_sizes: u32,
    /// System Page Size at reset. The guest may set bits that are set in
    /// `supported_page_sizes`; the others are read-only.
    pub system_page_size: u32,
    /// Capabilities; bit 0 is IMS support.
    pub capabilities: u32,
}

impl SiovDvsec {
    /// A function that supports, and starts with, 4 KiB pages only; no
    /// flags, dependency link or capabilities.
    pub const PAGES_4K: SiovDvsec = SiovDvsec {
        flags: 0,
        function_dependency_link: 0,
        supported_page_sizes: 1,
        system_page_size: 1,
        capabilities: 0,
    };
}

/// Offset of the System Page Size register inside the SIOV DVSEC.
pub const SIOV_SYSTEM_PAGE_SIZE: usize = 0x10;

/// A power state of the function, in the PM capability's PMCSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerState {
    /// Fully on.
    D0,
    /// Software-visible off state.
    D3Hot,
}

/// The guest-controlled state of MSI-X, from Message Control.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsixControl {
    /// MSI-X Enable.
    pub enabled: bool,
    /// Function Mask: every vector is masked.
    pub function_masked: bool,
}

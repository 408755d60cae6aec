// SPDX-License-Identifier: GPL-2.0

//! Register offsets and capability layouts of PCI configuration space.

/// Size of the configuration space of a PCI Express function, in bytes.
pub const CONFIG_SPACE_SIZE: usize = 0x1000;

/// Offset of the Vendor ID register (16 bits).
pub const VENDOR_ID: usize = 0x00;
/// Offset of the Device ID register (16 bits).
pub const DEVICE_ID: usize = 0x02;
/// Offset of the Command register (16 bits).
pub const COMMAND: usize = 0x04;
/// Offset of the Status register (16 bits).
pub const STATUS: usize = 0x06;
/// Offset of the Revision ID register (8 bits).
pub const REVISION_ID: usize = 0x08;
/// Offset of the Class Code register (24 bits: programming interface,
/// sub-class, base class).
pub const CLASS_CODE: usize = 0x09;
/// Offset of the Cache Line Size register (8 bits).
pub const CACHE_LINE_SIZE: usize = 0x0c;
/// Offset of the Header Type register (8 bits).
pub const HEADER_TYPE: usize = 0x0e;
/// Offset of Base Address Register 0; BAR `n` is at `BAR0 + 4 * n`.
pub const BAR0: usize = 0x10;
/// Number of Base Address Registers of a type 0 header.
pub const BAR_COUNT: usize = 6;
/// Offset of the Subsystem Vendor ID register (16 bits).
pub const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
/// Offset of the Subsystem ID register (16 bits).
pub const SUBSYSTEM_ID: usize = 0x2e;
/// Offset of the Capabilities Pointer (8 bits).
pub const CAPABILITIES_POINTER: usize = 0x34;
/// Offset of the Interrupt Line register (8 bits).
pub const INTERRUPT_LINE: usize = 0x3c;
/// Offset of the Interrupt Pin register (8 bits).
pub const INTERRUPT_PIN: usize = 0x3d;

/// Command register: Memory Space Enable.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command register: Bus Master Enable.
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command register: Interrupt Disable (INTx).
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// The Command register bits a guest can write.
pub(super) const COMMAND_WMASK: u16 = COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE;

/// Status register: Capabilities List (read-only).
pub const STATUS_CAP_LIST: u16 = 1 << 4;
/// Status register: the error bits, all write-1-to-clear (Master Data Parity
/// Error, Signaled/Received Target Abort, Received Master Abort, Signaled
/// System Error, Detected Parity Error).
pub const STATUS_ERRORS: u16 = 0xf900;

/// Capability ID of PCI Power Management.
pub const CAP_ID_PM: u8 = 0x01;
/// Capability ID of PCI Express.
pub const CAP_ID_EXP: u8 = 0x10;
/// Capability ID of MSI-X.
pub const CAP_ID_MSIX: u8 = 0x11;
/// Extended capability ID of the Designated Vendor-Specific Extended
/// Capability (DVSEC).
pub const EXT_CAP_ID_DVSEC: u16 = 0x0023;

/// Power Management: offset of the Power Management Capabilities (PMC, 16
/// bits) inside the capability.
pub const PM_PMC: usize = 0x02;
/// Power Management: offset of the Control/Status register (PMCSR, 16 bits).
pub const PM_CTRL: usize = 0x04;
/// PMCSR: No_Soft_Reset, going from D3hot to D0 keeps the function's state.
pub const PM_CTRL_NO_SOFT_RESET: u16 = 1 << 3;
pub(super) const PM_CTRL_STATE: u16 = 0x3;
pub(super) const PM_SIZE: usize = 8;

/// PCI Express: offset of Device Capabilities (32 bits) inside the
/// capability.
pub const EXP_DEVCAP: usize = 0x04;
/// Device Capabilities: Role-Based Error Reporting.
pub const EXP_DEVCAP_RBER: u32 = 1 << 15;
/// Device Capabilities: Function Level Reset Capability.
pub const EXP_DEVCAP_FLR: u32 = 1 << 28;
/// PCI Express: offset of Device Control (16 bits).
pub const EXP_DEVCTL: usize = 0x08;
/// Device Control: Initiate Function Level Reset (always reads 0).
pub const EXP_DEVCTL_FLR: u16 = 1 << 15;
/// PCI Express: offset of Device Status (16 bits).
pub const EXP_DEVSTA: usize = 0x0a;
/// Device Status: the error-detected bits (correctable, non-fatal, fatal,
/// unsupported request), write-1-to-clear.
pub const EXP_DEVSTA_ERRORS: u16 = 0x000f;
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

/// MSI-X: offset of Message Control (16 bits) inside the capability.
pub const MSIX_FLAGS: usize = 0x02;
/// Message Control: MSI-X Enable.
pub const MSIX_FLAGS_ENABLE: u16 = 1 << 15;
/// Message Control: Function Mask.
pub const MSIX_FLAGS_MASKALL: u16 = 1 << 14;
/// MSI-X: offset of the Table Offset/BIR register (32 bits).
pub const MSIX_TABLE: usize = 0x04;
/// MSI-X: offset of the PBA Offset/BIR register (32 bits).
pub const MSIX_PBA: usize = 0x08;
/// Largest number of MSI-X vectors a function can have.
pub const MSIX_MAX_VECTORS: u16 = 2048;
pub(super) const MSIX_SIZE: usize = 12;
pub(super) const MSIX_ENTRY_SIZE: u64 = 16;

/// DVSEC: offset of DVSEC Header 1 (vendor, revision, length) inside the
/// extended capability.
pub const DVSEC_HEADER1: usize = 0x04;
/// DVSEC: offset of DVSEC Header 2 (DVSEC ID).
pub const DVSEC_HEADER2: usize = 0x08;
/// DVSEC: offset of the vendor-defined body.
pub const DVSEC_BODY: usize = 0x0a;
/// Version of the DVSEC extended capability structure.
pub(super) const DVSEC_VERSION: u32 = 1;

/// PCI vendor ID of Intel, the vendor of the Scalable IOV DVSEC.
pub const INTEL_VENDOR_ID: u16 = 0x8086;
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

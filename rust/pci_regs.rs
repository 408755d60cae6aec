// SPDX-License-Identifier: GPL-2.0

//! The PCI configuration-space registers the config-space emulator uses,
//! from the kernel's definitions (`include/uapi/linux/pci_regs.h`,
//! `include/linux/pci_ids.h`), as the types the emulator indexes with.

use super::bindings;

/// Size of the configuration space of a PCI Express function, in bytes.
pub const CONFIG_SPACE_SIZE: usize = bindings::PCI_CFG_SPACE_EXP_SIZE as usize;

/// Offset of the Vendor ID register (16 bits).
pub const VENDOR_ID: usize = bindings::PCI_VENDOR_ID as usize;

/// Offset of the Device ID register (16 bits).
pub const DEVICE_ID: usize = bindings::PCI_DEVICE_ID as usize;

/// Offset of the Command register (16 bits).
pub const COMMAND: usize = bindings::PCI_COMMAND as usize;

/// Offset of the Status register (16 bits).
pub const STATUS: usize = bindings::PCI_STATUS as usize;

/// Offset of the Revision ID register (8 bits).
pub const REVISION_ID: usize = bindings::PCI_REVISION_ID as usize;

/// Offset of the Class Code register (24 bits: programming interface,
/// sub-class, base class).
pub const CLASS_CODE: usize = bindings::PCI_CLASS_PROG as usize;

/// Offset of the Cache Line Size register (8 bits).
pub const CACHE_LINE_SIZE: usize = bindings::PCI_CACHE_LINE_SIZE as usize;

/// Offset of the Header Type register (8 bits).
pub const HEADER_TYPE: usize = bindings::PCI_HEADER_TYPE as usize;

/// Offset of Base Address Register 0; BAR `n` is at `BAR0 + 4 * n`.
pub const BAR0: usize = bindings::PCI_BASE_ADDRESS_0 as usize;

/// Number of Base Address Registers of a type 0 header.
pub const BAR_COUNT: usize = bindings::PCI_STD_NUM_BARS as usize;

/// Offset of the Subsystem Vendor ID register (16 bits).
pub const SUBSYSTEM_VENDOR_ID: usize = bindings::PCI_SUBSYSTEM_VENDOR_ID as usize;

/// Offset of the Subsystem ID register (16 bits).
pub const SUBSYSTEM_ID: usize = bindings::PCI_SUBSYSTEM_ID as usize;

/// Offset of the Capabilities Pointer (8 bits).
pub const CAPABILITIES_POINTER: usize = bindings::PCI_CAPABILITY_LIST as usize;

/// Offset of the Interrupt Line register (8 bits).
pub const INTERRUPT_LINE: usize = bindings::PCI_INTERRUPT_LINE as usize;

/// Offset of the Interrupt Pin register (8 bits).
pub const INTERRUPT_PIN: usize = bindings::PCI_INTERRUPT_PIN as usize;

/// Command register: Memory Space Enable.
pub const COMMAND_MEMORY: u16 = bindings::PCI_COMMAND_MEMORY as u16;

/// Command register: Bus Master Enable.
pub const COMMAND_BUS_MASTER: u16 = bindings::PCI_COMMAND_MASTER as u16;

/// Command register: Interrupt Disable (INTx).
pub const COMMAND_INTX_DISABLE: u16 = bindings::PCI_COMMAND_INTX_DISABLE as u16;

/// Status register: Capabilities List (read-only).
pub const STATUS_CAP_LIST: u16 = bindings::PCI_STATUS_CAP_LIST as u16;

/// Status register: the error bits, all write-1-to-clear (Master Data Parity
/// Error, Signaled/Received Target Abort, Received Master Abort, Signaled
/// System Error, Detected Parity Error).
pub const STATUS_ERRORS: u16 = (bindings::PCI_STATUS_PARITY
    | bindings::PCI_STATUS_SIG_TARGET_ABORT
    | bindings::PCI_STATUS_REC_TARGET_ABORT
    | bindings::PCI_STATUS_REC_MASTER_ABORT
    | bindings::PCI_STATUS_SIG_SYSTEM_ERROR
    | bindings::PCI_STATUS_DETECTED_PARITY) as u16;

/// Capability ID of PCI Power Management.
pub const CAP_ID_PM: u8 = bindings::PCI_CAP_ID_PM as u8;

/// Capability ID of PCI Express.
pub const CAP_ID_EXP: u8 = bindings::PCI_CAP_ID_EXP as u8;

/// Capability ID of MSI-X.
pub const CAP_ID_MSIX: u8 = bindings::PCI_CAP_ID_MSIX as u8;

/// Extended capability ID of the Designated Vendor-Specific Extended
/// Capability (DVSEC).
pub const EXT_CAP_ID_DVSEC: u16 = bindings::PCI_EXT_CAP_ID_DVSEC as u16;

/// Power Management: offset of the Power Management Capabilities (PMC, 16
/// bits) inside the capability.
pub const PM_PMC: usize = bindings::PCI_PM_PMC as usize;

/// Power Management: offset of the Control/Status register (PMCSR, 16 bits).
pub const PM_CTRL: usize = bindings::PCI_PM_CTRL as usize;

/// PMCSR: No_Soft_Reset, going from D3hot to D0 keeps the function's state.
pub const PM_CTRL_NO_SOFT_RESET: u16 = bindings::PCI_PM_CTRL_NO_SOFT_RESET as u16;

/// PCI Express: offset of Device Capabilities (32 bits) inside the
/// capability.
pub const EXP_DEVCAP: usize = bindings::PCI_EXP_DEVCAP as usize;

/// Device Capabilities: Role-Based Error Reporting.
pub const EXP_DEVCAP_RBER: u32 = bindings::PCI_EXP_DEVCAP_RBER;

/// Device Capabilities: Function Level Reset Capability.
pub const EXP_DEVCAP_FLR: u32 = bindings::PCI_EXP_DEVCAP_FLR;

/// PCI Express: offset of Device Control (16 bits).
pub const EXP_DEVCTL: usize = bindings::PCI_EXP_DEVCTL as usize;

/// Device Control: Initiate Function Level Reset (always reads 0).
pub const EXP_DEVCTL_FLR: u16 = bindings::PCI_EXP_DEVCTL_BCR_FLR as u16;

/// PCI Express: offset of Device Status (16 bits).
pub const EXP_DEVSTA: usize = bindings::PCI_EXP_DEVSTA as usize;

/// Device Status: the error-detected bits (correctable, non-fatal, fatal,
/// unsupported request), write-1-to-clear.
pub const EXP_DEVSTA_ERRORS: u16 = (bindings::PCI_EXP_DEVSTA_CED
    | bindings::PCI_EXP_DEVSTA_NFED
    | bindings::PCI_EXP_DEVSTA_FED
    | bindings::PCI_EXP_DEVSTA_URD) as u16;

/// MSI-X: offset of Message Control (16 bits) inside the capability.
pub const MSIX_FLAGS: usize = bindings::PCI_MSIX_FLAGS as usize;

/// Message Control: MSI-X Enable.
pub const MSIX_FLAGS_ENABLE: u16 = bindings::PCI_MSIX_FLAGS_ENABLE as u16;

/// Message Control: Function Mask.
pub const MSIX_FLAGS_MASKALL: u16 = bindings::PCI_MSIX_FLAGS_MASKALL as u16;

/// MSI-X: offset of the Table Offset/BIR register (32 bits).
pub const MSIX_TABLE: usize = bindings::PCI_MSIX_TABLE as usize;

/// MSI-X: offset of the PBA Offset/BIR register (32 bits).
pub const MSIX_PBA: usize = bindings::PCI_MSIX_PBA as usize;

/// Largest number of MSI-X vectors a function can have.
pub const MSIX_MAX_VECTORS: u16 = (bindings::PCI_MSIX_FLAGS_QSIZE + 1) as u16;

/// DVSEC: offset of DVSEC Header 1 (vendor, revision, length) inside the
/// extended capability.
pub const DVSEC_HEADER1: usize = bindings::PCI_DVSEC_HEADER1 as usize;

/// DVSEC: offset of DVSEC Header 2 (DVSEC ID).
pub const DVSEC_HEADER2: usize = bindings::PCI_DVSEC_HEADER2 as usize;

/// PCI vendor ID of Intel, the vendor of the Scalable IOV DVSEC.
pub const INTEL_VENDOR_ID: u16 = bindings::PCI_VENDOR_ID_INTEL as u16;

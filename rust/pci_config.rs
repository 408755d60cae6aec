// SPDX-License-Identifier: GPL-2.0

//! PCI configuration space of an emulated PCI Express function.
//!
//! A [`ConfigSpace`] is the 4 KiB configuration space of a type 0 (endpoint)
//! function, held in memory and accessed the way a guest accesses it through
//! the VFIO config region: [`ConfigSpace::read`] and [`ConfigSpace::write`]
//! of 1, 2 or 4 naturally aligned bytes. Each byte carries its own access
//! rules, fixed when the space is built:
//!
//! - bits in the byte's *write mask* are read-write;
//! - bits in its *write-1-to-clear mask* are cleared by writing 1 (the device
//!   model sets them with [`ConfigSpace::set_bits`]);
//! - every other bit is read-only, and bytes nothing was declared at read as
//!   zero.
//!
//! A guest write becomes `new = (old & !wmask) | (value & wmask)`, then
//! `new &= !(value & w1c)`. Writes the device model has to act on (memory
//! decoding switched, a function-level reset requested, MSI-X enabled...)
//! are reported as a [`ConfigEvent`]; the register file has already been
//! updated when the event is returned.
//!
//! [`ConfigBuilder`] lays the space out: the header with its IDs and BARs,
//! then the capabilities in the order they are added, linked from the
//! capabilities pointer (`0x34`) starting at `0x40`, and extended
//! capabilities linked from `0x100`. Nothing here is specific to one device:
//!
//! ```ignore
//! let space = ConfigBuilder::new(&DeviceIds {
//!     vendor: 0x8086,
//!     device: 0x0b25,
//!     revision: 1,
//!     class: 0x088000,
//!     subsystem_vendor: 0x8086,
//!     subsystem: 0,
//! })?
//! .bar64(0, 0x4000, false)?
//! .power_management()?
//! .pcie_endpoint()?
//! .msix(&MsixLayout {
//!     vectors: 16,
//!     table_bar: 0,
//!     table_offset: 0x2000,
//!     pba_bar: 0,
//!     pba_offset: 0x3000,
//! })?
//! .siov_dvsec(&SiovDvsec {
//!     supported_page_sizes: 1,
//!     system_page_size: 1,
//!     ..SiovDvsec::default()
//! })?
//! .build()?;
//! ```

use kernel::prelude::*;

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
const COMMAND_WMASK: u16 = COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE;

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
const PM_CTRL_STATE: u16 = 0x3;
const PM_SIZE: usize = 8;

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
const EXP_DEVCTL_WMASK: u16 = 0x78ff;
/// Device Control after reset: relaxed ordering and no snoop enabled, max
/// read request size 512 bytes (the values the specification requires).
const EXP_DEVCTL_DEFAULT: u16 = 0x2810;
/// PCI Express Capabilities register: version 2, Endpoint.
const EXP_FLAGS_V2_ENDPOINT: u16 = 0x0002;
/// Size of a version 2 PCI Express capability (through Slot Status 2).
const EXP_SIZE: usize = 0x3c;

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
const MSIX_SIZE: usize = 12;
const MSIX_ENTRY_SIZE: u64 = 16;

/// DVSEC: offset of DVSEC Header 1 (vendor, revision, length) inside the
/// extended capability.
pub const DVSEC_HEADER1: usize = 0x04;
/// DVSEC: offset of DVSEC Header 2 (DVSEC ID).
pub const DVSEC_HEADER2: usize = 0x08;
/// DVSEC: offset of the vendor-defined body.
pub const DVSEC_BODY: usize = 0x0a;
/// Version of the DVSEC extended capability structure.
const DVSEC_VERSION: u32 = 1;

/// PCI vendor ID of Intel, the vendor of the Scalable IOV DVSEC.
pub const INTEL_VENDOR_ID: u16 = 0x8086;
/// DVSEC ID of the Scalable IOV capability.
///
/// The Intel Scalable I/O Virtualization specification (section 3.7)
/// identifies a function that supports SIOV by a DVSEC whose DVSEC vendor
/// ID is [`INTEL_VENDOR_ID`] and whose DVSEC ID is 5, revision 0.
pub const SIOV_DVSEC_ID: u16 = 5;

/// Standard capabilities live between the end of the header and `0x100`.
const CAP_START: usize = 0x40;
const CAP_END: usize = 0x100;
/// Extended capabilities live between `0x100` and the end of the space.
const EXT_CAP_START: usize = 0x100;
/// Upper bound of the length of a capability chain (every capability takes
/// at least 4 bytes), so that a corrupted chain cannot loop forever.
const MAX_CHAIN: usize = CONFIG_SPACE_SIZE / 4;

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

/// What a guest write asks the device model to do.
///
/// A write changes at most one register that has an effect (each such
/// register sits in a different dword), so one event describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigEvent {
    /// Nothing beyond the register update.
    None,
    /// The Command register changed (memory decoding, bus mastering, INTx
    /// disable); the values are the register before and after.
    CommandChanged {
        /// Command before the write.
        old: u16,
        /// Command after the write.
        new: u16,
    },
    /// Initiate Function Level Reset was written as 1. The device model
    /// resets the function, including this space with
    /// [`ConfigSpace::reset`].
    FunctionLevelReset,
    /// MSI-X Enable or Function Mask changed.
    MsixControlChanged {
        /// State before the write.
        old: MsixControl,
        /// State after the write.
        new: MsixControl,
    },
    /// The power state changed (No_Soft_Reset is set, so going back to D0
    /// keeps the function's state).
    PowerStateChanged {
        /// State before the write.
        old: PowerState,
        /// State after the write.
        new: PowerState,
    },
}

/// The access rules and contents of one byte of configuration space.
#[derive(Clone, Copy, Default)]
struct ConfigByte {
    /// Current value.
    value: u8,
    /// Value after reset.
    default: u8,
    /// Bits the guest can write.
    wmask: u8,
    /// Bits the guest clears by writing 1.
    w1c: u8,
}

/// What a Base Address Register slot decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BarSlot {
    /// Nothing: reads as 0, ignores writes.
    Unused,
    /// A 32-bit memory BAR of `size` bytes.
    Mem32 { size: u64 },
    /// The lower half of a 64-bit memory BAR of `size` bytes.
    Mem64 { size: u64 },
    /// The upper half of the 64-bit BAR in the previous slot.
    Upper,
}

/// BAR flag bits: memory space, 64-bit, prefetchable.
const BAR_MEM_64: u32 = 0x4;
const BAR_PREFETCH: u32 = 0x8;
const BAR_FLAGS: u32 = 0xf;

/// Checks the shape of a guest access and returns its offset as an index.
fn check_access(offset: u64, len: usize) -> Result<usize> {
    if !matches!(len, 1 | 2 | 4) {
        return Err(EINVAL);
    }
    let offset = usize::try_from(offset).map_err(|_| EINVAL)?;
    if offset % len != 0
        || offset
            .checked_add(len)
            .is_none_or(|end| end > CONFIG_SPACE_SIZE)
    {
        return Err(EINVAL);
    }
    Ok(offset)
}

/// Whether the access `[offset, offset + len)` touches the byte at `byte`.
fn touches(offset: usize, len: usize, byte: usize) -> bool {
    (offset..offset + len).contains(&byte)
}

/// The configuration space of one emulated PCI Express function.
///
/// # Invariants
///
/// - `regs.len() == CONFIG_SPACE_SIZE`.
/// - `bars` describes the masks of the BAR registers: a `Mem64` slot is
///   followed by an `Upper` slot and `Upper` slots follow `Mem64` slots only.
/// - `pm`, `exp` and `msix`, when set, are the offsets of complete
///   capabilities of that kind, dword aligned, below `0x100`.
pub struct ConfigSpace {
    regs: KVec<ConfigByte>,
    bars: [BarSlot; BAR_COUNT],
    pm: Option<usize>,
    exp: Option<usize>,
    msix: Option<usize>,
}

impl ConfigSpace {
    /// An empty space: every byte reads as zero and is read-only.
    fn new() -> Result<Self> {
        // INVARIANT: `CONFIG_SPACE_SIZE` bytes, no BARs, no capabilities.
        Ok(ConfigSpace {
            regs: KVec::from_elem(ConfigByte::default(), CONFIG_SPACE_SIZE, GFP_KERNEL)?,
            bars: [BarSlot::Unused; BAR_COUNT],
            pm: None,
            exp: None,
            msix: None,
        })
    }

    /// Little-endian value of `len` (at most 4) bytes at `offset`; bytes
    /// outside the space read as zero.
    fn get(&self, offset: usize, len: usize) -> u32 {
        (0..len.min(4)).fold(0, |acc, i| {
            let byte = offset
                .checked_add(i)
                .and_then(|at| self.regs.get(at))
                .map_or(0, |b| b.value);
            acc | (u32::from(byte) << (8 * i))
        })
    }

    /// The 16-bit register at `offset`.
    fn get16(&self, offset: usize) -> u16 {
        // `get` of 2 bytes fits in 16 bits.
        self.get(offset, 2) as u16
    }

    /// Declares `len` bytes at `offset`: value (also the reset value), write
    /// mask and write-1-to-clear mask, little-endian.
    fn init(&mut self, offset: usize, len: usize, value: u32, wmask: u32, w1c: u32) -> Result {
        for i in 0..len.min(4) {
            let at = offset.checked_add(i).ok_or(EINVAL)?;
            let b = self.regs.get_mut(at).ok_or(EINVAL)?;
            let shift = 8 * i;
            *b = ConfigByte {
                value: (value >> shift) as u8,
                default: (value >> shift) as u8,
                wmask: (wmask >> shift) as u8,
                w1c: (w1c >> shift) as u8,
            };
        }
        Ok(())
    }

    /// Reads `len` (1, 2 or 4) bytes at `offset`, as the guest sees them.
    ///
    /// Returns `EINVAL` for another length, a misaligned access or one past
    /// the end of the space.
    pub fn read(&self, offset: u64, len: usize) -> Result<u32> {
        let offset = check_access(offset, len)?;
        Ok(self.get(offset, len))
    }

    /// Writes the low `len` (1, 2 or 4) bytes of `value` at `offset`, as the
    /// guest does, and returns what the device model has to do about it.
    ///
    /// Read-only bits keep their value, write-1-to-clear bits written as 1
    /// are cleared. Returns `EINVAL` for another length, a misaligned access
    /// or one past the end of the space; nothing is written then.
    pub fn write(&mut self, offset: u64, len: usize, value: u32) -> Result<ConfigEvent> {
        let offset = check_access(offset, len)?;
        let old_command = self.command();
        let old_msix = self.msix_control();
        let old_power = self.power_state();
        let old_pmcsr = self.pm.map(|pm| self.get16(pm + PM_CTRL));

        for i in 0..len {
            let Some(b) = self.regs.get_mut(offset + i) else {
                continue;
            };
            let v = (value >> (8 * i)) as u8;
            b.value = (b.value & !b.wmask) | (v & b.wmask);
            b.value &= !(v & b.w1c);
        }

        // D1 and D2 are not supported: a write asking for them completes but
        // leaves the power state as it was.
        if let (Some(pm), Some(old)) = (self.pm, old_pmcsr) {
            let ctrl = pm + PM_CTRL;
            if touches(offset, len, ctrl) && matches!(self.get16(ctrl) & PM_CTRL_STATE, 1 | 2) {
                if let Some(b) = self.regs.get_mut(ctrl) {
                    b.value =
                        (b.value & !(PM_CTRL_STATE as u8)) | (old as u8 & PM_CTRL_STATE as u8);
                }
            }
        }

        // Initiate FLR is not stored (it has no bit in the write mask), so it
        // reads as 0; it is seen in the written value.
        if let Some(exp) = self.exp {
            let flr_byte = exp + EXP_DEVCTL + 1;
            if touches(offset, len, flr_byte) {
                let written = (value >> (8 * (flr_byte - offset))) as u8;
                if written & (EXP_DEVCTL_FLR >> 8) as u8 != 0 {
                    return Ok(ConfigEvent::FunctionLevelReset);
                }
            }
        }

        let new_command = self.command();
        if new_command != old_command {
            return Ok(ConfigEvent::CommandChanged {
                old: old_command,
                new: new_command,
            });
        }
        if let (Some(old), Some(new)) = (old_msix, self.msix_control()) {
            if old != new {
                return Ok(ConfigEvent::MsixControlChanged { old, new });
            }
        }
        let new_power = self.power_state();
        if new_power != old_power {
            return Ok(ConfigEvent::PowerStateChanged {
                old: old_power,
                new: new_power,
            });
        }
        Ok(ConfigEvent::None)
    }

    /// Sets `bits` in the `len` bytes at `offset`, as the device does when
    /// it reports a status (error bits the guest then clears by writing 1).
    ///
    /// Ignores the guest's write masks. Returns `EINVAL` for an access
    /// [`ConfigSpace::read`] would refuse.
    pub fn set_bits(&mut self, offset: u64, len: usize, bits: u32) -> Result {
        let offset = check_access(offset, len)?;
        for i in 0..len {
            if let Some(b) = self.regs.get_mut(offset + i) {
                b.value |= (bits >> (8 * i)) as u8;
            }
        }
        Ok(())
    }

    /// Returns every register to its power-on value (for a function-level
    /// reset or `VFIO_DEVICE_RESET`).
    pub fn reset(&mut self) {
        for b in self.regs.iter_mut() {
            b.value = b.default;
        }
    }

    /// The Command register.
    pub fn command(&self) -> u16 {
        self.get16(COMMAND)
    }

    /// Whether the guest enabled memory space decoding (the BARs).
    pub fn memory_enabled(&self) -> bool {
        self.command() & COMMAND_MEMORY != 0
    }

    /// Whether the guest enabled bus mastering (DMA and MSI-X messages).
    pub fn bus_master_enabled(&self) -> bool {
        self.command() & COMMAND_BUS_MASTER != 0
    }

    /// The address the guest programmed into BAR `n`, without its flag bits.
    ///
    /// For a 64-bit BAR, `n` is its lower slot and both halves are combined.
    /// Returns 0 for an unused BAR, the upper slot of a 64-bit BAR and
    /// `n >= 6`.
    pub fn bar_address(&self, n: usize) -> u64 {
        // `n` < 6 in both arms: `reg` cannot overflow.
        match self.bars.get(n) {
            Some(BarSlot::Mem32 { .. }) => u64::from(self.get(BAR0 + 4 * n, 4) & !BAR_FLAGS),
            Some(BarSlot::Mem64 { .. }) => {
                let reg = BAR0 + 4 * n;
                u64::from(self.get(reg, 4) & !BAR_FLAGS) | (u64::from(self.get(reg + 4, 4)) << 32)
            }
            _ => 0,
        }
    }

    /// Size in bytes of BAR `n`; 0 where [`ConfigSpace::bar_address`] is 0
    /// by definition.
    pub fn bar_size(&self, n: usize) -> u64 {
        match self.bars.get(n) {
            Some(BarSlot::Mem32 { size } | BarSlot::Mem64 { size }) => *size,
            _ => 0,
        }
    }

    /// The MSI-X Message Control state, if the function has MSI-X.
    pub fn msix_control(&self) -> Option<MsixControl> {
        self.msix.map(|msix| {
            let flags = self.get16(msix + MSIX_FLAGS);
            MsixControl {
                enabled: flags & MSIX_FLAGS_ENABLE != 0,
                function_masked: flags & MSIX_FLAGS_MASKALL != 0,
            }
        })
    }

    /// Whether the guest enabled MSI-X.
    pub fn msix_enabled(&self) -> bool {
        self.msix_control().is_some_and(|c| c.enabled)
    }

    /// Whether the guest masked all MSI-X vectors with the Function Mask.
    pub fn msix_function_masked(&self) -> bool {
        self.msix_control().is_some_and(|c| c.function_masked)
    }

    /// The power state the guest set; [`PowerState::D0`] without a PM
    /// capability.
    pub fn power_state(&self) -> PowerState {
        match self.pm.map(|pm| self.get16(pm + PM_CTRL) & PM_CTRL_STATE) {
            Some(3) => PowerState::D3Hot,
            _ => PowerState::D0,
        }
    }

    /// Offset of the first capability with ID `id` in the chain starting at
    /// the capabilities pointer.
    pub fn find_capability(&self, id: u8) -> Option<usize> {
        let mut at = usize::from(self.get(CAPABILITIES_POINTER, 1) as u8 & !3);
        for _ in 0..MAX_CHAIN {
            if at < CAP_START {
                return None;
            }
            if self.get(at, 1) as u8 == id {
                return Some(at);
            }
            at = usize::from(self.get(at + 1, 1) as u8 & !3);
        }
        None
    }

    /// Offset of the first extended capability with ID `id` in the chain
    /// starting at `0x100`.
    pub fn find_extended_capability(&self, id: u16) -> Option<usize> {
        let mut at = EXT_CAP_START;
        for _ in 0..MAX_CHAIN {
            let header = self.get(at, 4);
            if header == 0 {
                return None;
            }
            if header as u16 == id {
                return Some(at);
            }
            at = (header >> 20) as usize & !3;
            if at < EXT_CAP_START {
                return None;
            }
        }
        None
    }
}

/// Lays out a [`ConfigSpace`]: header, BARs and capabilities.
///
/// Methods consume the builder and return it, so a layout reads as one
/// chain of `?`. Capabilities are placed in the order they are added.
///
/// # Invariants
///
/// - `next_cap` and `next_ext` are dword aligned, in `0x40..=0x100` and
///   `0x100..=0x1000`.
/// - `cap_link` is the offset of the byte that links the next standard
///   capability (the capabilities pointer or the last capability's next
///   pointer); `ext_link`, when set, is the offset of the last extended
///   capability's header.
pub struct ConfigBuilder {
    space: ConfigSpace,
    next_cap: usize,
    cap_link: usize,
    next_ext: usize,
    ext_link: Option<usize>,
    msix: Option<MsixLayout>,
}

impl ConfigBuilder {
    /// Starts a type 0 header with the identity `ids`, no BARs and no
    /// capabilities.
    ///
    /// The Command register's Memory Space Enable, Bus Master Enable and
    /// Interrupt Disable bits are writable; the Status error bits are
    /// write-1-to-clear; Cache Line Size and Interrupt Line are writable
    /// scratch registers; the Interrupt Pin is 0 (no INTx). Returns `EINVAL`
    /// if `ids.class` does not fit in 24 bits.
    pub fn new(ids: &DeviceIds) -> Result<Self> {
        if ids.class > 0xff_ffff {
            return Err(EINVAL);
        }
        let mut space = ConfigSpace::new()?;
        space.init(VENDOR_ID, 2, ids.vendor.into(), 0, 0)?;
        space.init(DEVICE_ID, 2, ids.device.into(), 0, 0)?;
        space.init(COMMAND, 2, 0, COMMAND_WMASK.into(), 0)?;
        space.init(STATUS, 2, 0, 0, STATUS_ERRORS.into())?;
        space.init(REVISION_ID, 1, ids.revision.into(), 0, 0)?;
        space.init(CLASS_CODE, 3, ids.class, 0, 0)?;
        space.init(CACHE_LINE_SIZE, 1, 0, 0xff, 0)?;
        space.init(HEADER_TYPE, 1, 0, 0, 0)?;
        space.init(SUBSYSTEM_VENDOR_ID, 2, ids.subsystem_vendor.into(), 0, 0)?;
        space.init(SUBSYSTEM_ID, 2, ids.subsystem.into(), 0, 0)?;
        space.init(INTERRUPT_LINE, 1, 0, 0xff, 0)?;
        space.init(INTERRUPT_PIN, 1, 0, 0, 0)?;
        // INVARIANT: no capability yet; the next one is linked from the
        // capabilities pointer.
        Ok(ConfigBuilder {
            space,
            next_cap: CAP_START,
            cap_link: CAPABILITIES_POINTER,
            next_ext: EXT_CAP_START,
            ext_link: None,
            msix: None,
        })
    }

    /// Declares BAR `n` as a 32-bit memory BAR of `size` bytes.
    ///
    /// `size` is a power of two from 16 bytes to 2 GiB. Returns `EINVAL`
    /// for another size, `n >= 6` or a slot already in use.
    pub fn bar32(mut self, n: usize, size: u64, prefetchable: bool) -> Result<Self> {
        if !size.is_power_of_two() || !(16..=1 << 31).contains(&size) {
            return Err(EINVAL);
        }
        let slot = self.space.bars.get_mut(n).ok_or(EINVAL)?;
        if *slot != BarSlot::Unused {
            return Err(EINVAL);
        }
        *slot = BarSlot::Mem32 { size };
        let flags = if prefetchable { BAR_PREFETCH } else { 0 };
        // `size` <= 2^31: the mask fits in 32 bits.
        let mask = !((size - 1) as u32) & !BAR_FLAGS;
        self.space.init(BAR0 + 4 * n, 4, flags, mask, 0)?;
        Ok(self)
    }

    /// Declares BARs `n` and `n + 1` as one 64-bit memory BAR of `size`
    /// bytes; slot `n + 1` holds the upper half of the address.
    ///
    /// `size` is a power of two of at least 16 bytes and at most 2^63.
    /// Returns `EINVAL` for another size, `n >= 5` or a slot already in use.
    pub fn bar64(mut self, n: usize, size: u64, prefetchable: bool) -> Result<Self> {
        if !size.is_power_of_two() || size < 16 {
            return Err(EINVAL);
        }
        let upper = n.checked_add(1).ok_or(EINVAL)?;
        if self.space.bars.get(n) != Some(&BarSlot::Unused)
            || self.space.bars.get(upper) != Some(&BarSlot::Unused)
        {
            return Err(EINVAL);
        }
        let mask = !(size - 1);
        let flags = BAR_MEM_64 | if prefetchable { BAR_PREFETCH } else { 0 };
        self.space
            .init(BAR0 + 4 * n, 4, flags, mask as u32 & !BAR_FLAGS, 0)?;
        self.space
            .init(BAR0 + 4 * upper, 4, 0, (mask >> 32) as u32, 0)?;
        if let Some(slot) = self.space.bars.get_mut(n) {
            *slot = BarSlot::Mem64 { size };
        }
        if let Some(slot) = self.space.bars.get_mut(upper) {
            *slot = BarSlot::Upper;
        }
        Ok(self)
    }

    /// Places a standard capability of `size` bytes with ID `id` at the end
    /// of the chain and returns its offset.
    fn add_capability(&mut self, id: u8, size: usize) -> Result<usize> {
        let at = self.next_cap;
        let end = at.checked_add(size).ok_or(ENOSPC)?;
        if end > CAP_END {
            return Err(ENOSPC);
        }
        self.space.init(at, 2, id.into(), 0, 0)?;
        // `at` < 0x100.
        self.space.init(self.cap_link, 1, at as u32, 0, 0)?;
        if self.cap_link == CAPABILITIES_POINTER {
            self.space
                .init(STATUS, 2, STATUS_CAP_LIST.into(), 0, STATUS_ERRORS.into())?;
        }
        // INVARIANT: `end` <= 0x100, rounded up to a dword stays <= 0x100.
        self.cap_link = at + 1;
        self.next_cap = end.next_multiple_of(4);
        Ok(at)
    }

    /// Adds the PCI Power Management capability, version 3: D0 and D3hot
    /// (the PMCSR power state is writable, requests for D1 and D2 are
    /// ignored), No_Soft_Reset set, no PME.
    ///
    /// Returns `EINVAL` if the function already has one, `ENOSPC` if it
    /// does not fit below `0x100`.
    pub fn power_management(mut self) -> Result<Self> {
        if self.space.pm.is_some() {
            return Err(EINVAL);
        }
        let at = self.add_capability(CAP_ID_PM, PM_SIZE)?;
        self.space.init(at + PM_PMC, 2, 3, 0, 0)?;
        self.space.init(
            at + PM_CTRL,
            2,
            PM_CTRL_NO_SOFT_RESET.into(),
            PM_CTRL_STATE.into(),
            0,
        )?;
        self.space.pm = Some(at);
        Ok(self)
    }

    /// Adds the PCI Express capability, version 2, of an Endpoint.
    ///
    /// Device Capabilities: 128-byte max payload, role-based error
    /// reporting, FLR capable. Device Control: error reporting enables,
    /// relaxed ordering, max payload size, no snoop and max read request
    /// size writable; Initiate FLR reads 0 and is reported as
    /// [`ConfigEvent::FunctionLevelReset`]. Device Status: error bits
    /// write-1-to-clear. Link and slot registers are zero.
    ///
    /// Returns `EINVAL` if the function already has one, `ENOSPC` if it
    /// does not fit below `0x100`.
    pub fn pcie_endpoint(mut self) -> Result<Self> {
        if self.space.exp.is_some() {
            return Err(EINVAL);
        }
        let at = self.add_capability(CAP_ID_EXP, EXP_SIZE)?;
        self.space
            .init(at + 2, 2, EXP_FLAGS_V2_ENDPOINT.into(), 0, 0)?;
        self.space
            .init(at + EXP_DEVCAP, 4, EXP_DEVCAP_RBER | EXP_DEVCAP_FLR, 0, 0)?;
        self.space.init(
            at + EXP_DEVCTL,
            2,
            EXP_DEVCTL_DEFAULT.into(),
            EXP_DEVCTL_WMASK.into(),
            0,
        )?;
        self.space
            .init(at + EXP_DEVSTA, 2, 0, 0, EXP_DEVSTA_ERRORS.into())?;
        self.space.exp = Some(at);
        Ok(self)
    }

    /// Adds the MSI-X capability for `layout`. MSI-X Enable and Function
    /// Mask are writable, both clear at reset.
    ///
    /// The table and PBA must lie inside memory BARs declared by the time
    /// [`ConfigBuilder::build`] runs, which checks them. Returns `EINVAL`
    /// for a vector count outside `1..=2048`, a BAR indicator above 5 or a
    /// misaligned offset, or if the function already has MSI-X; `ENOSPC` if
    /// it does not fit below `0x100`.
    pub fn msix(mut self, layout: &MsixLayout) -> Result<Self> {
        if self.space.msix.is_some()
            || !(1..=MSIX_MAX_VECTORS).contains(&layout.vectors)
            || usize::from(layout.table_bar) >= BAR_COUNT
            || usize::from(layout.pba_bar) >= BAR_COUNT
            || layout.table_offset % 8 != 0
            || layout.pba_offset % 8 != 0
        {
            return Err(EINVAL);
        }
        let at = self.add_capability(CAP_ID_MSIX, MSIX_SIZE)?;
        let table_size = u32::from(layout.vectors - 1);
        let wmask = MSIX_FLAGS_ENABLE | MSIX_FLAGS_MASKALL;
        self.space
            .init(at + MSIX_FLAGS, 2, table_size, wmask.into(), 0)?;
        let table = layout.table_offset | u32::from(layout.table_bar);
        self.space.init(at + MSIX_TABLE, 4, table, 0, 0)?;
        let pba = layout.pba_offset | u32::from(layout.pba_bar);
        self.space.init(at + MSIX_PBA, 4, pba, 0, 0)?;
        self.space.msix = Some(at);
        self.msix = Some(*layout);
        Ok(self)
    }

    /// Adds a Designated Vendor-Specific Extended Capability with
    /// read-only body `body` (the bytes after DVSEC Header 2).
    ///
    /// `vendor` is the DVSEC Vendor ID (the vendor that defined the
    /// structure), `id` the DVSEC ID and `revision` (4 bits) the DVSEC
    /// revision. Returns `EINVAL` for a revision above 15, `ENOSPC` if the
    /// capability does not fit in the extended space.
    pub fn add_dvsec(self, vendor: u16, id: u16, revision: u8, body: &[u8]) -> Result<Self> {
        self.add_dvsec_masked(vendor, id, revision, body, &[])
    }

    /// Like [`ConfigBuilder::add_dvsec`], with the body's byte `i` writable
    /// in the bits of `wmask[i]`; bytes past the end of `wmask` are
    /// read-only. Returns `EINVAL` if `wmask` is longer than `body`.
    pub fn add_dvsec_masked(
        mut self,
        vendor: u16,
        id: u16,
        revision: u8,
        body: &[u8],
        wmask: &[u8],
    ) -> Result<Self> {
        if revision > 0xf || wmask.len() > body.len() {
            return Err(EINVAL);
        }
        let len = DVSEC_BODY.checked_add(body.len()).ok_or(ENOSPC)?;
        let at = self.next_ext;
        let end = at.checked_add(len).ok_or(ENOSPC)?;
        // The DVSEC Length field has 12 bits; the space ends at 4 KiB anyway.
        if end > CONFIG_SPACE_SIZE {
            return Err(ENOSPC);
        }
        let header = u32::from(EXT_CAP_ID_DVSEC) | (DVSEC_VERSION << 16);
        self.space.init(at, 4, header, 0, 0)?;
        // `len` < 0x1000 fits the 12-bit length field.
        let header1 = u32::from(vendor) | (u32::from(revision) << 16) | ((len as u32) << 20);
        self.space.init(at + DVSEC_HEADER1, 4, header1, 0, 0)?;
        self.space.init(at + DVSEC_HEADER2, 2, id.into(), 0, 0)?;
        for (i, &byte) in body.iter().enumerate() {
            let mask = wmask.get(i).copied().unwrap_or(0);
            self.space
                .init(at + DVSEC_BODY + i, 1, byte.into(), mask.into(), 0)?;
        }
        if let Some(prev) = self.ext_link {
            let linked = self.space.get(prev, 4) | ((at as u32) << 20);
            self.space.init(prev, 4, linked, 0, 0)?;
        }
        // INVARIANT: `end` <= 0x1000, rounded up to a dword stays <= 0x1000.
        self.ext_link = Some(at);
        self.next_ext = end.next_multiple_of(4);
        Ok(self)
    }

    /// Adds the Intel Scalable IOV DVSEC ([`SIOV_DVSEC_ID`], revision 0)
    /// with the fields of `siov`; System Page Size is writable in the bits
    /// of Supported Page Sizes.
    pub fn siov_dvsec(self, siov: &SiovDvsec) -> Result<Self> {
        let mut body = [0u8; 14];
        let mut wmask = [0u8; 14];
        body[0] = siov.flags;
        body[1] = siov.function_dependency_link;
        body[2..6].copy_from_slice(&siov.supported_page_sizes.to_le_bytes());
        body[6..10].copy_from_slice(&siov.system_page_size.to_le_bytes());
        body[10..14].copy_from_slice(&siov.capabilities.to_le_bytes());
        wmask[6..10].copy_from_slice(&siov.supported_page_sizes.to_le_bytes());
        self.add_dvsec_masked(INTEL_VENDOR_ID, SIOV_DVSEC_ID, 0, &body, &wmask)
    }

    /// Whether `len` bytes at `offset` lie inside memory BAR `bar`.
    fn in_bar(&self, bar: u8, offset: u32, len: u64) -> bool {
        let size = self.space.bar_size(bar.into());
        size != 0 && u64::from(offset) + len <= size
    }

    /// Finishes the layout; the values laid out become the reset values.
    ///
    /// Returns `EINVAL` if the MSI-X table or PBA does not lie inside a
    /// declared memory BAR, or if they overlap.
    pub fn build(mut self) -> Result<ConfigSpace> {
        if let Some(m) = self.msix {
            let table_len = u64::from(m.vectors) * MSIX_ENTRY_SIZE;
            let pba_len = u64::from(m.vectors).div_ceil(64) * 8;
            let overlap = m.table_bar == m.pba_bar
                && u64::from(m.table_offset) < u64::from(m.pba_offset) + pba_len
                && u64::from(m.pba_offset) < u64::from(m.table_offset) + table_len;
            if !self.in_bar(m.table_bar, m.table_offset, table_len)
                || !self.in_bar(m.pba_bar, m.pba_offset, pba_len)
                || overlap
            {
                return Err(EINVAL);
            }
        }
        for b in self.space.regs.iter_mut() {
            b.default = b.value;
        }
        Ok(self.space)
    }
}

#[cfg(vdcm_kunit)]
#[kunit_tests(vdcm_pci_config)]
mod tests {
    use super::*;

    const IDS: DeviceIds = DeviceIds {
        vendor: 0x1af4,
        device: 0x10f7,
        revision: 0x02,
        class: 0x12_3456,
        subsystem_vendor: 0x1af4,
        subsystem: 0x0042,
    };

    const MSIX: MsixLayout = MsixLayout {
        vectors: 8,
        table_bar: 0,
        table_offset: 0x2000,
        pba_bar: 0,
        pba_offset: 0x3000,
    };

    /// BAR0: 64-bit, 16 KiB; BAR2: 32-bit prefetchable, 4 KiB; BAR4 unused.
    fn full() -> Result<ConfigSpace> {
        ConfigBuilder::new(&IDS)?
            .bar64(0, 0x4000, false)?
            .bar32(2, 0x1000, true)?
            .power_management()?
            .pcie_endpoint()?
            .msix(&MSIX)?
            .siov_dvsec(&SiovDvsec {
                flags: 1,
                function_dependency_link: 0,
                supported_page_sizes: 0x553,
                system_page_size: 1,
                capabilities: 1,
            })?
            .build()
    }

    fn cap(c: &ConfigSpace, id: u8) -> Result<u64> {
        c.find_capability(id).map(|at| at as u64).ok_or(ENOENT)
    }

    #[test]
    fn ids_and_class_read_back() -> Result {
        let c = full()?;
        assert_eq!(c.read(0x00, 2)?, 0x1af4);
        assert_eq!(c.read(0x02, 2)?, 0x10f7);
        assert_eq!(c.read(0x00, 4)?, 0x10f7_1af4);
        assert_eq!(c.read(0x08, 4)?, 0x1234_5602);
        assert_eq!(c.read(0x09, 1)?, 0x56);
        assert_eq!(c.read(0x0b, 1)?, 0x12);
        assert_eq!(c.read(0x2c, 4)?, 0x0042_1af4);
        assert_eq!(c.read(0x0e, 1)?, 0);
        assert_eq!(c.read(0x3d, 1)?, 0);
        // Unimplemented space reads as zero.
        assert_eq!(c.read(0x28, 4)?, 0);
        assert_eq!(c.read(0xffc, 4)?, 0);
        assert_eq!(
            ConfigBuilder::new(&DeviceIds {
                class: 0x100_0000,
                ..IDS
            })
            .err(),
            Some(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn read_only_writes_are_ignored() -> Result {
        let mut c = full()?;
        let before_ptr = c.read(0x34, 1)?;
        for offset in [0x00, 0x08, 0x0c, 0x2c, 0x34, 0x3c, 0x800] {
            let before = c.read(offset, 4)?;
            assert_eq!(c.write(offset, 4, 0xffff_ffff)?, ConfigEvent::None);
            let after = c.read(offset, 4)?;
            match offset {
                // Cache Line Size and Interrupt Line are scratch registers.
                0x0c => assert_eq!(after, before | 0xff),
                0x3c => assert_eq!(after, before | 0xff),
                _ => assert_eq!(after, before),
            }
        }
        assert_eq!(c.read(0x34, 1)?, before_ptr);
        assert_eq!(c.read(0x3d, 1)?, 0);
        // Capability IDs and next pointers are read-only.
        let pm = cap(&c, CAP_ID_PM)?;
        let hdr = c.read(pm, 2)?;
        c.write(pm, 2, 0)?;
        assert_eq!(c.read(pm, 2)?, hdr);
        Ok(())
    }

    #[test]
    fn command_writes_only_rw_bits() -> Result {
        let mut c = full()?;
        assert!(!c.memory_enabled() && !c.bus_master_enabled());
        assert_eq!(
            c.write(0x04, 2, 0xffff)?,
            ConfigEvent::CommandChanged {
                old: 0,
                new: 0x0406
            }
        );
        assert_eq!(c.read(0x04, 2)?, 0x0406);
        assert!(c.memory_enabled() && c.bus_master_enabled());
        // Same value again: no event. A byte write of the low half.
        assert_eq!(c.write(0x04, 2, 0x0406)?, ConfigEvent::None);
        assert_eq!(
            c.write(0x04, 1, 0x02)?,
            ConfigEvent::CommandChanged {
                old: 0x0406,
                new: 0x0402
            }
        );
        assert!(c.memory_enabled() && !c.bus_master_enabled());
        Ok(())
    }

    #[test]
    fn status_errors_are_w1c() -> Result {
        let mut c = full()?;
        assert_eq!(c.read(0x06, 2)?, u32::from(STATUS_CAP_LIST));
        c.set_bits(0x06, 2, 0x3000)?;
        assert_eq!(c.read(0x06, 2)?, 0x3010);
        // Writing 0 keeps them, writing 1 clears only that bit; the
        // capabilities-list bit is read-only.
        c.write(0x06, 2, 0)?;
        assert_eq!(c.read(0x06, 2)?, 0x3010);
        c.write(0x06, 2, 0x1010)?;
        assert_eq!(c.read(0x06, 2)?, 0x2010);
        // A dword write to Command/Status clears too.
        c.write(0x04, 4, 0xffff_0000)?;
        assert_eq!(c.read(0x06, 2)?, 0x0010);
        // Without capabilities the bit is clear.
        let bare = ConfigBuilder::new(&IDS)?.build()?;
        assert_eq!(bare.read(0x06, 2)?, 0);
        assert_eq!(bare.read(0x34, 1)?, 0);
        Ok(())
    }

    #[test]
    fn bar32_sizing() -> Result {
        let mut c = full()?;
        // BAR2: 4 KiB, prefetchable.
        assert_eq!(c.read(0x18, 4)?, 0x8);
        c.write(0x18, 4, 0xffff_ffff)?;
        assert_eq!(c.read(0x18, 4)?, 0xffff_f008);
        assert_eq!(c.bar_size(2), 0x1000);
        c.write(0x18, 4, 0xfebf_1234)?;
        assert_eq!(c.read(0x18, 4)?, 0xfebf_1008);
        assert_eq!(c.bar_address(2), 0xfebf_1000);
        // Unused BARs read as 0 and ignore writes.
        for n in [4u64, 5] {
            c.write(0x10 + 4 * n, 4, 0xffff_ffff)?;
            assert_eq!(c.read(0x10 + 4 * n, 4)?, 0);
            assert_eq!(c.bar_address(n as usize), 0);
        }
        Ok(())
    }

    #[test]
    fn bar64_sizing_both_halves() -> Result {
        let mut c = full()?;
        // BAR0/1: 16 KiB, 64-bit, not prefetchable.
        assert_eq!(c.read(0x10, 4)?, 0x4);
        c.write(0x10, 4, 0xffff_ffff)?;
        c.write(0x14, 4, 0xffff_ffff)?;
        assert_eq!(c.read(0x10, 4)?, 0xffff_c004);
        assert_eq!(c.read(0x14, 4)?, 0xffff_ffff);
        // A BAR above 4 GiB: the upper dword is writable only above the size.
        let mut big = ConfigBuilder::new(&IDS)?.bar64(2, 1 << 34, true)?.build()?;
        big.write(0x18, 4, 0xffff_ffff)?;
        big.write(0x1c, 4, 0xffff_ffff)?;
        assert_eq!(big.read(0x18, 4)?, 0x0000_000c);
        assert_eq!(big.read(0x1c, 4)?, 0xffff_fffc);
        assert_eq!(big.bar_size(2), 1 << 34);
        assert_eq!(big.bar_size(3), 0);
        Ok(())
    }

    #[test]
    fn bar_address_round_trip() -> Result {
        let mut c = full()?;
        c.write(0x10, 4, 0xfe00_4000)?;
        c.write(0x14, 4, 0x0000_0038)?;
        assert_eq!(c.bar_address(0), 0x38_fe00_4000);
        // The upper slot is not a BAR of its own.
        assert_eq!(c.bar_address(1), 0);
        // Address bits below the size are hardwired to 0.
        c.write(0x10, 2, 0x1230)?;
        assert_eq!(c.bar_address(0), 0x38_fe00_0000);
        assert_eq!(c.bar_address(6), 0);
        Ok(())
    }

    #[test]
    fn bad_bars_are_refused() -> Result {
        let b = || ConfigBuilder::new(&IDS);
        assert_eq!(b()?.bar32(0, 8, false).err(), Some(EINVAL));
        assert_eq!(b()?.bar32(0, 0x3000, false).err(), Some(EINVAL));
        assert_eq!(b()?.bar32(0, 1 << 32, false).err(), Some(EINVAL));
        assert_eq!(b()?.bar32(6, 0x1000, false).err(), Some(EINVAL));
        assert_eq!(b()?.bar64(5, 0x1000, false).err(), Some(EINVAL));
        assert_eq!(
            b()?.bar64(0, 0x1000, false)?.bar32(1, 0x1000, false).err(),
            Some(EINVAL)
        );
        assert_eq!(
            b()?.bar32(1, 0x1000, false)?.bar64(0, 0x1000, false).err(),
            Some(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn capability_chain() -> Result {
        let c = full()?;
        let mut at = c.read(0x34, 1)?;
        assert_eq!(at, 0x40);
        let mut ids = KVec::new();
        while at != 0 {
            assert!((0x40..0x100).contains(&at) && at % 4 == 0);
            ids.push(c.read(at.into(), 1)?, GFP_KERNEL)?;
            at = c.read(u64::from(at) + 1, 1)?;
            assert!(ids.len() <= 3);
        }
        assert_eq!(&ids[..], &[0x01, 0x10, 0x11]);
        // PM: version 3, D0, No_Soft_Reset.
        let pm = cap(&c, CAP_ID_PM)?;
        assert_eq!(c.read(pm + 2, 2)? & 7, 3);
        assert_eq!(c.read(pm + 4, 2)?, 0x0008);
        // PCIe: v2 endpoint, FLR capable.
        let exp = cap(&c, CAP_ID_EXP)?;
        assert_eq!(c.read(exp + 2, 2)?, 0x0002);
        assert_ne!(c.read(exp + 4, 4)? & (1 << 28), 0);
        // MSI-X: table size N-1, BIR/offsets.
        let msix = cap(&c, CAP_ID_MSIX)?;
        assert_eq!(c.read(msix + 2, 2)?, 7);
        assert_eq!(c.read(msix + 4, 4)?, 0x2000);
        assert_eq!(c.read(msix + 8, 4)?, 0x3000);
        Ok(())
    }

    #[test]
    fn dvsec_at_0x100() -> Result {
        let mut c = full()?;
        let header = c.read(0x100, 4)?;
        assert_eq!(header & 0xffff, 0x0023);
        assert_eq!((header >> 16) & 0xf, 1);
        assert_eq!(header >> 20, 0);
        assert_eq!(c.read(0x104, 4)?, 0x8086 | (24 << 20));
        assert_eq!(c.read(0x108, 2)?, 5);
        assert_eq!(c.read(0x10a, 1)?, 1);
        assert_eq!(c.read(0x10c, 4)?, 0x553);
        assert_eq!(c.read(0x114, 4)?, 1);
        assert_eq!(c.find_extended_capability(EXT_CAP_ID_DVSEC), Some(0x100));
        // System Page Size is writable in the supported bits only; the rest
        // of the DVSEC is read-only.
        c.write(0x110, 4, 0xffff_ffff)?;
        assert_eq!(c.read(0x110, 4)?, 0x553);
        c.write(0x104, 4, 0)?;
        assert_eq!(c.read(0x104, 4)?, 0x8086 | (24 << 20));
        // A second DVSEC is linked from the first.
        let two = ConfigBuilder::new(&IDS)?
            .add_dvsec(0x1234, 7, 1, &[0xaa, 0xbb])?
            .add_dvsec(0x5678, 9, 0, &[])?
            .build()?;
        assert_eq!(two.read(0x100, 4)? >> 20, 0x10c);
        assert_eq!(two.read(0x104, 4)?, 0x1234 | (1 << 16) | (12 << 20));
        assert_eq!(two.read(0x10a, 2)?, 0xbbaa);
        assert_eq!(two.read(0x10c, 4)? >> 20, 0);
        assert_eq!(two.read(0x114, 2)?, 9);
        Ok(())
    }

    #[test]
    fn flr_is_reported_and_reads_zero() -> Result {
        let mut c = full()?;
        let devctl = cap(&c, CAP_ID_EXP)? + 8;
        assert_eq!(c.read(devctl, 2)?, 0x2810);
        assert_eq!(
            c.write(devctl, 2, 0x8000 | 0x2810)?,
            ConfigEvent::FunctionLevelReset
        );
        assert_eq!(c.read(devctl, 2)? & 0x8000, 0);
        // A byte write of the upper half, and a dword write, report it too.
        assert_eq!(
            c.write(devctl + 1, 1, 0x80)?,
            ConfigEvent::FunctionLevelReset
        );
        assert_eq!(c.write(devctl, 4, 0x8000)?, ConfigEvent::FunctionLevelReset);
        assert_eq!(c.write(devctl, 2, 0x0001)?, ConfigEvent::None);
        // Only the writable Device Control bits stick.
        c.write(devctl, 2, 0xffff)?;
        assert_eq!(c.read(devctl, 2)?, 0x78ff);
        // Device Status errors are write-1-to-clear.
        c.set_bits(devctl + 2, 2, 0x5)?;
        c.write(devctl + 2, 2, 0x1)?;
        assert_eq!(c.read(devctl + 2, 2)?, 0x4);
        Ok(())
    }

    #[test]
    fn msix_enable_and_function_mask() -> Result {
        let mut c = full()?;
        let flags = cap(&c, CAP_ID_MSIX)? + 2;
        assert!(!c.msix_enabled() && !c.msix_function_masked());
        let off = MsixControl::default();
        let on = MsixControl {
            enabled: true,
            function_masked: true,
        };
        assert_eq!(
            c.write(flags, 2, 0xffff)?,
            ConfigEvent::MsixControlChanged { old: off, new: on }
        );
        // The table size is read-only.
        assert_eq!(c.read(flags, 2)?, 0xc007);
        c.write(flags, 1, 0)?;
        assert_eq!(c.read(flags, 2)?, 0xc007);
        assert!(c.msix_enabled() && c.msix_function_masked());
        assert_eq!(
            c.write(flags + 1, 1, 0x80)?,
            ConfigEvent::MsixControlChanged {
                old: on,
                new: MsixControl {
                    enabled: true,
                    function_masked: false
                }
            }
        );
        assert!(c.msix_enabled() && !c.msix_function_masked());
        assert_eq!(c.write(flags, 2, 0x8000)?, ConfigEvent::None);
        // MSI-X outside its BAR, or with no BAR, is refused at build time.
        let b = || ConfigBuilder::new(&IDS);
        assert_eq!(
            b()?.bar32(0, 0x1000, false)?.msix(&MSIX)?.build().err(),
            Some(EINVAL)
        );
        assert_eq!(b()?.msix(&MSIX)?.build().err(), Some(EINVAL));
        let overlapping = MsixLayout {
            pba_offset: 0x2070,
            ..MSIX
        };
        assert_eq!(
            b()?.bar32(0, 0x4000, false)?
                .msix(&overlapping)?
                .build()
                .err(),
            Some(EINVAL)
        );
        let none = MsixLayout { vectors: 0, ..MSIX };
        assert_eq!(b()?.msix(&none).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn power_state() -> Result {
        let mut c = full()?;
        let pmcsr = cap(&c, CAP_ID_PM)? + 4;
        assert_eq!(c.power_state(), PowerState::D0);
        assert_eq!(
            c.write(pmcsr, 2, 3)?,
            ConfigEvent::PowerStateChanged {
                old: PowerState::D0,
                new: PowerState::D3Hot
            }
        );
        assert_eq!(c.read(pmcsr, 2)?, 0x000b);
        // D1 and D2 are unsupported: the state does not change.
        assert_eq!(c.write(pmcsr, 2, 1)?, ConfigEvent::None);
        assert_eq!(c.power_state(), PowerState::D3Hot);
        c.write(pmcsr, 1, 0)?;
        assert_eq!(c.power_state(), PowerState::D0);
        assert_eq!(c.write(pmcsr, 2, 2)?, ConfigEvent::None);
        assert_eq!(c.read(pmcsr, 2)?, 0x0008);
        Ok(())
    }

    #[test]
    fn bad_accesses_are_refused() -> Result {
        let mut c = full()?;
        for len in [0, 3, 5, 8] {
            assert_eq!(c.read(0, len), Err(EINVAL));
            assert_eq!(c.write(0, len, 0), Err(EINVAL));
        }
        for (offset, len) in [(1, 2), (2, 4), (0x103, 4), (0xfff, 2)] {
            assert_eq!(c.read(offset, len), Err(EINVAL));
            assert_eq!(c.write(offset, len, 0xffff_ffff), Err(EINVAL));
        }
        for offset in [0x1000, 0x1004, u64::MAX - 3, u64::MAX] {
            assert_eq!(c.read(offset, 4), Err(EINVAL));
            assert_eq!(c.write(offset, 1, 0), Err(EINVAL));
            assert_eq!(c.set_bits(offset, 1, 1), Err(EINVAL));
        }
        // Refused writes changed nothing; the last byte is still readable.
        assert_eq!(c.read(0x04, 4)?, u32::from(STATUS_CAP_LIST) << 16);
        assert_eq!(c.read(0xfff, 1)?, 0);
        Ok(())
    }

    #[test]
    fn capabilities_that_do_not_fit() -> Result {
        let b = || ConfigBuilder::new(&IDS);
        let body = KVec::from_elem(0u8, 0xf00, GFP_KERNEL)?;
        assert_eq!(b()?.add_dvsec(1, 1, 0, &body).err(), Some(ENOSPC));
        assert_eq!(b()?.add_dvsec(1, 1, 16, &[]).err(), Some(EINVAL));
        // Exactly filling the extended space is fine.
        assert!(b()?.add_dvsec(1, 1, 0, &body[..0xf00 - 0x0a]).is_ok());
        assert_eq!(
            b()?.power_management()?.power_management().err(),
            Some(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn reset_restores_defaults() -> Result {
        let mut c = full()?;
        let exp = cap(&c, CAP_ID_EXP)?;
        let msix = cap(&c, CAP_ID_MSIX)?;
        let pm = cap(&c, CAP_ID_PM)?;
        let mut before = KVec::new();
        for offset in (0..0x1000).step_by(4) {
            before.push(c.read(offset, 4)?, GFP_KERNEL)?;
        }
        c.write(0x04, 2, 0x0406)?;
        c.set_bits(0x06, 2, 0x8000)?;
        c.write(0x10, 4, 0xffff_ffff)?;
        c.write(0x18, 4, 0xfebf_0000)?;
        c.write(0x3c, 1, 11)?;
        c.write(exp + 8, 2, 0x00ff)?;
        c.write(msix + 2, 2, 0xc000)?;
        c.write(pm + 4, 2, 3)?;
        c.write(0x110, 4, 0x40)?;
        c.reset();
        for (i, &value) in before.iter().enumerate() {
            assert_eq!(c.read(4 * i as u64, 4)?, value);
        }
        assert!(!c.memory_enabled() && !c.msix_enabled());
        assert_eq!(c.power_state(), PowerState::D0);
        assert_eq!(c.bar_address(0), 0);
        Ok(())
    }
}

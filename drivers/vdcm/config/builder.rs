// SPDX-License-Identifier: GPL-2.0

//! Laying out a configuration space: header, BARs, capabilities.

use kernel::prelude::*;
use kernel::sync::Arc;

use super::caps::*;
use super::space::*;

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
    space: ConfigTemplate,
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
        let mut space = ConfigTemplate::new()?;
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
        let size = match self.space.bars.get(usize::from(bar)) {
            Some(BarSlot::Mem32 { size } | BarSlot::Mem64 { size }) => *size,
            _ => 0,
        };
        size != 0 && u64::from(offset) + len <= size
    }

    /// Finishes the layout (the values laid out are the reset values) and
    /// returns a space of it in its reset state; [`ConfigSpace::fresh`]
    /// makes more that share the layout.
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
        self.space.freeze()?;
        ConfigSpace::new(Arc::new(self.space, GFP_KERNEL)?)
    }
}

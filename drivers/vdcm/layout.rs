// SPDX-License-Identifier: GPL-2.0

//! The ADI types a PF described, checked once at registration, and the
//! routing of a tenant's BAR access that follows from them.
//!
//! The core knows nothing of what a PF's registers mean. What it knows is
//! where they are: each BAR of a type is cut into trapped ranges (accesses
//! go to the PF's callbacks), direct ranges (the PF's pages, mapped into
//! the tenant) and holes (read as zero, writes ignored); the MSI-X table
//! and PBA sit inside trapped ranges and are the core's own.

use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;

use crate::config;
use crate::config::ConfigBuilder;
use crate::config::ConfigSpace;
use crate::vdcm_kernel::pf_host::limits;
use crate::vdcm_kernel::pf_host::BarDesc;
use crate::vdcm_kernel::pf_host::PfDescription;
use crate::vdcm_kernel::pf_host::RangeKind;
use crate::vdcm_kernel::pf_host::TypeDesc;

/// Bytes of one MSI-X table entry.
pub const MSIX_ENTRY_SIZE: u64 = 16;

/// A range of a BAR, checked.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    /// Trapped or direct.
    pub kind: RangeKind,
    /// Start in the BAR.
    pub start: u64,
    /// End in the BAR (exclusive).
    pub end: u64,
}

/// One BAR of a type, checked.
pub struct Bar {
    /// Bytes (a power of two of at least a page), 0 for none.
    pub size: u64,
    /// 64-bit BAR.
    pub bits64: bool,
    /// Prefetchable.
    pub prefetchable: bool,
    /// The ranges, ascending and disjoint.
    pub ranges: KVec<Range>,
}

impl Bar {
    /// Whether any range maps directly.
    pub fn has_direct(&self) -> bool {
        self.ranges.iter().any(|r| r.kind == RangeKind::Direct)
    }
}

/// Where the core emulates the MSI-X table and PBA.
#[derive(Clone, Copy, Debug)]
pub struct Msix {
    /// Vectors.
    pub vectors: u16,
    /// The BAR of both.
    pub bar: usize,
    /// The table's offset.
    pub table: u64,
    /// The PBA's offset.
    pub pba: u64,
}

impl Msix {
    /// Bytes of the table.
    pub fn table_len(&self) -> u64 {
        u64::from(self.vectors) * MSIX_ENTRY_SIZE
    }

    /// Bytes of the PBA (whole quadwords).
    pub fn pba_len(&self) -> u64 {
        u64::from(self.vectors).div_ceil(64) * 8
    }
}

/// What a BAR access reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The PF's trap callbacks.
    Trap,
    /// The MSI-X table, at this offset inside it.
    MsixTable(u64),
    /// The PBA, at this offset inside it.
    MsixPba(u64),
    /// A direct range: no trapped path.
    Direct,
    /// No range: reads zero, writes are ignored.
    Hole,
}

/// One ADI type, checked.
pub struct AdiType {
    /// The mdev type's sysfs name.
    pub name: CString,
    /// Its pretty name.
    pub description: CString,
    /// PCI identity.
    pub ids: config::DeviceIds,
    /// The six BARs.
    pub bars: [Bar; limits::BARS],
    /// MSI-X.
    pub msix: Msix,
    /// Extra DVSECs (vendor, ID, revision, body).
    pub dvsecs: KVec<(u16, u16, u8, KVec<u8>)>,
    /// The pool an ADI draws from.
    pub pool: usize,
    /// Units of it.
    pub units: u32,
    /// Pin slots.
    pub pins: u32,
    /// Bytes of the PF's saved state of one ADI; 0: not migratable.
    pub state_size: usize,
    /// The largest QoS threshold of an ADI; 0: the type has none.
    pub max_threshold: u32,
    /// The config space of an ADI of this type in its reset state; its
    /// layout is shared by every ADI of the type (see
    /// [`AdiType::config_space`]); made by [`lay_out_config`].
    pub(crate) config: ConfigSpace,
}

/// Why a description was refused: the message for the log.
pub type Refusal = &'static str;

fn check_bar(b: &BarDesc) -> core::result::Result<Bar, Refusal> {
    if b.unknown_flags != 0 {
        return Err("a BAR has flags this VDCM does not know");
    }
    if b.size == 0 {
        return if b.ranges.is_empty() {
            Ok(Bar {
                size: 0,
                bits64: false,
                prefetchable: false,
                ranges: KVec::new(),
            })
        } else {
            Err("a BAR of size 0 has ranges")
        };
    }
    if !b.size.is_power_of_two() || b.size < PAGE_SIZE as u64 {
        return Err("a BAR size is not a power of two of at least a page");
    }
    if !b.bits64 && b.size > 1 << 31 {
        return Err("a 32-bit BAR is larger than 2 GiB");
    }
    let mut ranges = KVec::new();
    let mut prev_end = 0u64;
    for r in b.ranges.iter() {
        let kind = r.kind.ok_or("a range has a kind this VDCM does not know")?;
        let start = u64::from(r.offset);
        let end = start + u64::from(r.size);
        if r.size == 0 || end > b.size {
            return Err("a range is empty or ends past its BAR");
        }
        if start < prev_end {
            return Err("ranges of a BAR overlap or are not in ascending order");
        }
        let page = PAGE_SIZE as u64;
        if kind == RangeKind::Direct && (start % page != 0 || end % page != 0) {
            return Err("a direct range is not made of whole pages");
        }
        ranges
            .push(Range { kind, start, end }, GFP_KERNEL)
            .map_err(|_| "out of memory")?;
        prev_end = end;
    }
    Ok(Bar {
        size: b.size,
        bits64: b.bits64,
        prefetchable: b.prefetchable,
        ranges,
    })
}

impl AdiType {
    /// Checks one type of a PF that offers `pools` pools.
    fn check(t: &TypeDesc, pools: usize) -> core::result::Result<Self, Refusal> {
        let name = t.name.to_bytes();
        if name.is_empty()
            || name.len() > 16
            || !name
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
        {
            return Err("a type name is not 1..16 characters of [a-z0-9_-]");
        }
        if t.class > 0xff_ffff {
            return Err("a class code does not fit in 24 bits");
        }
        let mut bars: [Bar; limits::BARS] = Default::default();
        for (out, b) in bars.iter_mut().zip(t.bars.iter()) {
            *out = check_bar(b)?;
        }
        for (i, b) in bars.iter().enumerate() {
            if b.bits64 && bars.get(i + 1).is_none_or(|next| next.size != 0) {
                return Err("a 64-bit BAR is not followed by an empty slot");
            }
        }
        if !(1..=config::MSIX_MAX_VECTORS).contains(&t.msix_vectors) {
            return Err("MSI-X vectors are not 1..2048");
        }
        let msix = Msix {
            vectors: t.msix_vectors,
            bar: usize::from(t.msix_bar),
            table: u64::from(t.msix_table),
            pba: u64::from(t.msix_pba),
        };
        let bar = bars.get(msix.bar).ok_or("the MSI-X BAR does not exist")?;
        let in_trap = |start: u64, len: u64| {
            bar.ranges
                .iter()
                .any(|r| r.kind == RangeKind::Trap && r.start <= start && start + len <= r.end)
        };
        if msix.table % 8 != 0 || msix.pba % 8 != 0 {
            return Err("the MSI-X table or PBA is not 8-byte aligned");
        }
        if !in_trap(msix.table, msix.table_len()) || !in_trap(msix.pba, msix.pba_len()) {
            return Err("the MSI-X table or PBA is not inside one trapped range of its BAR");
        }
        let overlap =
            msix.table < msix.pba + msix.pba_len() && msix.pba < msix.table + msix.table_len();
        if overlap {
            return Err("the MSI-X table and PBA overlap");
        }
        if t.pool as usize >= pools || t.units == 0 {
            return Err("a type names no pool, or takes no units of it");
        }
        if t.pins > limits::PINS {
            return Err("a type asks for more pin slots than the header allows");
        }
        if t.state_size as usize > limits::STATE {
            return Err("a type's saved state is larger than the header allows");
        }
        let mut dvsecs = KVec::new();
        for d in t.dvsecs.iter() {
            if d.revision > 0xf {
                return Err("a DVSEC revision does not fit in 4 bits");
            }
            let mut body = KVec::new();
            body.extend_from_slice(&d.body, GFP_KERNEL)
                .map_err(|_| "out of memory")?;
            dvsecs
                .push((d.vendor, d.id, d.revision, body), GFP_KERNEL)
                .map_err(|_| "out of memory")?;
        }
        let ids = config::DeviceIds {
            vendor: t.vendor,
            device: t.device,
            revision: t.revision,
            class: t.class,
            subsystem_vendor: t.subsystem_vendor,
            subsystem: t.subsystem,
        };
        let config = lay_out_config(&ids, &bars, &msix, &dvsecs).map_err(|_| {
            "the config space cannot be laid out (out of memory, or no room for the DVSECs)"
        })?;
        Ok(AdiType {
            name: t.name.to_cstring().map_err(|_| "out of memory")?,
            description: t.description.to_cstring().map_err(|_| "out of memory")?,
            ids,
            bars,
            msix,
            dvsecs,
            pool: t.pool as usize,
            units: t.units,
            pins: t.pins,
            state_size: t.state_size as usize,
            max_threshold: t.max_threshold,
            config,
        })
    }

    /// Checks every type of `desc`.
    pub fn check_all(desc: &PfDescription) -> core::result::Result<KVec<Arc<AdiType>>, Refusal> {
        if desc.types.is_empty() {
            return Err("the PF offers no ADI type");
        }
        let mut types = KVec::new();
        for t in desc.types.iter() {
            let checked = AdiType::check(t, desc.pools.len())?;
            if types
                .iter()
                .any(|o: &Arc<AdiType>| o.name.to_bytes() == checked.name.to_bytes())
            {
                return Err("two types have one name");
            }
            let checked = Arc::new(checked, GFP_KERNEL).map_err(|_| "out of memory")?;
            types
                .push(checked, GFP_KERNEL)
                .map_err(|_| "out of memory")?;
        }
        Ok(types)
    }

    /// What an access of `len` bytes at `offset` of BAR `bar` reaches, or
    /// `EINVAL` if it leaves the BAR or crosses a range boundary.
    pub fn route(&self, bar: usize, offset: u64, len: u64) -> Result<Target> {
        let b = self.bars.get(bar).filter(|b| b.size != 0).ok_or(EINVAL)?;
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        if len == 0 || end > b.size {
            return Err(EINVAL);
        }
        if bar == self.msix.bar {
            let m = &self.msix;
            for (start, size, inside) in [
                (
                    m.table,
                    m.table_len(),
                    Target::MsixTable as fn(u64) -> Target,
                ),
                (m.pba, m.pba_len(), Target::MsixPba),
            ] {
                if offset < start + size && start < end {
                    if offset < start || end > start + size {
                        return Err(EINVAL);
                    }
                    return Ok(inside(offset - start));
                }
            }
        }
        for r in b.ranges.iter() {
            if offset < r.end && r.start < end {
                if offset < r.start || end > r.end {
                    return Err(EINVAL);
                }
                return Ok(match r.kind {
                    RangeKind::Trap => Target::Trap,
                    RangeKind::Direct => Target::Direct,
                });
            }
        }
        Ok(Target::Hole)
    }

    /// The direct ranges of BAR `bar`, as sparse-mmap areas.
    pub fn direct_areas(&self, bar: usize, out: &mut KVec<(u64, u64)>) -> Result {
        if let Some(b) = self.bars.get(bar) {
            for r in b.ranges.iter().filter(|r| r.kind == RangeKind::Direct) {
                out.push((r.start, r.end - r.start), GFP_KERNEL)?;
            }
        }
        Ok(())
    }

    /// Whether `[offset, offset + len)` of BAR `bar` is all direct.
    pub fn is_direct(&self, bar: usize, offset: u64, len: u64) -> bool {
        let Some(end) = offset.checked_add(len) else {
            return false;
        };
        self.bars.get(bar).is_some_and(|b| {
            b.ranges
                .iter()
                .any(|r| r.kind == RangeKind::Direct && r.start <= offset && end <= r.end)
        })
    }

    /// A config space for a new ADI of this type, in its reset state: only
    /// the bytes an ADI can change are its own.
    pub fn config_space(&self) -> Result<ConfigSpace> {
        self.config.fresh()
    }
}

/// The config space of an ADI with these IDs, BARs, MSI-X and DVSECs: a PCI
/// Express endpoint with Power Management, FLR, MSI-X, the SIOV DVSEC and
/// the type's own DVSECs.
pub(crate) fn lay_out_config(
    ids: &config::DeviceIds,
    bars: &[Bar; limits::BARS],
    msix: &Msix,
    dvsecs: &[(u16, u16, u8, KVec<u8>)],
) -> Result<ConfigSpace> {
    let mut b = ConfigBuilder::new(ids)?;
    for (i, bar) in bars.iter().enumerate() {
        if bar.size == 0 {
            continue;
        }
        b = if bar.bits64 {
            b.bar64(i, bar.size, bar.prefetchable)?
        } else {
            b.bar32(i, bar.size, bar.prefetchable)?
        };
    }
    let bir = u8::try_from(msix.bar).map_err(|_| EINVAL)?;
    b = b
        .power_management()?
        .pcie_endpoint()?
        .msix(&config::MsixLayout {
            vectors: msix.vectors,
            table_bar: bir,
            table_offset: u32::try_from(msix.table)?,
            pba_bar: bir,
            pba_offset: u32::try_from(msix.pba)?,
        })?
        .siov_dvsec(&config::SiovDvsec::PAGES_4K)?;
    for (vendor, id, revision, body) in dvsecs.iter() {
        b = b.add_dvsec(*vendor, *id, *revision, body)?;
    }
    b.build()
}

impl Default for Bar {
    fn default() -> Self {
        Bar {
            size: 0,
            bits64: false,
            prefetchable: false,
            ranges: KVec::new(),
        }
    }
}

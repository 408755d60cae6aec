// SPDX-License-Identifier: GPL-2.0

//! The configuration space of one function and its access rules.

use kernel::prelude::*;
use kernel::sync::Arc;

use super::caps::*;

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

/// The access rules of one byte of configuration space.
#[derive(Clone, Copy, Default)]
pub(super) struct ConfigByte {
    /// Value after reset.
    pub(super) default: u8,
    /// Bits the guest can write.
    pub(super) wmask: u8,
    /// Bits the guest clears by writing 1.
    pub(super) w1c: u8,
}

/// What a Base Address Register slot decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BarSlot {
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
pub(super) const BAR_MEM_64: u32 = 0x4;
pub(super) const BAR_PREFETCH: u32 = 0x8;
pub(super) const BAR_FLAGS: u32 = 0xf;

/// Checks the shape of a guest access and returns its offset as an index.
pub(super) fn check_access(offset: u64, len: usize) -> Result<usize> {
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
pub(super) fn touches(offset: usize, len: usize, byte: usize) -> bool {
    (offset..offset + len).contains(&byte)
}

/// `ConfigTemplate::slots` of a byte that never changes.
const FIXED: u16 = u16::MAX;

/// The layout of a function's configuration space that every ADI of a
/// type shares: each byte's reset value and write masks, the BARs and
/// capabilities, and where each byte that can change keeps its value in
/// a [`ConfigSpace`].
///
/// # Invariants
///
/// - `regs.len() == CONFIG_SPACE_SIZE`; once frozen, `slots.len()` too.
/// - Once frozen, the bytes with a write or write-1-to-clear mask (the
///   only ones a guest write changes) are numbered `0..mutable` in offset
///   order in `slots`, the others are [`FIXED`].
/// - `bars` describes the masks of the BAR registers: a `Mem64` slot is
///   followed by an `Upper` slot and `Upper` slots follow `Mem64` slots only.
/// - `pm`, `exp` and `msix`, when set, are the offsets of complete
///   capabilities of that kind, dword aligned, below `0x100`.
pub struct ConfigTemplate {
    pub(super) regs: KVec<ConfigByte>,
    slots: KVec<u16>,
    mutable: usize,
    pub(super) bars: [BarSlot; BAR_COUNT],
    pub(super) pm: Option<usize>,
    pub(super) exp: Option<usize>,
    pub(super) msix: Option<usize>,
}

impl ConfigTemplate {
    /// An empty layout: every byte reads as zero and is read-only.
    pub(super) fn new() -> Result<Self> {
        // INVARIANT: `CONFIG_SPACE_SIZE` bytes, no BARs, no capabilities,
        // not frozen.
        Ok(ConfigTemplate {
            regs: KVec::from_elem(ConfigByte::default(), CONFIG_SPACE_SIZE, GFP_KERNEL)?,
            slots: KVec::new(),
            mutable: 0,
            bars: [BarSlot::Unused; BAR_COUNT],
            pm: None,
            exp: None,
            msix: None,
        })
    }

    /// Little-endian reset value of `len` (at most 4) bytes at `offset`;
    /// bytes outside the space read as zero.
    pub(super) fn get(&self, offset: usize, len: usize) -> u32 {
        (0..len.min(4)).fold(0, |acc, i| {
            let byte = offset
                .checked_add(i)
                .and_then(|at| self.regs.get(at))
                .map_or(0, |b| b.default);
            acc | (u32::from(byte) << (8 * i))
        })
    }

    /// Declares `len` bytes at `offset`: reset value, write mask and
    /// write-1-to-clear mask, little-endian.
    pub(super) fn init(
        &mut self,
        offset: usize,
        len: usize,
        value: u32,
        wmask: u32,
        w1c: u32,
    ) -> Result {
        for i in 0..len.min(4) {
            let at = offset.checked_add(i).ok_or(EINVAL)?;
            let b = self.regs.get_mut(at).ok_or(EINVAL)?;
            let shift = 8 * i;
            *b = ConfigByte {
                default: (value >> shift) as u8,
                wmask: (wmask >> shift) as u8,
                w1c: (w1c >> shift) as u8,
            };
        }
        Ok(())
    }

    /// Numbers the bytes that can change; the layout is final after this.
    pub(super) fn freeze(&mut self) -> Result {
        let mut slots = KVec::with_capacity(self.regs.len(), GFP_KERNEL)?;
        let mut mutable = 0u16;
        for b in self.regs.iter() {
            if b.wmask | b.w1c == 0 {
                slots.push(FIXED, GFP_KERNEL)?;
            } else {
                slots.push(mutable, GFP_KERNEL)?;
                mutable += 1;
            }
        }
        // INVARIANT: every byte with a mask numbered in offset order (at
        // most 4096 of them, below `FIXED`).
        self.slots = slots;
        self.mutable = usize::from(mutable);
        Ok(())
    }

    /// The reset values of the bytes that can change, in slot order.
    fn mutable_defaults(&self) -> impl Iterator<Item = u8> + '_ {
        self.regs
            .iter()
            .zip(self.slots.iter())
            .filter(|(_, &s)| s != FIXED)
            .map(|(b, _)| b.default)
    }

    /// The heap bytes of the layout (shared by the ADIs of a type).
    pub fn heap_bytes(&self) -> usize {
        use crate::vdcm_kernel::footprint::of_vec;
        of_vec(&self.regs) + of_vec(&self.slots)
    }
}

/// The configuration space of one emulated PCI Express function: its
/// type's [`ConfigTemplate`] and the current value of each byte that can
/// change (a few dozen: the rest read as their reset value).
///
/// # Invariants
///
/// - `t` is frozen, and `values.len() == t.mutable`.
pub struct ConfigSpace {
    t: Arc<ConfigTemplate>,
    values: KVec<u8>,
}

impl ConfigSpace {
    /// A space of layout `t` (frozen) in its reset state.
    pub fn new(t: Arc<ConfigTemplate>) -> Result<Self> {
        if t.slots.len() != t.regs.len() {
            return Err(EINVAL);
        }
        let mut values = KVec::with_capacity(t.mutable, GFP_KERNEL)?;
        for v in t.mutable_defaults() {
            values.push(v, GFP_KERNEL)?;
        }
        // INVARIANT: one value per numbered byte.
        Ok(ConfigSpace { t, values })
    }

    /// Another space of the same layout, in its reset state.
    pub fn fresh(&self) -> Result<Self> {
        Self::new(self.t.clone())
    }

    /// The layout.
    pub fn template(&self) -> &Arc<ConfigTemplate> {
        &self.t
    }

    /// The heap bytes of this space's own values (not of the shared
    /// layout).
    pub fn heap_bytes(&self) -> usize {
        crate::vdcm_kernel::footprint::of_vec(&self.values)
    }

    /// The value of the byte at `at`, if it is in the space.
    fn byte(&self, at: usize) -> Option<u8> {
        let b = self.t.regs.get(at)?;
        match self.t.slots.get(at) {
            Some(&s) if s != FIXED => self.values.get(usize::from(s)).copied(),
            _ => Some(b.default),
        }
    }

    /// The rules of the byte at `at` and where its value is, if it can
    /// change.
    fn byte_mut(&mut self, at: usize) -> Option<(ConfigByte, &mut u8)> {
        let b = *self.t.regs.get(at)?;
        let s = *self.t.slots.get(at).filter(|&&s| s != FIXED)?;
        Some((b, self.values.get_mut(usize::from(s))?))
    }

    /// Little-endian value of `len` (at most 4) bytes at `offset`; bytes
    /// outside the space read as zero.
    pub(super) fn get(&self, offset: usize, len: usize) -> u32 {
        (0..len.min(4)).fold(0, |acc, i| {
            let byte = offset
                .checked_add(i)
                .and_then(|at| self.byte(at))
                .unwrap_or(0);
            acc | (u32::from(byte) << (8 * i))
        })
    }

    /// The 16-bit register at `offset`.
    pub(super) fn get16(&self, offset: usize) -> u16 {
        // `get` of 2 bytes fits in 16 bits.
        self.get(offset, 2) as u16
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
        let old_pmcsr = self.t.pm.map(|pm| self.get16(pm + PM_CTRL));

        for i in 0..len {
            let Some((b, cur)) = self.byte_mut(offset + i) else {
                // Read-only: the write does not change it.
                continue;
            };
            let v = (value >> (8 * i)) as u8;
            *cur = (*cur & !b.wmask) | (v & b.wmask);
            *cur &= !(v & b.w1c);
        }

        // D1 and D2 are not supported: a write asking for them completes but
        // leaves the power state as it was.
        if let (Some(pm), Some(old)) = (self.t.pm, old_pmcsr) {
            let ctrl = pm + PM_CTRL;
            if touches(offset, len, ctrl) && matches!(self.get16(ctrl) & PM_CTRL_STATE, 1 | 2) {
                if let Some((_, cur)) = self.byte_mut(ctrl) {
                    *cur = (*cur & !(PM_CTRL_STATE as u8)) | (old as u8 & PM_CTRL_STATE as u8);
                }
            }
        }

        // Initiate FLR is not stored (it has no bit in the write mask), so it
        // reads as 0; it is seen in the written value.
        if let Some(exp) = self.t.exp {
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
    /// Ignores the guest's write masks, but only bytes the guest can write
    /// or clear can change. Returns `EINVAL` for an access
    /// [`ConfigSpace::read`] would refuse, or bits to set in a byte that
    /// cannot change; nothing is set then.
    pub fn set_bits(&mut self, offset: u64, len: usize, bits: u32) -> Result {
        let offset = check_access(offset, len)?;
        for i in 0..len {
            if (bits >> (8 * i)) as u8 != 0 && self.byte_mut(offset + i).is_none() {
                return Err(EINVAL);
            }
        }
        for i in 0..len {
            if let Some((_, cur)) = self.byte_mut(offset + i) {
                *cur |= (bits >> (8 * i)) as u8;
            }
        }
        Ok(())
    }

    /// Copies the space as the guest sees it into `out`
    /// ([`CONFIG_SPACE_SIZE`] bytes), for a migration.
    pub fn save_image(&self, out: &mut [u8]) -> Result {
        if out.len() != self.t.regs.len() {
            return Err(EINVAL);
        }
        for (at, o) in out.iter_mut().enumerate() {
            *o = self.byte(at).unwrap_or(0);
        }
        Ok(())
    }

    /// Checks that `image` is the config space of a function like this
    /// one: every bit the guest cannot write (IDs, capabilities, BAR
    /// sizing) equals this space's reset value, and the power state is one
    /// the function supports. Returns the offset of the first byte that
    /// differs, as `Err(Some(offset))`; `Err(None)` for a wrong length.
    pub fn check_image(&self, image: &[u8]) -> core::result::Result<(), Option<usize>> {
        if image.len() != self.t.regs.len() {
            return Err(None);
        }
        for (at, (&v, b)) in image.iter().zip(self.t.regs.iter()).enumerate() {
            if (v ^ b.default) & !(b.wmask | b.w1c) != 0 {
                return Err(Some(at));
            }
        }
        if let Some(pm) = self.t.pm {
            let ctrl = pm + PM_CTRL;
            if image
                .get(ctrl)
                .is_some_and(|&s| matches!(u16::from(s) & PM_CTRL_STATE, 1 | 2))
            {
                return Err(Some(ctrl));
            }
        }
        Ok(())
    }

    /// Makes the space `image`, which [`ConfigSpace::check_image`]
    /// accepted.
    pub fn load_image(&mut self, image: &[u8]) -> Result {
        self.check_image(image).map_err(|_| EINVAL)?;
        // The bytes that cannot change equal their reset value (checked).
        for (at, &v) in image.iter().enumerate() {
            if let Some((_, cur)) = self.byte_mut(at) {
                *cur = v;
            }
        }
        Ok(())
    }

    /// Returns every register to its power-on value (for a function-level
    /// reset or `VFIO_DEVICE_RESET`).
    pub fn reset(&mut self) {
        for (cur, v) in self.values.iter_mut().zip(self.t.mutable_defaults()) {
            *cur = v;
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
        match self.t.bars.get(n) {
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
        match self.t.bars.get(n) {
            Some(BarSlot::Mem32 { size } | BarSlot::Mem64 { size }) => *size,
            _ => 0,
        }
    }

    /// The MSI-X Message Control state, if the function has MSI-X.
    pub fn msix_control(&self) -> Option<MsixControl> {
        self.t.msix.map(|msix| {
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
        match self.t.pm.map(|pm| self.get16(pm + PM_CTRL) & PM_CTRL_STATE) {
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

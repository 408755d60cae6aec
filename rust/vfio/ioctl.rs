// SPDX-License-Identifier: GPL-2.0

//! The ioctls of a VFIO device the driver answers itself.
//!
//! Arguments are the uapi structures bindgen generates from
//! `include/uapi/linux/vfio.h`, read and written whole through
//! [`FromBytes`] and [`AsBytes`], never by byte offset.

use kernel::prelude::*;
use kernel::transmute::AsBytes;
use kernel::transmute::FromBytes;
use kernel::uaccess::UserPtr;
use kernel::uaccess::UserSlice;

use super::bindings;

// SAFETY: `struct vfio_device_info` is made of `__u32`s only: every bit
// pattern is valid and there is no padding.
unsafe impl FromBytes for bindings::vfio_device_info {}
// SAFETY: See `FromBytes`.
unsafe impl AsBytes for bindings::vfio_device_info {}
// SAFETY: `struct vfio_irq_info` is made of `__u32`s only.
unsafe impl FromBytes for bindings::vfio_irq_info {}
// SAFETY: See `FromBytes`.
unsafe impl AsBytes for bindings::vfio_irq_info {}

/// `VFIO_DEVICE_GET_INFO`.
pub const DEVICE_GET_INFO: u32 = vfio_io(7);
/// `VFIO_DEVICE_GET_IRQ_INFO`.
pub const DEVICE_GET_IRQ_INFO: u32 = vfio_io(9);
/// `VFIO_DEVICE_SET_IRQS`.
pub const DEVICE_SET_IRQS: u32 = vfio_io(10);
/// `VFIO_DEVICE_RESET`.
pub const DEVICE_RESET: u32 = vfio_io(11);

/// `_IO(VFIO_TYPE, VFIO_BASE + nr)`: bindgen cannot evaluate the macro.
pub(super) const fn vfio_io(nr: u32) -> u32 {
    ((bindings::VFIO_TYPE as u32) << 8) | (bindings::VFIO_BASE + nr)
}

/// An ioctl on a VFIO device: its command and the user's argument.
#[derive(Clone, Copy, Debug)]
pub struct Ioctl {
    /// The ioctl command number.
    pub cmd: u32,
    /// The user's argument, as passed to `ioctl(2)`.
    pub arg: usize,
}

/// What a device reports for `VFIO_DEVICE_GET_INFO`.
#[derive(Clone, Copy, Debug)]
pub struct DeviceInfo {
    /// `VFIO_DEVICE_FLAGS_*`.
    pub flags: u32,
    /// Number of regions (for vfio-pci devices, `VFIO_PCI_NUM_REGIONS`).
    pub num_regions: u32,
    /// Number of IRQ indexes (for vfio-pci devices, `VFIO_PCI_NUM_IRQS`).
    pub num_irqs: u32,
}

/// What a device reports for one IRQ index in `VFIO_DEVICE_GET_IRQ_INFO`.
#[derive(Clone, Copy, Debug)]
pub struct IrqInfo {
    /// `VFIO_IRQ_INFO_*` flags (see [`super::pci`]).
    pub flags: u32,
    /// Number of interrupts of the index (0: not supported).
    pub count: u32,
}

impl Ioctl {
    /// The user memory at `arg`, `len` bytes long, for reading and writing.
    ///
    /// Nothing is accessed until the returned slice's readers or writers are
    /// used; every access is checked by the kernel's user-copy routines.
    pub fn user_slice(&self, len: usize) -> UserSlice {
        UserSlice::new(UserPtr::from_addr(self.arg), len)
    }

    /// Reads the first `minsz` bytes of an `argsz`-prefixed argument into a
    /// `T` (the rest zero), as the VFIO core's own ioctls do; `EINVAL` if
    /// the user's `argsz` (the first field) is below `minsz`.
    pub(super) fn read_min<T: FromBytes + AsBytes + Default>(&self, minsz: usize) -> Result<T> {
        let mut value = T::default();
        let bytes = value.as_bytes_mut().get_mut(..minsz).ok_or(EINVAL)?;
        self.user_slice(minsz).reader().read_slice(bytes)?;
        let argsz = bytes
            .first_chunk::<4>()
            .map_or(0, |b| u32::from_ne_bytes(*b));
        if (argsz as usize) < minsz {
            return Err(EINVAL);
        }
        Ok(value)
    }

    /// Writes the first `minsz` bytes of `value` back to the argument.
    fn write_min<T: AsBytes>(&self, value: &T, minsz: usize) -> Result {
        let bytes = value.as_bytes().get(..minsz).ok_or(EINVAL)?;
        self.user_slice(minsz).writer().write_slice(bytes)
    }

    /// Answers `VFIO_DEVICE_GET_INFO` with `info`.
    pub fn reply_device_info(&self, info: DeviceInfo) -> Result<isize> {
        // Up to and including `num_irqs`; `cap_offset` is only valid with
        // VFIO_DEVICE_FLAGS_CAPS, which this helper never sets.
        let minsz = core::mem::offset_of!(bindings::vfio_device_info, cap_offset);
        let mut raw: bindings::vfio_device_info = self.read_min(minsz)?;
        raw.flags = info.flags;
        raw.num_regions = info.num_regions;
        raw.num_irqs = info.num_irqs;
        self.write_min(&raw, minsz)?;
        Ok(0)
    }

    /// Answers `VFIO_DEVICE_GET_IRQ_INFO`: reads the index the user asks
    /// about and replies with what `info` says of it (`EINVAL` from `info`
    /// for an index the device does not have).
    pub fn reply_irq_info(&self, info: impl FnOnce(u32) -> Result<IrqInfo>) -> Result<isize> {
        let minsz = core::mem::size_of::<bindings::vfio_irq_info>();
        let mut raw: bindings::vfio_irq_info = self.read_min(minsz)?;
        let answer = info(raw.index)?;
        raw.flags = answer.flags;
        raw.count = answer.count;
        self.write_min(&raw, minsz)?;
        Ok(0)
    }
}

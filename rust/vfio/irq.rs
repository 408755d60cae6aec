// SPDX-License-Identifier: GPL-2.0

//! `VFIO_DEVICE_SET_IRQS`: reading and validating a request.
//!
//! The shape of the request (`argsz`, the index against the device's
//! indexes, `start`/`count` against the index's interrupts, one data type,
//! the data's size) is checked by the VFIO core's own
//! `vfio_set_irqs_validate_and_prepare()`, as vfio-pci and mtty do; what
//! it leaves to drivers (exactly one action, `count == 0` only as "the
//! whole index" with `DATA_NONE`, the eventfds) is checked here.

use kernel::prelude::*;
use kernel::transmute::AsBytes;
use kernel::transmute::FromBytes;
use kernel::uaccess::UserPtr;
use kernel::uaccess::UserSlice;

use super::super::eventfd::EventFd;
use super::bindings;
use super::Ioctl;

// SAFETY: `struct vfio_irq_set` is five `__u32`s and a flexible array
// member of size 0: every bit pattern is valid and there is no padding.
unsafe impl FromBytes for bindings::vfio_irq_set {}
// SAFETY: See `FromBytes`.
unsafe impl AsBytes for bindings::vfio_irq_set {}

/// The action of a `VFIO_DEVICE_SET_IRQS` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqAction {
    /// `VFIO_IRQ_SET_ACTION_MASK`.
    Mask,
    /// `VFIO_IRQ_SET_ACTION_UNMASK`.
    Unmask,
    /// `VFIO_IRQ_SET_ACTION_TRIGGER`.
    Trigger,
}

/// The data of a `VFIO_DEVICE_SET_IRQS` request, one element per interrupt
/// of `start..start + count`.
pub enum IrqData {
    /// `VFIO_IRQ_SET_DATA_NONE`: act on every interrupt of the range.
    None,
    /// `VFIO_IRQ_SET_DATA_BOOL`: act on the interrupts whose flag is set.
    Bool(KVec<bool>),
    /// `VFIO_IRQ_SET_DATA_EVENTFD`: the trigger of each interrupt; `None`
    /// (fd -1) removes it.
    EventFd(KVec<Option<EventFd>>),
}

/// A validated `VFIO_DEVICE_SET_IRQS` request (see [`Ioctl::read_irq_set`]).
pub struct IrqSet {
    /// What to do.
    pub action: IrqAction,
    /// The IRQ index (for vfio-pci devices, `pci::MSIX_IRQ_INDEX` etc.).
    pub index: u32,
    /// First interrupt of the range.
    pub start: u32,
    /// Number of interrupts in the range; never 0.
    pub count: u32,
    /// The user passed `count == 0` with `DATA_NONE`: the whole index.
    pub all: bool,
    /// Per-interrupt data.
    pub data: IrqData,
}

impl Ioctl {
    /// Reads and validates a `VFIO_DEVICE_SET_IRQS` request.
    ///
    /// `irqs(index)` is the number of interrupts of IRQ index `index`
    /// (`None`: no such index; `num_irqs` bounds the indexes). The request
    /// must name exactly one data type and one action and nothing else
    /// (`EINVAL`); `start + count` must not pass the index's interrupts
    /// (`EINVAL`); `argsz` must cover the data (`EINVAL`); `count == 0` is
    /// only valid with `DATA_NONE`, where it means "all interrupts of the
    /// index" (the disable request of `ACTION_TRIGGER`). Eventfd descriptors
    /// are resolved here: `-1` becomes `None` (tear down), anything else
    /// must be an open eventfd (`EBADF`/`EINVAL` otherwise).
    pub fn read_irq_set(
        &self,
        num_irqs: u32,
        irqs: impl FnOnce(u32) -> Option<u32>,
    ) -> Result<IrqSet> {
        let minsz = core::mem::offset_of!(bindings::vfio_irq_set, data);
        let mut hdr: bindings::vfio_irq_set = self.read_min(minsz)?;
        let max = irqs(hdr.index).unwrap_or(0);
        let mut size = 0usize;
        // SAFETY: `hdr` is a valid request header in kernel memory and
        // `size` is valid for writes; the function only reads the one and
        // writes the other.
        kernel::error::to_result(unsafe {
            bindings::vfio_set_irqs_validate_and_prepare(
                &mut hdr,
                i32::try_from(max)?,
                i32::try_from(num_irqs)?,
                &mut size,
            )
        })?;
        let action = match hdr.flags & bindings::VFIO_IRQ_SET_ACTION_TYPE_MASK {
            bindings::VFIO_IRQ_SET_ACTION_MASK => IrqAction::Mask,
            bindings::VFIO_IRQ_SET_ACTION_UNMASK => IrqAction::Unmask,
            bindings::VFIO_IRQ_SET_ACTION_TRIGGER => IrqAction::Trigger,
            _ => return Err(EINVAL),
        };
        let data_type = hdr.flags & bindings::VFIO_IRQ_SET_DATA_TYPE_MASK;
        let (start, count) = (hdr.start, hdr.count);
        if count == 0 && (start != 0 || data_type != bindings::VFIO_IRQ_SET_DATA_NONE) {
            return Err(EINVAL);
        }
        let mut raw = KVec::from_elem(0u8, size, GFP_KERNEL)?;
        let mut reader = UserSlice::new(UserPtr::from_addr(self.arg + minsz), size).reader();
        reader.read_slice(&mut raw)?;
        let data = match data_type {
            bindings::VFIO_IRQ_SET_DATA_BOOL => {
                let mut v = KVec::with_capacity(size, GFP_KERNEL)?;
                for &b in raw.iter() {
                    v.push(b != 0, GFP_KERNEL)?;
                }
                IrqData::Bool(v)
            }
            bindings::VFIO_IRQ_SET_DATA_EVENTFD => {
                let mut v = KVec::with_capacity(count as usize, GFP_KERNEL)?;
                for fd in raw.chunks_exact(4) {
                    let fd = fd.first_chunk::<4>().map_or(-1, |b| i32::from_ne_bytes(*b));
                    let efd = match fd {
                        -1 => None,
                        fd if fd < 0 => return Err(EINVAL),
                        fd => Some(EventFd::from_fd(fd)?),
                    };
                    v.push(efd, GFP_KERNEL)?;
                }
                IrqData::EventFd(v)
            }
            _ => IrqData::None,
        };
        Ok(IrqSet {
            action,
            index: hdr.index,
            start,
            count: if count == 0 { max } else { count },
            all: count == 0,
            data,
        })
    }
}

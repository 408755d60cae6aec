// SPDX-License-Identifier: GPL-2.0

//! Emulated VFIO devices.
//!
//! A driver embeds its state in a [`Device`], whose first field is the C
//! `struct vfio_device`. The VFIO core allocates the whole object and owns
//! its lifetime: a [`Device`] is reference counted ([`ARef`]), and the
//! driver's data is dropped from the core's `release` callback once the last
//! reference is gone. [`Registration`] makes the device visible to user
//! space (the iommufd cdev and, with `CONFIG_VFIO_GROUP`, the legacy group)
//! and unregisters it on drop, waiting for every user to close it.
//!
//! The device is an *emulated IOMMU* device: it has no IOMMU of its own;
//! iommufd gives it an access object to the user's I/O address space, used
//! through DMA read/write and page pinning.
//!
//! C headers: [`include/linux/vfio.h`](srctree/include/linux/vfio.h),
//! [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h).

use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::addr_of_mut;
use core::ptr::NonNull;

use kernel::device;
use kernel::error::from_err_ptr;
use kernel::error::to_result;
use kernel::error::VTABLE_DEFAULT_ERROR;
use kernel::ffi;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::aref::AlwaysRefCounted;
use kernel::types::Opaque;
use kernel::uaccess::UserPtr;
use kernel::uaccess::UserSlice;
use kernel::uaccess::UserSliceReader;
use kernel::uaccess::UserSliceWriter;

use super::bindings;

/// The VFIO API version the running kernel's headers define, as returned by
/// `VFIO_GET_API_VERSION`.
pub const API_VERSION: u32 = bindings::VFIO_API_VERSION;

/// The operations of an emulated VFIO device.
///
/// Every callback receives the [`Device`] it was called for; the driver's
/// own state is reached through it (it dereferences to `Self`). Callbacks
/// that are not implemented are left out of the C ops table, so the VFIO
/// core answers them with its defaults (e.g. `-EINVAL` for read/write).
#[vtable]
pub trait Driver: Sized + Send + Sync {
    /// Name of the ops table, shown in debugging output.
    const NAME: &'static CStr;

    /// Called when the first user opens the device (`open_device`).
    fn open(_dev: &Device<Self>) -> Result {
        Ok(())
    }

    /// Called when the last user closes the device (`close_device`).
    fn close(_dev: &Device<Self>) {}

    /// Reads region data at the device-defined `offset` into `out`.
    ///
    /// Returns the number of bytes written to `out`.
    fn read(_dev: &Device<Self>, _out: &mut UserSliceWriter, _offset: u64) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Writes region data from `input` at the device-defined `offset`.
    ///
    /// Returns the number of bytes consumed from `input`.
    fn write(_dev: &Device<Self>, _input: &mut UserSliceReader, _offset: u64) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Describes region `index` for `VFIO_DEVICE_GET_REGION_INFO`, which
    /// the VFIO core handles (argument copying, `argsz`, the capability
    /// chain's placement); capabilities are added through `caps`.
    fn region_info(
        _dev: &Device<Self>,
        _index: u32,
        _caps: &mut RegionCaps<'_>,
    ) -> Result<RegionInfo> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Handles a device ioctl; `arg` is the user's argument (usually a
    /// pointer, see [`Ioctl::user_slice`]). `VFIO_DEVICE_GET_REGION_INFO`
    /// and `VFIO_DEVICE_FEATURE` never arrive here: the core handles them.
    fn ioctl(_dev: &Device<Self>, _ioctl: Ioctl) -> Result<isize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Asks the user to release the device: called, with a growing
    /// `count`, while unregistration waits for the device to be closed.
    fn request(_dev: &Device<Self>, _count: u32) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Maps part of a region into the user's address space (`mmap(2)` on the
    /// device fd); the region and offset are encoded in `vma`'s page offset
    /// as the driver's region layout defines.
    fn mmap(_dev: &Device<Self>, _vma: &Vma) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The user unmapped `[iova, iova + length)` from the I/O address space
    /// the device is attached to: stop using it and release every pin in it
    /// before returning.
    fn dma_unmap(_dev: &Device<Self>, _iova: u64, _length: u64) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// A VMA being created by `mmap(2)` on a VFIO device fd.
///
/// # Invariants
///
/// Wraps a `struct vm_area_struct` under construction by `mmap(2)`, with the
/// mmap lock held for writing, for the lifetime of the reference.
#[repr(transparent)]
pub struct Vma(kernel::mm::virt::VmaNew);

impl Vma {
    /// # Safety
    ///
    /// `vma` must be a VMA being set up by `mmap(2)`, valid for `'a`.
    unsafe fn from_raw<'a>(vma: *mut bindings::vm_area_struct) -> &'a Self {
        // SAFETY: `Vma` is a transparent wrapper of `VmaNew`, whose
        // `from_raw` has the same requirements as ours.
        let new = unsafe { kernel::mm::virt::VmaNew::from_raw(vma.cast()) };
        // SAFETY: same layout, same lifetime.
        unsafe { &*core::ptr::from_ref(new).cast::<Self>() }
    }

    /// The VMA as the kernel crate's `VmaNew` (flags, permissions, size).
    pub fn as_new(&self) -> &kernel::mm::virt::VmaNew {
        &self.0
    }

    /// The file offset of the mapping, in bytes.
    pub fn offset(&self) -> u64 {
        // SAFETY: `vm_pgoff` is set before `mmap` is called and stable while
        // the VMA is being set up (type invariant).
        let pgoff = unsafe { (*self.0.as_ptr()).vm_pgoff };
        (pgoff as u64) << kernel::page::PAGE_SHIFT
    }

    /// Size of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.0.end() - self.0.start()
    }

    /// Whether the mapping is empty (never, for a real `mmap(2)`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maps `page` at byte offset `at` of the VMA, taking a reference on
    /// it for as long as it stays mapped; the page must be one the kernel
    /// may map into user space (an order-0, non-slab page), which every
    /// [`MappablePage`] is.
    pub fn insert_page(&self, at: usize, page: &MappablePage) -> Result {
        let mixed = self.0.set_mixedmap();
        let addr = self.0.start().checked_add(at).ok_or(EINVAL)?;
        if at >= self.len() {
            return Err(EINVAL);
        }
        // SAFETY: `mixed` is this VMA with VM_MIXEDMAP set, `addr` is inside
        // it, and `page.raw` is a live page suitable for mapping (type
        // invariant of `MappablePage`); `vm_insert_page` takes its own
        // reference.
        to_result(unsafe { bindings::vm_insert_page(mixed.as_ptr(), addr, page.raw.as_ptr()) })
    }
}

/// A page another module gave us for mapping into user space (e.g. a PF's
/// doorbell page), borrowed for the lifetime of the reference.
///
/// # Invariants
///
/// `raw` is a live, order-0 page that may be mapped to user space, and
/// stays allocated while this value exists.
pub struct MappablePage {
    raw: NonNull<bindings::page>,
}

impl MappablePage {
    /// # Safety
    ///
    /// `raw` must satisfy the type invariants for as long as the value is
    /// used.
    pub unsafe fn from_raw(raw: NonNull<bindings::page>) -> Self {
        // INVARIANT: the caller's promise.
        MappablePage { raw }
    }
}

/// An ioctl on a VFIO device: its command and the user's argument.
#[derive(Clone, Copy, Debug)]
pub struct Ioctl {
    /// The ioctl command number.
    pub cmd: u32,
    /// The user's argument, as passed to `ioctl(2)`.
    pub arg: usize,
}

impl Ioctl {
    /// The user memory at `arg`, `len` bytes long, for reading and writing.
    ///
    /// Nothing is accessed until the returned slice's readers or writers are
    /// used; every access is checked by the kernel's user-copy routines.
    pub fn user_slice(&self, len: usize) -> UserSlice {
        UserSlice::new(UserPtr::from_addr(self.arg), len)
    }

    /// Reads the fixed part (`N` bytes) of an `argsz`-prefixed VFIO ioctl
    /// argument; fails with `EINVAL` if the user's `argsz` is below `N`.
    fn read_fixed<const N: usize>(&self) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.user_slice(N).reader().read_slice(&mut buf)?;
        if (le_u32(&buf, 0) as usize) < N {
            return Err(EINVAL);
        }
        Ok(buf)
    }

    /// Answers `VFIO_DEVICE_GET_INFO` with `info`.
    pub fn reply_device_info(&self, info: DeviceInfo) -> Result<isize> {
        // Up to and including `num_irqs`; `cap_offset` is only valid with
        // VFIO_DEVICE_FLAGS_CAPS, which this helper never sets.
        let mut buf = self.read_fixed::<16>()?;
        put_u32(&mut buf, 4, info.flags);
        put_u32(&mut buf, 8, info.num_regions);
        put_u32(&mut buf, 12, info.num_irqs);
        self.user_slice(16).writer().write_slice(&buf)?;
        Ok(0)
    }
}

impl Ioctl {
    /// Answers `VFIO_DEVICE_GET_IRQ_INFO`: reads the index the user asks
    /// about and replies with what `info` says of it (`EINVAL` from `info`
    /// for an index the device does not have).
    pub fn reply_irq_info(&self, info: impl FnOnce(u32) -> Result<IrqInfo>) -> Result<isize> {
        let mut buf = self.read_fixed::<16>()?;
        let answer = info(le_u32(&buf, 8))?;
        put_u32(&mut buf, 4, answer.flags);
        put_u32(&mut buf, 12, answer.count);
        self.user_slice(16).writer().write_slice(&buf)?;
        Ok(0)
    }

    /// Reads and validates a `VFIO_DEVICE_SET_IRQS` request.
    ///
    /// `irqs(index)` is the number of interrupts of IRQ index `index`
    /// (`None`: no such index). The request must name exactly one data type
    /// and one action and nothing else (`EINVAL`); `start + count` must not
    /// pass the index's interrupts (`EINVAL`); `argsz` must cover the data
    /// (`EINVAL`); `count == 0` is only valid with `DATA_NONE`, where it
    /// means "all interrupts of the index" (the disable request of
    /// `ACTION_TRIGGER`). Eventfd descriptors are resolved here: `-1`
    /// becomes `None` (tear down), anything else must be an open eventfd
    /// (`EBADF`/`EINVAL` otherwise).
    pub fn read_irq_set(&self, irqs: impl FnOnce(u32) -> Option<u32>) -> Result<IrqSet> {
        const HEADER: usize = 20;
        let mut hdr = [0u8; HEADER];
        self.user_slice(HEADER).reader().read_slice(&mut hdr)?;
        let argsz = le_u32(&hdr, 0) as usize;
        let flags = le_u32(&hdr, 4);
        let index = le_u32(&hdr, 8);
        let start = le_u32(&hdr, 12);
        let count = le_u32(&hdr, 16);
        if argsz < HEADER {
            return Err(EINVAL);
        }
        let data_type = flags & bindings::VFIO_IRQ_SET_DATA_TYPE_MASK;
        let action = match flags & bindings::VFIO_IRQ_SET_ACTION_TYPE_MASK {
            bindings::VFIO_IRQ_SET_ACTION_MASK => IrqAction::Mask,
            bindings::VFIO_IRQ_SET_ACTION_UNMASK => IrqAction::Unmask,
            bindings::VFIO_IRQ_SET_ACTION_TRIGGER => IrqAction::Trigger,
            _ => return Err(EINVAL),
        };
        let known = bindings::VFIO_IRQ_SET_DATA_TYPE_MASK | bindings::VFIO_IRQ_SET_ACTION_TYPE_MASK;
        if flags & !known != 0 {
            return Err(EINVAL);
        }
        let max = irqs(index).ok_or(EINVAL)?;
        if start.checked_add(count).is_none_or(|end| end > max) || (count == 0 && start != 0) {
            return Err(EINVAL);
        }
        let elem = match data_type {
            bindings::VFIO_IRQ_SET_DATA_NONE => 0,
            bindings::VFIO_IRQ_SET_DATA_BOOL => 1,
            bindings::VFIO_IRQ_SET_DATA_EVENTFD => 4,
            _ => return Err(EINVAL),
        };
        if elem != 0 && count == 0 {
            return Err(EINVAL);
        }
        let size = elem * count as usize;
        if argsz < HEADER + size {
            return Err(EINVAL);
        }
        let mut raw = KVec::from_elem(0u8, size, GFP_KERNEL)?;
        let mut reader = UserSlice::new(UserPtr::from_addr(self.arg + HEADER), size).reader();
        reader.read_slice(&mut raw)?;
        let data = match elem {
            0 => IrqData::None,
            1 => {
                let mut v = KVec::with_capacity(size, GFP_KERNEL)?;
                for &b in raw.iter() {
                    v.push(b != 0, GFP_KERNEL)?;
                }
                IrqData::Bool(v)
            }
            _ => {
                let mut v = KVec::with_capacity(count as usize, GFP_KERNEL)?;
                for fd in raw.chunks_exact(4) {
                    let fd = le_u32(fd, 0) as i32;
                    let efd = if fd == -1 {
                        None
                    } else if fd < 0 {
                        return Err(EINVAL);
                    } else {
                        Some(super::eventfd::EventFd::from_fd(fd)?)
                    };
                    v.push(efd, GFP_KERNEL)?;
                }
                IrqData::EventFd(v)
            }
        };
        Ok(IrqSet {
            action,
            index,
            start,
            count: if count == 0 { max } else { count },
            all: count == 0,
            data,
        })
    }
}

/// What a device reports for one IRQ index in `VFIO_DEVICE_GET_IRQ_INFO`.
#[derive(Clone, Copy, Debug)]
pub struct IrqInfo {
    /// `VFIO_IRQ_INFO_*` flags (see [`pci`]).
    pub flags: u32,
    /// Number of interrupts of the index (0: not supported).
    pub count: u32,
}

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
    EventFd(KVec<Option<super::eventfd::EventFd>>),
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

fn le_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
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

/// What a device reports for one region in `VFIO_DEVICE_GET_REGION_INFO`
/// (see [`Driver::region_info`]).
#[derive(Clone, Copy, Debug)]
pub struct RegionInfo {
    /// `VFIO_REGION_INFO_FLAG_*` (read, write, mmap).
    pub flags: u32,
    /// Size of the region in bytes; 0 for an absent region.
    pub size: u64,
    /// Offset of the region in the device fd's file offsets.
    pub offset: u64,
}

/// The capability chain of a `VFIO_DEVICE_GET_REGION_INFO` answer.
///
/// # Invariants
///
/// `raw` is the core's `struct vfio_info_cap` for the request being
/// answered, valid for `'a`.
pub struct RegionCaps<'a> {
    raw: *mut bindings::vfio_info_cap,
    _p: PhantomData<&'a mut bindings::vfio_info_cap>,
}

impl RegionCaps<'_> {
    /// Appends one capability: `cap` is its complete encoding, starting with
    /// a `struct vfio_info_cap_header` (id, version; `next` is set by the
    /// core) and padded to 8 bytes.
    pub fn add(&mut self, cap: &[u8]) -> Result {
        const HEADER: usize = core::mem::size_of::<bindings::vfio_info_cap_header>();
        if cap.len() < HEADER || cap.len() % 8 != 0 {
            return Err(EINVAL);
        }
        // SAFETY: `raw` is valid (type invariant); `vfio_info_add_capability`
        // only reads `cap.len()` bytes from `cap` (header included), which
        // is long enough per the check above, and copies them.
        to_result(unsafe {
            bindings::vfio_info_add_capability(self.raw, cap.as_ptr().cast_mut().cast(), cap.len())
        })
    }
}

impl RegionCaps<'_> {
    /// Appends a `VFIO_REGION_INFO_CAP_SPARSE_MMAP` capability: the parts
    /// of the region user space may `mmap`, as `(offset, size)` pairs
    /// relative to the region's start. A VMM maps exactly these and traps
    /// the rest.
    pub fn add_sparse_mmap(&mut self, areas: &[(u64, u64)]) -> Result {
        // struct vfio_region_info_cap_sparse_mmap: header (id u16,
        // version u16, next u32), nr_areas u32, reserved u32, then
        // {offset u64, size u64} per area.
        let len = 16usize
            .checked_add(areas.len().checked_mul(16).ok_or(EINVAL)?)
            .ok_or(EINVAL)?;
        let mut cap = KVec::from_elem(0u8, len, GFP_KERNEL)?;
        let id = bindings::VFIO_REGION_INFO_CAP_SPARSE_MMAP as u16;
        cap[0..2].copy_from_slice(&id.to_ne_bytes());
        cap[2..4].copy_from_slice(&1u16.to_ne_bytes());
        let n = u32::try_from(areas.len()).map_err(|_| EINVAL)?;
        cap[8..12].copy_from_slice(&n.to_ne_bytes());
        for (i, &(offset, size)) in areas.iter().enumerate() {
            let at = 16 + 16 * i;
            cap[at..at + 8].copy_from_slice(&offset.to_ne_bytes());
            cap[at + 8..at + 16].copy_from_slice(&size.to_ne_bytes());
        }
        self.add(&cap)
    }
}

/// Pages of the user's I/O address space pinned for the device, unpinned
/// when dropped.
///
/// The VFIO core requires a device that pins pages to give them up when
/// the user unmaps them: its [`Driver::dma_unmap`] must drop every
/// `PinnedPages` overlapping the range (see [`PinnedPages::overlaps`]).
/// They must also be dropped before the device is closed.
///
/// # Invariants
///
/// `npage` pages from the page-aligned `iova` are pinned through `dev`,
/// whose pointers are in `pages`; they are unpinned once, in `drop`.
pub struct PinnedPages<T: Driver> {
    dev: ARef<Device<T>>,
    iova: u64,
    pages: KVec<*mut bindings::page>,
}

// SAFETY: the pins are owned by this value; the page pointers are only
// handed out as long as it lives, and unpinning may happen on any thread.
unsafe impl<T: Driver> Send for PinnedPages<T> {}
// SAFETY: `&self` only reads.
unsafe impl<T: Driver> Sync for PinnedPages<T> {}

impl<T: Driver> PinnedPages<T> {
    /// First IOVA of the pinned range (page aligned).
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// Bytes pinned.
    pub fn len(&self) -> u64 {
        self.pages.len() as u64 * kernel::page::PAGE_SIZE as u64
    }

    /// Whether nothing is pinned (never, for a value that exists).
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Whether the pinned range overlaps `[iova, iova + length)`.
    pub fn overlaps(&self, iova: u64, length: u64) -> bool {
        let end = iova.saturating_add(length);
        iova < self.iova.saturating_add(self.len()) && self.iova < end
    }
}

impl<T: Driver> Drop for PinnedPages<T> {
    fn drop(&mut self) {
        // SAFETY: the pins were taken through `dev` (type invariant) and
        // are given back once; `pages.len()` fits in `c_int` (checked when
        // pinning).
        unsafe {
            bindings::vfio_unpin_pages(self.dev.as_raw(), self.iova, self.pages.len() as i32)
        };
    }
}

/// `VFIO_DEVICE_GET_INFO`.
pub const DEVICE_GET_INFO: u32 = vfio_io(7);
/// `VFIO_DEVICE_GET_IRQ_INFO`.
pub const DEVICE_GET_IRQ_INFO: u32 = vfio_io(9);
/// `VFIO_DEVICE_SET_IRQS`.
pub const DEVICE_SET_IRQS: u32 = vfio_io(10);
/// `VFIO_DEVICE_RESET`.
pub const DEVICE_RESET: u32 = vfio_io(11);

/// `_IO(VFIO_TYPE, VFIO_BASE + nr)`: bindgen cannot evaluate the macro.
const fn vfio_io(nr: u32) -> u32 {
    ((bindings::VFIO_TYPE as u32) << 8) | (bindings::VFIO_BASE + nr)
}

/// An emulated VFIO device carrying the driver's state `T`.
///
/// # Invariants
///
/// - `vdev` was allocated and initialised by `_vfio_alloc_device` with the
///   size of `Self`, and `vdev.ops` points to `DeviceVTable::<T>::OPS`
///   (whose `release` drops `data`).
/// - `data` is initialised and pinned for the whole life of the object.
/// - The object is only reached through references counted by the embedded
///   `struct device` (`vdev.device`).
#[repr(C)]
#[pin_data]
pub struct Device<T: Driver> {
    vdev: Opaque<bindings::vfio_device>,
    #[pin]
    data: T,
}

// SAFETY: The VFIO core may call into the device from any thread, and `T`
// is `Send + Sync`; the C object is only mutated by the core under its own
// locks.
unsafe impl<T: Driver> Send for Device<T> {}
// SAFETY: See `Send`.
unsafe impl<T: Driver> Sync for Device<T> {}

impl<T: Driver> Device<T> {
    /// The raw `struct vfio_device`.
    pub fn as_raw(&self) -> *mut bindings::vfio_device {
        self.vdev.get()
    }

    /// The parent device given to [`Device::new`].
    pub fn parent(&self) -> &device::Device {
        // SAFETY: `vdev.dev` was set to a valid device by
        // `_vfio_alloc_device`; the VFIO device holds a reference to it
        // (its embedded device's parent) for as long as `self` lives.
        unsafe { device::Device::from_raw((*self.as_raw()).dev) }
    }

    /// Recovers the device from its `struct vfio_device`.
    ///
    /// # Safety
    ///
    /// `vdev` must be the `vdev` field of a live `Device<T>`, and the
    /// returned reference must not outlive it.
    unsafe fn from_raw<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
        // SAFETY: `vdev` is the first field of a `#[repr(C)]` `Device<T>`,
        // so the pointers are equal; liveness is the caller's promise.
        unsafe { &*vdev.cast::<Self>() }
    }
}

impl<T: Driver> Device<T> {
    /// Copies between `buf` and the user's I/O address space at `iova`, as
    /// the device's DMA would: through the iommufd access (or the legacy
    /// container) the device is attached to. `write` copies `buf` to the
    /// user's memory.
    ///
    /// Fails with `EINVAL` if the device is not attached to an address space
    /// and `EFAULT` if the range is not mapped (or, for a write, is mapped
    /// read-only). May sleep.
    pub fn dma_rw(&self, iova: u64, buf: &mut [u8], write: bool) -> Result {
        // SAFETY: the device is live; `buf` is valid for reads and writes of
        // `buf.len()` bytes for the duration of the call, which copies and
        // keeps no reference.
        to_result(unsafe {
            bindings::vfio_dma_rw(
                self.as_raw(),
                iova,
                buf.as_mut_ptr().cast(),
                buf.len(),
                write,
            )
        })
    }
}

impl<T: Driver> Device<T> {
    /// Removes every user-space mapping of the device's regions (all the
    /// `mmap`s of its file descriptors); later accesses through them fault
    /// (`SIGBUS`), since a device that inserts its pages at `mmap` has no
    /// fault handler.
    pub fn zap_mappings(&self) {
        // SAFETY: the core gives every initialised device an inode, kept
        // until the device is released, and makes it the `f_mapping` of
        // the device's files, so this covers every mapping of them.
        unsafe {
            let inode = (*self.as_raw()).inode;
            if !inode.is_null() {
                bindings::unmap_mapping_range((*inode).i_mapping, 0, 0, 1);
            }
        }
    }

    /// Pins the `npage` pages of the user's I/O address space from the
    /// page containing `iova`, for reading (and writing, if `write`).
    ///
    /// Only valid while the device is open (`EINVAL` otherwise, and when
    /// the driver has no `dma_unmap`); `EFAULT`/`ENOENT`-class errors from
    /// the core when the range is not mapped.
    pub fn pin_pages(&self, iova: u64, npage: usize, write: bool) -> Result<PinnedPages<T>> {
        let count = i32::try_from(npage).map_err(|_| EINVAL)?;
        if count == 0 || !T::HAS_DMA_UNMAP {
            return Err(EINVAL);
        }
        let iova = iova & !(kernel::page::PAGE_SIZE as u64 - 1);
        let mut pages = KVec::from_elem(core::ptr::null_mut(), npage, GFP_KERNEL)?;
        let prot = if write {
            bindings::IOMMU_READ | bindings::IOMMU_WRITE
        } else {
            bindings::IOMMU_READ
        };
        // SAFETY: the device is live; `pages` has room for `npage` page
        // pointers. The core asserts the device is open (and fails cleanly
        // otherwise: callers only pin between open and close).
        let ret = unsafe {
            bindings::vfio_pin_pages(self.as_raw(), iova, count, prot as i32, pages.as_mut_ptr())
        };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        if ret != count {
            // The core pins all or nothing; anything else is a bug there.
            return Err(EFAULT);
        }
        // INVARIANT: all `npage` pages are pinned through this device.
        Ok(PinnedPages {
            dev: ARef::from(self),
            iova,
            pages,
        })
    }
}

impl<T: Driver> Deref for Device<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.data
    }
}

// SAFETY: The reference count is the one of the embedded `struct device`
// (`vdev.device`), which keeps the allocation alive; `put_device` on the last
// reference calls the VFIO core's release, which frees the object.
unsafe impl<T: Driver> AlwaysRefCounted for Device<T> {
    fn inc_ref(&self) {
        // SAFETY: a shared reference proves the count is non-zero.
        unsafe { bindings::get_device(addr_of_mut!((*self.as_raw()).device)) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        let raw = obj.as_ptr().cast::<bindings::vfio_device>();
        // SAFETY: the caller owns one reference to a live device.
        unsafe { bindings::put_device(addr_of_mut!((*raw).device)) };
    }
}

/// A newly allocated [`Device`] that has not been registered yet.
///
/// Registration consumes it, so a device is registered at most once.
///
/// # Invariants
///
/// The device has never been registered with the VFIO core.
pub struct UnregisteredDevice<T: Driver>(ARef<Device<T>>);

impl<T: Driver> UnregisteredDevice<T> {
    /// Allocates a device whose parent is `parent` and initialises its data
    /// with `data`. The device is not visible to user space until it is
    /// registered with [`Registration::new`].
    pub fn new(parent: &device::Device, data: impl PinInit<T, Error>) -> Result<Self> {
        // `_vfio_alloc_device` uses `kvzalloc`, which aligns to at least 8
        // bytes.
        const { assert!(core::mem::align_of::<Device<T>>() <= 8) };
        // While `data` is not initialised, the device must not drop it:
        // allocate with an ops table without `release` and install the
        // real one after `data` is initialised.
        let alloc_ops = const { &DeviceVTable::<T>::ALLOC_OPS };
        // SAFETY: `parent` is a valid device by its type invariant; the size
        // covers `Device<T>`, whose first field is the `struct vfio_device`;
        // `alloc_ops` is a static table.
        let raw = unsafe {
            bindings::_vfio_alloc_device(
                core::mem::size_of::<Device<T>>(),
                super::raw_device(parent),
                alloc_ops,
            )
        };
        let raw = from_err_ptr(raw)?;
        let this = raw.cast::<Device<T>>();
        // SAFETY: `raw` points to a live allocation of `size_of::<Device<T>>()`
        // bytes; `data` is a field inside it.
        let data_slot = unsafe { addr_of_mut!((*this).data) };
        // SAFETY: `data_slot` is valid for writes, not initialised yet, and
        // will not move: the allocation is only freed by the VFIO core.
        if let Err(e) = unsafe { data.__pinned_init(data_slot) } {
            // SAFETY: the allocation holds one reference, ours; with
            // `alloc_ops` the core's release does not touch `data`.
            unsafe { bindings::put_device(addr_of_mut!((*raw).device)) };
            return Err(e);
        }
        // SAFETY: the device is not registered yet, so nothing else reads
        // `ops`; the table is static.
        unsafe { (*raw).ops = const { &DeviceVTable::<T>::OPS } };
        // SAFETY: `this` is valid, carries one reference that we hand over
        // to the `ARef`, and satisfies the type invariants from here on.
        let dev = unsafe { ARef::from_raw(NonNull::new_unchecked(this)) };
        // INVARIANT: just allocated, never registered.
        Ok(UnregisteredDevice(dev))
    }
}

impl<T: Driver> Deref for UnregisteredDevice<T> {
    type Target = Device<T>;

    fn deref(&self) -> &Device<T> {
        &self.0
    }
}

/// A [`Device`] registered with the VFIO core, visible to user space.
///
/// Dropping it unregisters the device, which waits until every user has
/// closed it (the core calls [`Driver::request`] meanwhile).
///
/// # Invariants
///
/// `dev` is registered with `vfio_register_emulated_iommu_dev`.
pub struct Registration<T: Driver> {
    dev: ARef<Device<T>>,
}

impl<T: Driver> Registration<T> {
    /// Registers `dev` as an emulated-IOMMU VFIO device.
    pub fn new(dev: UnregisteredDevice<T>) -> Result<Self> {
        let UnregisteredDevice(dev) = dev;
        // SAFETY: `dev` is fully initialised and, by the invariant of
        // `UnregisteredDevice`, not registered.
        to_result(unsafe { bindings::vfio_register_emulated_iommu_dev(dev.as_raw()) })?;
        // INVARIANT: just registered.
        Ok(Self { dev })
    }

    /// The registered device.
    pub fn device(&self) -> &ARef<Device<T>> {
        &self.dev
    }
}

impl<T: Driver> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: registered, by the type invariant; this may sleep until
        // the users are gone, which `Drop` of a registration allows.
        unsafe { bindings::vfio_unregister_group_dev(self.dev.as_raw()) };
    }
}

/// The C ops table for a [`Driver`] and its trampolines.
struct DeviceVTable<T: Driver>(PhantomData<T>);

impl<T: Driver> DeviceVTable<T> {
    const OPS: bindings::vfio_device_ops = bindings::vfio_device_ops {
        name: kernel::str::as_char_ptr_in_const_context(T::NAME).cast_mut(),
        release: Some(Self::release),
        bind_iommufd: Some(bindings::vfio_iommufd_emulated_bind),
        unbind_iommufd: Some(bindings::vfio_iommufd_emulated_unbind),
        attach_ioas: Some(bindings::vfio_iommufd_emulated_attach_ioas),
        detach_ioas: Some(bindings::vfio_iommufd_emulated_detach_ioas),
        open_device: Some(Self::open_device),
        close_device: Some(Self::close_device),
        read: if T::HAS_READ { Some(Self::read) } else { None },
        write: if T::HAS_WRITE {
            Some(Self::write)
        } else {
            None
        },
        ioctl: if T::HAS_IOCTL {
            Some(Self::ioctl)
        } else {
            None
        },
        get_region_info_caps: if T::HAS_REGION_INFO {
            Some(Self::get_region_info_caps)
        } else {
            None
        },
        request: if T::HAS_REQUEST {
            Some(Self::request)
        } else {
            None
        },
        mmap: if T::HAS_MMAP { Some(Self::mmap) } else { None },
        dma_unmap: if T::HAS_DMA_UNMAP {
            Some(Self::dma_unmap)
        } else {
            None
        },
        // SAFETY: an all-zero `vfio_device_ops` is valid: every other member
        // is an optional function pointer.
        ..unsafe { core::mem::zeroed() }
    };

    /// [`Self::OPS`] without `release`, used until the data is initialised.
    const ALLOC_OPS: bindings::vfio_device_ops = bindings::vfio_device_ops {
        release: None,
        ..Self::OPS
    };

    /// # Safety
    ///
    /// Called by the VFIO core once, after the last reference is gone.
    unsafe extern "C" fn release(vdev: *mut bindings::vfio_device) {
        let this = vdev.cast::<Device<T>>();
        // SAFETY: `OPS` (with this callback) is only installed once `data`
        // is initialised, and nothing uses the device any more; the core
        // frees the memory after we return.
        unsafe { core::ptr::drop_in_place(addr_of_mut!((*this).data)) };
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device.
    unsafe extern "C" fn open_device(vdev: *mut bindings::vfio_device) -> ffi::c_int {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        match T::open(dev) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device.
    unsafe extern "C" fn close_device(vdev: *mut bindings::vfio_device) {
        // SAFETY: the core passes a live device that uses `OPS`.
        T::close(unsafe { Device::<T>::from_raw(vdev) });
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device, a user buffer of
    /// `count` bytes and a valid position pointer.
    unsafe extern "C" fn read(
        vdev: *mut bindings::vfio_device,
        buf: *mut ffi::c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        let mut out = UserSlice::new(UserPtr::from_ptr(buf.cast()), count).writer();
        // SAFETY: `ppos` is valid for reads and writes during the call.
        let pos = unsafe { &mut *ppos };
        Self::rw_result(T::read(dev, &mut out, *pos as u64), pos)
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device, a user buffer of
    /// `count` bytes and a valid position pointer.
    unsafe extern "C" fn write(
        vdev: *mut bindings::vfio_device,
        buf: *const ffi::c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        let mut input = UserSlice::new(UserPtr::from_ptr(buf.cast_mut().cast()), count).reader();
        // SAFETY: `ppos` is valid for reads and writes during the call.
        let pos = unsafe { &mut *ppos };
        Self::rw_result(T::write(dev, &mut input, *pos as u64), pos)
    }

    /// Turns a read/write result into the C return value, advancing `pos`.
    fn rw_result(result: Result<usize>, pos: &mut bindings::loff_t) -> isize {
        match result {
            Ok(n) => {
                // `n` is at most the user's `count`, which fits `isize`.
                *pos = pos.saturating_add(n as bindings::loff_t);
                n as isize
            }
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device.
    unsafe extern "C" fn ioctl(
        vdev: *mut bindings::vfio_device,
        cmd: ffi::c_uint,
        arg: ffi::c_ulong,
    ) -> ffi::c_long {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        match T::ioctl(dev, Ioctl { cmd, arg }) {
            Ok(ret) => ret as ffi::c_long,
            Err(e) => e.to_errno() as ffi::c_long,
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device, the user's region
    /// info (index filled in) and an empty capability chain.
    unsafe extern "C" fn get_region_info_caps(
        vdev: *mut bindings::vfio_device,
        info: *mut bindings::vfio_region_info,
        caps: *mut bindings::vfio_info_cap,
    ) -> ffi::c_int {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        // SAFETY: `info` is the core's kernel copy, valid during the call.
        let info = unsafe { &mut *info };
        let mut caps = RegionCaps {
            raw: caps,
            _p: PhantomData,
        };
        match T::region_info(dev, info.index, &mut caps) {
            Ok(r) => {
                info.flags = r.flags;
                info.size = r.size;
                info.offset = r.offset;
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device and a VMA being
    /// set up by `mmap(2)`.
    unsafe extern "C" fn mmap(
        vdev: *mut bindings::vfio_device,
        vma: *mut bindings::vm_area_struct,
    ) -> ffi::c_int {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        // SAFETY: `vma` is a VMA under construction by `mmap(2)`, with the
        // mmap lock held, valid for the call.
        let vma = unsafe { Vma::from_raw(vma) };
        match T::mmap(dev, vma) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device.
    unsafe extern "C" fn request(vdev: *mut bindings::vfio_device, count: ffi::c_uint) {
        // SAFETY: the core passes a live device that uses `OPS`.
        T::request(unsafe { Device::<T>::from_raw(vdev) }, count);
    }

    /// # Safety
    ///
    /// Called by the VFIO core (iommufd) with a registered device.
    unsafe extern "C" fn dma_unmap(vdev: *mut bindings::vfio_device, iova: u64, length: u64) {
        // SAFETY: the core passes a live device that uses `OPS`.
        T::dma_unmap(unsafe { Device::<T>::from_raw(vdev) }, iova, length);
    }
}

/// The vfio-pci device API: region and IRQ indexes, flags.
pub mod pci {
    use super::bindings;

    /// Region index of BAR `n` (0..=5) is `BAR0_REGION_INDEX + n`.
    pub const BAR0_REGION_INDEX: u32 = bindings::VFIO_PCI_BAR0_REGION_INDEX;
    /// Region index of the expansion ROM.
    pub const ROM_REGION_INDEX: u32 = bindings::VFIO_PCI_ROM_REGION_INDEX;
    /// Region index of the configuration space.
    pub const CONFIG_REGION_INDEX: u32 = bindings::VFIO_PCI_CONFIG_REGION_INDEX;
    /// Number of regions of a vfio-pci device.
    pub const NUM_REGIONS: u32 = bindings::VFIO_PCI_NUM_REGIONS;
    /// IRQ index of MSI-X.
    pub const MSIX_IRQ_INDEX: u32 = bindings::VFIO_PCI_MSIX_IRQ_INDEX;
    /// IRQ index of the error notification (`VFIO_PCI_ERR_IRQ_INDEX`).
    pub const ERR_IRQ_INDEX: u32 = bindings::VFIO_PCI_ERR_IRQ_INDEX;
    /// IRQ index of the release request (`VFIO_PCI_REQ_IRQ_INDEX`): the
    /// device asks its user to let it go.
    pub const REQ_IRQ_INDEX: u32 = bindings::VFIO_PCI_REQ_IRQ_INDEX;
    /// `VFIO_IRQ_INFO_EVENTFD`: the index takes eventfd triggers.
    pub const IRQ_INFO_EVENTFD: u32 = bindings::VFIO_IRQ_INFO_EVENTFD;
    /// `VFIO_IRQ_INFO_NORESIZE`: enabled vectors cannot be added to without
    /// disabling the index first.
    pub const IRQ_INFO_NORESIZE: u32 = bindings::VFIO_IRQ_INFO_NORESIZE;
    /// Number of IRQ indexes of a vfio-pci device.
    pub const NUM_IRQS: u32 = bindings::VFIO_PCI_NUM_IRQS;

    /// `VFIO_DEVICE_FLAGS_PCI`: the device follows the vfio-pci API.
    pub const DEVICE_FLAGS_PCI: u32 = bindings::VFIO_DEVICE_FLAGS_PCI;
    /// `VFIO_DEVICE_FLAGS_RESET`: the device supports `VFIO_DEVICE_RESET`.
    pub const DEVICE_FLAGS_RESET: u32 = bindings::VFIO_DEVICE_FLAGS_RESET;

    /// `VFIO_REGION_INFO_FLAG_READ`.
    pub const REGION_FLAG_READ: u32 = bindings::VFIO_REGION_INFO_FLAG_READ;
    /// `VFIO_REGION_INFO_FLAG_WRITE`.
    pub const REGION_FLAG_WRITE: u32 = bindings::VFIO_REGION_INFO_FLAG_WRITE;
    /// `VFIO_REGION_INFO_FLAG_MMAP`.
    pub const REGION_FLAG_MMAP: u32 = bindings::VFIO_REGION_INFO_FLAG_MMAP;
}

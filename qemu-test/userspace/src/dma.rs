// SPDX-License-Identifier: GPL-2.0

//! Driving the simulated PF's data mover from user space: DMA memory mapped
//! into the device's IOAS, eventfd interrupts, the BAR0 queue registers of
//! [`crate::abi`] and the descriptors of [`crate::desc`] (both the simulated
//! PF's own files).

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;
use std::time::Instant;

use vfio_bindings::bindings::vfio::vfio_irq_set;
use vfio_bindings::bindings::vfio::VFIO_IRQ_SET_ACTION_MASK;
use vfio_bindings::bindings::vfio::VFIO_IRQ_SET_ACTION_TRIGGER;
use vfio_bindings::bindings::vfio::VFIO_IRQ_SET_ACTION_UNMASK;
use vfio_bindings::bindings::vfio::VFIO_IRQ_SET_DATA_EVENTFD;
use vfio_bindings::bindings::vfio::VFIO_IRQ_SET_DATA_NONE;
pub use vfio_bindings::bindings::vfio::VFIO_PCI_ERR_IRQ_INDEX as ERR_INDEX;
pub use vfio_bindings::bindings::vfio::VFIO_PCI_MSIX_IRQ_INDEX as MSIX_INDEX;
pub use vfio_bindings::bindings::vfio::VFIO_PCI_REQ_IRQ_INDEX as REQ_INDEX;
pub use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::ioctl::ioctl_with_mut_ptr;

use crate::abi;
use crate::desc::Completion;
use crate::desc::Descriptor;
use crate::desc::Opcode;
use crate::desc::COMPLETION_SIZE;
use crate::desc::DESC_SIZE;
use crate::vfio;
use crate::vfio::CdevDevice;
use crate::vfio::VfioDevice;

/// Region index of BAR0.
pub const BAR0: u32 = vfio::uapi::VFIO_PCI_BAR0_REGION_INDEX;
/// Region index of BAR2 (doorbells).
pub const BAR2: u32 = vfio::uapi::VFIO_PCI_BAR2_REGION_INDEX;

/// Page-aligned anonymous memory, the tenant's DMA buffer.
pub struct DmaMem {
    ptr: *mut u8,
    len: usize,
}

impl DmaMem {
    /// `len` bytes (a page multiple) of zeroed memory.
    pub fn new(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh private anonymous mapping.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(DmaMem {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The user address.
    pub fn addr(&self) -> u64 {
        self.ptr as u64
    }

    /// The user address as a pointer, for `vfio_dma_map`: the bytes are
    /// only ever touched with volatile accesses, never through a Rust
    /// reference, as memory a device writes must be.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes, as the device last wrote them. Volatile reads: the
    /// device writes behind the compiler's back.
    pub fn read(&self, off: usize, out: &mut [u8]) {
        assert!(off + out.len() <= self.len);
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: in bounds (asserted), mapping live while `self` is.
            *b = unsafe { self.ptr.add(off + i).read_volatile() };
        }
    }

    /// Writes `data` at `off`.
    pub fn write(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len);
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: in bounds (asserted), mapping live while `self` is.
            unsafe { self.ptr.add(off + i).write_volatile(b) };
        }
    }

    /// `len` bytes at `off`.
    pub fn bytes(&self, off: usize, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.read(off, &mut v);
        v
    }
}

impl Drop for DmaMem {
    fn drop(&mut self) {
        // SAFETY: our mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Maps `mem` at `iova` in the device's IOAS, read-write.
pub fn map(dev: &CdevDevice, mem: &DmaMem, iova: u64) -> Result<(), String> {
    map_range(dev, mem.as_ptr(), mem.len(), iova)
}

/// Maps `len` bytes of user memory at `va` to `iova`, read-write.
fn map_range(dev: &CdevDevice, va: *mut u8, len: usize, iova: u64) -> Result<(), String> {
    // SAFETY: `va` is a `DmaMem`, which touches its bytes only with
    // volatile accesses and makes no Rust reference to them, as
    // `vfio_dma_map` requires of memory a device may write.
    unsafe { dev.iommu.vfio_dma_map(iova, len, va) }.map_err(|e| {
        format!(
            "IOMMU_IOAS_MAP({iova:#x}, {len:#x}): {}",
            vfio::error_chain(&e)
        )
    })
}

/// Unmaps `[iova, iova + len)` from the device's IOAS.
pub fn unmap(dev: &CdevDevice, iova: u64, len: u64) -> Result<(), String> {
    dev.iommu.vfio_dma_unmap(iova, len as usize).map_err(|e| {
        format!(
            "IOMMU_IOAS_UNMAP({iova:#x}, {len:#x}): {}",
            vfio::error_chain(&e)
        )
    })
}

/// A new non-blocking eventfd.
pub fn eventfd() -> io::Result<EventFd> {
    EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
}

/// Waits up to `timeout` for `efd` to be signalled; returns its count (0 on
/// timeout).
pub fn wait_eventfd(efd: &EventFd, timeout: Duration) -> u64 {
    let mut pfd = libc::pollfd {
        fd: efd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    if n <= 0 {
        return 0;
    }
    efd.read().unwrap_or(0)
}

/// Issues `VFIO_DEVICE_SET_IRQS` with a raw payload: the header of
/// `struct vfio_irq_set`, then `data`; `argsz` is the true size unless
/// `argsz` overrides it (to test that the kernel rejects a lie before
/// reading).
pub fn set_irqs_raw(
    dev: &impl AsRawFd,
    flags: u32,
    index: u32,
    start: u32,
    count: u32,
    data: &[u8],
    argsz: Option<u32>,
) -> io::Result<()> {
    let hdr = std::mem::size_of::<vfio_irq_set>();
    // u32 words: the alignment of `struct vfio_irq_set`.
    let mut buf = vec![0u32; (hdr + data.len()).div_ceil(4)];
    let head = vfio_irq_set {
        argsz: argsz.unwrap_or((hdr + data.len()) as u32),
        flags,
        index,
        start,
        count,
        data: Default::default(),
    };
    // SAFETY: `buf` has room for the header, 4-byte aligned.
    unsafe { buf.as_mut_ptr().cast::<vfio_irq_set>().write(head) };
    // SAFETY: `data.len()` bytes fit after the header (allocated above).
    unsafe {
        std::ptr::copy_nonoverlapping(
            data.as_ptr(),
            buf.as_mut_ptr().cast::<u8>().add(hdr),
            data.len(),
        )
    };
    // SAFETY: `buf` outlives the call; the kernel reads at most `argsz`
    // bytes, never more than we allocated unless `argsz` lies, which the
    // caller uses to test that the kernel rejects it before reading.
    let r = unsafe { ioctl_with_mut_ptr(dev, vfio::VFIO_DEVICE_SET_IRQS(), buf.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `DATA_EVENTFD | ACTION_TRIGGER`.
pub const IRQ_SET_EVENTFD_TRIGGER: u32 = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
/// `DATA_NONE | ACTION_TRIGGER`.
pub const IRQ_SET_NONE_TRIGGER: u32 = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
/// `DATA_NONE | ACTION_MASK`.
pub const IRQ_SET_NONE_MASK: u32 = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK;
/// `DATA_NONE | ACTION_UNMASK`.
pub const IRQ_SET_NONE_UNMASK: u32 = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK;

/// Installs `efd` as the trigger of interrupt `start` of IRQ index
/// `index`: through `vfio-ioctls` for interrupt 0, which its
/// `enable_irq` covers (it always starts at 0), as a raw request
/// otherwise.
pub fn set_eventfd(dev: &VfioDevice, index: u32, start: u32, efd: &EventFd) -> Result<(), String> {
    let what = || format!("VFIO_DEVICE_SET_IRQS(eventfd, index {index}, {start})");
    if start == 0 {
        return dev
            .enable_irq(index, vec![efd])
            .map_err(|e| format!("{}: {}", what(), vfio::error_chain(&e)));
    }
    set_irqs_raw(
        dev,
        IRQ_SET_EVENTFD_TRIGGER,
        index,
        start,
        1,
        &efd.as_raw_fd().to_ne_bytes(),
        None,
    )
    .map_err(|e| format!("{}: {e}", what()))
}

/// Installs `efd` as the trigger of MSI-X vector `vector`.
pub fn set_vector_eventfd(dev: &VfioDevice, vector: u32, efd: &EventFd) -> Result<(), String> {
    set_eventfd(dev, MSIX_INDEX, vector, efd)
}

/// Issues `VFIO_DEVICE_SET_IRQS` with `DATA_NONE` and action `flags` on
/// `count` MSI-X vectors from 0 (`count == 0`: the whole index).
pub fn set_vectors_none(dev: &impl AsRawFd, flags: u32, count: u32) -> io::Result<()> {
    set_irqs_raw(dev, flags, MSIX_INDEX, 0, count, &[], None)
}

/// The completion record at byte `off` of `mem`, if written.
pub fn completion(mem: &DmaMem, off: usize) -> Option<Completion> {
    let b = mem.bytes(off, COMPLETION_SIZE);
    let mut w = [0u64; COMPLETION_SIZE / 8];
    for (w, b) in w.iter_mut().zip(b.chunks_exact(8)) {
        let mut le = [0u8; 8];
        le.copy_from_slice(b);
        *w = u64::from_le_bytes(le);
    }
    Completion::decode(&w)
}

/// A NOP descriptor without a completion record.
pub fn nop() -> Descriptor {
    Descriptor::new(Opcode::Nop, 0, 0, 0)
}

/// Writes descriptor `d` at byte `off` of `mem`.
pub fn write_desc(mem: &DmaMem, off: usize, d: &Descriptor) {
    mem.write(off, &d.to_bytes());
}

/// Enables queue `index` with completion vector `vector` (its ring, if
/// any, already programmed); fails unless the queue runs. `what` names the queue in the error.
fn enable_queue(dev: &CdevDevice, index: u16, vector: u32, what: &str) -> Result<(), String> {
    let blk = abi::queue(index);
    dev.write_u32(
        BAR0,
        blk + abi::Q_CONTROL,
        abi::CONTROL_ENABLE | (vector << abi::CONTROL_VECTOR_SHIFT),
    )?;
    let status = dev.read_u32(BAR0, blk + abi::Q_STATUS)?;
    if status & abi::STATUS_RUNNING == 0 {
        return Err(format!("{what} did not start: STATUS {status:#x}"));
    }
    Ok(())
}

/// Enables memory space, bus mastering and the device (`DEVCTL`).
fn enable_device(dev: &CdevDevice) -> Result<(), String> {
    dev.enable()?;
    dev.write_u32(BAR0, abi::DEVCTL, abi::DEVCTL_ENABLE)
}

/// A queue of an ADI driven from user space: its ring in the tenant's
/// memory, its doorbell mapped from BAR2, and the next tail to publish.
pub struct Queue<'a> {
    dev: &'a CdevDevice,
    /// The ring (and everything else the test needs) lives here.
    pub mem: &'a DmaMem,
    /// IOVA `mem` is mapped at.
    pub iova: u64,
    ring_off: usize,
    size: u32,
    tail: u32,
    doorbell: vfio::Mapping,
    index: u16,
}

impl<'a> Queue<'a> {
    /// Programs queue `index` with a ring of `size` descriptors at byte
    /// `ring_off` of `mem` (mapped at `iova`), completion vector `vector`,
    /// enables the device and the queue, and maps its doorbell.
    pub fn start(
        dev: &'a CdevDevice,
        mem: &'a DmaMem,
        iova: u64,
        index: u16,
        ring_off: usize,
        size: u32,
        vector: u32,
    ) -> Result<Self, String> {
        let blk = abi::queue(index);
        enable_device(dev)?;
        dev.write_u64(BAR0, blk + abi::Q_RING_BASE, iova + ring_off as u64)?;
        dev.write_u32(BAR0, blk + abi::Q_RING_SIZE, size)?;
        enable_queue(dev, index, vector, &format!("queue {index}"))?;
        let doorbell = dev
            .mmap(
                BAR2,
                u64::from(index) * abi::DOORBELL_PAGE,
                abi::DOORBELL_PAGE as usize,
            )
            .map_err(|e| format!("mmap doorbell of queue {index}: {e}"))?;
        Ok(Queue {
            dev,
            mem,
            iova,
            ring_off,
            size,
            tail: 0,
            doorbell,
            index,
        })
    }

    /// Writes `d` to the next ring slot (not yet visible to the device).
    pub fn push(&mut self, d: &Descriptor) {
        let slot = (self.tail % self.size) as usize;
        write_desc(self.mem, self.ring_off + slot * DESC_SIZE, d);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes the tail through the doorbell: a plain store to the mapped
    /// page, no system call.
    pub fn ring(&self) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.doorbell.write_u32(abi::DOORBELL_TAIL, self.tail);
    }

    /// The queue's `STATUS` register.
    pub fn status(&self) -> Result<u32, String> {
        self.dev
            .read_u32(BAR0, abi::queue(self.index) + abi::Q_STATUS)
    }
}

/// Polls the completion record at byte `off` of `mem` until the device
/// has written it or `timeout` passes.
pub fn wait_completion(mem: &DmaMem, off: usize, timeout: Duration) -> Option<Completion> {
    let start = Instant::now();
    loop {
        if let Some(c) = completion(mem, off) {
            return Some(c);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The portal of a shared ADI, driven from user space: descriptors are
/// written into the mapped portal page itself, then the tail is stored.
pub struct Portal {
    page: vfio::Mapping,
    tail: u32,
}

impl Portal {
    /// Enables the device and queue 0 (the portal) with completion vector
    /// `vector`, and maps the portal page.
    pub fn start(dev: &CdevDevice, vector: u32) -> Result<Self, String> {
        enable_device(dev)?;
        enable_queue(dev, 0, vector, "portal")?;
        let page = dev
            .mmap(BAR2, 0, abi::DOORBELL_PAGE as usize)
            .map_err(|e| format!("mmap portal: {e}"))?;
        Ok(Portal { page, tail: 0 })
    }

    /// The mapped portal page.
    pub fn page(&self) -> &vfio::Mapping {
        &self.page
    }

    /// Submits `d`: writes it into the next slot, then the tail.
    pub fn submit(&mut self, d: &Descriptor) {
        let slot = (self.tail % abi::PORTAL_SLOTS) as usize;
        self.page.write_bytes(slot * DESC_SIZE, &d.to_bytes());
        self.tail = self.tail.wrapping_add(1);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.page.write_u32(abi::PORTAL_TAIL, self.tail);
    }
}

/// An ADI of a type, created and opened through its iommufd cdev, with
/// `mem` mapped into its IOAS and MSI-X vector 0 wired to `efd`: what a
/// test needs to drive the data path. Fields drop in order: the mappings
/// and fds close before the ADI is removed (removal waits for them).
pub struct Tenant {
    /// The opened device.
    pub dev: CdevDevice,
    /// The tenant's memory, mapped at the IOVA given to `new`.
    pub mem: DmaMem,
    /// The eventfd of MSI-X vector 0.
    pub efd: EventFd,
    /// The ADI, removed on drop.
    pub mdev: crate::mdev::Removed,
}

impl Tenant {
    /// Creates an ADI of type `ty`, opens it, maps `mem_len` bytes of fresh
    /// memory at `iova` and installs an eventfd on vector 0.
    pub fn new(ty: &crate::mdev::MdevType, mem_len: usize, iova: u64) -> Result<Self, String> {
        let mdev = crate::mdev::Removed(ty.create()?.map_err(|e| format!("create: {e}"))?);
        let dev = CdevDevice::open(mdev.0.cdev()?)?;
        let mem = DmaMem::new(mem_len).map_err(|e| format!("mmap: {e}"))?;
        map(&dev, &mem, iova)?;
        let efd = eventfd().map_err(|e| format!("eventfd: {e}"))?;
        set_vector_eventfd(&dev.vfio, 0, &efd)?;
        Ok(Tenant {
            dev,
            mem,
            efd,
            mdev,
        })
    }

    /// The ADI's counter `stats/<name>`.
    pub fn stat(&self, name: &str) -> Result<u64, String> {
        crate::sysfs::read_u64(self.mdev.0.dir().join("stats").join(name))
    }

    /// Slow-path traps so far, over all regions.
    pub fn traps(&self) -> Result<u64, String> {
        Ok(self.stat("traps_bar0")? + self.stat("traps_config")? + self.stat("traps_bar2")?)
    }
}

/// Removes the ADI `m` while `dev`, its open device, has a request
/// eventfd installed, as a VMM would: the removal must ask through the
/// eventfd within `timeout`, wait while the device stays open, and finish
/// once `dev` is closed.
pub fn remove_while_open(
    m: &crate::mdev::Mdev,
    dev: CdevDevice,
    timeout: Duration,
) -> Result<(), String> {
    // The user installs a request eventfd (VFIO_PCI_REQ_IRQ_INDEX): the
    // removal asks through it, as it asks a VMM to unplug the device.
    let req = eventfd().map_err(|e| format!("eventfd: {e}"))?;
    set_eventfd(&dev.vfio, REQ_INDEX, 0, &req)?;
    let dir = m.dir().to_path_buf();
    let remover = std::thread::spawn(move || crate::mdev::Mdev::from_dir(dir).remove());
    let asked = wait_eventfd(&req, timeout);
    std::thread::sleep(Duration::from_millis(300));
    // Only the writer's blocking shows the wait: the bus's symlink for the
    // device is gone before the driver's remove runs.
    let blocked = !remover.is_finished();
    drop(dev);
    let removed = remover
        .join()
        .map_err(|_| "remover thread panicked".to_string())?;
    if asked < 1 {
        return Err(format!(
            "the request eventfd was not signalled within {timeout:?}"
        ));
    }
    removed?;
    if !blocked {
        return Err("remove returned while the device was still open".into());
    }
    if m.exists() {
        return Err("ADI still there after its user closed it".into());
    }
    Ok(())
}

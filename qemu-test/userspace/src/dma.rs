// SPDX-License-Identifier: GPL-2.0

//! Driving the simulated PF's data mover from user space: DMA memory mapped
//! into the device's IOAS, eventfd interrupts, the BAR0 queue registers and
//! the descriptor format of `samples/vdcm_sim/desc.rs`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::fd::FromRawFd;
use std::time::Duration;
use std::time::Instant;

use crate::vfio;
use crate::vfio::CdevDevice;

/// Region index of BAR0.
pub const BAR0: u32 = 0;
/// Region index of BAR2 (doorbells).
pub const BAR2: u32 = 2;
/// `DEVCAP`.
pub const DEVCAP: u64 = 0x000;
/// `DEVCTL`; bit 0 enable, bit 1 reset.
pub const DEVCTL: u64 = 0x008;
/// First queue block.
pub const QUEUE_BASE: u64 = 0x100;
/// Bytes per queue block.
pub const QUEUE_STRIDE: u64 = 0x20;
/// Queue registers, relative to the block.
pub const Q_RING_BASE: u64 = 0x00;
/// Ring size in descriptors.
pub const Q_RING_SIZE: u64 = 0x08;
/// `CONTROL`: bit 0 enable, bit 2 reset, bits 23:16 vector.
pub const Q_CONTROL: u64 = 0x0c;
/// `STATUS`: bit 0 running, bit 1 error, bits 15:8 error code.
pub const Q_STATUS: u64 = 0x10;
/// The host-set PASID.
pub const Q_PASID: u64 = 0x14;

/// Descriptor opcodes.
pub const OP_NOP: u8 = 0;
/// MEMMOVE.
pub const OP_MEMMOVE: u8 = 1;
/// FILL.
pub const OP_FILL: u8 = 2;
/// COMPARE.
pub const OP_COMPARE: u8 = 3;
/// CRC32C.
pub const OP_CRC32C: u8 = 4;
/// BATCH.
pub const OP_BATCH: u8 = 5;
/// Descriptor flag: completion interrupt.
pub const FLAG_INTERRUPT: u8 = 1;
/// Completion status: success.
pub const ST_SUCCESS: u8 = 1;
/// Completion status: page fault.
pub const ST_PAGE_FAULT: u8 = 2;
/// Completion status: invalid opcode.
pub const ST_INVALID_OPCODE: u8 = 3;
/// Completion status: invalid size.
pub const ST_INVALID_SIZE: u8 = 4;
/// Completion status: a BATCH member failed.
pub const ST_BATCH_FAILED: u8 = 6;

/// `IOMMU_IOAS_MAP`.
const IOMMU_IOAS_MAP: libc::c_ulong = vfio::io(0x85);
/// `IOMMU_IOAS_UNMAP`.
const IOMMU_IOAS_UNMAP: libc::c_ulong = vfio::io(0x86);
/// `VFIO_DEVICE_SET_IRQS`.
pub const VFIO_DEVICE_SET_IRQS: libc::c_ulong = vfio::io(100 + 10);
/// `VFIO_DEVICE_GET_IRQ_INFO`.
pub const VFIO_DEVICE_GET_IRQ_INFO: libc::c_ulong = vfio::io(100 + 9);
/// `VFIO_PCI_MSIX_IRQ_INDEX`.
pub const MSIX_INDEX: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct IoasMap {
    size: u32,
    flags: u32,
    ioas_id: u32,
    reserved: u32,
    user_va: u64,
    length: u64,
    iova: u64,
}

#[repr(C)]
#[derive(Default)]
struct IoasUnmap {
    size: u32,
    ioas_id: u32,
    iova: u64,
    length: u64,
}

/// `struct vfio_irq_info`.
#[repr(C)]
#[derive(Default, Debug)]
pub struct IrqInfo {
    /// `argsz`.
    pub argsz: u32,
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// Index asked about.
    pub index: u32,
    /// Interrupts of the index.
    pub count: u32,
}

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
    map_range(dev, mem.addr(), mem.len() as u64, iova)
}

/// Maps `len` bytes of user memory at `va` to `iova`, read-write.
pub fn map_range(dev: &CdevDevice, va: u64, len: u64, iova: u64) -> Result<(), String> {
    let mut m = IoasMap {
        size: std::mem::size_of::<IoasMap>() as u32,
        flags: 1 | 2 | 4, // FIXED_IOVA | WRITEABLE | READABLE
        ioas_id: dev.ioas,
        user_va: va,
        length: len,
        iova,
        ..Default::default()
    };
    vfio::ioctl(&dev.iommufd, IOMMU_IOAS_MAP, &mut m)
        .map_err(|e| format!("IOMMU_IOAS_MAP({iova:#x}, {len:#x}): {e}"))
}

/// Unmaps `[iova, iova + len)` from the device's IOAS.
pub fn unmap(dev: &CdevDevice, iova: u64, len: u64) -> Result<(), String> {
    let mut u = IoasUnmap {
        size: std::mem::size_of::<IoasUnmap>() as u32,
        ioas_id: dev.ioas,
        iova,
        length: len,
    };
    vfio::ioctl(&dev.iommufd, IOMMU_IOAS_UNMAP, &mut u)
        .map_err(|e| format!("IOMMU_IOAS_UNMAP({iova:#x}, {len:#x}): {e}"))
}

/// A new non-blocking eventfd.
pub fn eventfd() -> io::Result<File> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Waits up to `timeout` for `efd` to be signalled; returns its count (0 on
/// timeout).
pub fn wait_eventfd(efd: &File, timeout: Duration) -> u64 {
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
    let mut v = [0u8; 8];
    // SAFETY: reads 8 bytes into `v`.
    let r = unsafe { libc::read(efd.as_raw_fd(), v.as_mut_ptr().cast(), 8) };
    if r == 8 {
        u64::from_ne_bytes(v)
    } else {
        0
    }
}

/// Issues `VFIO_DEVICE_SET_IRQS` with a raw payload: header fields then
/// `data`; `argsz` is the true size unless `argsz` overrides it.
pub fn set_irqs_raw(
    dev: &File,
    flags: u32,
    index: u32,
    start: u32,
    count: u32,
    data: &[u8],
    argsz: Option<u32>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(20 + data.len());
    let size = argsz.unwrap_or((20 + data.len()) as u32);
    for v in [size, flags, index, start, count] {
        buf.extend_from_slice(&v.to_ne_bytes());
    }
    buf.extend_from_slice(data);
    // SAFETY: `buf` outlives the call; the kernel reads at most `argsz`
    // bytes, never more than we allocated unless `argsz` lies, which the
    // caller uses to test that the kernel rejects it before reading.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), VFIO_DEVICE_SET_IRQS, buf.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `DATA_EVENTFD | ACTION_TRIGGER`.
pub const IRQ_SET_EVENTFD_TRIGGER: u32 = (1 << 2) | (1 << 5);
/// `DATA_NONE | ACTION_TRIGGER`.
pub const IRQ_SET_NONE_TRIGGER: u32 = 1 | (1 << 5);
/// `DATA_NONE | ACTION_MASK`.
pub const IRQ_SET_NONE_MASK: u32 = 1 | (1 << 3);
/// `DATA_NONE | ACTION_UNMASK`.
pub const IRQ_SET_NONE_UNMASK: u32 = 1 | (1 << 4);

/// IRQ index of the error notifier (`VFIO_PCI_ERR_IRQ_INDEX`).
pub const ERR_INDEX: u32 = 3;
/// IRQ index of the request notifier (`VFIO_PCI_REQ_IRQ_INDEX`).
pub const REQ_INDEX: u32 = 4;

/// Installs `efd` as the trigger of interrupt `start` of IRQ index `index`.
pub fn set_eventfd(dev: &File, index: u32, start: u32, efd: &File) -> Result<(), String> {
    set_irqs_raw(
        dev,
        IRQ_SET_EVENTFD_TRIGGER,
        index,
        start,
        1,
        &efd.as_raw_fd().to_ne_bytes(),
        None,
    )
    .map_err(|e| format!("VFIO_DEVICE_SET_IRQS(eventfd, index {index}, {start}): {e}"))
}

/// Installs `efd` as the trigger of MSI-X vector `vector`.
pub fn set_vector_eventfd(dev: &File, vector: u32, efd: &File) -> Result<(), String> {
    set_eventfd(dev, MSIX_INDEX, vector, efd)
}

/// Issues `VFIO_DEVICE_SET_IRQS` with `DATA_NONE` and action `flags` on
/// `count` MSI-X vectors from 0 (`count == 0`: the whole index).
pub fn set_vectors_none(dev: &File, flags: u32, count: u32) -> io::Result<()> {
    set_irqs_raw(dev, flags, MSIX_INDEX, 0, count, &[], None)
}

/// One 64-byte descriptor.
#[derive(Clone, Copy, Default, Debug)]
pub struct Desc {
    /// Opcode.
    pub opcode: u8,
    /// Flags.
    pub flags: u8,
    /// Size in bytes (BATCH: descriptors).
    pub size: u32,
    /// Source IOVA.
    pub src: u64,
    /// Destination IOVA.
    pub dst: u64,
    /// Completion-record IOVA.
    pub completion: u64,
    /// Pattern / seed.
    pub operand: u64,
}

impl Desc {
    /// The 64 bytes.
    pub fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0] = self.opcode;
        b[1] = self.flags;
        b[4..8].copy_from_slice(&self.size.to_le_bytes());
        b[8..16].copy_from_slice(&self.src.to_le_bytes());
        b[16..24].copy_from_slice(&self.dst.to_le_bytes());
        b[24..32].copy_from_slice(&self.completion.to_le_bytes());
        b[32..40].copy_from_slice(&self.operand.to_le_bytes());
        b
    }
}

/// A decoded completion record.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Status; 0 while not done.
    pub status: u8,
    /// Opcode.
    pub opcode: u8,
    /// Bytes done.
    pub done: u32,
    /// Faulting IOVA.
    pub fault_iova: u64,
    /// Result.
    pub result: u64,
}

impl Completion {
    /// Decodes 32 bytes.
    pub fn decode(b: &[u8]) -> Self {
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        Completion {
            status: b[0],
            opcode: b[1],
            done: u32::from_le_bytes(b[4..8].try_into().unwrap_or([0; 4])),
            fault_iova: u64_at(8),
            result: u64_at(16),
        }
    }
}

/// CRC32C, as the engine computes it (seed, reflected, final inversion).
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    let mut crc = !seed;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
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
    index: u64,
}

impl<'a> Queue<'a> {
    /// Programs queue `index` with a ring of `size` descriptors at byte
    /// `ring_off` of `mem` (mapped at `iova`), completion vector `vector`,
    /// enables the device and the queue, and maps its doorbell.
    pub fn start(
        dev: &'a CdevDevice,
        mem: &'a DmaMem,
        iova: u64,
        index: u64,
        ring_off: usize,
        size: u32,
        vector: u32,
    ) -> Result<Self, String> {
        let blk = QUEUE_BASE + index * QUEUE_STRIDE;
        dev.enable()?;
        dev.write_u32(BAR0, DEVCTL, 1)?;
        dev.write_u64(BAR0, blk + Q_RING_BASE, iova + ring_off as u64)?;
        dev.write_u32(BAR0, blk + Q_RING_SIZE, size)?;
        dev.write_u32(BAR0, blk + Q_CONTROL, 1 | (vector << 16))?;
        let status = dev.read_u32(BAR0, blk + Q_STATUS)?;
        if status & 1 == 0 {
            return Err(format!("queue {index} did not start: STATUS {status:#x}"));
        }
        let page = 4096u64;
        let doorbell = dev
            .mmap(BAR2, index * page, page as usize)
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
    pub fn push(&mut self, d: &Desc) {
        let slot = (self.tail % self.size) as usize;
        self.mem.write(self.ring_off + slot * 64, &d.encode());
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes the tail through the doorbell: a plain store to the mapped
    /// page, no system call.
    pub fn ring(&self) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.doorbell.write_u32(0, self.tail);
    }

    /// The queue's `STATUS` register.
    pub fn status(&self) -> Result<u32, String> {
        self.dev
            .read_u32(BAR0, QUEUE_BASE + self.index * QUEUE_STRIDE + Q_STATUS)
    }
}

/// Polls the completion record at byte `off` of `mem` until its status is
/// non-zero or `timeout` passes.
pub fn wait_completion(mem: &DmaMem, off: usize, timeout: Duration) -> Option<Completion> {
    let start = Instant::now();
    loop {
        let c = Completion::decode(&mem.bytes(off, 32));
        if c.status != 0 {
            return Some(c);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Descriptor slots of a portal page; the tail is after them.
pub const PORTAL_SLOTS: u32 = 63;
/// Byte offset of a portal page's tail.
pub const PORTAL_TAIL: usize = 63 * 64;

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
        dev.enable()?;
        dev.write_u32(BAR0, DEVCTL, 1)?;
        dev.write_u32(BAR0, QUEUE_BASE + Q_CONTROL, 1 | (vector << 16))?;
        let status = dev.read_u32(BAR0, QUEUE_BASE + Q_STATUS)?;
        if status & 1 == 0 {
            return Err(format!("portal did not start: STATUS {status:#x}"));
        }
        let page = dev
            .mmap(BAR2, 0, 4096)
            .map_err(|e| format!("mmap portal: {e}"))?;
        Ok(Portal { page, tail: 0 })
    }

    /// The mapped portal page.
    pub fn page(&self) -> &vfio::Mapping {
        &self.page
    }

    /// Submits `d`: writes it into the next slot, then the tail.
    pub fn submit(&mut self, d: &Desc) {
        let slot = (self.tail % PORTAL_SLOTS) as usize;
        self.page.write_bytes(slot * 64, &d.encode());
        self.tail = self.tail.wrapping_add(1);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.page.write_u32(PORTAL_TAIL, self.tail);
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
    pub efd: File,
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
        set_vector_eventfd(&dev.device, 0, &efd)?;
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

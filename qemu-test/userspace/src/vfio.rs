// SPDX-License-Identifier: GPL-2.0

//! Opening VFIO devices and the VFIO ioctls the tests issue.
//!
//! The normal path is rust-vmm's `vfio-ioctls`: [`CdevDevice`] is a
//! [`VfioDevice`] opened from its iommufd cdev and bound to a
//! [`VfioIommufd`]; [`GroupDevice`] is one opened through a legacy
//! [`VfioContainer`]. Where a test must see what `vfio-ioctls` hides (the
//! errno of `VFIO_DEVICE_RESET`, a fresh `VFIO_DEVICE_GET_INFO` or
//! `GET_REGION_INFO` answer rather than the copy cached at open) or must
//! send a request it would never send, it uses the uapi structures of
//! `vfio-bindings` with `vmm-sys-util`'s ioctl helpers, through the
//! functions below: no ioctl number or uapi layout is written here.

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use iommufd_ioctls::IommuFd;
pub use vfio_bindings::bindings::vfio as uapi;
use vfio_bindings::bindings::vfio::VFIO_BASE;
pub use vfio_bindings::bindings::vfio::VFIO_DEVICE_FLAGS_PCI;
pub use vfio_bindings::bindings::vfio::VFIO_DEVICE_FLAGS_RESET;
pub use vfio_bindings::bindings::vfio::VFIO_PCI_CONFIG_REGION_INDEX;
pub use vfio_bindings::bindings::vfio::VFIO_PCI_NUM_REGIONS;
use vfio_bindings::bindings::vfio::VFIO_TYPE;
pub use vfio_ioctls::VfioContainer;
pub use vfio_ioctls::VfioDevice;
pub use vfio_ioctls::VfioIommufd;
pub use vfio_ioctls::VfioRegionInfoCap;
use vmm_sys_util::ioctl::ioctl_with_mut_ptr;
use vmm_sys_util::ioctl::ioctl_with_mut_ref;
use vmm_sys_util::ioctl::ioctl_with_val;
use vmm_sys_util::ioctl_io_nr;

/// `struct vfio_device_info`.
pub type DeviceInfo = uapi::vfio_device_info;
/// `struct vfio_region_info`.
pub type RegionInfo = uapi::vfio_region_info;
/// `struct vfio_irq_info`.
pub type IrqInfo = uapi::vfio_irq_info;
/// `struct vfio_device_bind_iommufd`.
pub type BindIommufd = uapi::vfio_device_bind_iommufd;

// The VFIO ioctls of `include/uapi/linux/vfio.h`, `_IO(VFIO_TYPE,
// VFIO_BASE + n)`; `vfio-ioctls` keeps its own private.
ioctl_io_nr!(VFIO_DEVICE_GET_INFO, VFIO_TYPE as u32, VFIO_BASE + 7);
ioctl_io_nr!(VFIO_DEVICE_GET_REGION_INFO, VFIO_TYPE as u32, VFIO_BASE + 8);
ioctl_io_nr!(VFIO_DEVICE_GET_IRQ_INFO, VFIO_TYPE as u32, VFIO_BASE + 9);
ioctl_io_nr!(VFIO_DEVICE_SET_IRQS, VFIO_TYPE as u32, VFIO_BASE + 10);
ioctl_io_nr!(VFIO_DEVICE_RESET, VFIO_TYPE as u32, VFIO_BASE + 11);
ioctl_io_nr!(VFIO_DEVICE_BIND_IOMMUFD, VFIO_TYPE as u32, VFIO_BASE + 18);
ioctl_io_nr!(VFIO_IO, VFIO_TYPE as u32, nr, nr);

/// The VFIO ioctl number `VFIO_BASE + offset`, for requests no header
/// names (the tests of unknown numbers).
pub fn vfio_io(offset: u32) -> libc::c_ulong {
    VFIO_IO(VFIO_BASE + offset)
}

/// Issues ioctl `request` on `fd` with `arg`, a uapi struct of its own size.
///
/// `T` must be the `vfio-bindings` / `iommufd-bindings` struct `request`
/// is defined with, so the kernel reads and writes only inside `arg`.
pub fn ioctl<T>(fd: &impl AsRawFd, request: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is a live, exclusively borrowed `T`; callers pass the
    // uapi struct matching `request`, whose `argsz`/`size` field bounds what
    // the kernel touches to `size_of::<T>()`.
    let rc = unsafe { ioctl_with_mut_ref(fd, request, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Issues an ioctl whose argument is a plain integer, not a pointer.
pub fn ioctl_val(fd: &impl AsRawFd, request: libc::c_ulong, arg: libc::c_ulong) -> io::Result<i32> {
    // SAFETY: the kernel reads no memory for these requests; `arg` is a
    // value.
    let rc = unsafe { ioctl_with_val(fd, request, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `size_of::<T>()` as the `argsz` of a uapi struct.
pub fn argsz<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

/// The text of `e` and of the errors behind it: `vfio-ioctls` often keeps
/// the errno in a source its own text leaves out.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Opens a device or character file read-write.
pub fn open_rw(path: impl AsRef<Path>) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// A second fd of the open file `fd` names (the same open file
/// description: the same binding, the same device).
fn dup_file(fd: &impl AsRawFd) -> io::Result<File> {
    // SAFETY: `fd` is open for as long as it is borrowed here, and the
    // borrowed fd does not outlive this call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) };
    Ok(File::from(borrowed.try_clone_to_owned()?))
}

/// A shared read-write mapping of part of a device region, unmapped on
/// drop.
pub struct Mapping(crate::adv::RawMap);

impl Mapping {
    /// Maps `len` bytes at file offset `offset` of `fd`, read-write,
    /// shared.
    pub fn new(fd: &impl AsRawFd, offset: u64, len: usize) -> io::Result<Self> {
        crate::adv::mmap_raw(
            fd,
            offset,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
        )
        .map(Mapping)
    }

    /// Stores `v` at byte `offset` (4-byte aligned, inside the mapping) as
    /// a single 32-bit write, like a doorbell store.
    pub fn write_u32(&self, offset: usize, v: u32) {
        self.0.store_u32(offset, v)
    }

    /// Stores `data` at byte `offset` (inside the mapping), a byte at a
    /// time.
    pub fn write_bytes(&self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= self.0.len);
        for (i, b) in data.iter().enumerate() {
            // SAFETY: in bounds (checked); the mapping is live.
            unsafe { std::ptr::write_volatile(self.0.addr.add(offset + i), *b) }
        }
    }

    /// Loads the 32-bit word at byte `offset`.
    pub fn read_u32(&self, offset: usize) -> u32 {
        self.0.load_u32(offset)
    }
}

/// `VFIO_DEVICE_GET_INFO` on a device fd, asked now.
pub fn device_info(device: &impl AsRawFd) -> Result<DeviceInfo, String> {
    let mut info = DeviceInfo {
        argsz: argsz::<DeviceInfo>(),
        ..Default::default()
    };
    ioctl(device, VFIO_DEVICE_GET_INFO(), &mut info)
        .map_err(|e| format!("VFIO_DEVICE_GET_INFO: {e}"))?;
    Ok(info)
}

/// `VFIO_DEVICE_GET_REGION_INFO`'s fixed part for region `index`, asked
/// now.
pub fn region_info(device: &impl AsRawFd, index: u32) -> Result<RegionInfo, String> {
    let mut info = RegionInfo {
        argsz: argsz::<RegionInfo>(),
        index,
        ..Default::default()
    };
    ioctl(device, VFIO_DEVICE_GET_REGION_INFO(), &mut info)
        .map_err(|e| format!("VFIO_DEVICE_GET_REGION_INFO({index}): {e}"))?;
    Ok(info)
}

/// `VFIO_DEVICE_GET_IRQ_INFO` for IRQ index `index`, the raw result.
pub fn irq_info(device: &impl AsRawFd, index: u32) -> io::Result<IrqInfo> {
    let mut info = IrqInfo {
        argsz: argsz::<IrqInfo>(),
        index,
        ..Default::default()
    };
    ioctl(device, VFIO_DEVICE_GET_IRQ_INFO(), &mut info)?;
    Ok(info)
}

/// `VFIO_DEVICE_GET_REGION_INFO` of region `index` with room for its
/// capability chain: the fixed part and the whole reply, to be read with
/// [`region_cap`].
pub fn region_info_caps(
    device: &impl AsRawFd,
    index: u32,
) -> Result<(RegionInfo, Vec<u64>), String> {
    // u64 words: every structure of the chain is at most 8-byte aligned.
    let mut buf = vec![0u64; 32];
    let head = RegionInfo {
        argsz: (buf.len() * 8) as u32,
        index,
        ..Default::default()
    };
    // SAFETY: `buf` is 256 bytes, 8-byte aligned: room for the fixed part.
    unsafe { buf.as_mut_ptr().cast::<RegionInfo>().write(head) };
    // SAFETY: `buf` is live and as long as the argsz announced in it; the
    // kernel writes at most that much.
    let rc = unsafe { ioctl_with_mut_ptr(device, VFIO_DEVICE_GET_REGION_INFO(), buf.as_mut_ptr()) };
    if rc < 0 {
        return Err(format!(
            "VFIO_DEVICE_GET_REGION_INFO({index}) with caps: {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: as above, the kernel filled the fixed part in.
    let info = unsafe { buf.as_ptr().cast::<RegionInfo>().read() };
    Ok((info, buf))
}

/// The `T` (a capability structure of `vfio-bindings` starting with
/// `struct vfio_info_cap_header`) at byte `at` of a reply of
/// [`region_info_caps`]; `None` if it does not fit.
pub fn region_cap<T: Copy>(reply: &[u64], at: usize) -> Option<T> {
    let end = at.checked_add(std::mem::size_of::<T>())?;
    if end > reply.len() * 8 {
        return None;
    }
    // SAFETY: in bounds (checked); `T` is a plain uapi struct for which
    // every bit pattern is valid; the read is unaligned-safe.
    Some(unsafe {
        reply
            .as_ptr()
            .cast::<u8>()
            .add(at)
            .cast::<T>()
            .read_unaligned()
    })
}

/// PCI command register bits: memory space and bus master enable.
pub const PCI_COMMAND_MEMORY_MASTER: u16 = (1 << 1) | (1 << 2);

/// Writes `value` to the PCI command register of `device` through its
/// config region, as a guest driver enabling the device does.
pub fn set_pci_command(device: &impl AsRawFd, value: u16) -> Result<(), String> {
    let info = region_info(device, VFIO_PCI_CONFIG_REGION_INDEX)?;
    let f = dup_file(device).map_err(|e| format!("dup: {e}"))?;
    f.write_all_at(&value.to_le_bytes(), info.offset + 4)
        .map_err(|e| format!("write PCI command {value:#x}: {e}"))
}

/// A VFIO device opened the legacy way, by `vfio-ioctls`: container,
/// group, device fd. Fields drop in order: the second fd, then the device
/// (which releases its group), then the container.
pub struct GroupDevice {
    /// A second fd of the device, for the reads, writes and maps that
    /// must see their errno.
    pub device: File,
    /// The device.
    pub vfio: VfioDevice,
    /// The container (`/dev/vfio/vfio`), type1v2.
    pub container: Arc<VfioContainer>,
}

impl GroupDevice {
    /// Opens the device at `sysfs` (e.g. `/sys/bus/mdev/devices/UUID`)
    /// through its IOMMU group in a new type1v2 container.
    pub fn open(sysfs: &Path) -> Result<Self, String> {
        let container = Arc::new(VfioContainer::new(None).map_err(|e| error_chain(&e))?);
        let vfio = VfioDevice::new(sysfs, container.clone(), false).map_err(|e| {
            format!(
                "open {} through its group: {}",
                sysfs.display(),
                error_chain(&e)
            )
        })?;
        let device = dup_file(&vfio).map_err(|e| format!("dup: {e}"))?;
        Ok(GroupDevice {
            device,
            vfio,
            container,
        })
    }

    /// `VFIO_DEVICE_GET_INFO`.
    pub fn info(&self) -> Result<DeviceInfo, String> {
        device_info(&self.device)
    }
}

/// A VFIO device opened by `vfio-ioctls` through its iommufd cdev, bound
/// to a new iommufd and attached to a new IOAS. Fields drop in order: the
/// second fd, then the device (detached), then the iommufd and its IOAS.
pub struct CdevDevice {
    /// A second fd of the device (`/dev/vfio/devices/vfioN`), for the
    /// reads, writes, maps and raw ioctls that must see their errno.
    pub device: File,
    /// The device.
    pub vfio: VfioDevice,
    /// The iommufd and the IOAS the device is attached to.
    pub iommu: Arc<VfioIommufd>,
    /// The device id iommufd returned from the bind.
    pub devid: u32,
    /// The IOAS the device is attached to.
    pub ioas: u32,
}

impl CdevDevice {
    /// Opens `cdev`, binds it to a new iommufd and attaches it to a new IOAS.
    pub fn open(cdev: impl AsRef<Path>) -> Result<Self, String> {
        let cdev = cdev.as_ref();
        let file = open_rw(cdev).map_err(|e| format!("open {}: {e}", cdev.display()))?;
        let device = file.try_clone().map_err(|e| format!("dup: {e}"))?;
        let iommufd = IommuFd::new().map_err(|e| error_chain(&e))?;
        let iommu =
            Arc::new(VfioIommufd::new(Arc::new(iommufd), None, None).map_err(|e| error_chain(&e))?);
        let vfio = VfioDevice::new_from_fd(file, iommu.clone(), true)
            .map_err(|e| format!("{}: {}", cdev.display(), error_chain(&e)))?;
        let devid = vfio
            .iommufd_dev_id()
            .ok_or("bound, but no iommufd device id")?;
        let ioas = iommu.ioas().id();
        Ok(CdevDevice {
            device,
            vfio,
            iommu,
            devid,
            ioas,
        })
    }

    /// The iommufd the device is bound to.
    pub fn iommufd(&self) -> &IommuFd {
        self.iommu.iommufd()
    }

    /// `VFIO_DEVICE_GET_INFO`, asked now (`vfio-ioctls` keeps the answer
    /// it got at open, and not `num_regions`).
    pub fn info(&self) -> Result<DeviceInfo, String> {
        device_info(&self.device)
    }

    /// Enables memory space and bus mastering in the command register.
    pub fn enable(&self) -> Result<(), String> {
        self.set_command(PCI_COMMAND_MEMORY_MASTER)
    }

    /// Writes the PCI command register.
    pub fn set_command(&self, value: u16) -> Result<(), String> {
        self.write_at(VFIO_PCI_CONFIG_REGION_INDEX, 4, &value.to_le_bytes())
            .map(drop)
            .map_err(|e| format!("write PCI command {value:#x}: {e}"))
    }

    /// `VFIO_DEVICE_RESET`, with its errno (`VfioDevice::reset` drops it).
    pub fn reset(&self) -> Result<(), String> {
        ioctl_val(&self.device, VFIO_DEVICE_RESET(), 0)
            .map(drop)
            .map_err(|e| format!("VFIO_DEVICE_RESET: {e}"))
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for region `index`, asked now.
    pub fn region(&self, index: u32) -> Result<RegionInfo, String> {
        region_info(&self.device, index)
    }

    /// Reads `buf.len()` bytes at `offset` of region `index`.
    pub fn read_at(&self, index: u32, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.device
            .read_at(buf, self.vfio.get_region_offset(index) + offset)
    }

    /// Writes `buf` at `offset` of region `index`.
    pub fn write_at(&self, index: u32, offset: u64, buf: &[u8]) -> io::Result<usize> {
        self.device
            .write_at(buf, self.vfio.get_region_offset(index) + offset)
    }

    /// Reads a little-endian u32 at `offset` of region `index`.
    pub fn read_u32(&self, index: u32, offset: u64) -> Result<u32, String> {
        let mut buf = [0u8; 4];
        self.device
            .read_exact_at(&mut buf, self.vfio.get_region_offset(index) + offset)
            .map_err(|e| format!("read region {index} at {offset:#x}: {e}"))?;
        Ok(u32::from_le_bytes(buf))
    }

    /// Reads a little-endian u64 at `offset` of region `index`.
    pub fn read_u64(&self, index: u32, offset: u64) -> Result<u64, String> {
        let mut buf = [0u8; 8];
        self.read_at(index, offset, &mut buf)
            .map_err(|e| format!("read region {index} at {offset:#x}: {e}"))?;
        Ok(u64::from_le_bytes(buf))
    }

    /// Writes a little-endian u32 at `offset` of region `index`.
    pub fn write_u32(&self, index: u32, offset: u64, v: u32) -> Result<(), String> {
        self.write_at(index, offset, &v.to_le_bytes())
            .map(drop)
            .map_err(|e| format!("write region {index} at {offset:#x}: {e}"))
    }

    /// Writes a little-endian u64 at `offset` of region `index`.
    pub fn write_u64(&self, index: u32, offset: u64, v: u64) -> Result<(), String> {
        self.write_at(index, offset, &v.to_le_bytes())
            .map(drop)
            .map_err(|e| format!("write region {index} at {offset:#x}: {e}"))
    }

    /// Maps `len` bytes at `offset` of region `index`, read-write, shared.
    pub fn mmap(&self, index: u32, offset: u64, len: usize) -> io::Result<Mapping> {
        Mapping::new(
            &self.device,
            self.vfio.get_region_offset(index) + offset,
            len,
        )
    }
}

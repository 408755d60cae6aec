// SPDX-License-Identifier: GPL-2.0

//! The VFIO and iommufd ioctls the tests issue, on the uapi of
//! `include/uapi/linux/vfio.h` and `include/uapi/linux/iommufd.h`.
//!
//! The structures are the kernel's uapi layouts; the ioctl numbers are
//! `_IO(';', nr)` as the uapi headers define them (VFIO and iommufd encode
//! the size in `argsz`/`size`, not in the number).

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// `_IO(';', nr)`, the encoding of every VFIO and iommufd ioctl.
pub const fn io(nr: u32) -> libc::c_ulong {
    ((b';' as u32) << 8 | nr) as libc::c_ulong
}

const VFIO_BASE: u32 = 100;
/// `VFIO_GET_API_VERSION`.
pub const VFIO_GET_API_VERSION: libc::c_ulong = io(VFIO_BASE);
/// `VFIO_SET_IOMMU`.
pub const VFIO_SET_IOMMU: libc::c_ulong = io(VFIO_BASE + 2);
/// `VFIO_GROUP_GET_STATUS`.
pub const VFIO_GROUP_GET_STATUS: libc::c_ulong = io(VFIO_BASE + 3);
/// `VFIO_GROUP_SET_CONTAINER`.
pub const VFIO_GROUP_SET_CONTAINER: libc::c_ulong = io(VFIO_BASE + 4);
/// `VFIO_GROUP_GET_DEVICE_FD`.
pub const VFIO_GROUP_GET_DEVICE_FD: libc::c_ulong = io(VFIO_BASE + 6);
/// `VFIO_DEVICE_RESET`.
pub const VFIO_DEVICE_RESET: libc::c_ulong = io(VFIO_BASE + 11);
/// `VFIO_TYPE1v2_IOMMU`.
pub const VFIO_TYPE1V2_IOMMU: libc::c_ulong = 3;
/// `VFIO_GROUP_FLAGS_VIABLE`.
pub const VFIO_GROUP_FLAGS_VIABLE: u32 = 1 << 0;

/// `VFIO_DEVICE_GET_INFO`.
pub const VFIO_DEVICE_GET_INFO: libc::c_ulong = io(VFIO_BASE + 7);
/// `VFIO_DEVICE_GET_REGION_INFO`.
pub const VFIO_DEVICE_GET_REGION_INFO: libc::c_ulong = io(VFIO_BASE + 8);
/// `VFIO_DEVICE_BIND_IOMMUFD`.
pub const VFIO_DEVICE_BIND_IOMMUFD: libc::c_ulong = io(VFIO_BASE + 18);
/// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`.
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: libc::c_ulong = io(VFIO_BASE + 19);
/// `IOMMU_IOAS_ALLOC`.
pub const IOMMU_IOAS_ALLOC: libc::c_ulong = io(0x81);

/// `VFIO_DEVICE_FLAGS_RESET`.
pub const VFIO_DEVICE_FLAGS_RESET: u32 = 1 << 0;
/// `VFIO_DEVICE_FLAGS_PCI`.
pub const VFIO_DEVICE_FLAGS_PCI: u32 = 1 << 1;
/// Number of regions of a vfio-pci device (`VFIO_PCI_NUM_REGIONS`).
pub const VFIO_PCI_NUM_REGIONS: u32 = 9;
/// `VFIO_PCI_CONFIG_REGION_INDEX`.
pub const VFIO_PCI_CONFIG_REGION_INDEX: u32 = 7;

/// `struct vfio_device_bind_iommufd`.
#[repr(C)]
#[derive(Default, Debug)]
pub struct BindIommufd {
    pub argsz: u32,
    pub flags: u32,
    pub iommufd: i32,
    pub out_devid: u32,
    pub token_uuid_ptr: u64,
}

/// `struct vfio_device_attach_iommufd_pt`.
#[repr(C)]
#[derive(Default, Debug)]
pub struct AttachIommufdPt {
    pub argsz: u32,
    pub flags: u32,
    pub pt_id: u32,
    pub pasid: u32,
}

/// `struct iommu_ioas_alloc`.
#[repr(C)]
#[derive(Default, Debug)]
pub struct IoasAlloc {
    pub size: u32,
    pub flags: u32,
    pub out_ioas_id: u32,
}

/// `struct vfio_device_info`.
#[repr(C)]
#[derive(Default, Debug)]
pub struct DeviceInfo {
    pub argsz: u32,
    pub flags: u32,
    pub num_regions: u32,
    pub num_irqs: u32,
    pub cap_offset: u32,
    pub pad: u32,
}

/// `struct vfio_region_info`.
#[repr(C)]
#[derive(Default, Debug)]
pub struct RegionInfo {
    pub argsz: u32,
    pub flags: u32,
    pub index: u32,
    pub cap_offset: u32,
    pub size: u64,
    pub offset: u64,
}

/// Issues ioctl `request` on `fd` with `arg`, a uapi struct of its own size.
///
/// `T` must be the `#[repr(C)]` struct `request` is defined with (the
/// structs above), so the kernel reads and writes only inside `arg`.
pub fn ioctl<T>(fd: &impl AsRawFd, request: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is a live, exclusively borrowed `T`; callers pass the
    // uapi struct matching `request`, whose `argsz`/`size` field bounds what
    // the kernel touches to `size_of::<T>()`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg as *mut T) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `size_of::<T>()` as the `argsz` of a uapi struct.
pub fn argsz<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

/// Opens a device or character file read-write.
pub fn open_rw(path: impl AsRef<Path>) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// A shared mapping of part of a device region, unmapped on drop.
pub struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    /// Stores `v` at byte `offset` (4-byte aligned, inside the mapping) as
    /// a single 32-bit write, like a doorbell store.
    pub fn write_u32(&self, offset: usize, v: u32) {
        assert!(offset.is_multiple_of(4) && offset + 4 <= self.len);
        // SAFETY: in bounds and aligned (checked); the mapping is live.
        unsafe { std::ptr::write_volatile(self.addr.add(offset).cast::<u32>(), v) }
    }

    /// Stores `data` at byte `offset` (inside the mapping), 4 bytes at a
    /// time where aligned.
    pub fn write_bytes(&self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= self.len);
        for (i, b) in data.iter().enumerate() {
            // SAFETY: in bounds (checked); the mapping is live.
            unsafe { std::ptr::write_volatile(self.addr.add(offset + i), *b) }
        }
    }

    /// Loads the 32-bit word at byte `offset`.
    pub fn read_u32(&self, offset: usize) -> u32 {
        assert!(offset.is_multiple_of(4) && offset + 4 <= self.len);
        // SAFETY: in bounds and aligned (checked); the mapping is live.
        unsafe { std::ptr::read_volatile(self.addr.add(offset).cast::<u32>()) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` came from a successful mmap.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// Issues an ioctl whose argument is a plain integer, not a pointer.
pub fn ioctl_val(fd: &impl AsRawFd, request: libc::c_ulong, arg: libc::c_ulong) -> io::Result<i32> {
    // SAFETY: the kernel reads no memory for these requests; `arg` is a
    // value.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `struct vfio_group_status`.
#[repr(C)]
#[derive(Default, Debug)]
pub struct GroupStatus {
    pub argsz: u32,
    pub flags: u32,
}

/// A VFIO device opened the legacy way: container, group, device fd.
pub struct GroupDevice {
    /// The device fd.
    pub device: File,
    /// The group (`/dev/vfio/N`).
    pub group: File,
    /// The container (`/dev/vfio/vfio`), with the type1 IOMMU set.
    pub container: File,
}

impl GroupDevice {
    /// Opens device `name` of IOMMU group `group` through a new type1v2
    /// container.
    pub fn open(group: u32, name: &str) -> Result<Self, String> {
        let container =
            open_rw("/dev/vfio/vfio").map_err(|e| format!("open /dev/vfio/vfio: {e}"))?;
        let v = ioctl_val(&container, VFIO_GET_API_VERSION, 0)
            .map_err(|e| format!("VFIO_GET_API_VERSION: {e}"))?;
        if v != 0 {
            return Err(format!("VFIO API version {v}, want 0"));
        }
        let path = format!("/dev/vfio/{group}");
        let group = open_rw(&path).map_err(|e| format!("open {path}: {e}"))?;
        let mut status = GroupStatus {
            argsz: argsz::<GroupStatus>(),
            ..Default::default()
        };
        ioctl(&group, VFIO_GROUP_GET_STATUS, &mut status)
            .map_err(|e| format!("VFIO_GROUP_GET_STATUS: {e}"))?;
        if status.flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(format!(
                "group {path} not viable: flags {:#x}",
                status.flags
            ));
        }
        let mut cfd: i32 = container.as_raw_fd();
        ioctl(&group, VFIO_GROUP_SET_CONTAINER, &mut cfd)
            .map_err(|e| format!("VFIO_GROUP_SET_CONTAINER: {e}"))?;
        ioctl_val(&container, VFIO_SET_IOMMU, VFIO_TYPE1V2_IOMMU)
            .map_err(|e| format!("VFIO_SET_IOMMU(type1v2): {e}"))?;
        let cname = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
        // SAFETY: `cname` is a NUL-terminated string the kernel only reads.
        let fd =
            unsafe { libc::ioctl(group.as_raw_fd(), VFIO_GROUP_GET_DEVICE_FD, cname.as_ptr()) };
        if fd < 0 {
            return Err(format!(
                "VFIO_GROUP_GET_DEVICE_FD({name}): {}",
                io::Error::last_os_error()
            ));
        }
        // SAFETY: the kernel returned a new fd that nothing else owns.
        let device = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(GroupDevice {
            device,
            group,
            container,
        })
    }

    /// `VFIO_DEVICE_GET_INFO`.
    pub fn info(&self) -> Result<DeviceInfo, String> {
        device_info(&self.device)
    }
}

/// PCI command register bits: memory space and bus master enable.
pub const PCI_COMMAND_MEMORY_MASTER: u16 = (1 << 1) | (1 << 2);

/// Writes `value` to the PCI command register of `device` through its
/// config region, as a guest driver enabling the device does.
pub fn set_pci_command(device: &File, value: u16) -> Result<(), String> {
    let mut info = RegionInfo {
        argsz: argsz::<RegionInfo>(),
        index: VFIO_PCI_CONFIG_REGION_INDEX,
        ..Default::default()
    };
    ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &mut info)
        .map_err(|e| format!("VFIO_DEVICE_GET_REGION_INFO(config): {e}"))?;
    device
        .write_all_at(&value.to_le_bytes(), info.offset + 4)
        .map_err(|e| format!("write PCI command {value:#x}: {e}"))
}

/// `VFIO_DEVICE_GET_INFO` on a device fd.
pub fn device_info(device: &File) -> Result<DeviceInfo, String> {
    let mut info = DeviceInfo {
        argsz: argsz::<DeviceInfo>(),
        ..Default::default()
    };
    ioctl(device, VFIO_DEVICE_GET_INFO, &mut info)
        .map_err(|e| format!("VFIO_DEVICE_GET_INFO: {e}"))?;
    Ok(info)
}

/// A VFIO device opened through its iommufd cdev and attached to a fresh
/// IOAS.
pub struct CdevDevice {
    /// The device fd (`/dev/vfio/devices/vfioN`).
    pub device: File,
    /// The iommufd (`/dev/iommu`) the device is bound to.
    pub iommufd: File,
    /// The device id iommufd returned from the bind.
    pub devid: u32,
    /// The IOAS the device is attached to.
    pub ioas: u32,
}

impl CdevDevice {
    /// Opens `cdev`, binds it to a new iommufd and attaches it to a new IOAS.
    pub fn open(cdev: impl AsRef<Path>) -> Result<Self, String> {
        let cdev = cdev.as_ref();
        let device = open_rw(cdev).map_err(|e| format!("open {}: {e}", cdev.display()))?;
        let iommufd = open_rw("/dev/iommu").map_err(|e| format!("open /dev/iommu: {e}"))?;
        let mut bind = BindIommufd {
            argsz: 16, // up to out_devid: no token
            iommufd: iommufd.as_raw_fd(),
            ..Default::default()
        };
        ioctl(&device, VFIO_DEVICE_BIND_IOMMUFD, &mut bind)
            .map_err(|e| format!("VFIO_DEVICE_BIND_IOMMUFD: {e}"))?;
        let mut alloc = IoasAlloc {
            size: argsz::<IoasAlloc>(),
            ..Default::default()
        };
        ioctl(&iommufd, IOMMU_IOAS_ALLOC, &mut alloc)
            .map_err(|e| format!("IOMMU_IOAS_ALLOC: {e}"))?;
        let mut attach = AttachIommufdPt {
            argsz: 12, // up to pt_id: no PASID
            pt_id: alloc.out_ioas_id,
            ..Default::default()
        };
        ioctl(&device, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut attach).map_err(|e| {
            format!(
                "VFIO_DEVICE_ATTACH_IOMMUFD_PT(ioas {}): {e}",
                alloc.out_ioas_id
            )
        })?;
        Ok(CdevDevice {
            device,
            iommufd,
            devid: bind.out_devid,
            ioas: alloc.out_ioas_id,
        })
    }

    /// `VFIO_DEVICE_GET_INFO`.
    pub fn info(&self) -> Result<DeviceInfo, String> {
        device_info(&self.device)
    }

    /// Enables memory space and bus mastering in the command register.
    pub fn enable(&self) -> Result<(), String> {
        set_pci_command(&self.device, PCI_COMMAND_MEMORY_MASTER)
    }

    /// `VFIO_DEVICE_RESET`.
    pub fn reset(&self) -> Result<(), String> {
        ioctl_val(&self.device, VFIO_DEVICE_RESET, 0)
            .map(drop)
            .map_err(|e| format!("VFIO_DEVICE_RESET: {e}"))
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for region `index`.
    pub fn region(&self, index: u32) -> Result<RegionInfo, String> {
        let mut info = RegionInfo {
            argsz: argsz::<RegionInfo>(),
            index,
            ..Default::default()
        };
        ioctl(&self.device, VFIO_DEVICE_GET_REGION_INFO, &mut info)
            .map_err(|e| format!("VFIO_DEVICE_GET_REGION_INFO({index}): {e}"))?;
        Ok(info)
    }

    /// Reads `buf.len()` bytes at `offset` of region `index`.
    pub fn read_at(&self, index: u32, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let region = self.region(index).map_err(io::Error::other)?;
        self.device.read_at(buf, region.offset + offset)
    }

    /// Writes `buf` at `offset` of region `index`.
    pub fn write_at(&self, index: u32, offset: u64, buf: &[u8]) -> io::Result<usize> {
        let region = self.region(index).map_err(io::Error::other)?;
        self.device.write_at(buf, region.offset + offset)
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
        let region = self.region(index).map_err(io::Error::other)?;
        // SAFETY: a fresh shared mapping of the device fd; nothing aliases
        // it yet.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.device.as_raw_fd(),
                (region.offset + offset) as libc::off_t,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            addr: addr.cast(),
            len,
        })
    }

    /// Reads a little-endian u32 at `offset` of region `index`.
    pub fn read_u32(&self, index: u32, offset: u64) -> Result<u32, String> {
        let region = self.region(index)?;
        let mut buf = [0u8; 4];
        self.device
            .read_exact_at(&mut buf, region.offset + offset)
            .map_err(|e| format!("read region {index} at {offset:#x}: {e}"))?;
        Ok(u32::from_le_bytes(buf))
    }
}

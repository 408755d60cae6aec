// SPDX-License-Identifier: GPL-2.0

//! The data path and reset through the legacy VFIO interface: container
//! (`/dev/vfio/vfio`, type1v2), group (`/dev/vfio/N`), device fd from
//! `VFIO_GROUP_GET_DEVICE_FD`; DMA mapped with `VFIO_IOMMU_MAP_DMA` on the
//! container instead of an iommufd IOAS.
//!
//! Expects vdcm.ko and vdcm_sim.ko loaded with the defaults.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use vdcm_selftests::adv;
use vdcm_selftests::dma;
use vdcm_selftests::dma::Desc;
use vdcm_selftests::dma::DmaMem;
use vdcm_selftests::mdev::Mdev;
use vdcm_selftests::mdev::MdevType;
use vdcm_selftests::mdev::Removed;
use vdcm_selftests::sysfs;
use vdcm_selftests::tap::ensure;
use vdcm_selftests::tap::Outcome;
use vdcm_selftests::tap::Reporter;
use vdcm_selftests::vfio;
use vdcm_selftests::vfio::GroupDevice;

const PF: &str = "vdcm_sim0";
const IOVA: u64 = 0x20_0000;
const MEM: usize = 0x40000;
const RING: u64 = 0;
const COMPL: u64 = 0x1000;
const SRC: u64 = 0x10000;
const DST: u64 = 0x20000;
/// The part of the memory the test unmaps from the container.
const UNMAPPED: u64 = 0x30000;
const TIMEOUT: Duration = Duration::from_secs(5);
const VFIO_IOMMU_MAP_DMA: libc::c_ulong = vfio::io(100 + 13);
const VFIO_IOMMU_UNMAP_DMA: libc::c_ulong = vfio::io(100 + 14);

/// `struct vfio_iommu_type1_dma_map`.
#[repr(C)]
#[derive(Default)]
struct DmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
}

/// `struct vfio_iommu_type1_dma_unmap` (without the bitmap).
#[repr(C)]
#[derive(Default)]
struct DmaUnmap {
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
}

/// An ADI opened through its group, its memory mapped in the container,
/// vector 0 wired to an eventfd. Fields drop in order: the device before
/// the ADI is removed.
struct Setup {
    bar2: adv::RawMap,
    dev: GroupDevice,
    mem: DmaMem,
    efd: File,
    bar0: u64,
    cfg: u64,
    mdev: Removed,
}

fn group_of(m: &Mdev) -> Result<u32, String> {
    let link = std::fs::read_link(m.dir().join("iommu_group"))
        .map_err(|e| format!("iommu_group link: {e}"))?;
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .ok_or(format!("iommu_group link {link:?}"))
}

impl Setup {
    fn new() -> Result<Self, String> {
        let mdev = MdevType::new(PF, "vdcm_sim-1q")
            .create()?
            .map_err(|e| format!("create: {e}"))?;
        let r = (|| {
            let dev = GroupDevice::open(group_of(&mdev)?, &mdev.uuid())?;
            let mem = DmaMem::new(MEM).map_err(|e| format!("mmap: {e}"))?;
            // Two mappings: type1 unmaps whole mappings only, and the
            // test unmaps the second.
            for (off, len) in [(0, UNMAPPED), (UNMAPPED, MEM as u64 - UNMAPPED)] {
                let mut map = DmaMap {
                    argsz: std::mem::size_of::<DmaMap>() as u32,
                    flags: 1 | 2, // READ | WRITE
                    vaddr: mem.addr() + off,
                    iova: IOVA + off,
                    size: len,
                };
                vfio::ioctl(&dev.container, VFIO_IOMMU_MAP_DMA, &mut map)
                    .map_err(|e| format!("VFIO_IOMMU_MAP_DMA({:#x}): {e}", IOVA + off))?;
            }
            let efd = dma::eventfd().map_err(|e| format!("eventfd: {e}"))?;
            dma::set_vector_eventfd(&dev.device, 0, &efd)?;
            let (bar0, _) = adv::region_offset_size(&dev.device, 0)?;
            let (cfg, _) = adv::region_offset_size(&dev.device, 7)?;
            let (bar2, size) = adv::region_offset_size(&dev.device, 2)?;
            ensure(size == 4096, || format!("BAR2 size {size}"))?;
            let bar2 = adv::mmap_raw(
                &dev.device,
                bar2,
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
            )
            .map_err(|e| format!("mmap BAR2: {e}"))?;
            Ok((bar2, dev, mem, efd, bar0, cfg))
        })();
        match r {
            Ok((bar2, dev, mem, efd, bar0, cfg)) => Ok(Setup {
                bar2,
                dev,
                mem,
                efd,
                bar0,
                cfg,
                mdev: Removed(mdev),
            }),
            Err(e) => {
                let _ = mdev.remove();
                Err(e)
            }
        }
    }

    fn w32(&self, off: u64, v: u32) -> Result<(), String> {
        self.dev
            .device
            .write_all_at(&v.to_le_bytes(), self.bar0 + off)
            .map_err(|e| format!("BAR0 write at {off:#x}: {e}"))
    }

    fn w64(&self, off: u64, v: u64) -> Result<(), String> {
        self.dev
            .device
            .write_all_at(&v.to_le_bytes(), self.bar0 + off)
            .map_err(|e| format!("BAR0 write at {off:#x}: {e}"))
    }

    fn r32(&self, off: u64) -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        self.dev.device.read_exact_at(&mut b, self.bar0 + off)?;
        Ok(u32::from_le_bytes(b))
    }

    fn r64(&self, off: u64) -> Result<u64, String> {
        let mut b = [0u8; 8];
        self.dev
            .device
            .read_exact_at(&mut b, self.bar0 + off)
            .map_err(|e| format!("BAR0 read at {off:#x}: {e}"))?;
        Ok(u64::from_le_bytes(b))
    }

    fn command(&self) -> Result<u16, String> {
        let mut b = [0u8; 2];
        self.dev
            .device
            .read_exact_at(&mut b, self.cfg + 4)
            .map_err(|e| format!("config read: {e}"))?;
        Ok(u16::from_le_bytes(b))
    }

    /// Enables the device and queue 0 with a 64-entry ring at `RING`.
    fn start_queue(&self) -> Result<(), String> {
        vfio::set_pci_command(&self.dev.device, vfio::PCI_COMMAND_MEMORY_MASTER)?;
        self.w32(dma::DEVCTL, 1)?;
        self.w64(dma::QUEUE_BASE + dma::Q_RING_BASE, IOVA + RING)?;
        self.w32(dma::QUEUE_BASE + dma::Q_RING_SIZE, 64)?;
        self.w32(dma::QUEUE_BASE + dma::Q_CONTROL, 1)?;
        let st = self
            .r32(dma::QUEUE_BASE + dma::Q_STATUS)
            .map_err(|e| format!("STATUS: {e}"))?;
        ensure(st & 1 == 1, || {
            format!("queue did not start: STATUS {st:#x}")
        })
    }

    /// Posts `d` in ring slot `tail` with a completion record, rings, waits.
    fn run(&self, tail: u32, d: Desc) -> Result<dma::Completion, String> {
        self.mem.write(COMPL as usize, &[0u8; 32]);
        let d = Desc {
            completion: IOVA + COMPL,
            ..d
        };
        self.mem
            .write((RING as usize) + 64 * (tail as usize % 64), &d.encode());
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.bar2.store_u32(0, tail + 1);
        dma::wait_completion(&self.mem, COMPL as usize, TIMEOUT).ok_or_else(|| {
            format!(
                "descriptor {d:?} did not complete; STATUS {:?}",
                self.r32(dma::QUEUE_BASE + dma::Q_STATUS)
            )
        })
    }

    fn stat(&self, name: &str) -> Result<u64, String> {
        sysfs::read_u64(self.mdev.0.dir().join("stats").join(name))
    }
}

fn memmove_irq() -> Outcome {
    let s = Setup::new()?;
    s.start_queue()?;
    let data: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    s.mem.write(SRC as usize, &data);
    let c = s.run(
        0,
        Desc {
            opcode: dma::OP_MEMMOVE,
            flags: dma::FLAG_INTERRUPT,
            size: data.len() as u32,
            src: IOVA + SRC,
            dst: IOVA + DST,
            ..Default::default()
        },
    )?;
    ensure(c.status == dma::ST_SUCCESS && c.done == 8192, || {
        format!("completion {c:?}")
    })?;
    ensure(s.mem.bytes(DST as usize, data.len()) == data, || {
        "destination differs after MEMMOVE through the container".into()
    })?;
    ensure(dma::wait_eventfd(&s.efd, TIMEOUT) >= 1, || {
        "no completion interrupt on the eventfd".into()
    })?;
    // The container's unmap revokes the engine's access.
    let mut unmap = DmaUnmap {
        argsz: std::mem::size_of::<DmaUnmap>() as u32,
        iova: IOVA + UNMAPPED,
        size: MEM as u64 - UNMAPPED,
        ..Default::default()
    };
    vfio::ioctl(&s.dev.container, VFIO_IOMMU_UNMAP_DMA, &mut unmap)
        .map_err(|e| format!("VFIO_IOMMU_UNMAP_DMA: {e}"))?;
    let c = s.run(
        1,
        Desc {
            opcode: dma::OP_FILL,
            size: 64,
            dst: IOVA + UNMAPPED,
            operand: 0x4242_4242_4242_4242,
            ..Default::default()
        },
    )?;
    ensure(
        c.status == dma::ST_PAGE_FAULT && c.fault_iova == IOVA + UNMAPPED,
        || format!("FILL of an unmapped IOVA: {c:?}"),
    )?;
    ensure(s.mem.bytes(UNMAPPED as usize, 64) == [0u8; 64], || {
        "the engine wrote memory the container unmapped".into()
    })?;
    let (d, i) = (s.stat("descriptors")?, s.stat("interrupts")?);
    ensure(d == 2 && i == 1, || {
        format!("stats: descriptors {d} interrupts {i}, want 2 and 1")
    })
}

fn reset() -> Outcome {
    let s = Setup::new()?;
    s.start_queue()?;
    let c = s.run(0, Desc::default())?;
    ensure(c.status == dma::ST_SUCCESS, || format!("NOP: {c:?}"))?;
    let resets = s.stat("resets")?;
    vfio::ioctl_val(&s.dev.device, vfio::VFIO_DEVICE_RESET, 0)
        .map_err(|e| format!("VFIO_DEVICE_RESET: {e}"))?;
    let cmd = s.command()?;
    ensure(cmd == 0, || format!("command {cmd:#x} after reset"))?;
    match s.r32(dma::DEVCTL) {
        Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
        other => return Err(format!("BAR0 read with memory off: {other:?}, want EIO")),
    }
    vfio::set_pci_command(&s.dev.device, vfio::PCI_COMMAND_MEMORY_MASTER)?;
    let got = (
        s.r32(dma::DEVCTL).map_err(|e| e.to_string())?,
        s.r64(dma::QUEUE_BASE + dma::Q_RING_BASE)?,
        s.r32(dma::QUEUE_BASE + dma::Q_STATUS)
            .map_err(|e| e.to_string())?,
    );
    ensure(got == (0, 0, 0), || {
        format!("after reset DEVCTL, RING_BASE, STATUS = {got:x?}")
    })?;
    let now = s.stat("resets")?;
    ensure(now == resets + 1, || format!("resets {resets} -> {now}"))?;
    // The device works again after the reset, from a fresh ring.
    s.start_queue()?;
    let c = s.run(
        0,
        Desc {
            opcode: dma::OP_FILL,
            size: 128,
            dst: IOVA + DST,
            operand: 0x0101_0101_0101_0101,
            ..Default::default()
        },
    )?;
    ensure(
        c.status == dma::ST_SUCCESS && s.mem.bytes(DST as usize, 128) == [1u8; 128],
        || format!("FILL after reset: {c:?}"),
    )
}

fn main() {
    let mut t = Reporter::default();
    let avail = MdevType::new(PF, "vdcm_sim-1q").available().unwrap_or(0);
    t.point("group_datapath_memmove_irq", memmove_irq);
    t.point("group_reset", reset);
    t.point("group_adis_removed", || {
        let now = MdevType::new(PF, "vdcm_sim-1q").available()?;
        ensure(now == avail, || {
            format!("available_instances {avail} -> {now}")
        })
    });
    std::process::exit(t.exit_code());
}

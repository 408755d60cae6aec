// SPDX-License-Identifier: GPL-2.0

//! The data path and reset through the legacy VFIO interface: container
//! (`/dev/vfio/vfio`, type1v2), group (`/dev/vfio/N`), device fd from
//! `VFIO_GROUP_GET_DEVICE_FD`; DMA mapped with `VFIO_IOMMU_MAP_DMA` on the
//! container instead of an iommufd IOAS.
//!
//! Expects vdcm.ko and vdcm_sim.ko loaded with the defaults.

use std::os::unix::fs::FileExt;
use std::time::Duration;

use vdcm_selftests::abi;
use vdcm_selftests::adv;
use vdcm_selftests::desc::Completion;
use vdcm_selftests::desc::Descriptor;
use vdcm_selftests::desc::Opcode;
use vdcm_selftests::desc::Status;
use vdcm_selftests::dma;
use vdcm_selftests::dma::DmaMem;
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
/// An ADI opened through its group, its memory mapped in the container,
/// vector 0 wired to an eventfd. Fields drop in order: the device before
/// the ADI is removed.
struct Setup {
    bar2: adv::RawMap,
    dev: GroupDevice,
    mem: DmaMem,
    efd: dma::EventFd,
    bar0: u64,
    cfg: u64,
    mdev: Removed,
}

impl Setup {
    fn new() -> Result<Self, String> {
        let mdev = MdevType::new(PF, "vdcm_sim-1q")
            .create()?
            .map_err(|e| format!("create: {e}"))?;
        let r = (|| {
            let dev = GroupDevice::open(mdev.dir())?;
            let mem = DmaMem::new(MEM).map_err(|e| format!("mmap: {e}"))?;
            // Two mappings: type1 unmaps whole mappings only, and the
            // test unmaps the second.
            for (off, len) in [(0, UNMAPPED), (UNMAPPED, MEM as u64 - UNMAPPED)] {
                // SAFETY: `mem` is a `DmaMem`: only volatile accesses, no
                // Rust reference to its bytes, as `vfio_dma_map` requires.
                unsafe {
                    dev.container.vfio_dma_map(
                        IOVA + off,
                        len as usize,
                        mem.as_ptr().add(off as usize),
                    )
                }
                .map_err(|e| {
                    format!(
                        "VFIO_IOMMU_MAP_DMA({:#x}): {}",
                        IOVA + off,
                        vfio::error_chain(&e)
                    )
                })?;
            }
            let efd = dma::eventfd().map_err(|e| format!("eventfd: {e}"))?;
            dma::set_vector_eventfd(&dev.vfio, 0, &efd)?;
            let bar0 = dev.vfio.get_region_offset(dma::BAR0);
            let cfg = dev
                .vfio
                .get_region_offset(vfio::VFIO_PCI_CONFIG_REGION_INDEX);
            let (bar2, size) = (
                dev.vfio.get_region_offset(dma::BAR2),
                dev.vfio.get_region_size(dma::BAR2),
            );
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
        self.w32(abi::DEVCTL, 1)?;
        self.w64(abi::queue(0) + abi::Q_RING_BASE, IOVA + RING)?;
        self.w32(abi::queue(0) + abi::Q_RING_SIZE, 64)?;
        self.w32(abi::queue(0) + abi::Q_CONTROL, 1)?;
        let st = self
            .r32(abi::queue(0) + abi::Q_STATUS)
            .map_err(|e| format!("STATUS: {e}"))?;
        ensure(st & 1 == 1, || {
            format!("queue did not start: STATUS {st:#x}")
        })
    }

    /// Posts `d` in ring slot `tail` with a completion record, rings, waits.
    fn run(&self, tail: u32, d: Descriptor) -> Result<Completion, String> {
        self.mem.write(COMPL as usize, &[0u8; 32]);
        let d = d.with_completion(IOVA + COMPL);
        self.mem
            .write((RING as usize) + 64 * (tail as usize % 64), &d.to_bytes());
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.bar2.store_u32(0, tail + 1);
        dma::wait_completion(&self.mem, COMPL as usize, TIMEOUT).ok_or_else(|| {
            format!(
                "descriptor {d:?} did not complete; STATUS {:?}",
                self.r32(abi::queue(0) + abi::Q_STATUS)
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
        Descriptor::new(Opcode::MemMove, data.len() as u32, IOVA + SRC, IOVA + DST)
            .with_interrupt(),
    )?;
    ensure(c.status == Status::Success && c.done == 8192, || {
        format!("completion {c:?}")
    })?;
    ensure(s.mem.bytes(DST as usize, data.len()) == data, || {
        "destination differs after MEMMOVE through the container".into()
    })?;
    ensure(dma::wait_eventfd(&s.efd, TIMEOUT) >= 1, || {
        "no completion interrupt on the eventfd".into()
    })?;
    // The container's unmap revokes the engine's access.
    s.dev
        .container
        .vfio_dma_unmap(IOVA + UNMAPPED, MEM - UNMAPPED as usize)
        .map_err(|e| format!("VFIO_IOMMU_UNMAP_DMA: {}", vfio::error_chain(&e)))?;
    let c = s.run(
        1,
        Descriptor::new(Opcode::Fill, 64, 0, IOVA + UNMAPPED).with_operand(0x4242_4242_4242_4242),
    )?;
    ensure(
        c.status == Status::PageFault && c.fault_iova == IOVA + UNMAPPED,
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
    let c = s.run(0, dma::nop())?;
    ensure(c.status == Status::Success, || format!("NOP: {c:?}"))?;
    let resets = s.stat("resets")?;
    vfio::ioctl_val(&s.dev.device, vfio::VFIO_DEVICE_RESET(), 0)
        .map_err(|e| format!("VFIO_DEVICE_RESET: {e}"))?;
    let cmd = s.command()?;
    ensure(cmd == 0, || format!("command {cmd:#x} after reset"))?;
    match s.r32(abi::DEVCTL) {
        Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
        other => return Err(format!("BAR0 read with memory off: {other:?}, want EIO")),
    }
    vfio::set_pci_command(&s.dev.device, vfio::PCI_COMMAND_MEMORY_MASTER)?;
    let got = (
        s.r32(abi::DEVCTL).map_err(|e| e.to_string())?,
        s.r64(abi::queue(0) + abi::Q_RING_BASE)?,
        s.r32(abi::queue(0) + abi::Q_STATUS)
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
        Descriptor::new(Opcode::Fill, 128, 0, IOVA + DST).with_operand(0x0101_0101_0101_0101),
    )?;
    ensure(
        c.status == Status::Success && s.mem.bytes(DST as usize, 128) == [1u8; 128],
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

// SPDX-License-Identifier: GPL-2.0

//! The fast path end to end: an ADI opened through the iommufd cdev, its
//! queue programmed through trapped BAR0 writes, descriptors posted on a
//! ring in the tenant's memory (mapped into the device's IOAS), the tail
//! published by a plain store to the mmap'ed doorbell page, the simulated
//! PF's engine moving data through the ADI's iommufd access, completion
//! records written back, and completion interrupts arriving on an eventfd
//! installed with `VFIO_DEVICE_SET_IRQS`.
//!
//! Expects vdcm.ko and vdcm_sim.ko loaded with the defaults.

use std::time::Duration;

use vdcm_selftests::abi;
use vdcm_selftests::desc::Completion;
use vdcm_selftests::desc::Descriptor;
use vdcm_selftests::desc::Opcode;
use vdcm_selftests::desc::Status;
use vdcm_selftests::dma;
use vdcm_selftests::dma::DmaMem;
use vdcm_selftests::dma::Queue;
use vdcm_selftests::dma::Tenant;
use vdcm_selftests::mdev::MdevType;
use vdcm_selftests::mdev::Removed;
use vdcm_selftests::sysfs;
use vdcm_selftests::tap::ensure;
use vdcm_selftests::tap::Outcome;
use vdcm_selftests::tap::Reporter;
use vdcm_selftests::vfio;
use vdcm_selftests::vfio::CdevDevice;

const PF: &str = "vdcm_sim0";
/// IOVA the test's memory is mapped at.
const IOVA: u64 = 0x10_0000;
/// Layout of the test's memory (offsets).
const RING: usize = 0;
const COMPL: usize = 0x1000; // 32-byte records
const BATCH: usize = 0x2000; // batch descriptor arrays
const SRC: usize = 0x10000;
const DST: usize = 0x20000;
const MEM: usize = 0x40000;
const TIMEOUT: Duration = Duration::from_secs(5);

/// A 1-queue ADI, opened, with `MEM` bytes mapped at `IOVA` and vector 0
/// on an eventfd.
struct Setup(Tenant);

impl std::ops::Deref for Setup {
    type Target = Tenant;

    fn deref(&self) -> &Tenant {
        &self.0
    }
}

impl Setup {
    fn new() -> Result<Self, String> {
        Tenant::new(&MdevType::new(PF, "vdcm_sim-1q"), MEM, IOVA).map(Setup)
    }

    fn queue(&self) -> Result<Queue<'_>, String> {
        Queue::start(&self.dev, &self.mem, IOVA, 0, RING, 64, 0)
    }

    /// Runs `descs` (one completion record each, slot i) and waits for
    /// them all.
    fn run(&self, q: &mut Queue<'_>, descs: &[Descriptor]) -> Result<Vec<Completion>, String> {
        for (i, d) in descs.iter().enumerate() {
            self.mem.write(COMPL + i * 32, &[0u8; 32]);
            let mut d = *d;
            d.completion = IOVA + (COMPL + i * 32) as u64;
            q.push(&d);
        }
        q.ring();
        let mut out = Vec::new();
        for (i, d) in descs.iter().enumerate() {
            let c = dma::wait_completion(&self.mem, COMPL + i * 32, TIMEOUT).ok_or_else(|| {
                format!(
                    "descriptor {i} ({d:?}) did not complete in {TIMEOUT:?}; queue STATUS {:?}",
                    q.status()
                )
            })?;
            out.push(c);
        }
        Ok(out)
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A counter of the PF, from `/sys/class/vdcm_sim/<pf>/stats/`.
fn pf_stat(name: &str) -> Result<u64, String> {
    sysfs::read_u64(format!("/sys/class/vdcm_sim/{PF}/stats/{name}"))
}

fn memmove_with_interrupt() -> Outcome {
    let qps_before = pf_stat("qps_in_use")?;
    let (pf_desc, pf_bytes) = (pf_stat("descriptors")?, pf_stat("bytes")?);
    let s = Setup::new()?;
    let qps = pf_stat("qps_in_use")?;
    ensure(qps == qps_before + 1, || {
        format!("PF qps_in_use {qps_before} -> {qps} for a 1-queue ADI")
    })?;
    let mut q = s.queue()?;
    let data = pattern(7, 8192);
    s.mem.write(SRC, &data);
    let traps_before = s.stat("traps_bar0")? + s.stat("traps_config")? + s.stat("traps_bar2")?;
    let c = s.run(
        &mut q,
        &[Descriptor::new(
            Opcode::MemMove,
            data.len() as u32,
            IOVA + SRC as u64,
            IOVA + DST as u64,
        )
        .with_interrupt()],
    )?;
    ensure(c[0].status == Status::Success && c[0].done == 8192, || {
        format!("completion {:?}", c[0])
    })?;
    ensure(s.mem.bytes(DST, data.len()) == data, || {
        "destination differs from source after MEMMOVE".into()
    })?;
    let n = dma::wait_eventfd(&s.efd, TIMEOUT);
    ensure(n >= 1, || "no completion interrupt on the eventfd".into())?;
    let traps_after = s.stat("traps_bar0")? + s.stat("traps_config")? + s.stat("traps_bar2")?;
    ensure(traps_after == traps_before, || {
        format!("fast path trapped: {traps_before} -> {traps_after} slow-path accesses")
    })?;
    let (d, b, i) = (
        s.stat("descriptors")?,
        s.stat("bytes")?,
        s.stat("interrupts")?,
    );
    ensure(d == 1 && b == 8192 && i == 1, || {
        format!("stats: descriptors {d} bytes {b} interrupts {i}, want 1/8192/1")
    })?;
    let (pd, pb) = (
        pf_stat("descriptors")? - pf_desc,
        pf_stat("bytes")? - pf_bytes,
    );
    ensure(pd == 1 && pb == 8192, || {
        format!("PF counters rose by {pd} descriptors, {pb} bytes; want 1 and 8192")
    })
}

fn fill_compare_crc() -> Outcome {
    let s = Setup::new()?;
    let mut q = s.queue()?;
    let data = pattern(3, 4000);
    s.mem.write(SRC, &data);
    s.mem.write(DST, &data);
    let src = IOVA + SRC as u64;
    let dst = IOVA + DST as u64;
    let c = s.run(
        &mut q,
        &[
            Descriptor::new(Opcode::Compare, 4000, src, dst),
            Descriptor::new(Opcode::Crc32c, 4000, src, 0).with_operand(0x1234_5678),
            Descriptor::new(Opcode::Fill, 100, 0, dst + 10).with_operand(0x0807_0605_0403_0201),
            Descriptor::new(Opcode::Compare, 4000, src, dst),
            Descriptor::new(Opcode::Nop, 0, 0, 0),
        ],
    )?;
    ensure(c.iter().all(|c| c.status == Status::Success), || {
        format!(
            "statuses {:?}",
            c.iter().map(|c| c.status).collect::<Vec<_>>()
        )
    })?;
    ensure(c[0].result == 0, || {
        "COMPARE of equal buffers says different".into()
    })?;
    let want = crc32c::crc32c_append(0x1234_5678, &data);
    ensure(c[1].result == u64::from(want), || {
        format!("CRC32C {:#x}, want {want:#x}", c[1].result)
    })?;
    let filled = s.mem.bytes(DST + 10, 100);
    ensure(
        filled
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 8) as u8 + 1),
        || format!("FILL wrote {:?}", &filled[..16]),
    )?;
    ensure(s.mem.bytes(DST + 110, 10) == data[110..120], || {
        "FILL wrote past its size".into()
    })?;
    ensure(c[3].result == 1, || "COMPARE after FILL says equal".into())
}

fn batch() -> Outcome {
    let s = Setup::new()?;
    let mut q = s.queue()?;
    let data = pattern(11, 1024);
    s.mem.write(SRC, &data);
    for k in 0..4usize {
        let d = Descriptor::new(
            Opcode::MemMove,
            256,
            IOVA + (SRC + k * 256) as u64,
            IOVA + (DST + 4096 * k) as u64,
        )
        .with_completion(IOVA + (COMPL + 0x400 + k * 32) as u64);
        s.mem.write(BATCH + k * 64, &d.to_bytes());
    }
    let c = s.run(
        &mut q,
        &[Descriptor::new(Opcode::Batch, 4, IOVA + BATCH as u64, 0)],
    )?;
    ensure(c[0].status == Status::Success && c[0].done == 4, || {
        format!("batch completion {:?}", c[0])
    })?;
    for k in 0..4usize {
        let sub = dma::completion(&s.mem, COMPL + 0x400 + k * 32);
        ensure(sub.is_some_and(|c| c.status == Status::Success), || {
            format!("batch member {k}: {sub:?}")
        })?;
        ensure(
            s.mem.bytes(DST + 4096 * k, 256) == data[k * 256..(k + 1) * 256],
            || format!("batch member {k} moved the wrong bytes"),
        )?;
    }
    Ok(())
}

fn fault_on_unmapped_iova() -> Outcome {
    let s = Setup::new()?;
    let mut q = s.queue()?;
    let unmapped = IOVA + MEM as u64 + 0x10_0000;
    s.mem.write(DST, &[0xaa; 64]);
    let faults_before = s.stat("faults")?;
    let c = s.run(
        &mut q,
        &[
            Descriptor::new(Opcode::MemMove, 64, unmapped, IOVA + DST as u64),
            Descriptor::new(Opcode::MemMove, 64, IOVA + SRC as u64, unmapped),
            // Straddles the end of the mapping: must fault, write nothing.
            Descriptor::new(Opcode::Fill, 8192, 0, IOVA + MEM as u64 - 4096)
                .with_operand(0x5555_5555_5555_5555),
        ],
    )?;
    for (i, want_iova) in [(0, unmapped), (1, unmapped)] {
        ensure(
            c[i].status == Status::PageFault && c[i].fault_iova == want_iova,
            || {
                format!(
                    "descriptor {i}: {:?}, want page fault at {want_iova:#x}",
                    c[i]
                )
            },
        )?;
    }
    ensure(c[2].status == Status::PageFault, || {
        format!("straddling FILL: {:?}", c[2])
    })?;
    ensure(s.mem.bytes(DST, 64) == [0xaa; 64], || {
        "a faulting MEMMOVE wrote the destination".into()
    })?;
    ensure(
        s.mem.bytes(MEM - 4096, 4096).iter().all(|&b| b == 0),
        || "a faulting FILL wrote the mapped part of its range".into(),
    )?;
    let faults = s.stat("faults")? - faults_before;
    ensure(faults == 3, || {
        format!("faults counter rose by {faults}, want 3")
    })
}

fn invalid_descriptors() -> Outcome {
    let s = Setup::new()?;
    let mut q = s.queue()?;
    let c = s.run(
        &mut q,
        &[
            {
                let mut d = dma::nop();
                d.opcode = 0x7f;
                d
            },
            Descriptor::new(Opcode::MemMove, 0, 0, 0),
            Descriptor::new(Opcode::Fill, 1 << 30, 0, IOVA),
        ],
    )?;
    let got: Vec<Status> = c.iter().map(|c| c.status).collect();
    ensure(
        got == [
            Status::InvalidOpcode,
            Status::InvalidSize,
            Status::InvalidSize,
        ],
        || format!("statuses {got:?}"),
    )?;
    let invalid = s.stat("invalid")?;
    ensure(invalid == 3, || {
        format!("invalid counter {invalid}, want 3")
    })
}

fn unmap_revokes_access() -> Outcome {
    let s = Setup::new()?;
    let mut q = s.queue()?;
    // A second buffer, mapped then unmapped: the engine must not reach it.
    let other = DmaMem::new(0x1000).map_err(|e| format!("mmap: {e}"))?;
    let other_iova = 0x4000_0000;
    dma::map(&s.dev, &other, other_iova)?;
    let c = s.run(
        &mut q,
        &[Descriptor::new(Opcode::Fill, 64, 0, other_iova).with_operand(0x1111_1111_1111_1111)],
    )?;
    ensure(
        c[0].status == Status::Success && other.bytes(0, 1)[0] == 0x11,
        || format!("FILL of the mapped buffer: {:?}", c[0]),
    )?;
    dma::unmap(&s.dev, other_iova, 0x1000)?;
    let c = s.run(
        &mut q,
        &[Descriptor::new(Opcode::Fill, 64, 0, other_iova).with_operand(0x2222_2222_2222_2222)],
    )?;
    ensure(c[0].status == Status::PageFault, || {
        format!("FILL after unmap: {:?}", c[0])
    })?;
    ensure(other.bytes(0, 64).iter().all(|&b| b == 0x11), || {
        "the engine wrote a buffer after the tenant unmapped it".into()
    })
}

fn many_descriptors_no_traps() -> Outcome {
    let s = Setup::new()?;
    let mut q = s.queue()?;
    let traps = |s: &Setup| -> Result<u64, String> {
        Ok(s.stat("traps_bar0")? + s.stat("traps_config")? + s.stat("traps_bar2")?)
    };
    let before = traps(&s)?;
    let rounds = 64;
    for _ in 0..rounds {
        // 63 NOPs without records and one with, per round: a full ring.
        for _ in 0..63 {
            q.push(&dma::nop());
        }
        s.run(&mut q, &[dma::nop()])?;
    }
    let after = traps(&s)?;
    let d = s.stat("descriptors")?;
    ensure(d == rounds * 64, || {
        format!("descriptors {d}, want {}", rounds * 64)
    })?;
    ensure(after == before, || {
        format!(
            "{} slow-path traps while {d} descriptors ran",
            after - before
        )
    })
}

/// What, flags, index, start, count, data, argsz override.
type SetIrqsCase = (&'static str, u32, u32, u32, u32, Vec<u8>, Option<u32>);

fn set_irqs_validation() -> Outcome {
    let s = Setup::new()?;
    let dev = &s.dev.device;
    let fd = s.efd.try_clone().map_err(|e| e.to_string())?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd).to_ne_bytes();
    let cases: [SetIrqsCase; 7] = [
        (
            "two actions",
            dma::IRQ_SET_EVENTFD_TRIGGER | (1 << 3),
            dma::MSIX_INDEX,
            0,
            1,
            raw.to_vec(),
            None,
        ),
        (
            "no data type",
            1 << 5,
            dma::MSIX_INDEX,
            0,
            1,
            raw.to_vec(),
            None,
        ),
        (
            "vector past the end",
            dma::IRQ_SET_EVENTFD_TRIGGER,
            dma::MSIX_INDEX,
            2,
            1,
            raw.to_vec(),
            None,
        ),
        (
            "index past the end",
            dma::IRQ_SET_EVENTFD_TRIGGER,
            9,
            0,
            1,
            raw.to_vec(),
            None,
        ),
        (
            "argsz too small",
            dma::IRQ_SET_EVENTFD_TRIGGER,
            dma::MSIX_INDEX,
            0,
            1,
            raw.to_vec(),
            Some(21),
        ),
        (
            "fd -5",
            dma::IRQ_SET_EVENTFD_TRIGGER,
            dma::MSIX_INDEX,
            0,
            1,
            (-5i32).to_ne_bytes().to_vec(),
            None,
        ),
        (
            "unknown flag",
            dma::IRQ_SET_EVENTFD_TRIGGER | (1 << 9),
            dma::MSIX_INDEX,
            0,
            1,
            raw.to_vec(),
            None,
        ),
    ];
    for (what, flags, index, start, count, data, argsz) in cases {
        match dma::set_irqs_raw(dev, flags, index, start, count, &data, argsz) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            other => return Err(format!("SET_IRQS with {what}: {other:?}, want EINVAL")),
        }
    }
    // A descriptor that is not an eventfd.
    let not_eventfd = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    let nfd = std::os::fd::AsRawFd::as_raw_fd(&not_eventfd).to_ne_bytes();
    match dma::set_irqs_raw(
        dev,
        dma::IRQ_SET_EVENTFD_TRIGGER,
        dma::MSIX_INDEX,
        0,
        1,
        &nfd,
        None,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        other => {
            return Err(format!(
                "SET_IRQS with /dev/null as eventfd: {other:?}, want EINVAL"
            ))
        }
    }
    // Loopback: DATA_NONE trigger fires vector 0; masked, it pends until
    // unmasked.
    dma::set_vectors_none(dev, dma::IRQ_SET_NONE_TRIGGER, 1)
        .map_err(|e| format!("loopback trigger: {e}"))?;
    ensure(dma::wait_eventfd(&s.efd, TIMEOUT) == 1, || {
        "loopback trigger did not signal the eventfd".into()
    })?;
    dma::set_vectors_none(dev, dma::IRQ_SET_NONE_MASK, 1).map_err(|e| format!("mask: {e}"))?;
    dma::set_vectors_none(dev, dma::IRQ_SET_NONE_TRIGGER, 1)
        .map_err(|e| format!("trigger while masked: {e}"))?;
    ensure(
        dma::wait_eventfd(&s.efd, Duration::from_millis(100)) == 0,
        || "a masked vector signalled".into(),
    )?;
    dma::set_vectors_none(dev, dma::IRQ_SET_NONE_UNMASK, 1).map_err(|e| format!("unmask: {e}"))?;
    ensure(dma::wait_eventfd(&s.efd, TIMEOUT) == 1, || {
        "the pending vector was not delivered on unmask".into()
    })?;
    // Disable all: later triggers reach nothing.
    dma::set_vectors_none(dev, dma::IRQ_SET_NONE_TRIGGER, 0)
        .map_err(|e| format!("disable: {e}"))?;
    dma::set_vectors_none(dev, dma::IRQ_SET_NONE_TRIGGER, 1)
        .map_err(|e| format!("trigger after disable: {e}"))?;
    ensure(
        dma::wait_eventfd(&s.efd, Duration::from_millis(100)) == 0,
        || "a disabled vector signalled".into(),
    )
}

fn irq_info() -> Outcome {
    let s = Setup::new()?;
    let info =
        vfio::irq_info(&s.dev.device, dma::MSIX_INDEX).map_err(|e| format!("GET_IRQ_INFO: {e}"))?;
    // A 1-queue ADI has 2 vectors: completions and errors.
    ensure(
        info.count == 2 && info.flags & vfio::uapi::VFIO_IRQ_INFO_EVENTFD != 0,
        || format!("MSI-X info {info:?}"),
    )?;
    // One error and one request notifier; no INTx, no MSI.
    for (index, want) in [(0u32, 0u32), (1, 0), (3, 1), (4, 1)] {
        let i = vfio::irq_info(&s.dev.device, index)
            .map_err(|e| format!("GET_IRQ_INFO({index}): {e}"))?;
        ensure(i.count == want, || {
            format!("IRQ index {index}: {i:?}, want count {want}")
        })?;
    }
    match vfio::irq_info(&s.dev.device, 42) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => Err(format!("GET_IRQ_INFO index 42: {other:?}, want EINVAL")),
    }
}

fn close_resets_device() -> Outcome {
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let mdev = Removed(ty.create()?.map_err(|e| format!("create: {e}"))?);
    let cdev = mdev.0.cdev()?;
    let mem = DmaMem::new(MEM).map_err(|e| format!("mmap: {e}"))?;
    {
        let dev = CdevDevice::open(&cdev)?;
        dma::map(&dev, &mem, IOVA)?;
        let _q = Queue::start(&dev, &mem, IOVA, 0, RING, 64, 0)?;
        // Dropping the doorbell mapping and the fds closes the device.
    }
    let dev = CdevDevice::open(&cdev)?;
    let cmd = dev.read_u32(CFG, 4)? & 0xffff;
    ensure(cmd == 0, || {
        format!("PCI command {cmd:#x} after close and reopen")
    })?;
    dev.enable()?;
    let status = dev.read_u32(dma::BAR0, abi::queue(0) + abi::Q_STATUS)?;
    let ctl = dev.read_u32(dma::BAR0, abi::DEVCTL)?;
    let ring = dev.read_u64(dma::BAR0, abi::queue(0) + abi::Q_RING_BASE)?;
    ensure(status == 0 && ctl == 0 && ring == 0, || {
        format!("after close and reopen: queue STATUS {status:#x}, DEVCTL {ctl:#x}, RING_BASE {ring:#x}")
    })?;
    let resets = sysfs::read_u64(mdev.0.dir().join("stats/resets"))?;
    ensure(resets >= 1, || format!("resets {resets} after a close"))?;
    // The second user gets a working device: DMA and completions again.
    dma::map(&dev, &mem, IOVA)?;
    let mut q = Queue::start(&dev, &mem, IOVA, 0, RING, 64, 0)?;
    mem.write(COMPL, &[0u8; 32]);
    q.push(&Descriptor::new(Opcode::Nop, 0, 0, 0).with_completion(IOVA + COMPL as u64));
    q.ring();
    let c = dma::wait_completion(&mem, COMPL, TIMEOUT).ok_or("no completion after reopen")?;
    ensure(c.status == Status::Success, || {
        format!("NOP after reopen: {c:?}")
    })
}

const CFG: u32 = vfio::VFIO_PCI_CONFIG_REGION_INDEX;

/// Finds standard capability `id` by walking the list from 0x34.
fn find_cap(dev: &CdevDevice, id: u8) -> Result<Option<u64>, String> {
    let mut at = u64::from(dev.read_u32(CFG, 0x34)? as u8);
    for _ in 0..48 {
        if at == 0 {
            return Ok(None);
        }
        let hdr = dev.read_u32(CFG, at)?;
        if hdr as u8 == id {
            return Ok(Some(at));
        }
        at = u64::from((hdr >> 8) as u8);
    }
    Err("capability list does not end".into())
}

fn config_space_identity() -> Outcome {
    let s = Setup::new()?;
    let d = &s.dev;
    let id = d.read_u32(CFG, 0)?;
    ensure(id == 0x51a0_fffe, || format!("vendor/device {id:#010x}"))?;
    let class = d.read_u32(CFG, 8)? >> 8;
    ensure(class == 0x08_80_00, || format!("class {class:#x}"))?;
    let status = d.read_u32(CFG, 4)? >> 16;
    ensure(status & 0x10 != 0, || {
        format!("status {status:#x}: no capability list")
    })?;
    // The whole space in one read, as VMMs do.
    let mut all = [0u8; 256];
    let region = d.region(CFG)?;
    std::os::unix::fs::FileExt::read_exact_at(&d.device, &mut all, region.offset)
        .map_err(|e| format!("256-byte config read: {e}"))?;
    ensure(all[..4] == id.to_le_bytes(), || "bulk read differs".into())?;
    let mut order = Vec::new();
    let mut at = all[0x34] as usize;
    while at != 0 && order.len() < 8 {
        order.push(all[at]);
        at = all[at + 1] as usize;
    }
    ensure(order == [0x01, 0x10, 0x11], || {
        format!("capability IDs {order:x?}")
    })?;
    let msix = find_cap(d, 0x11)?.ok_or("no MSI-X capability")?;
    let ctrl = d.read_u32(CFG, msix)? >> 16;
    ensure(ctrl & 0x7ff == 1, || {
        format!("MSI-X table size field {ctrl:#x}, want 1 (2 vectors)")
    })?;
    let table = d.read_u32(CFG, msix + 4)?;
    ensure(table == 0x2000, || {
        format!("MSI-X table {table:#x}, want BAR0 + 0x2000")
    })?;
    let ext = d.read_u32(CFG, 0x100)?;
    let dvsec = d.read_u32(CFG, 0x104)?;
    let dvsec_id = d.read_u32(CFG, 0x108)? & 0xffff;
    ensure(
        ext & 0xffff == 0x23 && dvsec & 0xffff == 0x8086 && dvsec_id == 5,
        || format!("extended cap {ext:#x}, DVSEC header {dvsec:#x}, id {dvsec_id}"),
    )?;
    // BAR0: 64-bit, 16 KiB. Sizing with all-ones, then restoring.
    let bar0 = d.read_u32(CFG, 0x10)?;
    ensure(bar0 & 0x7 == 0x4, || {
        format!("BAR0 flags {bar0:#x}, want 64-bit memory")
    })?;
    d.write_u32(CFG, 0x10, u32::MAX)?;
    let size = d.read_u32(CFG, 0x10)?;
    ensure(size == 0xffff_c004, || {
        format!("BAR0 size probe {size:#x}, want 0xffffc004")
    })?;
    d.write_u32(CFG, 0x10, 0xfe00_0000)?;
    let back = d.read_u32(CFG, 0x10)?;
    ensure(back == 0xfe00_0004, || format!("BAR0 address {back:#x}"))?;
    // Read-only: vendor ID writes are ignored.
    d.write_u32(CFG, 0, 0x1234_5678)?;
    ensure(d.read_u32(CFG, 0)? == id, || {
        "vendor/device ID changed on write".into()
    })?;
    // Bad accesses: 8 bytes, misaligned, past the end.
    for (off, len) in [(0u64, 8usize), (1, 2), (2, 4), (4096, 4), (4094, 4)] {
        if d.write_at(CFG, off, &vec![0u8; len]).is_ok() {
            return Err(format!("{len}-byte config write at {off:#x} accepted"));
        }
    }
    let traps = s.stat("traps_config")?;
    ensure(traps > 10, || format!("traps_config {traps}"))
}

fn bus_master_gates_dma() -> Outcome {
    let s = Setup::new()?;
    let mut q = s.queue()?;
    s.run(&mut q, &[dma::nop()])?;
    s.mem.write(DST, &[0x5a; 64]);
    s.mem.write(SRC, &[0x11; 64]);
    // Memory space on, bus master off.
    vfio::set_pci_command(&s.dev.device, 1 << 1)?;
    let faults = s.stat("faults")?;
    s.mem.write(COMPL, &[0u8; 32]);
    q.push(
        &Descriptor::new(Opcode::MemMove, 64, IOVA + SRC as u64, IOVA + DST as u64)
            .with_completion(IOVA + COMPL as u64),
    );
    q.ring();
    std::thread::sleep(Duration::from_millis(300));
    ensure(s.mem.bytes(COMPL, 1)[0] == 0, || {
        "a completion was written with bus mastering disabled".into()
    })?;
    ensure(s.mem.bytes(DST, 64) == [0x5a; 64], || {
        "data moved with bus mastering disabled".into()
    })?;
    let after = s.stat("faults")?;
    ensure(after > faults, || {
        format!("faults {faults} -> {after}: the blocked DMA was not counted")
    })
}

fn flr_resets_function() -> Outcome {
    let s = Setup::new()?;
    let q = s.queue()?;
    let resets = s.stat("resets")?;
    let exp = find_cap(&s.dev, 0x10)?.ok_or("no PCI Express capability")?;
    let devcap = s.dev.read_u32(CFG, exp + 4)?;
    ensure(devcap & (1 << 28) != 0, || {
        format!("DEVCAP {devcap:#x}: no FLR")
    })?;
    // Initiate FLR: bit 15 of Device Control (offset 8 of the capability).
    s.dev
        .write_at(CFG, exp + 8, &(1u16 << 15).to_le_bytes())
        .map_err(|e| format!("FLR write: {e}"))?;
    let devctl = s.dev.read_u32(CFG, exp + 8)? & 0xffff;
    ensure(devctl & (1 << 15) == 0, || {
        "Initiate FLR reads back as 1".into()
    })?;
    let cmd = s.dev.read_u32(CFG, 4)? & 0xffff;
    ensure(cmd == 0, || format!("command {cmd:#x} after FLR"))?;
    s.dev.enable()?;
    let status = q.status()?;
    let ring = s
        .dev
        .read_u64(dma::BAR0, abi::queue(0) + abi::Q_RING_BASE)?;
    ensure(status == 0 && ring == 0, || {
        format!("after FLR: queue STATUS {status:#x}, RING_BASE {ring:#x}")
    })?;
    let now = s.stat("resets")?;
    ensure(now == resets + 1, || format!("resets {resets} -> {now}"))
}

fn bar2_sparse_mmap_cap() -> Outcome {
    use vfio::uapi::vfio_region_info_cap_sparse_mmap as SparseMmap;
    use vfio::uapi::vfio_region_sparse_mmap_area as Area;
    let s = Setup::new()?;
    // GET_REGION_INFO with room for the capability chain, asked raw: the
    // test checks the header's version, which `vfio-ioctls` drops.
    let (info, reply) = vfio::region_info_caps(&s.dev.device, dma::BAR2)?;
    let want = vfio::uapi::VFIO_REGION_INFO_FLAG_MMAP | vfio::uapi::VFIO_REGION_INFO_FLAG_CAPS;
    ensure(info.flags & want == want, || {
        format!("BAR2 flags {:#x}: want MMAP and CAPS", info.flags)
    })?;
    let cap = info.cap_offset as usize;
    let room = reply.len() * 8 - std::mem::size_of::<SparseMmap>() - std::mem::size_of::<Area>();
    ensure((std::mem::size_of_val(&info)..=room).contains(&cap), || {
        format!("cap_offset {cap}")
    })?;
    let hdr: vfio::uapi::vfio_info_cap_header =
        vfio::region_cap(&reply, cap).ok_or("capability header out of the reply")?;
    let areas: u32 = vfio::region_cap(&reply, cap + std::mem::offset_of!(SparseMmap, nr_areas))
        .ok_or("nr_areas out of the reply")?;
    ensure(
        u32::from(hdr.id) == vfio::uapi::VFIO_REGION_INFO_CAP_SPARSE_MMAP
            && hdr.version == 1
            && areas == 1,
        || {
            format!(
                "capability id {} version {} areas {areas}",
                hdr.id, hdr.version
            )
        },
    )?;
    let area: Area = vfio::region_cap(&reply, cap + std::mem::size_of::<SparseMmap>())
        .ok_or("sparse area out of the reply")?;
    ensure(area.offset == 0 && area.size == 4096, || {
        format!("sparse area [{:#x}, +{:#x})", area.offset, area.size)
    })?;
    // And what `vfio-ioctls` made of it at open.
    let caps = s.dev.vfio.get_region_caps(dma::BAR2);
    let sparse: Vec<(u64, u64)> = caps
        .iter()
        .filter_map(|c| match c {
            vfio::VfioRegionInfoCap::SparseMmap(m) => Some(m),
            _ => None,
        })
        .flat_map(|m| m.areas.iter().map(|a| (a.offset, a.size)))
        .collect();
    ensure(sparse == [(0, 4096)], || {
        format!("vfio-ioctls' sparse areas of BAR2 {sparse:x?}")
    })
}

fn ring_unmap_stops_queue() -> Outcome {
    let s = Setup::new()?;
    // The ring lives in its own mapping, so it can be unmapped alone.
    let ring = DmaMem::new(0x1000).map_err(|e| format!("mmap: {e}"))?;
    let ring_iova = 0x8000_0000;
    dma::map(&s.dev, &ring, ring_iova)?;
    s.dev.enable()?;
    let blk = abi::QUEUE_BASE;
    s.dev.write_u32(dma::BAR0, abi::DEVCTL, 1)?;
    s.dev
        .write_u64(dma::BAR0, blk + abi::Q_RING_BASE, ring_iova)?;
    s.dev.write_u32(dma::BAR0, blk + abi::Q_RING_SIZE, 64)?;
    s.dev.write_u32(dma::BAR0, blk + abi::Q_CONTROL, 1)?;
    let running = s.dev.read_u32(dma::BAR0, blk + abi::Q_STATUS)?;
    ensure(running == 1, || format!("STATUS {running:#x} after enable"))?;
    let err = dma::eventfd().map_err(|e| format!("eventfd: {e}"))?;
    dma::set_eventfd(&s.dev.vfio, dma::ERR_INDEX, 0, &err)?;
    dma::unmap(&s.dev, ring_iova, 0x1000)?;
    ensure(dma::wait_eventfd(&err, TIMEOUT) == 1, || {
        "the error notifier was not signalled for the ring fault".into()
    })?;
    let status = s.dev.read_u32(dma::BAR0, blk + abi::Q_STATUS)?;
    // error bit and error code 4 (ring fault).
    ensure(status == 0x402, || {
        format!("STATUS {status:#x} after the ring was unmapped, want 0x402")
    })?;
    // A queue whose ring is not mapped does not start.
    s.dev.write_u32(dma::BAR0, blk + abi::Q_CONTROL, 1)?;
    let status = s.dev.read_u32(dma::BAR0, blk + abi::Q_STATUS)?;
    ensure(status == 0x402, || {
        format!("STATUS {status:#x} enabling a queue on an unmapped ring, want 0x402")
    })
}

fn main() {
    let mut t = Reporter::default();
    t.point("datapath_memmove_doorbell_irq", memmove_with_interrupt);
    t.point("datapath_fill_compare_crc32c", fill_compare_crc);
    t.point("datapath_batch", batch);
    t.point("isolation_fault_on_unmapped_iova", fault_on_unmapped_iova);
    t.point("bad_input_invalid_descriptors", invalid_descriptors);
    t.point(
        "isolation_unmap_revokes_engine_access",
        unmap_revokes_access,
    );
    t.point(
        "fastpath_no_traps_4096_descriptors",
        many_descriptors_no_traps,
    );
    t.point("bad_input_set_irqs_and_loopback", set_irqs_validation);
    t.point("adi_irq_info", irq_info);
    t.point("adi_close_resets_device", close_resets_device);
    t.point("adi_config_space_identity", config_space_identity);
    t.point("isolation_bus_master_gates_dma", bus_master_gates_dma);
    t.point("adi_flr_resets_function", flr_resets_function);
    t.point("adi_bar2_sparse_mmap_cap", bar2_sparse_mmap_cap);
    t.point("isolation_ring_unmap_stops_queue", ring_unmap_stops_queue);
    std::process::exit(t.exit_code());
}

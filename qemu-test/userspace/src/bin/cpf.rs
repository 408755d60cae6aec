// SPDX-License-Identifier: GPL-2.0

//! The C sample PF (`samples/vdcm_cpf`) through the VDCM: the accounting of
//! its one ADI type, the VFIO device its ADIs present, the trapped mailbox
//! register, the doorbell page mapped straight into user space (and proof
//! that stores to it trap nothing), a checksum the PF computes from the
//! tenant's memory with its completion on an eventfd, reset, and removal
//! of an open ADI.
//!
//! Expects vdcm.ko and vdcm_cpf.ko loaded with the defaults (one PF,
//! `vdcm_cpf0`, of 8 ADIs). The type is found by its name, `*-mbox`, not by
//! the prefix the mdev core puts in front of it.

use std::time::Duration;
use std::time::Instant;

use vdcm_selftests::adv;
use vdcm_selftests::adv::Rng;
use vdcm_selftests::dma;
use vdcm_selftests::dma::Tenant;
use vdcm_selftests::mdev::Mdev;
use vdcm_selftests::mdev::MdevType;
use vdcm_selftests::mdev::Removed;
use vdcm_selftests::sysfs;
use vdcm_selftests::tap::ensure;
use vdcm_selftests::tap::note;
use vdcm_selftests::tap::Outcome;
use vdcm_selftests::tap::Reporter;
use vdcm_selftests::vfio;
use vdcm_selftests::vfio::CdevDevice;

const PF: &str = "vdcm_cpf0";
/// `num_adis` of vdcm_cpf.ko, by default.
const NUM_ADIS: u64 = 8;

/// Region indexes.
const BAR0: u32 = 0;
const BAR2: u32 = 2;
const CFG: u32 = vfio::VFIO_PCI_CONFIG_REGION_INDEX;

/// The BAR0 registers of an "mbox" ADI.
const ID: u64 = 0x000;
const MAILBOX: u64 = 0x004;
const BUF_LO: u64 = 0x008;
const BUF_HI: u64 = 0x00c;
const BUF_LEN: u64 = 0x010;
const RESULT: u64 = 0x014;
const STATUS: u64 = 0x018;
const COUNT: u64 = 0x01c;
/// `ID`'s value: "CPF1".
const ID_VALUE: u32 = 0x3146_5043;
const STATUS_DONE: u32 = 1 << 0;
const STATUS_ERROR: u32 = 1 << 1;

const PAGE: usize = 4096;
/// IOVA the tenant's memory is mapped at; 64-bit, so BUF_HI matters.
const IOVA: u64 = 0x1_2340_0000;
const MEM: usize = 4 * PAGE;
/// Where the buffer to checksum lies in the tenant's memory.
const BUF: usize = PAGE;
const TIMEOUT: Duration = Duration::from_secs(5);

/// The PF's one ADI type: the entry of its `mdev_supported_types` whose
/// name ends in `-mbox`.
fn mbox_type() -> Result<MdevType, String> {
    let dir = format!("/sys/class/mdev_bus/{PF}/mdev_supported_types");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("read {dir}: {e}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("mbox"))
        .collect();
    match names.as_slice() {
        [name] => Ok(MdevType::new(PF, name)),
        _ => Err(format!("{dir}: types named *mbox: {names:?}, want one")),
    }
}

/// Creates an ADI of the mbox type, removed when the guard drops.
fn create(ty: &MdevType) -> Result<Removed, String> {
    Ok(Removed(ty.create()?.map_err(|e| format!("create: {e}"))?))
}

/// The ADI's counter `stats/<name>`.
fn stat(mdev: &Mdev, name: &str) -> Result<u64, String> {
    sysfs::read_u64(mdev.dir().join("stats").join(name))
}

/// Polls `COUNT` until it reads `want`; returns how many BAR0 reads that
/// took (each is a trap).
fn wait_count(dev: &CdevDevice, want: u32) -> Result<u64, String> {
    let start = Instant::now();
    let mut reads = 0;
    loop {
        let count = dev.read_u32(BAR0, COUNT)?;
        reads += 1;
        if count == want {
            return Ok(reads);
        }
        if start.elapsed() > TIMEOUT {
            return Err(format!(
                "COUNT {count}, want {want} within {TIMEOUT:?}: the doorbell was not served"
            ));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// An ADI of the mbox type with the tenant's memory mapped, memory space
/// and bus mastering on, and its doorbell page mapped. Bound as `let (s,
/// bell)`, the mapping is dropped (unmapped) before the tenant, whose
/// removal waits for it.
fn open_mbox() -> Result<(Tenant, vfio::Mapping), String> {
    let s = Tenant::new(&mbox_type()?, MEM, IOVA)?;
    s.dev.enable()?;
    let bell = s
        .dev
        .mmap(BAR2, 0, PAGE)
        .map_err(|e| format!("mmap BAR2: {e}"))?;
    Ok((s, bell))
}

/// Programs the buffer registers: 3 BAR0 writes.
fn set_buffer(dev: &CdevDevice, iova: u64, len: u32) -> Result<(), String> {
    dev.write_u32(BAR0, BUF_LO, iova as u32)?;
    dev.write_u32(BAR0, BUF_HI, (iova >> 32) as u32)?;
    dev.write_u32(BAR0, BUF_LEN, len)
}

/// The errno of a failed region access.
fn errno<T>(r: std::io::Result<T>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

fn create_accounting() -> Outcome {
    let ty = mbox_type()?;
    let avail = ty.available()?;
    ensure(avail == NUM_ADIS, || {
        format!("available_instances {avail}, want {NUM_ADIS}")
    })?;
    let mut made = Vec::new();
    for i in 0..NUM_ADIS {
        made.push(create(&ty).map_err(|e| format!("ADI #{i}: {e}"))?);
        let now = ty.available()?;
        ensure(now == NUM_ADIS - i - 1, || {
            format!("available_instances {now} after {} creates", i + 1)
        })?;
    }
    let extra = ty.create()?;
    if let Ok(m) = &extra {
        let _ = m.remove();
    }
    let e = extra.err();
    ensure(e.is_some(), || {
        format!("create number {} succeeded", NUM_ADIS + 1)
    })?;
    note(format!("create beyond num_adis: {e:?}"));
    let devices = std::fs::read_dir(ty.dir().join("devices"))
        .map_err(|e| format!("read devices/: {e}"))?
        .count() as u64;
    ensure(devices == NUM_ADIS, || {
        format!("{devices} entries in the type's devices/, want {NUM_ADIS}")
    })?;
    let now = ty.available()?;
    ensure(now == 0, || {
        format!("available_instances {now} after a refused create, want 0")
    })?;
    made.pop();
    let now = ty.available()?;
    ensure(now == 1, || {
        format!("available_instances {now} after one remove, want 1")
    })?;
    made.clear();
    let now = ty.available()?;
    ensure(now == NUM_ADIS, || {
        format!("available_instances {now} after removing all, want {NUM_ADIS}")
    })
}

/// The sparse-mmap areas of region `index`, from the capability chain
/// `vfio-ioctls` read at open.
fn sparse_areas(dev: &CdevDevice, index: u32) -> Result<Vec<(u64, u64)>, String> {
    let flags = dev.vfio.get_region_flags(index);
    ensure(flags & vfio::uapi::VFIO_REGION_INFO_FLAG_CAPS != 0, || {
        format!("region {index} flags {flags:#x}: no CAPS")
    })?;
    dev.vfio
        .get_region_caps(index)
        .iter()
        .find_map(|c| match c {
            vfio::VfioRegionInfoCap::SparseMmap(m) => {
                Some(m.areas.iter().map(|a| (a.offset, a.size)).collect())
            }
            _ => None,
        })
        .ok_or(format!("region {index}: no sparse-mmap capability"))
}

fn open_iommufd() -> Outcome {
    let ty = mbox_type()?;
    let m = create(&ty)?;
    let dev = CdevDevice::open(m.0.cdev()?)?;
    let info = dev.info()?;
    let want = vfio::VFIO_DEVICE_FLAGS_PCI | vfio::VFIO_DEVICE_FLAGS_RESET;
    ensure(info.flags & want == want, || {
        format!("GET_INFO flags {:#x}, want PCI and RESET", info.flags)
    })?;
    ensure(info.num_regions >= vfio::VFIO_PCI_NUM_REGIONS, || {
        format!("GET_INFO: {} regions", info.num_regions)
    })?;
    // Region flags: READ 1, WRITE 2, MMAP 4.
    let bar0 = dev.region(BAR0)?;
    ensure(bar0.size == 4096 && bar0.flags & 7 == 3, || {
        format!("BAR0 {bar0:?}: want 4096 bytes, read|write, no mmap")
    })?;
    let bar2 = dev.region(BAR2)?;
    ensure(bar2.size == 4096 && bar2.flags & 4 != 0, || {
        format!("BAR2 {bar2:?}: want 4096 bytes, mmap")
    })?;
    let areas = sparse_areas(&dev, BAR2)?;
    ensure(areas == [(0, 4096)], || {
        format!("BAR2 sparse-mmap areas {areas:x?}, want [(0, 0x1000)]")
    })?;
    for index in [1, 3] {
        let r = dev.region(index)?;
        ensure(r.size == 0, || format!("region {index} present: {r:?}"))?;
    }
    let msix = dev
        .vfio
        .get_irq_info(dma::MSIX_INDEX)
        .ok_or("no MSI-X IRQ info")?;
    ensure(msix.count == 1, || format!("MSI-X {msix:?}: want 1 vector"))?;
    // Config space: the type's identity, and the kinds of its BARs.
    let id = dev.read_u32(CFG, 0)?;
    ensure(id == 0x51c0_fffe, || {
        format!("vendor/device {id:#010x}, want 0x51c0fffe")
    })?;
    let class_rev = dev.read_u32(CFG, 8)?;
    ensure(class_rev == 0xff00_0001, || {
        format!("class/revision {class_rev:#010x}, want class 0xff0000 revision 1")
    })?;
    let subsys = dev.read_u32(CFG, 0x2c)?;
    ensure(subsys == 0x51c0_fffe, || {
        format!("subsystem {subsys:#010x}, want 0x51c0fffe")
    })?;
    let b0 = dev.read_u32(CFG, 0x10)?;
    ensure(b0 & 0xf == 0, || {
        format!("BAR0 {b0:#x}: want a 32-bit, non-prefetchable memory BAR")
    })?;
    let b2 = dev.read_u32(CFG, 0x18)?;
    ensure(b2 & 0x7 == 0x4, || {
        format!("BAR2 {b2:#x}: want a 64-bit memory BAR")
    })?;
    // Sizing BAR0 with all-ones gives its 4 KiB size back.
    dev.write_u32(CFG, 0x10, u32::MAX)?;
    let size = dev.read_u32(CFG, 0x10)?;
    dev.write_u32(CFG, 0x10, b0)?;
    ensure(size == 0xffff_f000, || {
        format!("BAR0 size probe {size:#x}, want 0xfffff000")
    })
}

fn trapped_mailbox() -> Outcome {
    let ty = mbox_type()?;
    let m = create(&ty)?;
    let dev = CdevDevice::open(m.0.cdev()?)?;
    vfio::set_pci_command(&dev.device, 1 << 1)?; // memory space
    let (traps0, writes0) = (stat(&m.0, "traps_bar0")?, stat(&m.0, "mailbox_writes")?);
    let mut accesses = 0u64;
    let id = dev.read_u32(BAR0, ID)?;
    accesses += 1;
    ensure(id == ID_VALUE, || {
        format!("ID {id:#010x}, want {ID_VALUE:#010x}")
    })?;
    let values = [0xdead_beef, 0, 0x1234_5678, u32::MAX, 0xa5a5_5a5a];
    for v in values {
        dev.write_u32(BAR0, MAILBOX, v)?;
        let got = dev.read_u32(BAR0, MAILBOX)?;
        accesses += 2;
        ensure(got == v, || format!("MAILBOX reads {got:#x} after {v:#x}"))?;
    }
    // ID is read-only.
    dev.write_u32(BAR0, ID, 0)?;
    let id = dev.read_u32(BAR0, ID)?;
    accesses += 2;
    ensure(id == ID_VALUE, || format!("ID {id:#010x} after a write"))?;
    let (traps, writes) = (stat(&m.0, "traps_bar0")?, stat(&m.0, "mailbox_writes")?);
    ensure(traps - traps0 == accesses, || {
        format!(
            "traps_bar0 {traps0} -> {traps}: +{}, want +{accesses}",
            traps - traps0
        )
    })?;
    ensure(writes - writes0 == values.len() as u64, || {
        format!(
            "mailbox_writes {writes0} -> {writes}, want +{}",
            values.len()
        )
    })?;
    // Only aligned 32-bit accesses: the rest fail and change nothing.
    let mut buf = [0u8; 8];
    for (off, len, what) in [
        (MAILBOX, 2usize, "2-byte"),
        (MAILBOX, 1, "1-byte"),
        (MAILBOX + 2, 4, "misaligned 4-byte"),
        (ID, 8, "8-byte"),
    ] {
        let e = errno(dev.read_at(BAR0, off, &mut buf[..len]));
        ensure(e == Some(libc::EINVAL), || {
            format!("{what} read at {off:#x}: errno {e:?}, want EINVAL")
        })?;
        let e = errno(dev.write_at(BAR0, off, &[0xff; 8][..len]));
        ensure(e == Some(libc::EINVAL), || {
            format!("{what} write at {off:#x}: errno {e:?}, want EINVAL")
        })?;
    }
    let v = dev.read_u32(BAR0, MAILBOX)?;
    let writes = stat(&m.0, "mailbox_writes")?;
    ensure(
        v == 0xa5a5_5a5a && writes - writes0 == values.len() as u64,
        || {
            format!(
                "after refused writes: MAILBOX {v:#x}, mailbox_writes +{}",
                writes - writes0
            )
        },
    )
}

fn direct_doorbell_zero_traps() -> Outcome {
    let (s, bell) = open_mbox()?;
    let mut rng = Rng::new(adv::clock_seed());
    let mut data = vec![0u8; 512];
    rng.fill(&mut data);
    s.mem.write(BUF, &data);
    let (t0, b0, c0) = (
        s.stat("traps_bar0")?,
        s.stat("traps_bar2")?,
        s.stat("traps_config")?,
    );
    let checksums0 = s.stat("checksums")?;
    set_buffer(&s.dev, IOVA + BUF as u64, data.len() as u32)?;
    let mut accesses = 3;
    let rings = 32u32;
    for i in 0..rings {
        bell.write_u32(0, i + 1);
        accesses += wait_count(&s.dev, i + 1)?;
        let word = bell.read_u32(0);
        ensure(word == 0, || {
            format!("doorbell word {word:#x} after ring {i} was served, want 0")
        })?;
    }
    let result = s.dev.read_u32(BAR0, RESULT)?;
    accesses += 1;
    let (t1, b1, c1) = (
        s.stat("traps_bar0")?,
        s.stat("traps_bar2")?,
        s.stat("traps_config")?,
    );
    ensure(b0 == 0 && b1 == 0, || {
        format!("traps_bar2 {b0} -> {b1}: a doorbell store trapped")
    })?;
    ensure(t1 - t0 == accesses, || {
        format!(
            "traps_bar0 +{}, want +{accesses} (the test's own register accesses)",
            t1 - t0
        )
    })?;
    ensure(c1 == c0, || format!("traps_config {c0} -> {c1}"))?;
    let checksums = s.stat("checksums")? - checksums0;
    ensure(checksums == u64::from(rings), || {
        format!("checksums +{checksums} for {rings} rings")
    })?;
    let want = crc32c::crc32c(&data);
    ensure(result == want, || {
        format!("RESULT {result:#010x}, want {want:#010x}")
    })?;
    note(format!(
        "{rings} doorbells, {accesses} BAR0 traps (all the test's), 0 BAR2 traps"
    ));
    Ok(())
}

fn interrupt_eventfd() -> Outcome {
    let check = crc32c::crc32c(b"123456789");
    ensure(check == 0xe306_9283, || {
        format!("the test's CRC-32C of \"123456789\" is {check:#x}")
    })?;
    let (s, bell) = open_mbox()?;
    let seed = adv::clock_seed();
    note(format!("seed {seed}"));
    let mut rng = Rng::new(seed);
    let mut data = vec![0u8; 2 * PAGE];
    rng.fill(&mut data);
    s.mem.write(BUF, &data);
    let (checksums0, bytes0, irqs0) = (
        s.stat("checksums")?,
        s.stat("bytes")?,
        s.stat("interrupts")?,
    );
    // A whole page, then an odd length at an odd address that crosses a
    // page boundary.
    let jobs = [(0usize, PAGE), (PAGE - 13, 1001)];
    for (n, &(off, len)) in jobs.iter().enumerate() {
        set_buffer(&s.dev, IOVA + (BUF + off) as u64, len as u32)?;
        bell.write_u32(0, 1);
        let fired = dma::wait_eventfd(&s.efd, TIMEOUT);
        ensure(fired >= 1, || {
            format!("no interrupt within {TIMEOUT:?} for checksum {n}")
        })?;
        let (count, status, result) = (
            s.dev.read_u32(BAR0, COUNT)?,
            s.dev.read_u32(BAR0, STATUS)?,
            s.dev.read_u32(BAR0, RESULT)?,
        );
        let want = crc32c::crc32c(&data[off..off + len]);
        ensure(count == n as u32 + 1 && status == STATUS_DONE, || {
            format!(
                "checksum {n}: COUNT {count} STATUS {status:#x}, want {} and done",
                n + 1
            )
        })?;
        ensure(result == want, || {
            format!("checksum {n} of {len} bytes: RESULT {result:#010x}, want {want:#010x}")
        })?;
    }
    let (checksums, bytes, irqs) = (
        s.stat("checksums")? - checksums0,
        s.stat("bytes")? - bytes0,
        s.stat("interrupts")? - irqs0,
    );
    let want_bytes: usize = jobs.iter().map(|j| j.1).sum();
    ensure(
        checksums == 2 && bytes == want_bytes as u64 && irqs == 2,
        || {
            format!("stats +{checksums} checksums, +{bytes} bytes, +{irqs} interrupts; want 2, {want_bytes}, 2")
        },
    )?;
    // A bad length completes with an error, not a fault.
    let faults0 = s.stat("faults")?;
    set_buffer(&s.dev, IOVA + BUF as u64, 0)?;
    bell.write_u32(0, 1);
    wait_count(&s.dev, 3)?;
    let status = s.dev.read_u32(BAR0, STATUS)?;
    ensure(status == STATUS_ERROR, || {
        format!("BUF_LEN 0: STATUS {status:#x}, want error")
    })?;
    set_buffer(&s.dev, IOVA + BUF as u64, 4097)?;
    bell.write_u32(0, 1);
    wait_count(&s.dev, 4)?;
    let status = s.dev.read_u32(BAR0, STATUS)?;
    ensure(status == STATUS_ERROR, || {
        format!("BUF_LEN 4097: STATUS {status:#x}, want error")
    })?;
    // Bus mastering off: the PF's read of the tenant's memory fails.
    vfio::set_pci_command(&s.dev.device, 1 << 1)?;
    set_buffer(&s.dev, IOVA + BUF as u64, 64)?;
    bell.write_u32(0, 1);
    wait_count(&s.dev, 5)?;
    let (status, result) = (s.dev.read_u32(BAR0, STATUS)?, s.dev.read_u32(BAR0, RESULT)?);
    ensure(status == STATUS_ERROR && result == 0, || {
        format!("bus master off: STATUS {status:#x} RESULT {result:#x}, want error and 0")
    })?;
    let (faults, checksums) = (
        s.stat("faults")? - faults0,
        s.stat("checksums")? - checksums0,
    );
    ensure(faults == 1 && checksums == 2, || {
        format!("stats +{faults} faults +{checksums} checksums, want 1 and 2")
    })
}

fn reset_clears_state() -> Outcome {
    let (s, bell) = open_mbox()?;
    s.mem.write(BUF, &[0x5a; 256]);
    s.dev.write_u32(BAR0, MAILBOX, 0x1234_5678)?;
    set_buffer(&s.dev, IOVA + BUF as u64, 256)?;
    bell.write_u32(0, 1);
    wait_count(&s.dev, 1)?;
    // Words of the doorbell page the PF does not look at keep what the
    // tenant stored, until a reset.
    bell.write_u32(0x100, 0xfeed_f00d);
    bell.write_u32(PAGE - 4, 0x0bad_cafe);
    ensure(bell.read_u32(0x100) == 0xfeed_f00d, || {
        "the doorbell page does not keep a store".into()
    })?;
    let regs = [MAILBOX, BUF_LO, BUF_HI, BUF_LEN, RESULT, STATUS, COUNT];
    let before: Vec<u32> = regs
        .iter()
        .map(|&r| s.dev.read_u32(BAR0, r))
        .collect::<Result<_, _>>()?;
    ensure(before.iter().all(|&v| v != 0), || {
        format!("registers before the reset {before:#x?}: want all set")
    })?;
    let resets0 = s.stat("resets")?;
    s.dev.reset()?;
    let cmd = s.dev.read_u32(CFG, 4)? & 0xffff;
    ensure(cmd == 0, || format!("PCI command {cmd:#x} after reset"))?;
    s.dev.enable()?;
    let after: Vec<u32> = regs
        .iter()
        .map(|&r| s.dev.read_u32(BAR0, r))
        .collect::<Result<_, _>>()?;
    ensure(after.iter().all(|&v| v == 0), || {
        format!("MAILBOX BUF_LO BUF_HI BUF_LEN RESULT STATUS COUNT after reset: {after:#x?}")
    })?;
    let id = s.dev.read_u32(BAR0, ID)?;
    ensure(id == ID_VALUE, || format!("ID {id:#x} after reset"))?;
    let words = [
        bell.read_u32(0),
        bell.read_u32(0x100),
        bell.read_u32(PAGE - 4),
    ];
    ensure(words == [0, 0, 0], || {
        format!("doorbell page words 0, 0x100, 0xffc after reset: {words:#x?}")
    })?;
    let resets = s.stat("resets")? - resets0;
    ensure(resets == 1, || format!("resets +{resets}, want +1"))?;
    // And the ADI works again.
    set_buffer(&s.dev, IOVA + BUF as u64, 256)?;
    bell.write_u32(0, 1);
    wait_count(&s.dev, 1)?;
    let result = s.dev.read_u32(BAR0, RESULT)?;
    let want = crc32c::crc32c(&[0x5a; 256]);
    ensure(result == want, || {
        format!("RESULT after reset {result:#x}, want {want:#x}")
    })
}

fn remove_while_open() -> Outcome {
    let ty = mbox_type()?;
    // Removed again on an early return; a no-op once the test removed it.
    let guard = create(&ty)?;
    let dev = CdevDevice::open(guard.0.cdev()?)?;
    dma::remove_while_open(&guard.0, dev, TIMEOUT)?;
    let avail = ty.available()?;
    ensure(avail == NUM_ADIS, || {
        format!("available_instances {avail} after the removal, want {NUM_ADIS}")
    })
}

fn main() {
    let mut t = Reporter::default();
    t.point("cpf_create_accounting", create_accounting);
    t.point("cpf_open_iommufd", open_iommufd);
    t.point("cpf_trapped_mailbox", trapped_mailbox);
    t.point("cpf_direct_doorbell_zero_traps", direct_doorbell_zero_traps);
    t.point("cpf_interrupt_eventfd", interrupt_eventfd);
    t.point("cpf_reset_clears_state", reset_clears_state);
    t.point("cpf_remove_while_open", remove_while_open);
    std::process::exit(t.exit_code());
}

// SPDX-License-Identifier: GPL-2.0

//! ADI life cycle through the VDCM and the simulated PF: the PF's mdev
//! types and their `available_instances`, creating an ADI, opening it
//! through the iommufd cdev, the VFIO device and region information it
//! reports (and the errors it gives for bad requests), exhausting the PF's
//! queue pairs, and removing ADIs.
//!
//! Expects vdcm.ko and vdcm_sim.ko loaded with the defaults (one PF,
//! `vdcm_sim0`, of 64 queue pairs).

use vdcm_selftests::abi;
use vdcm_selftests::dma;
use vdcm_selftests::mdev::Mdev;
use vdcm_selftests::mdev::MdevType;
use vdcm_selftests::sysfs;
use vdcm_selftests::tap::ensure;
use vdcm_selftests::tap::note;
use vdcm_selftests::tap::Outcome;
use vdcm_selftests::tap::Reporter;
use vdcm_selftests::vfio;

const PF: &str = "vdcm_sim0";
const BAR0: u32 = dma::BAR0;
/// Queue 0's register block.
const Q0: u64 = abi::queue(0);
/// MSI-X table entry 0 (address low; vector control at +12).
const MSIX0: u64 = abi::MSIX_TABLE as u64;
const PF_QPS: u64 = 64;

fn types() -> (MdevType, MdevType) {
    (
        MdevType::new(PF, "vdcm_sim-1q"),
        MdevType::new(PF, "vdcm_sim-4q"),
    )
}

fn expect_available(one: u64, four: u64) -> Outcome {
    let (t1, t4) = types();
    let (a1, a4) = (t1.available()?, t4.available()?);
    ensure(a1 == one && a4 == four, || {
        format!("available_instances 1q={a1} 4q={a4}, want 1q={one} 4q={four}")
    })
}

fn types_listed() -> Outcome {
    let (t1, t4) = types();
    for (t, qps) in [(&t1, 1), (&t4, 4)] {
        let api = sysfs::read(t.dir().join("device_api"))?;
        ensure(api == "vfio-pci", || {
            format!("{}: device_api {api:?}", t.dir().display())
        })?;
        let name = sysfs::read(t.dir().join("name"))?;
        ensure(
            name.contains(&format!("{qps} dedicated queue pair")),
            || format!("{}: name {name:?}", t.dir().display()),
        )?;
        let desc = sysfs::read(t.dir().join("description"))?;
        ensure(
            desc.contains(&format!("of {PF_QPS} queue pairs on this PF")),
            || format!("{}: description {desc:?}", t.dir().display()),
        )?;
    }
    expect_available(PF_QPS, PF_QPS / 4)
}

fn device_info(mdev: &Mdev) -> Outcome {
    let dev = vfio::CdevDevice::open(mdev.cdev()?)?;
    let info = dev.info()?;
    let want = vfio::VFIO_DEVICE_FLAGS_PCI | vfio::VFIO_DEVICE_FLAGS_RESET;
    ensure(info.flags & want == want, || {
        format!("GET_INFO flags {:#x}", info.flags)
    })?;
    ensure(
        info.num_regions == vfio::VFIO_PCI_NUM_REGIONS && info.num_irqs == 5,
        || {
            format!(
                "GET_INFO regions {} irqs {}",
                info.num_regions, info.num_irqs
            )
        },
    )?;
    let bar0 = dev.region(0)?;
    ensure(bar0.size == 16384 && bar0.flags & 3 == 3, || {
        format!("BAR0 {bar0:?}")
    })?;
    let cfg = dev.region(vfio::VFIO_PCI_CONFIG_REGION_INDEX)?;
    ensure(cfg.size == 4096 && cfg.offset != bar0.offset, || {
        format!("config {cfg:?}")
    })?;
    let bar1 = dev.region(1)?;
    ensure(bar1.size == 0, || {
        format!("BAR1 should be absent: {bar1:?}")
    })
}

fn bad_requests(mdev: &Mdev) -> Outcome {
    let dev = vfio::CdevDevice::open(mdev.cdev()?)?;
    let mut info = vfio::DeviceInfo {
        argsz: 8,
        ..Default::default()
    };
    let e = vfio::ioctl(&dev.device, vfio::VFIO_DEVICE_GET_INFO(), &mut info).err();
    ensure(
        e.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::EINVAL),
        || format!("GET_INFO with argsz 8: {e:?}, want EINVAL"),
    )?;
    let e = dev.region(vfio::VFIO_PCI_NUM_REGIONS).err();
    ensure(
        e.as_deref().is_some_and(|e| e.contains("Invalid argument")),
        || format!("GET_REGION_INFO index 9: {e:?}, want EINVAL"),
    )?;
    let e = vfio::ioctl(&dev.device, vfio::vfio_io(60), &mut info).err();
    ensure(
        e.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::ENOTTY),
        || format!("unknown ioctl: {e:?}, want ENOTTY"),
    )
}

/// The trapped slow path: BAR0 registers through region reads and writes.
fn bar0_registers(mdev: &Mdev) -> Outcome {
    let dev = vfio::CdevDevice::open(mdev.cdev()?)?;
    dev.enable()?;
    // DEVCAP: 1 queue pair, 2 vectors (one per queue plus errors), v1.
    let cap = dev.read_u64(BAR0, abi::DEVCAP)?;
    ensure(
        cap & 0xff == 1 && (cap >> 8) & 0x3ff == 2 && cap >> 56 == u64::from(abi::VERSION),
        || format!("DEVCAP {cap:#x}"),
    )?;
    dev.write_u64(BAR0, abi::DEVCAP, 0)?;
    ensure(dev.read_u64(BAR0, abi::DEVCAP)? == cap, || {
        "DEVCAP changed on write".into()
    })?;
    // Queue 0: ring base (64-byte aligned), size, host-only PASID.
    dev.write_u64(BAR0, Q0 + abi::Q_RING_BASE, 0x1_0000_1234)?;
    let base = dev.read_u64(BAR0, Q0 + abi::Q_RING_BASE)?;
    ensure(base == 0x1_0000_1200, || {
        format!("RING_BASE {base:#x}, want 0x100001200")
    })?;
    dev.write_u32(BAR0, Q0 + abi::Q_RING_SIZE, 256)?;
    let pasid = dev.read_u32(BAR0, Q0 + abi::Q_PASID)?;
    dev.write_u32(BAR0, Q0 + abi::Q_PASID, 0xdead)?;
    ensure(dev.read_u32(BAR0, Q0 + abi::Q_PASID)? == pasid, || {
        "guest changed the PASID".into()
    })?;
    // Enabling a queue on a disabled device fails with DeviceDisabled (2).
    dev.write_u32(BAR0, Q0 + abi::Q_CONTROL, abi::CONTROL_ENABLE)?;
    let sts = dev.read_u32(BAR0, Q0 + abi::Q_STATUS)?;
    let disabled = u32::from(abi::queue_error::DEVICE_DISABLED) << abi::STATUS_CODE_SHIFT;
    ensure(sts == abi::STATUS_ERROR | disabled, || {
        format!("STATUS {sts:#x} after enable on a disabled device")
    })?;
    dev.write_u32(BAR0, Q0 + abi::Q_STATUS, abi::STATUS_ERROR)?;
    dev.write_u32(BAR0, abi::DEVCTL, abi::DEVCTL_ENABLE)?;
    ensure(dev.read_u32(BAR0, abi::DEVSTS)? & 1 == 1, || {
        "DEVSTS.enabled not set".into()
    })?;
    // The ring must be mapped in the tenant's address space to start.
    let ring = vdcm_selftests::dma::DmaMem::new(0x8000).map_err(|e| format!("mmap: {e}"))?;
    vdcm_selftests::dma::map(&dev, &ring, 0x1_0000_0000)?;
    dev.write_u32(BAR0, Q0 + abi::Q_CONTROL, abi::CONTROL_ENABLE)?;
    let sts = dev.read_u32(BAR0, Q0 + abi::Q_STATUS)?;
    ensure(sts == abi::STATUS_RUNNING, || {
        format!("STATUS {sts:#x} after enable, want running")
    })?;
    // A device reset clears the guest's registers but not the PASID.
    dev.write_u32(BAR0, abi::DEVCTL, abi::DEVCTL_RESET)?;
    let (ctl, base) = (
        dev.read_u32(BAR0, abi::DEVCTL)?,
        dev.read_u64(BAR0, Q0 + abi::Q_RING_BASE)?,
    );
    ensure(ctl == 0 && base == 0, || {
        format!("after reset DEVCTL {ctl:#x} RING_BASE {base:#x}")
    })?;
    ensure(dev.read_u32(BAR0, Q0 + abi::Q_PASID)? == pasid, || {
        "reset changed the PASID".into()
    })
}

/// Accesses BAR0 must refuse: wrong widths, misaligned, past the end.
fn bar0_bad_accesses(mdev: &Mdev) -> Outcome {
    let dev = vfio::CdevDevice::open(mdev.cdev()?)?;
    dev.enable()?;
    let mut buf = [0u8; 16];
    for (offset, len, what) in [
        (0x008u64, 2usize, "2-byte read"),
        (0x008, 1, "1-byte read"),
        (0x008, 16, "16-byte read"),
        (0x00a, 4, "misaligned read"),
        (0x008, 8, "8-byte read of a 32-bit register"),
        (16384, 4, "read past the end"),
        (16380, 8, "read straddling the end"),
    ] {
        let e = dev.read_at(0, offset, &mut buf[..len]).err();
        ensure(
            e.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::EINVAL),
            || format!("{what} at {offset:#x}: {e:?}, want EINVAL"),
        )?;
        let e = dev.write_at(0, offset, &buf[..len]).err();
        ensure(
            e.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::EINVAL),
            || format!("write: {what} at {offset:#x}: {e:?}, want EINVAL"),
        )?;
    }
    // An absent region.
    let e = dev.read_at(1, 0, &mut buf[..4]).err();
    ensure(
        e.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::EINVAL),
        || format!("read of absent BAR1: {e:?}, want EINVAL"),
    )
}

/// VFIO_DEVICE_RESET returns the guest-visible registers to their defaults.
fn reset_ioctl(mdev: &Mdev) -> Outcome {
    let dev = vfio::CdevDevice::open(mdev.cdev()?)?;
    dev.enable()?;
    dev.write_u32(BAR0, abi::DEVCTL, 1)?;
    dev.write_u64(BAR0, Q0 + abi::Q_RING_BASE, 0x8000)?;
    dev.write_u32(BAR0, MSIX0, 0xfee0_0000)?;
    dev.write_u32(BAR0, MSIX0 + 12, 0)?;
    dev.reset()?;
    // The reset is function-wide: memory space is disabled again, and BAR0
    // refuses access until it is re-enabled.
    let cmd = dev.read_u32(vfio::VFIO_PCI_CONFIG_REGION_INDEX, 4)? & 0xffff;
    ensure(cmd == 0, || format!("PCI command {cmd:#x} after reset"))?;
    match dev.read_u32(BAR0, abi::DEVCTL) {
        Err(e) if e.contains("Input/output error") => {}
        other => {
            return Err(format!(
                "BAR0 read with memory disabled: {other:?}, want EIO"
            ))
        }
    }
    dev.enable()?;
    let got = [
        dev.read_u32(BAR0, abi::DEVCTL)?,
        dev.read_u32(BAR0, abi::DEVSTS)?,
        dev.read_u64(BAR0, Q0 + abi::Q_RING_BASE)? as u32,
        dev.read_u32(BAR0, MSIX0)?,
        dev.read_u32(BAR0, MSIX0 + 12)?,
    ];
    ensure(got == [0, 0, 0, 0, 1], || {
        format!("after VFIO_DEVICE_RESET: DEVCTL, DEVSTS, RING_BASE, MSI-X addr, ctrl = {got:?}")
    })
}

/// Removing an open ADI waits until its user closes it.
fn remove_while_open() -> Outcome {
    let (t1, _) = types();
    let m = t1.create()?.map_err(|e| format!("create: {e}"))?;
    let dev = vfio::CdevDevice::open(m.cdev()?)?;
    dma::remove_while_open(&m, dev, std::time::Duration::from_secs(5))?;
    expect_available(PF_QPS, PF_QPS / 4)
}

/// A user that does not release a device being removed loses it: after
/// the first request (and 10 s), the device is revoked — every call fails
/// with ENODEV — and the removal completes once the user finally closes.
fn remove_revokes_uncooperative_user() -> Outcome {
    let (t1, _) = types();
    let m = t1.create()?.map_err(|e| format!("create: {e}"))?;
    let dev = vfio::CdevDevice::open(m.cdev()?)?;
    dev.enable()?;
    let bell = dev
        .mmap(2, 0, 4096)
        .map_err(|e| format!("mmap doorbell: {e}"))?;
    let dir = m.dir().to_path_buf();
    let remover = std::thread::spawn(move || Mdev::from_dir(dir).remove());
    let start = std::time::Instant::now();
    let revoked = loop {
        match dev.info() {
            Err(e) if e.contains("No such device") => break true,
            Err(e) => return Err(format!("GET_INFO while being removed: {e}")),
            Ok(_) if start.elapsed() > std::time::Duration::from_secs(40) => break false,
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(250)),
        }
    };
    let waited = start.elapsed();
    ensure(revoked, || "the device was not revoked within 40 s".into())?;
    ensure(!remover.is_finished(), || {
        "the removal finished while the device was still open".into()
    })?;
    for (what, r) in [
        ("BAR0 read", dev.read_u32(0, 0).map(drop)),
        (
            "config read",
            dev.read_u32(vfio::VFIO_PCI_CONFIG_REGION_INDEX, 0)
                .map(drop),
        ),
        ("region info", dev.region(0).map(drop)),
        (
            "mmap",
            dev.mmap(2, 0, 4096).map(drop).map_err(|e| e.to_string()),
        ),
        ("reset", dev.reset()),
    ] {
        match r {
            Err(e) if e.contains("No such device") => {}
            other => return Err(format!("{what} after revocation: {other:?}, want ENODEV")),
        }
    }
    drop(bell);
    drop(dev);
    let removed = remover
        .join()
        .map_err(|_| "remover thread panicked".to_string())?;
    removed?;
    ensure(!m.exists(), || {
        "ADI still there after its user closed it".into()
    })?;
    vdcm_selftests::tap::note(format!("revoked after {waited:?}"));
    expect_available(PF_QPS, PF_QPS / 4)
}

/// The legacy path: container, group, device fd.
fn group_open(mdev: &Mdev) -> Outcome {
    let dev = vfio::GroupDevice::open(mdev.dir())?;
    vfio::set_pci_command(&dev.device, vfio::PCI_COMMAND_MEMORY_MASTER)?;
    let info = dev.info()?;
    ensure(
        info.flags & vfio::VFIO_DEVICE_FLAGS_PCI != 0 && info.num_regions == 9,
        || format!("GET_INFO through the group: {info:?}"),
    )?;
    // The same registers, through the group's device fd.
    let mut buf = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&dev.device, &mut buf, 0)
        .map_err(|e| format!("BAR0 read through the group: {e}"))?;
    let cap = u64::from_le_bytes(buf);
    ensure(cap & 0xff == 1 && cap >> 56 == 1, || {
        format!("DEVCAP {cap:#x} through the group")
    })
}

/// The fast path's mapping: BAR2 holds one doorbell page per queue pair,
/// mapped straight into user space; each page is its queue pair's own.
fn doorbells_mmap() -> Outcome {
    let (_, t4) = types();
    let m = t4.create()?.map_err(|e| format!("create 4q: {e}"))?;
    let result = (|| {
        let dev = vfio::CdevDevice::open(m.cdev()?)?;
        let bar2 = dev.region(2)?;
        ensure(bar2.size == 4 * 4096 && bar2.flags & 7 == 7, || {
            format!("BAR2 {bar2:?}: want 4 pages, read|write|mmap")
        })?;
        let map = dev
            .mmap(2, 0, 4 * 4096)
            .map_err(|e| format!("mmap BAR2: {e}"))?;
        for q in 0..4 {
            ensure(map.read_u32(q * 4096) == 0, || {
                format!("doorbell {q} not 0 on a new ADI")
            })?;
            map.write_u32(q * 4096, 0x100 + q as u32);
        }
        for q in 0..4 {
            let v = map.read_u32(q * 4096);
            ensure(v == 0x100 + q as u32, || {
                format!("doorbell {q} reads {v:#x}: pages alias")
            })?;
        }
        // A second mapping of one page sees the same doorbell.
        let one = dev
            .mmap(2, 4096, 4096)
            .map_err(|e| format!("mmap BAR2 page 1: {e}"))?;
        ensure(one.read_u32(0) == 0x101, || {
            "second mapping sees another page".into()
        })?;
        // Refused: past the end, BAR0, and fd access to the doorbells.
        for (index, off, len, what) in [
            (2u32, 4096u64, 4 * 4096usize, "past BAR2's end"),
            (0, 0, 4096, "BAR0"),
        ] {
            let e = dev.mmap(index, off, len).err();
            ensure(
                e.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::EINVAL),
                || format!("mmap of {what}: {e:?}, want EINVAL"),
            )?;
        }
        let mut buf = [0u8; 4];
        let e = dev.read_at(2, 0, &mut buf).err();
        ensure(
            e.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::EINVAL),
            || format!("read() of BAR2: {e:?}, want EINVAL (no trapped path)"),
        )
    })();
    m.remove()?;
    result
}

fn exhaustion() -> Outcome {
    let (t1, t4) = types();
    let mut made = Vec::new();
    let result = (|| {
        for i in 0..PF_QPS / 4 {
            let m = t4.create()?.map_err(|e| format!("4q ADI #{i}: {e}"))?;
            made.push(m);
        }
        expect_available(0, 0)?;
        let e = t4.create()?.err();
        ensure(
            e.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::ENOSPC),
            || format!("create beyond the PF's queue pairs: {e:?}, want ENOSPC"),
        )?;
        let e = t1.create()?.err();
        ensure(
            e.as_ref().and_then(|e| e.raw_os_error()) == Some(libc::ENOSPC),
            || format!("1q create on a full PF: {e:?}, want ENOSPC"),
        )
    })();
    for m in &made {
        m.remove()?;
    }
    result?;
    expect_available(PF_QPS, PF_QPS / 4)
}

/// `stats/vdcm_bytes` and `stats/pf_bytes`: what the VDCM and the PF
/// allocated for an ADI themselves. Two ADIs of one type hold the same;
/// a 4q ADI (5 vectors, 4 queues) holds more of both than a 1q one (2, 1).
fn own_bytes() -> Outcome {
    let (t1, t4) = types();
    let mut made = Vec::new();
    let result = (|| {
        let mut bytes = Vec::new();
        for (t, what) in [(&t1, "1q"), (&t1, "second 1q"), (&t4, "4q")] {
            let m = t.create()?.map_err(|e| format!("{what} ADI: {e}"))?;
            let stat = |f: &str| sysfs::read_u64(m.dir().join("stats").join(f));
            bytes.push((what, stat("vdcm_bytes")?, stat("pf_bytes")?));
            made.push(m);
        }
        let [(_, v1, p1), (_, v1b, p1b), (_, v4, p4)] = bytes[..] else {
            return Err("three ADIs".into());
        };
        ensure(v1 > 0 && p1 > 0, || {
            format!("1q ADI: vdcm_bytes {v1}, pf_bytes {p1}, want both above 0")
        })?;
        ensure(v1 == v1b && p1 == p1b, || {
            format!("two 1q ADIs: vdcm_bytes {v1} and {v1b}, pf_bytes {p1} and {p1b}, want equal")
        })?;
        ensure(v4 > v1 && p4 > p1, || {
            format!("4q ADI: vdcm_bytes {v4}, pf_bytes {p4}, want above the 1q's {v1}, {p1}")
        })?;
        note(format!(
            "own bytes: 1q VDCM {v1} + PF {p1}, 4q VDCM {v4} + PF {p4}"
        ));
        Ok(())
    })();
    for m in &made {
        m.remove()?;
    }
    result
}

fn main() {
    let mut t = Reporter::default();
    t.point("adi_types_listed", types_listed);
    let (t1, _) = types();
    let mut adi = None;
    t.point("adi_create", || {
        let m = t1.create()?.map_err(|e| format!("create: {e}"))?;
        ensure(m.exists(), || format!("{} missing", m.dir().display()))?;
        adi = Some(m);
        expect_available(PF_QPS - 1, (PF_QPS - 1) / 4)
    });
    if let Some(m) = adi {
        t.point("adi_cdev_device_info", || device_info(&m));
        t.point("adi_bad_ioctls", || bad_requests(&m));
        t.point("adi_bar0_registers", || bar0_registers(&m));
        t.point("adi_bar0_bad_accesses", || bar0_bad_accesses(&m));
        t.point("adi_reset_ioctl", || reset_ioctl(&m));
        t.point("group_open_and_access", || group_open(&m));
        t.point("adi_remove", || {
            let cdev = m.cdev()?;
            m.remove()?;
            ensure(!m.exists() && !cdev.exists(), || {
                "ADI still there after remove".into()
            })?;
            expect_available(PF_QPS, PF_QPS / 4)
        });
    } else {
        for p in [
            "adi_cdev_device_info",
            "adi_bad_ioctls",
            "adi_bar0_registers",
            "adi_bar0_bad_accesses",
            "adi_reset_ioctl",
            "group_open_and_access",
            "adi_remove",
        ] {
            t.not_run(p, "adi_create failed");
        }
    }
    t.point("adi_doorbells_mmap", doorbells_mmap);
    t.point("adi_exhaust_queue_pairs", exhaustion);
    t.point("adi_own_bytes", own_bytes);
    t.point("adi_remove_waits_for_user", remove_while_open);
    t.point(
        "adi_remove_revokes_uncooperative_user",
        remove_revokes_uncooperative_user,
    );
    std::process::exit(t.exit_code());
}

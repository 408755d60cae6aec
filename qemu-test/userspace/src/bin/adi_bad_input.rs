// SPDX-License-Identifier: GPL-2.0

//! Bad input to every interface of an ADI: each ioctl the device answers
//! with short, oversized and NULL arguments, unknown flags and out-of-range
//! indexes and counts, bad file descriptors; unknown ioctl numbers; region
//! reads and writes of every size at aligned, unaligned, straddling, past-
//! the-end and huge offsets on every region index; wrong mmaps; garbage
//! written to the mdev sysfs attributes. Each input must get its precise
//! errno (the vfio-pci one where vfio-pci defines it), and nothing may
//! crash the kernel. Each point prints how many bad inputs it tried.
//!
//! Expects vdcm.ko and vdcm_sim.ko loaded with the defaults.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use iommufd_bindings::iommufd::IOMMUFD_CMD_BASE;
use iommufd_bindings::iommufd::IOMMUFD_TYPE;
use vdcm_selftests::adv;
use vdcm_selftests::adv::BadInputs;
use vdcm_selftests::dma;
use vdcm_selftests::mdev::MdevType;
use vdcm_selftests::mdev::Removed as Adi;
use vdcm_selftests::sysfs;
use vdcm_selftests::tap::note;
use vdcm_selftests::tap::Outcome;
use vdcm_selftests::tap::Reporter;
use vdcm_selftests::vfio;
use vdcm_selftests::vfio::uapi::VFIO_BASE;
use vdcm_selftests::vfio::uapi::VFIO_TYPE;
use vdcm_selftests::vfio::CdevDevice;
use vdcm_selftests::vfio::VFIO_DEVICE_GET_INFO as GET_INFO;
use vdcm_selftests::vfio::VFIO_DEVICE_GET_IRQ_INFO as GET_IRQ_INFO;
use vdcm_selftests::vfio::VFIO_DEVICE_GET_REGION_INFO as GET_REGION_INFO;
use vdcm_selftests::vfio::VFIO_DEVICE_RESET as RESET;
use vdcm_selftests::vfio::VFIO_DEVICE_SET_IRQS as SET_IRQS;
use vmm_sys_util::ioctl_io_nr;
use vmm_sys_util::ioctl_iow_nr;
use vmm_sys_util::ioctl_iowr_nr;

const PF: &str = "vdcm_sim0";
const EINVAL: i32 = libc::EINVAL;
const BAR0_SIZE: u64 = 16384;
const CFG_SIZE: u64 = 4096;
const PAGE: usize = 4096;

/// Little-endian u32 fields, then zeros up to `len` bytes.
fn words(fields: &[u32], len: usize) -> Vec<u8> {
    let mut b: Vec<u8> = fields.iter().flat_map(|v| v.to_le_bytes()).collect();
    b.resize(len.max(b.len()), 0);
    b
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]))
}

fn create(ty: &str) -> Result<Adi, String> {
    let m = MdevType::new(PF, ty)
        .create()?
        .map_err(|e| format!("create {ty}: {e}"))?;
    Ok(Adi(m))
}

/// Runs `body` with a counter and notes the count as the point's last
/// diagnostic line.
fn counted(body: impl FnOnce(&mut BadInputs) -> Outcome) -> Outcome {
    let mut b = BadInputs::default();
    let r = body(&mut b);
    note(format!("{} bad inputs tried", b.tried));
    r
}

/// An opened cdev that is not bound to an iommufd yet answers nothing but
/// the bind, and the bind refuses bad iommufds.
fn unbound_fd(adi: &Adi, b: &mut BadInputs) -> Outcome {
    let cdev = adi.0.cdev()?;
    let f = vfio::open_rw(&cdev).map_err(|e| format!("open {}: {e}", cdev.display()))?;
    let mut buf = words(&[16], 64);
    b.expect(
        || "GET_INFO before bind".into(),
        adv::ioctl_buf(&f, GET_INFO(), &mut buf),
        EINVAL,
    )?;
    b.expect(
        || "RESET before bind".into(),
        vfio::ioctl_val(&f, RESET(), 0),
        EINVAL,
    )?;
    let mut r = [0u8; 4];
    b.expect(
        || "read before bind".into(),
        adv::pread_raw(&f, r.as_mut_ptr(), 4, 0),
        EINVAL,
    )?;
    b.expect(
        || "mmap before bind".into(),
        adv::mmap_raw(
            &f,
            2 << 40,
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
        )
        .map(drop),
        EINVAL,
    )?;
    let iommufd = vfio::open_rw("/dev/iommu").map_err(|e| e.to_string())?;
    let devnull = File::open("/dev/null").map_err(|e| e.to_string())?;
    for (fd, errno, what) in [
        (-1, EINVAL, "-1"),
        (i32::MIN, EINVAL, "i32::MIN"),
        (1 << 20, libc::EBADF, "an fd that is not open"),
        (devnull.as_raw_fd(), libc::EBADFD, "/dev/null"),
    ] {
        let mut bind = vfio::BindIommufd {
            argsz: 16,
            iommufd: fd,
            ..Default::default()
        };
        b.expect(
            || format!("BIND_IOMMUFD with iommufd {what}"),
            vfio::ioctl(&f, vfio::VFIO_DEVICE_BIND_IOMMUFD(), &mut bind),
            errno,
        )?;
    }
    // Unknown flags; bytes past the structure that are not zero.
    for (flags, argsz, tail, errno) in [
        (2u32, 24u32, 0u8, EINVAL),
        (1 << 31, 24, 0, EINVAL),
        (0, 64, 1, libc::E2BIG),
    ] {
        let mut buf = words(&[argsz, flags, iommufd.as_raw_fd() as u32], 64);
        buf[40] = tail;
        b.expect(
            || format!("BIND_IOMMUFD with flags {flags:#x}, argsz {argsz}, tail {tail}"),
            adv::ioctl_buf(&f, vfio::VFIO_DEVICE_BIND_IOMMUFD(), &mut buf),
            errno,
        )?;
    }
    for argsz in [0u32, 1, 11] {
        let mut bind = vfio::BindIommufd {
            argsz,
            iommufd: iommufd.as_raw_fd(),
            ..Default::default()
        };
        b.expect(
            || format!("BIND_IOMMUFD with argsz {argsz}"),
            vfio::ioctl(&f, vfio::VFIO_DEVICE_BIND_IOMMUFD(), &mut bind),
            EINVAL,
        )?;
    }
    Ok(())
}

/// `argsz` below the fixed part, NULL, oversized: for the four ioctls that
/// take an argsz-prefixed structure.
fn ioctl_argsz(dev: &CdevDevice, b: &mut BadInputs) -> Outcome {
    for (cmd, name, minsz, index_at) in [
        (GET_INFO(), "GET_INFO", 16u32, None),
        (GET_REGION_INFO(), "GET_REGION_INFO", 32, Some(8usize)),
        (GET_IRQ_INFO(), "GET_IRQ_INFO", 16, Some(8)),
        (SET_IRQS(), "SET_IRQS", 20, Some(8)),
    ] {
        for argsz in [0u32, 1, minsz / 2, minsz - 1] {
            let mut buf = words(&[argsz], 4096);
            if let Some(at) = index_at {
                // A valid index, so argsz is the only thing wrong.
                buf[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
            }
            b.expect(
                || format!("{name} with argsz {argsz}"),
                adv::ioctl_buf(&dev.device, cmd, &mut buf),
                EINVAL,
            )?;
        }
        // SAFETY: NULL faults in the kernel's user copy.
        let r = unsafe { adv::ioctl_ptr(&dev.device, cmd, std::ptr::null_mut()) };
        b.expect(|| format!("{name} with a NULL argument"), r, libc::EFAULT)?;
        // An address that is not mapped at all.
        // SAFETY: as above: the kernel's user copy faults.
        let r = unsafe { adv::ioctl_ptr(&dev.device, cmd, 0x10 as *mut u8) };
        b.expect(|| format!("{name} at address 0x10"), r, libc::EFAULT)?;
    }
    // Oversized argsz is fine (newer user space), and the reply stays in
    // the fixed part.
    let mut buf = words(&[4096], 4096);
    buf[16..].fill(0xa5);
    b.expect_ok(
        || "GET_INFO with argsz 4096".into(),
        adv::ioctl_buf(&dev.device, GET_INFO(), &mut buf),
    )?;
    if u32_at(&buf, 8) != 9 || u32_at(&buf, 12) != 5 {
        return Err(format!(
            "GET_INFO with argsz 4096: regions {} irqs {}",
            u32_at(&buf, 8),
            u32_at(&buf, 12)
        ));
    }
    if buf[24..].iter().any(|&x| x != 0xa5) {
        return Err("GET_INFO wrote past cap_offset".into());
    }
    let mut buf = words(&[4096, 0, 7], 4096);
    b.expect_ok(
        || "GET_REGION_INFO with argsz 4096".into(),
        adv::ioctl_buf(&dev.device, GET_REGION_INFO(), &mut buf),
    )?;
    let size = u64::from(u32_at(&buf, 16)) | u64::from(u32_at(&buf, 20)) << 32;
    if size != CFG_SIZE {
        return Err(format!("config region size {size} with argsz 4096"));
    }
    let mut buf = words(&[4096, 0, dma::MSIX_INDEX], 4096);
    b.expect_ok(
        || "GET_IRQ_INFO with argsz 4096".into(),
        adv::ioctl_buf(&dev.device, GET_IRQ_INFO(), &mut buf),
    )?;
    if u32_at(&buf, 12) != 2 {
        return Err(format!("MSI-X count {} with argsz 4096", u32_at(&buf, 12)));
    }
    // RESET takes no argument: any value is ignored.
    for arg in [0 as libc::c_ulong, 1, libc::c_ulong::MAX] {
        b.expect_ok(
            || format!("RESET with argument {arg:#x}"),
            vfio::ioctl_val(&dev.device, RESET(), arg),
        )?;
    }
    dev.enable()
}

/// Out-of-range indexes and counts.
fn ioctl_indexes(dev: &CdevDevice, b: &mut BadInputs) -> Outcome {
    for index in [9u32, 10, 0x100, 1 << 31, u32::MAX] {
        let mut buf = words(&[32, 0, index], 64);
        b.expect(
            || format!("GET_REGION_INFO index {index:#x}"),
            adv::ioctl_buf(&dev.device, GET_REGION_INFO(), &mut buf),
            EINVAL,
        )?;
    }
    for index in [5u32, 6, 0x100, 1 << 31, u32::MAX] {
        let mut buf = words(&[16, 0, index], 64);
        b.expect(
            || format!("GET_IRQ_INFO index {index:#x}"),
            adv::ioctl_buf(&dev.device, GET_IRQ_INFO(), &mut buf),
            EINVAL,
        )?;
    }
    // Every index below 9 answers; absent regions have size 0.
    for index in 0..9u32 {
        let (_, size) = adv::region_offset_size(&dev.device, index)?;
        let want = match index {
            0 => BAR0_SIZE,
            2 => PAGE as u64,
            7 => CFG_SIZE,
            _ => 0,
        };
        b.tried += 1;
        if size != want {
            return Err(format!("region {index} size {size}, want {want}"));
        }
    }
    Ok(())
}

/// `VFIO_DEVICE_SET_IRQS` on a 1-queue ADI (2 MSI-X vectors).
fn set_irqs(dev: &CdevDevice, b: &mut BadInputs) -> Outcome {
    let d = &dev.device;
    let efd = dma::eventfd().map_err(|e| e.to_string())?;
    let good = efd.as_raw_fd().to_le_bytes();
    let trig = dma::IRQ_SET_EVENTFD_TRIGGER;
    let none = dma::IRQ_SET_NONE_TRIGGER;
    let bool_trig = 2 | (1 << 5);
    let mx = dma::MSIX_INDEX;
    let mut cases: Vec<(String, u32, u32, u32, u32, Vec<u8>)> = vec![
        ("index 5".into(), none, 5, 0, 1, vec![]),
        ("index u32::MAX".into(), none, u32::MAX, 0, 1, vec![]),
        ("start 2 of 2".into(), none, mx, 2, 1, vec![]),
        ("start 1 count 2".into(), none, mx, 1, 2, vec![]),
        ("start+count overflow".into(), none, mx, u32::MAX, 2, vec![]),
        ("count u32::MAX".into(), none, mx, 0, u32::MAX, vec![]),
        ("count 0 start 1".into(), none, mx, 1, 0, vec![]),
        ("DATA_BOOL count 0".into(), bool_trig, mx, 0, 0, vec![]),
        ("DATA_EVENTFD count 0".into(), trig, mx, 0, 0, vec![]),
        ("INTx trigger".into(), none, 0, 0, 1, vec![]),
        ("MSI trigger".into(), none, 1, 0, 1, vec![]),
        ("request vector 1 of 1".into(), none, 4, 1, 1, vec![]),
        ("error vector 1 of 1".into(), none, 3, 1, 1, vec![]),
        ("error mask".into(), 1 | (1 << 3), 3, 0, 1, vec![]),
        ("request unmask".into(), 1 | (1 << 4), 4, 0, 1, vec![]),
        ("no data type".into(), 1 << 5, mx, 0, 1, vec![]),
        ("no action".into(), 1, mx, 0, 1, vec![]),
        ("NONE|BOOL".into(), 1 | 2 | (1 << 5), mx, 0, 1, vec![1]),
        (
            "BOOL|EVENTFD".into(),
            2 | 4 | (1 << 5),
            mx,
            0,
            1,
            good.to_vec(),
        ),
        (
            "MASK|TRIGGER".into(),
            1 | (1 << 3) | (1 << 5),
            mx,
            0,
            1,
            vec![],
        ),
        ("all actions".into(), 1 | (7 << 3), mx, 0, 1, vec![]),
        ("all data types".into(), 7 | (1 << 5), mx, 0, 1, vec![]),
    ];
    for bit in 6..32 {
        cases.push((
            format!("unknown flag bit {bit}"),
            none | 1 << bit,
            mx,
            0,
            1,
            vec![],
        ));
    }
    for (what, flags, index, start, count, data) in &cases {
        b.expect(
            || format!("SET_IRQS {what}"),
            dma::set_irqs_raw(d, *flags, *index, *start, *count, data, None),
            EINVAL,
        )?;
    }
    // argsz covering the header but not the data.
    for (argsz, count) in [(20u32, 1u32), (23, 1), (27, 2)] {
        let data = [good, good].concat();
        b.expect(
            || format!("SET_IRQS eventfd count {count} with argsz {argsz}"),
            dma::set_irqs_raw(d, trig, mx, 0, count, &data, Some(argsz)),
            EINVAL,
        )?;
    }
    // Bad descriptors.
    let devnull = File::open("/dev/null").map_err(|e| e.to_string())?;
    let mut pipe = [0i32; 2];
    // SAFETY: `pipe` has room for two fds.
    if unsafe { libc::pipe(pipe.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", io::Error::last_os_error()));
    }
    // SAFETY: fresh fds we own; closed when these drop.
    let (_p0, _p1) = unsafe {
        (
            <File as std::os::fd::FromRawFd>::from_raw_fd(pipe[0]),
            <File as std::os::fd::FromRawFd>::from_raw_fd(pipe[1]),
        )
    };
    // Closed last, so no later open reuses its number.
    let closed = {
        let f = dma::eventfd().map_err(|e| e.to_string())?;
        f.as_raw_fd()
    };
    for (fd, errno, what) in [
        (closed, libc::EBADF, "a closed fd"),
        (1 << 20, libc::EBADF, "an fd number never opened"),
        (-2, EINVAL, "-2"),
        (i32::MIN, EINVAL, "i32::MIN"),
        (devnull.as_raw_fd(), EINVAL, "/dev/null"),
        (pipe[0], EINVAL, "a pipe"),
        (d.as_raw_fd(), EINVAL, "the device fd itself"),
        (dev.iommufd().as_raw_fd(), EINVAL, "the iommufd"),
    ] {
        b.expect(
            || format!("SET_IRQS eventfd {what}"),
            dma::set_irqs_raw(d, trig, mx, 0, 1, &fd.to_le_bytes(), None),
            errno,
        )?;
        // The same fd second in a pair with a good one: nothing installed.
        b.expect(
            || format!("SET_IRQS eventfd pair (good, {what})"),
            dma::set_irqs_raw(d, trig, mx, 0, 2, &[good, fd.to_le_bytes()].concat(), None),
            errno,
        )?;
    }
    // Valid requests still work after all that.
    b.expect_ok(
        || "SET_IRQS install eventfd".into(),
        dma::set_irqs_raw(d, trig, mx, 0, 1, &good, None),
    )?;
    b.expect_ok(
        || "SET_IRQS loopback".into(),
        dma::set_irqs_raw(d, none, mx, 0, 1, &[], None),
    )?;
    if dma::wait_eventfd(&efd, std::time::Duration::from_secs(5)) != 1 {
        return Err("loopback after bad SET_IRQS did not signal".into());
    }
    b.expect_ok(
        || "SET_IRQS fd -1 (tear down)".into(),
        dma::set_irqs_raw(d, trig, mx, 0, 1, &(-1i32).to_le_bytes(), None),
    )?;
    // The device has no INTx: as vfio-pci does for a function without an
    // interrupt pin, even "disable all" of that index is refused (the
    // VFIO core's vfio_set_irqs_validate_and_prepare() on 0 interrupts).
    b.expect(
        || "SET_IRQS disable INTx (count 0) on a device without INTx".into(),
        dma::set_irqs_raw(d, none, 0, 0, 0, &[], None),
        EINVAL,
    )?;
    Ok(())
}

ioctl_io_nr!(IOMMUFD_IO, IOMMUFD_TYPE as u32, nr, nr);
// GET_INFO's number with direction and size bits: `_IOW` of 4 bytes and
// `_IOWR` of 16.
ioctl_iow_nr!(GET_INFO_IOW, VFIO_TYPE as u32, VFIO_BASE + 7, u32);
ioctl_iowr_nr!(GET_INFO_IOWR, VFIO_TYPE as u32, VFIO_BASE + 7, [u32; 4]);
// GET_INFO's number in another driver's ioctl type.
ioctl_io_nr!(X_107, u32::from(b'X'), VFIO_BASE + 7);

/// Ioctl numbers the device does not answer: ENOTTY; and a closed fd.
fn unknown_ioctls(dev: &CdevDevice, b: &mut BadInputs) -> Outcome {
    // VFIO numbers the device fd does not implement (the core handles
    // FEATURE, BIND, ATTACH and DETACH; the driver 107..=111).
    let mut cmds: Vec<libc::c_ulong> = (0..=6)
        .chain(12..=16)
        .chain(21..=40)
        .map(vfio::vfio_io)
        .collect();
    // iommufd numbers.
    cmds.extend((0..=16).map(|n| IOMMUFD_IO(IOMMUFD_CMD_BASE + n)));
    cmds.extend([
        0,
        libc::TCGETS,
        GET_INFO_IOW(),
        GET_INFO_IOWR(),
        u32::MAX as libc::c_ulong,
        X_107(),
    ]);
    for cmd in cmds {
        let mut buf = words(&[64], 256);
        b.expect(
            || format!("ioctl {cmd:#x}"),
            adv::ioctl_buf(&dev.device, cmd, &mut buf),
            libc::ENOTTY,
        )?;
    }
    // A closed device fd.
    // SAFETY: dup of a live fd; closed right away, so its number is free.
    let fd = unsafe { libc::dup(dev.device.as_raw_fd()) };
    // SAFETY: closes the duplicate only.
    unsafe { libc::close(fd) };
    let mut buf = words(&[16], 64);
    // SAFETY: the fd is closed; the kernel fails before touching `buf`.
    let r = unsafe {
        let rc = libc::ioctl(fd, GET_INFO(), buf.as_mut_ptr());
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    };
    b.expect(|| "GET_INFO on a closed fd".into(), r, libc::EBADF)
}

/// What a read (`write == false`) or write of `len` bytes at `off` of
/// region `index` must give: `None` for success, `Some(errno)`.
fn region_rw_expect(index: u64, off: u64, len: u64, write: bool) -> Option<i32> {
    if index << 40 >= 1 << 63 {
        return Some(EINVAL); // a negative file offset
    }
    match index {
        0 => {
            let aligned = (len == 4 || len == 8) && off.is_multiple_of(len);
            let inside = off + len <= BAR0_SIZE;
            // Named 32-bit registers refuse 8-byte accesses.
            let narrow = len == 8 && matches!(off, 0x008 | 0x010);
            if aligned && inside && !narrow {
                None
            } else {
                Some(EINVAL)
            }
        }
        7 => {
            let inside = off + len <= CFG_SIZE;
            let ok = if write {
                matches!(len, 1 | 2 | 4) && off.is_multiple_of(len) && inside
            } else {
                inside
            };
            if ok {
                None
            } else {
                Some(EINVAL)
            }
        }
        _ => Some(EINVAL),
    }
}

/// Region reads and writes of every size on every region index.
fn region_rw(dev: &CdevDevice, b: &mut BadInputs) -> Outcome {
    dev.enable()?;
    let sizes = [1u64, 2, 4, 8, 16, 4096];
    let near = |end: u64| {
        [
            0,
            1,
            2,
            3,
            8,
            0x104,
            end - 8,
            end - 4,
            end - 2,
            end - 1,
            end,
            end + 4,
        ]
    };
    let far = [1u64 << 20, 1 << 39, (1 << 40) - 8, (1 << 40) - 1];
    let mut buf = vec![0u8; 4096];
    let mut cases: Vec<(u64, u64)> = Vec::new();
    for index in [0u64, 7] {
        let end = if index == 0 { BAR0_SIZE } else { CFG_SIZE };
        for off in near(end).into_iter().chain(far) {
            cases.push((index, off));
        }
    }
    for index in [1u64, 2, 3, 4, 5, 6, 8, 9, 10, 255, (1 << 23) - 1, 1 << 23] {
        for off in [0u64, 3, 0x1000, (1 << 40) - 8] {
            cases.push((index, off));
        }
    }
    for (index, off) in cases {
        for &len in &sizes {
            for write in [false, true] {
                let pos = (index << 40).wrapping_add(off);
                let r = if write {
                    // Zeros: writing them changes nothing that matters
                    // (offset 4, the command register, is never written).
                    adv::pwrite_raw(&dev.device, [0u8; 4096].as_ptr(), len as usize, pos)
                } else {
                    adv::pread_raw(&dev.device, buf.as_mut_ptr(), len as usize, pos)
                };
                let what = || {
                    format!(
                        "{} of {len} bytes at {off:#x} of region {index}",
                        if write { "write" } else { "read" }
                    )
                };
                match region_rw_expect(index, off, len, write) {
                    Some(errno) => b.expect(what, r, errno)?,
                    None => {
                        let n = b.expect_ok(what, r)?;
                        if n != len as usize {
                            return Err(format!("{}: {n} bytes", what()));
                        }
                    }
                }
            }
        }
    }
    // NULL and unmapped buffers fault, for regions that would accept the
    // access.
    for (index, off, len) in [(0u64, 0u64, 4usize), (0, 0x100, 8), (7, 0, 4), (7, 0x40, 2)] {
        let pos = index << 40 | off;
        for addr in [std::ptr::null_mut(), 0x10 as *mut u8] {
            b.expect(
                || format!("read of region {index} into {addr:?}"),
                adv::pread_raw(&dev.device, addr, len, pos),
                libc::EFAULT,
            )?;
            b.expect(
                || format!("write of region {index} from {addr:?}"),
                adv::pwrite_raw(&dev.device, addr, len, pos),
                libc::EFAULT,
            )?;
        }
    }
    // Memory space off: BAR0 answers EIO, whatever the access.
    vfio::set_pci_command(&dev.device, 0)?;
    for (off, len) in [(0u64, 4usize), (0, 8), (1, 1), (BAR0_SIZE, 4)] {
        b.expect(
            || format!("BAR0 read of {len} at {off:#x} with memory space off"),
            adv::pread_raw(&dev.device, buf.as_mut_ptr(), len, off),
            libc::EIO,
        )?;
        b.expect(
            || format!("BAR0 write of {len} at {off:#x} with memory space off"),
            adv::pwrite_raw(&dev.device, buf.as_ptr(), len, off),
            libc::EIO,
        )?;
    }
    dev.enable()?;
    // Still alive: DEVCAP reads.
    let cap = dev.read_u64(0, 0)?;
    if cap & 0xff != 1 {
        return Err(format!("DEVCAP {cap:#x} after the bad accesses"));
    }
    Ok(())
}

/// mmap: only whole pages of BAR2, shared, inside the BAR (as vfio-pci:
/// `vfio_pci_core_mmap` refuses private mappings with EINVAL).
fn mmaps(dev1: &CdevDevice, dev4: &CdevDevice, b: &mut BadInputs) -> Outcome {
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let sh = libc::MAP_SHARED;
    let bar2 = 2u64 << 40;
    let cases: Vec<(&CdevDevice, u64, usize, i32, i32, String)> = vec![
        (dev1, 0, PAGE, rw, sh, "BAR0".into()),
        (dev1, 0x1000, PAGE, rw, sh, "BAR0 page 1".into()),
        (dev1, 7 << 40, PAGE, rw, sh, "config".into()),
        (dev1, 1 << 40, PAGE, rw, sh, "absent BAR1".into()),
        (dev1, 3 << 40, PAGE, rw, sh, "absent BAR3".into()),
        (dev1, 6 << 40, PAGE, rw, sh, "ROM".into()),
        (dev1, 8 << 40, PAGE, rw, sh, "VGA".into()),
        (dev1, 9 << 40, PAGE, rw, sh, "region 9".into()),
        (dev1, 0xff << 40, PAGE, rw, sh, "region 255".into()),
        (
            dev1,
            bar2 + 0x800,
            PAGE,
            rw,
            sh,
            "BAR2 at an unaligned offset".into(),
        ),
        (
            dev1,
            bar2 + 0x1000,
            PAGE,
            rw,
            sh,
            "BAR2 past its end".into(),
        ),
        (
            dev1,
            bar2,
            2 * PAGE,
            rw,
            sh,
            "BAR2 longer than the BAR".into(),
        ),
        (dev1, bar2, 0, rw, sh, "BAR2 of length 0".into()),
        (
            dev1,
            bar2 + (1 << 39),
            PAGE,
            rw,
            sh,
            "BAR2 at a huge offset".into(),
        ),
        (
            dev1,
            bar2,
            PAGE,
            rw,
            libc::MAP_PRIVATE,
            "BAR2 MAP_PRIVATE".into(),
        ),
        (
            dev1,
            bar2,
            PAGE,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            "BAR2 read-only MAP_PRIVATE".into(),
        ),
        (
            dev4,
            bar2 + 3 * PAGE as u64,
            2 * PAGE,
            rw,
            sh,
            "4q BAR2 pages 3..5".into(),
        ),
        (
            dev4,
            bar2 + 4 * PAGE as u64,
            PAGE,
            rw,
            sh,
            "4q BAR2 page 4".into(),
        ),
        (dev4, bar2, 5 * PAGE, rw, sh, "4q BAR2 of 5 pages".into()),
    ];
    for (dev, off, len, prot, flags, what) in cases {
        b.expect(
            || format!("mmap of {what}"),
            adv::mmap_raw(&dev.device, off, len, prot, flags).map(drop),
            EINVAL,
        )?;
    }
    // What vfio-pci allows is allowed: read-only, PROT_NONE and executable
    // shared mappings of whole doorbell pages.
    for (dev, off, len, prot, what) in [
        (dev1, bar2, PAGE, libc::PROT_READ, "read-only"),
        (dev1, bar2, PAGE, libc::PROT_NONE, "PROT_NONE"),
        (dev1, bar2, PAGE, rw | libc::PROT_EXEC, "PROT_EXEC"),
        (dev4, bar2 + 3 * PAGE as u64, PAGE, rw, "4q last page"),
        (dev4, bar2 + PAGE as u64, 3 * PAGE, rw, "4q pages 1..4"),
    ] {
        b.expect_ok(
            || format!("{what} shared mmap of BAR2"),
            adv::mmap_raw(&dev.device, off, len, prot, libc::MAP_SHARED).map(drop),
        )?;
    }
    Ok(())
}

/// Garbage written to the mdev sysfs attributes.
fn sysfs_garbage(adi: &Adi, b: &mut BadInputs) -> Outcome {
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let create = ty.dir().join("create");
    let avail = ty.available()?;
    let uuid = adi.0.uuid();
    let mut bad: Vec<String> = [
        "x",
        "not-a-uuid",
        "\n",
        "00000000-0000-0000-0000-00000000000",
        "00000000_0000_0000_0000_000000000000",
        "0000000000000000000000000000000000000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    bad.push(format!("{}g", &uuid[..35]));
    bad.push(format!("{uuid}xx"));
    bad.push(format!("{{{uuid}}}"));
    bad.push(format!("{uuid}{uuid}"));
    bad.push(uuid.replace('-', ":"));
    bad.push("z".repeat(4096));
    for s in &bad {
        b.expect(
            || format!("create {s:?}"),
            std::fs::write(&create, s),
            EINVAL,
        )?;
    }
    b.expect(
        || format!("create of the existing {uuid}"),
        std::fs::write(&create, &uuid),
        libc::EEXIST,
    )?;
    b.expect(
        || "create of a type that does not exist".into(),
        std::fs::write(
            MdevType::new(PF, "vdcm_sim-3q").dir().join("create"),
            sysfs::new_uuid()?,
        ),
        libc::ENOENT,
    )?;
    let remove = adi.0.dir().join("remove");
    for s in ["abc", "-1", "1x", "0x", " ", "99999999999999999999999"] {
        b.expect(
            || format!("remove {s:?}"),
            std::fs::write(&remove, s),
            EINVAL,
        )?;
    }
    for s in ["0", "0x0", "00\n"] {
        b.expect_ok(|| format!("remove {s:?}"), std::fs::write(&remove, s))?;
        if !adi.0.exists() {
            return Err(format!("remove {s:?} removed the ADI"));
        }
    }
    let stats = adi.0.dir().join("stats");
    for f in [
        "descriptors",
        "bytes",
        "faults",
        "invalid",
        "interrupts",
        "traps_bar0",
        "traps_config",
        "traps_bar2",
        "resets",
        "pasid",
        "vdcm_bytes",
        "pf_bytes",
    ] {
        b.expect(
            || format!("write to stats/{f}"),
            std::fs::write(stats.join(f), "0"),
            libc::EACCES,
        )?;
    }
    for f in ["available_instances", "device_api", "name", "description"] {
        b.expect(
            || format!("write to the type's {f}"),
            std::fs::write(ty.dir().join(f), "1"),
            libc::EACCES,
        )?;
    }
    b.expect(
        || "read of create".into(),
        std::fs::read(&create),
        libc::EACCES,
    )?;
    b.expect(
        || "read of remove".into(),
        std::fs::read(&remove),
        libc::EACCES,
    )?;
    let now = ty.available()?;
    if now != avail {
        return Err(format!(
            "available_instances {avail} -> {now} after the garbage"
        ));
    }
    Ok(())
}

fn main() {
    let mut t = Reporter::default();
    let setup = (|| -> Result<_, String> {
        let a1 = create("vdcm_sim-1q")?;
        let a4 = create("vdcm_sim-4q")?;
        Ok((a1, a4))
    })();
    let (a1, a4) = match setup {
        Ok(x) => x,
        Err(e) => {
            t.point("bad_input_setup", || Err(e));
            std::process::exit(t.exit_code());
        }
    };
    t.point("bad_input_unbound_fd_and_bind", || {
        counted(|b| unbound_fd(&a1, b))
    });
    let opened = (|| -> Result<_, String> {
        let d1 = CdevDevice::open(a1.0.cdev()?)?;
        d1.enable()?;
        let d4 = CdevDevice::open(a4.0.cdev()?)?;
        d4.enable()?;
        Ok((d1, d4))
    })();
    match opened {
        Ok((d1, d4)) => {
            t.point("bad_input_ioctl_argsz", || counted(|b| ioctl_argsz(&d1, b)));
            t.point("bad_input_ioctl_indexes", || {
                counted(|b| ioctl_indexes(&d1, b))
            });
            t.point("bad_input_set_irqs", || counted(|b| set_irqs(&d1, b)));
            t.point("bad_input_unknown_ioctls", || {
                counted(|b| unknown_ioctls(&d1, b))
            });
            t.point("bad_input_region_rw", || counted(|b| region_rw(&d1, b)));
            t.point("bad_input_mmap", || counted(|b| mmaps(&d1, &d4, b)));
        }
        Err(e) => {
            for p in [
                "bad_input_ioctl_argsz",
                "bad_input_ioctl_indexes",
                "bad_input_set_irqs",
                "bad_input_unknown_ioctls",
                "bad_input_region_rw",
                "bad_input_mmap",
            ] {
                t.not_run(p, &e);
            }
        }
    }
    t.point("bad_input_sysfs", || counted(|b| sysfs_garbage(&a1, b)));
    drop((a1, a4));
    std::process::exit(t.exit_code());
}

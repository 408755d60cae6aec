// SPDX-License-Identifier: GPL-2.0

//! Migration v2 of ADIs, driven through the VFIO uapi as a VMM drives it:
//! the capabilities every type offers, a running ADI's state carried to a
//! second ADI of the same type (with work submitted while the source was
//! stopped running on the destination), pre-copy, the C PF's ADI, and
//! streams a destination must refuse with a precise errno while staying
//! unchanged.
//!
//! Source and destination are two ADIs of one type (an mdev cannot be
//! opened twice). The destination maps the source's memory at the same
//! IOVA, as the guest's memory follows it in a real migration, so a
//! descriptor the source's guest queued is found where the destination
//! looks.
//!
//! Expects vdcm.ko, vdcm_sim.ko (with portals) and vdcm_cpf.ko loaded.

use std::time::Duration;

use vdcm_selftests::abi;
use vdcm_selftests::desc::Descriptor;
use vdcm_selftests::desc::Opcode;
use vdcm_selftests::desc::Status;
use vdcm_selftests::desc::COMPLETION_SIZE;
use vdcm_selftests::desc::DESC_SIZE;
use vdcm_selftests::dma;
use vdcm_selftests::dma::DmaMem;
use vdcm_selftests::dma::Portal;
use vdcm_selftests::dma::Queue;
use vdcm_selftests::dma::Tenant;
use vdcm_selftests::mdev::MdevType;
use vdcm_selftests::sysfs;
use vdcm_selftests::tap::ensure;
use vdcm_selftests::tap::note;
use vdcm_selftests::tap::Outcome;
use vdcm_selftests::tap::Reporter;
use vdcm_selftests::vfio::uapi;
use vdcm_selftests::vfio::VfioDevice;
use vfio_ioctls::DmaLoggingRange;
use vfio_ioctls::VfioError;

const PF: &str = "vdcm_sim0";
const CPF: &str = "vdcm_cpf0";
const BAR0: u32 = 0;
const BAR2: u32 = 2;
const CFG: u32 = uapi::VFIO_PCI_CONFIG_REGION_INDEX;
const PAGE: usize = 4096;
/// Where the source's memory is mapped, in both ADIs' address spaces.
const IOVA: u64 = 0x4000_0000;
/// Where the destination's own (unused) memory is mapped.
const DST_IOVA: u64 = 0x8000_0000;
const MEM: usize = 16 * PAGE;
/// Ring, completion records and a fill target in the source's memory.
const RING: usize = 0;
const RING_SIZE: u32 = 64;
const COMPL: usize = 4 * PAGE;
const FILL: usize = 8 * PAGE;
const TIMEOUT: Duration = Duration::from_secs(5);
/// What the dirty-logging points log: the source's memory.
const LOGGED: DmaLoggingRange = DmaLoggingRange {
    iova: IOVA,
    length: MEM as u64,
};

const RUNNING: u32 = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING;
const STOP: u32 = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP;
const STOP_COPY: u32 = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP_COPY;
const RESUMING: u32 = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_RESUMING;
const PRE_COPY: u32 = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY;
/// Every arc: STOP_COPY, P2P and PRE_COPY.
const ALL_FLAGS: u64 = (uapi::VFIO_MIGRATION_STOP_COPY
    | uapi::VFIO_MIGRATION_P2P
    | uapi::VFIO_MIGRATION_PRE_COPY) as u64;
/// The VDCM's stream header (drivers/vdcm/migration.rs, `HEADER_LEN`).
const HEADER_LEN: usize = 112;
/// The stream's framing version (drivers/vdcm/migration.rs, `VERSION`).
const STREAM_VERSION: u16 = 2;
/// Bytes of the QoS section's body (`QOS_LEN`): weight, priority,
/// max_rate, guaranteed_rate, threshold, reserved; it is the last section,
/// before the end mark's tag, length and CRC.
const QOS_LEN: usize = 32;

/// Offset of the QoS section's body in a whole stream of `len` bytes.
fn qos_at(len: usize) -> usize {
    len - 12 - QOS_LEN
}

/// The errno behind a failed migration call, if it carries one.
fn errno_of(e: &VfioError) -> Option<i32> {
    match e {
        VfioError::VfioDeviceFeature(s) => Some(s.errno()),
        VfioError::VfioMigGetPrecopyInfo(s) => Some(s.errno()),
        VfioError::VfioMigrationDataIo(io) => io.raw_os_error(),
        _ => None,
    }
}

fn fail(what: &str) -> impl Fn(VfioError) -> String + '_ {
    move |e| format!("{what}: {}", vdcm_selftests::vfio::error_chain(&e))
}

fn set_state(dev: &VfioDevice, state: u32) -> Result<(), String> {
    dev.set_migration_state(state)
        .map_err(fail(&format!("set migration state {state}")))
}

fn state(dev: &VfioDevice) -> Result<u32, String> {
    dev.get_migration_state()
        .map_err(fail("get migration state"))
}

/// Saves `src` (running or stopped) and returns its stream; `src` is
/// left stopped.
fn save(src: &VfioDevice) -> Result<Vec<u8>, String> {
    set_state(src, STOP_COPY)?;
    let data = src
        .read_migration_data_to_end()
        .map_err(fail("read the stream"))?;
    set_state(src, STOP)?;
    Ok(data)
}

/// Writes `data` into `dst` and applies it; `dst` ends stopped.
fn resume(dst: &VfioDevice, data: &[u8]) -> Result<(), VfioError> {
    dst.set_migration_state(RESUMING)?;
    dst.write_migration_data(data)?;
    dst.set_migration_state(STOP)
}

/// A destination of type `ty` with the source's memory at [`IOVA`].
fn destination(ty: &MdevType, src_mem: &DmaMem) -> Result<Tenant, String> {
    let dst = Tenant::new(ty, PAGE, DST_IOVA)?;
    dma::map(&dst.dev, src_mem, IOVA)?;
    Ok(dst)
}

/// A FILL of one page at `FILL + i * PAGE` with a completion record and an
/// interrupt: proof of DMA by whichever ADI runs it.
fn fill(i: usize) -> Descriptor {
    Descriptor::new(
        Opcode::Fill,
        PAGE as u32,
        0,
        IOVA + (FILL + (i % 8) * PAGE) as u64,
    )
    .with_operand(0x0101_0101_0101_0101 * (i as u64 + 1))
    .with_completion(IOVA + (COMPL + i * COMPLETION_SIZE) as u64)
    .with_interrupt()
}

/// Waits for completions `range` in `mem`; all must be successes.
fn wait_done(mem: &DmaMem, range: std::ops::Range<usize>) -> Outcome {
    for i in range {
        let c = dma::wait_completion(mem, COMPL + i * COMPLETION_SIZE, TIMEOUT)
            .ok_or_else(|| format!("descriptor {i}: no completion within {TIMEOUT:?}"))?;
        ensure(c.status == Status::Success, || {
            format!("descriptor {i}: status {:?}", c.status)
        })?;
    }
    Ok(())
}

fn capabilities() -> Outcome {
    for (parent, name) in [
        (PF, "vdcm_sim-1q"),
        (PF, "vdcm_sim-4q"),
        (PF, "vdcm_sim-shared"),
        (CPF, "vdcm_cpf-mbox"),
    ] {
        let t = Tenant::new(&MdevType::new(parent, name), PAGE, IOVA)?;
        let flags = t
            .dev
            .vfio
            .query_migration_support()
            .map_err(fail("VFIO_DEVICE_FEATURE_MIGRATION"))?;
        ensure(flags == Some(ALL_FLAGS), || {
            format!("{name}: migration flags {flags:?}, want {ALL_FLAGS:#x}")
        })?;
        let size = t
            .dev
            .vfio
            .get_mig_data_size()
            .map_err(fail("VFIO_DEVICE_FEATURE_MIG_DATA_SIZE"))?;
        ensure(size > 4096, || format!("{name}: data size {size}"))?;
        let st = state(&t.dev.vfio)?;
        ensure(st == RUNNING, || format!("{name}: state {st} after open"))?;
        note(format!(
            "{name}: flags {ALL_FLAGS:#x}, stop-copy data {size} bytes"
        ));
    }
    Ok(())
}

/// A dedicated-queue ADI of type `name`, queue `q` running: descriptors
/// before the stop run on the source, descriptors queued while it is
/// stopped run on the destination, and the counts add up.
fn dedicated(name: &str, q: u16) -> Outcome {
    let ty = MdevType::new(PF, name);
    let src = Tenant::new(&ty, MEM, IOVA)?;
    let mut queue = Queue::start(&src.dev, &src.mem, IOVA, q, RING, RING_SIZE, 0)?;
    let (before, after) = (5, 7);
    for i in 0..before {
        queue.push(&fill(i));
    }
    queue.ring();
    wait_done(&src.mem, 0..before)?;
    set_state(&src.dev.vfio, STOP)?;
    // Queued while stopped: the source must not fetch them.
    for i in before..before + after {
        queue.push(&fill(i));
    }
    queue.ring();
    std::thread::sleep(Duration::from_millis(300));
    ensure(
        dma::completion(&src.mem, COMPL + before * COMPLETION_SIZE).is_none(),
        || "the stopped source ran a descriptor queued after the stop".into(),
    )?;
    let data = save(&src.dev.vfio)?;
    let dst = destination(&ty, &src.mem)?;
    resume(&dst.dev.vfio, &data).map_err(fail("resume"))?;
    let blk = abi::queue(q);
    for reg in [abi::Q_RING_SIZE, abi::Q_CONTROL, abi::Q_STATUS] {
        let (s, d) = (
            src.dev.read_u32(BAR0, blk + reg)?,
            dst.dev.read_u32(BAR0, blk + reg)?,
        );
        ensure(s == d, || {
            format!("queue register {reg:#x}: source {s:#x}, destination {d:#x}")
        })?;
    }
    let base = dst.dev.read_u64(BAR0, blk + abi::Q_RING_BASE)?;
    ensure(base == IOVA + RING as u64, || {
        format!("RING_BASE {base:#x} on the destination")
    })?;
    let (sc, dc) = (
        src.dev.read_u32(CFG, 4)? & 0xffff,
        dst.dev.read_u32(CFG, 4)? & 0xffff,
    );
    ensure(sc == dc, || {
        format!("command register: source {sc:#x}, destination {dc:#x}")
    })?;
    // Each ADI keeps its own PASID: the register reads the destination's.
    let (sp, dp) = (src.stat("pasid")?, dst.stat("pasid")?);
    let reg = u64::from(dst.dev.read_u32(BAR0, blk + abi::Q_PASID)?);
    ensure(sp != dp && reg == dp, || {
        format!("PASIDs: source {sp}, destination {dp}, destination's register {reg}")
    })?;
    // Stopped: still nothing runs.
    std::thread::sleep(Duration::from_millis(200));
    ensure(
        dma::completion(&src.mem, COMPL + before * COMPLETION_SIZE).is_none(),
        || "the destination ran work before RUNNING".into(),
    )?;
    set_state(&dst.dev.vfio, RUNNING)?;
    wait_done(&src.mem, before..before + after)?;
    let irqs = dma::wait_eventfd(&dst.efd, TIMEOUT);
    ensure(irqs >= 1, || {
        "no completion interrupt on the destination's eventfd".into()
    })?;
    let (s, d) = (src.stat("descriptors")?, dst.stat("descriptors")?);
    ensure(s == before as u64 && d == after as u64, || {
        format!("descriptors: source {s}, destination {d}; want {before} and {after}")
    })?;
    // The destination's queue keeps going.
    let done = before + after;
    let bell = dst
        .dev
        .mmap(BAR2, u64::from(q) * abi::DOORBELL_PAGE, PAGE)
        .map_err(|e| format!("mmap the destination's doorbell: {e}"))?;
    queue.push(&fill(done));
    bell.write_u32(abi::DOORBELL_TAIL, done as u32 + 1);
    wait_done(&src.mem, done..done + 1)?;
    note(format!("{name}: {before} on the source, {after} queued while stopped ran on the destination, stream {} bytes", data.len()));
    Ok(())
}

fn shared() -> Outcome {
    let ty = MdevType::new(PF, "vdcm_sim-shared");
    let src = Tenant::new(&ty, MEM, IOVA)?;
    let mut portal = Portal::start(&src.dev, 0)?;
    portal.submit(&fill(0));
    wait_done(&src.mem, 0..1)?;
    set_state(&src.dev.vfio, STOP)?;
    // Into the portal page while stopped: carried with the page.
    portal.submit(&fill(1));
    portal.submit(&fill(2));
    std::thread::sleep(Duration::from_millis(300));
    ensure(
        dma::completion(&src.mem, COMPL + COMPLETION_SIZE).is_none(),
        || "the stopped source ran a portal submission".into(),
    )?;
    let data = save(&src.dev.vfio)?;
    let dst = destination(&ty, &src.mem)?;
    resume(&dst.dev.vfio, &data).map_err(fail("resume"))?;
    set_state(&dst.dev.vfio, RUNNING)?;
    wait_done(&src.mem, 1..3)?;
    let (s, d) = (src.stat("descriptors")?, dst.stat("descriptors")?);
    ensure(s == 1 && d == 2, || {
        format!("descriptors: source {s}, destination {d}; want 1 and 2")
    })
}

fn precopy() -> Outcome {
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let src = Tenant::new(&ty, MEM, IOVA)?;
    let mut queue = Queue::start(&src.dev, &src.mem, IOVA, 0, RING, RING_SIZE, 0)?;
    set_state(&src.dev.vfio, PRE_COPY)?;
    let info = src
        .dev
        .vfio
        .mig_get_precopy_info()
        .map_err(fail("precopy info"))?;
    ensure(
        info.initial_bytes == HEADER_LEN as u64 && info.dirty_bytes == 0,
        || {
            format!(
                "precopy info {} initial, {} dirty",
                info.initial_bytes, info.dirty_bytes
            )
        },
    )?;
    let mut head = vec![0u8; 4096];
    let n = src
        .dev
        .vfio
        .read_migration_data(&mut head)
        .map_err(fail("read pre-copy data"))?;
    ensure(n == HEADER_LEN, || {
        format!("read {n} bytes of pre-copy data")
    })?;
    // The device keeps running during pre-copy.
    queue.push(&fill(0));
    queue.ring();
    wait_done(&src.mem, 0..1)?;
    let again = src.dev.vfio.read_migration_data(&mut head[..16]);
    ensure(
        again.as_ref().err().and_then(errno_of) == Some(libc::ENOMSG),
        || format!("read at pre-copy's end: {again:?}, want ENOMSG"),
    )?;
    let info = src
        .dev
        .vfio
        .mig_get_precopy_info()
        .map_err(fail("precopy info"))?;
    ensure(info.initial_bytes == 0, || {
        format!("{} initial bytes left", info.initial_bytes)
    })?;
    set_state(&src.dev.vfio, STOP_COPY)?;
    let rest = src
        .dev
        .vfio
        .read_migration_data_to_end()
        .map_err(fail("read the rest"))?;
    set_state(&src.dev.vfio, STOP)?;
    let mut data = head[..n].to_vec();
    data.extend_from_slice(&rest);
    let dst = destination(&ty, &src.mem)?;
    resume(&dst.dev.vfio, &data).map_err(fail("resume a pre-copied stream"))?;
    set_state(&dst.dev.vfio, RUNNING)?;
    let status = dst.dev.read_u32(BAR0, abi::queue(0) + abi::Q_STATUS)?;
    ensure(status & abi::STATUS_RUNNING != 0, || {
        format!("queue STATUS {status:#x} on the destination")
    })
}

/// The C PF's mbox ADI: MAILBOX and the buffer registers carried, and a
/// doorbell rung while stopped served on the destination.
fn cpf() -> Outcome {
    let ty = MdevType::new(CPF, "vdcm_cpf-mbox");
    let src = Tenant::new(&ty, MEM, IOVA)?;
    src.dev.enable()?;
    src.mem.write(FILL, &[0x5a; 512]);
    src.dev.write_u32(BAR0, 0x004, 0xfeed_f00d)?;
    src.dev
        .write_u32(BAR0, 0x008, (IOVA + FILL as u64) as u32)?;
    src.dev
        .write_u32(BAR0, 0x00c, ((IOVA + FILL as u64) >> 32) as u32)?;
    src.dev.write_u32(BAR0, 0x010, 512)?;
    let bell = src
        .dev
        .mmap(BAR2, 0, PAGE)
        .map_err(|e| format!("mmap: {e}"))?;
    set_state(&src.dev.vfio, STOP)?;
    bell.write_u32(0, 1);
    std::thread::sleep(Duration::from_millis(300));
    let count = src.dev.read_u32(BAR0, 0x01c)?;
    ensure(count == 0, || {
        format!("the stopped source served the doorbell (COUNT {count})")
    })?;
    let data = save(&src.dev.vfio)?;
    let dst = destination(&ty, &src.mem)?;
    resume(&dst.dev.vfio, &data).map_err(fail("resume"))?;
    let mailbox = dst.dev.read_u32(BAR0, 0x004)?;
    ensure(mailbox == 0xfeed_f00d, || {
        format!("MAILBOX {mailbox:#x} on the destination")
    })?;
    set_state(&dst.dev.vfio, RUNNING)?;
    let irqs = dma::wait_eventfd(&dst.efd, TIMEOUT);
    let (count, result) = (
        dst.dev.read_u32(BAR0, 0x01c)?,
        dst.dev.read_u32(BAR0, 0x014)?,
    );
    let want = crc32c::crc32c(&[0x5a; 512]);
    ensure(irqs >= 1 && count == 1 && result == want, || {
        format!(
            "destination: {irqs} interrupts, COUNT {count}, RESULT {result:#x} (want {want:#x})"
        )
    })
}

/// The ADI's QoS settings travel with it: the destination shows the
/// source's and its PF holds the guarantee too (the source, stopped, still
/// holds its own until it is removed).
fn carries_qos() -> Outcome {
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let left_file = format!("/sys/class/mdev_bus/{PF}/qos/guaranteed_left");
    let left = || sysfs::read_u64(&left_file);
    let knobs = [
        ("weight", 7u64),
        ("priority", 3),
        ("max_rate", 5000),
        ("guaranteed_rate", 1000),
    ];
    let src = Tenant::new(&ty, MEM, IOVA)?;
    let before = left()?;
    for (knob, value) in knobs {
        sysfs::write(src.mdev.0.dir().join("qos").join(knob), &value.to_string())?;
    }
    let data = save(&src.dev.vfio)?;
    let dst = destination(&ty, &src.mem)?;
    resume(&dst.dev.vfio, &data).map_err(fail("resume"))?;
    for (knob, value) in knobs {
        let got = sysfs::read_u64(dst.mdev.0.dir().join("qos").join(knob))?;
        ensure(got == value, || {
            format!("destination qos/{knob} {got}, the source had {value}")
        })?;
    }
    let now = left()?;
    ensure(now + 2000 == before, || {
        format!("guaranteed_left {now} with both ADIs holding 1000, {before} before")
    })?;
    drop(dst);
    drop(src);
    let after = left()?;
    ensure(after == before, || {
        format!("guaranteed_left {after} after both ADIs went, {before} before")
    })
}

/// A valid stream of a 1q ADI with a running queue, and the source kept
/// alive (its memory is the destination's too).
fn valid_stream() -> Result<(Tenant, Vec<u8>), String> {
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let src = Tenant::new(&ty, MEM, IOVA)?;
    {
        let _queue = Queue::start(&src.dev, &src.mem, IOVA, 0, RING, RING_SIZE, 0)?;
    }
    let data = save(&src.dev.vfio)?;
    Ok((src, data))
}

/// Recomputes the stream's end mark after an edit.
fn reseal(data: &mut [u8]) {
    let n = data.len();
    let crc = crc32c::crc32c(&data[..n - 4]);
    data[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

fn bad_streams() -> Outcome {
    let (src, good) = valid_stream()?;
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let dst = destination(&ty, &src.mem)?;
    let blk = abi::queue(0);
    let mut cases: Vec<(&str, Vec<u8>, i32)> = vec![];
    for cut in [0, 8, HEADER_LEN, HEADER_LEN + 100, good.len() - 1] {
        cases.push(("truncated", good[..cut].to_vec(), libc::ENODATA));
    }
    let mut flipped = good.clone();
    flipped[HEADER_LEN + 200] ^= 0x10;
    cases.push(("corrupted", flipped, libc::EBADMSG));
    let mut version = good.clone();
    version[4] = 9;
    cases.push(("another version", version, libc::EPROTO));
    let mut magic = good.clone();
    magic[0] ^= 0xff;
    cases.push(("bad magic", magic, libc::EINVAL));
    // The vendor ID in the config section (offset 0 of it), resealed: a
    // read-only field differs from the destination's.
    let mut vendor = good.clone();
    vendor[HEADER_LEN + 8] ^= 0x01;
    reseal(&mut vendor);
    cases.push(("config of another device", vendor, libc::EINVAL));
    // The PF's own magic, resealed: the PF refuses its part.
    let pf_at = HEADER_LEN + 8 + 4096 + 8 + 2 * 17 + 8;
    let mut pf = good.clone();
    pf[pf_at] ^= 0xff;
    reseal(&mut pf);
    cases.push(("PF state the PF refuses", pf, libc::EINVAL));
    // QoS settings out of range (weight 0), resealed: the destination
    // checks them against its limits before it applies anything.
    let mut weight = good.clone();
    let at = qos_at(weight.len());
    weight[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    reseal(&mut weight);
    cases.push(("QoS weight 0", weight, libc::EINVAL));
    // A guarantee no PF of the simulated device can admit (its capacity
    // is 100000 descriptors/s): refused with ENOSPC, before anything
    // changes.
    let mut guarantee = good.clone();
    let at = qos_at(guarantee.len()) + 16;
    guarantee[at..at + 8].copy_from_slice(&10_000_000u64.to_le_bytes());
    reseal(&mut guarantee);
    cases.push((
        "QoS guarantee over the PF's capacity",
        guarantee,
        libc::ENOSPC,
    ));
    // A byte after the end: EINVAL from the parser, or EFBIG at the write
    // when the stream already has the type's largest size (the simulated
    // PF's part always does).
    let max = dst
        .dev
        .vfio
        .get_mig_data_size()
        .map_err(fail("data size"))? as usize;
    let mut trailing = good.clone();
    trailing.push(0);
    let want = if good.len() == max {
        libc::EFBIG
    } else {
        libc::EINVAL
    };
    cases.push(("bytes after the end", trailing, want));
    for (what, data, want) in &cases {
        let got = resume(&dst.dev.vfio, data).err();
        let errno = got.as_ref().and_then(errno_of);
        ensure(errno == Some(*want), || {
            format!("{what} ({} bytes): {got:?}, want errno {want}", data.len())
        })?;
        let st = state(&dst.dev.vfio)?;
        ensure(st == RESUMING, || {
            format!("{what}: state {st} after the refusal, want RESUMING")
        })?;
        dst.dev.reset()?;
        let st = state(&dst.dev.vfio)?;
        // The reset disabled memory space too.
        dst.dev.enable()?;
        let ctl = dst.dev.read_u32(BAR0, blk + abi::Q_CONTROL);
        ensure(st == RUNNING && ctl == Ok(0), || {
            format!("{what}: after reset state {st}, CONTROL {ctl:?}: the refused stream changed the ADI")
        })?;
    }
    // Larger than any stream of the type: refused at the write.
    dst.dev
        .vfio
        .set_migration_state(RESUMING)
        .map_err(fail("RESUMING"))?;
    let big = vec![0u8; max + 1];
    let w = dst.dev.vfio.write_migration_data(&big);
    ensure(
        w.as_ref().err().and_then(errno_of) == Some(libc::EFBIG),
        || format!("writing {} bytes: {w:?}, want EFBIG", max + 1),
    )?;
    dst.dev.reset()?;
    // A 1q stream into a 4q ADI: another geometry.
    let four = Tenant::new(&MdevType::new(PF, "vdcm_sim-4q"), PAGE, DST_IOVA)?;
    let got = resume(&four.dev.vfio, &good).err();
    ensure(
        got.as_ref().and_then(errno_of) == Some(libc::EINVAL),
        || format!("1q stream into 4q: {got:?}, want EINVAL"),
    )?;
    // After all that, the good stream still applies.
    dst.dev.reset()?;
    resume(&dst.dev.vfio, &good).map_err(fail("the good stream after the bad ones"))?;
    // The stream carried the command register: memory space is on.
    let size = dst.dev.read_u32(BAR0, blk + abi::Q_RING_SIZE)?;
    ensure(size == RING_SIZE, || {
        format!("RING_SIZE {size} after the good stream")
    })?;
    note(format!(
        "{} bad streams refused, each with its errno; the ADI unchanged",
        cases.len() + 2
    ));
    Ok(())
}

/// A reset in STOP_COPY ends the stream (`ENODEV`) and the state is
/// RUNNING again.
fn reset_ends_stream() -> Outcome {
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let src = Tenant::new(&ty, MEM, IOVA)?;
    set_state(&src.dev.vfio, STOP_COPY)?;
    src.dev.reset()?;
    let st = state(&src.dev.vfio)?;
    ensure(st == RUNNING, || {
        format!("state {st} after reset, want RUNNING")
    })?;
    let mut buf = [0u8; 64];
    let r = src.dev.vfio.read_migration_data(&mut buf);
    ensure(
        r.as_ref().err().and_then(errno_of) == Some(libc::ENODEV),
        || format!("read after reset: {r:?}, want ENODEV"),
    )
}

/// Dirty logging: the pages the PF wrote (fill targets, completion
/// records) are reported once and then clear; untouched pages never are;
/// a second start is refused while logging runs; a report after stop is
/// refused.
fn dirty_log() -> Outcome {
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let src = Tenant::new(&ty, MEM, IOVA)?;
    let mut queue = Queue::start(&src.dev, &src.mem, IOVA, 0, RING, RING_SIZE, 0)?;
    let dev = &src.dev.vfio;
    let range = LOGGED;
    let page = dev
        .start_dma_logging(PAGE as u64, &[range])
        .map_err(fail("start DMA logging"))?;
    ensure(page == PAGE as u64, || format!("logging page size {page}"))?;
    let again = dev.start_dma_logging(PAGE as u64, &[range]);
    ensure(again.is_err(), || {
        "a second start while logging succeeded".into()
    })?;
    let clean = dev
        .report_dma_logging(range, PAGE as u64)
        .map_err(fail("report"))?;
    ensure(clean.iter().all(|&w| w == 0), || {
        format!("dirty before any DMA: {clean:x?}")
    })?;
    for i in 0..3 {
        queue.push(&fill(i));
    }
    queue.ring();
    wait_done(&src.mem, 0..3)?;
    let bits = dev
        .report_dma_logging(range, PAGE as u64)
        .map_err(fail("report"))?;
    let dirty = dirty_pages(&bits);
    let want = vec![COMPL / PAGE, FILL / PAGE, FILL / PAGE + 1, FILL / PAGE + 2];
    ensure(dirty == want, || {
        format!("dirty pages {dirty:?}, want {want:?} (completions, three fills)")
    })?;
    let after = dev
        .report_dma_logging(range, PAGE as u64)
        .map_err(fail("report"))?;
    ensure(after.iter().all(|&w| w == 0), || {
        format!("still dirty after a report: {after:x?}")
    })?;
    dev.stop_dma_logging().map_err(fail("stop DMA logging"))?;
    note(format!(
        "pages {want:?} of {} reported dirty, then clean",
        MEM / PAGE
    ));
    Ok(())
}

const PRE_COPY_P2P: u32 = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY_P2P;
const ERROR: u32 = uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_ERROR;

/// Whether the VFIO core accepts a request for `new` in state `cur` on a
/// device with every arc (the uapi's rules, written out independently of
/// the kernel's table): ERROR and unknown states are never a target, and
/// pre-copy cannot be entered from STOP_COPY.
fn request_valid(cur: u32, new: u32) -> bool {
    new <= PRE_COPY_P2P && new != ERROR && !(cur == STOP_COPY && pre(new))
}

/// One of the two pre-copy states.
fn pre(s: u32) -> bool {
    s == PRE_COPY || s == PRE_COPY_P2P
}

/// What the fuzz wrote into the current RESUMING stream.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Written {
    Nothing,
    Garbage,
    /// The last saved stream, whole.
    Saved,
}

/// The model the fuzz checks the device against.
struct FuzzModel {
    state: u32,
    /// `Q_RING_SIZE` and `Q_RING_BASE` of queue 0, last written.
    regs: (u32, u64),
    /// Bytes read from the current save stream so far.
    read: Vec<u8>,
    /// The save stream was read to its end.
    read_all: bool,
    /// The last whole stream read, and the registers it carries.
    saved: Option<(Vec<u8>, (u32, u64))>,
    written: Written,
    /// vfio-ioctls holds the current stream's data fd (it drops it on any
    /// failed request).
    fd: bool,
}

impl FuzzModel {
    /// A device just opened or reset (RUNNING, queue registers clear, no
    /// stream), keeping the last stream saved before it.
    fn opened(saved: Option<(Vec<u8>, (u32, u64))>) -> Self {
        FuzzModel {
            state: RUNNING,
            regs: (0, 0),
            read: vec![],
            read_all: false,
            saved,
            written: Written::Nothing,
            fd: false,
        }
    }
}

/// Checks a save stream's frame: the magic, version [`STREAM_VERSION`] (a
/// 16-bit field; the header's length follows it) and the CRC-32C end
/// mark over everything before it.
fn check_frame(data: &[u8]) -> Outcome {
    ensure(data.len() > HEADER_LEN + 4 && &data[..4] == b"VDCM", || {
        format!("a stream of {} bytes without the magic", data.len())
    })?;
    let version = u16::from_le_bytes([data[4], data[5]]);
    let n = data.len();
    let crc = u32::from_le_bytes(data[n - 4..].try_into().unwrap_or_default());
    ensure(
        version == STREAM_VERSION && crc == crc32c::crc32c(&data[..n - 4]),
        || format!("stream version {version}, end mark {crc:#x} does not match"),
    )
}

/// Random sequences of `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` requests,
/// valid and invalid, with resets, register writes, stream reads and
/// resume writes (whole saved streams and garbage) in between; after every
/// step the device's state, two queue registers (which a resume must bring
/// back to what the saved stream carried) and the pre-copy info are
/// checked against a model. Seeded (`MIG_FUZZ_SEED`), the seed printed.
fn state_fuzz() -> Outcome {
    let seed = std::env::var("MIG_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(vdcm_selftests::adv::clock_seed);
    note(format!("seed {seed} (replay: MIG_FUZZ_SEED={seed})"));
    let steps = 10_000;
    let mut r = vdcm_selftests::adv::Rng::new(seed);
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let t = Tenant::new(&ty, PAGE, IOVA)?;
    let (dev, vfio) = (&t.dev, &t.dev.vfio);
    let blk = abi::queue(0);
    dev.enable()?;
    let mut m = FuzzModel::opened(None);
    let (mut requests, mut refused, mut resumes, mut streams) = (0u32, 0u32, 0u32, 0u32);
    for step in 0..steps {
        let at = |what: String| format!("step {step} (seed {seed}): {what}");
        match r.below(100) {
            0..=69 => {
                let new = match r.below(20) {
                    0 => ERROR,
                    1 => PRE_COPY_P2P + 1 + r.below(4) as u32,
                    2 => u32::MAX,
                    _ => r.below(u64::from(PRE_COPY_P2P) + 1) as u32,
                };
                let got = vfio.set_migration_state(new);
                requests += 1;
                let cur = m.state;
                let from_resuming_fails =
                    cur == RESUMING && new != RESUMING && m.written != Written::Saved;
                if !request_valid(cur, new) || from_resuming_fails {
                    refused += 1;
                    let e = got.as_ref().err().and_then(errno_of);
                    let ok = if from_resuming_fails && request_valid(cur, new) {
                        // The stream is checked at RESUMING -> STOP: empty
                        // is cut short, garbage is not a stream.
                        let want = if m.written == Written::Nothing {
                            Some(libc::ENODATA)
                        } else {
                            None
                        };
                        e.is_some() && (want.is_none() || e == want)
                    } else {
                        e == Some(libc::EINVAL)
                    };
                    ensure(ok, || at(format!("request {new} in state {cur}: {got:?}")))?;
                    // Nothing changed; vfio-ioctls closed its data fd on
                    // the error (what was written stays in the device).
                    m.fd = false;
                } else {
                    got.map_err(|e| {
                        at(format!(
                            "request {new} in state {cur}: {}",
                            vdcm_selftests::vfio::error_chain(&e)
                        ))
                    })?;
                    if cur == RESUMING && new != RESUMING {
                        resumes += 1;
                        if let Some((_, regs)) = &m.saved {
                            m.regs = *regs;
                        }
                    }
                    // The save stream goes on only from pre-copy into
                    // STOP_COPY (or where it already is).
                    let keeps = new == cur || (pre(cur) && (pre(new) || new == STOP_COPY));
                    if !keeps {
                        m.read.clear();
                        m.read_all = false;
                        m.fd = pre(new) || new == STOP_COPY || new == RESUMING;
                    }
                    if new != cur {
                        m.written = Written::Nothing;
                    }
                    m.state = new;
                }
            }
            70..=77 => {
                dev.reset()?;
                dev.enable()?;
                m = FuzzModel::opened(m.saved.take());
            }
            78..=87 if m.state == RUNNING => {
                let size = 1u32 << (1 + r.below(u64::from(abi::MAX_RING_ORDER)));
                let base = (1 + r.below(1 << 20)) * abi::RING_ALIGN;
                dev.write_u32(BAR0, blk + abi::Q_RING_SIZE, size)?;
                dev.write_u64(BAR0, blk + abi::Q_RING_BASE, base)?;
                m.regs = (size, base);
            }
            88..=93 if m.fd && (pre(m.state) || m.state == STOP_COPY) => {
                if m.read_all {
                    continue;
                }
                if m.state == STOP_COPY {
                    let rest = vfio.read_migration_data_to_end().map_err(|e| {
                        at(format!(
                            "read the stream: {}",
                            vdcm_selftests::vfio::error_chain(&e)
                        ))
                    })?;
                    m.read.extend_from_slice(&rest);
                    check_frame(&m.read).map_err(at)?;
                    m.saved = Some((std::mem::take(&mut m.read), m.regs));
                    m.read_all = true;
                    streams += 1;
                } else {
                    // Pre-copy: the header, or ENOMSG once it is read.
                    let mut buf = vec![0u8; 1 + r.below(2 * HEADER_LEN as u64) as usize];
                    match vfio.read_migration_data(&mut buf) {
                        Ok(n) => m.read.extend_from_slice(&buf[..n]),
                        Err(e) => ensure(
                            errno_of(&e) == Some(libc::ENOMSG) && m.read.len() == HEADER_LEN,
                            || at(format!("pre-copy read after {} bytes: {e:?}", m.read.len())),
                        )?,
                    }
                    ensure(m.read.len() <= HEADER_LEN, || {
                        at(format!("{} bytes of pre-copy data", m.read.len()))
                    })?;
                }
            }
            94..=99 if m.fd && m.state == RESUMING && m.written == Written::Nothing => {
                let data = match (&m.saved, r.one_in(3)) {
                    (Some((s, _)), false) => {
                        m.written = Written::Saved;
                        s.clone()
                    }
                    _ => {
                        m.written = Written::Garbage;
                        let mut g = vec![0u8; 1 + r.below(300) as usize];
                        r.fill(&mut g);
                        g
                    }
                };
                vfio.write_migration_data(&data)
                    .map_err(|e| at(format!("write {} bytes of stream: {e:?}", data.len())))?;
            }
            _ => {}
        }
        // The device against the model, after every step.
        let st = state(vfio).map_err(&at)?;
        ensure(st == m.state, || {
            at(format!("state {st}, model {}", m.state))
        })?;
        let regs = (
            dev.read_u32(BAR0, blk + abi::Q_RING_SIZE).map_err(&at)?,
            dev.read_u64(BAR0, blk + abi::Q_RING_BASE).map_err(&at)?,
        );
        ensure(regs == m.regs, || {
            at(format!(
                "RING_SIZE/RING_BASE {regs:x?}, model {:x?}",
                m.regs
            ))
        })?;
        if m.fd && pre(m.state) {
            let info = vfio
                .mig_get_precopy_info()
                .map_err(|e| at(format!("precopy info: {e:?}")))?;
            let left = (HEADER_LEN - m.read.len().min(HEADER_LEN)) as u64;
            ensure(info.initial_bytes == left, || {
                at(format!(
                    "precopy info: {} initial bytes, model {left}",
                    info.initial_bytes
                ))
            })?;
        }
    }
    note(format!(
        "{steps} steps: {requests} state requests ({refused} refused as the model said), {streams} streams read and checked, {resumes} resumes"
    ));
    ensure(streams > 0 && resumes > 0 && refused > 0, || {
        "the fuzz never read a stream, resumed or was refused".into()
    })
}

/// A page-granular copy of the tenant's memory, as a VMM keeps it.
fn copy_pages(from: &DmaMem, to: &mut [u8], pages: impl Iterator<Item = usize>) -> usize {
    let mut n = 0;
    for p in pages {
        from.read(p * PAGE, &mut to[p * PAGE..(p + 1) * PAGE]);
        n += 1;
    }
    n
}

/// The pages set in a dirty bitmap of `MEM / PAGE` bits.
fn dirty_pages(bits: &[u64]) -> Vec<usize> {
    (0..MEM / PAGE)
        .filter(|p| bits.get(p / 64).is_some_and(|w| w & (1 << (p % 64)) != 0))
        .collect()
}

/// Migrates a running ADI the way a VMM without IOMMU dirty tracking does:
/// the guest's memory is copied once at the start of pre-copy, the device
/// goes on writing (fills, completion records) while it is copied, then
/// only the pages its DMA log reports (and those the "CPU" wrote: the
/// ring) are copied again, during pre-copy and after the stop. The
/// destination ADI runs on the copy: the copy must equal the source's
/// memory byte for byte before it starts, and a check on what the copy
/// would have been without the log proves the test can fail.
fn dirty_tracking() -> Outcome {
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let src = Tenant::new(&ty, MEM, IOVA)?;
    let mut queue = Queue::start(&src.dev, &src.mem, IOVA, 0, RING, RING_SIZE, 0)?;
    let dev = &src.dev.vfio;
    let range = LOGGED;
    let report = || -> Result<Vec<usize>, String> {
        dev.report_dma_logging(range, PAGE as u64)
            .map(|b| dirty_pages(&b))
            .map_err(fail("report"))
    };
    dev.start_dma_logging(PAGE as u64, &[range])
        .map_err(fail("start DMA logging"))?;
    set_state(dev, PRE_COPY)?;
    let mut copy = vec![0u8; MEM];
    copy_pages(&src.mem, &mut copy, 0..MEM / PAGE);
    let first = copy.clone();
    let ring_pages = || RING / PAGE..(RING + RING_SIZE as usize * DESC_SIZE).div_ceil(PAGE);
    // The device writes while pre-copy runs.
    for i in 0..6 {
        queue.push(&fill(i));
    }
    queue.ring();
    wait_done(&src.mem, 0..6)?;
    let mut dirty = report()?;
    let mut recopied = copy_pages(
        &src.mem,
        &mut copy,
        dirty.iter().copied().chain(ring_pages()),
    );
    // Still running: more writes, some in flight at the stop, and two
    // queued only after it (they run on the destination, into the copy).
    for i in 6..10 {
        queue.push(&fill(i));
    }
    queue.ring();
    // Stopped (through pre-copy's P2P state): the doorbell page, and with
    // it the two rung now, is carried by the stream.
    set_state(dev, PRE_COPY_P2P)?;
    for i in 10..12 {
        queue.push(&fill(i));
    }
    queue.ring();
    set_state(dev, STOP_COPY)?;
    let data = dev
        .read_migration_data_to_end()
        .map_err(fail("read the stream"))?;
    set_state(dev, STOP)?;
    let last = report()?;
    dev.stop_dma_logging().map_err(fail("stop DMA logging"))?;
    recopied += copy_pages(
        &src.mem,
        &mut copy,
        last.iter().copied().chain(ring_pages()),
    );
    dirty.extend(last);
    let stale = (0..MEM / PAGE)
        .filter(|&p| !ring_pages().contains(&p))
        .filter(|&p| src.mem.bytes(p * PAGE, PAGE) != first[p * PAGE..(p + 1) * PAGE])
        .count();
    ensure(stale > 0, || {
        "no page the device wrote during pre-copy: the test proves nothing".into()
    })?;
    ensure(src.mem.bytes(0, MEM) == copy, || {
        let bad: Vec<usize> = (0..MEM / PAGE)
            .filter(|&p| src.mem.bytes(p * PAGE, PAGE) != copy[p * PAGE..(p + 1) * PAGE])
            .collect();
        format!(
            "pages {bad:?} of the copy differ from the source's memory (logged dirty: {dirty:?})"
        )
    })?;
    // The destination runs on the copy.
    let mem = DmaMem::new(MEM).map_err(|e| format!("mmap: {e}"))?;
    mem.write(0, &copy);
    let dst = destination(&ty, &mem)?;
    resume(&dst.dev.vfio, &data).map_err(fail("resume"))?;
    set_state(&dst.dev.vfio, RUNNING)?;
    wait_done(&mem, 0..12)?;
    let (s, d) = (src.stat("descriptors")?, dst.stat("descriptors")?);
    ensure(s + d == 12 && d >= 2, || {
        format!("descriptors: source {s}, destination {d}; want 12 in all, at least the 2 queued after the stop on the destination")
    })?;
    note(format!(
        "{stale} pages written by the device during pre-copy (stale without the log); {recopied} pages re-copied from the log and the ring; the copy equals the source and the destination ran on it"
    ));
    Ok(())
}

fn main() {
    let mut t = Reporter::default();
    t.point("migration_capabilities", capabilities);
    t.point("migration_stop_copy_1q", || dedicated("vdcm_sim-1q", 0));
    t.point("migration_stop_copy_4q", || dedicated("vdcm_sim-4q", 2));
    t.point("migration_stop_copy_shared", shared);
    t.point("migration_precopy", precopy);
    t.point("migration_cpf", cpf);
    t.point("migration_bad_stream", bad_streams);
    t.point("migration_carries_qos", carries_qos);
    t.point("migration_reset_ends_stream", reset_ends_stream);
    t.point("migration_dirty_log", dirty_log);
    t.point("migration_dirty_tracking", dirty_tracking);
    t.point("migration_state_fuzz", state_fuzz);
    std::process::exit(t.exit_code());
}

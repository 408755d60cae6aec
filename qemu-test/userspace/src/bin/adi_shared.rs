// SPDX-License-Identifier: GPL-2.0

//! Shared mode and isolation between ADIs: portals on the PF's shared
//! queue pair, each tagging its work with its ADI's PASID; two tenants with
//! overlapping IOVAs in separate IOASes; one ADI's doorbell cannot run
//! another's work; many shared ADIs on one PF.
//!
//! Expects vdcm.ko and vdcm_sim.ko loaded with the defaults (1024 portals).

use std::time::Duration;

use vdcm_selftests::desc::Descriptor;
use vdcm_selftests::desc::Opcode;
use vdcm_selftests::desc::Status;
use vdcm_selftests::dma;
use vdcm_selftests::dma::Portal;
use vdcm_selftests::dma::Queue;
use vdcm_selftests::dma::Tenant;
use vdcm_selftests::mdev::MdevType;
use vdcm_selftests::mdev::Removed;
use vdcm_selftests::sysfs;
use vdcm_selftests::tap::ensure;
use vdcm_selftests::tap::Outcome;
use vdcm_selftests::tap::Reporter;

const PF: &str = "vdcm_sim0";
const PORTALS: u64 = 1024;
const IOVA: u64 = 0x10_0000;
const MEM: usize = 0x10000;
const SRC: usize = 0x1000;
const DST: usize = 0x2000;
const COMPL: usize = 0x3000;
const TIMEOUT: Duration = Duration::from_secs(5);

fn shared_type() -> MdevType {
    MdevType::new(PF, "vdcm_sim-shared")
}

/// An opened ADI of type `ty` with `MEM` bytes mapped at `IOVA` and
/// vector 0 on an eventfd.
fn tenant(ty: &MdevType) -> Result<Tenant, String> {
    Tenant::new(ty, MEM, IOVA)
}

/// A 256-byte MEMMOVE from `SRC` to `DST` with a completion record and an
/// interrupt.
fn memmove() -> Descriptor {
    Descriptor::new(Opcode::MemMove, 256, IOVA + SRC as u64, IOVA + DST as u64)
        .with_completion(IOVA + COMPL as u64)
        .with_interrupt()
}

fn shared_type_listed() -> Outcome {
    let t = shared_type();
    let avail = t.available()?;
    ensure(avail == PORTALS, || {
        format!("available_instances {avail}, want {PORTALS}")
    })?;
    let desc = sysfs::read(t.dir().join("description"))?;
    ensure(
        desc.contains(&format!("of {PORTALS} portals on this PF")),
        || format!("description {desc:?}"),
    )
}

fn portal_memmove_irq() -> Outcome {
    let t = tenant(&shared_type())?;
    let data: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
    t.mem.write(SRC, &data);
    let mut p = Portal::start(&t.dev, 0)?;
    p.submit(&memmove());
    let c =
        dma::wait_completion(&t.mem, COMPL, TIMEOUT).ok_or("no completion through the portal")?;
    ensure(c.status == Status::Success && c.done == 256, || {
        format!("completion {c:?}")
    })?;
    ensure(t.mem.bytes(DST, 256) == data, || {
        "portal MEMMOVE moved the wrong bytes".into()
    })?;
    ensure(dma::wait_eventfd(&t.efd, TIMEOUT) >= 1, || {
        "no completion interrupt from the portal".into()
    })?;
    // 70 more, more than the portal's 63 slots, in groups it can hold.
    for round in 0..10 {
        for _ in 0..7 {
            p.submit(&dma::nop());
        }
        t.mem.write(COMPL, &[0u8; 32]);
        p.submit(&Descriptor::new(Opcode::Nop, 0, 0, 0).with_completion(IOVA + COMPL as u64));
        dma::wait_completion(&t.mem, COMPL, TIMEOUT)
            .ok_or_else(|| format!("round {round}: no completion"))?;
    }
    let (d, i) = (t.stat("descriptors")?, t.stat("interrupts")?);
    ensure(d == 81 && i == 1, || {
        format!("stats descriptors {d} interrupts {i}, want 81 and 1")
    })
}

/// Two tenants, same IOVAs in two IOASes, different data: each sees only
/// its own.
fn check_pair(a: &Tenant, b: &Tenant, submit: impl Fn(&Tenant) -> Result<(), String>) -> Outcome {
    a.mem.write(SRC, &[0xaa; 256]);
    b.mem.write(SRC, &[0xbb; 256]);
    submit(a)?;
    submit(b)?;
    for (t, want, name) in [(a, 0xaa, "A"), (b, 0xbb, "B")] {
        let c = dma::wait_completion(&t.mem, COMPL, TIMEOUT)
            .ok_or_else(|| format!("{name}: no completion"))?;
        ensure(c.status == Status::Success, || format!("{name}: {c:?}"))?;
        let got = t.mem.bytes(DST, 256);
        ensure(got.iter().all(|&x| x == want), || {
            format!(
                "tenant {name} read {:#x}, its own data is {want:#x}",
                got[0]
            )
        })?;
    }
    let (pa, pb) = (a.stat("pasid")?, b.stat("pasid")?);
    ensure(pa != pb && pa != 0 && pb != 0, || {
        format!("PASIDs {pa} and {pb}")
    })
}

fn isolation_overlapping_iovas_shared() -> Outcome {
    let (a, b) = (tenant(&shared_type())?, tenant(&shared_type())?);
    let pa = std::cell::RefCell::new(Portal::start(&a.dev, 0)?);
    let pb = std::cell::RefCell::new(Portal::start(&b.dev, 0)?);
    check_pair(&a, &b, |t| {
        let p = if std::ptr::eq(t, &a) { &pa } else { &pb };
        p.borrow_mut().submit(&memmove());
        Ok(())
    })
}

fn isolation_overlapping_iovas_dedicated() -> Outcome {
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let (a, b) = (tenant(&ty)?, tenant(&ty)?);
    // Rings at IOVA + 0x8000 in each tenant's own memory.
    let qa = std::cell::RefCell::new(Queue::start(&a.dev, &a.mem, IOVA, 0, 0x8000, 64, 0)?);
    let qb = std::cell::RefCell::new(Queue::start(&b.dev, &b.mem, IOVA, 0, 0x8000, 64, 0)?);
    check_pair(&a, &b, |t| {
        let q = if std::ptr::eq(t, &a) { &qa } else { &qb };
        let mut q = q.borrow_mut();
        q.push(&memmove());
        q.ring();
        Ok(())
    })
}

fn isolation_doorbell_cannot_run_other_adi() -> Outcome {
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let (a, b) = (tenant(&ty)?, tenant(&ty)?);
    let mut qa = Queue::start(&a.dev, &a.mem, IOVA, 0, 0x8000, 64, 0)?;
    let mut qb = Queue::start(&b.dev, &b.mem, IOVA, 0, 0x8000, 64, 0)?;
    // B posts work but does not ring; A rings its own doorbell.
    b.mem.write(SRC, &[0xbb; 256]);
    qb.push(&memmove());
    qa.push(&Descriptor::new(Opcode::Nop, 0, 0, 0).with_completion(IOVA + COMPL as u64));
    qa.ring();
    dma::wait_completion(&a.mem, COMPL, TIMEOUT).ok_or("A's own descriptor did not run")?;
    std::thread::sleep(Duration::from_millis(200));
    ensure(
        b.mem.bytes(COMPL, 1)[0] == 0 && b.mem.bytes(DST, 1)[0] == 0,
        || "A's doorbell ran B's descriptor".into(),
    )?;
    let d = b.stat("descriptors")?;
    ensure(d == 0, || format!("B's descriptors counter {d}"))?;
    // B's own doorbell runs it.
    qb.ring();
    let c = dma::wait_completion(&b.mem, COMPL, TIMEOUT).ok_or("B's descriptor did not run")?;
    ensure(c.status == Status::Success, || format!("B: {c:?}"))
}

fn shared_many_adis() -> Outcome {
    let t = shared_type();
    let before = t.available()?;
    let n = 256;
    let mut made = Vec::new();
    for i in 0..n {
        let m = t.create()?.map_err(|e| format!("shared ADI #{i}: {e}"))?;
        made.push(Removed(m));
    }
    let during = t.available()?;
    ensure(during == before - n, || {
        format!("available {during} with {n} created, want {}", before - n)
    })?;
    let mut pasids: Vec<u64> = made
        .iter()
        .map(|m| sysfs::read_u64(m.0.dir().join("stats/pasid")))
        .collect::<Result<_, _>>()?;
    pasids.sort_unstable();
    pasids.dedup();
    ensure(pasids.len() == n as usize, || {
        format!("{} distinct PASIDs for {n} ADIs", pasids.len())
    })?;
    drop(made);
    let after = t.available()?;
    ensure(after == before, || {
        format!("available {after} after removing all, want {before}")
    })
}

/// After a reset, nothing a tenant left in its portal or doorbell page is
/// readable: the next user of the ADI starts from clean pages.
fn isolation_reset_clears_pages() -> Outcome {
    let t = tenant(&shared_type())?;
    let p = Portal::start(&t.dev, 0)?;
    // A descriptor written into slot 5, never submitted.
    p.page().write_bytes(5 * 64, &[0x5a; 64]);
    ensure(p.page().read_u32(5 * 64) == 0x5a5a_5a5a, || {
        "the portal page did not take the write".into()
    })?;
    t.dev.reset()?;
    let left = p.page().read_u32(5 * 64);
    ensure(left == 0, || {
        format!("portal page holds {left:#x} after reset")
    })?;
    let d = tenant(&MdevType::new(PF, "vdcm_sim-1q"))?;
    let q = Queue::start(&d.dev, &d.mem, IOVA, 0, 0x8000, 64, 0)?;
    drop(q);
    let bell = d
        .dev
        .mmap(dma::BAR2, 0, 4096)
        .map_err(|e| format!("mmap doorbell: {e}"))?;
    bell.write_u32(0, 0x1234);
    bell.write_u32(64, 0xabcd);
    d.dev.reset()?;
    let (tail, other) = (bell.read_u32(0), bell.read_u32(64));
    ensure(tail == 0 && other == 0, || {
        format!("doorbell page holds {tail:#x}/{other:#x} after reset")
    })
}

fn main() {
    let mut t = Reporter::default();
    t.point("shared_type_listed", shared_type_listed);
    t.point("shared_portal_memmove_irq", portal_memmove_irq);
    t.point(
        "isolation_overlapping_iovas_shared",
        isolation_overlapping_iovas_shared,
    );
    t.point(
        "isolation_overlapping_iovas_dedicated",
        isolation_overlapping_iovas_dedicated,
    );
    t.point(
        "isolation_doorbell_cannot_run_other_adi",
        isolation_doorbell_cannot_run_other_adi,
    );
    t.point("shared_256_adis_distinct_pasids", shared_many_adis);
    t.point("isolation_reset_clears_pages", isolation_reset_clears_pages);
    std::process::exit(t.exit_code());
}

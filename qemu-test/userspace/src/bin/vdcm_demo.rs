// SPDX-License-Identifier: GPL-2.0

//! What `make run` shows: ADIs composed on the simulated PF, opened
//! through iommufd, driven through their doorbells and portals, and their
//! counters. Every line starts with "[run]".

use std::time::Duration;
use std::time::Instant;

use vdcm_selftests::desc::Descriptor;
use vdcm_selftests::desc::Opcode;
use vdcm_selftests::desc::Status;
use vdcm_selftests::dma;
use vdcm_selftests::dma::DmaMem;
use vdcm_selftests::dma::Portal;
use vdcm_selftests::dma::Queue;
use vdcm_selftests::dma::Tenant;
use vdcm_selftests::mdev::MdevType;
use vdcm_selftests::sysfs;

const PF: &str = "vdcm_sim0";
const IOVA: u64 = 0x10_0000;
const RING: usize = 0;
const COMPL: usize = 0x1000;
const SRC: usize = 0x10000;
const DST: usize = 0x20000;
const MEM: usize = 0x30000;
const ROUNDS: usize = 200;
const TIMEOUT: Duration = Duration::from_secs(10);

fn say(line: impl std::fmt::Display) {
    println!("[run] {line}");
}

/// Posts `ROUNDS` MEMMOVE + CRC32C pairs through `submit` and checks them.
fn traffic(
    mem: &DmaMem,
    efd: &dma::EventFd,
    mut submit: impl FnMut(&[Descriptor]),
) -> Result<(u64, Duration), String> {
    let data: Vec<u8> = (0..4096u32).map(|i| (i * 13 + 5) as u8).collect();
    mem.write(SRC, &data);
    let want = crc32c::crc32c(&data);
    let start = Instant::now();
    let mut irqs = 0;
    for round in 0..ROUNDS {
        mem.write(COMPL, &[0u8; 64]);
        submit(&[
            Descriptor::new(Opcode::MemMove, 4096, IOVA + SRC as u64, IOVA + DST as u64)
                .with_completion(IOVA + COMPL as u64),
            Descriptor::new(Opcode::Crc32c, 4096, IOVA + DST as u64, 0)
                .with_completion(IOVA + COMPL as u64 + 32)
                .with_interrupt(),
        ]);
        let c = dma::wait_completion(mem, COMPL + 32, TIMEOUT)
            .ok_or_else(|| format!("round {round}: no completion"))?;
        if c.status != Status::Success || c.result != u64::from(want) {
            return Err(format!(
                "round {round}: CRC32C completion {c:?}, want {want:#x}"
            ));
        }
        irqs += dma::wait_eventfd(efd, TIMEOUT);
    }
    Ok((irqs, start.elapsed()))
}

fn show_stats(name: &str, t: &Tenant) -> Result<(), String> {
    let mut line = String::new();
    for s in [
        "pasid",
        "descriptors",
        "bytes",
        "faults",
        "interrupts",
        "traps_bar0",
        "traps_config",
        "traps_bar2",
        "resets",
        "vdcm_bytes",
        "pf_bytes",
    ] {
        let v = t.stat(s)?;
        line.push_str(&format!(" {s}={v}"));
    }
    say(format!("{name} stats:{line}"));
    Ok(())
}

/// Creates and opens an ADI of type `ty` (a `what` ADI) with memory mapped
/// and vector 0 on an eventfd, and says so.
fn open(ty: &MdevType, what: &str) -> Result<Tenant, String> {
    let t = Tenant::new(ty, MEM, IOVA)?;
    say(format!(
        "{what} ADI {} open through {}",
        t.mdev.0.uuid(),
        t.mdev.0.cdev()?.display()
    ));
    Ok(t)
}

fn run() -> Result<(), String> {
    for ty in ["vdcm_sim-1q", "vdcm_sim-4q", "vdcm_sim-shared"] {
        let t = MdevType::new(PF, ty);
        say(format!(
            "type {ty}: {} (available {})",
            sysfs::read(t.dir().join("description"))?,
            t.available()?
        ));
    }
    // A dedicated ADI: a queue pair of its own, rung through its doorbell.
    let ded = open(&MdevType::new(PF, "vdcm_sim-1q"), "dedicated")?;
    let mut q = Queue::start(&ded.dev, &ded.mem, IOVA, 0, RING, 64, 0)?;
    let (irqs, took) = traffic(&ded.mem, &ded.efd, |descs| {
        for d in descs {
            q.push(d);
        }
        q.ring();
    })?;
    say(format!(
        "dedicated ADI: {ROUNDS} x (4 KiB MEMMOVE + CRC32C) in {took:?}, {irqs} interrupts, data verified"
    ));
    show_stats("dedicated ADI", &ded)?;

    // A shared ADI: a portal on the PF's shared queue pair.
    let sh = open(&MdevType::new(PF, "vdcm_sim-shared"), "shared")?;
    let mut p = Portal::start(&sh.dev, 0)?;
    let (irqs, took) = traffic(&sh.mem, &sh.efd, |descs| {
        for d in descs {
            p.submit(d);
        }
    })?;
    say(format!(
        "shared ADI: {ROUNDS} x (4 KiB MEMMOVE + CRC32C) in {took:?}, {irqs} interrupts, data verified"
    ));
    show_stats("shared ADI", &sh)?;
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        say(format!("FAILED: {e}"));
        std::process::exit(1);
    }
    say("done: ADIs removed");
}

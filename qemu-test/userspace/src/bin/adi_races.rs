// SPDX-License-Identifier: GPL-2.0

//! Concurrency: threads creating and removing ADIs, opening and closing
//! them, removing them while open and busy, resetting them (ioctl and FLR)
//! while other threads enable and disable queues, ring doorbells and
//! rewire interrupts, all at once for a bounded time. Afterwards the PF's
//! `available_instances` must be back where it started and every ADI
//! created must be gone.
//!
//!     adi_races [--secs N]        the race points (default 20 s)
//!     adi_races hold UUID SECS    opens the ADI UUID, prints "held",
//!                                 keeps it open SECS seconds, closes it,
//!                                 prints "closed" (used by check.sh to
//!                                 unload the PF under an open ADI)
//!
//! Expects vdcm.ko and vdcm_sim.ko loaded with the defaults.

use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use vdcm_selftests::abi;
use vdcm_selftests::adv;
use vdcm_selftests::adv::Rng;
use vdcm_selftests::desc::Descriptor;
use vdcm_selftests::desc::Opcode;
use vdcm_selftests::desc::Status;
use vdcm_selftests::dma;
use vdcm_selftests::dma::DmaMem;
use vdcm_selftests::mdev::Mdev;
use vdcm_selftests::mdev::MdevType;
use vdcm_selftests::sysfs;
use vdcm_selftests::tap::ensure;
use vdcm_selftests::tap::note;
use vdcm_selftests::tap::Reporter;
use vdcm_selftests::vfio::CdevDevice;

const PF: &str = "vdcm_sim0";
const IOVA: u64 = 0x10_0000;
const MEM: usize = 0x10000;
const PAGE: usize = 4096;
const CFG: u64 = 7 << 40;

/// What every thread shares: the stop flag, the iteration counters, the
/// ADIs created and the unexpected errors seen.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    counts: Mutex<Vec<(&'static str, u64)>>,
    created: Mutex<Vec<String>>,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn error(&self, e: String) {
        let mut errs = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errs.len() < 20 {
            errs.push(e);
        }
    }

    fn done(&self, name: &'static str, n: u64) {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, n));
    }

    fn create(&self, ty: &str) -> Result<Option<Mdev>, String> {
        match MdevType::new(PF, ty).create()? {
            Ok(m) => {
                self.created
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(m.uuid());
                Ok(Some(m))
            }
            // Other threads hold queue pairs: fine, try again later.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => Ok(None),
            Err(e) => Err(format!("create {ty}: {e}")),
        }
    }

    fn running(&self) -> bool {
        !self.stop.load(Relaxed)
    }
}

/// Creates and removes 1q ADIs, opening some of them in between.
fn creator(s: &Shared, seed: u64) {
    let mut r = Rng::new(seed);
    let mut n = 0;
    while s.running() {
        match s.create("vdcm_sim-1q") {
            Ok(Some(m)) => {
                if r.one_in(2) {
                    match m.cdev().and_then(CdevDevice::open) {
                        Ok(d) => {
                            if let Err(e) = d.info() {
                                s.error(format!("creator: {e}"));
                            }
                        }
                        Err(e) => s.error(format!("creator: open new ADI: {e}")),
                    }
                }
                if let Err(e) = m.remove() {
                    s.error(format!("creator: {e}"));
                }
                n += 1;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => s.error(format!("creator: {e}")),
        }
    }
    s.done("create_remove", n);
}

/// Opens and closes one ADI, which nothing else opens: every open must
/// succeed.
fn opener(s: &Shared, m: &Mdev) {
    let mut n = 0;
    let cdev = match m.cdev() {
        Ok(c) => c,
        Err(e) => return s.error(format!("opener: {e}")),
    };
    while s.running() {
        match CdevDevice::open(&cdev) {
            Ok(d) => {
                if let Err(e) = d.info().and_then(|_| d.enable()) {
                    s.error(format!("opener: {e}"));
                }
            }
            Err(e) => s.error(format!("opener: {e}")),
        }
        n += 1;
    }
    s.done("open_close", n);
}

/// Creates an ADI, opens it, runs its queue, and removes it from another
/// thread while it is open; closes after a moment, so the removal (which
/// waits) completes.
fn remove_busy(s: &Shared, seed: u64) {
    let mut r = Rng::new(seed);
    let mut n = 0;
    let mem = match DmaMem::new(MEM) {
        Ok(m) => m,
        Err(e) => return s.error(format!("remove_busy: {e}")),
    };
    while s.running() {
        let m = match s.create("vdcm_sim-1q") {
            Ok(Some(m)) => m,
            Ok(None) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => return s.error(format!("remove_busy: {e}")),
        };
        let result = (|| -> Result<(), String> {
            let dev = CdevDevice::open(m.cdev()?)?;
            dma::map(&dev, &mem, IOVA)?;
            let mut q = dma::Queue::start(&dev, &mem, IOVA, 0, 0, 64, 0)?;
            let dir = m.dir().to_path_buf();
            let remover = std::thread::spawn(move || Mdev::from_dir(dir).remove());
            for _ in 0..r.below(32) {
                q.push(&dma::nop());
                q.ring();
            }
            std::thread::sleep(Duration::from_millis(r.below(200)));
            drop(q);
            drop(dev);
            remover.join().map_err(|_| "remover panicked".to_string())?
        })();
        if let Err(e) = result {
            s.error(format!("remove_busy: {e}"));
            let _ = m.remove();
        }
        n += 1;
    }
    s.done("remove_while_busy", n);
}

/// Tries to open an ADI that another thread keeps removing and creating
/// again under the same UUID: open races remove.
fn open_vs_remove(s: &Shared, seed: u64) {
    let mut r = Rng::new(seed);
    let uuid = match sysfs::new_uuid() {
        Ok(u) => u,
        Err(e) => return s.error(e),
    };
    let ty = MdevType::new(PF, "vdcm_sim-1q");
    let m = Mdev::new(&uuid);
    let stop_open = Arc::new(AtomicBool::new(false));
    let opens = Arc::new(AtomicU64::new(0));
    let t = {
        let (stop, opens, m) = (stop_open.clone(), opens.clone(), Mdev::new(&uuid));
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                // Fails while the ADI is absent or on its way out.
                if let Ok(d) = m.cdev().and_then(CdevDevice::open) {
                    let _ = d.info();
                    opens.fetch_add(1, Relaxed);
                }
            }
        })
    };
    let mut n = 0;
    while s.running() {
        match std::fs::write(ty.dir().join("create"), &uuid) {
            Ok(()) => {
                s.created
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(uuid.clone());
                std::thread::sleep(Duration::from_millis(r.below(20)));
                if let Err(e) = m.remove() {
                    s.error(format!("open_vs_remove: {e}"));
                }
                n += 1;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => s.error(format!("open_vs_remove: create {uuid}: {e}")),
        }
    }
    stop_open.store(true, Relaxed);
    let _ = t.join();
    s.done("open_vs_remove", n);
    s.done("open_vs_remove_opens", opens.load(Relaxed));
}

/// One 4q ADI opened once and shared by the threads below.
struct Busy {
    dev: CdevDevice,
    mem: DmaMem,
    bar2: adv::RawMap,
}

// SAFETY: the threads touch `mem` and `bar2` only through volatile loads
// and stores of plain bytes and words (the device writes them behind our
// back anyway); the fds are used through system calls only.
unsafe impl Sync for Busy {}

/// Resets the shared device over and over: the ioctl, DEVCTL.reset, FLR.
fn resetter(s: &Shared, b: &Busy, seed: u64) {
    let mut r = Rng::new(seed);
    let exp = match adv::find_cap(&b.dev.device, CFG, 0x10) {
        Ok(Some(e)) => e,
        other => return s.error(format!("resetter: PCIe capability {other:?}")),
    };
    let mut n = 0;
    while s.running() {
        let res = match r.below(3) {
            0 => b.dev.reset(),
            1 => b
                .dev
                .write_u32(dma::BAR0, abi::DEVCTL, abi::DEVCTL_RESET)
                .or(Ok(())),
            _ => b
                .dev
                .device
                .write_all_at(&(1u16 << 15).to_le_bytes(), CFG + exp + 8)
                .map_err(|e| format!("FLR: {e}")),
        };
        if let Err(e) = res {
            s.error(format!("resetter: {e}"));
        }
        if let Err(e) = b.dev.enable() {
            s.error(format!("resetter: {e}"));
        }
        std::thread::sleep(Duration::from_millis(r.below(5)));
        n += 1;
    }
    s.done("reset", n);
}

/// Enables and disables the shared device's queues and rings their
/// doorbells with NOPs. BAR0 accesses may fail with EIO while a reset has
/// memory space off: that is expected.
fn queues(s: &Shared, b: &Busy, seed: u64) {
    let mut r = Rng::new(seed);
    let mut tails = [0u32; 4];
    let mut n = 0;
    while s.running() {
        let q = r.below(4);
        let blk = abi::queue(q as u16);
        let _ = b.dev.write_u32(dma::BAR0, abi::DEVCTL, abi::DEVCTL_ENABLE);
        match r.below(4) {
            0 => {
                let _ = b
                    .dev
                    .write_u64(dma::BAR0, blk + abi::Q_RING_BASE, IOVA + 0x1000 * q);
                let _ = b.dev.write_u32(dma::BAR0, blk + abi::Q_RING_SIZE, 64);
                let _ = b.dev.write_u32(
                    dma::BAR0,
                    blk + abi::Q_CONTROL,
                    abi::CONTROL_ENABLE | (q as u32) << abi::CONTROL_VECTOR_SHIFT,
                );
                tails[q as usize] = 0;
            }
            1 => {
                let _ = b.dev.write_u32(dma::BAR0, blk + abi::Q_CONTROL, 0);
            }
            _ => {
                let k = r.below(8) as u32 + 1;
                for _ in 0..k {
                    let slot = tails[q as usize] % 64;
                    let d = Descriptor::new(Opcode::Nop, 0, 0, 0)
                        .with_completion(IOVA + 0x8000 + 32 * u64::from(slot))
                        .with_interrupt();
                    b.mem
                        .write(0x1000 * q as usize + 64 * slot as usize, &d.to_bytes());
                    tails[q as usize] = tails[q as usize].wrapping_add(1);
                }
                std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                b.bar2.store_u32(q as usize * PAGE, tails[q as usize]);
            }
        }
        n += 1;
    }
    s.done("queue_enable_disable_doorbell", n);
}

/// Rewires and fires the shared device's interrupts.
fn irqs(s: &Shared, b: &Busy, seed: u64) {
    let mut r = Rng::new(seed);
    let efds: Vec<_> = (0..5).filter_map(|_| dma::eventfd().ok()).collect();
    let mut n = 0;
    while s.running() && efds.len() == 5 {
        let v = r.below(5) as u32;
        let res = match r.below(4) {
            0 => dma::set_vector_eventfd(&b.dev.vfio, v, &efds[v as usize]),
            1 => dma::set_irqs_raw(
                &b.dev.device,
                dma::IRQ_SET_EVENTFD_TRIGGER,
                dma::MSIX_INDEX,
                v,
                1,
                &(-1i32).to_le_bytes(),
                None,
            )
            .map_err(|e| e.to_string()),
            2 => dma::set_irqs_raw(
                &b.dev.device,
                r.pick(&[dma::IRQ_SET_NONE_MASK, dma::IRQ_SET_NONE_UNMASK]),
                dma::MSIX_INDEX,
                v,
                1,
                &[],
                None,
            )
            .map_err(|e| e.to_string()),
            _ => dma::set_irqs_raw(
                &b.dev.device,
                dma::IRQ_SET_NONE_TRIGGER,
                dma::MSIX_INDEX,
                0,
                0,
                &[],
                None,
            )
            .map_err(|e| e.to_string()),
        };
        if let Err(e) = res {
            s.error(format!("irqs: {e}"));
        }
        for e in &efds {
            dma::wait_eventfd(e, Duration::ZERO);
        }
        n += 1;
    }
    s.done("set_irqs", n);
}

/// The ADIs of the PF that exist now: UUID-named entries of its sysfs
/// directory.
fn pf_adis() -> Vec<String> {
    std::fs::read_dir(format!("/sys/class/mdev_bus/{PF}"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() == 36 && n.matches('-').count() == 4)
                .collect()
        })
        .unwrap_or_default()
}

fn hold(uuid: &str, secs: u64) -> i32 {
    let m = Mdev::new(uuid);
    let dev = match m.cdev().and_then(CdevDevice::open) {
        Ok(d) => d,
        Err(e) => {
            println!("open failed: {e}");
            return 1;
        }
    };
    println!("held");
    std::thread::sleep(Duration::from_secs(secs));
    let info = dev.info();
    drop(dev);
    println!(
        "closed (GET_INFO while held: {:?})",
        info.map(|i| i.num_regions)
    );
    0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("hold") {
        let uuid = args.get(2).cloned().unwrap_or_default();
        let secs = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
        std::process::exit(hold(&uuid, secs));
    }
    let secs: u64 = args
        .iter()
        .position(|a| a == "--secs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(20);
    let seed = adv::clock_seed();
    let mut t = Reporter::default();
    let (t1, t4) = (
        MdevType::new(PF, "vdcm_sim-1q"),
        MdevType::new(PF, "vdcm_sim-4q"),
    );
    let (a1, a4) = (t1.available().unwrap_or(0), t4.available().unwrap_or(0));
    let before = pf_adis();
    let s = Shared::default();
    let setup = (|| -> Result<(Mdev, Mdev), String> {
        let quiet = s.create("vdcm_sim-1q")?.ok_or("no room for an ADI")?;
        let busy = s.create("vdcm_sim-4q")?.ok_or("no room for a 4q ADI")?;
        Ok((quiet, busy))
    })();
    let start = Instant::now();
    t.point("race_all_threads", || {
        let (quiet, busy_m) = setup?;
        let busy = (|| -> Result<Busy, String> {
            let dev = CdevDevice::open(busy_m.cdev()?)?;
            let mem = DmaMem::new(MEM).map_err(|e| e.to_string())?;
            dma::map(&dev, &mem, IOVA)?;
            dev.enable()?;
            let bar2 = adv::mmap_raw(
                &dev.device,
                2 << 40,
                4 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
            )
            .map_err(|e| format!("mmap BAR2: {e}"))?;
            Ok(Busy { dev, mem, bar2 })
        })()?;
        std::thread::scope(|sc| {
            let s = &s;
            let b = &busy;
            sc.spawn(move || creator(s, seed));
            sc.spawn(move || creator(s, seed ^ 1));
            sc.spawn(|| opener(s, &quiet));
            sc.spawn(move || remove_busy(s, seed ^ 2));
            sc.spawn(move || open_vs_remove(s, seed ^ 3));
            sc.spawn(move || resetter(s, b, seed ^ 4));
            sc.spawn(move || queues(s, b, seed ^ 5));
            sc.spawn(move || queues(s, b, seed ^ 6));
            sc.spawn(move || irqs(s, b, seed ^ 7));
            std::thread::sleep(Duration::from_secs(secs));
            s.stop.store(true, Relaxed);
        });
        // The shared device survived: it still answers and its queue runs.
        drop(busy);
        let after = (|| -> Result<(), String> {
            let dev = CdevDevice::open(busy_m.cdev()?)?;
            let mem = DmaMem::new(MEM).map_err(|e| e.to_string())?;
            dma::map(&dev, &mem, IOVA)?;
            let mut q = dma::Queue::start(&dev, &mem, IOVA, 0, 0, 64, 0)?;
            q.push(&Descriptor::new(Opcode::Nop, 0, 0, 0).with_completion(IOVA + 0x8000));
            q.ring();
            let c = dma::wait_completion(&mem, 0x8000, Duration::from_secs(10))
                .ok_or("NOP after the races did not complete")?;
            ensure(c.status == Status::Success, || format!("NOP: {c:?}"))
        })();
        quiet.remove()?;
        busy_m.remove()?;
        let counts = s.counts.lock().unwrap_or_else(|p| p.into_inner());
        let total: u64 = counts.iter().map(|c| c.1).sum();
        note(format!(
            "seed {seed}, {:.1} s: {total} iterations: {}",
            start.elapsed().as_secs_f64(),
            counts
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        after?;
        let errors = s.errors.lock().unwrap_or_else(|p| p.into_inner());
        ensure(errors.is_empty(), || errors.join("\n"))?;
        ensure(counts.len() == 10, || {
            format!("{} of 10 thread counts reported", counts.len())
        })
    });
    t.point("race_available_instances_restored", || {
        let (n1, n4) = (t1.available()?, t4.available()?);
        ensure(n1 == a1 && n4 == a4, || {
            format!("available_instances 1q {a1} -> {n1}, 4q {a4} -> {n4}")
        })
    });
    t.point("race_every_adi_removed", || {
        let created = s.created.lock().unwrap_or_else(|p| p.into_inner());
        let left: Vec<&String> = created.iter().filter(|u| Mdev::new(u).exists()).collect();
        ensure(left.is_empty(), || format!("still there: {left:?}"))?;
        let now = pf_adis();
        ensure(now == before, || {
            format!("ADIs of {PF}: {before:?} before, {now:?} after")
        })?;
        note(format!("{} ADIs created and removed", created.len()));
        ensure(!created.is_empty(), || "no ADI was created".into())
    });
    std::process::exit(t.exit_code());
}

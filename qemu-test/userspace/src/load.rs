// SPDX-License-Identifier: GPL-2.0

//! Load for the engine's scheduler, shared by `adi_qos` (the QoS test)
//! and `vdcm_bench` (its QoS figures): an ADI's `qos/` knobs, ADIs whose
//! rings (or portals) are kept full of NOPs ([`Feeder`]), from the calling
//! thread ([`drive`]) or from a second one while the caller measures
//! ([`saturate`]), and the rates the engine gives them ([`measure`],
//! [`measure_each`]).
//!
//! A [`Feeder`] learns how far the engine got in one of two ways:
//!
//! - **by counter** ([`Feeder::new`]): its ring is zero bytes (a NOP
//!   without completion record or interrupt) and a refill reads the ADI's
//!   `stats/descriptors`. A sysfs read of a counter waits for the engine's
//!   table lock, so it costs up to a poll of the engine: fine for a few
//!   ADIs, too slow for dozens.
//! - **by marks** ([`Feeder::marked`], [`Feeder::portal`]): some
//!   descriptors carry a completion record and the refill reads memory,
//!   no system call. A 1q ring marks every [`MARK_EVERY`]th slot; a
//!   shared ADI's portal (63 slots, fewer than one round-robin quantum of
//!   64) marks every slot: the engine runs a full portal dry in one poll,
//!   so it stays saturated only if it is refilled between the engine's
//!   polls, descriptor by descriptor as they complete.

use std::fs;
use std::io;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::fence;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;
use std::time::Instant;

use crate::abi;
use crate::desc::Descriptor;
use crate::desc::Status;
use crate::desc::COMPLETION_SIZE;
use crate::desc::DESC_SIZE;
use crate::dma;
use crate::dma::DmaMem;
use crate::dma::Portal;
use crate::dma::Queue;
use crate::dma::Tenant;
use crate::mdev::Mdev;
use crate::mdev::MdevType;
use crate::mdev::Removed;
use crate::vfio;
use crate::vfio::CdevDevice;

type Res<T> = Result<T, String>;

/// IOVA a feeder's memory is mapped at; its ring starts there.
pub const IOVA: u64 = 0x10_0000;
/// The saturating ring: the largest the ABI allows. Under TCG the engine
/// runs roughly 100k-300k NOPs/s, so 4096 of them last at least ~13 ms,
/// several times [`REFILL_EVERY`] plus a sysfs read: the ring never runs
/// dry while it is meant to be saturated.
pub const RING_SIZE: u32 = 1 << abi::MAX_RING_ORDER;
/// Bytes of a full ring.
pub const RING_BYTES: usize = RING_SIZE as usize * DESC_SIZE;
/// Slots a refill leaves empty. A refill by counter computes the ring's
/// head from `stats/descriptors`, which may count a descriptor before the
/// head moves past it; publishing `tail - head > RING_SIZE` would stop the
/// queue.
pub const RING_SLACK: u32 = 64;
/// How often a saturating loop tops rings up: a sixth of the time the
/// fastest ring takes to drain (see [`RING_SIZE`]), and rare enough that
/// its sysfs reads cost the engine little CPU.
pub const REFILL_EVERY: Duration = Duration::from_millis(2);
/// A marked ring's slots `k * MARK_EVERY - 1` carry a completion record.
/// `RING_SIZE - RING_SLACK` is a multiple of it, so every tail a refill
/// publishes ends on a mark.
pub const MARK_EVERY: u32 = 64;
/// Where a marked ring's records are (offset in its memory), after the
/// ring.
pub const MARKS: usize = RING_BYTES;
/// The memory a marked 1q feeder needs: the ring and its records.
pub const MARKED_MEM: usize = RING_BYTES + 0x1000;
/// The memory a portal feeder needs: a record per portal slot.
pub const PORTAL_MEM: usize = 0x1000;

// ---------------------------------------------------------------------
// sysfs: the knobs and the PF's figures

/// `qos/<knob>` of ADI `m`.
pub fn qos_path(m: &Mdev, knob: &str) -> PathBuf {
    m.dir().join("qos").join(knob)
}

/// `/sys/class/mdev_bus/<pf>/qos/<name>`.
pub fn pf_path(pf: &str, name: &str) -> PathBuf {
    Path::new("/sys/class/mdev_bus")
        .join(pf)
        .join("qos")
        .join(name)
}

/// Reads a decimal attribute that must read as digits and a newline.
pub fn read_strict(path: &Path) -> Res<u64> {
    let text = fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    text.strip_suffix('\n')
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "{} reads {text:?}: not a decimal number and a newline",
                path.display()
            )
        })
}

/// ADI `m`'s knob `k`.
pub fn qos_get(m: &Mdev, k: &str) -> Res<u64> {
    read_strict(&qos_path(m, k))
}

/// The PF's `qos/capacity`: what the guarantees of its ADIs may add up to.
pub fn capacity(pf: &str) -> Res<u64> {
    read_strict(&pf_path(pf, "capacity"))
}

/// The PF's `qos/guaranteed_left`.
pub fn guaranteed_left(pf: &str) -> Res<u64> {
    read_strict(&pf_path(pf, "guaranteed_left"))
}

/// Writes `text` to a file in one write(2), the raw error on failure. (A
/// zero-length write never reaches a sysfs store: sysfs returns 0 first.)
pub fn write_raw(path: &Path, text: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    let n = f.write(text.as_bytes())?;
    if n != text.len() {
        return Err(io::Error::other(format!(
            "short write: {n} of {} bytes",
            text.len()
        )));
    }
    Ok(())
}

/// Writes `text` to ADI `m`'s knob `k`, the raw error on failure.
pub fn qos_try_set(m: &Mdev, k: &str, text: &str) -> io::Result<()> {
    write_raw(&qos_path(m, k), text)
}

/// Sets knob `k` of ADI `m` to `v` and checks it reads back.
pub fn qos_set(m: &Mdev, k: &str, v: u64) -> Res<()> {
    qos_try_set(m, k, &format!("{v}\n")).map_err(|e| format!("write {v} to qos/{k}: {e}"))?;
    let got = qos_get(m, k)?;
    if got != v {
        return Err(format!("qos/{k} reads {got} after writing {v}"));
    }
    Ok(())
}

/// Knobs set through it go back to the values they had, in the reverse
/// order, on [`KnobGuard::restore`] or when it is dropped (so a guarantee
/// set after a max_rate is lowered before the max_rate goes back).
#[derive(Default)]
pub struct KnobGuard {
    /// (the ADI's sysfs directory, knob, value before the first set).
    saved: Vec<(PathBuf, String, u64)>,
}

impl KnobGuard {
    /// Sets knob `k` of `m` to `v` (read back), remembering its value
    /// before the guard first changed it.
    pub fn set(&mut self, m: &Mdev, k: &str, v: u64) -> Res<()> {
        let dir = m.dir().to_path_buf();
        if !self.saved.iter().any(|(d, n, _)| *d == dir && n == k) {
            let old = qos_get(m, k)?;
            self.saved.push((dir, k.to_string(), old));
        }
        qos_set(m, k, v)
    }

    /// Puts every knob back; the first failure, after trying them all.
    pub fn restore(&mut self) -> Res<()> {
        let mut first = Ok(());
        while let Some((dir, k, v)) = self.saved.pop() {
            let r = qos_set(&Mdev::from_dir(dir.clone()), &k, v)
                .map_err(|e| format!("restoring {}: {e}", dir.display()));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl Drop for KnobGuard {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

// ---------------------------------------------------------------------
// ADIs

/// Creates an ADI of type `ty` on `pf`, removed when the guard drops.
pub fn create(pf: &str, ty: &str) -> Res<Removed> {
    MdevType::new(pf, ty)
        .create()?
        .map(Removed)
        .map_err(|e| format!("create {ty} on {pf}: {e}"))
}

/// Opens the created ADI `mdev`, maps `len` bytes at [`IOVA`] and puts
/// vector 0 on an eventfd (as `Tenant::new`, for an ADI whose knobs were
/// set before it was opened). On failure `mdev` is removed.
pub fn open(mdev: Removed, len: usize) -> Res<Tenant> {
    let dev = CdevDevice::open(mdev.0.cdev()?)?;
    let mem = DmaMem::new(len).map_err(|e| format!("mmap: {e}"))?;
    dma::map(&dev, &mem, IOVA)?;
    let efd = dma::eventfd().map_err(|e| format!("eventfd: {e}"))?;
    dma::set_vector_eventfd(&dev.vfio, 0, &efd)?;
    Ok(Tenant {
        dev,
        mem,
        efd,
        mdev,
    })
}

/// Queue 0's `STATUS`, for error messages.
pub fn queue_status(dev: &CdevDevice) -> String {
    match dev.read_u32(dma::BAR0, abi::queue(0) + abi::Q_STATUS) {
        Ok(s) => format!("queue STATUS {s:#x}"),
        Err(e) => format!("queue STATUS unreadable: {e}"),
    }
}

// ---------------------------------------------------------------------
// Feeders

/// Where a feeder's descriptors go.
enum Sink {
    /// A 1q ADI's ring: its doorbell page.
    Ring(vfio::Mapping),
    /// A shared ADI's portal.
    Portal(Portal),
}

impl Sink {
    /// The page the tail is published in, and the tail's offset there.
    fn tail(&self) -> (&vfio::Mapping, usize) {
        match self {
            Sink::Ring(bell) => (bell, abi::DOORBELL_TAIL),
            Sink::Portal(p) => (p.page(), abi::PORTAL_TAIL),
        }
    }
}

/// How a feeder learns what the engine ran.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Progress {
    /// `stats/descriptors` minus its value when the ring started.
    Counter { base: u64 },
    /// Completion records at offset `at` of the memory, `count` of them,
    /// one per `every` descriptors.
    Marks { at: usize, every: u32, count: u32 },
}

/// The refill state of a feeder: plain data, so that the thread of
/// [`saturate`] can own it while the caller reads the ADI's counters.
#[derive(Debug)]
struct State {
    progress: Progress,
    /// Slots of the ring or portal, and how many a refill leaves empty.
    size: u32,
    slack: u32,
    /// Descriptors published since the ring started.
    submitted: u64,
    /// Descriptors known to have run (by marks; by counter, the last
    /// reading).
    done: u64,
}

impl State {
    /// Advances `done` over the marks written since the last call
    /// (clearing them for their next run); fails on a record that is not
    /// a success.
    fn scan_marks(&mut self, mem: &DmaMem) -> Res<()> {
        let Progress::Marks { at, every, count } = self.progress else {
            return Ok(());
        };
        let every = u64::from(every);
        while self.done < self.submitted {
            let k = ((self.done / every) % u64::from(count)) as usize;
            let off = at + k * COMPLETION_SIZE;
            let mut st = [0u8; 1];
            mem.read(off, &mut st);
            if st[0] == 0 {
                break;
            }
            if st[0] != Status::Success as u8 {
                return Err(format!(
                    "completion record {k} of a saturating NOP: status {}",
                    st[0]
                ));
            }
            mem.write(off, &[0u8; COMPLETION_SIZE]);
            self.done += every;
        }
        Ok(())
    }

    /// Tops the ring up to `size - slack` pending descriptors, given that
    /// `done` have run.
    fn publish(&mut self, tail: (&vfio::Mapping, usize)) {
        let want = self.done + u64::from(self.size - self.slack);
        if want > self.submitted {
            self.submitted = want;
            // The records cleared above, and the portal slots, before the
            // tail that lets the engine at them. (A portal's slot index is
            // `tail % 63`: it would break when the u32 tail wraps, after
            // 2^32 descriptors, hours of the engine.)
            fence(SeqCst);
            tail.0.write_u32(tail.1, self.submitted as u32);
        }
    }
}

/// An ADI whose ring (or portal) of NOPs is kept full on demand: the rate
/// the engine gives it is its `stats/descriptors` over time.
pub struct Feeder {
    /// Its doorbell page or portal (declared first: unmapped before the
    /// device closes).
    sink: Sink,
    /// The opened ADI.
    pub t: Tenant,
    state: State,
    /// Whether [`drive`] and [`saturate`] keep this one full.
    pub on: bool,
}

impl Feeder {
    /// The 1q ADI opened as `t` (its memory at least [`RING_BYTES`]), its
    /// ring of zero bytes (NOPs without completion) at offset 0, refilled
    /// by counter.
    pub fn new(t: Tenant) -> Res<Self> {
        if t.mem.len() < RING_BYTES {
            return Err(format!("feeder memory {:#x} < the ring", t.mem.len()));
        }
        let bell = Self::start_ring(&t)?;
        let base = t.stat("descriptors")?;
        Ok(Feeder {
            sink: Sink::Ring(bell),
            t,
            state: State {
                progress: Progress::Counter { base },
                size: RING_SIZE,
                slack: RING_SLACK,
                submitted: 0,
                done: 0,
            },
            on: true,
        })
    }

    /// The 1q ADI opened as `t` (its memory at least [`MARKED_MEM`]), its
    /// ring at offset 0 refilled by marks: every [`MARK_EVERY`]th NOP has
    /// a completion record at [`MARKS`].
    pub fn marked(t: Tenant) -> Res<Self> {
        if t.mem.len() < MARKED_MEM {
            return Err(format!(
                "marked feeder memory {:#x} < {MARKED_MEM:#x}",
                t.mem.len()
            ));
        }
        let count = RING_SIZE / MARK_EVERY;
        for k in 0..count as usize {
            let slot = (k + 1) * MARK_EVERY as usize - 1;
            let rec = IOVA + (MARKS + k * COMPLETION_SIZE) as u64;
            dma::write_desc(&t.mem, slot * DESC_SIZE, &dma::nop().with_completion(rec));
        }
        t.mem
            .write(MARKS, &vec![0u8; count as usize * COMPLETION_SIZE]);
        let bell = Self::start_ring(&t)?;
        Ok(Feeder {
            sink: Sink::Ring(bell),
            t,
            state: State {
                progress: Progress::Marks {
                    at: MARKS,
                    every: MARK_EVERY,
                    count,
                },
                size: RING_SIZE,
                slack: RING_SLACK,
                submitted: 0,
                done: 0,
            },
            on: true,
        })
    }

    /// The shared ADI opened as `t` (its memory at least [`PORTAL_MEM`]):
    /// every slot of its portal holds a NOP whose completion record (at
    /// offset `32 * slot`) says it ran, and a refill republishes the slots
    /// that completed.
    pub fn portal(t: Tenant) -> Res<Self> {
        let slots = abi::PORTAL_SLOTS;
        if t.mem.len() < slots as usize * COMPLETION_SIZE {
            return Err(format!("portal feeder memory {:#x}", t.mem.len()));
        }
        t.mem.write(0, &vec![0u8; slots as usize * COMPLETION_SIZE]);
        let p = Portal::start(&t.dev, 0)?;
        for s in 0..slots as usize {
            let d: Descriptor = dma::nop().with_completion(IOVA + (s * COMPLETION_SIZE) as u64);
            p.page().write_bytes(s * DESC_SIZE, &d.to_bytes());
        }
        Ok(Feeder {
            sink: Sink::Portal(p),
            t,
            state: State {
                progress: Progress::Marks {
                    at: 0,
                    every: 1,
                    count: slots,
                },
                size: slots,
                slack: 0,
                submitted: 0,
                done: 0,
            },
            on: true,
        })
    }

    /// The ADI.
    pub fn mdev(&self) -> &Mdev {
        &self.t.mdev.0
    }

    /// Whether it is a shared ADI's portal.
    pub fn is_portal(&self) -> bool {
        matches!(self.sink, Sink::Portal(_))
    }

    /// Programs and enables queue 0 with the ring at offset 0 (the library
    /// does it; its own doorbell mapping goes), maps the doorbell.
    fn start_ring(t: &Tenant) -> Res<vfio::Mapping> {
        drop(Queue::start(&t.dev, &t.mem, IOVA, 0, 0, RING_SIZE, 0)?);
        t.dev
            .mmap(dma::BAR2, 0, abi::DOORBELL_PAGE as usize)
            .map_err(|e| format!("mmap doorbell: {e}"))
    }

    /// Starts a 1q ring refilled by counter again from slot 0 (after a
    /// reset).
    pub fn restart(&mut self) -> Res<()> {
        if !matches!(self.state.progress, Progress::Counter { .. }) {
            return Err("restart: only a ring refilled by counter restarts".into());
        }
        self.sink = Sink::Ring(Self::start_ring(&self.t)?);
        self.state.submitted = 0;
        self.state.done = 0;
        self.state.progress = Progress::Counter {
            base: self.t.stat("descriptors")?,
        };
        Ok(())
    }

    /// The ADI's `stats/descriptors`.
    pub fn count(&self) -> Res<u64> {
        self.t.stat("descriptors")
    }

    /// Learns what ran since the last call.
    fn progress(&mut self) -> Res<()> {
        match self.state.progress {
            Progress::Counter { base } => {
                self.state.done = self.count()?.saturating_sub(base);
                Ok(())
            }
            Progress::Marks { .. } => self.state.scan_marks(&self.t.mem),
        }
    }

    /// Tops the ring up to `size - slack` pending descriptors.
    pub fn refill(&mut self) -> Res<()> {
        self.progress()?;
        self.state.publish(self.sink.tail());
        Ok(())
    }

    /// Closes the ring or portal (its mapping goes first) and gives the
    /// opened ADI back.
    pub fn into_tenant(self) -> Tenant {
        let Feeder { sink, t, .. } = self;
        drop(sink);
        t
    }

    /// Whether everything published has run (refilling nothing).
    pub fn idle(&mut self) -> Res<bool> {
        self.progress()?;
        Ok(self.state.done >= self.state.submitted)
    }
}

/// Keeps the rings of the feeders that are `on` full for `dur`, from this
/// thread.
pub fn drive(fs: &mut [Feeder], dur: Duration) -> Res<()> {
    let end = Instant::now() + dur;
    loop {
        for f in fs.iter_mut().filter(|f| f.on) {
            f.refill()?;
        }
        if Instant::now() >= end {
            return Ok(());
        }
        std::thread::sleep(REFILL_EVERY);
    }
}

/// Drives the feeders for `dur`; returns each one's descriptors per second
/// over it (the ones that are off too: their rings drain), all over the
/// one window.
pub fn measure(fs: &mut [Feeder], dur: Duration) -> Res<Vec<f64>> {
    let c0 = fs.iter().map(Feeder::count).collect::<Res<Vec<_>>>()?;
    let t0 = Instant::now();
    drive(fs, dur)?;
    let c1 = fs.iter().map(Feeder::count).collect::<Res<Vec<_>>>()?;
    let secs = t0.elapsed().as_secs_f64();
    Ok(c0
        .iter()
        .zip(c1)
        .map(|(a, b)| b.saturating_sub(*a) as f64 / secs)
        .collect())
}

/// [`measure`] of one feeder.
pub fn measure_one(f: &mut Feeder, dur: Duration) -> Res<f64> {
    Ok(measure(std::slice::from_mut(f), dur)?[0])
}

/// Waits until every feeder of `fs` has run what it was given (none is
/// refilled), at most `timeout`.
pub fn drain(fs: &mut [Feeder], timeout: Duration) -> Res<()> {
    let start = Instant::now();
    loop {
        let mut busy = Vec::new();
        for (i, f) in fs.iter_mut().enumerate() {
            if !f.idle()? {
                busy.push(i);
            }
        }
        if busy.is_empty() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            // What the stuck ones looked like, to tell a stopped queue
            // (faults, invalid, STATUS) from one the engine left alone.
            let why: Vec<String> = busy
                .iter()
                .map(|&i| {
                    let f = &fs[i];
                    let stat = |k: &str| f.t.stat(k).map_or_else(|e| e, |v| v.to_string());
                    format!(
                        "#{i}: {} of {} run, descriptors {}, faults {}, invalid {}, {}",
                        f.state.done,
                        f.state.submitted,
                        stat("descriptors"),
                        stat("faults"),
                        stat("invalid"),
                        queue_status(&f.t.dev)
                    )
                })
                .collect();
            return Err(format!(
                "{} of {} saturated ADIs did not drain in {timeout:?}: {}",
                busy.len(),
                fs.len(),
                why.join("; ")
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the thread of [`saturate`] refills: one feeder's memory, tail and
/// state.
struct Job<'a> {
    mem: &'a DmaMem,
    tail: (&'a vfio::Mapping, usize),
    state: &'a mut State,
    /// `stats/descriptors`, for a feeder refilled by counter.
    stats: PathBuf,
    /// When a feeder refilled by counter is next due.
    due: Instant,
}

// SAFETY: a `DmaMem` and a `vfio::Mapping` are shared mappings that are
// only ever accessed with volatile loads and stores through their raw
// pointers (no Rust reference to their bytes exists); the process may
// touch them from any thread. The scope of `saturate` keeps both alive
// until the thread is joined, and the `State` is borrowed exclusively.
unsafe impl Send for Job<'_> {}

impl Job<'_> {
    fn refill(&mut self, now: Instant) -> Res<()> {
        match self.state.progress {
            Progress::Counter { base } => {
                if now < self.due {
                    return Ok(());
                }
                self.due = now + REFILL_EVERY;
                let c = crate::sysfs::read_u64(&self.stats)?;
                self.state.done = c.saturating_sub(base);
            }
            Progress::Marks { .. } => self.state.scan_marks(self.mem)?,
        }
        self.state.publish(self.tail);
        Ok(())
    }
}

/// Runs `body` while a second thread keeps the feeders of `fs` that are
/// `on` full; `body` gets every feeder's opened ADI (for its counters and
/// knobs). Portals are refilled as their descriptors complete, the thread
/// spinning (yielding the CPU between sweeps): a portal holds less than
/// one quantum and runs dry within a poll of the engine. Rings only are
/// refilled every [`REFILL_EVERY`]. Fails if the thread did.
pub fn saturate<T>(fs: &mut [Feeder], body: impl FnOnce(&[&Tenant]) -> T) -> Res<T> {
    let stop = AtomicBool::new(false);
    let now = Instant::now();
    let mut tenants = Vec::with_capacity(fs.len());
    let mut jobs = Vec::new();
    let mut spin = false;
    for f in fs.iter_mut() {
        let Feeder { sink, t, state, on } = f;
        let t: &Tenant = t;
        tenants.push(t);
        if *on {
            spin |= matches!(sink, Sink::Portal(_));
            jobs.push(Job {
                mem: &t.mem,
                tail: sink.tail(),
                state,
                stats: t.mdev.0.dir().join("stats/descriptors"),
                due: now,
            });
        }
    }
    std::thread::scope(|s| {
        let feeder = s.spawn(|| -> Res<()> {
            while !stop.load(Relaxed) {
                let now = Instant::now();
                for j in jobs.iter_mut() {
                    j.refill(now)?;
                }
                if spin {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(REFILL_EVERY);
                }
            }
            Ok(())
        });
        // Stops the thread even if `body` panics (the scope joins it).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Relaxed);
            }
        }
        let guard = Stop(&stop);
        let r = body(&tenants);
        drop(guard);
        match feeder.join() {
            Ok(Ok(())) => Ok(r),
            Ok(Err(e)) => Err(format!("saturating thread: {e}")),
            Err(_) => Err("saturating thread panicked".into()),
        }
    })
}

/// Each ADI's descriptors per second over `dur` from now, its counter
/// read at both ends and each reading timed on its own (a counter read
/// waits for the engine's current poll, so the readings of many ADIs
/// spread over several polls).
pub fn measure_each(ts: &[&Tenant], dur: Duration) -> Res<Vec<f64>> {
    let read = |ts: &[&Tenant]| -> Res<Vec<(u64, Instant)>> {
        ts.iter()
            .map(|t| Ok((t.stat("descriptors")?, Instant::now())))
            .collect()
    };
    let a = read(ts)?;
    std::thread::sleep(dur);
    let b = read(ts)?;
    Ok(a.iter()
        .zip(b)
        .map(|(&(c0, t0), (c1, t1))| {
            c1.saturating_sub(c0) as f64 / t1.duration_since(t0).as_secs_f64()
        })
        .collect())
}

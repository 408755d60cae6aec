// SPDX-License-Identifier: GPL-2.0

//! The simulated PF's data mover: it runs the descriptors tenants post on
//! their rings.
//!
//! **How doorbells are noticed.** A doorbell page is plain memory mapped
//! into the tenant; a store to it raises nothing. The engine therefore
//! polls, on the system workqueue, and only while some queue pair of the PF
//! is started (a poll reads the doorbells of the started queues only, from
//! the table's active list): `qp_start` kicks it, and a poll that finds no started queue
//! pair does not re-arm, so an idle PF costs no CPU. While queues are
//! started, a poll that found work re-arms at once (each poll runs at most
//! [`BUDGET`] descriptors per queue pair, so other work gets the CPU); a
//! poll that found none re-arms at once for the first [`SPIN_POLLS`] empty
//! polls (a tenant posting back to back is seen within microseconds, not a
//! jiffy), then after one jiffy for the next [`FAST_POLLS`], then doubling
//! up to [`MAX_DELAY_MS`]. The
//! cost of a started but quiet queue is therefore at most
//! `1000 / MAX_DELAY_MS` wake-ups per second per PF, and the latency of
//! the first doorbell after a quiet spell at most `MAX_DELAY_MS`.
//!
//! **How memory is reached.** Only through the tenant object bound to the
//! queue pair ([`TenantRef::dma_rw`]): the VDCM translates through the
//! ADI's iommufd access, as the IOMMU would through the PASID-table entry
//! of the queue's PASID. A range the tenant has not mapped fails before
//! anything is written: sources are read and destinations probed before
//! the first byte is stored. A fault produces a `PageFault` completion and
//! a counter; a ring whose own memory faults, or whose tail jumps past the
//! ring, stops (the queue pair's `invalid` or `faults` counter says why).

use kernel::prelude::*;
use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;
use kernel::time::Instant;
use kernel::time::Jiffies;
use kernel::time::Monotonic;

use crate::desc;
use crate::desc::Completion;
use crate::desc::Descriptor;
use crate::desc::Opcode;
use crate::desc::Status;
use crate::sched::Sched;
use crate::sched::MAX_PRIORITY;
use crate::sim_pf::QpStats;
use crate::sim_pf::QpTable;
use crate::sim_pf::Queues;
use crate::sim_pf::DOORBELL_TAIL;
use crate::sim_pf::PORTAL_SLOTS;
use crate::sim_pf::PORTAL_TAIL;
use crate::vdcm_kernel::crc;
use crate::vdcm_kernel::poller::Poll;
use crate::vdcm_kernel::tenant::TenantRef;

/// Most descriptors one poll runs from one queue pair.
pub const BUDGET: u32 = 64;
/// Empty polls re-armed at once after work, before waiting a jiffy.
pub const SPIN_POLLS: u32 = 16;
/// Empty polls at one-jiffy intervals before backing off.
pub const FAST_POLLS: u32 = 64;
/// Longest interval between polls of started, quiet queues.
pub const MAX_DELAY_MS: u32 = 32;
/// Most deficit-round-robin rounds of one level in one poll (a bound: the
/// per-poll budget ends them first unless every weight is tiny).
const MAX_ROUNDS: u32 = 1024;

/// The data mover of one PF.
pub struct Engine {
    queues: Arc<Queues>,
    /// Consecutive polls that found started queues but no work.
    empty_polls: Atomic<u32>,
    /// The clock the rate limits are measured on starts here.
    epoch: Instant<Monotonic>,
}

/// A queue pair or a portal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    /// Queue pair `n`.
    Qp(usize),
    /// Portal `n` of the shared queue pair.
    Portal(usize),
}

/// A queue a poll found work on.
#[derive(Clone, Copy, Debug)]
pub struct Work {
    queue: Queue,
    /// Descriptors submitted and not yet run.
    pending: u32,
}

impl QpTable {
    /// The scheduling state `queue` is charged to (its ADI's).
    fn sched(&mut self, queue: Queue) -> Option<&mut Sched> {
        match queue {
            Queue::Qp(i) => {
                let leader = self.qps.get(i)?.leader.unwrap_or(i);
                Some(&mut self.qps.get_mut(leader)?.sched)
            }
            Queue::Portal(i) => Some(&mut self.portals.get_mut(i)?.sched),
        }
    }
}

impl Engine {
    /// The engine of the PF whose queue pairs are `queues`.
    pub fn new(queues: Arc<Queues>) -> Self {
        Engine {
            queues,
            empty_polls: Atomic::new(0),
            epoch: Instant::now(),
        }
    }

    /// The delay after `empty` consecutive empty polls.
    fn backoff(empty: u32) -> Jiffies {
        let max = kernel::time::msecs_to_jiffies(MAX_DELAY_MS).max(1);
        if empty <= SPIN_POLLS {
            return 0;
        }
        if empty <= SPIN_POLLS + FAST_POLLS {
            return 1;
        }
        let shift = (empty - SPIN_POLLS - FAST_POLLS).min(16);
        (1 << shift).min(max)
    }

    /// Finds the started queues with work, walking the active list only
    /// (and dropping from it what stopped); marks the rings and portals
    /// that broke the rules stopped. Returns whether any queue is started.
    fn scan(&self, table: &mut QpTable, now_ns: i64) -> bool {
        table.work.clear();
        let mut started = false;
        let mut k = 0;
        while let Some(&queue) = table.active.get(k) {
            match self.look(table, queue, now_ns) {
                Some(pending) => {
                    started = true;
                    k += 1;
                    if pending > 0 {
                        // Room for every queue was reserved.
                        let _ = table.work.push(Work { queue, pending }, GFP_NOWAIT);
                    }
                }
                None => {
                    // The last entry takes its place (order is not kept).
                    let last = table.active.len() - 1;
                    table.active.swap(k, last);
                    table.active.truncate(last);
                    match queue {
                        Queue::Qp(i) => table.qps.get_mut(i).map(|q| q.listed = false),
                        Queue::Portal(i) => table.portals.get_mut(i).map(|p| p.listed = false),
                    };
                }
            }
        }
        started
    }

    /// How much work `queue` has; `None` if it is not started (stopped,
    /// disabled, unbound or paused), or stopped now for breaking the
    /// rules. Refills its ADI's buckets.
    fn look(&self, table: &mut QpTable, queue: Queue, now_ns: i64) -> Option<u32> {
        let pending = match queue {
            Queue::Qp(i) => {
                let q = table.qps.get_mut(i)?;
                let (Some(ring), Some(_), false) = (q.ring.as_mut(), q.binding.as_ref(), q.paused)
                else {
                    return None;
                };
                let tail = self.queues.doorbells.get(i)?.read_u32(DOORBELL_TAIL).ok()?;
                let pending = tail.wrapping_sub(ring.head);
                if pending > ring.size {
                    // The tenant claims more descriptors than the ring
                    // holds.
                    q.stats.invalid += 1;
                    q.ring = None;
                    return None;
                }
                pending
            }
            Queue::Portal(i) => {
                let p = table.portals.get_mut(i)?;
                let (true, Some(_), false) = (p.enabled, p.binding.as_ref(), p.paused) else {
                    return None;
                };
                let tail = self
                    .queues
                    .portal_pages
                    .get(i)?
                    .read_u32(PORTAL_TAIL)
                    .ok()?;
                let pending = tail.wrapping_sub(p.head);
                if pending > PORTAL_SLOTS {
                    // More than the portal holds: the portal stops.
                    p.stats.invalid += 1;
                    p.enabled = false;
                    return None;
                }
                if pending > 0 {
                    p.classify(tail);
                }
                pending
            }
        };
        if pending > 0 {
            table.sched(queue)?.refill(now_ns);
        }
        Some(pending)
    }

    /// Runs what the ADI's credit allows of `w`'s pending work:
    /// `guaranteed` spends the guarantee's credit, otherwise the round's.
    /// Returns how many descriptors it took off the queue (run or
    /// refused).
    fn serve(&self, table: &mut QpTable, w: &mut Work, guaranteed: bool) -> u32 {
        let Some(mut sched) = table.sched(w.queue).copied() else {
            return 0;
        };
        let pending = w.pending;
        let allowed = |s: &Sched| {
            if guaranteed {
                s.guaranteed()
            } else {
                s.deficit > 0 && s.may_run()
            }
        };
        match w.queue {
            Queue::Qp(i) => {
                let QpTable {
                    qps,
                    bufs,
                    ring_buf,
                    batch_buf,
                    ..
                } = &mut *table;
                let Some(q) = qps.get_mut(i) else {
                    return 0;
                };
                let (Some(ring), Some((_, tenant))) = (q.ring.as_mut(), q.binding.as_ref()) else {
                    return 0;
                };
                let mut exec = Exec {
                    tenant,
                    bufs: &mut *bufs,
                    batch_buf: &mut *batch_buf,
                    stats: &mut q.stats,
                    vector: q.vector,
                };
                // Descriptors are fetched a contiguous run of ring slots
                // at a time: one translated copy instead of one per
                // descriptor.
                let (mut at, mut fetched) = (0usize, 0usize);
                let mut dead = false;
                while w.pending > 0 && allowed(&sched) {
                    let before = exec.stats.descriptors;
                    if at == fetched {
                        let slot = ring.head & (ring.size - 1);
                        // No more than the credit lets run: what is
                        // fetched and not run is fetched again.
                        let credit = sched.allowance(!guaranteed, BUDGET);
                        let n = w.pending.min(credit).min(ring.size - slot) as usize;
                        let iova = ring
                            .base
                            .wrapping_add(u64::from(slot) * desc::DESC_SIZE as u64);
                        let ok = match ring_buf.get_mut(..n * desc::DESC_SIZE) {
                            Some(chunk) => exec.tenant.dma_rw(iova, chunk, false).is_ok(),
                            None => false,
                        };
                        if ok {
                            (at, fetched) = (0, n);
                        } else if exec.run_at(iova).is_err() {
                            // Part of the run is unreachable: this slot is.
                            // The ring itself is unreachable: nothing more
                            // can run.
                            dead = true;
                            break;
                        } else {
                            ring.head = ring.head.wrapping_add(1);
                            w.pending -= 1;
                            sched.charge(exec.stats.descriptors - before, !guaranteed);
                            continue;
                        }
                    }
                    let mut raw = [0u8; desc::DESC_SIZE];
                    let off = at * desc::DESC_SIZE;
                    raw.copy_from_slice(&ring_buf[off..off + desc::DESC_SIZE]);
                    exec.complete(&Descriptor::decode(&raw), false);
                    at += 1;
                    ring.head = ring.head.wrapping_add(1);
                    w.pending -= 1;
                    sched.charge(exec.stats.descriptors - before, !guaranteed);
                }
                if dead {
                    q.ring = None;
                    w.pending = 0;
                }
            }
            Queue::Portal(i) => {
                let QpTable {
                    portals,
                    bufs,
                    batch_buf,
                    ..
                } = &mut *table;
                let (Some(p), Some(page)) = (portals.get_mut(i), self.queues.portal_pages.get(i))
                else {
                    return 0;
                };
                let Some((_, tenant)) = p.binding.as_ref() else {
                    return 0;
                };
                let mut exec = Exec {
                    tenant,
                    bufs: &mut *bufs,
                    batch_buf: &mut *batch_buf,
                    stats: &mut p.stats,
                    vector: p.vector,
                };
                while w.pending > 0 && allowed(&sched) {
                    let slot = p.head % PORTAL_SLOTS;
                    let mut raw = [0u8; desc::DESC_SIZE];
                    if page
                        .read(slot as usize * desc::DESC_SIZE, &mut raw)
                        .is_err()
                    {
                        w.pending = 0;
                        break;
                    }
                    let d = Descriptor::decode(&raw);
                    p.head = p.head.wrapping_add(1);
                    w.pending -= 1;
                    if p.refused & (1 << slot) != 0 {
                        // Beyond the threshold when it was submitted.
                        p.refused &= !(1 << slot);
                        exec.refuse(&d);
                        continue;
                    }
                    p.accepted = p.accepted.saturating_sub(1);
                    let before = exec.stats.descriptors;
                    exec.complete(&d, false);
                    sched.charge(exec.stats.descriptors - before, !guaranteed);
                }
            }
        }
        if let Some(s) = table.sched(w.queue) {
            *s = sched;
        }
        pending - w.pending
    }
}

impl Poll for Engine {
    fn poll(&self) -> Option<Jiffies> {
        let now_ns = self.epoch.elapsed().as_nanos().max(1);
        let mut guard = self.queues.table.lock();
        let table = &mut *guard;
        let started = self.scan(table, now_ns);
        let mut work = core::mem::take(&mut table.work);
        let mut worked = false;
        // Guarantees first, whatever the priorities, a chunk at a time
        // (see `Sched::guarantee_due`).
        for w in work.iter_mut() {
            if table
                .sched(w.queue)
                .is_some_and(|s| s.guarantee_due(w.pending, BUDGET))
            {
                worked |= self.serve(table, w, true) > 0;
            }
        }
        // Then deficit round robin at the highest level with work it may
        // run, round after round until the level ran dry or ran
        // `BUDGET` descriptors per queue with work; a lower level only
        // if that level ran dry.
        let mut wait_ns = i64::MAX;
        let mut saturated = false;
        for level in (0..=MAX_PRIORITY).rev() {
            // The weights of the level's queues with work set its quanta.
            let (mut queues, mut w_min, mut w_sum) = (0usize, u32::MAX, 0u32);
            for w in work.iter().filter(|w| w.pending > 0) {
                if let Some(s) = table.sched(w.queue).filter(|s| s.qos.priority == level) {
                    queues += 1;
                    w_min = w_min.min(s.qos.weight);
                    w_sum = w_sum.saturating_add(s.qos.weight);
                }
            }
            if queues == 0 {
                continue;
            }
            let limit = BUDGET as usize * queues;
            let mut ran = 0usize;
            for _ in 0..MAX_ROUNDS {
                table.round = table.round.wrapping_add(1);
                let round = table.round;
                saturated = false;
                for w in work.iter_mut().filter(|w| w.pending > 0) {
                    let Some(s) = table.sched(w.queue) else {
                        continue;
                    };
                    if s.qos.priority != level {
                        continue;
                    }
                    if !s.may_run() {
                        wait_ns = wait_ns.min(s.wait_ns());
                        continue;
                    }
                    if s.round != round {
                        // The ADI's quantum, once per round however many
                        // of its queues have work; unspent credit carries
                        // over up to one quantum.
                        s.round = round;
                        let q = s.quantum(w_min, w_sum);
                        s.deficit = s.deficit.min(q) + q;
                    }
                    ran += self.serve(table, w, false) as usize;
                    if w.pending > 0 {
                        match table.sched(w.queue) {
                            Some(s) if s.may_run() => saturated = true,
                            Some(s) => wait_ns = wait_ns.min(s.wait_ns()),
                            None => {}
                        }
                    }
                }
                if !saturated || ran >= limit {
                    break;
                }
            }
            worked |= ran > 0;
            if saturated {
                break;
            }
        }
        table.work = work;
        drop(guard);
        if !started {
            self.empty_polls.store(0, Relaxed);
            return None;
        }
        if worked || saturated {
            self.empty_polls.store(0, Relaxed);
            return Some(0);
        }
        if wait_ns != i64::MAX {
            // Work waits for a rate limit: wake when the first may run.
            self.empty_polls.store(0, Relaxed);
            let ms = u32::try_from(wait_ns / 1_000_000 + 1).unwrap_or(MAX_DELAY_MS);
            return Some(kernel::time::msecs_to_jiffies(ms.min(MAX_DELAY_MS)).max(1));
        }
        let empty = self.empty_polls.load(Relaxed).saturating_add(1);
        self.empty_polls.store(empty, Relaxed);
        Some(Self::backoff(empty))
    }
}

/// Runs descriptors of one queue pair.
struct Exec<'a> {
    tenant: &'a TenantRef,
    bufs: &'a mut [VVec<u8>; 2],
    /// Room for a BATCH's descriptor array.
    batch_buf: &'a mut KVec<u8>,
    stats: &'a mut QpStats,
    /// The ADI's MSI-X vector for completions of this queue.
    vector: u32,
}

/// Why a data access failed: the IOVA to report.
struct Fault(u64);

impl Exec<'_> {
    /// Fetches and runs the descriptor at `iova` of the ring. `Err` when
    /// the descriptor itself cannot be read.
    fn run_at(&mut self, iova: u64) -> core::result::Result<(), Fault> {
        let mut raw = [0u8; desc::DESC_SIZE];
        if self.tenant.dma_rw(iova, &mut raw, false).is_err() {
            self.stats.faults += 1;
            return Err(Fault(iova));
        }
        let d = Descriptor::decode(&raw);
        self.complete(&d, false);
        Ok(())
    }

    /// Runs `d`, writes its completion record and raises its interrupt.
    /// Returns whether it succeeded.
    fn complete(&mut self, d: &Descriptor, in_batch: bool) -> bool {
        let done = self.run(d, in_batch);
        self.stats.descriptors += 1;
        match done.status {
            Status::Success => self.stats.bytes += u64::from(done.done),
            Status::PageFault => self.stats.faults += 1,
            Status::BatchFailed => {}
            _ => self.stats.invalid += 1,
        }
        if d.completion != 0 {
            let mut rec = done.encode();
            if self.tenant.dma_rw(d.completion, &mut rec, true).is_err() {
                self.stats.faults += 1;
            }
        }
        if d.wants_interrupt() {
            self.stats.interrupts += 1;
            self.tenant.raise_irq(self.vector);
        }
        done.status == Status::Success
    }

    /// Completes `d` with [`Status::Retry`] without running it: its portal
    /// held more than its threshold when it was submitted.
    fn refuse(&mut self, d: &Descriptor) {
        self.stats.retries += 1;
        if d.completion != 0 {
            let rec = Completion {
                status: Status::Retry,
                opcode: d.opcode,
                done: 0,
                fault_iova: 0,
                result: 0,
            };
            let mut raw = rec.encode();
            if self.tenant.dma_rw(d.completion, &mut raw, true).is_err() {
                self.stats.faults += 1;
            }
        }
        if d.wants_interrupt() {
            self.stats.interrupts += 1;
            self.tenant.raise_irq(self.vector);
        }
    }

    /// Runs `d` and says how it went.
    fn run(&mut self, d: &Descriptor, in_batch: bool) -> Completion {
        let mut c = Completion {
            status: Status::Success,
            opcode: d.opcode,
            done: 0,
            fault_iova: 0,
            result: 0,
        };
        let op = match d.validate(in_batch) {
            Ok(op) => op,
            Err(status) => {
                c.status = status;
                return c;
            }
        };
        let outcome = match op {
            Opcode::Nop => Ok(()),
            Opcode::Batch => {
                let failed = self.batch(d);
                c.done = d.size - failed;
                if failed != 0 {
                    c.status = Status::BatchFailed;
                }
                return c;
            }
            Opcode::MemMove => self.memmove(d),
            Opcode::Fill => self.fill(d),
            Opcode::Compare => self.compare(d).map(|differ| c.result = differ.into()),
            Opcode::Crc32c => self.crc32c(d).map(|crc| c.result = crc.into()),
        };
        match outcome {
            Ok(()) => c.done = d.size,
            Err(Fault(iova)) => {
                c.status = Status::PageFault;
                c.fault_iova = iova;
            }
        }
        c
    }

    /// Reads `len` bytes at `iova` into staging buffer `which`.
    fn read(&mut self, which: usize, iova: u64, len: usize) -> core::result::Result<(), Fault> {
        let buf = self.bufs[which].get_mut(..len).ok_or(Fault(iova))?;
        self.tenant
            .dma_rw(iova, buf, false)
            .map_err(|_| Fault(iova))
    }

    /// Writes `len` bytes of staging buffer `which` to `iova`.
    fn write(&mut self, which: usize, iova: u64, len: usize) -> core::result::Result<(), Fault> {
        let buf = self.bufs[which].get_mut(..len).ok_or(Fault(iova))?;
        self.tenant.dma_rw(iova, buf, true).map_err(|_| Fault(iova))
    }

    fn memmove(&mut self, d: &Descriptor) -> core::result::Result<(), Fault> {
        let len = d.size as usize;
        self.read(0, d.src, len)?;
        // Probe the destination: an unmapped destination faults before a
        // byte is stored.
        self.read(1, d.dst, len)?;
        self.write(0, d.dst, len)
    }

    fn fill(&mut self, d: &Descriptor) -> core::result::Result<(), Fault> {
        let len = d.size as usize;
        self.read(1, d.dst, len)?;
        let pattern = d.operand.to_le_bytes();
        if let Some(buf) = self.bufs[0].get_mut(..len) {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = pattern[i % 8];
            }
        }
        self.write(0, d.dst, len)
    }

    fn compare(&mut self, d: &Descriptor) -> core::result::Result<bool, Fault> {
        let len = d.size as usize;
        self.read(0, d.src, len)?;
        self.read(1, d.dst, len)?;
        Ok(self.bufs[0].get(..len) != self.bufs[1].get(..len))
    }

    fn crc32c(&mut self, d: &Descriptor) -> core::result::Result<u32, Fault> {
        let len = d.size as usize;
        self.read(0, d.src, len)?;
        let data = self.bufs[0].get(..len).unwrap_or(&[]);
        Ok(!crc::crc32c(!(d.operand as u32), data))
    }

    /// Runs the descriptors of a BATCH; returns how many failed.
    fn batch(&mut self, d: &Descriptor) -> u32 {
        let mut failed = 0;
        // The whole array in one translated copy, if it is all reachable.
        let len = d.size as usize * desc::DESC_SIZE;
        let fetched = match self.batch_buf.get_mut(..len) {
            Some(array) => self.tenant.dma_rw(d.src, array, false).is_ok(),
            None => false,
        };
        if fetched {
            for k in 0..d.size as usize {
                let mut raw = [0u8; desc::DESC_SIZE];
                let at = k * desc::DESC_SIZE;
                raw.copy_from_slice(&self.batch_buf[at..at + desc::DESC_SIZE]);
                if !self.complete(&Descriptor::decode(&raw), true) {
                    failed += 1;
                }
            }
            return failed;
        }
        for k in 0..u64::from(d.size) {
            let iova = d.src.wrapping_add(k * desc::DESC_SIZE as u64);
            let mut raw = [0u8; desc::DESC_SIZE];
            if self.tenant.dma_rw(iova, &mut raw, false).is_err() {
                self.stats.faults += 1;
                failed += 1;
                continue;
            }
            if !self.complete(&Descriptor::decode(&raw), true) {
                failed += 1;
            }
        }
        failed
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The simulated PF's data mover: it runs the descriptors tenants post on
//! their rings.
//!
//! **How doorbells are noticed.** A doorbell page is plain memory mapped
//! into the tenant; a store to it raises nothing. The engine therefore
//! polls, on the system workqueue, and only while some queue pair of the PF
//! is started: `qp_start` kicks it, and a poll that finds no started queue
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
use kernel::time::Jiffies;

use crate::desc;
use crate::desc::Completion;
use crate::desc::Descriptor;
use crate::desc::Opcode;
use crate::desc::Status;
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

/// The data mover of one PF.
pub struct Engine {
    queues: Arc<Queues>,
    /// Consecutive polls that found started queues but no work.
    empty_polls: Atomic<u32>,
}

impl Engine {
    /// The engine of the PF whose queue pairs are `queues`.
    pub fn new(queues: Arc<Queues>) -> Self {
        Engine {
            queues,
            empty_polls: Atomic::new(0),
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
}

impl Poll for Engine {
    fn poll(&self) -> Option<Jiffies> {
        let mut table = self.queues.table.lock();
        let QpTable {
            qps,
            bufs,
            ring_buf,
            batch_buf,
            portals,
            ..
        } = &mut *table;
        let mut started = false;
        let mut worked = false;
        for (i, q) in qps.iter_mut().enumerate() {
            let (Some(ring), Some((_, tenant)), false) =
                (q.ring.as_mut(), q.binding.as_ref(), q.paused)
            else {
                continue;
            };
            started = true;
            let Some(tail) = self
                .queues
                .doorbells
                .get(i)
                .and_then(|d| d.read_u32(DOORBELL_TAIL).ok())
            else {
                continue;
            };
            let pending = tail.wrapping_sub(ring.head);
            if pending == 0 {
                continue;
            }
            if pending > ring.size {
                // The tenant claims more descriptors than the ring holds.
                q.stats.invalid += 1;
                q.ring = None;
                continue;
            }
            worked = true;
            let mut exec = Exec {
                tenant,
                bufs: &mut *bufs,
                batch_buf: &mut *batch_buf,
                stats: &mut q.stats,
                vector: q.vector,
            };
            // Descriptors are fetched a contiguous run of ring slots at a
            // time: one translated copy instead of one per descriptor.
            let mut left = pending.min(BUDGET);
            let mut dead = false;
            while left > 0 && !dead {
                let slot = ring.head & (ring.size - 1);
                let n = left.min(ring.size - slot);
                let iova = ring
                    .base
                    .wrapping_add(u64::from(slot) * desc::DESC_SIZE as u64);
                let len = n as usize * desc::DESC_SIZE;
                let fetched = match ring_buf.get_mut(..len) {
                    Some(chunk) => tenant.dma_rw(iova, chunk, false).is_ok(),
                    None => false,
                };
                for k in 0..n as usize {
                    if fetched {
                        let mut raw = [0u8; desc::DESC_SIZE];
                        let at = k * desc::DESC_SIZE;
                        raw.copy_from_slice(&ring_buf[at..at + desc::DESC_SIZE]);
                        exec.complete(&Descriptor::decode(&raw), false);
                    } else {
                        // Part of the run is unreachable: one by one, to
                        // stop at the first slot that is.
                        let at = iova.wrapping_add((k * desc::DESC_SIZE) as u64);
                        if exec.run_at(at).is_err() {
                            dead = true;
                            break;
                        }
                    }
                    ring.head = ring.head.wrapping_add(1);
                }
                left -= n;
            }
            if dead {
                // The ring itself is unreachable: nothing more can run.
                q.ring = None;
            }
        }
        // The shared queue pair: each enabled portal's submissions, round
        // robin, each tagged with the portal's PASID (its tenant).
        for (i, p) in portals.iter_mut().enumerate() {
            let (true, Some((_, tenant)), false) = (p.enabled, p.binding.as_ref(), p.paused) else {
                continue;
            };
            started = true;
            let Some(page) = self.queues.portal_pages.get(i) else {
                continue;
            };
            let Ok(tail) = page.read_u32(PORTAL_TAIL) else {
                continue;
            };
            let pending = tail.wrapping_sub(p.head);
            if pending == 0 {
                continue;
            }
            if pending > PORTAL_SLOTS {
                // More than the portal holds: the portal stops.
                p.stats.invalid += 1;
                p.enabled = false;
                continue;
            }
            worked = true;
            let mut exec = Exec {
                tenant,
                bufs: &mut *bufs,
                batch_buf: &mut *batch_buf,
                stats: &mut p.stats,
                vector: p.vector,
            };
            for _ in 0..pending.min(BUDGET) {
                let slot = (p.head % PORTAL_SLOTS) as usize;
                let mut raw = [0u8; desc::DESC_SIZE];
                if page.read(slot * desc::DESC_SIZE, &mut raw).is_err() {
                    break;
                }
                exec.complete(&Descriptor::decode(&raw), false);
                p.head = p.head.wrapping_add(1);
            }
        }
        if !started {
            self.empty_polls.store(0, Relaxed);
            return None;
        }
        if worked {
            self.empty_polls.store(0, Relaxed);
            return Some(0);
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

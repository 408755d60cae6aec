// SPDX-License-Identifier: GPL-2.0

//! One simulated SIOV PF: its queue pairs, the PASID-table entry of each
//! (PASID and tenant), their doorbell pages and the data mover that runs
//! their rings.
//!
//! The PF's ADIs (`adi`) are built from these queue pairs and portals; a
//! queue pair's tenant is only ever reached through the tenant object the
//! VDCM gave with the ADI, as a real PF's DMA is only ever translated
//! through the IOMMU's PASID-table entry for the queue's PASID.
//!
//! Locking: `Queues::table` protects the queue-pair table and the data
//! mover's buffers. The engine holds it while it processes a queue pair's
//! descriptors, so `qp_stop` and `qp_unbind` return only when none is in
//! flight. It is taken before anything of the VDCM's (the tenant's
//! `dma_rw` and `raise_irq` are called with it held); the VDCM never holds
//! its own locks when it calls the PF.

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::sync::Mutex;

use crate::engine::Engine;
use crate::engine::Queue;
use crate::engine::Work;
use crate::sched::Sched;
use crate::vdcm_kernel::class::Counters;
use crate::vdcm_kernel::doorbell::DoorbellPage;
use crate::vdcm_kernel::pf::Qos;
use crate::vdcm_kernel::poller::Poller;
use crate::vdcm_kernel::tenant::TenantRef;

/// Counters of one queue pair or portal since it was allocated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QpStats {
    /// Descriptors completed, successfully or not.
    pub descriptors: u64,
    /// Bytes processed.
    pub bytes: u64,
    /// Descriptors that faulted on an unmapped IOVA.
    pub faults: u64,
    /// Descriptors rejected as malformed.
    pub invalid: u64,
    /// Completion interrupts raised.
    pub interrupts: u64,
    /// Portal descriptors refused beyond the QoS threshold.
    pub retries: u64,
}

impl core::ops::Add for QpStats {
    type Output = QpStats;

    fn add(self, o: QpStats) -> QpStats {
        QpStats {
            descriptors: self.descriptors + o.descriptors,
            bytes: self.bytes + o.bytes,
            faults: self.faults + o.faults,
            invalid: self.invalid + o.invalid,
            interrupts: self.interrupts + o.interrupts,
            retries: self.retries + o.retries,
        }
    }
}

pub use crate::abi::DOORBELL_TAIL;
pub use crate::abi::PORTAL_SLOTS;
pub use crate::abi::PORTAL_TAIL;

/// One portal on the PF's shared queue pair.
#[derive(Default)]
pub struct Portal {
    /// Whether the VDCM holds the portal.
    pub allocated: bool,
    /// Whether submissions through it run.
    pub enabled: bool,
    /// The PASID its work is tagged with, and the tenant that translates it.
    pub binding: Option<(u32, TenantRef)>,
    /// Descriptors consumed (free-running, like the tenant's tail).
    pub head: u32,
    /// The ADI's MSI-X vector for completions, latched at enable.
    pub vector: u32,
    /// Quiesced for a migration: submissions wait in the page.
    pub paused: bool,
    /// Counters since allocation.
    pub stats: QpStats,
    /// The ADI's scheduling state (`sched`).
    pub sched: Sched,
    /// Submitted slots classified against the threshold, up to here
    /// (free-running, between `head` and the tail).
    pub seen: u32,
    /// Classified descriptors accepted and not yet run.
    pub accepted: u32,
    /// Slots (bit `slot`) refused when classified, not yet completed.
    pub refused: u64,
    /// Whether it is in [`QpTable::active`].
    pub listed: bool,
}

impl QpTable {
    /// Lists `queue` as possibly having work (once).
    pub fn activate(&mut self, queue: Queue) {
        let listed = match queue {
            Queue::Qp(i) => self.qps.get_mut(i).map(|q| &mut q.listed),
            Queue::Portal(i) => self.portals.get_mut(i).map(|p| &mut p.listed),
        };
        if let Some(listed @ false) = listed {
            *listed = true;
            // Room for every queue was reserved: this cannot allocate.
            let _ = self.active.push(queue, GFP_NOWAIT);
        }
    }
}

impl Portal {
    /// Classifies the slots submitted up to `tail` that were not yet:
    /// accepted while fewer than the threshold are accepted and not run,
    /// refused beyond.
    pub fn classify(&mut self, tail: u32) {
        if self.seen.wrapping_sub(self.head) > tail.wrapping_sub(self.head) {
            // The tail went back: start over from the head.
            self.restart_classes();
        }
        let threshold = self.sched.qos.threshold.clamp(1, PORTAL_SLOTS);
        while self.seen != tail {
            let bit = 1u64 << (self.seen % PORTAL_SLOTS);
            if self.accepted < threshold {
                self.accepted += 1;
                self.refused &= !bit;
            } else {
                self.refused |= bit;
            }
            self.seen = self.seen.wrapping_add(1);
        }
    }

    /// Forgets the classification: what is pending is classified again.
    pub fn restart_classes(&mut self) {
        self.seen = self.head;
        self.accepted = 0;
        self.refused = 0;
    }
}

/// A running queue pair's ring.
#[derive(Clone, Copy, Debug)]
pub struct Ring {
    /// IOVA of descriptor 0.
    pub base: u64,
    /// Descriptors in the ring (a power of two).
    pub size: u32,
    /// Descriptors consumed since the ring started (free-running; the slot
    /// is `head % size`). The tenant's tail counts the same way.
    pub head: u32,
}

/// One queue pair.
#[derive(Default)]
pub struct Qp {
    /// Whether the VDCM holds the queue pair.
    pub allocated: bool,
    /// PASID-table entry: the PASID and the tenant it translates to.
    pub binding: Option<(u32, TenantRef)>,
    /// The ring being processed, while started.
    pub ring: Option<Ring>,
    /// The ADI's MSI-X vector for completions, latched at start.
    pub vector: u32,
    /// Quiesced for a migration: the ring is not fetched from.
    pub paused: bool,
    /// Counters since allocation.
    pub stats: QpStats,
    /// The ADI's scheduling state, in its first queue pair's entry.
    pub sched: Sched,
    /// The queue pair holding this one's ADI's scheduling state; `None`:
    /// this one.
    pub leader: Option<usize>,
    /// Whether it is in [`QpTable::active`].
    pub listed: bool,
}

/// The queue-pair table and the engine's staging buffers.
pub struct QpTable {
    /// The queue pairs, indexed by queue-pair number.
    pub qps: KVec<Qp>,
    /// Staging buffers of the data mover, each `desc::MAX_TRANSFER` bytes.
    pub bufs: [VVec<u8>; 2],
    /// Descriptors fetched from a ring at once (`engine::BUDGET` slots).
    pub ring_buf: KVec<u8>,
    /// A BATCH's descriptor array (`desc::MAX_BATCH` descriptors).
    pub batch_buf: KVec<u8>,
    /// The portals of the shared queue pair.
    pub portals: KVVec<Portal>,
    /// Counters of queue pairs and portals since freed, for the PF's
    /// totals.
    pub retired: QpStats,
    /// The queues a poll found work on (room for all of them).
    pub work: KVec<Work>,
    /// The queue pairs and portals that may have work: started (or
    /// enabled) and not paused. A poll walks these only, so its cost
    /// follows the active queues, not the PF's size; entries that stopped
    /// are dropped by the next poll.
    pub active: KVec<Queue>,
    /// The engine's deficit-round-robin round.
    pub round: u64,
}

/// What the PF and its engine share.
#[pin_data]
pub struct Queues {
    /// See the module's locking notes.
    #[pin]
    pub table: Mutex<QpTable>,
    /// One doorbell page per queue pair; the tenant writes the ring tail
    /// at [`DOORBELL_TAIL`].
    pub doorbells: KVec<DoorbellPage>,
    /// One page per portal.
    pub portal_pages: KVVec<DoorbellPage>,
}

impl Queues {
    /// `num_qps` free queue pairs and `num_portals` portals on a shared
    /// queue pair.
    pub fn new(num_qps: u32, num_portals: u32) -> Result<Arc<Self>> {
        let n = num_qps as usize;
        let mut qps = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut doorbells = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            qps.push(Qp::default(), GFP_KERNEL)?;
            doorbells.push(DoorbellPage::new()?, GFP_KERNEL)?;
        }
        let p = num_portals as usize;
        let mut portals = KVVec::with_capacity(p, GFP_KERNEL)?;
        let mut portal_pages = KVVec::with_capacity(p, GFP_KERNEL)?;
        for _ in 0..p {
            portals.push(Portal::default(), GFP_KERNEL)?;
            portal_pages.push(DoorbellPage::new()?, GFP_KERNEL)?;
        }
        let xfer = crate::desc::MAX_TRANSFER as usize;
        let table = QpTable {
            qps,
            bufs: [
                VVec::from_elem(0u8, xfer, GFP_KERNEL)?,
                VVec::from_elem(0u8, xfer, GFP_KERNEL)?,
            ],
            ring_buf: KVec::from_elem(
                0u8,
                crate::engine::BUDGET as usize * crate::desc::DESC_SIZE,
                GFP_KERNEL,
            )?,
            batch_buf: KVec::from_elem(
                0u8,
                crate::desc::MAX_BATCH as usize * crate::desc::DESC_SIZE,
                GFP_KERNEL,
            )?,
            portals,
            retired: QpStats::default(),
            work: KVec::with_capacity(n + p, GFP_KERNEL)?,
            active: KVec::with_capacity(n + p, GFP_KERNEL)?,
            round: 0,
        };
        Arc::pin_init(
            try_pin_init!(Queues {
                table <- new_mutex!(table),
                doorbells,
                portal_pages,
            }),
            GFP_KERNEL,
        )
    }

    /// Counters summed over every queue pair and portal the PF has had.
    pub fn totals(&self) -> QpStats {
        let table = self.table.lock();
        let qps = table.qps.iter().map(|q| q.stats);
        let portals = table.portals.iter().map(|p| p.stats);
        Iterator::chain(qps, portals).fold(table.retired, |sum, s| sum + s)
    }
}

/// The PF's counters in `/sys/class/vdcm_sim/vdcm_simN/stats/`.
impl Counters for Queues {
    const NAMES: &'static [&'static CStr] = &[
        c"descriptors",
        c"bytes",
        c"faults",
        c"invalid",
        c"interrupts",
        c"qps_in_use",
        c"portals_in_use",
    ];

    fn counter(&self, index: usize) -> u64 {
        if index >= 5 {
            let table = self.table.lock();
            return match index {
                5 => table.qps.iter().filter(|q| q.allocated).count() as u64,
                _ => table.portals.iter().filter(|p| p.allocated).count() as u64,
            };
        }
        let t = self.totals();
        [t.descriptors, t.bytes, t.faults, t.invalid, t.interrupts][index]
    }
}

/// A simulated PF's queue pairs, its engine and its config space.
pub struct SimPf {
    pub(crate) queues: Arc<Queues>,
    engine: Arc<Poller<Engine>>,
    siov: bool,
}

/// The config space the PF shows the VDCM, as little-endian dwords from
/// offset 0: a header with experimental IDs (vendor 0xfffe is not assigned
/// by the PCI-SIG), and from 0x100 the one extended capability a SIOV PF
/// must have, the Scalable IOV DVSEC (vendor 0x8086, DVSEC ID 5,
/// 24 bytes: supported and system page size 4 KiB).
const PF_CONFIG_HEADER: [(u32, u32); 3] = [
    (0x00, 0x51a1_fffe),
    (0x08, 0x0880_0001),
    (0x2c, 0x51a1_fffe),
];
const PF_SIOV_DVSEC: [(u32, u32); 6] = [
    // Extended capability ID 0x23 (DVSEC), version 1, no next capability.
    (0x100, 0x0001_0023),
    // DVSEC vendor 0x8086, revision 0, length 24.
    (0x104, 0x0180_8086),
    // DVSEC ID 5; flags 0, function dependency link 0.
    (0x108, 0x0000_0005),
    // Supported page sizes: 4 KiB.
    (0x10c, 0x0000_0001),
    // System page size: 4 KiB.
    (0x110, 0x0000_0001),
    // Capabilities: none.
    (0x114, 0x0000_0000),
];

impl SimPf {
    /// A PF whose queue pairs and portals are `queues`; `siov`: whether
    /// its config space carries the SIOV capability.
    pub fn new(queues: Arc<Queues>, siov: bool) -> Result<impl PinInit<Self, Error>> {
        let engine = Poller::new(Engine::new(queues.clone()))?;
        Ok(try_init!(SimPf {
            queues,
            engine,
            siov
        }))
    }

    /// Reads `len` (1, 2 or 4, naturally aligned) bytes at `offset` of the
    /// PF's config space.
    pub fn config_read(&self, offset: u32, len: u32) -> Result<u32> {
        if !matches!(len, 1 | 2 | 4) || offset % len != 0 || offset >= 0x1000 {
            return Err(EINVAL);
        }
        let dvsec: &[(u32, u32)] = if self.siov { &PF_SIOV_DVSEC } else { &[] };
        let dword = Iterator::chain(PF_CONFIG_HEADER.iter(), dvsec.iter())
            .find(|(at, _)| *at == offset & !3)
            .map_or(0, |&(_, v)| v);
        let value = dword >> (8 * (offset % 4));
        Ok(if len == 4 {
            value
        } else {
            value & ((1 << (8 * len)) - 1)
        })
    }

    /// Waits until no descriptor of any queue pair or portal is being
    /// processed (the engine holds the table while it runs them).
    pub fn drain(&self) {
        drop(self.queues.table.lock());
    }

    /// Runs `f` on allocated queue pair `qp`; `EINVAL` for any other.
    fn with_qp<R>(&self, qp: u32, f: impl FnOnce(&mut Qp) -> Result<R>) -> Result<R> {
        let mut table = self.queues.table.lock();
        match table.qps.get_mut(qp as usize) {
            Some(q) if q.allocated => f(q),
            _ => Err(EINVAL),
        }
    }
}

impl Drop for SimPf {
    fn drop(&mut self) {
        // The VDCM stopped every queue pair when the PF unregistered; this
        // waits for a poll that may still be running.
        self.engine.stop();
    }
}

/// The PF's queue pairs and portals, as its ADIs (and its in-kernel
/// client) use them. Calls for one queue pair or portal are serialised by
/// their user.
impl SimPf {
    /// Takes one free queue pair; `ENOSPC` if none is.
    pub fn qp_alloc(&self) -> Result<u32> {
        let mut table = self.queues.table.lock();
        let (i, q) = table
            .qps
            .iter_mut()
            .enumerate()
            .find(|(_, q)| !q.allocated)
            .ok_or(ENOSPC)?;
        // The poll's list may still hold the queue pair: keep saying so.
        *q = Qp {
            allocated: true,
            listed: q.listed,
            ..Qp::default()
        };
        // The doorbell of a fresh queue pair reads 0, not what the last
        // tenant wrote.
        self.queues
            .doorbells
            .get(i)
            .ok_or(EINVAL)?
            .write_u32(DOORBELL_TAIL, 0)?;
        u32::try_from(i).map_err(|_| EINVAL)
    }

    /// Gives back queue pair `qp`, keeping its counters in the totals.
    pub fn qp_free(&self, qp: u32) {
        let mut table = self.queues.table.lock();
        let QpTable { qps, retired, .. } = &mut *table;
        if let Some(q) = qps.get_mut(qp as usize).filter(|q| q.allocated) {
            *retired = *retired + q.stats;
            *q = Qp {
                listed: q.listed,
                ..Qp::default()
            };
        }
    }

    /// Programs queue pair `qp`'s PASID-table entry: `pasid` and `tenant`.
    pub fn qp_bind(&self, qp: u32, pasid: u32, tenant: TenantRef) -> Result {
        self.with_qp(qp, |q| {
            if q.binding.is_some() {
                return Err(EBUSY);
            }
            q.binding = Some((pasid, tenant));
            Ok(())
        })
    }

    /// Clears queue pair `qp`'s PASID-table entry (stopping it).
    pub fn qp_unbind(&self, qp: u32) {
        let _ = self.with_qp(qp, |q| {
            q.ring = None;
            q.binding = None;
            Ok(())
        });
    }

    /// Starts queue pair `qp` on the ring at `ring_iova` of `ring_size`
    /// descriptors, signalling completions on MSI-X `vector` of its ADI.
    pub fn qp_start(&self, qp: u32, ring_iova: u64, ring_size: u32, vector: u32) -> Result {
        let ring = Ring {
            base: ring_iova,
            size: ring_size,
            head: 0,
        };
        self.qp_start_at(qp, ring, vector, false, None)
    }

    /// Starts queue pair `qp` on `ring` from `ring.head` (a fresh ring
    /// starts at 0), paused or not. The doorbell page takes `page` (a
    /// migrated tenant's), or reads 0 for a fresh ring.
    pub fn qp_start_at(
        &self,
        qp: u32,
        ring: Ring,
        vector: u32,
        paused: bool,
        page: Option<&[u8]>,
    ) -> Result {
        self.with_qp(qp, |q| {
            if q.binding.is_none() {
                return Err(ENXIO);
            }
            if !ring.size.is_power_of_two() || ring.base % 64 != 0 {
                return Err(EINVAL);
            }
            let doorbell = self.queues.doorbells.get(qp as usize).ok_or(EINVAL)?;
            match page {
                Some(bytes) => doorbell.write(0, bytes)?,
                // The tenant counts its tail from 0 for a fresh ring.
                None => doorbell.write_u32(DOORBELL_TAIL, 0)?,
            }
            q.ring = Some(ring);
            q.vector = vector;
            q.paused = paused;
            Ok(())
        })?;
        if !paused {
            self.queues.table.lock().activate(Queue::Qp(qp as usize));
        }
        self.engine.kick();
        Ok(())
    }

    /// Pauses queue pair `qp` (its descriptor in flight finishes first:
    /// the engine holds the table while it runs one) or lets it go on.
    pub fn qp_pause(&self, qp: u32, paused: bool) {
        let _ = self.with_qp(qp, |q| {
            q.paused = paused;
            Ok(())
        });
        if !paused {
            self.queues.table.lock().activate(Queue::Qp(qp as usize));
            self.engine.kick();
        }
    }

    /// Copies queue pair `qp`'s doorbell page into `buf` (one page).
    pub fn qp_doorbell_copy(&self, qp: u32, buf: &mut [u8]) -> Result {
        self.queues
            .doorbells
            .get(qp as usize)
            .ok_or(EINVAL)?
            .read(0, buf)
    }

    /// Copies portal `portal`'s page into `buf` (one page).
    pub fn portal_page_copy(&self, portal: u32, buf: &mut [u8]) -> Result {
        self.queues
            .portal_pages
            .get(portal as usize)
            .ok_or(EINVAL)?
            .read(0, buf)
    }

    /// Queue pair `qp`'s ring, while started.
    pub fn qp_ring(&self, qp: u32) -> Option<Ring> {
        self.with_qp(qp, |q| Ok(q.ring)).ok().flatten()
    }

    /// Stops queue pair `qp`, waiting for descriptors in flight; its doorbell page is cleared.
    pub fn qp_stop(&self, qp: u32) {
        // Taking the lock waits for descriptors being processed.
        let _ = self.with_qp(qp, |q| {
            q.ring = None;
            q.paused = false;
            // The next user of the queue pair reads nothing of this one.
            self.queues
                .doorbells
                .get(qp as usize)
                .ok_or(EINVAL)?
                .clear()
        });
    }

    /// The doorbell page of queue pair `qp`.
    pub fn qp_doorbell(&self, qp: u32) -> Option<&kernel::page::Page> {
        self.queues
            .doorbells
            .get(qp as usize)
            .map(DoorbellPage::page)
    }

    /// The counters of queue pair `qp`.
    pub fn qp_stats(&self, qp: u32) -> QpStats {
        self.with_qp(qp, |q| Ok(q.stats)).unwrap_or_default()
    }

    /// Opens a portal on the shared queue pair for `tenant` with `pasid`, disabled.
    pub fn portal_alloc(&self, pasid: u32, tenant: TenantRef) -> Result<u32> {
        let mut table = self.queues.table.lock();
        let (i, p) = table
            .portals
            .iter_mut()
            .enumerate()
            .find(|(_, p)| !p.allocated)
            .ok_or(ENOSPC)?;
        // Nothing of the portal's last tenant stays readable.
        self.queues.portal_pages.get(i).ok_or(EINVAL)?.clear()?;
        *p = Portal {
            allocated: true,
            binding: Some((pasid, tenant)),
            listed: p.listed,
            ..Portal::default()
        };
        u32::try_from(i).map_err(|_| EINVAL)
    }

    /// Accepts work through the portal (completions on MSI-X `vector`), or
    /// stops: waits for its work in flight and drops what was submitted.
    pub fn portal_enable(&self, portal: u32, enable: bool, vector: u32) -> Result {
        self.portal_set(portal, enable, vector, None, false)
    }

    /// Enables or disables the portal; enabling at `head` (a migrated
    /// tenant's, with its `page`) or at the page's tail as it is now, and
    /// `paused` or not.
    pub fn portal_set(
        &self,
        portal: u32,
        enable: bool,
        vector: u32,
        head: Option<(u32, &[u8])>,
        paused: bool,
    ) -> Result {
        {
            // Taking the lock waits for the portal's work in flight.
            let mut table = self.queues.table.lock();
            let p = table
                .portals
                .get_mut(portal as usize)
                .filter(|p| p.allocated)
                .ok_or(EINVAL)?;
            let page = self
                .queues
                .portal_pages
                .get(portal as usize)
                .ok_or(EINVAL)?;
            if !enable {
                // What was submitted and not run is dropped, and nothing
                // of it stays readable by the next user of the ADI.
                page.clear()?;
            }
            p.head = match head {
                Some((head, bytes)) => {
                    page.write(0, bytes)?;
                    head
                }
                // Work starts at the tail as it is now.
                None => page.read_u32(PORTAL_TAIL)?,
            };
            p.restart_classes();
            p.enabled = enable;
            p.vector = vector;
            p.paused = enable && paused;
            if enable && !paused {
                table.activate(Queue::Portal(portal as usize));
            }
        }
        if enable {
            self.engine.kick();
        }
        Ok(())
    }

    /// Pauses the portal or lets it go on (see [`SimPf::qp_pause`]).
    pub fn portal_pause(&self, portal: u32, paused: bool) {
        {
            let mut table = self.queues.table.lock();
            if let Some(p) = table
                .portals
                .get_mut(portal as usize)
                .filter(|p| p.allocated)
            {
                p.paused = paused && p.enabled;
            }
            if !paused {
                table.activate(Queue::Portal(portal as usize));
            }
        }
        if !paused {
            self.engine.kick();
        }
    }

    /// Whether the portal is enabled, and its head.
    pub fn portal_position(&self, portal: u32) -> Option<(bool, u32)> {
        let table = self.queues.table.lock();
        table
            .portals
            .get(portal as usize)
            .filter(|p| p.allocated)
            .map(|p| (p.enabled, p.head))
    }

    /// Closes a portal, keeping its counters in the totals.
    pub fn portal_free(&self, portal: u32) {
        let mut table = self.queues.table.lock();
        let QpTable {
            portals, retired, ..
        } = &mut *table;
        if let Some(p) = portals.get_mut(portal as usize).filter(|p| p.allocated) {
            *retired = *retired + p.stats;
            *p = Portal {
                listed: p.listed,
                ..Portal::default()
            };
        }
    }

    /// The page of portal `portal`.
    pub fn portal_page(&self, portal: u32) -> Option<&kernel::page::Page> {
        self.queues
            .portal_pages
            .get(portal as usize)
            .map(DoorbellPage::page)
    }

    /// Schedules the ADI of queue pairs `qps` by `qos`: its state lives in
    /// the first one's entry, which the others point to.
    pub fn qps_set_qos(&self, qps: &[u32], qos: &Qos) -> Result {
        let leader = *qps.first().ok_or(EINVAL)? as usize;
        let mut table = self.queues.table.lock();
        for &qp in qps {
            let q = table
                .qps
                .get_mut(qp as usize)
                .filter(|q| q.allocated)
                .ok_or(EINVAL)?;
            q.leader = Some(leader);
        }
        table.qps.get_mut(leader).ok_or(EINVAL)?.sched.set(qos);
        drop(table);
        // A raised limit or a new guarantee can let waiting work run now.
        self.engine.kick();
        Ok(())
    }

    /// Schedules portal `portal`'s ADI by `qos`; a new threshold applies to
    /// what is submitted from now on.
    pub fn portal_set_qos(&self, portal: u32, qos: &Qos) -> Result {
        {
            let mut table = self.queues.table.lock();
            let p = table
                .portals
                .get_mut(portal as usize)
                .filter(|p| p.allocated)
                .ok_or(EINVAL)?;
            p.sched.set(qos);
        }
        self.engine.kick();
        Ok(())
    }

    /// The counters of portal `portal`.
    pub fn portal_stats(&self, portal: u32) -> QpStats {
        let table = self.queues.table.lock();
        table
            .portals
            .get(portal as usize)
            .filter(|p| p.allocated)
            .map(|p| p.stats)
            .unwrap_or_default()
    }
}

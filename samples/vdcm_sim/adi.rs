// SPDX-License-Identifier: GPL-2.0

//! The simulated PF's ADIs: the types it offers the VDCM, and what their
//! registers mean.
//!
//! Three types: `1q` and `4q` take dedicated queue pairs, `shared` takes
//! one portal on the shared queue pair. Every ADI has the same virtual
//! device: BAR0 is one trapped range holding the register file (`regs`)
//! and, at [`regs::MSIX_TABLE`] and [`regs::MSIX_PBA`], the MSI-X table
//! and PBA the VDCM emulates; BAR2 is one directly mapped page per queue,
//! the queue pair's doorbell page (or the portal's page), written by the
//! tenant with no trap.
//!
//! Locking: `ctl` (one register action with effects at a time, held
//! across the queue-pair operations; it also says whether the ADI is
//! quiesced for a migration) before `regs`, which is never held across a
//! call into the queue pairs or the tenant. Plain register stores take
//! `regs` only.
//!
//! Migration: quiescing pauses every queue pair or portal of the ADI (the
//! engine finishes the descriptor it is on and fetches no more; what the
//! tenant writes to the doorbell page meanwhile waits there). The saved
//! state is [`STATE_MAGIC`], [`STATE_VERSION`], the backing kind, the
//! register file ([`Bar0::save`]) and, per queue, whether it runs, its
//! head and its doorbell (or portal) page, so submitted work that was not
//! fetched yet runs on the destination. PASIDs are not in it: each ADI
//! keeps its own, and the guest's `PASID` register reads the one of the
//! ADI it runs on.

use kernel::new_mutex;
use kernel::page::Page;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::Mutex;
use pin_init::InPlaceWrite;

use crate::abi::CLASS_CODE;
use crate::abi::DEVICE_ID;
use crate::abi::VENDOR_ID;
use crate::desc;
use crate::regs;
use crate::regs::Bar0;
use crate::regs::Bar0Access;
use crate::regs::Bar0Effect;
use crate::regs::QueueError;
use crate::regs::QueueState;
use crate::sim_pf::QpStats;
use crate::sim_pf::Ring;
use crate::sim_pf::SimPf;
use crate::vdcm_kernel::pf;
use crate::vdcm_kernel::pf::AdiType;
use crate::vdcm_kernel::pf::Bar;
use crate::vdcm_kernel::pf::PfDriver;
use crate::vdcm_kernel::pf::Qos;
use crate::vdcm_kernel::pf::Range;
use crate::vdcm_kernel::pf::RangeKind;
use crate::vdcm_kernel::tenant::TenantRef;
use crate::vdcm_kernel::wire::Reader;
use crate::vdcm_kernel::wire::Writer;

/// The PF's pools: its queue pairs, and its portals.
pub const POOL_QPS: u32 = 0;
/// See [`POOL_QPS`].
pub const POOL_PORTALS: u32 = 1;

/// BAR0: the register file, all trapped.
const BAR0: Bar = Bar {
    size: regs::BAR0_SIZE,
    bits64: true,
    prefetchable: false,
    ranges: &[Range {
        kind: RangeKind::Trap,
        offset: 0,
        size: regs::BAR0_SIZE as u32,
    }],
};

/// BAR2 of an ADI with `pages` doorbell pages, all mapped directly.
const fn doorbells(pages: u32, ranges: &'static [Range]) -> Bar {
    Bar {
        size: pages as u64 * PAGE_SIZE as u64,
        bits64: true,
        prefetchable: false,
        ranges,
    }
}

const ONE_PAGE: &[Range] = &[Range {
    kind: RangeKind::Direct,
    offset: 0,
    size: PAGE_SIZE as u32,
}];
const FOUR_PAGES: &[Range] = &[Range {
    kind: RangeKind::Direct,
    offset: 0,
    size: 4 * PAGE_SIZE as u32,
}];

/// First word of an ADI's saved state ("VSIM").
pub const STATE_MAGIC: u32 = 0x4d49_5356;
/// Version of the saved state's layout.
pub const STATE_VERSION: u16 = 1;
/// Bytes saved per queue: running flag, head, and its page.
const QUEUE_STATE: usize = 1 + 4 + PAGE_SIZE;

/// Bytes of the saved state of an ADI with `queues` queues.
const fn state_size(queues: u16) -> u32 {
    (4 + 2 + 1 + Bar0::saved_size(queues) + queues as usize * QUEUE_STATE) as u32
}

/// MSI-X vectors of an ADI: one per queue plus one for errors.
const fn vectors_for(queues: u16) -> u16 {
    queues + 1
}

/// An ADI type of the simulated PF with `queues` queues, drawing `units`
/// of `pool`.
const fn adi_type(
    name: &'static CStr,
    description: &'static CStr,
    queues: u16,
    pool: u32,
    units: u32,
    bar2: Bar,
) -> AdiType {
    AdiType {
        name,
        description,
        vendor: VENDOR_ID,
        device: DEVICE_ID,
        subsystem_vendor: VENDOR_ID,
        subsystem: DEVICE_ID,
        revision: regs::BAR0_VERSION,
        class: CLASS_CODE,
        bars: [BAR0, Bar::NONE, bar2, Bar::NONE, Bar::NONE, Bar::NONE],
        msix: pf::Msix {
            vectors: vectors_for(queues),
            bar: 0,
            table_offset: regs::MSIX_TABLE,
            pba_offset: regs::MSIX_PBA,
        },
        pool,
        units,
        // One pin per queue: its ring, while it runs.
        pins: queues as u32,
        state_size: state_size(queues),
        max_threshold: 0,
    }
}

/// The types, in the order of the mdev types; `shared` only with portals.
pub const TYPES: [AdiType; 3] = [
    adi_type(
        c"1q",
        c"VDCM ADI, 1 dedicated queue pair",
        1,
        POOL_QPS,
        1,
        doorbells(1, ONE_PAGE),
    ),
    adi_type(
        c"4q",
        c"VDCM ADI, 4 dedicated queue pairs",
        4,
        POOL_QPS,
        4,
        doorbells(4, FOUR_PAGES),
    ),
    // A portal holds at most its slots in flight: that bounds its QoS
    // threshold.
    with_threshold(
        adi_type(
            c"shared",
            c"VDCM ADI, 1 portal on a shared queue pair",
            1,
            POOL_PORTALS,
            1,
            doorbells(1, ONE_PAGE),
        ),
        crate::abi::PORTAL_SLOTS,
    ),
];

/// `t` with a QoS threshold of at most `max`.
const fn with_threshold(mut t: AdiType, max: u32) -> AdiType {
    t.max_threshold = max;
    t
}

/// Index of the shared type in [`TYPES`].
const SHARED: u32 = 2;

/// The PF's per-ADI counters, in [`PfDriver::counters`] order.
pub const COUNTERS: &[&CStr] = &[
    c"descriptors",
    c"bytes",
    c"faults",
    c"invalid",
    c"retries",
    c"pf_bytes",
];

/// What backs an ADI's queues.
enum Backing {
    /// Whole queue pairs: queue `q` is queue pair `qps[q]`.
    Dedicated(KVec<u32>),
    /// One portal on the shared queue pair, as queue 0.
    Shared(u32),
}

/// One ADI of the simulated PF.
#[pin_data]
pub struct SimAdi {
    backing: Backing,
    tenant: TenantRef,
    /// Held across register actions; `true` while quiesced.
    #[pin]
    ctl: Mutex<bool>,
    #[pin]
    regs: Mutex<Bar0>,
}

impl Backing {
    /// The kind, as the saved state records it.
    fn kind(&self) -> u8 {
        match self {
            Backing::Dedicated(_) => 0,
            Backing::Shared(_) => 1,
        }
    }
}

impl SimAdi {
    /// What the PF allocated for the ADI: this state, its register file's
    /// queue table and its list of queue pairs. The entries of the queue
    /// pair and portal tables it uses are not counted: they are the PF's,
    /// allocated at load for every queue pair and portal whether an ADI
    /// uses them or not.
    fn own_bytes(&self) -> usize {
        let backing = match &self.backing {
            Backing::Dedicated(qps) => crate::vdcm_kernel::footprint::of_vec(qps),
            Backing::Shared(_) => 0,
        };
        core::mem::size_of::<SimAdi>() + self.regs.lock().heap_bytes() + backing
    }

    fn num_queues(&self) -> u16 {
        match &self.backing {
            Backing::Dedicated(qps) => qps.len() as u16,
            Backing::Shared(_) => 1,
        }
    }
}

impl SimPf {
    /// Takes `n` queue pairs and binds each to `pasid` and `tenant`; on
    /// failure gives back what it took.
    fn take_queue_pairs(&self, n: u16, pasid: u32, tenant: &TenantRef) -> Result<KVec<u32>> {
        let mut qps = KVec::with_capacity(n.into(), GFP_KERNEL)?;
        let give_back = |qps: &KVec<u32>| {
            for &qp in qps.iter() {
                self.qp_unbind(qp);
                self.qp_free(qp);
            }
        };
        for _ in 0..n {
            let qp = match self.qp_alloc() {
                Ok(qp) => qp,
                Err(e) => {
                    give_back(&qps);
                    return Err(e);
                }
            };
            // Cannot fail: the capacity is reserved.
            let _ = qps.push(qp, GFP_KERNEL);
            if let Err(e) = self.qp_bind(qp, pasid, tenant.clone()) {
                give_back(&qps);
                return Err(e);
            }
        }
        Ok(qps)
    }

    /// Stops queue `q` of `adi` (its work in flight finishes first) and
    /// drops its ring's pin.
    fn stop_queue(&self, adi: &SimAdi, q: u16) {
        match &adi.backing {
            Backing::Dedicated(qps) => {
                if let Some(&qp) = qps.get(usize::from(q)) {
                    self.qp_stop(qp);
                }
            }
            Backing::Shared(portal) => {
                let _ = self.portal_enable(*portal, false, 0);
            }
        }
        adi.tenant.unpin(u32::from(q));
    }

    fn stop_queues(&self, adi: &SimAdi) {
        for q in 0..adi.num_queues() {
            self.stop_queue(adi, q);
        }
    }

    /// Validates queue `q`'s registers, pins its ring and starts it (at
    /// `head`, with the doorbell `page` of a migrated tenant, or afresh),
    /// paused while the ADI is quiesced.
    fn start_queue(
        &self,
        adi: &SimAdi,
        q: u16,
        paused: bool,
        resume: Option<(u32, &[u8])>,
    ) -> core::result::Result<QueueState, QueueError> {
        let (ring, vector, enabled) = {
            let regs = adi.regs.lock();
            (
                regs.queue_ring(q),
                regs.queue_vector(q),
                regs.device_enabled(),
            )
        };
        if !enabled {
            return Err(QueueError::DeviceDisabled);
        }
        let vector = u32::from(vector.ok_or(QueueError::PfRefused)?);
        let qp = match &adi.backing {
            Backing::Shared(portal) => {
                // A portal's ring is its page: no ring registers to check
                // and nothing to pin.
                self.portal_set(*portal, true, vector, resume, paused)
                    .map_err(|_| QueueError::PfRefused)?;
                return Ok(QueueState::Running);
            }
            Backing::Dedicated(qps) => *qps.get(usize::from(q)).ok_or(QueueError::PfRefused)?,
        };
        let (base, size) = ring.ok_or(QueueError::PfRefused)?;
        if !size.is_power_of_two() || !(2..=1 << regs::MAX_RING_ORDER).contains(&size) {
            return Err(QueueError::BadRingSize);
        }
        if base % regs::RING_ALIGN != 0 {
            return Err(QueueError::BadRingSize);
        }
        let bytes = u64::from(size) * desc::DESC_SIZE as u64;
        adi.tenant
            .pin(u32::from(q), base, bytes, false)
            .map_err(|_| QueueError::RingFault)?;
        let ring = Ring {
            base,
            size,
            head: resume.map_or(0, |(head, _)| head),
        };
        let page = resume.map(|(_, page)| page);
        if self.qp_start_at(qp, ring, vector, paused, page).is_err() {
            adi.tenant.unpin(u32::from(q));
            return Err(QueueError::PfRefused);
        }
        Ok(QueueState::Running)
    }

    /// Acts on what a BAR0 write asked for. The caller holds `adi.ctl`
    /// (whose value, `quiesced`, it passes), not `adi.regs`.
    fn apply(&self, adi: &SimAdi, effect: Bar0Effect, quiesced: bool) {
        match effect {
            Bar0Effect::None => {}
            // The engine runs a queue's descriptors with the queue-pair
            // table locked: once the lock is ours, none is in flight.
            Bar0Effect::QueueDrain(_) => self.drain(),
            Bar0Effect::DeviceEnable(on) => {
                if !on {
                    self.stop_queues(adi);
                }
                let mut regs = adi.regs.lock();
                regs.set_device_enabled(on);
                if !on {
                    for q in 0..regs.num_queues() {
                        regs.set_queue_state(q, QueueState::Stopped);
                    }
                }
            }
            Bar0Effect::DeviceReset => {
                self.stop_queues(adi);
                adi.regs.lock().reset();
            }
            Bar0Effect::QueueEnable(q) => {
                let state = self
                    .start_queue(adi, q, quiesced, None)
                    .unwrap_or_else(QueueState::Failed);
                adi.regs.lock().set_queue_state(q, state);
            }
            Bar0Effect::QueueDisable(q) | Bar0Effect::QueueReset(q) => {
                self.stop_queue(adi, q);
                let mut regs = adi.regs.lock();
                regs.set_queue_state(q, QueueState::Stopped);
                if effect == Bar0Effect::QueueReset(q) {
                    regs.reset_queue(q);
                }
            }
        }
    }

    /// Pauses every queue of `adi`, or lets them go on.
    fn pause_queues(&self, adi: &SimAdi, paused: bool) {
        match &adi.backing {
            Backing::Dedicated(qps) => qps.iter().for_each(|&qp| self.qp_pause(qp, paused)),
            Backing::Shared(portal) => self.portal_pause(*portal, paused),
        }
    }

    /// Whether queue `q` of `adi` runs, and the descriptors it consumed.
    fn queue_position(&self, adi: &SimAdi, q: u16) -> Option<(bool, u32)> {
        match &adi.backing {
            Backing::Dedicated(qps) => {
                let ring = self.qp_ring(*qps.get(usize::from(q))?);
                Some((ring.is_some(), ring.map_or(0, |r| r.head)))
            }
            Backing::Shared(portal) => self.portal_position(*portal),
        }
    }

    fn queue_stats(&self, adi: &SimAdi) -> QpStats {
        match &adi.backing {
            Backing::Shared(portal) => self.portal_stats(*portal),
            Backing::Dedicated(qps) => qps
                .iter()
                .fold(QpStats::default(), |sum, &qp| sum + self.qp_stats(qp)),
        }
    }
}

impl PfDriver for SimPf {
    type Adi = SimAdi;

    fn config_read(&self, offset: u32, len: u32) -> Result<u32> {
        SimPf::config_read(self, offset, len)
    }

    fn adi_create(&self, ty: u32, pasid: u32, tenant: TenantRef) -> Result<Pin<KBox<SimAdi>>> {
        let t = TYPES.get(ty as usize).ok_or(EINVAL)?;
        let queues = t.msix.vectors - 1;
        let mut regs = Bar0::new(queues, t.msix.vectors)?;
        for q in 0..queues {
            regs.set_queue_pasid(q, pasid);
        }
        // The state's memory first: once the queue pairs are taken,
        // nothing can fail.
        let slot = KBox::<SimAdi>::new_uninit(GFP_KERNEL)?;
        let backing = if ty == SHARED {
            Backing::Shared(self.portal_alloc(pasid, tenant.clone())?)
        } else {
            Backing::Dedicated(self.take_queue_pairs(queues, pasid, &tenant)?)
        };
        let init = pin_init!(SimAdi {
            backing,
            tenant,
            ctl <- new_mutex!(false),
            regs <- new_mutex!(regs),
        });
        match slot.write_pin_init(init) {
            Ok(adi) => Ok(adi),
            Err(never) => match never {},
        }
    }

    fn adi_destroy(&self, adi: Pin<KBox<SimAdi>>) {
        self.stop_queues(&adi);
        match &adi.backing {
            Backing::Dedicated(qps) => {
                for &qp in qps.iter() {
                    self.qp_unbind(qp);
                    self.qp_free(qp);
                }
            }
            Backing::Shared(portal) => self.portal_free(*portal),
        }
    }

    fn trap_read(&self, adi: &SimAdi, bar: u32, offset: u64, size: u32) -> Result<u64> {
        if bar != 0 {
            return Err(EINVAL);
        }
        let access = Bar0Access::decode(offset, size as usize)?;
        Ok(adi.regs.lock().read(access, size as usize))
    }

    fn trap_write(&self, adi: &SimAdi, bar: u32, offset: u64, size: u32, value: u64) -> Result {
        if bar != 0 {
            return Err(EINVAL);
        }
        let access = Bar0Access::decode(offset, size as usize)?;
        if !access.has_effects() {
            // A plain register store (ring base and size, ...): the
            // register file's lock is enough, and the common slow-path
            // write stays cheap.
            let _ = adi.regs.lock().write(access, size as usize, value);
            return Ok(());
        }
        let ctl = adi.ctl.lock();
        let effect = adi.regs.lock().write(access, size as usize, value);
        self.apply(adi, effect, *ctl);
        Ok(())
    }

    fn direct_page<'a>(&'a self, adi: &'a SimAdi, bar: u32, offset: u64) -> Option<&'a Page> {
        if bar != 2 {
            return None;
        }
        let q = usize::try_from(offset / PAGE_SIZE as u64).ok()?;
        match &adi.backing {
            Backing::Dedicated(qps) => self.qp_doorbell(*qps.get(q)?),
            Backing::Shared(portal) if q == 0 => self.portal_page(*portal),
            Backing::Shared(_) => None,
        }
    }

    fn reset(&self, adi: &SimAdi) {
        let mut quiesced = adi.ctl.lock();
        self.stop_queues(adi);
        adi.regs.lock().reset();
        *quiesced = false;
    }

    fn unpinned(&self, adi: &SimAdi, slot: u32) {
        let _ctl = adi.ctl.lock();
        let Ok(q) = u16::try_from(slot) else {
            return;
        };
        // The tenant took the ring away: the queue cannot go on.
        self.stop_queue(adi, q);
        adi.regs
            .lock()
            .set_queue_state(q, QueueState::Failed(QueueError::RingFault));
    }

    fn quiesce(&self, adi: &SimAdi) -> Result {
        let mut quiesced = adi.ctl.lock();
        self.pause_queues(adi, true);
        *quiesced = true;
        Ok(())
    }

    fn unquiesce(&self, adi: &SimAdi) {
        let mut quiesced = adi.ctl.lock();
        *quiesced = false;
        self.pause_queues(adi, false);
    }

    fn save(&self, adi: &SimAdi, buf: &mut [u8]) -> Result<usize> {
        let _ctl = adi.ctl.lock();
        let mut w = Writer::new(buf);
        w.u32(STATE_MAGIC)?;
        w.u16(STATE_VERSION)?;
        w.u8(adi.backing.kind())?;
        adi.regs.lock().save(&mut w)?;
        for q in 0..adi.num_queues() {
            let (running, head) = self.queue_position(adi, q).ok_or(EINVAL)?;
            w.u8(u8::from(running))?;
            w.u32(head)?;
            let page = w.reserve(PAGE_SIZE)?;
            match &adi.backing {
                Backing::Dedicated(qps) => {
                    self.qp_doorbell_copy(*qps.get(usize::from(q)).ok_or(EINVAL)?, page)?
                }
                Backing::Shared(portal) => self.portal_page_copy(*portal, page)?,
            }
        }
        Ok(w.len())
    }

    fn restore(&self, adi: &SimAdi, buf: &[u8]) -> Result {
        let quiesced = adi.ctl.lock();
        let mut r = Reader::new(buf);
        if r.u32()? != STATE_MAGIC || r.u16()? != STATE_VERSION || r.u8()? != adi.backing.kind() {
            return Err(EINVAL);
        }
        // Everything is checked before anything changes.
        let regs = adi.regs.lock().restored(&mut r)?;
        let mut queues = KVec::with_capacity(usize::from(adi.num_queues()), GFP_KERNEL)?;
        for q in 0..adi.num_queues() {
            let running = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(EINVAL),
            };
            let head = r.u32()?;
            let page = r.bytes(PAGE_SIZE)?;
            if running && !(regs.device_enabled() && regs.queue_enabled(q)) {
                return Err(EINVAL);
            }
            queues.push((running, head, page), GFP_KERNEL)?;
        }
        if r.remaining() != 0 {
            return Err(EINVAL);
        }
        *adi.regs.lock() = regs;
        for (q, &(running, head, page)) in (0u16..).zip(queues.iter()) {
            if !running {
                continue;
            }
            if let Err(e) = self.start_queue(adi, q, *quiesced, Some((head, page))) {
                // The ADI was reset before the restore: back to that.
                self.stop_queues(adi);
                adi.regs.lock().reset();
                return Err(match e {
                    QueueError::RingFault => EFAULT,
                    _ => EINVAL,
                });
            }
        }
        Ok(())
    }

    fn counters(&self, adi: &SimAdi, values: &mut [u64]) {
        let s = self.queue_stats(adi);
        for (v, c) in values.iter_mut().zip([
            s.descriptors,
            s.bytes,
            s.faults,
            s.invalid,
            s.retries,
            adi.own_bytes() as u64,
        ]) {
            *v = c;
        }
    }

    fn set_qos(&self, adi: &SimAdi, qos: &Qos) -> Result {
        match &adi.backing {
            Backing::Dedicated(qps) => self.qps_set_qos(qps, qos),
            Backing::Shared(portal) => self.portal_set_qos(*portal, qos),
        }
    }
}

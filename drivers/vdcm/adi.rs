// SPDX-License-Identifier: GPL-2.0

//! The virtual PCI device of one ADI, as user space sees it through VFIO.
//!
//! Regions follow the vfio-pci layout; region `i` starts at file offset
//! `i << REGION_SHIFT`:
//!
//! - BAR0: the trapped slow-path register file ([`regs::Bar0`]), 16 KiB;
//! - BAR2: the fast path, one doorbell page per queue pair, mapped straight
//!   into user space (`mmap`); the tenant writes a queue's tail to offset 0
//!   of its page and the PF sees it with no trap. Reads and writes through
//!   the device fd are refused: the doorbells have no trapped path;
//! - config space: emulated, 4 KiB;
//! - every other region is absent (size 0).
//!
//! Every access to a trapped region is counted per region, so tests can
//! prove which paths trap and which do not.
//!
//! Locking: `bar0` protects the register file; it is taken for one guest
//! access at a time and never held across calls into the PF.

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;
use kernel::sync::Mutex;
use kernel::uaccess::UserSliceReader;
use kernel::uaccess::UserSliceWriter;

use crate::host::PfLink;
use crate::host::QpReservation;
use crate::regs;
use crate::regs::Bar0;
use crate::regs::Bar0Access;
use crate::regs::Bar0Effect;
use crate::regs::QueueError;
use crate::regs::QueueState;
use crate::vdcm_kernel::eventfd::EventFd;
use crate::vdcm_kernel::pasid::Pasid;
use crate::vdcm_kernel::pci_config;
use crate::vdcm_kernel::pci_config::ConfigEvent;
use crate::vdcm_kernel::pci_config::ConfigSpace;
use crate::vdcm_kernel::pf;
use crate::vdcm_kernel::pf::QpStats;
use crate::vdcm_kernel::pf::Tenant;
use crate::vdcm_kernel::pf::TenantOps;
use crate::vdcm_kernel::ratelimit::RateLimit;
use crate::vdcm_kernel::vfio;
use crate::vdcm_kernel::vfio::pci;

/// `dev_err!`, rate limited per ADI (see [`RateLimit`]): for errors user
/// space can provoke at will, which must not flood the kernel log.
macro_rules! adi_err {
    ($adi:expr, $dev:expr, $($arg:tt)*) => {
        if let Some(suppressed) = $adi.log_limit.allow() {
            if suppressed > 0 {
                dev_err!($dev, "{} similar messages suppressed\n", suppressed);
            }
            dev_err!($dev, $($arg)*);
        }
    };
}

/// File offsets of region `i` start at `i << REGION_SHIFT`.
pub const REGION_SHIFT: u32 = 40;

/// Requests (one every 10 s, from the VFIO core) a user gets to release a
/// device being removed before the device is revoked.
const FORCE_AFTER_REQUESTS: u32 = 1;

/// Region index of BAR2, the doorbells.
const BAR2_REGION_INDEX: u32 = pci::BAR0_REGION_INDEX + 2;

/// MSI-X vectors of an ADI: one per queue pair plus one for errors.
fn vectors_for(queues: u16) -> u16 {
    queues.saturating_add(1).min(regs::MAX_VECTORS)
}

/// PCI vendor ID of the virtual device: 0xfffe is not assigned to any
/// vendor by the PCI-SIG. The IDs are experimental and name no product.
pub const VENDOR_ID: u16 = 0xfffe;
/// PCI device ID of the virtual device (experimental, see [`VENDOR_ID`]).
pub const DEVICE_ID: u16 = 0x51a0;
/// Class code: system peripheral, other (as DMA engines use).
pub const CLASS_CODE: u32 = 0x08_80_00;

/// The config space of an ADI with `queues` queues, `vectors` MSI-X
/// vectors and a BAR2 of `bar2_size` bytes: a PCI Express endpoint with
/// FLR, Power Management, MSI-X (table and PBA in BAR0) and the SIOV DVSEC.
fn config_space(vectors: u16, bar2_size: u64) -> Result<ConfigSpace> {
    pci_config::ConfigBuilder::new(&pci_config::DeviceIds {
        vendor: VENDOR_ID,
        device: DEVICE_ID,
        revision: regs::BAR0_VERSION,
        class: CLASS_CODE,
        subsystem_vendor: VENDOR_ID,
        subsystem: DEVICE_ID,
    })?
    .bar64(0, regs::BAR0_SIZE, false)?
    .bar64(2, bar2_size.next_power_of_two(), false)?
    .power_management()?
    .pcie_endpoint()?
    .msix(&pci_config::MsixLayout {
        vectors,
        table_bar: 0,
        table_offset: regs::MSIX_TABLE as u32,
        pba_bar: 0,
        pba_offset: regs::MSIX_PBA as u32,
    })?
    .siov_dvsec(&pci_config::SiovDvsec::PAGES_4K)?
    .build()
}

/// Accesses that reached the device model, per trapped region.
pub struct TrapCounters {
    /// BAR0 reads and writes.
    pub bar0: Atomic<u64>,
    /// Config-space reads and writes.
    pub config: Atomic<u64>,
    /// Reads and writes of BAR2 through the device fd (all refused: the
    /// doorbells are only reachable mapped, where no access traps).
    pub bar2: Atomic<u64>,
}

/// The interrupt state of an ADI as VFIO user space set it up: the trigger
/// of each MSI-X vector, and the vectors masked with `SET_IRQS`.
///
/// The MSI-X table in BAR0 is the guest's view, which a VMM emulates
/// itself (as it does for vfio-pci devices); delivery follows what the VMM
/// set here, as vfio-pci's does.
struct Irqs {
    triggers: KVec<Option<EventFd>>,
    masked: KVec<bool>,
    pending: KVec<bool>,
    /// `VFIO_PCI_ERR_IRQ_INDEX`: signalled when the device logs an error.
    err: Option<EventFd>,
    /// `VFIO_PCI_REQ_IRQ_INDEX`: signalled when the device must go.
    req: Option<EventFd>,
}

impl Irqs {
    fn new(vectors: u16) -> Result<Self> {
        let n = usize::from(vectors);
        let mut triggers = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            triggers.push(None, GFP_KERNEL)?;
        }
        Ok(Irqs {
            triggers,
            masked: KVec::from_elem(false, n, GFP_KERNEL)?,
            pending: KVec::from_elem(false, n, GFP_KERNEL)?,
            err: None,
            req: None,
        })
    }

    /// Drops every trigger and mask: the state of a freshly opened device.
    fn clear(&mut self) {
        for t in self.triggers.iter_mut() {
            *t = None;
        }
        self.err = None;
        self.req = None;
        self.masked.iter_mut().for_each(|m| *m = false);
        self.pending.iter_mut().for_each(|p| *p = false);
    }

    /// Delivers `vector` now, or marks it pending while masked. Returns
    /// whether an eventfd was signalled.
    fn fire(&mut self, vector: usize) -> bool {
        if self.masked.get(vector).copied().unwrap_or(true) {
            if let Some(p) = self.pending.get_mut(vector) {
                *p = true;
            }
            return false;
        }
        match self.triggers.get(vector) {
            Some(Some(efd)) => {
                efd.signal();
                true
            }
            _ => false,
        }
    }
}

/// Control state of an ADI, changed only with `Adi::ctl` held.
struct Ctl {
    /// Per queue: the pages of its ring, pinned while the queue runs. A
    /// tenant unmapping any of them stops the queue (`dma_unmap`).
    ring_pins: KVec<Option<vfio::PinnedPages<Adi>>>,
}

/// What a reset covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResetScope {
    /// The device's registers (`DEVCTL.reset`): config space stays.
    Device,
    /// The whole function (FLR, `VFIO_DEVICE_RESET`, close): config space
    /// too, so memory space and bus mastering end up disabled.
    Function,
}

/// Whether interrupt `i` of a `SET_IRQS` range is acted on: all of them,
/// or those whose flag is set for `DATA_BOOL`.
fn selected(data: &vfio::IrqData, i: usize) -> bool {
    match data {
        vfio::IrqData::Bool(flags) => flags.get(i).copied().unwrap_or(false),
        _ => true,
    }
}

/// Counters of one ADI beyond its trap counters.
pub struct AdiCounters {
    /// Device resets (VFIO_DEVICE_RESET, DEVCTL.reset, close).
    pub resets: Atomic<u64>,
    /// Interrupts delivered to user space through an eventfd.
    pub interrupts: Atomic<u64>,
}

/// The tenant object of an ADI: what its PF's queue pairs reach the tenant
/// through (DMA and completion interrupts).
///
/// It holds the device only while user space has it open: `close` revokes
/// it (waiting for DMA in flight), so a PF that still holds the tenant
/// gets `ENODEV` and reaches nothing.
#[pin_data]
pub struct AdiTenant {
    #[pin]
    dev: Mutex<Option<ARef<vfio::Device<Adi>>>>,
}

impl TenantOps for AdiTenant {
    fn dma_rw(&self, iova: u64, buf: &mut [u8], write: bool) -> Result {
        let dev = self.dev.lock();
        let dev = dev.as_ref().ok_or(ENODEV)?;
        if !dev.dma_allowed() {
            return Err(EPERM);
        }
        dev.dma_rw(iova, buf, write)
    }

    fn raise_irq(&self, qp: u32) {
        if let Some(dev) = self.dev.lock().as_ref() {
            dev.raise_queue_irq(qp);
        }
    }
}

/// One ADI: the virtual device's state.
///
/// Dropping it gives its queue pairs or portal back to the PF if
/// [`Adi::release_queues`] has not already.
///
/// Locking, outermost first: `ctl` (one guest control action at a time,
/// held across the PF's queue operations), then the PF's own locks, then
/// the tenant's device slot, then `config`, `bar0` and `irqs` (never two of
/// these three at once). The PF calls the
/// tenant with its locks held, so nothing here calls the PF while holding
/// `bar0` or `irqs`.
#[pin_data(PinnedDrop)]
pub struct Adi {
    link: Arc<PfLink>,
    /// The queue pairs (or the portal) taken from the PF's pool.
    reservation: QpReservation,
    /// The PF's queue pairs backing queues 0..n (dedicated ADIs).
    queues: KVec<u32>,
    /// The portal on the PF's shared queue pair backing queue 0 (shared
    /// ADIs).
    portal: Option<u32>,
    /// Whether `queues` went back to the PF.
    released: Atomic<bool>,
    /// Whether the device was taken from a user who did not release it
    /// when asked: every call then fails with `ENODEV`.
    revoked: Atomic<bool>,
    pasid: Pasid,
    tenant: Arc<Tenant<AdiTenant>>,
    #[pin]
    ctl: Mutex<Ctl>,
    #[pin]
    config: Mutex<ConfigSpace>,
    /// The command register's memory-space enable: BAR0 accesses need it.
    memory_enabled: Atomic<bool>,
    /// The command register's bus-master enable: the PF's DMA needs it.
    bus_master: Atomic<bool>,
    #[pin]
    bar0: Mutex<Bar0>,
    #[pin]
    irqs: Mutex<Irqs>,
    traps: TrapCounters,
    counters: AdiCounters,
    /// Limits the errors user space can make the ADI log.
    log_limit: RateLimit,
}

#[pinned_drop]
impl PinnedDrop for Adi {
    fn drop(self: Pin<&mut Self>) {
        self.release_queues();
    }
}

impl Adi {
    /// A new ADI over the reserved queue pairs `qps` (or, if `shared`, one
    /// portal on the PF's shared queue pair), taking them from the PF of
    /// `link` and binding them to a fresh PASID.
    pub fn new(
        link: Arc<PfLink>,
        qps: QpReservation,
        shared: bool,
    ) -> Result<impl PinInit<Self, Error>> {
        let n = if shared {
            1
        } else {
            u16::try_from(qps.count()).map_err(|_| EINVAL)?
        };
        let mut bar0 = Bar0::new(n, vectors_for(n))?;
        let bar2_size = u64::from(n) * u64::from(link.caps.doorbell_size);
        let config = config_space(vectors_for(n), bar2_size)?;
        let pasid = link.pasids.alloc().inspect_err(|_| {
            dev_err!(link.pf.device(), "no PASID left for a new ADI\n");
        })?;
        let tenant = Tenant::new(try_pin_init!(AdiTenant {
            dev <- new_mutex!(None),
        }))?;
        // Everything that can fail to allocate is allocated before the
        // PF's resources are taken, so initialising the ADI cannot fail
        // with them held.
        let irqs = Irqs::new(vectors_for(n))?;
        let mut ring_pins = KVec::with_capacity(n.into(), GFP_KERNEL)?;
        for _ in 0..n {
            ring_pins.push(None, GFP_KERNEL)?;
        }
        let ctl = Ctl { ring_pins };
        let (queues, portal) = if shared {
            let portal = link.pf.portal_alloc(pasid.id(), &tenant).inspect_err(|e| {
                dev_err!(link.pf.device(), "PF refused a portal: {:?}\n", e);
            })?;
            (KVec::new(), Some(portal))
        } else {
            (Self::take_queue_pairs(&link, n, &pasid, &tenant)?, None)
        };
        for q in 0..n {
            bar0.set_queue_pasid(q, pasid.id());
        }
        Ok(try_pin_init!(Adi {
            link,
            reservation: qps,
            queues,
            portal,
            released: Atomic::new(false),
            revoked: Atomic::new(false),
            pasid,
            tenant,
            ctl <- new_mutex!(ctl),
            config <- new_mutex!(config),
            memory_enabled: Atomic::new(false),
            bus_master: Atomic::new(false),
            bar0 <- new_mutex!(bar0),
            irqs <- new_mutex!(irqs),
            traps: TrapCounters {
                bar0: Atomic::new(0),
                config: Atomic::new(0),
                bar2: Atomic::new(0),
            },
            counters: AdiCounters {
                resets: Atomic::new(0),
                interrupts: Atomic::new(0),
            },
            log_limit: RateLimit::new(),
        }))
    }

    /// Takes `n` queue pairs from the PF of `link` and binds each to
    /// `pasid` and `tenant`; on failure gives back what it took.
    fn take_queue_pairs(
        link: &PfLink,
        n: u16,
        pasid: &Pasid,
        tenant: &Arc<Tenant<AdiTenant>>,
    ) -> Result<KVec<u32>> {
        let mut queues = KVec::with_capacity(n.into(), GFP_KERNEL)?;
        let give_back = |queues: &KVec<u32>| {
            for &qp in queues.iter() {
                link.pf.qp_unbind(qp);
                link.pf.qp_free(qp);
            }
        };
        for _ in 0..n {
            let qp = match link.pf.qp_alloc() {
                Ok(qp) => qp,
                Err(e) => {
                    give_back(&queues);
                    dev_err!(link.pf.device(), "PF refused a queue pair: {:?}\n", e);
                    return Err(e);
                }
            };
            if let Err(e) = queues.push(qp, GFP_KERNEL) {
                link.pf.qp_free(qp);
                give_back(&queues);
                return Err(e.into());
            }
            if let Err(e) = link.pf.qp_bind(qp, pasid.id(), tenant) {
                give_back(&queues);
                dev_err!(
                    link.pf.device(),
                    "PF refused PASID {} for queue pair {}: {:?}\n",
                    pasid.id(),
                    qp,
                    e
                );
                return Err(e);
            }
        }
        Ok(queues)
    }

    /// The queues of the ADI: its dedicated queue pairs, or 1 (its portal).
    fn num_queues(&self) -> u16 {
        if self.portal.is_some() {
            1
        } else {
            self.queues.len() as u16
        }
    }

    /// The PF's counters of the ADI's queue pairs, summed.
    pub fn queue_stats(&self) -> QpStats {
        let mut sum = QpStats::default();
        if let Some(portal) = self.pf_portal() {
            return self.link.pf.portal_stats(portal);
        }
        for q in 0..self.queues.len() as u16 {
            if let Some(qp) = self.pf_qp(q) {
                let s = self.link.pf.qp_stats(qp);
                sum.descriptors += s.descriptors;
                sum.bytes += s.bytes;
                sum.faults += s.faults;
                sum.invalid += s.invalid;
                sum.interrupts += s.interrupts;
            }
        }
        sum
    }

    /// The ADI's PASID.
    pub fn pasid(&self) -> u32 {
        self.pasid.id()
    }

    /// Gives the ADI's queue pairs back to the PF (stopped and unbound
    /// first). Called once the device is unregistered and closed.
    pub fn release_queues(&self) {
        let _ctl = self.ctl.lock();
        if self.released.xchg(true, Relaxed) {
            return;
        }
        for &qp in self.queues.iter() {
            self.link.pf.qp_stop(qp);
            self.link.pf.qp_unbind(qp);
            self.link.pf.qp_free(qp);
        }
        if let Some(portal) = self.portal {
            self.link.pf.portal_free(portal);
        }
    }

    /// The PF queue pair behind queue `q`, while the ADI holds them.
    fn pf_qp(&self, q: u16) -> Option<u32> {
        if self.released.load(Relaxed) {
            return None;
        }
        self.queues.get(usize::from(q)).copied()
    }

    /// The portal behind queue 0, while the ADI holds it.
    fn pf_portal(&self) -> Option<u32> {
        if self.released.load(Relaxed) {
            return None;
        }
        self.portal
    }

    /// Size of BAR2: one doorbell (or portal) page per queue.
    fn bar2_size(&self) -> u64 {
        u64::from(self.num_queues()) * u64::from(self.link.caps.doorbell_size)
    }

    /// MSI-X vectors of the device.
    fn irq_count(&self) -> u32 {
        self.irqs.lock().triggers.len() as u32
    }

    /// Whether the device may master DMA now: the command register's
    /// bus-master enable.
    fn dma_allowed(&self) -> bool {
        self.bus_master.load(Relaxed)
    }

    /// Resets the device: queues stop (descriptors in flight finish
    /// first), every BAR0 register returns to its reset value, masks and
    /// pending interrupts are dropped; for `ResetScope::Function` the
    /// config space too. The host-set PASIDs stay. The caller holds `ctl`.
    fn reset_locked(&self, st: &mut Ctl, scope: ResetScope) {
        self.stop_queues(st);
        if scope == ResetScope::Function {
            self.config.lock().reset();
            self.memory_enabled.store(false, Relaxed);
            self.bus_master.store(false, Relaxed);
        }
        self.bar0.lock().reset();
        let mut irqs = self.irqs.lock();
        irqs.masked.iter_mut().for_each(|m| *m = false);
        irqs.pending.iter_mut().for_each(|p| *p = false);
        self.counters.resets.fetch_add(1, Relaxed);
    }

    /// A function-level reset; see [`Adi::reset_locked`].
    pub fn reset(&self) {
        let mut st = self.ctl.lock();
        self.reset_locked(&mut st, ResetScope::Function);
    }

    /// Stops every queue at the PF and unpins the rings.
    fn stop_queues(&self, st: &mut Ctl) {
        for q in 0..self.num_queues() {
            self.stop_queue(st, q);
        }
    }

    /// Stops queue `q` at the PF (descriptors in flight finish first) and
    /// unpins its ring.
    fn stop_queue(&self, st: &mut Ctl, q: u16) {
        if let Some(qp) = self.pf_qp(q) {
            self.link.pf.qp_stop(qp);
        }
        if let Some(portal) = self.pf_portal() {
            let _ = self.link.pf.portal_enable(portal, false);
        }
        if let Some(pins) = st.ring_pins.get_mut(usize::from(q)) {
            *pins = None;
        }
    }

    /// The trap counters.
    pub fn traps(&self) -> &TrapCounters {
        &self.traps
    }

    /// The ADI's other counters.
    pub fn counters(&self) -> &AdiCounters {
        &self.counters
    }

    /// Splits a file offset into a region index and an offset inside it.
    fn region_of(offset: u64) -> (u64, u64) {
        (offset >> REGION_SHIFT, offset & ((1 << REGION_SHIFT) - 1))
    }

    /// A guest write of `len` bytes to config space; acts on what it
    /// changed. The caller holds `ctl`.
    fn config_write(&self, st: &mut Ctl, offset: u64, len: usize, value: u32) -> Result {
        let event = self.config.lock().write(offset, len, value)?;
        match event {
            ConfigEvent::CommandChanged { new, .. } => {
                self.memory_enabled
                    .store(new & pci_config::COMMAND_MEMORY != 0, Relaxed);
                // Clearing bus-master enable stops DMA at the next access:
                // the tenant object checks it on every copy.
                self.bus_master
                    .store(new & pci_config::COMMAND_BUS_MASTER != 0, Relaxed);
            }
            ConfigEvent::FunctionLevelReset => self.reset_locked(st, ResetScope::Function),
            ConfigEvent::None
            | ConfigEvent::MsixControlChanged { .. }
            | ConfigEvent::PowerStateChanged { .. } => {}
        }
        Ok(())
    }

    /// Fails BAR accesses while memory-space enable is clear, as a PCI
    /// function ignores memory cycles then.
    fn check_memory_enabled(&self, dev: &vfio::Device<Self>) -> Result {
        if self.memory_enabled.load(Relaxed) {
            return Ok(());
        }
        adi_err!(
            self,
            dev.parent(),
            "BAR access refused: memory space disabled in the command register\n"
        );
        Err(EIO)
    }

    /// `ENODEV` once the device was revoked.
    fn check_live(&self) -> Result {
        if self.revoked.load(Relaxed) {
            return Err(ENODEV);
        }
        Ok(())
    }

    /// Takes the device from a user who did not release it when asked:
    /// queues stop, the PF's DMA and interrupts for it are cut, the user's
    /// mappings are removed, and every later call fails with `ENODEV`. The
    /// VFIO core still waits for the user's last close before the device
    /// can go; until then it holds nothing of the PF's work.
    fn revoke(dev: &vfio::Device<Self>) {
        let mut st = dev.ctl.lock();
        if dev.revoked.xchg(true, Relaxed) {
            return;
        }
        dev.stop_queues(&mut st);
        *dev.tenant.ops().dev.lock() = None;
        dev.zap_mappings();
        dev_warn!(
            dev.parent(),
            "the user did not release the device when asked: revoked, it answers -ENODEV until closed\n"
        );
    }

    /// Counts and reports an access through the device fd to a region that
    /// has no trapped path; the error to return.
    fn refuse_access(&self, region: u64, offset: u64, len: usize) -> Error {
        if region == u64::from(BAR2_REGION_INDEX) {
            self.traps.bar2.fetch_add(1, Relaxed);
        }
        adi_err!(
            self,
            self.link.pf.device(),
            "{}-byte access at {:#x} of region {} refused: no trapped path there\n",
            len,
            offset,
            region
        );
        EINVAL
    }

    /// Acts on what a BAR0 write asked for. The caller holds `ctl`, not
    /// `bar0`.
    fn apply(dev: &vfio::Device<Self>, st: &mut Ctl, effect: Bar0Effect) {
        match effect {
            Bar0Effect::None | Bar0Effect::VectorUnmasked(_) | Bar0Effect::QueueDrain(_) => {}
            Bar0Effect::DeviceEnable(on) => {
                if !on {
                    dev.stop_queues(st);
                }
                let mut bar0 = dev.bar0.lock();
                bar0.set_device_enabled(on);
                if !on {
                    for q in 0..bar0.num_queues() {
                        bar0.set_queue_state(q, QueueState::Stopped);
                    }
                }
            }
            Bar0Effect::DeviceReset => dev.reset_locked(st, ResetScope::Device),
            Bar0Effect::QueueEnable(q) => {
                let state = Self::start_queue(dev, st, q).unwrap_or_else(QueueState::Failed);
                dev.bar0.lock().set_queue_state(q, state);
            }
            Bar0Effect::QueueDisable(q) | Bar0Effect::QueueReset(q) => {
                dev.stop_queue(st, q);
                let mut bar0 = dev.bar0.lock();
                bar0.set_queue_state(q, QueueState::Stopped);
                if effect == Bar0Effect::QueueReset(q) {
                    bar0.reset_queue(q);
                }
            }
        }
    }

    /// Validates queue `q`'s registers, pins its ring and starts it at the
    /// PF.
    fn start_queue(
        dev: &vfio::Device<Self>,
        st: &mut Ctl,
        q: u16,
    ) -> core::result::Result<QueueState, QueueError> {
        if let Some(portal) = dev.pf_portal() {
            // A portal's ring is its page: no ring registers to check and
            // nothing to pin.
            if !dev.bar0.lock().device_enabled() {
                return Err(QueueError::DeviceDisabled);
            }
            dev.link
                .pf
                .portal_enable(portal, true)
                .map_err(|_| QueueError::PfRefused)?;
            return Ok(QueueState::Running);
        }
        let (ring, error) = {
            let bar0 = dev.bar0.lock();
            (bar0.queue_ring(q), Self::check_queue(&bar0, q))
        };
        if let Some(e) = error {
            return Err(e);
        }
        let ((base, size), qp) = ring.zip(dev.pf_qp(q)).ok_or(QueueError::PfRefused)?;
        let page = kernel::page::PAGE_SIZE as u64;
        let bytes = u64::from(size) * regs::DESC_SIZE;
        let npage = ((base % page) + bytes).div_ceil(page) as usize;
        let pins = dev.pin_pages(base, npage, false).map_err(|e| {
            adi_err!(dev,
                dev.parent(),
                "queue {}: ring [{:#x}, +{:#x}) is not mapped in the tenant's address space: {:?}\n",
                q,
                base,
                bytes,
                e
            );
            QueueError::RingFault
        })?;
        dev.link
            .pf
            .qp_start(qp, base, size)
            .map_err(|_| QueueError::PfRefused)?;
        if let Some(slot) = st.ring_pins.get_mut(usize::from(q)) {
            *slot = Some(pins);
        }
        Ok(QueueState::Running)
    }

    /// Why queue `q` cannot start, if it cannot.
    fn check_queue(bar0: &Bar0, q: u16) -> Option<QueueError> {
        let (base, size) = bar0.queue_ring(q)?;
        if !bar0.device_enabled() {
            return Some(QueueError::DeviceDisabled);
        }
        if !size.is_power_of_two() || !(2..=1 << regs::MAX_RING_ORDER).contains(&size) {
            return Some(QueueError::BadRingSize);
        }
        if base % regs::RING_ALIGN != 0 {
            return Some(QueueError::BadRingSize);
        }
        None
    }

    /// A completion of the PF's queue pair `qp` asked for an interrupt.
    fn raise_queue_irq(&self, qp: u32) {
        let q = if self.portal.is_some_and(|p| qp == pf::PORTAL_IRQ | p) {
            0
        } else if let Some(q) = self.queues.iter().position(|&x| x == qp) {
            q
        } else {
            return;
        };
        let Some(vector) = self.bar0.lock().queue_vector(q as u16) else {
            return;
        };
        if self.irqs.lock().fire(usize::from(vector)) {
            self.counters.interrupts.fetch_add(1, Relaxed);
        }
    }

    /// `SET_IRQS` on the error or request index (one interrupt each):
    /// install or remove its eventfd, or fire it (loopback). They cannot be
    /// masked.
    fn set_notifier(&self, set: vfio::IrqSet) -> Result<isize> {
        let mut irqs = self.irqs.lock();
        let slot = if set.index == pci::ERR_IRQ_INDEX {
            &mut irqs.err
        } else {
            &mut irqs.req
        };
        match (set.action, set.data) {
            (vfio::IrqAction::Trigger, vfio::IrqData::EventFd(mut fds)) => {
                *slot = fds.pop().flatten();
            }
            (vfio::IrqAction::Trigger, vfio::IrqData::None) if set.all => *slot = None,
            (vfio::IrqAction::Trigger, data) => {
                if selected(&data, 0) {
                    if let Some(efd) = slot.as_ref() {
                        efd.signal();
                    }
                }
            }
            _ => return Err(EINVAL),
        }
        Ok(0)
    }

    /// Signals the error notifier, if user space installed one.
    fn notify_error(&self) {
        if let Some(efd) = self.irqs.lock().err.as_ref() {
            efd.signal();
        }
    }

    /// Carries out a validated `VFIO_DEVICE_SET_IRQS` on the MSI-X index.
    fn set_irqs(&self, set: vfio::IrqSet) -> Result<isize> {
        if set.index == pci::ERR_IRQ_INDEX || set.index == pci::REQ_IRQ_INDEX {
            return self.set_notifier(set);
        }
        if set.index != pci::MSIX_IRQ_INDEX {
            // No INTx or MSI: only "disable all" (count 0) is valid for
            // them, and has nothing to do.
            return if set.count == 0 { Ok(0) } else { Err(EINVAL) };
        }
        let range = set.start as usize..(set.start + set.count) as usize;
        let mut irqs = self.irqs.lock();
        let mut delivered = 0;
        match (set.action, set.data) {
            (vfio::IrqAction::Trigger, vfio::IrqData::EventFd(fds)) => {
                for (v, fd) in range.zip(fds) {
                    if let Some(t) = irqs.triggers.get_mut(v) {
                        *t = fd;
                    }
                }
            }
            (vfio::IrqAction::Trigger, vfio::IrqData::None) if set.all => irqs.clear(),
            (vfio::IrqAction::Trigger, data) => {
                for (i, v) in range.enumerate() {
                    if selected(&data, i) && irqs.fire(v) {
                        delivered += 1;
                    }
                }
            }
            (vfio::IrqAction::Mask, data) => {
                for (i, v) in range.enumerate() {
                    if let Some(m) = irqs.masked.get_mut(v).filter(|_| selected(&data, i)) {
                        *m = true;
                    }
                }
            }
            (vfio::IrqAction::Unmask, data) => {
                for (i, v) in range.enumerate() {
                    if !selected(&data, i) {
                        continue;
                    }
                    if let Some(m) = irqs.masked.get_mut(v) {
                        *m = false;
                    }
                    let was_pending = irqs.pending.get_mut(v).map(core::mem::take);
                    if was_pending == Some(true) && irqs.fire(v) {
                        delivered += 1;
                    }
                }
            }
        }
        self.counters.interrupts.fetch_add(delivered, Relaxed);
        Ok(0)
    }
}

#[vtable]
impl vfio::Driver for Adi {
    const NAME: &'static CStr = c"vdcm-adi";

    fn region_info(
        dev: &vfio::Device<Self>,
        index: u32,
        caps: &mut vfio::RegionCaps<'_>,
    ) -> Result<vfio::RegionInfo> {
        dev.check_live()?;
        let rw = pci::REGION_FLAG_READ | pci::REGION_FLAG_WRITE;
        let (flags, size) = match index {
            pci::BAR0_REGION_INDEX => (rw, regs::BAR0_SIZE),
            BAR2_REGION_INDEX => {
                // All of BAR2 maps: one area, so a VMM maps every doorbell
                // and traps nothing there.
                caps.add_sparse_mmap(&[(0, dev.bar2_size())])?;
                (rw | pci::REGION_FLAG_MMAP, dev.bar2_size())
            }
            pci::CONFIG_REGION_INDEX => (rw, 4096),
            i if i < pci::NUM_REGIONS => (0, 0),
            _ => return Err(EINVAL),
        };
        Ok(vfio::RegionInfo {
            flags,
            size,
            offset: u64::from(index) << REGION_SHIFT,
        })
    }

    fn open(dev: &vfio::Device<Self>) -> Result {
        let _ctl = dev.ctl.lock();
        dev.check_live()?;
        *dev.tenant.ops().dev.lock() = Some(ARef::from(dev));
        Ok(())
    }

    fn close(dev: &vfio::Device<Self>) {
        let mut st = dev.ctl.lock();
        // Queues stop first (descriptors in flight finish) and their rings
        // are unpinned, then the DMA and interrupt path is revoked: a PF
        // still holding the tenant reaches nothing, and the device holds no
        // reference to itself.
        dev.stop_queues(&mut st);
        *dev.tenant.ops().dev.lock() = None;
        dev.irqs.lock().clear();
        // The next user finds the device as after a reset.
        dev.reset_locked(&mut st, ResetScope::Function);
    }

    fn read(dev: &vfio::Device<Self>, out: &mut UserSliceWriter, offset: u64) -> Result<usize> {
        dev.check_live()?;
        let len = out.len();
        match Self::region_of(offset) {
            (r, off) if r == u64::from(pci::CONFIG_REGION_INDEX) => {
                dev.traps.config.fetch_add(1, Relaxed);
                // VMMs read the whole space at once: split the read into
                // naturally aligned accesses of up to 4 bytes.
                let end = off.checked_add(len as u64).ok_or(EINVAL)?;
                if end > pci_config::CONFIG_SPACE_SIZE as u64 {
                    return Err(EINVAL);
                }
                let config = dev.config.lock();
                let mut at = off;
                while at < end {
                    let width = [4u64, 2, 1]
                        .into_iter()
                        .find(|w| at % w == 0 && at + w <= end)
                        .unwrap_or(1);
                    let value = config.read(at, width as usize)?;
                    out.write_slice(&value.to_le_bytes()[..width as usize])?;
                    at += width;
                }
                Ok(len)
            }
            (r, off) if r == u64::from(pci::BAR0_REGION_INDEX) => {
                dev.traps.bar0.fetch_add(1, Relaxed);
                dev.check_memory_enabled(dev)?;
                let access = Bar0Access::decode(off, len)?;
                let value = dev.bar0.lock().read(access, len);
                out.write_slice(&value.to_le_bytes()[..len])?;
                Ok(len)
            }
            (r, off) => Err(dev.refuse_access(r, off, len)),
        }
    }

    fn write(dev: &vfio::Device<Self>, input: &mut UserSliceReader, offset: u64) -> Result<usize> {
        dev.check_live()?;
        let len = input.len();
        match Self::region_of(offset) {
            (r, off) if r == u64::from(pci::CONFIG_REGION_INDEX) => {
                dev.traps.config.fetch_add(1, Relaxed);
                if !matches!(len, 1 | 2 | 4) {
                    return Err(EINVAL);
                }
                let mut bytes = [0u8; 4];
                input.read_slice(&mut bytes[..len])?;
                let mut st = dev.ctl.lock();
                dev.config_write(&mut st, off, len, u32::from_le_bytes(bytes))?;
                Ok(len)
            }
            (r, off) if r == u64::from(pci::BAR0_REGION_INDEX) => {
                dev.traps.bar0.fetch_add(1, Relaxed);
                dev.check_memory_enabled(dev)?;
                let access = Bar0Access::decode(off, len)?;
                let mut bytes = [0u8; 8];
                input.read_slice(&mut bytes[..len])?;
                let value = u64::from_le_bytes(bytes);
                if !access.has_effects() {
                    // A plain register store (ring base and size, MSI-X
                    // entries, ...): the register file's lock is enough,
                    // and the common slow-path write stays cheap.
                    let _ = dev.bar0.lock().write(access, len, value);
                    return Ok(len);
                }
                let mut st = dev.ctl.lock();
                let effect = dev.bar0.lock().write(access, len, value);
                Self::apply(dev, &mut st, effect);
                Ok(len)
            }
            (r, off) => Err(dev.refuse_access(r, off, len)),
        }
    }

    fn mmap(dev: &vfio::Device<Self>, vma: &vfio::Vma) -> Result {
        dev.check_live()?;
        let (region, off) = Self::region_of(vma.offset());
        if region != u64::from(BAR2_REGION_INDEX) {
            adi_err!(
                dev,
                dev.parent(),
                "mmap of region {} refused: only BAR2 (doorbells) maps\n",
                region
            );
            return Err(EINVAL);
        }
        // As vfio-pci: a private mapping would give the tenant copy-on-write
        // copies of the doorbell pages, whose stores no queue ever sees.
        if vma.as_new().flags() & kernel::mm::virt::flags::SHARED == 0 {
            adi_err!(
                dev,
                dev.parent(),
                "mmap of BAR2 refused: private mapping (only MAP_SHARED maps)\n"
            );
            return Err(EINVAL);
        }
        let page = u64::from(dev.link.caps.doorbell_size);
        let end = off.checked_add(vma.len() as u64).ok_or(EINVAL)?;
        if off % page != 0 || end > dev.bar2_size() {
            adi_err!(
                dev,
                dev.parent(),
                "mmap of BAR2 [{:#x}, {:#x}) refused: BAR2 is {:#x} bytes of {:#x}-byte pages\n",
                off,
                end,
                dev.bar2_size(),
                page
            );
            return Err(EINVAL);
        }
        let first = (off / page) as usize;
        for (i, at) in (0..vma.len()).step_by(page as usize).enumerate() {
            let q = u16::try_from(first + i).map_err(|_| EINVAL)?;
            let doorbell = match dev.pf_portal() {
                Some(portal) => dev.link.pf.portal_page(portal),
                None => dev.pf_qp(q).and_then(|qp| dev.link.pf.qp_doorbell(qp)),
            }
            .ok_or(ENODEV)?;
            vma.insert_page(at, &doorbell)?;
        }
        Ok(())
    }

    fn ioctl(dev: &vfio::Device<Self>, ioctl: vfio::Ioctl) -> Result<isize> {
        dev.check_live()?;
        match ioctl.cmd {
            vfio::DEVICE_GET_INFO => ioctl.reply_device_info(vfio::DeviceInfo {
                flags: pci::DEVICE_FLAGS_PCI | pci::DEVICE_FLAGS_RESET,
                num_regions: pci::NUM_REGIONS,
                num_irqs: pci::NUM_IRQS,
            }),
            vfio::DEVICE_RESET => {
                dev.reset();
                Ok(0)
            }
            vfio::DEVICE_GET_IRQ_INFO => ioctl.reply_irq_info(|index| match index {
                pci::MSIX_IRQ_INDEX => Ok(vfio::IrqInfo {
                    flags: pci::IRQ_INFO_EVENTFD,
                    count: dev.irq_count(),
                }),
                pci::ERR_IRQ_INDEX | pci::REQ_IRQ_INDEX => Ok(vfio::IrqInfo {
                    flags: pci::IRQ_INFO_EVENTFD,
                    count: 1,
                }),
                i if i < pci::NUM_IRQS => Ok(vfio::IrqInfo { flags: 0, count: 0 }),
                _ => Err(EINVAL),
            }),
            vfio::DEVICE_SET_IRQS => {
                let set = ioctl
                    .read_irq_set(|index| match index {
                        pci::MSIX_IRQ_INDEX => Some(dev.irq_count()),
                        pci::ERR_IRQ_INDEX | pci::REQ_IRQ_INDEX => Some(1),
                        i if i < pci::NUM_IRQS => Some(0),
                        _ => None,
                    })
                    .inspect_err(|e| {
                        adi_err!(dev, dev.parent(), "VFIO_DEVICE_SET_IRQS refused: {:?}\n", e)
                    })?;
                dev.set_irqs(set)
            }
            _ => Err(ENOTTY),
        }
    }

    fn dma_unmap(dev: &vfio::Device<Self>, iova: u64, length: u64) {
        let mut st = dev.ctl.lock();
        for q in 0..dev.num_queues() {
            let hit = st
                .ring_pins
                .get(usize::from(q))
                .and_then(Option::as_ref)
                .is_some_and(|p| p.overlaps(iova, length));
            if hit {
                // The tenant took the ring away: the queue cannot go on.
                dev.stop_queue(&mut st, q);
                dev.bar0
                    .lock()
                    .set_queue_state(q, QueueState::Failed(QueueError::RingFault));
                dev_notice!(
                    dev.parent(),
                    "queue {} stopped: its ring was unmapped by the tenant\n",
                    q
                );
                dev.notify_error();
            }
        }
    }

    fn request(dev: &vfio::Device<Self>, count: u32) {
        // The core calls this every 10 s while removal waits for the user.
        // A VMM that installed a request eventfd unplugs the device from
        // its guest and closes it.
        let asked = match dev.irqs.lock().req.as_ref() {
            Some(efd) => {
                efd.signal();
                true
            }
            None => false,
        };
        if count >= FORCE_AFTER_REQUESTS {
            Self::revoke(dev);
        }
        if count == 0 {
            dev_notice!(
                dev.parent(),
                "removal requested: waiting for the user to close the device{}\n",
                if asked {
                    " (request eventfd signalled)"
                } else {
                    ""
                }
            );
        }
    }
}

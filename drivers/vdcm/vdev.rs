// SPDX-License-Identifier: GPL-2.0

//! The virtual PCI device of one ADI, as user space sees it through VFIO.
//!
//! Regions follow the vfio-pci layout; region `i` starts at file offset
//! `i << REGION_SHIFT`. BARs 0 to 5 are what the PF's ADI type describes
//! (see `layout`): accesses to trapped ranges reach the PF's callbacks,
//! except the MSI-X table and PBA, which are emulated here; direct ranges
//! are the PF's pages, mapped into user space with no trap (and refused
//! through the device file); holes read as zero. Config space is emulated
//! here, 4 KiB. Every other region is absent.
//!
//! Every access that reaches the core through the device file is counted
//! per region, so tests can prove which paths trap and which do not.
//!
//! Locking, outermost first: `ctl` (one lifecycle change at a time: open,
//! reset, close, revocation, unmapping, destruction, a QoS change; held
//! across the PF's `reset`, `unpinned` and `set_qos`), then `qos` (held
//! across `set_qos`), then the PF's own locks, then the tenant's
//! `dev` and `pins` (see `tenant`), then `config` and `irqs` (never both).
//! The PF calls the tenant with its locks held, and pinning takes the
//! tenant's `mmap_lock`, so `ctl` comes before `mmap_lock`. The slow path
//! takes no core lock to reach the PF: trapped accesses and `mmap` (which
//! runs under `mmap_lock`) borrow the PF's side from `pf` without a lock
//! and call it concurrently with each other and with `ctl` holders, as the
//! contract allows; the PF keeps its registers consistent itself.

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;
use kernel::sync::Mutex;
use kernel::uaccess::UserSliceReader;
use kernel::uaccess::UserSliceWriter;

use crate::config;
use crate::config::ConfigEvent;
use crate::config::ConfigSpace;
use crate::dirty::DirtyLog;
use crate::host::PfLink;
use crate::host::Reservation;
use crate::irqs::Irqs;
use crate::layout::AdiType;
use crate::layout::Target;
use crate::migration;
use crate::migration::MigCtl;
use crate::qos;
use crate::tenant::AdiTenant;
use crate::vdcm_kernel::pasid::Pasid;
use crate::vdcm_kernel::pf_host::PfAdi;
use crate::vdcm_kernel::pf_host::Qos;
use crate::vdcm_kernel::ratelimit::RateLimit;
use crate::vdcm_kernel::revocable::RevocableGuard;
use crate::vdcm_kernel::revocable::SleepableRevocable;
use crate::vdcm_kernel::tenant::Tenant;
use crate::vdcm_kernel::vfio;
use crate::vdcm_kernel::vfio::migration::flags as mig_flags;
use crate::vdcm_kernel::vfio::migration::DataFile;
use crate::vdcm_kernel::vfio::migration::MigState;
use crate::vdcm_kernel::vfio::migration::MigrationStream;
use crate::vdcm_kernel::vfio::pci;
use crate::vdcm_kernel::wire::Writer;

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

/// Accesses that reached the core through the device file, per region.
pub struct TrapCounters {
    /// BARs 0 to 5.
    pub bars: [Atomic<u64>; 6],
    /// Config space.
    pub config: Atomic<u64>,
}

/// Counters of one ADI beyond its trap counters.
pub struct AdiCounters {
    /// Function resets (VFIO_DEVICE_RESET, FLR, close).
    pub resets: Atomic<u64>,
    /// Interrupts delivered to user space through an eventfd.
    pub interrupts: Atomic<u64>,
}

/// One ADI: its virtual device's state.
#[pin_data(PinnedDrop)]
pub struct Adi {
    link: Arc<PfLink>,
    /// The ADI's type.
    ty: Arc<AdiType>,
    /// The units taken from the type's pool; given back on drop.
    _reservation: Reservation,
    pasid: Pasid,
    tenant: Arc<Tenant<AdiTenant>>,
    /// Whether the device was taken from a user who did not release it
    /// when asked: every call then fails with `ENODEV`.
    revoked: Atomic<bool>,
    /// Serialises the ADI's lifecycle changes (see the locking notes) and
    /// holds its migration state.
    #[pin]
    ctl: Mutex<MigCtl>,
    /// The PF's side of the ADI, until it is removed. Callers borrow it
    /// without a lock; removal waits for them and destroys it.
    #[pin]
    pf: SleepableRevocable<PfAdi>,
    #[pin]
    config: Mutex<ConfigSpace>,
    /// The command register's memory-space enable: BAR accesses need it.
    memory_enabled: Atomic<bool>,
    /// The command register's bus-master enable: the PF's DMA needs it.
    bus_master: Atomic<bool>,
    #[pin]
    irqs: Mutex<Irqs>,
    /// DMA dirty logging, while a migration asks for it.
    #[pin]
    dirty: DirtyLog,
    traps: TrapCounters,
    counters: AdiCounters,
    /// Limits the errors user space can make the ADI log.
    log_limit: RateLimit,
    /// The QoS settings the PF schedules the ADI by (see `qos`); changed
    /// under `ctl`.
    #[pin]
    qos: Mutex<Qos>,
}

#[pinned_drop]
impl PinnedDrop for Adi {
    fn drop(self: Pin<&mut Self>) {
        self.destroy_pf_side();
    }
}

impl Adi {
    /// A new ADI of type `index` of the PF of `link`, over the pool units
    /// `reservation`, with a fresh PASID; the PF builds its side.
    pub fn new(
        link: Arc<PfLink>,
        index: usize,
        reservation: Reservation,
    ) -> Result<impl PinInit<Self, Error>> {
        let ty = link.types.get(index).ok_or(EINVAL)?.clone();
        let t = &ty;
        let config = t.config_space()?;
        let irqs = Irqs::new(t.msix.vectors)?;
        let pasid = link.pasids.alloc().inspect_err(|_| {
            dev_err!(link.pf.device(), "no PASID left for a new ADI\n");
        })?;
        let tenant = Tenant::new(AdiTenant::new(t.pins)?)?;
        // Everything that can fail to allocate is allocated before the
        // PF builds its side, so initialising the ADI cannot fail with it
        // built.
        let pf = link
            .pf
            .adi_create(index as u32, pasid.id(), &tenant)
            .inspect_err(|e| {
                dev_err!(
                    link.pf.device(),
                    "PF refused to build an ADI of type {}: {:?}\n",
                    t.name.to_str().unwrap_or("?"),
                    e
                );
            })?;
        let qos = qos::defaults(t.max_threshold);
        if link.admission.capacity != 0 {
            // The PF schedules the ADI from its first descriptor; a PF
            // refusing the defaults refuses the ADI (its side is dropped).
            pf.set_qos(&qos).inspect_err(|e| {
                dev_err!(
                    link.pf.device(),
                    "PF refused the default QoS settings of a new ADI: {:?}\n",
                    e
                );
            })?;
        }
        Ok(try_pin_init!(Adi {
            link,
            ty,
            _reservation: reservation,
            pasid,
            tenant,
            revoked: Atomic::new(false),
            ctl <- new_mutex!(MigCtl::default()),
            pf <- SleepableRevocable::new(pf),
            config <- new_mutex!(config),
            memory_enabled: Atomic::new(false),
            bus_master: Atomic::new(false),
            irqs <- new_mutex!(irqs),
            dirty <- DirtyLog::new(),
            traps: TrapCounters {
                bars: [const { Atomic::new(0) }; 6],
                config: Atomic::new(0),
            },
            counters: AdiCounters {
                resets: Atomic::new(0),
                interrupts: Atomic::new(0),
            },
            log_limit: RateLimit::new(),
            qos <- new_mutex!(qos),
        }))
    }

    /// The ADI's QoS settings.
    pub fn qos(&self) -> Qos {
        *self.qos.lock()
    }

    /// An operator sets QoS knob `knob` (file `name`) to `value`: checked,
    /// admitted, given to the PF, then kept; on error nothing changed.
    /// `dev` is the ADI's device, for the messages.
    pub fn set_qos_knob(
        &self,
        dev: &kernel::device::Device,
        knob: qos::Knob,
        name: &CStr,
        value: u64,
    ) -> Result {
        let name = name.to_str().unwrap_or("?");
        let _ctl = self.ctl.lock();
        if self.link.admission.capacity == 0 {
            adi_err!(
                self,
                dev,
                "qos/{}: the PF does not schedule its ADIs (no QoS capacity)\n",
                name
            );
            return Err(crate::vdcm_kernel::pf_host::eopnotsupp());
        }
        let mut cur = self.qos.lock();
        let new = qos::with(&cur, knob, value, self.ty.max_threshold).map_err(|why| {
            adi_err!(self, dev, "qos/{} = {} refused: {}\n", name, value, why);
            EINVAL
        })?;
        let pf = self.pf().ok_or(ENODEV)?;
        let admission = &self.link.admission;
        admission
            .change(cur.guaranteed_rate, new.guaranteed_rate, || pf.set_qos(&new))
            .inspect_err(|e| {
                if *e == ENOSPC {
                    adi_err!(
                        self,
                        dev,
                        "qos/{} = {} refused: the PF has {} of its {} descriptors/s left to guarantee\n",
                        name,
                        value,
                        admission.left() + cur.guaranteed_rate,
                        admission.capacity
                    );
                } else {
                    adi_err!(self, dev, "qos/{} = {}: the PF refused it: {:?}\n", name, value, e);
                }
            })?;
        *cur = new;
        Ok(())
    }

    /// The ADI's type.
    fn ty(&self) -> &AdiType {
        &self.ty
    }

    /// The PF the ADI is made of.
    pub fn link(&self) -> &Arc<PfLink> {
        &self.link
    }

    /// The bytes the VDCM holds for the ADI in this object: the ADI itself
    /// (inside its VFIO device's allocation), its tenant and what both
    /// own on the heap. The VFIO device's own part and the other kernel
    /// objects are not counted; a migration's streams are not either
    /// (an idle ADI has none, and reading them would take `ctl`).
    pub fn own_bytes(&self) -> usize {
        use crate::vdcm_kernel::footprint::of_arc;
        core::mem::size_of::<Adi>()
            + self.config.lock().heap_bytes()
            + self.irqs.lock().heap_bytes()
            + self.dirty.heap_bytes()
            + of_arc::<Tenant<AdiTenant>>()
            + self.tenant.ops().heap_bytes()
    }

    /// The ADI's DMA dirty log.
    pub fn dirty(&self) -> &DirtyLog {
        &self.dirty
    }

    /// The ADI's PASID.
    pub fn pasid(&self) -> u32 {
        self.pasid.id()
    }

    /// The trap counters.
    pub fn traps(&self) -> &TrapCounters {
        &self.traps
    }

    /// The ADI's other counters.
    pub fn counters(&self) -> &AdiCounters {
        &self.counters
    }

    /// The PF's counters of the ADI into `values`; zeros once the PF's
    /// side is gone.
    pub fn pf_counters(&self, values: &mut [u64]) {
        if let Some(pf) = self.pf() {
            let _ = pf.counters(values);
        }
    }

    /// The PF's side of the ADI, unless it was removed.
    fn pf(&self) -> Option<RevocableGuard<'_, PfAdi>> {
        self.pf.access()
    }

    /// Destroys the PF's side of the ADI (stopped first). Called once the
    /// device is unregistered, so no user can reach it any more, and while
    /// the PF is still registered.
    pub fn destroy_pf_side(&self) {
        let mut ctl = self.ctl.lock();
        ctl.end_streams();
        // Waits for callers still inside the PF's side (a counters read).
        if let Some(pf) = self.pf.revoke() {
            pf.reset();
            self.tenant.ops().detach();
            drop(pf);
        }
        // The guarantee goes back to the PF with the ADI.
        let mut qos = self.qos.lock();
        self.link.admission.release(qos.guaranteed_rate, 0);
        qos.guaranteed_rate = 0;
    }

    /// Whether the device may master DMA now: the command register's
    /// bus-master enable.
    pub fn dma_allowed(&self) -> bool {
        self.bus_master.load(Relaxed)
    }

    /// The PF asks for MSI-X vector `vector`.
    pub fn raise_irq(&self, vector: u32) {
        if self.irqs.lock().fire(vector as usize) {
            self.counters.interrupts.fetch_add(1, Relaxed);
        }
    }

    /// A function reset: the PF's part first (its queues stop, work in
    /// flight finishes, its registers and pages are cleared), then every
    /// pin, config space, MSI-X and the masks. A migration in progress is
    /// abandoned: its data stream ends and the state is RUNNING again.
    fn reset_locked(&self, ctl: &mut MigCtl) {
        ctl.end_streams();
        ctl.state = MigState::Running;
        if let Some(pf) = self.pf() {
            pf.reset();
        }
        self.tenant.ops().drop_pins(|_| true);
        self.config.lock().reset();
        self.memory_enabled.store(false, Relaxed);
        self.bus_master.store(false, Relaxed);
        self.irqs.lock().reset();
        self.counters.resets.fetch_add(1, Relaxed);
    }

    /// A function reset; see [`Adi::reset_locked`].
    pub fn reset(&self) {
        let mut ctl = self.ctl.lock();
        self.reset_locked(&mut ctl);
    }

    /// Splits a file offset into a region index and an offset inside it.
    fn region_of(offset: u64) -> (u64, u64) {
        (offset >> REGION_SHIFT, offset & ((1 << REGION_SHIFT) - 1))
    }

    /// A guest write of `len` bytes to config space; acts on what it
    /// changed.
    fn config_write(&self, offset: u64, len: usize, value: u32) -> Result {
        let event = self.config.lock().write(offset, len, value)?;
        match event {
            ConfigEvent::CommandChanged { new, .. } => {
                self.memory_enabled
                    .store(new & config::COMMAND_MEMORY != 0, Relaxed);
                // Clearing bus-master enable stops DMA at the next access:
                // the tenant object checks it on every copy.
                self.bus_master
                    .store(new & config::COMMAND_BUS_MASTER != 0, Relaxed);
            }
            ConfigEvent::FunctionLevelReset => self.reset(),
            ConfigEvent::None
            | ConfigEvent::MsixControlChanged { .. }
            | ConfigEvent::PowerStateChanged { .. } => {}
        }
        Ok(())
    }

    /// Reads config space into `out`, split into naturally aligned
    /// accesses of up to 4 bytes (VMMs read the whole space at once).
    fn config_read(&self, out: &mut UserSliceWriter, off: u64) -> Result<usize> {
        let len = out.len();
        let end = off.checked_add(len as u64).ok_or(EINVAL)?;
        if end > config::CONFIG_SPACE_SIZE as u64 {
            return Err(EINVAL);
        }
        let config = self.config.lock();
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

    /// Where a BAR access of `len` bytes at `off` of BAR `bar` goes, after
    /// counting it and checking the command register; errors are logged.
    fn route(&self, dev: &vfio::Device<Self>, bar: usize, off: u64, len: usize) -> Result<Target> {
        if let Some(c) = self.traps.bars.get(bar) {
            c.fetch_add(1, Relaxed);
        }
        // One walk of the type's layout; its verdict is reported after
        // the checks a PCI function makes first.
        let routed = self.ty().route(bar, off, len as u64);
        if !matches!(routed, Ok(Target::Direct)) {
            self.check_memory_enabled(dev)?;
        }
        if !matches!(len, 1 | 2 | 4 | 8) {
            adi_err!(
                self,
                dev.parent(),
                "{}-byte access to BAR{} refused: accesses are 1, 2, 4 or 8 bytes\n",
                len,
                bar
            );
            return Err(EINVAL);
        }
        let target = routed.inspect_err(|_| {
            adi_err!(
                self,
                dev.parent(),
                "{}-byte access at {:#x} of BAR{} refused: outside the BAR or across a range boundary\n",
                len,
                off,
                bar
            );
        })?;
        if target == Target::Direct {
            adi_err!(
                self,
                dev.parent(),
                "{}-byte access at {:#x} of BAR{} refused: directly mapped, no trapped path there\n",
                len,
                off,
                bar
            );
            return Err(EINVAL);
        }
        Ok(target)
    }

    /// A trapped read of `len` bytes at `off` of BAR `bar`.
    fn bar_read(&self, dev: &vfio::Device<Self>, bar: usize, off: u64, len: usize) -> Result<u64> {
        match self.route(dev, bar, off, len)? {
            Target::MsixTable(at) => self.irqs.lock().table_read(at, len),
            Target::MsixPba(at) => self.irqs.lock().pba_read(at, len),
            Target::Trap => {
                let pf = self.pf().ok_or(ENODEV)?;
                pf.trap_read(bar as u32, off, len as u32)
            }
            Target::Hole | Target::Direct => Ok(0),
        }
    }

    /// A trapped write of `value` (`len` bytes) at `off` of BAR `bar`.
    fn bar_write(
        &self,
        dev: &vfio::Device<Self>,
        bar: usize,
        off: u64,
        len: usize,
        value: u64,
    ) -> Result {
        match self.route(dev, bar, off, len)? {
            Target::MsixTable(at) => self.irqs.lock().table_write(at, len, value),
            Target::MsixPba(_) | Target::Hole | Target::Direct => Ok(()),
            Target::Trap => {
                let pf = self.pf().ok_or(ENODEV)?;
                pf.trap_write(bar as u32, off, len as u32, value)
            }
        }
    }

    /// Takes the device from a user who did not release it when asked:
    /// the PF's side is reset, its DMA and interrupts for the tenant are
    /// cut, the user's mappings are removed, and every later call fails
    /// with `ENODEV`. The VFIO core still waits for the user's last close
    /// before the device can go; until then it holds nothing of the PF's
    /// work.
    fn revoke(dev: &vfio::Device<Self>) {
        let mut ctl = dev.ctl.lock();
        if dev.revoked.xchg(true, Relaxed) {
            return;
        }
        ctl.end_streams();
        if let Some(pf) = dev.pf() {
            pf.reset();
        }
        dev.tenant.ops().detach();
        dev.zap_mappings();
        dev_warn!(
            dev.parent(),
            "the user did not release the device when asked: revoked, it answers -ENODEV until closed\n"
        );
    }

    /// The whole migration stream of the ADI as it is now: header, config
    /// space, MSI-X, the PF's part and the end mark (see `migration`). The
    /// PF is quiesced.
    fn save_stream(&self) -> Result<KVVec<u8>> {
        let ty = self.ty();
        let mut buf = KVVec::from_elem(0u8, migration::max_len(ty), GFP_KERNEL)?;
        let mut part = KVVec::from_elem(
            0u8,
            config::CONFIG_SPACE_SIZE.max(ty.state_size),
            GFP_KERNEL,
        )?;
        let mut w = Writer::new(&mut buf);
        migration::write_header(ty, &mut w)?;
        let image = part.get_mut(..config::CONFIG_SPACE_SIZE).ok_or(EINVAL)?;
        self.config.lock().save_image(image)?;
        migration::write_section(&mut w, migration::Section::Config, image)?;
        let msix = w.reserve(8 + Irqs::saved_size(ty.msix.vectors))?;
        let (head, body) = msix.split_at_mut(8);
        self.irqs.lock().save(&mut Writer::new(body))?;
        let mut hw = Writer::new(head);
        hw.u32(migration::Section::Msix as u32)?;
        hw.u32(body.len() as u32)?;
        let pf_part = part.get_mut(..ty.state_size).ok_or(EINVAL)?;
        let n = self.pf().ok_or(ENODEV)?.save(pf_part)?;
        migration::write_section(
            &mut w,
            migration::Section::Pf,
            pf_part.get(..n).ok_or(EINVAL)?,
        )?;
        migration::write_section(
            &mut w,
            migration::Section::Qos,
            &migration::qos_bytes(&self.qos())?,
        )?;
        let crc = crate::vdcm_kernel::crc::crc32c(!0, w.written());
        migration::write_end(&mut w, crc)?;
        let len = w.len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Applies a migration stream, checking all of it first; on error the
    /// core's state is unchanged (the PF's part is as after a reset).
    fn load_stream(&self, dev: &vfio::Device<Self>, data: &[u8]) -> Result {
        let parsed = migration::parse(self.ty(), data).map_err(|r| {
            dev_err!(dev.parent(), "migration stream refused: {}\n", r.why);
            r.errno
        })?;
        if let Err(at) = self.config.lock().check_image(parsed.config) {
            dev_err!(
                dev.parent(),
                "migration stream refused: its config space differs at {:#x} in bits the guest cannot write\n",
                at.unwrap_or(0)
            );
            return Err(EINVAL);
        }
        self.irqs.lock().check_saved(parsed.msix).inspect_err(|_| {
            dev_err!(dev.parent(), "migration stream refused: bad MSI-X state\n");
        })?;
        let qos = parsed.qos;
        qos::check(&qos, self.ty.max_threshold).map_err(|why| {
            dev_err!(
                dev.parent(),
                "migration stream refused: its QoS settings do not fit this ADI: {}\n",
                why
            );
            EINVAL
        })?;
        let pf = self.pf().ok_or(ENODEV)?;
        // The guarantee is admitted on this PF before anything changes;
        // the PF gets the settings once its state is restored.
        let mut cur = self.qos.lock();
        let qos_on = self.link.admission.capacity != 0;
        if qos_on {
            let admission = &self.link.admission;
            admission
                .change(cur.guaranteed_rate, qos.guaranteed_rate, || Ok(()))
                .inspect_err(|_| {
                    dev_err!(
                        dev.parent(),
                        "migration stream refused: it guarantees {} descriptors/s and this PF has {} left\n",
                        qos.guaranteed_rate,
                        admission.left() + cur.guaranteed_rate
                    );
                })?;
        } else if qos != qos::defaults(self.ty.max_threshold) {
            dev_err!(
                dev.parent(),
                "migration stream refused: it carries QoS settings and this PF does not schedule its ADIs\n"
            );
            return Err(crate::vdcm_kernel::pf_host::eopnotsupp());
        }
        let old = *cur;
        let applied = self.restore_pf(dev, &pf, &parsed, &qos, qos_on);
        if applied.is_err() && qos_on {
            self.link
                .admission
                .release(qos.guaranteed_rate, old.guaranteed_rate);
        } else if applied.is_ok() {
            *cur = qos;
        }
        drop(cur);
        applied?;
        let mut config = self.config.lock();
        config.load_image(parsed.config)?;
        self.memory_enabled.store(config.memory_enabled(), Relaxed);
        self.bus_master.store(config.bus_master_enabled(), Relaxed);
        drop(config);
        self.irqs.lock().load(parsed.msix)
    }

    /// The PF's part of applying a checked stream: its state, then its
    /// QoS settings (`qos_on`: the PF schedules ADIs).
    fn restore_pf(
        &self,
        dev: &vfio::Device<Self>,
        pf: &PfAdi,
        parsed: &migration::Parsed<'_>,
        qos: &Qos,
        qos_on: bool,
    ) -> Result {
        pf.reset();
        self.tenant.ops().drop_pins(|_| true);
        pf.quiesce()?;
        pf.restore(parsed.pf).inspect_err(|e| {
            dev_err!(
                dev.parent(),
                "migration stream refused by the PF: {:?}\n",
                e
            );
        })?;
        if qos_on {
            pf.set_qos(qos).inspect_err(|e| {
                dev_err!(
                    dev.parent(),
                    "the PF refused the stream's QoS settings: {:?}\n",
                    e
                );
            })?;
        }
        Ok(())
    }

    /// One arc of the migration state machine, from `cur` to `next`.
    fn mig_step(
        &self,
        dev: &vfio::Device<Self>,
        ctl: &mut MigCtl,
        cur: MigState,
        next: MigState,
    ) -> Result<Option<DataFile>> {
        use MigState::*;
        let pf = || self.pf().ok_or(ENODEV);
        match (cur, next) {
            (Running, RunningP2p) | (PreCopy, PreCopyP2p) => pf()?.quiesce().map(|()| None),
            (RunningP2p, Running) | (PreCopyP2p, PreCopy) => {
                pf()?.unquiesce();
                Ok(None)
            }
            (RunningP2p, Stop) | (Stop, RunningP2p) => Ok(None),
            (Running, PreCopy) | (RunningP2p, PreCopyP2p) => {
                // The initial data is the header: the destination can
                // refuse another type before the device stops.
                let mut header = [0u8; migration::HEADER_LEN];
                migration::write_header(self.ty(), &mut Writer::new(&mut header))?;
                let s = MigrationStream::new_save()?;
                s.append(&header, false)?;
                s.set_precopy(Some(dev.precopy_info_v2()));
                let file = s.open_file()?;
                ctl.save = Some(s);
                Ok(Some(file))
            }
            (PreCopyP2p, StopCopy) => {
                let s = ctl.save.as_ref().ok_or(EINVAL)?;
                let stream = self.save_stream()?;
                s.set_precopy(None);
                s.append(stream.get(migration::HEADER_LEN..).ok_or(EINVAL)?, true)?;
                Ok(None)
            }
            (Stop, StopCopy) => {
                let stream = self.save_stream()?;
                let s = MigrationStream::new_save()?;
                s.append(&stream, true)?;
                let file = s.open_file()?;
                ctl.save = Some(s);
                Ok(Some(file))
            }
            (PreCopy, Running) | (PreCopyP2p, RunningP2p) | (StopCopy, Stop) => {
                ctl.end_streams();
                Ok(None)
            }
            (Stop, Resuming) => {
                let s = MigrationStream::new_resume(migration::max_len(self.ty()))?;
                let file = s.open_file()?;
                ctl.resume = Some(s);
                Ok(Some(file))
            }
            (Resuming, Stop) => {
                let s = ctl.resume.clone().ok_or(EINVAL)?;
                // The stream stays open on error: the user may write what
                // was missing and try again, or reset.
                s.with_data(|data| self.load_stream(dev, data))?;
                ctl.end_streams();
                Ok(None)
            }
            _ => Err(EINVAL),
        }
    }

    /// Carries out a validated `VFIO_DEVICE_SET_IRQS`.
    fn set_irqs(&self, set: vfio::IrqSet) -> Result<isize> {
        match set.index {
            pci::ERR_IRQ_INDEX | pci::REQ_IRQ_INDEX => {
                let err = set.index == pci::ERR_IRQ_INDEX;
                self.irqs.lock().set_notifier(set, err)?;
            }
            pci::MSIX_IRQ_INDEX => {
                let delivered = self.irqs.lock().set_msix(set);
                self.counters.interrupts.fetch_add(delivered, Relaxed);
            }
            // No INTx or MSI: only "disable all" (count 0) is valid for
            // them, and has nothing to do.
            _ if set.count == 0 => {}
            _ => return Err(EINVAL),
        }
        Ok(0)
    }

    /// The number of interrupts of VFIO IRQ index `index`, `None` for an
    /// index the device does not have.
    fn irq_count(&self, index: u32) -> Option<u32> {
        match index {
            pci::MSIX_IRQ_INDEX => Some(u32::from(self.ty().msix.vectors)),
            pci::ERR_IRQ_INDEX | pci::REQ_IRQ_INDEX => Some(1),
            i if i < pci::NUM_IRQS => Some(0),
            _ => None,
        }
    }
}

/// The BAR a region index names, if it is one.
fn bar_of(region: u64) -> Option<usize> {
    let first = u64::from(pci::BAR0_REGION_INDEX);
    (first..first + 6)
        .contains(&region)
        .then(|| (region - first) as usize)
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
        let ty = dev.ty();
        let (flags, size) = match (index, bar_of(u64::from(index))) {
            (_, Some(bar)) => {
                let b = ty.bars.get(bar).ok_or(EINVAL)?;
                if b.size == 0 {
                    (0, 0)
                } else if b.has_direct() {
                    // The direct ranges are the sparse-mmap areas: a VMM
                    // maps them and traps nothing there.
                    let mut areas = KVec::new();
                    ty.direct_areas(bar, &mut areas)?;
                    caps.add_sparse_mmap(&areas)?;
                    (rw | pci::REGION_FLAG_MMAP, b.size)
                } else {
                    (rw, b.size)
                }
            }
            (pci::CONFIG_REGION_INDEX, _) => (rw, config::CONFIG_SPACE_SIZE as u64),
            (i, _) if i < pci::NUM_REGIONS => (0, 0),
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
        if dev.pf().is_none() {
            return Err(ENODEV);
        }
        dev.tenant.ops().attach(dev);
        Ok(())
    }

    fn close(dev: &vfio::Device<Self>) {
        let mut ctl = dev.ctl.lock();
        // The PF's queues stop first (work in flight finishes) and every
        // pin goes, then the DMA and interrupt path is revoked: a PF still
        // holding the tenant reaches nothing, and the device holds no
        // reference to itself. The next user finds the device as after a
        // reset.
        dev.reset_locked(&mut ctl);
        dev.dirty.stop();
        dev.tenant.ops().detach();
        dev.irqs.lock().clear();
    }

    fn read(dev: &vfio::Device<Self>, out: &mut UserSliceWriter, offset: u64) -> Result<usize> {
        dev.check_live()?;
        let len = out.len();
        let (region, off) = Self::region_of(offset);
        if region == u64::from(pci::CONFIG_REGION_INDEX) {
            dev.traps.config.fetch_add(1, Relaxed);
            return dev.config_read(out, off);
        }
        let Some(bar) = bar_of(region) else {
            adi_err!(
                dev,
                dev.parent(),
                "read of region {} refused: no such region\n",
                region
            );
            return Err(EINVAL);
        };
        let value = dev.bar_read(dev, bar, off, len)?;
        out.write_slice(&value.to_le_bytes()[..len])?;
        Ok(len)
    }

    fn write(dev: &vfio::Device<Self>, input: &mut UserSliceReader, offset: u64) -> Result<usize> {
        dev.check_live()?;
        let len = input.len();
        let (region, off) = Self::region_of(offset);
        if region == u64::from(pci::CONFIG_REGION_INDEX) {
            dev.traps.config.fetch_add(1, Relaxed);
            if !matches!(len, 1 | 2 | 4) {
                return Err(EINVAL);
            }
            let mut bytes = [0u8; 4];
            input.read_slice(&mut bytes[..len])?;
            dev.config_write(off, len, u32::from_le_bytes(bytes))?;
            return Ok(len);
        }
        let Some(bar) = bar_of(region) else {
            adi_err!(
                dev,
                dev.parent(),
                "write of region {} refused: no such region\n",
                region
            );
            return Err(EINVAL);
        };
        let mut bytes = [0u8; 8];
        let Some(buf) = bytes.get_mut(..len) else {
            // Counted and refused like any other bad width.
            return dev.route(dev, bar, off, len).map(|_| len);
        };
        input.read_slice(buf)?;
        dev.bar_write(dev, bar, off, len, u64::from_le_bytes(bytes))?;
        Ok(len)
    }

    fn mmap(dev: &vfio::Device<Self>, vma: &vfio::Vma) -> Result {
        dev.check_live()?;
        let (region, off) = Self::region_of(vma.offset());
        let page = kernel::page::PAGE_SIZE as u64;
        let len = vma.len() as u64;
        let Some(bar) = bar_of(region).filter(|&b| dev.ty().is_direct(b, off, len)) else {
            adi_err!(
                dev,
                dev.parent(),
                "mmap of [{:#x}, +{:#x}) of region {} refused: not inside a directly mapped range\n",
                off,
                len,
                region
            );
            return Err(EINVAL);
        };
        // As vfio-pci: a private mapping would give the tenant copy-on-write
        // copies of the PF's pages, whose stores the PF never sees.
        if vma.as_new().flags() & kernel::mm::virt::flags::SHARED == 0 {
            adi_err!(
                dev,
                dev.parent(),
                "mmap of BAR{} refused: private mapping (only MAP_SHARED maps)\n",
                bar
            );
            return Err(EINVAL);
        }
        if off % page != 0 {
            return Err(EINVAL);
        }
        // Without `ctl`: see the locking notes.
        let pf = dev.pf().ok_or(ENODEV)?;
        for at in (0..len).step_by(page as usize) {
            let p = pf.direct_page(bar as u32, off + at).ok_or_else(|| {
                dev_err!(
                    dev.parent(),
                    "PF gave no page for offset {:#x} of BAR{}\n",
                    off + at,
                    bar
                );
                ENODEV
            })?;
            vma.insert_page(at as usize, &p)?;
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
            vfio::DEVICE_GET_IRQ_INFO => ioctl.reply_irq_info(|index| {
                let count = dev.irq_count(index).ok_or(EINVAL)?;
                let flags = if count > 0 { pci::IRQ_INFO_EVENTFD } else { 0 };
                Ok(vfio::IrqInfo { flags, count })
            }),
            vfio::DEVICE_SET_IRQS => {
                let set = ioctl
                    .read_irq_set(pci::NUM_IRQS, |index| dev.irq_count(index))
                    .inspect_err(|e| {
                        adi_err!(dev, dev.parent(), "VFIO_DEVICE_SET_IRQS refused: {:?}\n", e)
                    })?;
                dev.set_irqs(set)
            }
            _ => Err(ENOTTY),
        }
    }

    fn dma_unmap(dev: &vfio::Device<Self>, iova: u64, length: u64) {
        let _ctl = dev.ctl.lock();
        let hit = dev.tenant.ops().pins_overlapping(iova, length);
        if hit == 0 {
            return;
        }
        // The PF stops using what it pinned there (e.g. fails the queue
        // whose ring it is), then the pins go, as the VFIO core requires
        // before this returns.
        if let Some(pf) = dev.pf() {
            for slot in (0..64).filter(|s| hit & (1 << s) != 0) {
                pf.unpinned(slot);
            }
        }
        dev.tenant
            .ops()
            .drop_pins(|i| i < 64 && hit & (1 << i) != 0);
        dev_notice!(
            dev.parent(),
            "the tenant unmapped memory the device had pinned (slots {:#x}): the PF stopped using it\n",
            hit
        );
        dev.irqs.lock().notify_error();
    }

    fn migration_flags(adi: &Self) -> u32 {
        if adi.ty().state_size == 0 {
            return 0;
        }
        mig_flags::STOP_COPY | mig_flags::P2P | mig_flags::PRE_COPY
    }

    fn migration_set_state(dev: &vfio::Device<Self>, new: MigState) -> Result<Option<DataFile>> {
        dev.check_live()?;
        let mut ctl = dev.ctl.lock();
        let mut file = None;
        while ctl.state != new {
            let cur = ctl.state;
            let next = dev.next_mig_state(cur, new).inspect_err(|_| {
                adi_err!(
                    dev,
                    dev.parent(),
                    "migration state {:?} cannot reach {:?}\n",
                    cur,
                    new
                )
            })?;
            let step = dev.mig_step(dev, &mut ctl, cur, next).inspect_err(|e| {
                adi_err!(
                    dev,
                    dev.parent(),
                    "migration from {:?} to {:?} failed (errno {}); the device stays in {:?}\n",
                    cur,
                    next,
                    -e.to_errno(),
                    cur
                )
            })?;
            ctl.state = next;
            // The core's arcs open a data file only on the last step.
            file = step.or(file);
        }
        Ok(file)
    }

    fn log_start(
        dev: &vfio::Device<Self>,
        ranges: &[vfio::dirty::IovaRange],
        page_size: &mut u64,
    ) -> Result {
        dev.check_live()?;
        dev.dirty.start(ranges, page_size).inspect_err(|e| {
            adi_err!(
                dev,
                dev.parent(),
                "DMA dirty logging not started: {:?}\n",
                e
            )
        })
    }

    fn log_stop(dev: &vfio::Device<Self>) -> Result {
        dev.dirty.stop();
        Ok(())
    }

    fn log_read_and_clear(
        dev: &vfio::Device<Self>,
        iova: u64,
        length: u64,
        dirty: &mut vfio::dirty::IovaBitmap<'_>,
    ) -> Result {
        dev.dirty.read_and_clear(iova, length, dirty)?;
        // The PF may write pages pinned for writing without the core
        // seeing it: they count dirty for as long as they are pinned.
        let end = iova.saturating_add(length);
        dev.tenant.ops().written_pins(|at, len| {
            let (lo, hi) = (at.max(iova), at.saturating_add(len).min(end));
            if lo < hi {
                dirty.set(lo, hi - lo);
            }
        });
        Ok(())
    }

    fn migration_get_state(dev: &vfio::Device<Self>) -> Result<MigState> {
        Ok(dev.ctl.lock().state)
    }

    fn migration_data_size(dev: &vfio::Device<Self>) -> Result<usize> {
        Ok(migration::max_len(dev.ty()))
    }

    fn request(dev: &vfio::Device<Self>, count: u32) {
        // The core calls this every 10 s while removal waits for the user.
        // A VMM that installed a request eventfd unplugs the device from
        // its guest and closes it.
        let asked = dev.irqs.lock().notify_request();
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

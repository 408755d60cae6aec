// SPDX-License-Identifier: GPL-2.0

//! The PF contract, from the VDCM's side (`include/vdcm_pf.h`).
//!
//! Compiled into the VDCM only. The VDCM installs a [`Host`] with
//! [`HostRegistration`]; the exported `vdcm_register_pf()` checks the
//! registering structure's shape (versions, null pointers, array lengths)
//! so that it can be read safely, copies the PF's description into
//! [`PfDescription`] and hands the PF to the host as a [`Pf`]. What the
//! description means, and whether the core can use it, is the host's
//! business.
//!
//! Modules share no Rust types: everything that crosses the module
//! boundary is a C structure of the header.

use core::ffi::c_void;
use core::ptr::NonNull;

use kernel::device;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;
use kernel::types::ForeignOwnable;

use super::bindings;
use super::tenant::Tenant;
use super::tenant::TenantOps;
use super::vfio::MappablePage;

/// The contract version this VDCM implements.
pub const CONTRACT_VERSION: u32 = bindings::VDCM_PF_CONTRACT_VERSION;

/// Limits of a PF's description.
pub mod limits {
    use super::bindings;
    /// ADI types per PF.
    pub const TYPES: usize = bindings::VDCM_PF_MAX_TYPES as usize;
    /// Resource pools per PF.
    pub const POOLS: usize = bindings::VDCM_PF_MAX_POOLS as usize;
    /// Ranges per BAR.
    pub const RANGES: usize = bindings::VDCM_PF_MAX_RANGES as usize;
    /// Named counters per PF.
    pub const COUNTERS: usize = bindings::VDCM_PF_MAX_COUNTERS as usize;
    /// Extra DVSECs per ADI type.
    pub const DVSECS: usize = bindings::VDCM_PF_MAX_DVSECS as usize;
    /// Bytes of one DVSEC body.
    pub const DVSEC_BODY: usize = bindings::VDCM_PF_MAX_DVSEC_BODY as usize;
    /// Bytes of a PF's saved state of one ADI.
    pub const STATE: usize = bindings::VDCM_PF_MAX_STATE as usize;
    /// Pin slots per ADI.
    pub const PINS: u32 = bindings::VDCM_PF_MAX_PINS;
    /// BARs of a PCI function.
    pub const BARS: usize = bindings::VDCM_PF_NUM_BARS as usize;
}

/// How accesses to a range of a BAR are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeKind {
    /// They trap into the PF's callbacks.
    Trap,
    /// The PF's pages are mapped into the tenant.
    Direct,
}

/// One range of a BAR, as the PF described it.
#[derive(Clone, Copy, Debug)]
pub struct RangeDesc {
    /// How it is served; `None` for a kind this VDCM does not know.
    pub kind: Option<RangeKind>,
    /// Start in the BAR.
    pub offset: u32,
    /// Bytes.
    pub size: u32,
}

/// One BAR of an ADI type, as the PF described it.
#[derive(Default)]
pub struct BarDesc {
    /// Bytes; 0 for no BAR.
    pub size: u64,
    /// `VDCM_BAR_64BIT`.
    pub bits64: bool,
    /// `VDCM_BAR_PREFETCH`.
    pub prefetchable: bool,
    /// Flags this VDCM does not know.
    pub unknown_flags: u32,
    /// Its ranges.
    pub ranges: KVec<RangeDesc>,
}

/// A DVSEC the PF adds to its ADIs' config space.
pub struct DvsecDesc {
    /// DVSEC vendor ID.
    pub vendor: u16,
    /// DVSEC ID.
    pub id: u16,
    /// DVSEC revision.
    pub revision: u8,
    /// Contents after the two headers.
    pub body: KVec<u8>,
}

/// One ADI type, as the PF described it.
pub struct TypeDesc {
    /// The mdev type's sysfs name.
    pub name: CString,
    /// The mdev type's pretty name.
    pub description: CString,
    /// PCI vendor ID.
    pub vendor: u16,
    /// PCI device ID.
    pub device: u16,
    /// PCI subsystem vendor ID.
    pub subsystem_vendor: u16,
    /// PCI subsystem ID.
    pub subsystem: u16,
    /// PCI revision ID.
    pub revision: u8,
    /// PCI class code.
    pub class: u32,
    /// The six BARs.
    pub bars: [BarDesc; limits::BARS],
    /// MSI-X vectors.
    pub msix_vectors: u16,
    /// The BAR of the MSI-X table and PBA.
    pub msix_bar: u8,
    /// Offset of the MSI-X table.
    pub msix_table: u32,
    /// Offset of the PBA.
    pub msix_pba: u32,
    /// Extra DVSECs.
    pub dvsecs: KVec<DvsecDesc>,
    /// The pool an ADI draws from.
    pub pool: u32,
    /// Units of it one ADI takes.
    pub units: u32,
    /// Pin slots of one ADI.
    pub pins: u32,
    /// Bytes the PF saves at most for one ADI; 0: not migratable.
    pub state_size: u32,
    /// The largest portal threshold of an ADI; 0: no threshold.
    pub max_threshold: u32,
}

/// A resource pool, as the PF described it.
pub struct PoolDesc {
    /// What one unit is.
    pub name: CString,
    /// Units offered.
    pub size: u32,
}

/// Everything a PF registered with, copied.
pub struct PfDescription {
    /// PASID width.
    pub pasid_bits: u32,
    /// Resource pools.
    pub pools: KVec<PoolDesc>,
    /// ADI types.
    pub types: KVec<TypeDesc>,
    /// Names of the per-ADI counters.
    pub counters: KVec<CString>,
    /// Descriptors per second the PF can guarantee in all; 0: it does not
    /// schedule its ADIs ([`PfAdi::set_qos`] is refused).
    pub qos_capacity: u64,
}

/// How a PF shares itself with one ADI (`struct vdcm_qos`; the header
/// gives the meaning and the limits of each field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qos {
    /// Share among ADIs of equal priority.
    pub weight: u32,
    /// Strict priority level.
    pub priority: u32,
    /// Descriptors per second at most; 0: unlimited.
    pub max_rate: u64,
    /// Descriptors per second guaranteed.
    pub guaranteed_rate: u64,
    /// In-flight cap of a shared ADI's portal; 0: none.
    pub threshold: u32,
}

/// `EOPNOTSUPP`, which the kernel crate does not name.
pub fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

/// Copies the NUL-terminated string at `p`; `EINVAL` for a null pointer.
///
/// # Safety
///
/// A non-null `p` must point to a NUL-terminated string.
unsafe fn copy_str(p: *const kernel::ffi::c_char) -> Result<CString> {
    if p.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: per the caller.
    let s = unsafe { CStr::from_char_ptr(p) };
    Ok(s.to_cstring()?)
}

/// A slice of `n` elements at `p`, `EINVAL` if `n` exceeds `max` or a
/// non-empty array is null.
///
/// # Safety
///
/// A non-null `p` must point to `n` valid elements that outlive `'a`.
unsafe fn array<'a, T>(p: *const T, n: u32, max: usize) -> Result<&'a [T]> {
    let n = n as usize;
    if n > max {
        return Err(EINVAL);
    }
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: per the caller.
    Ok(unsafe { core::slice::from_raw_parts(p, n) })
}

impl PfDescription {
    /// Copies the description of `pf`.
    ///
    /// # Safety
    ///
    /// `pf` must follow the header's rules: every pointer valid, every
    /// count the length of its array.
    unsafe fn copy(pf: &bindings::vdcm_pf) -> Result<Self> {
        let mut pools = KVec::new();
        // SAFETY: per the caller.
        for p in unsafe { array(pf.pools, pf.nr_pools, limits::POOLS)? } {
            pools.push(
                PoolDesc {
                    // SAFETY: per the caller.
                    name: unsafe { copy_str(p.name)? },
                    size: p.size,
                },
                GFP_KERNEL,
            )?;
        }
        let mut types = KVec::new();
        // SAFETY: per the caller.
        for t in unsafe { array(pf.types, pf.nr_types, limits::TYPES)? } {
            // SAFETY: per the caller.
            types.push(unsafe { Self::copy_type(t)? }, GFP_KERNEL)?;
        }
        let mut counters = KVec::new();
        // SAFETY: per the caller.
        for &name in unsafe { array(pf.counter_names, pf.nr_counters, limits::COUNTERS)? } {
            // SAFETY: per the caller.
            counters.push(unsafe { copy_str(name)? }, GFP_KERNEL)?;
        }
        Ok(PfDescription {
            pasid_bits: pf.pasid_bits,
            pools,
            types,
            counters,
            qos_capacity: pf.qos_capacity,
        })
    }

    /// # Safety
    ///
    /// As for [`PfDescription::copy`].
    unsafe fn copy_type(t: &bindings::vdcm_adi_type) -> Result<TypeDesc> {
        let mut bars: [BarDesc; limits::BARS] = Default::default();
        for (out, b) in bars.iter_mut().zip(t.bars.iter()) {
            let mut ranges = KVec::new();
            // SAFETY: per the caller.
            for r in unsafe { array(b.ranges, b.nr_ranges, limits::RANGES)? } {
                ranges.push(
                    RangeDesc {
                        kind: match r.kind {
                            bindings::VDCM_RANGE_TRAP => Some(RangeKind::Trap),
                            bindings::VDCM_RANGE_DIRECT => Some(RangeKind::Direct),
                            _ => None,
                        },
                        offset: r.offset,
                        size: r.size,
                    },
                    GFP_KERNEL,
                )?;
            }
            let known = bindings::VDCM_BAR_64BIT | bindings::VDCM_BAR_PREFETCH;
            *out = BarDesc {
                size: b.size,
                bits64: b.flags & bindings::VDCM_BAR_64BIT != 0,
                prefetchable: b.flags & bindings::VDCM_BAR_PREFETCH != 0,
                unknown_flags: b.flags & !known,
                ranges,
            };
        }
        let mut dvsecs = KVec::new();
        // SAFETY: per the caller.
        for d in unsafe { array(t.dvsecs, t.nr_dvsecs, limits::DVSECS)? } {
            // SAFETY: per the caller.
            let body = unsafe { array(d.body, d.len, limits::DVSEC_BODY)? };
            let mut copy = KVec::with_capacity(body.len(), GFP_KERNEL)?;
            copy.extend_from_slice(body, GFP_KERNEL)?;
            dvsecs.push(
                DvsecDesc {
                    vendor: d.vendor,
                    id: d.id,
                    revision: d.revision,
                    body: copy,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(TypeDesc {
            // SAFETY: per the caller.
            name: unsafe { copy_str(t.name)? },
            // SAFETY: per the caller.
            description: unsafe { copy_str(t.description)? },
            vendor: t.vendor,
            device: t.device,
            subsystem_vendor: t.subsystem_vendor,
            subsystem: t.subsystem,
            revision: t.revision,
            class: t.class,
            bars,
            msix_vectors: t.msix.vectors,
            msix_bar: t.msix.bar,
            msix_table: t.msix.table_offset,
            msix_pba: t.msix.pba_offset,
            dvsecs,
            pool: t.pool,
            units: t.units,
            pins: t.nr_pins,
            state_size: t.state_size,
            max_threshold: t.max_threshold,
        })
    }
}

type RawPf = bindings::vdcm_pf;

/// The PF's operations, checked once (at registration) to be all present.
#[derive(Clone, Copy)]
struct PfOps {
    config_read: unsafe extern "C" fn(*mut RawPf, u32, u32, *mut u32) -> i32,
    adi_create: unsafe extern "C" fn(
        *mut RawPf,
        u32,
        u32,
        *mut bindings::vdcm_tenant,
        *mut *mut c_void,
    ) -> i32,
    adi_destroy: unsafe extern "C" fn(*mut RawPf, *mut c_void),
    trap_read: unsafe extern "C" fn(*mut RawPf, *mut c_void, u32, u64, u32, *mut u64) -> i32,
    trap_write: unsafe extern "C" fn(*mut RawPf, *mut c_void, u32, u64, u32, u64) -> i32,
    direct_page: unsafe extern "C" fn(*mut RawPf, *mut c_void, u32, u64) -> *mut bindings::page,
    reset: unsafe extern "C" fn(*mut RawPf, *mut c_void),
    unpinned: unsafe extern "C" fn(*mut RawPf, *mut c_void, u32),
    counters: unsafe extern "C" fn(*mut RawPf, *mut c_void, *mut u64),
    quiesce: unsafe extern "C" fn(*mut RawPf, *mut c_void) -> i32,
    unquiesce: unsafe extern "C" fn(*mut RawPf, *mut c_void),
    save: unsafe extern "C" fn(*mut RawPf, *mut c_void, *mut c_void, u32) -> i32,
    restore: unsafe extern "C" fn(*mut RawPf, *mut c_void, *const c_void, u32) -> i32,
    /// Present exactly when the PF has a QoS capacity.
    set_qos:
        Option<unsafe extern "C" fn(*mut RawPf, *mut c_void, *const bindings::vdcm_qos) -> i32>,
}

impl PfOps {
    /// The table if every required operation is there, and `set_qos`
    /// exactly when the PF has a QoS capacity.
    fn check(o: &bindings::vdcm_pf_ops, qos_capacity: u64) -> Option<Self> {
        if o.set_qos.is_some() != (qos_capacity != 0) {
            return None;
        }
        Some(PfOps {
            config_read: o.config_read?,
            adi_create: o.adi_create?,
            adi_destroy: o.adi_destroy?,
            trap_read: o.trap_read?,
            trap_write: o.trap_write?,
            direct_page: o.direct_page?,
            reset: o.reset?,
            unpinned: o.unpinned?,
            counters: o.counters?,
            quiesce: o.quiesce?,
            unquiesce: o.unquiesce?,
            save: o.save?,
            restore: o.restore?,
            set_qos: o.set_qos,
        })
    }
}

/// A registered PF, as the VDCM sees it.
///
/// # Invariants
///
/// `raw` points to a registered `struct vdcm_pf`, which the PF driver
/// keeps valid and unchanged until `vdcm_unregister_pf()`; that call drops
/// the host's state, which owns every `Pf` and [`PfAdi`], before it
/// returns. `ops` are the PF's operations and `nr_counters` its count.
pub struct Pf {
    raw: NonNull<RawPf>,
    ops: PfOps,
    nr_counters: usize,
}

// SAFETY: the structure is read-only while registered, and the contract
// lets its operations be called from any thread.
unsafe impl Send for Pf {}
// SAFETY: See `Send`.
unsafe impl Sync for Pf {}

impl Pf {
    /// The PF's device, the parent of its ADIs.
    pub fn device(&self) -> &device::Device {
        // SAFETY: the PF driver keeps `dev` valid while registered (type
        // invariant; checked non-null at registration).
        unsafe { device::Device::from_raw(self.raw.as_ref().dev) }
    }

    /// Reads `len` bytes at `offset` of the PF's own config space.
    pub fn config_read(&self, offset: u32, len: u32) -> Result<u32> {
        let mut value = 0;
        // SAFETY: the PF's own op, called with its registered structure;
        // `value` is valid for writes.
        to_result(unsafe { (self.ops.config_read)(self.raw.as_ptr(), offset, len, &mut value) })?;
        Ok(value)
    }

    /// Builds the PF's side of an ADI of type `ty` for `tenant`, whose
    /// queues carry `pasid`.
    pub fn adi_create<T: TenantOps>(
        self: &Arc<Self>,
        ty: u32,
        pasid: u32,
        tenant: &Arc<Tenant<T>>,
    ) -> Result<PfAdi> {
        let mut adi = core::ptr::null_mut();
        // SAFETY: the PF's own op; the tenant's C header stays valid for
        // the call (we hold `tenant`) and after it through the references
        // the PF takes; `adi` is valid for writes.
        to_result(unsafe {
            (self.ops.adi_create)(
                self.raw.as_ptr(),
                ty,
                pasid,
                Tenant::as_raw(tenant),
                &mut adi,
            )
        })?;
        let Some(ptr) = NonNull::new(adi) else {
            return Err(EINVAL);
        };
        // INVARIANT: a live ADI the PF just created.
        Ok(PfAdi {
            pf: self.clone(),
            ptr,
        })
    }
}

/// The PF's side of one ADI.
///
/// # Invariants
///
/// `ptr` is the PF's pointer for a live ADI it created on `pf`, not yet
/// destroyed; dropping this value destroys it.
pub struct PfAdi {
    pf: Arc<Pf>,
    ptr: NonNull<c_void>,
}

// SAFETY: the contract lets a PF's ADI operations be called from any
// thread, concurrently except for `reset` and `unpinned` (which the VDCM
// calls one at a time); the PF locks what those calls share.
unsafe impl Send for PfAdi {}
// SAFETY: See `Send`.
unsafe impl Sync for PfAdi {}

impl PfAdi {
    fn raw(&self) -> (*mut RawPf, *mut c_void) {
        (self.pf.raw.as_ptr(), self.ptr.as_ptr())
    }

    /// A trapped read of `size` bytes at `offset` of BAR `bar`.
    pub fn trap_read(&self, bar: u32, offset: u64, size: u32) -> Result<u64> {
        let (pf, adi) = self.raw();
        let mut value = 0;
        // SAFETY: the PF's own op on its live ADI (type invariant);
        // `value` is valid for writes.
        to_result(unsafe { (self.pf.ops.trap_read)(pf, adi, bar, offset, size, &mut value) })?;
        Ok(value)
    }

    /// A trapped write of `value` at `offset` of BAR `bar`.
    pub fn trap_write(&self, bar: u32, offset: u64, size: u32, value: u64) -> Result {
        let (pf, adi) = self.raw();
        // SAFETY: the PF's own op on its live ADI (type invariant).
        to_result(unsafe { (self.pf.ops.trap_write)(pf, adi, bar, offset, size, value) })
    }

    /// The page behind `offset` of BAR `bar`, to map into the tenant.
    pub fn direct_page(&self, bar: u32, offset: u64) -> Option<MappablePage> {
        let (pf, adi) = self.raw();
        // SAFETY: the PF's own op on its live ADI (type invariant).
        let page = NonNull::new(unsafe { (self.pf.ops.direct_page)(pf, adi, bar, offset) })?;
        // SAFETY: the contract makes it a page the PF keeps allocated
        // until the ADI is destroyed, which the VDCM does only after the
        // tenant's mappings are gone (mappings hold the device open).
        Some(unsafe { MappablePage::from_raw(page) })
    }

    /// The PF's part of a function reset.
    pub fn reset(&self) {
        let (pf, adi) = self.raw();
        // SAFETY: the PF's own op on its live ADI (type invariant).
        unsafe { (self.pf.ops.reset)(pf, adi) };
    }

    /// Tells the PF the tenant is unmapping part of pin slot `slot`.
    pub fn unpinned(&self, slot: u32) {
        let (pf, adi) = self.raw();
        // SAFETY: the PF's own op on its live ADI (type invariant).
        unsafe { (self.pf.ops.unpinned)(pf, adi, slot) };
    }

    /// The PF's counters of the ADI, in its description's order, into
    /// `values` (at least as many as it named; the rest untouched).
    pub fn counters(&self, values: &mut [u64]) -> Result {
        if values.len() < self.pf.nr_counters {
            return Err(EINVAL);
        }
        let (pf, adi) = self.raw();
        // SAFETY: the PF's own op on its live ADI (type invariant);
        // `values` has room for the `nr_counters` values it writes.
        unsafe { (self.pf.ops.counters)(pf, adi, values.as_mut_ptr()) };
        Ok(())
    }
}

impl PfAdi {
    /// Stops the ADI's work for a migration (see the contract).
    pub fn quiesce(&self) -> Result {
        let (pf, adi) = self.raw();
        // SAFETY: the PF's own op on its live ADI (type invariant).
        to_result(unsafe { (self.pf.ops.quiesce)(pf, adi) })
    }

    /// Undoes [`PfAdi::quiesce`].
    pub fn unquiesce(&self) {
        let (pf, adi) = self.raw();
        // SAFETY: the PF's own op on its live ADI (type invariant).
        unsafe { (self.pf.ops.unquiesce)(pf, adi) };
    }

    /// Saves the ADI's state into `buf`; returns the bytes written.
    pub fn save(&self, buf: &mut [u8]) -> Result<usize> {
        let len = u32::try_from(buf.len()).map_err(|_| EINVAL)?;
        let (pf, adi) = self.raw();
        // SAFETY: the PF's own op on its live ADI (type invariant); `buf`
        // is valid for `len` bytes of writes.
        let n = unsafe { (self.pf.ops.save)(pf, adi, buf.as_mut_ptr().cast(), len) };
        to_result(n.min(0))?;
        // A PF claiming more than it was given is refused, not trusted.
        let n = n as usize;
        if n > buf.len() {
            return Err(EINVAL);
        }
        Ok(n)
    }

    /// Restores the ADI's state from `buf` (checked by the PF first).
    pub fn restore(&self, buf: &[u8]) -> Result {
        let len = u32::try_from(buf.len()).map_err(|_| EINVAL)?;
        let (pf, adi) = self.raw();
        // SAFETY: the PF's own op on its live ADI (type invariant); `buf`
        // is valid for `len` bytes of reads.
        to_result(unsafe { (self.pf.ops.restore)(pf, adi, buf.as_ptr().cast(), len) })
    }

    /// Schedules the ADI by `qos` (checked by the caller against the
    /// header's limits); `EOPNOTSUPP` if the PF does not schedule ADIs.
    pub fn set_qos(&self, qos: &Qos) -> Result {
        let Some(set_qos) = self.pf.ops.set_qos else {
            return Err(eopnotsupp());
        };
        let raw = bindings::vdcm_qos {
            weight: qos.weight,
            priority: qos.priority,
            max_rate: qos.max_rate,
            guaranteed_rate: qos.guaranteed_rate,
            threshold: qos.threshold,
        };
        let (pf, adi) = self.raw();
        // SAFETY: the PF's own op on its live ADI (type invariant); `raw`
        // is valid for reads during the call.
        to_result(unsafe { set_qos(pf, adi, &raw) })
    }
}

impl Drop for PfAdi {
    fn drop(&mut self) {
        let (pf, adi) = self.raw();
        // SAFETY: the PF's own op; the ADI is live and this is its last
        // use (type invariant).
        unsafe { (self.pf.ops.adi_destroy)(pf, adi) };
    }
}

/// The VDCM: what happens when PFs come and go.
pub trait Host: Send + Sync + 'static {
    /// State the host keeps for one PF; dropping it withdraws the PF
    /// (removing its ADIs first, and with them every [`PfAdi`]).
    type PfState: Send;

    /// A PF registers with `desc`; `pf` stays valid for as long as the
    /// returned state lives.
    fn pf_added(&self, pf: Arc<Pf>, desc: PfDescription) -> Result<Self::PfState>;
}

/// The installed host, type-erased.
struct Slot {
    host: *const c_void,
    add: fn(*const c_void, Arc<Pf>, PfDescription) -> Result<*mut c_void>,
    remove: fn(*mut c_void),
    pfs: usize,
}

// SAFETY: `host` is an `Arc<H>` with `H: Send + Sync`; the functions
// are plain code.
unsafe impl Send for Slot {}

kernel::sync::global_lock! {
    // SAFETY: initialised once, in `HostRegistration::new`, before any
    // use (guarded by `INIT`).
    unsafe(uninit) static HOST: Mutex<Option<Slot>> = None;
}

static INIT: kernel::sync::atomic::Atomic<bool> = kernel::sync::atomic::Atomic::new(false);

fn add_for<H: Host>(host: *const c_void, pf: Arc<Pf>, desc: PfDescription) -> Result<*mut c_void> {
    // SAFETY: `host` came from `Arc::<H>::into_foreign` in
    // `HostRegistration::new` and stays alive while installed.
    let host = unsafe { <Arc<H> as ForeignOwnable>::borrow(host.cast_mut()) };
    let state = host.pf_added(pf, desc)?;
    Ok(KBox::new(state, GFP_KERNEL)?.into_foreign())
}

fn remove_for<H: Host>(state: *mut c_void) {
    // SAFETY: `state` came from `add_for::<H>` and is taken back once.
    drop(unsafe { KBox::<H::PfState>::from_foreign(state) });
}

/// The installed host; PFs can register while it lives.
pub struct HostRegistration<H: Host> {
    _host: core::marker::PhantomData<H>,
}

impl<H: Host> HostRegistration<H> {
    /// Installs `host`. Fails with `EBUSY` if a host is installed.
    pub fn new(host: Arc<H>) -> Result<Self> {
        use kernel::sync::atomic::Relaxed;
        if INIT.cmpxchg(false, true, Relaxed).is_ok() {
            // SAFETY: the compare-exchange lets exactly one caller, ever,
            // reach this line.
            unsafe { HOST.init() };
        }
        let mut slot = HOST.lock();
        if slot.is_some() {
            return Err(EBUSY);
        }
        *slot = Some(Slot {
            host: host.into_foreign().cast_const(),
            add: add_for::<H>,
            remove: remove_for::<H>,
            pfs: 0,
        });
        Ok(Self {
            _host: core::marker::PhantomData,
        })
    }
}

impl<H: Host> Drop for HostRegistration<H> {
    fn drop(&mut self) {
        let mut slot = HOST.lock();
        if let Some(s) = slot.take() {
            if s.pfs != 0 {
                // PF modules depend on the VDCM's symbols, so they are
                // unloaded (and unregistered) first; this is a PF bug.
                pr_err!("{} PF(s) still registered at VDCM exit\n", s.pfs);
            }
            // SAFETY: `host` came from `Arc::<H>::into_foreign`.
            drop(unsafe { Arc::<H>::from_foreign(s.host.cast_mut()) });
        }
    }
}

/// `vdcm_register_pf()` of `include/vdcm_pf.h`.
///
/// # Safety
///
/// `pf` must follow the header's rules: valid and unchanged until
/// `vdcm_unregister_pf(pf)` returns.
#[no_mangle]
pub unsafe extern "C" fn vdcm_register_pf(pf: *mut bindings::vdcm_pf) -> kernel::ffi::c_int {
    let Some(raw) = NonNull::new(pf) else {
        return EINVAL.to_errno();
    };
    // SAFETY: valid per the caller's contract.
    let p = unsafe { raw.as_ref() };
    if p.version != CONTRACT_VERSION {
        pr_err!(
            "PF built for contract v{}, this VDCM implements v{}\n",
            p.version,
            CONTRACT_VERSION
        );
        // The kernel crate has no EPROTO constant; the uapi value is a
        // small positive number.
        return -(bindings::EPROTO as kernel::ffi::c_int);
    }
    if p.dev.is_null() {
        pr_err!("PF registered without a device\n");
        return EINVAL.to_errno();
    }
    // SAFETY: a non-null `ops` points to the PF's table, valid while
    // registered.
    let Some(ops) = (!p.ops.is_null())
        .then(|| PfOps::check(unsafe { &*p.ops }, p.qos_capacity))
        .flatten()
    else {
        pr_err!(
            "PF registered without a complete vdcm_pf_ops table (set_qos is there exactly when qos_capacity is not 0)\n"
        );
        return EINVAL.to_errno();
    };
    // SAFETY: the caller follows the header's rules.
    let desc = match unsafe { PfDescription::copy(p) } {
        Ok(d) => d,
        Err(e) => {
            pr_err!(
                "PF description unreadable (a null pointer or a count past the header's limits)\n"
            );
            return e.to_errno();
        }
    };
    let nr_counters = desc.counters.len();
    // INVARIANT: the caller keeps `pf` valid until it unregisters; the state
    // that owns this `Pf` is dropped in `vdcm_unregister_pf` before it
    // returns.
    let pf_ref = match Arc::new(
        Pf {
            raw,
            ops,
            nr_counters,
        },
        GFP_KERNEL,
    ) {
        Ok(p) => p,
        Err(e) => return Error::from(e).to_errno(),
    };
    let mut guard = HOST.lock();
    let Some(slot) = guard.as_mut() else {
        return ENODEV.to_errno();
    };
    match (slot.add)(slot.host, pf_ref, desc) {
        Ok(state) => {
            slot.pfs += 1;
            // SAFETY: the `vdcm` field is ours while registered.
            unsafe { (*pf).vdcm = state };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `vdcm_unregister_pf()` of `include/vdcm_pf.h`.
///
/// # Safety
///
/// `pf` must have been registered with `vdcm_register_pf` and not
/// unregistered since.
#[no_mangle]
pub unsafe extern "C" fn vdcm_unregister_pf(pf: *mut bindings::vdcm_pf) {
    if pf.is_null() {
        return;
    }
    // SAFETY: registered, per the caller's contract; the field is ours.
    let state = unsafe { core::mem::replace(&mut (*pf).vdcm, core::ptr::null_mut()) };
    if state.is_null() {
        return;
    }
    let remove = {
        let mut guard = HOST.lock();
        let Some(slot) = guard.as_mut() else {
            return;
        };
        slot.pfs -= 1;
        slot.remove
    };
    // Outside the lock: removing the PF's ADIs waits for their users.
    remove(state);
}

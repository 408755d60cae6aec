// SPDX-License-Identifier: GPL-2.0

//! The PF contract, from a Rust PF driver's side (`include/vdcm_pf.h`).
//!
//! A PF driver describes its ADI types in Rust ([`PfInfo`], [`AdiType`],
//! [`Bar`], [`Range`]), implements [`PfDriver`] (the personality: trapped
//! accesses, direct pages, reset, counters) and registers with
//! [`Registration`], which builds the C description, calls the VDCM's
//! exported `vdcm_register_pf()` and, on drop, `vdcm_unregister_pf()`.
//!
//! Modules share no Rust types: everything that crosses the module
//! boundary is a C structure of the header. This module is compiled into
//! PF drivers only; the VDCM's side is `pf_host`.

use core::ffi::c_void;
use core::ptr::NonNull;

use kernel::device;
use kernel::error::to_result;
use kernel::page::Page;
use kernel::prelude::*;
use kernel::types::ForeignOwnable;
use kernel::types::Opaque;

use super::bindings;
use super::tenant::TenantRef;

/// The contract version this module was built against.
pub const CONTRACT_VERSION: u32 = bindings::VDCM_PF_CONTRACT_VERSION;

/// Number of BARs of a PCI function.
pub const NUM_BARS: usize = bindings::VDCM_PF_NUM_BARS as usize;

/// Returns the contract version of the loaded VDCM module.
pub fn loaded_contract_version() -> u32 {
    // SAFETY: `vdcm_pf_contract_version` takes no arguments, touches no
    // shared state and may be called from any context; modpost resolved the
    // symbol against the VDCM module, which stays loaded while we are.
    unsafe { bindings::vdcm_pf_contract_version() }
}

/// A resource the PF's ADI types are made of.
#[derive(Clone, Copy, Debug)]
pub struct Pool {
    /// What one unit is, e.g. "queue pairs".
    pub name: &'static CStr,
    /// Units the PF offers.
    pub size: u32,
}

/// How the accesses to a range of a BAR are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeKind {
    /// Every access traps into [`PfDriver::trap_read`] / `trap_write`.
    Trap,
    /// Pages mapped straight into the tenant ([`PfDriver::direct_page`]).
    Direct,
}

/// One range of a BAR.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    /// How it is served.
    pub kind: RangeKind,
    /// Start in the BAR (page aligned for a direct range).
    pub offset: u32,
    /// Bytes (whole pages for a direct range).
    pub size: u32,
}

/// One memory BAR of an ADI type.
#[derive(Clone, Copy, Debug)]
pub struct Bar {
    /// Bytes, a power of two of at least 4096; 0: no BAR here.
    pub size: u64,
    /// A 64-bit BAR (takes two slots; the next must be [`Bar::NONE`]).
    pub bits64: bool,
    /// Prefetchable.
    pub prefetchable: bool,
    /// Its ranges, ascending and not overlapping.
    pub ranges: &'static [Range],
}

impl Bar {
    /// No BAR in this slot.
    pub const NONE: Bar = Bar {
        size: 0,
        bits64: false,
        prefetchable: false,
        ranges: &[],
    };
}

/// Where the VDCM emulates an ADI's MSI-X table and PBA.
#[derive(Clone, Copy, Debug)]
pub struct Msix {
    /// Vectors of the ADI.
    pub vectors: u16,
    /// The BAR holding table and PBA (inside trapped ranges).
    pub bar: u8,
    /// Offset of the table.
    pub table_offset: u32,
    /// Offset of the pending bit array.
    pub pba_offset: u32,
}

/// One kind of ADI the PF offers (one mdev type).
#[derive(Clone, Copy, Debug)]
pub struct AdiType {
    /// The mdev type's sysfs name.
    pub name: &'static CStr,
    /// The mdev type's pretty name.
    pub description: &'static CStr,
    /// PCI vendor ID of the virtual function.
    pub vendor: u16,
    /// PCI device ID.
    pub device: u16,
    /// PCI subsystem vendor ID.
    pub subsystem_vendor: u16,
    /// PCI subsystem ID.
    pub subsystem: u16,
    /// PCI revision ID.
    pub revision: u8,
    /// PCI class code, 24 bits.
    pub class: u32,
    /// The memory BARs.
    pub bars: [Bar; NUM_BARS],
    /// MSI-X table and PBA.
    pub msix: Msix,
    /// The pool (index into [`PfInfo::pools`]) an ADI draws from.
    pub pool: u32,
    /// Units of that pool one ADI takes.
    pub units: u32,
    /// Pin slots one ADI may use ([`TenantRef::pin`]).
    pub pins: u32,
    /// Bytes [`PfDriver::save`] writes at most for one ADI; 0: ADIs of
    /// this type cannot be migrated.
    pub state_size: u32,
    /// The largest QoS threshold of an ADI (a shared type's portal
    /// depth); 0: the type has none.
    pub max_threshold: u32,
}

/// How the PF is to share itself with one ADI ([`PfDriver::set_qos`];
/// `struct vdcm_qos`, whose fields the VDCM checked against the limits
/// the header gives).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qos {
    /// Share among ADIs of equal priority (1..=200).
    pub weight: u32,
    /// Strict priority level (0..=15, higher first).
    pub priority: u32,
    /// Descriptors per second at most; 0: unlimited.
    pub max_rate: u64,
    /// Descriptors per second the ADI is served at whatever the others do.
    pub guaranteed_rate: u64,
    /// Most descriptors a shared ADI holds in flight; 0: no threshold.
    pub threshold: u32,
}

/// What a PF offers, as it registers.
pub struct PfInfo<'a> {
    /// Width of the PASIDs the PF's queues carry (1..=20).
    pub pasid_bits: u32,
    /// The resources its types are made of.
    pub pools: &'a [Pool],
    /// Its ADI types.
    pub types: &'a [AdiType],
    /// Names of the per-ADI counters [`PfDriver::counters`] fills.
    pub counters: &'static [&'static CStr],
    /// Descriptors per second the PF can guarantee in all (the bound of
    /// its ADIs' guaranteed rates); 0: it does not schedule its ADIs and
    /// [`PfDriver::set_qos`] is never called.
    pub qos_capacity: u64,
}

/// The personality of a PF: what the VDCM asks of it (`struct
/// vdcm_pf_ops`).
///
/// For one ADI, `adi_create` comes first and `adi_destroy` last; the VDCM
/// calls `reset` and `unpinned` one at a time, while trapped accesses,
/// `direct_page` and `counters` may run concurrently with each other and
/// with those two (`Self::Adi` is `Sync`: what they share is the PF's to
/// lock). Calls for different ADIs may run concurrently. All may sleep.
pub trait PfDriver: Send + Sync + 'static {
    /// The PF's state for one ADI.
    type Adi: Send + Sync + 'static;

    /// Reads `len` (1, 2 or 4) bytes at `offset` of the PF's PCI config
    /// space, where the VDCM looks for the SIOV capability.
    fn config_read(&self, offset: u32, len: u32) -> Result<u32>;

    /// Builds the PF's side of a new ADI of type `ty` (an index into
    /// [`PfInfo::types`]) whose queues carry `pasid` and work for
    /// `tenant`. The ADI starts as after a reset.
    fn adi_create(&self, ty: u32, pasid: u32, tenant: TenantRef) -> Result<Pin<KBox<Self::Adi>>>;

    /// Undoes [`PfDriver::adi_create`]; the default drops the state.
    fn adi_destroy(&self, adi: Pin<KBox<Self::Adi>>) {
        drop(adi);
    }

    /// A tenant read of `size` bytes at `offset` of BAR `bar`, in a
    /// trapped range. `EINVAL` refuses it.
    fn trap_read(&self, adi: &Self::Adi, bar: u32, offset: u64, size: u32) -> Result<u64>;

    /// A tenant write of `value` (`size` bytes) at `offset` of BAR `bar`.
    fn trap_write(&self, adi: &Self::Adi, bar: u32, offset: u64, size: u32, value: u64) -> Result;

    /// The page backing `offset` of BAR `bar`, in a direct range. It must
    /// stay allocated until the ADI is destroyed.
    fn direct_page<'a>(&'a self, adi: &'a Self::Adi, bar: u32, offset: u64) -> Option<&'a Page>;

    /// The PF's part of a function reset: stop, drain, drop pins, reset
    /// the registers and clear the direct pages.
    fn reset(&self, adi: &Self::Adi);

    /// The tenant is unmapping part of the range pinned in `slot`.
    fn unpinned(&self, adi: &Self::Adi, slot: u32);

    /// Fills the ADI's counters, in [`PfInfo::counters`] order.
    fn counters(&self, adi: &Self::Adi, values: &mut [u64]);

    /// Stops the ADI's work for a migration: no new work is fetched, work
    /// in flight finishes, no interrupt or DMA follows.
    fn quiesce(&self, adi: &Self::Adi) -> Result;

    /// Undoes [`PfDriver::quiesce`], acting on the state as it is now.
    fn unquiesce(&self, adi: &Self::Adi);

    /// Saves the quiesced ADI's state into `buf` (the type's
    /// [`AdiType::state_size`] bytes); returns the bytes written.
    fn save(&self, adi: &Self::Adi, buf: &mut [u8]) -> Result<usize>;

    /// Makes the state the one `buf` holds, checking all of it first: on
    /// error nothing has changed. The ADI is quiesced and freshly reset.
    fn restore(&self, adi: &Self::Adi, buf: &[u8]) -> Result;

    /// Schedules the ADI by `qos` from now on: right after `adi_create`
    /// (the defaults), on every operator change, after a migration's
    /// `restore`. `reset` keeps the settings. Only called when
    /// [`PfInfo::qos_capacity`] is not 0.
    fn set_qos(&self, _adi: &Self::Adi, _qos: &Qos) -> Result {
        Err(Error::from_errno(-(bindings::EOPNOTSUPP as i32)))
    }
}

/// The C description built from a [`PfInfo`], owned by the registration.
struct Description {
    pools: KVec<bindings::vdcm_pool>,
    types: KVec<bindings::vdcm_adi_type>,
    _ranges: KVec<KVec<bindings::vdcm_bar_range>>,
    counters: KVec<*const kernel::ffi::c_char>,
}

impl Description {
    fn new(info: &PfInfo<'_>) -> Result<Self> {
        let mut pools = KVec::with_capacity(info.pools.len(), GFP_KERNEL)?;
        for p in info.pools {
            pools.push(
                bindings::vdcm_pool {
                    name: p.name.as_char_ptr(),
                    size: p.size,
                },
                GFP_KERNEL,
            )?;
        }
        let mut ranges = KVec::with_capacity(info.types.len() * NUM_BARS, GFP_KERNEL)?;
        let mut types = KVec::with_capacity(info.types.len(), GFP_KERNEL)?;
        for t in info.types {
            let mut bars: [bindings::vdcm_bar; NUM_BARS] = Default::default();
            for (raw, bar) in bars.iter_mut().zip(t.bars.iter()) {
                let mut list = KVec::with_capacity(bar.ranges.len(), GFP_KERNEL)?;
                for r in bar.ranges {
                    list.push(
                        bindings::vdcm_bar_range {
                            kind: match r.kind {
                                RangeKind::Trap => bindings::VDCM_RANGE_TRAP,
                                RangeKind::Direct => bindings::VDCM_RANGE_DIRECT,
                            },
                            offset: r.offset,
                            size: r.size,
                        },
                        GFP_KERNEL,
                    )?;
                }
                *raw = bindings::vdcm_bar {
                    size: bar.size,
                    flags: if bar.bits64 {
                        bindings::VDCM_BAR_64BIT
                    } else {
                        0
                    } | if bar.prefetchable {
                        bindings::VDCM_BAR_PREFETCH
                    } else {
                        0
                    },
                    nr_ranges: list.len() as u32,
                    // The vector's heap buffer does not move when `list`
                    // is moved into `ranges`.
                    ranges: list.as_ptr(),
                };
                ranges.push(list, GFP_KERNEL)?;
            }
            types.push(
                bindings::vdcm_adi_type {
                    name: t.name.as_char_ptr(),
                    description: t.description.as_char_ptr(),
                    vendor: t.vendor,
                    device: t.device,
                    subsystem_vendor: t.subsystem_vendor,
                    subsystem: t.subsystem,
                    revision: t.revision,
                    class: t.class,
                    bars,
                    msix: bindings::vdcm_msix {
                        vectors: t.msix.vectors,
                        bar: t.msix.bar,
                        table_offset: t.msix.table_offset,
                        pba_offset: t.msix.pba_offset,
                    },
                    nr_dvsecs: 0,
                    dvsecs: core::ptr::null(),
                    pool: t.pool,
                    units: t.units,
                    nr_pins: t.pins,
                    state_size: t.state_size,
                    max_threshold: t.max_threshold,
                },
                GFP_KERNEL,
            )?;
        }
        let mut counters = KVec::with_capacity(info.counters.len(), GFP_KERNEL)?;
        for c in info.counters {
            counters.push(c.as_char_ptr(), GFP_KERNEL)?;
        }
        Ok(Description {
            pools,
            types,
            _ranges: ranges,
            counters,
        })
    }
}

/// A PF registered with the VDCM; `T` is its personality.
///
/// # Invariants
///
/// `raw` is registered with `vdcm_register_pf` until drop, with `priv`
/// pointing to `driver` and every pointer in it into `desc`, and neither is
/// written meanwhile.
#[pin_data(PinnedDrop)]
pub struct Registration<T: PfDriver> {
    #[pin]
    driver: T,
    desc: Description,
    #[pin]
    raw: Opaque<bindings::vdcm_pf>,
}

// SAFETY: after registration the structure is only read (by the VDCM); `T`
// is `Send + Sync`; the description's raw pointers point to static strings
// and to the registration's own vectors, which are never written.
unsafe impl<T: PfDriver> Send for Registration<T> {}
// SAFETY: See `Send`.
unsafe impl<T: PfDriver> Sync for Registration<T> {}

impl<T: PfDriver> Registration<T> {
    /// Registers the PF whose device is `dev`, described by `info`, with
    /// the personality `driver`.
    ///
    /// `dev` must outlive the registration: it is the parent of every ADI
    /// created on the PF.
    pub fn new<'a>(
        dev: &'a device::Device,
        info: &PfInfo<'_>,
        driver: impl PinInit<T, Error> + 'a,
    ) -> Result<impl PinInit<Self, Error> + 'a> {
        let desc = Description::new(info)?;
        let pasid_bits = info.pasid_bits;
        let qos_capacity = info.qos_capacity;
        Ok(try_pin_init!(&this in Self {
            driver <- driver,
            desc,
            // Initialised after `driver` and `desc`, which it points to.
            raw <- Opaque::try_ffi_init(move |slot: *mut bindings::vdcm_pf| {
                // SAFETY: `this` is the structure being initialised; its
                // `driver` and `desc` are in place and pinned with it.
                let (driver, desc) = unsafe {
                    (
                        core::ptr::addr_of_mut!((*this.as_ptr()).driver),
                        &*core::ptr::addr_of!((*this.as_ptr()).desc),
                    )
                };
                // SAFETY: `slot` is valid for writes.
                unsafe {
                    slot.write(bindings::vdcm_pf {
                        version: CONTRACT_VERSION,
                        dev: super::raw_device(dev),
                        pasid_bits,
                        nr_pools: desc.pools.len() as u32,
                        pools: desc.pools.as_ptr(),
                        nr_types: desc.types.len() as u32,
                        types: desc.types.as_ptr(),
                        nr_counters: desc.counters.len() as u32,
                        counter_names: desc.counters.as_ptr(),
                        qos_capacity,
                        ops: if qos_capacity != 0 {
                            const { &OpsTable::<T>::OPS }
                        } else {
                            const { &OpsTable::<T>::OPS_NO_QOS }
                        },
                        priv_: driver.cast(),
                        vdcm: core::ptr::null_mut(),
                    })
                };
                // SAFETY: `slot` is complete and stays pinned and unchanged
                // until `drop` unregisters it.
                to_result(unsafe { bindings::vdcm_register_pf(slot) })
            }),
        }))
    }

    /// The PF driver's personality.
    pub fn driver(&self) -> &T {
        &self.driver
    }
}

#[pinned_drop]
impl<T: PfDriver> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered, by the type invariant. This may sleep until
        // every ADI of the PF is released; afterwards no op is called.
        unsafe { bindings::vdcm_unregister_pf(self.raw.get()) };
    }
}

/// The C ops table of a [`PfDriver`] implementation.
struct OpsTable<T: PfDriver>(core::marker::PhantomData<T>);

/// Converts a unit result into an errno.
fn errno(r: Result) -> kernel::ffi::c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

impl<T: PfDriver> OpsTable<T> {
    const OPS: bindings::vdcm_pf_ops = bindings::vdcm_pf_ops {
        config_read: Some(Self::config_read),
        adi_create: Some(Self::adi_create),
        adi_destroy: Some(Self::adi_destroy),
        trap_read: Some(Self::trap_read),
        trap_write: Some(Self::trap_write),
        direct_page: Some(Self::direct_page),
        reset: Some(Self::reset),
        unpinned: Some(Self::unpinned),
        counters: Some(Self::counters),
        quiesce: Some(Self::quiesce),
        unquiesce: Some(Self::unquiesce),
        save: Some(Self::save),
        restore: Some(Self::restore),
        set_qos: Some(Self::set_qos),
    };

    /// The table of a PF without QoS: the contract wants no `set_qos`.
    const OPS_NO_QOS: bindings::vdcm_pf_ops = bindings::vdcm_pf_ops {
        set_qos: None,
        ..Self::OPS
    };

    /// # Safety
    ///
    /// `pf` must be registered by a `Registration<T>`.
    unsafe fn driver<'a>(pf: *mut bindings::vdcm_pf) -> &'a T {
        // SAFETY: `priv` points to the registration's pinned `driver`,
        // which outlives the registration (type invariant).
        unsafe { &*(*pf).priv_.cast::<T>() }
    }

    /// # Safety
    ///
    /// `adi` must come from this table's `adi_create` and not be destroyed.
    unsafe fn adi<'a>(adi: *mut c_void) -> Pin<&'a T::Adi> {
        // SAFETY: `adi` came from `into_foreign` in `adi_create` and the
        // VDCM gives it back to `adi_destroy` only after its last use.
        unsafe { <Pin<KBox<T::Adi>> as ForeignOwnable>::borrow(adi) }
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF and a valid `value` pointer.
    unsafe extern "C" fn config_read(
        pf: *mut bindings::vdcm_pf,
        offset: u32,
        len: u32,
        value: *mut u32,
    ) -> kernel::ffi::c_int {
        // SAFETY: per the function's contract.
        match unsafe { Self::driver(pf) }.config_read(offset, len) {
            Ok(v) => {
                // SAFETY: `value` is valid for writes.
                unsafe { *value = v };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF, a live tenant it holds a
    /// reference on for the call, and a valid `adi` pointer.
    unsafe extern "C" fn adi_create(
        pf: *mut bindings::vdcm_pf,
        ty: u32,
        pasid: u32,
        tenant: *mut bindings::vdcm_tenant,
        adi: *mut *mut c_void,
    ) -> kernel::ffi::c_int {
        let Some(tenant) = NonNull::new(tenant) else {
            return EINVAL.to_errno();
        };
        // SAFETY: the VDCM holds a reference during the call.
        let Some(tenant) = (unsafe { TenantRef::from_raw(tenant) }) else {
            return EINVAL.to_errno();
        };
        // SAFETY: per the function's contract.
        match unsafe { Self::driver(pf) }.adi_create(ty, pasid, tenant) {
            Ok(state) => {
                // SAFETY: `adi` is valid for writes.
                unsafe { *adi = state.into_foreign().cast() };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VDCM once per ADI, after its last other use.
    unsafe extern "C" fn adi_destroy(pf: *mut bindings::vdcm_pf, adi: *mut c_void) {
        // SAFETY: `adi` came from `into_foreign` in `adi_create` and is
        // given back once.
        let state = unsafe { <Pin<KBox<T::Adi>> as ForeignOwnable>::from_foreign(adi.cast()) };
        // SAFETY: per the function's contract.
        unsafe { Self::driver(pf) }.adi_destroy(state);
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF, a live ADI and a valid
    /// `value` pointer.
    unsafe extern "C" fn trap_read(
        pf: *mut bindings::vdcm_pf,
        adi: *mut c_void,
        bar: u32,
        offset: u64,
        size: u32,
        value: *mut u64,
    ) -> kernel::ffi::c_int {
        // SAFETY: per the function's contract.
        let (driver, adi) = unsafe { (Self::driver(pf), Self::adi(adi)) };
        match driver.trap_read(&adi, bar, offset, size) {
            Ok(v) => {
                // SAFETY: `value` is valid for writes.
                unsafe { *value = v };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF and a live ADI.
    unsafe extern "C" fn trap_write(
        pf: *mut bindings::vdcm_pf,
        adi: *mut c_void,
        bar: u32,
        offset: u64,
        size: u32,
        value: u64,
    ) -> kernel::ffi::c_int {
        // SAFETY: per the function's contract.
        let (driver, adi) = unsafe { (Self::driver(pf), Self::adi(adi)) };
        errno(driver.trap_write(&adi, bar, offset, size, value))
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF and a live ADI.
    unsafe extern "C" fn direct_page(
        pf: *mut bindings::vdcm_pf,
        adi: *mut c_void,
        bar: u32,
        offset: u64,
    ) -> *mut bindings::page {
        // SAFETY: per the function's contract.
        let (driver, adi) = unsafe { (Self::driver(pf), Self::adi(adi)) };
        match driver.direct_page(adi.get_ref(), bar, offset) {
            Some(page) => page.as_ptr(),
            None => core::ptr::null_mut(),
        }
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF and a live ADI.
    unsafe extern "C" fn reset(pf: *mut bindings::vdcm_pf, adi: *mut c_void) {
        // SAFETY: per the function's contract.
        let (driver, adi) = unsafe { (Self::driver(pf), Self::adi(adi)) };
        driver.reset(&adi);
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF and a live ADI.
    unsafe extern "C" fn unpinned(pf: *mut bindings::vdcm_pf, adi: *mut c_void, slot: u32) {
        // SAFETY: per the function's contract.
        let (driver, adi) = unsafe { (Self::driver(pf), Self::adi(adi)) };
        driver.unpinned(&adi, slot);
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF, a live ADI and `values`
    /// valid for `nr_counters` writes.
    unsafe extern "C" fn counters(pf: *mut bindings::vdcm_pf, adi: *mut c_void, values: *mut u64) {
        // SAFETY: per the function's contract; `nr_counters` is the
        // length of the registration's counter names.
        let (driver, adi, n) =
            unsafe { (Self::driver(pf), Self::adi(adi), (*pf).nr_counters as usize) };
        if values.is_null() || n == 0 {
            return;
        }
        // SAFETY: `values` is valid for `n` writes (the function's
        // contract) and not otherwise used during the call.
        let values = unsafe { core::slice::from_raw_parts_mut(values, n) };
        values.fill(0);
        driver.counters(&adi, values);
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF and a live ADI.
    unsafe extern "C" fn quiesce(
        pf: *mut bindings::vdcm_pf,
        adi: *mut c_void,
    ) -> kernel::ffi::c_int {
        // SAFETY: per the function's contract.
        let (driver, adi) = unsafe { (Self::driver(pf), Self::adi(adi)) };
        errno(driver.quiesce(&adi))
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF and a live ADI.
    unsafe extern "C" fn unquiesce(pf: *mut bindings::vdcm_pf, adi: *mut c_void) {
        // SAFETY: per the function's contract.
        let (driver, adi) = unsafe { (Self::driver(pf), Self::adi(adi)) };
        driver.unquiesce(&adi);
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF, a live ADI and `buf` valid
    /// for `len` bytes of writes.
    unsafe extern "C" fn save(
        pf: *mut bindings::vdcm_pf,
        adi: *mut c_void,
        buf: *mut c_void,
        len: u32,
    ) -> kernel::ffi::c_int {
        // SAFETY: per the function's contract.
        let (driver, adi) = unsafe { (Self::driver(pf), Self::adi(adi)) };
        if buf.is_null() {
            return EINVAL.to_errno();
        }
        // SAFETY: `buf` is valid for `len` bytes of writes (the function's
        // contract) and not otherwise used during the call.
        let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len as usize) };
        match driver.save(&adi, buf) {
            Ok(n) if n <= buf.len() => n as kernel::ffi::c_int,
            Ok(_) => EINVAL.to_errno(),
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF, a live ADI and `buf` valid
    /// for `len` bytes of reads.
    unsafe extern "C" fn restore(
        pf: *mut bindings::vdcm_pf,
        adi: *mut c_void,
        buf: *const c_void,
        len: u32,
    ) -> kernel::ffi::c_int {
        // SAFETY: per the function's contract.
        let (driver, adi) = unsafe { (Self::driver(pf), Self::adi(adi)) };
        if buf.is_null() {
            return EINVAL.to_errno();
        }
        // SAFETY: `buf` is valid for `len` bytes of reads (the function's
        // contract) and not written during the call.
        let buf = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), len as usize) };
        errno(driver.restore(&adi, buf))
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF, a live ADI and `qos`
    /// valid for reads.
    unsafe extern "C" fn set_qos(
        pf: *mut bindings::vdcm_pf,
        adi: *mut c_void,
        qos: *const bindings::vdcm_qos,
    ) -> kernel::ffi::c_int {
        // SAFETY: per the function's contract.
        let (driver, adi) = unsafe { (Self::driver(pf), Self::adi(adi)) };
        // SAFETY: `qos` is valid for reads during the call (the function's
        // contract); null is refused.
        let Some(raw) = (unsafe { qos.as_ref() }) else {
            return EINVAL.to_errno();
        };
        let qos = Qos {
            weight: raw.weight,
            priority: raw.priority,
            max_rate: raw.max_rate,
            guaranteed_rate: raw.guaranteed_rate,
            threshold: raw.threshold,
        };
        errno(driver.set_qos(&adi, &qos))
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The PF backend contract between the VDCM and SIOV-capable PF drivers.
//!
//! C header: `include/vdcm_pf.h`. Two sides use this module:
//!
//! - a **PF driver** registers its PF with [`Registration`], which calls
//!   the VDCM's exported `vdcm_register_pf()` and, on drop,
//!   `vdcm_unregister_pf()`;
//! - the **VDCM** (built with `--cfg vdcm_host`) implements [`Host`] and
//!   installs it with [`HostRegistration`]; the exported entry points hand
//!   each registering PF to it as a [`Pf`].
//!
//! Modules share no Rust types: everything crossing the module boundary is
//! the C structure of the header.

use core::ffi::c_void;
use core::ptr::NonNull;

use kernel::device;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::sync::ArcBorrow;
use kernel::types::Opaque;

use super::bindings;

/// The contract version this module was built against.
pub const CONTRACT_VERSION: u32 = bindings::VDCM_PF_CONTRACT_VERSION;

/// Queue pairs can be given whole to one ADI.
pub const MODE_DEDICATED: u32 = bindings::VDCM_PF_MODE_DEDICATED;
/// Queue pairs can be shared by many ADIs through portals.
pub const MODE_SHARED: u32 = bindings::VDCM_PF_MODE_SHARED;

/// Set in `raise_irq`'s queue-pair argument for a portal's interrupt.
pub const PORTAL_IRQ: u32 = bindings::VDCM_PF_PORTAL_IRQ;

/// Returns the contract version of the loaded VDCM module.
pub fn loaded_contract_version() -> u32 {
    // SAFETY: `vdcm_pf_contract_version` takes no arguments, touches no
    // shared state and may be called from any context; modpost resolved the
    // symbol against the VDCM module, which stays loaded while we are.
    unsafe { bindings::vdcm_pf_contract_version() }
}

/// What a PF offers to the VDCM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Queue pairs the VDCM may compose ADIs from.
    pub num_qps: u32,
    /// Width of the PASIDs the PF's queues carry (1..=20).
    pub pasid_bits: u32,
    /// Bytes of one doorbell/portal page.
    pub doorbell_size: u32,
    /// Interrupt messages the PF can route to ADIs.
    pub num_irqs: u32,
    /// [`MODE_DEDICATED`] and/or [`MODE_SHARED`].
    pub modes: u32,
    /// Portals on the PF's shared queue pairs ([`MODE_SHARED`]).
    pub num_portals: u32,
}

impl From<&bindings::vdcm_pf_caps> for Caps {
    fn from(c: &bindings::vdcm_pf_caps) -> Self {
        Caps {
            num_qps: c.num_qps,
            pasid_bits: c.pasid_bits,
            doorbell_size: c.doorbell_size,
            num_irqs: c.num_irqs,
            modes: c.modes,
            num_portals: c.num_portals,
        }
    }
}

impl From<Caps> for bindings::vdcm_pf_caps {
    fn from(c: Caps) -> Self {
        bindings::vdcm_pf_caps {
            num_qps: c.num_qps,
            pasid_bits: c.pasid_bits,
            doorbell_size: c.doorbell_size,
            num_irqs: c.num_irqs,
            modes: c.modes,
            num_portals: c.num_portals,
        }
    }
}

/// Counters of one queue pair since it was allocated.
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
}

/// The queue-pair operations a PF driver provides (`struct vdcm_pf_ops`).
///
/// Calls for one queue pair are serialised by the VDCM; calls for
/// different queue pairs may run concurrently. All may sleep.
pub trait QueueOps: Send + Sync + 'static {
    /// Takes one free queue pair for a dedicated ADI; `ENOSPC` if none.
    fn qp_alloc(&self) -> Result<u32>;
    /// Gives back a queue pair (unbound and stopped).
    fn qp_free(&self, qp: u32);
    /// Programs the queue pair's PASID and the tenant it works for.
    fn qp_bind(&self, qp: u32, pasid: u32, tenant: TenantRef) -> Result;
    /// Forgets the queue pair's tenant; the queue pair is stopped first.
    fn qp_unbind(&self, qp: u32);
    /// Starts processing the ring at `ring_iova` of `ring_size`
    /// descriptors (a power of two).
    fn qp_start(&self, qp: u32, ring_iova: u64, ring_size: u32) -> Result;
    /// Stops the queue pair and waits until none of its descriptors is in
    /// flight.
    fn qp_stop(&self, qp: u32);
    /// The queue pair's doorbell page, mapped into the tenant's address
    /// space; it must stay allocated until the PF is unregistered.
    fn qp_doorbell(&self, qp: u32) -> Option<&kernel::page::Page>;
    /// The queue pair's counters.
    fn qp_stats(&self, qp: u32) -> QpStats;
    /// Reads `len` (1, 2 or 4) bytes at `offset` of the PF's PCI config
    /// space, where the VDCM looks for the SIOV capability.
    fn config_read(&self, offset: u32, len: u32) -> Result<u32>;

    /// Shared mode: opens a portal for `tenant` with `pasid`, disabled.
    /// `ENOSPC` when none is free. PFs without shared mode keep the
    /// default.
    fn portal_alloc(&self, _pasid: u32, _tenant: TenantRef) -> Result<u32> {
        Err(ENODEV)
    }
    /// Shared mode: accepts work through the portal, or stops (waiting for
    /// its work in flight and dropping what was submitted).
    fn portal_enable(&self, _portal: u32, _enable: bool) -> Result {
        Err(ENODEV)
    }
    /// Shared mode: closes the portal.
    fn portal_free(&self, _portal: u32) {}
    /// Shared mode: the portal's page, mapped into the tenant.
    fn portal_page(&self, _portal: u32) -> Option<&kernel::page::Page> {
        None
    }
    /// Shared mode: the portal's counters.
    fn portal_stats(&self, _portal: u32) -> QpStats {
        QpStats::default()
    }
}

impl QpStats {
    fn to_raw(self) -> bindings::vdcm_qp_stats {
        bindings::vdcm_qp_stats {
            descriptors: self.descriptors,
            bytes: self.bytes,
            faults: self.faults,
            invalid: self.invalid,
            interrupts: self.interrupts,
        }
    }

    #[cfg_attr(not(vdcm_host), allow(dead_code))]
    fn from_raw(s: &bindings::vdcm_qp_stats) -> Self {
        QpStats {
            descriptors: s.descriptors,
            bytes: s.bytes,
            faults: s.faults,
            invalid: s.invalid,
            interrupts: s.interrupts,
        }
    }
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
        }
    }
}

/// A reference to the tenant a queue pair works for (`struct
/// vdcm_tenant`), held by the PF.
///
/// # Invariants
///
/// `raw` points to a live tenant object on which this value holds one
/// reference.
pub struct TenantRef {
    raw: NonNull<bindings::vdcm_tenant>,
}

// SAFETY: the contract allows tenant objects to be used from any thread.
unsafe impl Send for TenantRef {}
// SAFETY: See `Send`.
unsafe impl Sync for TenantRef {}

impl TenantRef {
    /// Takes a new reference on `raw`.
    ///
    /// # Safety
    ///
    /// `raw` must point to a live tenant object (the VDCM holds a reference
    /// for the duration of the call that passed it).
    unsafe fn get(raw: NonNull<bindings::vdcm_tenant>) -> Option<Self> {
        // SAFETY: live, per the caller.
        let get = unsafe { raw.as_ref().get }?;
        // SAFETY: `get` is the object's own reference-taking callback.
        unsafe { get(raw.as_ptr()) };
        // INVARIANT: we just took the reference.
        Some(TenantRef { raw })
    }

    /// A reference to `tenant`, for a PF that implements its own tenants
    /// (a PF's in-kernel client of its own engine).
    pub fn new<T: TenantOps>(tenant: &Arc<Tenant<T>>) -> Self {
        // The C header is the first field of the `#[repr(C)]` `Tenant`: its
        // address is the `Arc`'s data pointer, which `put` gives back.
        let raw = NonNull::from(&tenant.raw);
        let _ = Arc::into_raw(tenant.clone());
        // INVARIANT: the reference leaked just above is ours; `put` (the
        // tenant's own callback, in `Drop`) gives it back.
        TenantRef { raw }
    }

    /// Copies between `buf` and the tenant's I/O address space at `iova`
    /// (`write`: to the tenant). `EFAULT`: some of the range is not mapped
    /// and nothing was written; `EPERM`: the tenant's device does not allow
    /// DMA; `ENODEV`: the binding was revoked. May sleep.
    pub fn dma_rw(&self, iova: u64, buf: &mut [u8], write: bool) -> Result {
        // SAFETY: live, by the type invariant.
        let Some(rw) = (unsafe { self.raw.as_ref().dma_rw }) else {
            return Err(ENODEV);
        };
        // SAFETY: `buf` is valid for `buf.len()` bytes during the call; the
        // callback copies and keeps no reference.
        kernel::error::to_result(unsafe {
            rw(
                self.raw.as_ptr(),
                iova,
                buf.as_mut_ptr().cast(),
                buf.len(),
                write,
            )
        })
    }

    /// Signals the completion interrupt of queue pair `qp`, which must be
    /// bound to this tenant. May sleep.
    pub fn raise_irq(&self, qp: u32) {
        // SAFETY: live, by the type invariant.
        if let Some(raise) = unsafe { self.raw.as_ref().raise_irq } {
            // SAFETY: the object's own callback.
            unsafe { raise(self.raw.as_ptr(), qp) };
        }
    }
}

impl Clone for TenantRef {
    fn clone(&self) -> Self {
        // SAFETY: we hold a reference, so the object is live. A live object
        // always has `get` (checked when the first reference was taken).
        unsafe { TenantRef::get(self.raw) }.unwrap_or(TenantRef { raw: self.raw })
    }
}

impl Drop for TenantRef {
    fn drop(&mut self) {
        // SAFETY: we hold a reference; `put` drops it.
        if let Some(put) = unsafe { self.raw.as_ref().put } {
            // SAFETY: the object's own callback, our reference.
            unsafe { put(self.raw.as_ptr()) };
        }
    }
}

/// A PF registered with the VDCM, on the PF driver's side; `T` provides
/// its queue-pair operations.
///
/// # Invariants
///
/// `raw` is registered with `vdcm_register_pf` until drop, with `priv`
/// pointing to `ops`, and is not written by this side meanwhile.
#[pin_data(PinnedDrop)]
pub struct Registration<T: QueueOps> {
    #[pin]
    ops: T,
    #[pin]
    raw: Opaque<bindings::vdcm_pf>,
}

// SAFETY: after registration the structure is only read (by the VDCM), and
// `T` is `Send + Sync`.
unsafe impl<T: QueueOps> Send for Registration<T> {}
// SAFETY: See `Send`.
unsafe impl<T: QueueOps> Sync for Registration<T> {}

impl<T: QueueOps> Registration<T> {
    /// Registers the PF whose device is `dev`, which offers `caps` through
    /// the queue operations `ops`.
    ///
    /// `dev` must outlive the registration: it is the parent of every ADI
    /// created on the PF.
    pub fn new<'a>(
        dev: &'a device::Device,
        caps: Caps,
        ops: impl PinInit<T, Error> + 'a,
    ) -> impl PinInit<Self, Error> + 'a {
        try_pin_init!(&this in Self {
            ops <- ops,
            // Initialised after `ops`, which `priv` points to.
            raw <- Opaque::try_ffi_init(move |slot: *mut bindings::vdcm_pf| {
                // SAFETY: `this` is the structure being initialised; `ops`
                // is already in place and pinned with it.
                let ops_ptr = unsafe { core::ptr::addr_of_mut!((*this.as_ptr()).ops) };
                // SAFETY: `slot` is valid for writes.
                unsafe {
                    slot.write(bindings::vdcm_pf {
                        version: CONTRACT_VERSION,
                        dev: super::raw_device(dev),
                        caps: caps.into(),
                        ops: const { &OpsTable::<T>::OPS },
                        priv_: ops_ptr.cast(),
                        vdcm: core::ptr::null_mut(),
                    })
                };
                // SAFETY: `slot` is complete and stays pinned and unchanged
                // until `drop` unregisters it.
                to_result(unsafe { bindings::vdcm_register_pf(slot) })
            }),
        })
    }

    /// The PF driver's operations.
    pub fn ops(&self) -> &T {
        &self.ops
    }
}

#[pinned_drop]
impl<T: QueueOps> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered, by the type invariant. This may sleep until
        // every ADI of the PF is released; afterwards no op is called.
        unsafe { bindings::vdcm_unregister_pf(self.raw.get()) };
    }
}

/// The C ops table of a [`QueueOps`] implementation.
struct OpsTable<T: QueueOps>(core::marker::PhantomData<T>);

impl<T: QueueOps> OpsTable<T> {
    const OPS: bindings::vdcm_pf_ops = bindings::vdcm_pf_ops {
        qp_alloc: Some(Self::qp_alloc),
        qp_free: Some(Self::qp_free),
        qp_bind: Some(Self::qp_bind),
        qp_unbind: Some(Self::qp_unbind),
        qp_start: Some(Self::qp_start),
        qp_stop: Some(Self::qp_stop),
        qp_doorbell: Some(Self::qp_doorbell),
        qp_stats: Some(Self::qp_stats),
        portal_alloc: Some(Self::portal_alloc),
        portal_enable: Some(Self::portal_enable),
        portal_free: Some(Self::portal_free),
        portal_page: Some(Self::portal_page),
        portal_stats: Some(Self::portal_stats),
        config_read: Some(Self::config_read),
    };

    /// # Safety
    ///
    /// `pf` must be registered by a `Registration<T>`.
    unsafe fn ops<'a>(pf: *mut bindings::vdcm_pf) -> &'a T {
        // SAFETY: `priv` points to the registration's pinned `ops`, which
        // outlives the registration (type invariant of `Registration`).
        unsafe { &*(*pf).priv_.cast::<T>() }
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF and a valid `qp` pointer.
    unsafe extern "C" fn qp_alloc(pf: *mut bindings::vdcm_pf, qp: *mut u32) -> kernel::ffi::c_int {
        // SAFETY: per the function's contract.
        match unsafe { Self::ops(pf) }.qp_alloc() {
            Ok(n) => {
                // SAFETY: `qp` is valid for writes.
                unsafe { *qp = n };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF.
    unsafe extern "C" fn qp_free(pf: *mut bindings::vdcm_pf, qp: u32) {
        // SAFETY: per the function's contract.
        unsafe { Self::ops(pf) }.qp_free(qp)
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF and a live tenant object.
    unsafe extern "C" fn qp_bind(
        pf: *mut bindings::vdcm_pf,
        qp: u32,
        pasid: u32,
        tenant: *mut bindings::vdcm_tenant,
    ) -> kernel::ffi::c_int {
        let Some(tenant) = NonNull::new(tenant) else {
            return EINVAL.to_errno();
        };
        // SAFETY: the VDCM holds a reference during the call.
        let Some(tenant) = (unsafe { TenantRef::get(tenant) }) else {
            return EINVAL.to_errno();
        };
        // SAFETY: per the function's contract.
        match unsafe { Self::ops(pf) }.qp_bind(qp, pasid, tenant) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF.
    unsafe extern "C" fn qp_unbind(pf: *mut bindings::vdcm_pf, qp: u32) {
        // SAFETY: per the function's contract.
        unsafe { Self::ops(pf) }.qp_unbind(qp)
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF.
    unsafe extern "C" fn qp_start(
        pf: *mut bindings::vdcm_pf,
        qp: u32,
        ring_iova: u64,
        ring_size: u32,
    ) -> kernel::ffi::c_int {
        // SAFETY: per the function's contract.
        match unsafe { Self::ops(pf) }.qp_start(qp, ring_iova, ring_size) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF.
    unsafe extern "C" fn qp_stop(pf: *mut bindings::vdcm_pf, qp: u32) {
        // SAFETY: per the function's contract.
        unsafe { Self::ops(pf) }.qp_stop(qp)
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF.
    unsafe extern "C" fn qp_doorbell(pf: *mut bindings::vdcm_pf, qp: u32) -> *mut bindings::page {
        // SAFETY: per the function's contract.
        match unsafe { Self::ops(pf) }.qp_doorbell(qp) {
            Some(page) => page.as_ptr(),
            None => core::ptr::null_mut(),
        }
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF and a valid `stats` pointer.
    unsafe extern "C" fn qp_stats(
        pf: *mut bindings::vdcm_pf,
        qp: u32,
        stats: *mut bindings::vdcm_qp_stats,
    ) {
        // SAFETY: per the function's contract.
        let s = unsafe { Self::ops(pf) }.qp_stats(qp);
        // SAFETY: `stats` is valid for writes.
        unsafe { stats.write(s.to_raw()) };
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF, a live tenant it holds a
    /// reference on for the call, and a valid `portal` pointer.
    unsafe extern "C" fn portal_alloc(
        pf: *mut bindings::vdcm_pf,
        pasid: u32,
        tenant: *mut bindings::vdcm_tenant,
        portal: *mut u32,
    ) -> kernel::ffi::c_int {
        let Some(raw) = NonNull::new(tenant) else {
            return EINVAL.to_errno();
        };
        // SAFETY: the VDCM passes a live tenant.
        let Some(tenant) = (unsafe { TenantRef::get(raw) }) else {
            return EINVAL.to_errno();
        };
        // SAFETY: per the function's contract.
        match unsafe { Self::ops(pf) }.portal_alloc(pasid, tenant) {
            Ok(n) => {
                // SAFETY: `portal` is valid for writes.
                unsafe { *portal = n };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF.
    unsafe extern "C" fn portal_enable(
        pf: *mut bindings::vdcm_pf,
        portal: u32,
        enable: bool,
    ) -> kernel::ffi::c_int {
        // SAFETY: per the function's contract.
        match unsafe { Self::ops(pf) }.portal_enable(portal, enable) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF.
    unsafe extern "C" fn portal_free(pf: *mut bindings::vdcm_pf, portal: u32) {
        // SAFETY: per the function's contract.
        unsafe { Self::ops(pf) }.portal_free(portal);
    }

    /// # Safety
    ///
    /// Called by the VDCM with a registered PF.
    unsafe extern "C" fn portal_page(
        pf: *mut bindings::vdcm_pf,
        portal: u32,
    ) -> *mut bindings::page {
        // SAFETY: per the function's contract.
        match unsafe { Self::ops(pf) }.portal_page(portal) {
            Some(page) => page.as_ptr(),
            None => core::ptr::null_mut(),
        }
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
        match unsafe { Self::ops(pf) }.config_read(offset, len) {
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
    /// Called by the VDCM with a registered PF and a valid `stats` pointer.
    unsafe extern "C" fn portal_stats(
        pf: *mut bindings::vdcm_pf,
        portal: u32,
        stats: *mut bindings::vdcm_qp_stats,
    ) {
        // SAFETY: per the function's contract.
        let s = unsafe { Self::ops(pf) }.portal_stats(portal);
        // SAFETY: `stats` is valid for writes.
        unsafe { stats.write(s.to_raw()) };
    }
}

/// What a tenant object does for the PF (`struct vdcm_tenant`).
pub trait TenantOps: Send + Sync + 'static {
    /// Copies between `buf` and the tenant's I/O address space.
    fn dma_rw(&self, iova: u64, buf: &mut [u8], write: bool) -> Result;
    /// Signals the completion interrupt of the PF's queue pair `qp`.
    /// Process context; may sleep.
    fn raise_irq(&self, qp: u32);
}

/// A tenant object the VDCM gives to PFs: the C header they call through,
/// followed by the VDCM's implementation. Always lives in an [`Arc`],
/// whose count the PF's `get`/`put` move.
#[repr(C)]
#[pin_data]
pub struct Tenant<T: TenantOps> {
    raw: bindings::vdcm_tenant,
    #[pin]
    ops: T,
}

// SAFETY: the C header only holds function pointers; `T` is `Send + Sync`.
unsafe impl<T: TenantOps> Send for Tenant<T> {}
// SAFETY: See `Send`.
unsafe impl<T: TenantOps> Sync for Tenant<T> {}

impl<T: TenantOps> Tenant<T> {
    /// A new tenant object implemented by `ops`.
    pub fn new(ops: impl PinInit<T, Error>) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Tenant {
                raw: bindings::vdcm_tenant {
                    dma_rw: Some(Self::dma_rw),
                    raise_irq: Some(Self::raise_irq),
                    get: Some(Self::get),
                    put: Some(Self::put),
                },
                ops <- ops,
            }),
            GFP_KERNEL,
        )
    }

    /// The VDCM's implementation.
    pub fn ops(&self) -> &T {
        &self.ops
    }

    /// # Safety
    ///
    /// `t` must be the header of a live `Tenant<T>` in an `Arc`.
    unsafe fn from_raw<'a>(t: *mut bindings::vdcm_tenant) -> &'a Self {
        // SAFETY: `raw` is the first field of the `#[repr(C)]` struct.
        unsafe { &*t.cast::<Self>() }
    }

    /// # Safety
    ///
    /// Called by a PF with a tenant it holds a reference on and a buffer
    /// of `len` bytes.
    unsafe extern "C" fn dma_rw(
        t: *mut bindings::vdcm_tenant,
        iova: u64,
        buf: *mut c_void,
        len: usize,
        write: bool,
    ) -> kernel::ffi::c_int {
        if buf.is_null() || len == 0 {
            return EINVAL.to_errno();
        }
        // SAFETY: the PF calls with a tenant it holds a reference on and
        // a buffer of `len` bytes it owns for the duration of the call.
        let (this, buf) = unsafe {
            (
                Self::from_raw(t),
                core::slice::from_raw_parts_mut(buf.cast::<u8>(), len),
            )
        };
        match this.ops.dma_rw(iova, buf, write) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by a PF with a tenant it holds a reference on.
    unsafe extern "C" fn raise_irq(t: *mut bindings::vdcm_tenant, qp: u32) {
        // SAFETY: the PF holds a reference.
        unsafe { Self::from_raw(t) }.ops.raise_irq(qp);
    }

    /// # Safety
    ///
    /// Called with a tenant the caller holds a reference on.
    unsafe extern "C" fn get(t: *mut bindings::vdcm_tenant) {
        // SAFETY: `t` is the data pointer of a live `Arc<Tenant<T>>` (the
        // header is at offset 0) on which the caller holds a reference.
        let borrowed = unsafe { ArcBorrow::<Self>::from_raw(t.cast_const().cast()) };
        // Leak one new reference: `put` takes it back.
        let _ = Arc::<Self>::from(borrowed).into_raw();
    }

    /// # Safety
    ///
    /// Called to give back a reference taken with `get`.
    unsafe extern "C" fn put(t: *mut bindings::vdcm_tenant) {
        // SAFETY: the caller gives back a reference taken by `get`.
        drop(unsafe { Arc::<Self>::from_raw(t.cast_const().cast()) });
    }
}

#[cfg(vdcm_host)]
pub use host::*;

/// The VDCM's side of the contract: the exported entry points.
#[cfg(vdcm_host)]
mod host {
    use core::ffi::c_void;
    use core::ptr::NonNull;

    use kernel::device;
    use kernel::error::to_result;
    use kernel::prelude::*;
    use kernel::sync::Arc;
    use kernel::types::ForeignOwnable;

    use super::bindings;
    use super::Caps;
    use super::QpStats;
    use super::Tenant;
    use super::TenantOps;
    use super::CONTRACT_VERSION;
    use super::MODE_SHARED;

    /// A registering PF, as the VDCM sees it.
    ///
    /// # Invariants
    ///
    /// `raw` points to a registered (or registering) `struct vdcm_pf`,
    /// which the PF driver keeps valid and unchanged until it unregisters.
    pub struct Pf {
        raw: NonNull<bindings::vdcm_pf>,
    }

    // SAFETY: the structure is read-only while registered; see the type
    // invariant.
    unsafe impl Send for Pf {}
    // SAFETY: See `Send`.
    unsafe impl Sync for Pf {}

    impl Pf {
        /// The PF's device, the parent of its ADIs.
        pub fn device(&self) -> &device::Device {
            // SAFETY: the PF driver keeps `dev` valid while registered (type
            // invariant; documented in the header).
            unsafe { device::Device::from_raw(self.raw.as_ref().dev) }
        }

        /// What the PF offers.
        pub fn caps(&self) -> Caps {
            // SAFETY: valid and unchanged while registered.
            Caps::from(unsafe { &self.raw.as_ref().caps })
        }

        /// The PF's ops table; every member is present (checked at
        /// registration).
        fn ops(&self) -> &bindings::vdcm_pf_ops {
            // SAFETY: valid and unchanged while registered; `ops` was checked
            // to be non-null in `vdcm_register_pf`.
            unsafe { &*self.raw.as_ref().ops }
        }

        /// Takes one free queue pair.
        pub fn qp_alloc(&self) -> Result<u32> {
            let mut qp = 0;
            let f = self.ops().qp_alloc.ok_or(ENODEV)?;
            // SAFETY: the PF's own op, called with its registered structure.
            to_result(unsafe { f(self.raw.as_ptr(), &mut qp) })?;
            Ok(qp)
        }

        /// Gives back a queue pair.
        pub fn qp_free(&self, qp: u32) {
            if let Some(f) = self.ops().qp_free {
                // SAFETY: the PF's own op, called with its registered structure.
                unsafe { f(self.raw.as_ptr(), qp) };
            }
        }

        /// Programs the queue pair's PASID and the tenant it works for.
        pub fn qp_bind<T: TenantOps>(
            &self,
            qp: u32,
            pasid: u32,
            tenant: &Arc<Tenant<T>>,
        ) -> Result {
            let f = self.ops().qp_bind.ok_or(ENODEV)?;
            let raw = Arc::as_ptr(tenant)
                .cast_mut()
                .cast::<bindings::vdcm_tenant>();
            // SAFETY: the PF's own op; `raw` is the tenant's C header (first
            // field of the `#[repr(C)]` `Tenant`), kept alive by `tenant`
            // during the call and by the references the PF takes after.
            to_result(unsafe { f(self.raw.as_ptr(), qp, pasid, raw) })
        }

        /// Forgets the queue pair's tenant.
        pub fn qp_unbind(&self, qp: u32) {
            if let Some(f) = self.ops().qp_unbind {
                // SAFETY: the PF's own op, called with its registered structure.
                unsafe { f(self.raw.as_ptr(), qp) };
            }
        }

        /// Starts the queue pair on the ring at `ring_iova`.
        pub fn qp_start(&self, qp: u32, ring_iova: u64, ring_size: u32) -> Result {
            let f = self.ops().qp_start.ok_or(ENODEV)?;
            // SAFETY: the PF's own op, called with its registered structure.
            to_result(unsafe { f(self.raw.as_ptr(), qp, ring_iova, ring_size) })
        }

        /// Stops the queue pair, waiting for its descriptors in flight.
        pub fn qp_stop(&self, qp: u32) {
            if let Some(f) = self.ops().qp_stop {
                // SAFETY: the PF's own op, called with its registered structure.
                unsafe { f(self.raw.as_ptr(), qp) };
            }
        }

        /// The queue pair's doorbell page, for mapping to the tenant.
        pub fn qp_doorbell(&self, qp: u32) -> Option<crate::vdcm_kernel::vfio::MappablePage> {
            let f = self.ops().qp_doorbell?;
            // SAFETY: the PF's own op, called with its registered structure.
            let page = NonNull::new(unsafe { f(self.raw.as_ptr(), qp) })?;
            // SAFETY: the contract makes the doorbell page an order-0 page
            // the PF keeps allocated until it unregisters, which cannot
            // happen while the `Pf` (owned by the PF's state) is in use.
            Some(unsafe { crate::vdcm_kernel::vfio::MappablePage::from_raw(page) })
        }

        /// The queue pair's counters.
        pub fn qp_stats(&self, qp: u32) -> QpStats {
            let mut s = bindings::vdcm_qp_stats::default();
            if let Some(f) = self.ops().qp_stats {
                // SAFETY: the PF's own op; `s` is valid for writes.
                unsafe { f(self.raw.as_ptr(), qp, &mut s) };
            }
            QpStats::from_raw(&s)
        }

        /// Reads `len` bytes at `offset` of the PF's config space.
        pub fn config_read(&self, offset: u32, len: u32) -> Result<u32> {
            let f = self.ops().config_read.ok_or(ENODEV)?;
            let mut value = 0;
            // SAFETY: the PF's own op, called with its registered structure;
            // `value` is valid for writes.
            to_result(unsafe { f(self.raw.as_ptr(), offset, len, &mut value) })?;
            Ok(value)
        }

        /// Whether the PF's config space has the SIOV DVSEC (vendor 0x8086,
        /// DVSEC ID 5) among its extended capabilities.
        pub fn has_siov_capability(&self) -> bool {
            let mut at = 0x100;
            // Extended capabilities are at least 4 bytes apart: at most
            // 960 of them fit; a longer chain is a loop.
            for _ in 0..960 {
                let Ok(hdr) = self.config_read(at, 4) else {
                    return false;
                };
                if hdr == 0 || hdr == u32::MAX {
                    return false;
                }
                if hdr & 0xffff == 0x23 {
                    let vendor = self.config_read(at + 4, 2).unwrap_or(0);
                    let id = self.config_read(at + 8, 2).unwrap_or(0);
                    if vendor == 0x8086 && id == 5 {
                        return true;
                    }
                }
                let next = hdr >> 20;
                if next < 0x100 {
                    return false;
                }
                at = next;
            }
            false
        }

        /// Shared mode: opens a portal for `tenant` with `pasid`.
        pub fn portal_alloc<T: TenantOps>(
            &self,
            pasid: u32,
            tenant: &Arc<Tenant<T>>,
        ) -> Result<u32> {
            let f = self.ops().portal_alloc.ok_or(ENODEV)?;
            let raw = Arc::as_ptr(tenant)
                .cast_mut()
                .cast::<bindings::vdcm_tenant>();
            let mut portal = 0;
            // SAFETY: the PF's own op; `raw` is the tenant's C header, kept
            // alive by `tenant` during the call and by the PF's references
            // after.
            to_result(unsafe { f(self.raw.as_ptr(), pasid, raw, &mut portal) })?;
            Ok(portal)
        }

        /// Shared mode: starts or stops accepting work through the portal.
        pub fn portal_enable(&self, portal: u32, enable: bool) -> Result {
            let f = self.ops().portal_enable.ok_or(ENODEV)?;
            // SAFETY: the PF's own op, called with its registered structure.
            to_result(unsafe { f(self.raw.as_ptr(), portal, enable) })
        }

        /// Shared mode: closes the portal.
        pub fn portal_free(&self, portal: u32) {
            if let Some(f) = self.ops().portal_free {
                // SAFETY: the PF's own op, called with its registered structure.
                unsafe { f(self.raw.as_ptr(), portal) };
            }
        }

        /// Shared mode: the portal's page, for mapping to the tenant.
        pub fn portal_page(&self, portal: u32) -> Option<crate::vdcm_kernel::vfio::MappablePage> {
            let f = self.ops().portal_page?;
            // SAFETY: the PF's own op, called with its registered structure.
            let page = NonNull::new(unsafe { f(self.raw.as_ptr(), portal) })?;
            // SAFETY: the contract makes the portal page an order-0 page
            // the PF keeps allocated until `portal_free`, which the VDCM
            // calls only after the tenant's mappings are gone (the device
            // is closed, and mappings hold it open).
            Some(unsafe { crate::vdcm_kernel::vfio::MappablePage::from_raw(page) })
        }

        /// Shared mode: the portal's counters.
        pub fn portal_stats(&self, portal: u32) -> QpStats {
            let mut s = bindings::vdcm_qp_stats::default();
            if let Some(f) = self.ops().portal_stats {
                // SAFETY: the PF's own op; `s` is valid for writes.
                unsafe { f(self.raw.as_ptr(), portal, &mut s) };
            }
            QpStats::from_raw(&s)
        }
    }

    /// The VDCM: what happens when PFs come and go.
    pub trait Host: Send + Sync + 'static {
        /// State the host keeps for one PF; dropping it withdraws the PF
        /// (removing its ADIs first).
        type PfState: Send;

        /// A PF registers; `pf` stays valid for as long as the returned
        /// state lives.
        fn pf_added(&self, pf: Pf) -> Result<Self::PfState>;
    }

    /// The installed host, type-erased.
    struct Slot {
        host: *const c_void,
        add: fn(*const c_void, Pf) -> Result<*mut c_void>,
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

    fn add_for<H: Host>(host: *const c_void, pf: Pf) -> Result<*mut c_void> {
        // SAFETY: `host` came from `Arc::<H>::into_foreign` in
        // `HostRegistration::new` and stays alive while installed.
        let host = unsafe { <Arc<H> as ForeignOwnable>::borrow(host.cast_mut()) };
        let state = host.pf_added(pf)?;
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
        let version = unsafe { raw.as_ref().version };
        if version != CONTRACT_VERSION {
            pr_err!(
                "PF built for contract v{}, this VDCM implements v{}\n",
                version,
                CONTRACT_VERSION
            );
            // The kernel crate has no EPROTO constant; the uapi value is
            // a small positive number.
            return -(bindings::EPROTO as kernel::ffi::c_int);
        }
        // SAFETY: valid per the caller's contract.
        let ops = unsafe { raw.as_ref().ops };
        let complete = !ops.is_null() && {
            // SAFETY: a non-null `ops` points to the PF's static table.
            let o = unsafe { &*ops };
            o.qp_alloc.is_some()
                && o.qp_free.is_some()
                && o.qp_bind.is_some()
                && o.qp_unbind.is_some()
                && o.qp_start.is_some()
                && o.qp_stop.is_some()
                && o.qp_doorbell.is_some()
                && o.qp_stats.is_some()
                && o.config_read.is_some()
        };
        // SAFETY: valid per the caller's contract.
        let shared = unsafe { raw.as_ref().caps.modes } & MODE_SHARED != 0;
        let complete = complete && {
            // SAFETY: checked non-null above.
            let o = unsafe { &*ops };
            !shared
                || (o.portal_alloc.is_some()
                    && o.portal_enable.is_some()
                    && o.portal_free.is_some()
                    && o.portal_page.is_some()
                    && o.portal_stats.is_some())
        };
        if !complete {
            pr_err!("PF registered without a complete vdcm_pf_ops table\n");
            return EINVAL.to_errno();
        }
        let mut guard = HOST.lock();
        let Some(slot) = guard.as_mut() else {
            return ENODEV.to_errno();
        };
        // INVARIANT: the caller keeps `pf` valid until it unregisters, and
        // the state that owns this `Pf` is dropped in `vdcm_unregister_pf`.
        match (slot.add)(slot.host, Pf { raw }) {
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
}

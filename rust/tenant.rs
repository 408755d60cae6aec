// SPDX-License-Identifier: GPL-2.0

//! Tenant objects (`struct vdcm_tenant` of `include/vdcm_pf.h`): what a PF
//! reaches an ADI's tenant through — DMA, interrupts, pins.
//!
//! Two kinds of module implement one: the VDCM, for every ADI, and a PF
//! driver with an in-kernel client of its own engine. Both build a
//! [`Tenant`] from a [`TenantOps`] implementation; PFs hold them as
//! [`TenantRef`]s.

use core::ffi::c_void;
use core::ptr::NonNull;

use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::sync::ArcBorrow;

use super::bindings;

/// What a tenant object does for the PF.
pub trait TenantOps: Send + Sync + 'static {
    /// Copies between `buf` and the tenant's I/O address space (`write`:
    /// to the tenant). May sleep.
    fn dma_rw(&self, iova: u64, buf: &mut [u8], write: bool) -> Result;
    /// Signals MSI-X vector `vector` of the ADI. Process context.
    fn raise_irq(&self, vector: u32);
    /// Pins `len` bytes at `iova` in pin slot `slot`.
    fn pin(&self, slot: u32, iova: u64, len: u64, write: bool) -> Result;
    /// Drops the pin in `slot`, if any.
    fn unpin(&self, slot: u32);
}

/// A tenant object: the C header PFs call through, followed by the
/// implementation. Always lives in an [`Arc`], whose count the PF's
/// `get`/`put` move.
#[repr(C)]
#[pin_data]
pub struct Tenant<T: TenantOps> {
    raw: bindings::vdcm_tenant,
    #[pin]
    ops: T,
}

// SAFETY: the C header only holds a pointer to a static table of function
// pointers; `T` is `Send + Sync`.
unsafe impl<T: TenantOps> Send for Tenant<T> {}
// SAFETY: See `Send`.
unsafe impl<T: TenantOps> Sync for Tenant<T> {}

/// The operations table of a `Tenant<T>` (one per `T`, static).
struct TenantTable<T: TenantOps>(core::marker::PhantomData<T>);

impl<T: TenantOps> TenantTable<T> {
    const OPS: bindings::vdcm_tenant_ops = bindings::vdcm_tenant_ops {
        dma_rw: Some(Tenant::<T>::dma_rw),
        raise_irq: Some(Tenant::<T>::raise_irq),
        pin: Some(Tenant::<T>::pin),
        unpin: Some(Tenant::<T>::unpin),
        get: Some(Tenant::<T>::get),
        put: Some(Tenant::<T>::put),
    };
}

impl<T: TenantOps> Tenant<T> {
    /// A new tenant object implemented by `ops`.
    pub fn new(ops: impl PinInit<T, Error>) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Tenant {
                raw: bindings::vdcm_tenant {
                    ops: const { &TenantTable::<T>::OPS },
                },
                ops <- ops,
            }),
            GFP_KERNEL,
        )
    }

    /// The implementation.
    pub fn ops(&self) -> &T {
        &self.ops
    }

    /// The C header, as PFs receive it. It stays valid while `this` does.
    pub fn as_raw(this: &Arc<Self>) -> *mut bindings::vdcm_tenant {
        Arc::as_ptr(this).cast_mut().cast()
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
    unsafe extern "C" fn raise_irq(t: *mut bindings::vdcm_tenant, vector: u32) {
        // SAFETY: the PF holds a reference.
        unsafe { Self::from_raw(t) }.ops.raise_irq(vector);
    }

    /// # Safety
    ///
    /// Called by a PF with a tenant it holds a reference on.
    unsafe extern "C" fn pin(
        t: *mut bindings::vdcm_tenant,
        slot: u32,
        iova: u64,
        len: u64,
        write: bool,
    ) -> kernel::ffi::c_int {
        // SAFETY: the PF holds a reference.
        match unsafe { Self::from_raw(t) }.ops.pin(slot, iova, len, write) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by a PF with a tenant it holds a reference on.
    unsafe extern "C" fn unpin(t: *mut bindings::vdcm_tenant, slot: u32) {
        // SAFETY: the PF holds a reference.
        unsafe { Self::from_raw(t) }.ops.unpin(slot);
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

/// The operations of a tenant object, checked once to be all present.
#[derive(Clone, Copy)]
struct CheckedOps {
    dma_rw: unsafe extern "C" fn(*mut bindings::vdcm_tenant, u64, *mut c_void, usize, bool) -> i32,
    raise_irq: unsafe extern "C" fn(*mut bindings::vdcm_tenant, u32),
    pin: unsafe extern "C" fn(*mut bindings::vdcm_tenant, u32, u64, u64, bool) -> i32,
    unpin: unsafe extern "C" fn(*mut bindings::vdcm_tenant, u32),
    get: unsafe extern "C" fn(*mut bindings::vdcm_tenant),
    put: unsafe extern "C" fn(*mut bindings::vdcm_tenant),
}

/// A reference to a tenant object, held by a PF.
///
/// # Invariants
///
/// `raw` points to a live tenant object on which this value holds one
/// reference, and `ops` are that object's operations.
pub struct TenantRef {
    raw: NonNull<bindings::vdcm_tenant>,
    ops: CheckedOps,
}

// SAFETY: the contract allows tenant objects to be used from any thread.
unsafe impl Send for TenantRef {}
// SAFETY: See `Send`.
unsafe impl Sync for TenantRef {}

impl TenantRef {
    /// Takes a reference on the tenant object `raw`; `None` if its
    /// operations table is incomplete.
    ///
    /// # Safety
    ///
    /// `raw` must point to a live tenant object (the caller holds a
    /// reference for the duration of the call).
    pub unsafe fn from_raw(raw: NonNull<bindings::vdcm_tenant>) -> Option<Self> {
        // SAFETY: live, per the caller.
        let table = unsafe { raw.as_ref().ops };
        if table.is_null() {
            return None;
        }
        // SAFETY: a non-null table of a live object is valid while it is.
        let t = unsafe { &*table };
        let ops = CheckedOps {
            dma_rw: t.dma_rw?,
            raise_irq: t.raise_irq?,
            pin: t.pin?,
            unpin: t.unpin?,
            get: t.get?,
            put: t.put?,
        };
        // SAFETY: the object's own reference-taking operation.
        unsafe { (ops.get)(raw.as_ptr()) };
        // INVARIANT: we just took the reference; `ops` are the object's.
        Some(TenantRef { raw, ops })
    }

    /// A reference to `tenant`, for a PF that implements its own tenants
    /// (an in-kernel client of its own engine).
    pub fn new<T: TenantOps>(tenant: &Arc<Tenant<T>>) -> Self {
        let raw = NonNull::from(&tenant.raw);
        let ops = CheckedOps {
            dma_rw: Tenant::<T>::dma_rw,
            raise_irq: Tenant::<T>::raise_irq,
            pin: Tenant::<T>::pin,
            unpin: Tenant::<T>::unpin,
            get: Tenant::<T>::get,
            put: Tenant::<T>::put,
        };
        // SAFETY: `tenant` is a live `Arc<Tenant<T>>`; `get` is its own
        // reference-taking operation.
        unsafe { (ops.get)(raw.as_ptr()) };
        // INVARIANT: we just took the reference; `ops` are the object's.
        TenantRef { raw, ops }
    }

    /// Copies between `buf` and the tenant's I/O address space at `iova`
    /// (`write`: to the tenant). `EFAULT`: some of the range is not mapped
    /// and nothing was written; `EPERM`: the ADI does not allow DMA;
    /// `ENODEV`: the tenant has the device closed or it was revoked. May
    /// sleep.
    pub fn dma_rw(&self, iova: u64, buf: &mut [u8], write: bool) -> Result {
        // SAFETY: live by the type invariant; `buf` is valid for
        // `buf.len()` bytes during the call, and the callee keeps no
        // reference to it.
        kernel::error::to_result(unsafe {
            (self.ops.dma_rw)(
                self.raw.as_ptr(),
                iova,
                buf.as_mut_ptr().cast(),
                buf.len(),
                write,
            )
        })
    }

    /// Signals MSI-X vector `vector` of the tenant's ADI. May sleep.
    pub fn raise_irq(&self, vector: u32) {
        // SAFETY: live by the type invariant.
        unsafe { (self.ops.raise_irq)(self.raw.as_ptr(), vector) };
    }

    /// Pins `len` bytes of the tenant's memory at `iova` in `slot`.
    pub fn pin(&self, slot: u32, iova: u64, len: u64, write: bool) -> Result {
        // SAFETY: live by the type invariant.
        kernel::error::to_result(unsafe {
            (self.ops.pin)(self.raw.as_ptr(), slot, iova, len, write)
        })
    }

    /// Drops the pin in `slot`, if any.
    pub fn unpin(&self, slot: u32) {
        // SAFETY: live by the type invariant.
        unsafe { (self.ops.unpin)(self.raw.as_ptr(), slot) };
    }
}

impl Clone for TenantRef {
    fn clone(&self) -> Self {
        // SAFETY: we hold a reference, so the object is live.
        unsafe { (self.ops.get)(self.raw.as_ptr()) };
        // INVARIANT: the reference just taken is the new value's.
        TenantRef {
            raw: self.raw,
            ops: self.ops,
        }
    }
}

impl Drop for TenantRef {
    fn drop(&mut self) {
        // SAFETY: we hold a reference; `put` gives it back.
        unsafe { (self.ops.put)(self.raw.as_ptr()) };
    }
}

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

use kernel::device;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::types::Opaque;

use super::bindings;

/// The contract version this module was built against.
pub const CONTRACT_VERSION: u32 = bindings::VDCM_PF_CONTRACT_VERSION;

/// Queue pairs can be given whole to one ADI.
pub const MODE_DEDICATED: u32 = bindings::VDCM_PF_MODE_DEDICATED;
/// Queue pairs can be shared by many ADIs through portals.
pub const MODE_SHARED: u32 = bindings::VDCM_PF_MODE_SHARED;

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
}

impl From<&bindings::vdcm_pf_caps> for Caps {
    fn from(c: &bindings::vdcm_pf_caps) -> Self {
        Caps {
            num_qps: c.num_qps,
            pasid_bits: c.pasid_bits,
            doorbell_size: c.doorbell_size,
            num_irqs: c.num_irqs,
            modes: c.modes,
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
        }
    }
}

/// A PF registered with the VDCM, on the PF driver's side.
///
/// # Invariants
///
/// `raw` is registered with `vdcm_register_pf` until drop, and is not
/// written by this side meanwhile.
#[pin_data(PinnedDrop)]
pub struct Registration {
    #[pin]
    raw: Opaque<bindings::vdcm_pf>,
}

// SAFETY: after registration the structure is only read (by the VDCM), and
// its `dev` is a refcounted device usable from any thread.
unsafe impl Send for Registration {}
// SAFETY: See `Send`.
unsafe impl Sync for Registration {}

impl Registration {
    /// Registers the PF whose device is `dev` and which offers `caps`.
    ///
    /// `dev` must outlive the registration: it is the parent of every ADI
    /// created on the PF.
    pub fn new(dev: &device::Device, caps: Caps) -> impl PinInit<Self, Error> + '_ {
        try_pin_init!(Self {
            raw <- Opaque::try_ffi_init(move |slot: *mut bindings::vdcm_pf| {
                // SAFETY: `slot` is valid for writes.
                unsafe {
                    slot.write(bindings::vdcm_pf {
                        version: CONTRACT_VERSION,
                        dev: super::raw_device(dev),
                        caps: caps.into(),
                        vdcm: core::ptr::null_mut(),
                    })
                };
                // SAFETY: `slot` is complete and stays pinned and unchanged
                // until `drop` unregisters it.
                to_result(unsafe { bindings::vdcm_register_pf(slot) })
            }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for Registration {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered, by the type invariant. This may sleep until
        // every ADI of the PF is released.
        unsafe { bindings::vdcm_unregister_pf(self.raw.get()) };
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
    use kernel::prelude::*;
    use kernel::sync::Arc;
    use kernel::types::ForeignOwnable;

    use super::bindings;
    use super::Caps;
    use super::CONTRACT_VERSION;

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

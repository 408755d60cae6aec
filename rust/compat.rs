// SPDX-License-Identifier: GPL-2.0

//! One API over the kernel crate's differences between Linux 7.2 and 7.3.
//!
//! The project builds from one tree against both series. Where the kernel
//! crate changed, the rest of the code calls the items here, which have
//! one signature on both; `Kbuild` passes `--cfg vdcm_kernel_7_3` for 7.3
//! and later, and this file is the only one that tests it.
//!
//! It is compiled into every module: the VDCM (`vdcm_core.rs`), Rust PF
//! drivers (`pf_driver.rs`) and the guest driver (`samples/vdcm_guest`,
//! which includes it directly), so it uses nothing but the kernel crate,
//! and nothing a kernel without VFIO lacks.
//!
//! What differs, and where it is handled:
//!
//! - pin-init's in-place initialisation: [`init_in_place`];
//! - module parameters (`value()` returns `&T` on 7.2 and `T` on 7.3):
//!   [`param`];
//! - the PCI driver API the guest driver uses: [`pci`] (the device table
//!   macro, the ID info `probe` receives, interrupt vectors and their
//!   threaded handlers) and [`dma`] (coherent memory).
//!
//! Two differences are met outside this file with code both series take:
//! `#[vtable]` on 7.3 names the module's type in every impl (`type
//! OwnerModule = crate::LocalModule`), so that type must be as visible as
//! the types implementing vtable traits (the VDCM's `VdcmModule` is
//! `pub`); and 7.3 refuses unchecked 64-bit accesses to a PCI BAR, whose
//! alignment it knows as 4 bytes only, so the guest driver uses the
//! checked `try_read64`/`try_write64`.

use kernel::module_param::ModuleParamAccess;
use kernel::prelude::*;

/// Initialises `slot` with `init`, in place.
///
/// # Safety
///
/// - `slot` is valid for writes and not initialised;
/// - if `Err` is returned, the caller does not use `slot` other than to
///   free it;
/// - `slot` does not move until it is dropped (it is pinned).
#[inline]
pub unsafe fn init_in_place<T, E>(slot: *mut T, init: impl PinInit<T, E>) -> Result<(), E> {
    // SAFETY: the caller's guarantees are the initialiser's requirements.
    #[cfg(not(vdcm_kernel_7_3))]
    let result = unsafe { init.__pinned_init(slot) };
    // SAFETY: as above.
    #[cfg(vdcm_kernel_7_3)]
    let result = unsafe { pin_init::raw_try_init(slot, init) };
    result
}

/// The value of a module parameter: what it was set to at load time, or
/// its default.
#[inline]
pub fn param<T: Copy>(p: &ModuleParamAccess<T>) -> T {
    #[cfg(not(vdcm_kernel_7_3))]
    let value = *p.value();
    #[cfg(vdcm_kernel_7_3)]
    let value = p.value();
    value
}

/// Coherent DMA memory seen as 64-bit words.
pub mod dma {
    use kernel::dma::Coherent;
    use kernel::dma::DmaAddress;
    use kernel::prelude::*;

    /// The device's address of the start of `mem`.
    #[inline]
    pub fn address(mem: &Coherent<[u64]>) -> DmaAddress {
        #[cfg(not(vdcm_kernel_7_3))]
        let addr = mem.dma_handle();
        #[cfg(vdcm_kernel_7_3)]
        let addr = mem.dma_address();
        addr
    }

    /// Reads word `index` of `mem`; an error if `index` is past its end.
    #[inline]
    pub fn read(mem: &Coherent<[u64]>, index: usize) -> Result<u64> {
        #[cfg(not(vdcm_kernel_7_3))]
        let value = kernel::dma_read!(mem, [try: index]);
        #[cfg(vdcm_kernel_7_3)]
        let value = kernel::io::io_read!(mem, [try: index]);
        Ok(value)
    }

    /// Writes `value` to word `index` of `mem`; an error if `index` is past
    /// its end.
    #[inline]
    pub fn write(mem: &Coherent<[u64]>, index: usize, value: u64) -> Result {
        #[cfg(not(vdcm_kernel_7_3))]
        kernel::dma_write!(mem, [try: index], value);
        #[cfg(vdcm_kernel_7_3)]
        kernel::io::io_write!(mem, [try: index], value);
        Ok(())
    }
}

/// What a PCI driver needs of the kernel crate's PCI and IRQ API.
pub mod pci {
    use core::marker::PhantomData;

    use kernel::device::Bound;
    use kernel::irq;
    use kernel::pci;
    use kernel::prelude::*;

    pub use kernel::irq::Flags;
    pub use kernel::irq::IrqReturn;

    /// The ID info `pci::Driver::probe` receives for the matched entry.
    #[cfg(not(vdcm_kernel_7_3))]
    pub type IdInfo<'a, T> = &'a T;
    /// The ID info `pci::Driver::probe` receives for the matched entry
    /// (`None` when the device was bound without a match, e.g. by
    /// `driver_override`).
    #[cfg(vdcm_kernel_7_3)]
    pub type IdInfo<'a, T> = Option<&'a T>;

    /// The PCI device ID table of a driver:
    /// `vdcm_pci_device_table!(TABLE, MODULE_TABLE, IdInfoType, [(id, info), ...])`.
    /// `MODULE_TABLE` names the alias table on kernels that want one.
    #[cfg(not(vdcm_kernel_7_3))]
    #[macro_export]
    macro_rules! vdcm_pci_device_table {
        ($table:ident, $module_table:ident, $info:ty, $ids:tt) => {
            ::kernel::pci_device_table!($table, $module_table, $info, $ids);
        };
    }

    /// The PCI device ID table of a driver:
    /// `vdcm_pci_device_table!(TABLE, MODULE_TABLE, IdInfoType, [(id, info), ...])`.
    /// `MODULE_TABLE` names the alias table on kernels that want one.
    #[cfg(vdcm_kernel_7_3)]
    #[macro_export]
    macro_rules! vdcm_pci_device_table {
        ($table:ident, $module_table:ident, $info:ty, $ids:tt) => {
            ::kernel::pci_device_table!($table, $info, $ids);
        };
    }

    /// A threaded interrupt handler.
    pub trait ThreadedHandler: Sync + Send + 'static {
        /// Handles the interrupt in its thread (may sleep).
        fn handle_threaded(&self) -> IrqReturn;
    }

    /// The handler as the kernel crate's IRQ registration sees it.
    #[pin_data]
    struct Adapter<T> {
        #[pin]
        handler: T,
    }

    impl<T> Adapter<T> {
        fn new(handler: impl PinInit<T, Error>) -> impl PinInit<Self, Error> {
            try_pin_init!(Self {
                handler <- handler,
            }? Error)
        }
    }

    #[cfg(not(vdcm_kernel_7_3))]
    impl<T: ThreadedHandler> irq::ThreadedHandler for Adapter<T> {
        fn handle_threaded(&self, _dev: &kernel::device::Device<Bound>) -> IrqReturn {
            self.handler.handle_threaded()
        }
    }

    #[cfg(vdcm_kernel_7_3)]
    impl<T: ThreadedHandler> irq::ThreadedHandler for Adapter<T> {
        fn handle_threaded(&self) -> IrqReturn {
            self.handler.handle_threaded()
        }
    }

    /// One interrupt vector of a bound PCI device with a threaded handler.
    ///
    /// Dropping it frees the IRQ (waiting for a running handler) and then
    /// the vector.
    #[cfg(not(vdcm_kernel_7_3))]
    #[pin_data]
    pub struct ThreadedIrq<'a, T: ThreadedHandler> {
        // The vector itself is released by devres at unbind.
        #[pin]
        reg: irq::ThreadedRegistration<Adapter<T>>,
        _dev: PhantomData<&'a pci::Device<Bound>>,
    }

    /// One interrupt vector of a bound PCI device with a threaded handler.
    ///
    /// Dropping it frees the IRQ (waiting for a running handler) and then
    /// the vector.
    ///
    /// # Invariants
    ///
    /// `reg` is registered for vector 0 of `vectors`.
    #[cfg(vdcm_kernel_7_3)]
    #[pin_data]
    pub struct ThreadedIrq<'a, T: ThreadedHandler> {
        // Declared before `vectors`, so dropped before it: the IRQ is freed
        // while its vector is still allocated.
        #[pin]
        reg: irq::ThreadedRegistration<'a, Adapter<T>>,
        vectors: pci::IrqVectorRegistration<'a>,
        _dev: PhantomData<&'a pci::Device<Bound>>,
    }

    impl<'a, T: ThreadedHandler> ThreadedIrq<'a, T> {
        /// Allocates exactly one interrupt vector of `types` for `pdev` and
        /// registers `handler` for it, under `name`.
        pub fn new(
            pdev: &'a pci::Device<Bound>,
            types: pci::IrqTypes,
            flags: Flags,
            name: &'static CStr,
            handler: impl PinInit<T, Error> + 'a,
        ) -> impl PinInit<Self, Error> + 'a {
            #[cfg(not(vdcm_kernel_7_3))]
            let init = pin_init::pin_init_scope(move || {
                let vectors = pdev.alloc_irq_vectors(1, 1, types)?;
                Ok(try_pin_init!(Self {
                    reg <- pdev.request_threaded_irq(
                        *vectors.start(),
                        flags,
                        name,
                        Adapter::new(handler),
                    ),
                    _dev: PhantomData,
                }? Error))
            });
            #[cfg(vdcm_kernel_7_3)]
            let init = pin_init::pin_init_scope(move || {
                let vectors = pdev.alloc_irq_vectors(1, 1, types)?;
                // INVARIANT: `reg` is registered for vector 0 of `vectors`.
                Ok(try_pin_init!(&this in Self {
                    vectors,
                    reg <- {
                        // SAFETY: `vectors` is initialised (it comes first)
                        // and pinned with `Self`. The reference only yields
                        // the IRQ number of vector 0 (`IrqRequest` keeps no
                        // reference to it); that number stays valid until
                        // `vectors` is dropped, after `reg`.
                        let vectors: &'a pci::IrqVectorRegistration<'a> =
                            unsafe { &*core::ptr::addr_of!((*this.as_ptr()).vectors) };
                        let request = vectors.index(0)?;
                        // SAFETY: the registration must not be leaked while
                        // registered, because its handler may borrow data of
                        // lifetime `'a` that would end before it. The handler
                        // here is `'static`, and the registration lives in
                        // `Self`'s pinned memory, which is never reused
                        // without `Self` being dropped (the pin guarantee):
                        // leaking `Self` leaks that memory with the vector,
                        // so the IRQ core's cookie and what the handler uses
                        // stay valid; the IRQ stays requested, as any leaked
                        // resource stays held.
                        unsafe {
                            irq::ThreadedRegistration::new(
                                request.into(),
                                flags,
                                name,
                                Adapter::new(handler),
                            )
                        }
                    },
                    _dev: PhantomData,
                }? Error))
            });
            init
        }

        /// The handler, as registered.
        pub fn handler(&self) -> &T {
            &self.reg.handler().handler
        }
    }
}

// SPDX-License-Identifier: GPL-2.0

//! An emulated VFIO device: the object the VFIO core allocates around the
//! driver's state, and its registration.

use core::ops::Deref;
use core::ptr::addr_of_mut;
use core::ptr::NonNull;

use kernel::device;
use kernel::error::from_err_ptr;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::aref::AlwaysRefCounted;
use kernel::types::Opaque;

use super::super::compat;
use super::bindings;
use super::vtable::DeviceVTable;
use super::Driver;

/// An emulated VFIO device carrying the driver's state `T`.
///
/// # Invariants
///
/// - `vdev` was allocated and initialised by `_vfio_alloc_device` with the
///   size of `Self`, and `vdev.ops` points to `DeviceVTable::<T>::OPS`
///   (whose `release` drops `data`).
/// - `data` is initialised and pinned for the whole life of the object.
/// - The object is only reached through references counted by the embedded
///   `struct device` (`vdev.device`).
#[repr(C)]
#[pin_data]
pub struct Device<T: Driver> {
    vdev: Opaque<bindings::vfio_device>,
    #[pin]
    pub(super) data: T,
}

// SAFETY: The VFIO core may call into the device from any thread, and `T`
// is `Send + Sync`; the C object is only mutated by the core under its own
// locks.
unsafe impl<T: Driver> Send for Device<T> {}
// SAFETY: See `Send`.
unsafe impl<T: Driver> Sync for Device<T> {}

impl<T: Driver> Device<T> {
    /// The raw `struct vfio_device`.
    pub fn as_raw(&self) -> *mut bindings::vfio_device {
        self.vdev.get()
    }

    /// The parent device given to [`Device::new`].
    pub fn parent(&self) -> &device::Device {
        // SAFETY: `vdev.dev` was set to a valid device by
        // `_vfio_alloc_device`; the VFIO device holds a reference to it
        // (its embedded device's parent) for as long as `self` lives.
        unsafe { device::Device::from_raw((*self.as_raw()).dev) }
    }

    /// Recovers the device from its `struct vfio_device`.
    ///
    /// # Safety
    ///
    /// `vdev` must be the `vdev` field of a live `Device<T>`, and the
    /// returned reference must not outlive it.
    pub(super) unsafe fn from_raw<'a>(vdev: *mut bindings::vfio_device) -> &'a Self {
        // SAFETY: `vdev` is the first field of a `#[repr(C)]` `Device<T>`,
        // so the pointers are equal; liveness is the caller's promise.
        unsafe { &*vdev.cast::<Self>() }
    }
}

impl<T: Driver> Device<T> {
    /// Removes every user-space mapping of the device's regions (all the
    /// `mmap`s of its file descriptors); later accesses through them fault
    /// (`SIGBUS`), since a device that inserts its pages at `mmap` has no
    /// fault handler.
    pub fn zap_mappings(&self) {
        // SAFETY: the core gives every initialised device an inode, kept
        // until the device is released, and makes it the `f_mapping` of
        // the device's files, so this covers every mapping of them.
        unsafe {
            let inode = (*self.as_raw()).inode;
            if !inode.is_null() {
                bindings::unmap_mapping_range((*inode).i_mapping, 0, 0, 1);
            }
        }
    }
}

impl<T: Driver> Deref for Device<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.data
    }
}

// SAFETY: The reference count is the one of the embedded `struct device`
// (`vdev.device`), which keeps the allocation alive; `put_device` on the last
// reference calls the VFIO core's release, which frees the object.
unsafe impl<T: Driver> AlwaysRefCounted for Device<T> {
    fn inc_ref(&self) {
        // SAFETY: a shared reference proves the count is non-zero.
        unsafe { bindings::get_device(addr_of_mut!((*self.as_raw()).device)) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        let raw = obj.as_ptr().cast::<bindings::vfio_device>();
        // SAFETY: the caller owns one reference to a live device.
        unsafe { bindings::put_device(addr_of_mut!((*raw).device)) };
    }
}

/// A newly allocated [`Device`] that has not been registered yet.
///
/// Registration consumes it, so a device is registered at most once.
///
/// # Invariants
///
/// The device has never been registered with the VFIO core.
pub struct UnregisteredDevice<T: Driver>(ARef<Device<T>>);

impl<T: Driver> UnregisteredDevice<T> {
    /// Allocates a device whose parent is `parent` and initialises its data
    /// with `data`. The device is not visible to user space until it is
    /// registered with [`Registration::new`].
    pub fn new(parent: &device::Device, data: impl PinInit<T, Error>) -> Result<Self> {
        // `_vfio_alloc_device` uses `kvzalloc`, which aligns to at least 8
        // bytes.
        const { assert!(core::mem::align_of::<Device<T>>() <= 8) };
        // While `data` is not initialised, the device must not drop it:
        // allocate with an ops table without `release` and install the
        // real one after `data` is initialised.
        let alloc_ops = const { &DeviceVTable::<T>::ALLOC_OPS };
        // SAFETY: `parent` is a valid device by its type invariant; the size
        // covers `Device<T>`, whose first field is the `struct vfio_device`;
        // `alloc_ops` is a static table.
        let raw = unsafe {
            bindings::_vfio_alloc_device(
                core::mem::size_of::<Device<T>>(),
                super::super::raw_device(parent),
                alloc_ops,
            )
        };
        let raw = from_err_ptr(raw)?;
        let this = raw.cast::<Device<T>>();
        // SAFETY: `raw` points to a live allocation of `size_of::<Device<T>>()`
        // bytes; `data` is a field inside it.
        let data_slot = unsafe { addr_of_mut!((*this).data) };
        // SAFETY: `data_slot` is valid for writes, not initialised yet, and
        // will not move: the allocation is only freed by the VFIO core.
        if let Err(e) = unsafe { compat::init_in_place(data_slot, data) } {
            // SAFETY: the allocation holds one reference, ours; with
            // `alloc_ops` the core's release does not touch `data`.
            unsafe { bindings::put_device(addr_of_mut!((*raw).device)) };
            return Err(e);
        }
        // SAFETY: the device is not registered yet, so nothing else reads
        // `ops`; the table is static.
        unsafe { (*raw).ops = const { &DeviceVTable::<T>::OPS } };
        if T::HAS_MIGRATION_SET_STATE {
            // SAFETY: `data` is initialised (above) and not moved.
            let flags = T::migration_flags(unsafe { &*data_slot });
            if flags != 0 {
                // SAFETY: not registered yet, as for `ops`; the core reads
                // both from registration on.
                unsafe {
                    (*raw).migration_flags = flags;
                    (*raw).mig_ops = const { &super::migration::MigVTable::<T>::OPS };
                    if T::HAS_LOG_START {
                        (*raw).log_ops = const { &super::dirty::LogVTable::<T>::OPS };
                    }
                }
            }
        }
        // SAFETY: `this` is valid, carries one reference that we hand over
        // to the `ARef`, and satisfies the type invariants from here on.
        let dev = unsafe { ARef::from_raw(NonNull::new_unchecked(this)) };
        // INVARIANT: just allocated, never registered.
        Ok(UnregisteredDevice(dev))
    }
}

impl<T: Driver> Deref for UnregisteredDevice<T> {
    type Target = Device<T>;

    fn deref(&self) -> &Device<T> {
        &self.0
    }
}

/// A [`Device`] registered with the VFIO core, visible to user space.
///
/// Dropping it unregisters the device, which waits until every user has
/// closed it (the core calls [`Driver::request`] meanwhile).
///
/// # Invariants
///
/// `dev` is registered with `vfio_register_emulated_iommu_dev`.
pub struct Registration<T: Driver> {
    dev: ARef<Device<T>>,
}

impl<T: Driver> Registration<T> {
    /// Registers `dev` as an emulated-IOMMU VFIO device.
    pub fn new(dev: UnregisteredDevice<T>) -> Result<Self> {
        let UnregisteredDevice(dev) = dev;
        // SAFETY: `dev` is fully initialised and, by the invariant of
        // `UnregisteredDevice`, not registered.
        to_result(unsafe { bindings::vfio_register_emulated_iommu_dev(dev.as_raw()) })?;
        // INVARIANT: just registered.
        Ok(Self { dev })
    }

    /// The registered device.
    pub fn device(&self) -> &ARef<Device<T>> {
        &self.dev
    }
}

impl<T: Driver> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: registered, by the type invariant; this may sleep until
        // the users are gone, which `Drop` of a registration allows.
        unsafe { bindings::vfio_unregister_group_dev(self.dev.as_raw()) };
    }
}

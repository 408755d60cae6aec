// SPDX-License-Identifier: GPL-2.0

//! Mediated devices (mdev): parents, types and the mdev driver.
//!
//! A driver registers one [`DriverRegistration`] and, for each device that
//! can host mediated devices, a [`Parent`] offering a list of types. User
//! space creates a device of a type by writing a UUID to
//! `/sys/class/mdev_bus/<parent>/mdev_supported_types/<type>/create`; the
//! mdev core then calls [`Driver::probe`], whose result is kept as the
//! device's driver data until [`Driver::remove`].
//!
//! Lifetimes: a [`Parent`] holds a reference to the driver registration, so
//! the mdev driver stays registered while any parent uses it. Dropping a
//! [`Parent`] removes every device created under it (the mdev core calls
//! `remove` for each) before it returns.
//!
//! C header: [`include/linux/mdev.h`](srctree/include/linux/mdev.h).

use core::fmt;
use core::marker::PhantomData;

use kernel::device;
use kernel::error::to_result;
use kernel::error::VTABLE_DEFAULT_ERROR;
use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;
use kernel::types::ForeignOwnable;
use kernel::types::Opaque;
use kernel::ThisModule;

use super::bindings;
use super::sysfs::CounterGroup;
use super::sysfs::PageWriter;

/// The operations of an mdev driver.
#[vtable]
pub trait Driver: Sized + 'static {
    /// State of one parent, shared by its types and devices.
    type ParentData: Send + Sync;
    /// State of one mediated device, from probe to remove.
    type DeviceData: ForeignOwnable + Send + Sync;

    /// The driver's name.
    const NAME: &'static CStr;
    /// The device API user space sees in `device_api`, e.g. `c"vfio-pci"`.
    const DEVICE_API: &'static CStr;

    /// Creates the device of type `type_index` of `parent`.
    fn probe(
        mdev: &Device,
        parent: &Self::ParentData,
        type_index: usize,
    ) -> Result<Self::DeviceData>;

    /// Destroys the device of `parent`; `data` is what `probe` returned.
    fn remove(_mdev: &Device, _parent: &Self::ParentData, data: Self::DeviceData) {
        drop(data);
    }

    /// How many more devices of type `type_index` can be created now.
    fn available_instances(parent: &Self::ParentData, type_index: usize) -> u32;

    /// Value of counter `index` (of the names the device's [`Parent`] was
    /// registered with) of the device whose data is `data`.
    fn stat(_data: <Self::DeviceData as ForeignOwnable>::Borrowed<'_>, _index: usize) -> u64 {
        0
    }

    /// Writes the human-readable description of type `type_index`.
    fn description(
        _parent: &Self::ParentData,
        _type_index: usize,
        _out: &mut dyn fmt::Write,
    ) -> fmt::Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// A mediated device, as seen by the driver during probe and remove.
///
/// # Invariants
///
/// Wraps a live `struct mdev_device`.
#[repr(transparent)]
pub struct Device(Opaque<bindings::mdev_device>);

impl Device {
    /// # Safety
    ///
    /// `ptr` must point to a live `struct mdev_device` that outlives `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::mdev_device) -> &'a Self {
        // SAFETY: `Device` is a transparent wrapper; liveness is the
        // caller's promise.
        unsafe { &*ptr.cast::<Self>() }
    }

    fn as_raw(&self) -> *mut bindings::mdev_device {
        self.0.get()
    }

    /// The generic device embedded in the mediated device.
    pub fn as_device(&self) -> &device::Device {
        // SAFETY: `dev` is the embedded, live `struct device`.
        unsafe { device::Device::from_raw(core::ptr::addr_of_mut!((*self.as_raw()).dev)) }
    }

    /// The UUID user space created the device with.
    pub fn uuid(&self) -> [u8; 16] {
        // SAFETY: `uuid` is set before probe and never changes.
        unsafe { (*self.as_raw()).uuid.b }
    }
}

impl AsRef<device::Device> for Device {
    fn as_ref(&self) -> &device::Device {
        self.as_device()
    }
}

/// An mdev type offered by a [`Parent`] (the names are copied).
#[derive(Clone, Copy)]
pub struct TypeInfo<'a> {
    /// Directory name under `mdev_supported_types/`, prefixed by the core
    /// with the driver name: must be unique per parent.
    pub sysfs_name: &'a CStr,
    /// The type's `name` attribute.
    pub pretty_name: &'a CStr,
}

/// The registered mdev driver.
///
/// # Invariants
///
/// `drv` is registered with `mdev_register_driver` until drop.
#[pin_data(PinnedDrop)]
pub struct DriverRegistration<T: Driver> {
    #[pin]
    drv: Opaque<bindings::mdev_driver>,
    _t: PhantomData<T>,
}

// SAFETY: the mdev core serialises use of the driver structure; it and the
// attribute group are only read after registration.
unsafe impl<T: Driver> Send for DriverRegistration<T> {}
// SAFETY: See `Send`.
unsafe impl<T: Driver> Sync for DriverRegistration<T> {}

impl<T: Driver> DriverRegistration<T> {
    /// Registers the mdev driver for `module`.
    pub fn new(module: &'static ThisModule) -> Result<impl PinInit<Self, Error>> {
        Ok(try_pin_init!(Self {
            drv <- Opaque::try_ffi_init(move |slot: *mut bindings::mdev_driver| {
                // SAFETY: an all-zero `mdev_driver` is valid (null pointers,
                // no callbacks); the needed fields are set below.
                let mut raw: bindings::mdev_driver = unsafe { core::mem::zeroed() };
                raw.device_api = T::DEVICE_API.as_char_ptr();
                raw.probe = Some(Self::probe);
                raw.remove = Some(Self::remove);
                raw.get_available = Some(Self::get_available);
                if T::HAS_DESCRIPTION {
                    raw.show_description = Some(Self::show_description);
                }
                raw.driver.name = T::NAME.as_char_ptr();
                raw.driver.owner = module.as_ptr();
                raw.driver.mod_name = T::NAME.as_char_ptr();
                // SAFETY: `slot` is valid for writes.
                unsafe { slot.write(raw) };
                // SAFETY: `slot` holds a complete driver and stays pinned
                // until `drop` unregisters it.
                to_result(unsafe { bindings::mdev_register_driver(slot) })
            }),
            _t: PhantomData,
        }))
    }

    /// # Safety
    ///
    /// Called by sysfs for a `stats/` attribute of a device bound to this
    /// driver, with a `PAGE_SIZE` buffer. `probe` adds the parent's group
    /// after it stored the driver data, and `remove` removes it (waiting
    /// for readers) before it takes the data back, so the data is live
    /// during the call.
    unsafe extern "C" fn show_stat(
        dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *mut ffi::c_char,
    ) -> isize {
        // SAFETY: `attr` is an attribute of a parent's `CounterGroup`.
        let index = unsafe { CounterGroup::index(attr) };
        // SAFETY: the device is live and bound (see above).
        let ptr = unsafe { bindings::dev_get_drvdata(dev) };
        // SAFETY: `probe` stored `into_foreign()` of a `T::DeviceData`,
        // which `remove` takes back only after this group is gone.
        let data = unsafe { T::DeviceData::borrow(ptr.cast()) };
        // SAFETY: sysfs passes a `PAGE_SIZE` buffer, ours during the call.
        unsafe { CounterGroup::show(buf, T::stat(data, index)) }
    }

    /// Recovers the parent from an mdev type of one of our parents.
    ///
    /// # Safety
    ///
    /// `mtype` must be a live type registered by a [`Parent<T>`].
    unsafe fn parent_of<'a>(mtype: *mut bindings::mdev_type) -> Option<(&'a Parent<T>, usize)> {
        // SAFETY: the core set `parent` to the `mdev_parent` embedded in the
        // `Parent<T>` that registered `mtype` (caller's promise); that
        // parent outlives its types.
        let parent = unsafe {
            let raw = (*mtype).parent;
            &*kernel::container_of!(Opaque::cast_from(raw), Parent<T>, raw)
        };
        let index = parent.type_ptrs.iter().position(|&p| p == mtype)?;
        Some((parent, index))
    }

    /// # Safety
    ///
    /// Called by the mdev core with a device being created under one of
    /// our parents.
    unsafe extern "C" fn probe(mdev: *mut bindings::mdev_device) -> ffi::c_int {
        // SAFETY: the core passes a live device whose type belongs to a
        // parent registered with this driver (mdev devices are only bound
        // to their parent's driver, never by matching).
        let (dev, found) = unsafe { (Device::from_raw(mdev), Self::parent_of((*mdev).type_)) };
        let Some((parent, index)) = found else {
            return ENODEV.to_errno();
        };
        match T::probe(dev, &parent.data, index) {
            Ok(data) => {
                let ptr = data.into_foreign();
                let raw = super::raw_device(dev.as_device());
                // SAFETY: the device is live; its driver data is ours until
                // remove.
                unsafe { bindings::dev_set_drvdata(raw, ptr.cast()) };
                // SAFETY: the device is live; the group lives as long as
                // the parent, which outlives its devices, and `remove`
                // removes it from the device again.
                let ret = unsafe {
                    bindings::sysfs_create_group(
                        core::ptr::addr_of_mut!((*raw).kobj),
                        parent.stats.group(),
                    )
                };
                if ret != 0 {
                    // SAFETY: stored just above; taken back once.
                    let data = unsafe { T::DeviceData::from_foreign(ptr.cast()) };
                    T::remove(dev, &parent.data, data);
                }
                ret
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the mdev core for a device `probe` succeeded on.
    unsafe extern "C" fn remove(mdev: *mut bindings::mdev_device) {
        // SAFETY: the core passes a live, probed device of one of our
        // parents, which outlives its devices.
        let (dev, found) = unsafe { (Device::from_raw(mdev), Self::parent_of((*mdev).type_)) };
        let raw = super::raw_device(dev.as_device());
        if let Some((parent, _)) = found {
            // SAFETY: `probe` added the group to the live device; removing
            // it waits for its readers.
            unsafe {
                bindings::sysfs_remove_group(
                    core::ptr::addr_of_mut!((*raw).kobj),
                    parent.stats.group(),
                )
            };
        }
        // SAFETY: the device is live.
        let ptr = unsafe { bindings::dev_get_drvdata(raw) };
        // SAFETY: `probe` stored `into_foreign()` of a `T::DeviceData` here
        // and this is the only place that takes it back.
        let data = unsafe { T::DeviceData::from_foreign(ptr.cast()) };
        match found {
            Some((parent, _)) => T::remove(dev, &parent.data, data),
            // Probe succeeded for this device, so its type is ours.
            None => drop(data),
        }
    }

    /// # Safety
    ///
    /// Called by the mdev core with a type of one of our parents.
    unsafe extern "C" fn get_available(mtype: *mut bindings::mdev_type) -> ffi::c_uint {
        // SAFETY: `mtype` belongs to one of our parents.
        match unsafe { Self::parent_of(mtype) } {
            Some((parent, index)) => T::available_instances(&parent.data, index),
            None => 0,
        }
    }

    /// # Safety
    ///
    /// Called by the mdev core with a type of one of our parents and a
    /// `PAGE_SIZE` sysfs buffer.
    unsafe extern "C" fn show_description(
        mtype: *mut bindings::mdev_type,
        buf: *mut ffi::c_char,
    ) -> isize {
        // SAFETY: `mtype` belongs to one of our parents.
        let Some((parent, index)) = (unsafe { Self::parent_of(mtype) }) else {
            return EINVAL.to_errno() as isize;
        };
        // SAFETY: sysfs show buffers are `PAGE_SIZE` bytes, exclusively ours
        // during the call.
        let page =
            unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), kernel::page::PAGE_SIZE) };
        let mut out = PageWriter { page, len: 0 };
        match T::description(&parent.data, index, &mut out) {
            // The core prints the description as it is: end it with a
            // newline, as sysfs attributes do.
            Ok(()) => {
                let _ = fmt::Write::write_str(&mut out, "\n");
                out.len as isize
            }
            Err(_) => EINVAL.to_errno() as isize,
        }
    }
}

#[pinned_drop]
impl<T: Driver> PinnedDrop for DriverRegistration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered, by the type invariant.
        unsafe { bindings::mdev_unregister_driver(self.drv.get()) };
    }
}

/// A device registered as an mdev parent, offering types.
///
/// # Invariants
///
/// `raw` is registered with `mdev_register_parent` for the types in
/// `types`, whose pointers are `type_ptrs`, until drop.
#[pin_data(PinnedDrop)]
pub struct Parent<T: Driver> {
    #[pin]
    raw: Opaque<bindings::mdev_parent>,
    // Heap storage: it does not move when the `KVec` does.
    types: KVec<Opaque<bindings::mdev_type>>,
    type_ptrs: KVec<*mut bindings::mdev_type>,
    // The types' names, which `types` point to.
    _names: KVec<(CString, CString)>,
    // Every device's `stats/` group.
    stats: KBox<CounterGroup>,
    data: T::ParentData,
    _driver: Arc<DriverRegistration<T>>,
}

// SAFETY: the raw structures are only used by the mdev core under its locks;
// `T::ParentData` is `Send + Sync`.
unsafe impl<T: Driver> Send for Parent<T> {}
// SAFETY: See `Send`.
unsafe impl<T: Driver> Sync for Parent<T> {}

impl<T: Driver> Parent<T> {
    /// Registers `dev` as an mdev parent of `driver` offering `types`, with
    /// `data` for the driver's callbacks. Each of its devices gets a
    /// `stats/` directory with one file per name in `stats`, read through
    /// [`Driver::stat`].
    pub fn new(
        dev: &device::Device,
        driver: Arc<DriverRegistration<T>>,
        types: &[TypeInfo<'_>],
        stats: &[&CStr],
        data: T::ParentData,
    ) -> Result<Pin<KBox<Self>>> {
        let stats = CounterGroup::new(stats, DriverRegistration::<T>::show_stat)?;
        let mut names = KVec::with_capacity(types.len(), GFP_KERNEL)?;
        for t in types {
            names.push(
                (t.sysfs_name.to_cstring()?, t.pretty_name.to_cstring()?),
                GFP_KERNEL,
            )?;
        }
        let mut raw_types = KVec::with_capacity(types.len(), GFP_KERNEL)?;
        // The names' heap buffers do not move when `names` moves.
        for (sysfs_name, pretty_name) in names.iter() {
            // SAFETY: all-zero is valid for `mdev_type` (and required: the
            // core initialises the embedded kobject itself).
            let mut mtype: bindings::mdev_type = unsafe { core::mem::zeroed() };
            mtype.sysfs_name = sysfs_name.as_char_ptr();
            mtype.pretty_name = pretty_name.as_char_ptr();
            raw_types.push(Opaque::new(mtype), GFP_KERNEL)?;
        }
        let mut type_ptrs = KVec::with_capacity(types.len(), GFP_KERNEL)?;
        for t in raw_types.iter() {
            type_ptrs.push(t.get(), GFP_KERNEL)?;
        }
        let nr_types = u32::try_from(type_ptrs.len())?;
        let ptrs = type_ptrs.as_mut_ptr();
        let drv = driver.drv.get();
        let dev = super::raw_device(dev);
        KBox::try_pin_init(
            try_pin_init!(Self {
                types: raw_types,
                type_ptrs,
                _names: names,
                stats,
                data,
                _driver: driver,
                // Initialised last: the fields it points into are in place.
                raw <- Opaque::try_ffi_init(move |slot: *mut bindings::mdev_parent| {
                    // SAFETY: `slot` is pinned until `drop` unregisters it;
                    // `dev` is a live device (the core takes references);
                    // `drv` is registered and kept so by `_driver`; `ptrs`
                    // points to `nr_types` types in heap storage owned by
                    // `self`, which outlives the registration.
                    to_result(unsafe {
                        bindings::mdev_register_parent(slot, dev, drv, ptrs, nr_types)
                    })
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// The driver's data for this parent.
    pub fn data(&self) -> &T::ParentData {
        &self.data
    }
}

#[pinned_drop]
impl<T: Driver> PinnedDrop for Parent<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered, by the type invariant. This removes every
        // device of the parent (waiting for their users) and the types'
        // sysfs objects before `types` is freed.
        unsafe { bindings::mdev_unregister_parent(self.raw.get()) };
    }
}

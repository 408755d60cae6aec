// SPDX-License-Identifier: GPL-2.0

//! Device classes and class devices.
//!
//! A software device that belongs to no bus (such as a simulated PF) can
//! live in a class of its own: it then appears as `/sys/class/<class>/<name>`
//! and, as an mdev parent, gives its mdev types the prefix `<class>-`.
//!
//! C header: [`include/linux/device/class.h`](srctree/include/linux/device/class.h).

use core::ptr::NonNull;

use kernel::device;
use kernel::error::from_err_ptr;
use kernel::prelude::*;
use kernel::sync::Arc;

use super::sysfs::CounterGroup;

/// A registered device class, destroyed on drop.
///
/// # Invariants
///
/// `raw` was returned by a successful `class_create`.
pub struct Class {
    raw: NonNull<kernel::bindings::class>,
}

// SAFETY: the driver core serialises class operations internally.
unsafe impl Send for Class {}
// SAFETY: See `Send`.
unsafe impl Sync for Class {}

impl Class {
    /// Registers the class `name`.
    pub fn new(name: &'static CStr) -> Result<Self> {
        // SAFETY: `name` is a valid, `'static` C string.
        let raw = from_err_ptr(unsafe { kernel::bindings::class_create(name.as_char_ptr()) })?;
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
        })
    }
}

impl Drop for Class {
    fn drop(&mut self) {
        // SAFETY: created by `class_create`, by the type invariant; its
        // devices hold a reference to `self`, so they are gone.
        unsafe { kernel::bindings::class_destroy(self.raw.as_ptr()) };
    }
}

/// Counters a class device shows read-only in its `stats/` directory.
pub trait Counters: Send + Sync + 'static {
    /// The counters' file names.
    const NAMES: &'static [&'static CStr];
    /// The value of counter `NAMES[index]`.
    fn counter(&self, index: usize) -> u64;
}

/// What a class device with counters keeps alive while registered: its
/// attribute group and the counters' owner (an `Arc` leaked into the
/// device's driver data, given back by `release`).
struct CounterState {
    _group: KBox<CounterGroup>,
    data: *const core::ffi::c_void,
    release: unsafe fn(*const core::ffi::c_void),
}

/// A device of a [`Class`], unregistered on drop.
///
/// # Invariants
///
/// `raw` was returned by a successful `device_create` (or
/// `device_create_with_groups`, with `counters` describing its driver data
/// and group) and is registered.
pub struct ClassDevice {
    raw: NonNull<kernel::bindings::device>,
    counters: Option<CounterState>,
    _class: Arc<Class>,
}

// SAFETY: a registered device may be used and unregistered from any thread;
// the counters it keeps alive are `Send + Sync` (`Counters`).
unsafe impl Send for ClassDevice {}
// SAFETY: See `Send`.
unsafe impl Sync for ClassDevice {}

impl ClassDevice {
    /// Creates and registers the device `name` in `class`; the device keeps
    /// the class alive.
    pub fn new(class: Arc<Class>, name: &CStr) -> Result<Self> {
        // SAFETY: `class` is registered; the format string is a literal
        // "%s" consuming `name`, a valid C string.
        let raw = from_err_ptr(unsafe {
            kernel::bindings::device_create(
                class.raw.as_ptr(),
                core::ptr::null_mut(),
                0,
                core::ptr::null_mut(),
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        })?;
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
            counters: None,
            _class: class,
        })
    }

    /// Creates and registers the device `name` in `class`, with the
    /// read-only files `stats/<T::NAMES[i]>` showing `counters`.
    pub fn with_counters<T: Counters>(
        class: Arc<Class>,
        name: &CStr,
        counters: Arc<T>,
    ) -> Result<Self> {
        let group = CounterGroup::new(T::NAMES, Self::show_counter::<T>)?;
        let data = Arc::into_raw(counters).cast::<core::ffi::c_void>();
        // SAFETY: `class` is registered; `data` is the driver data the
        // `show` callback expects; `group` outlives the registration (it is
        // dropped after `device_unregister`); the format string is a
        // literal "%s" consuming `name`, a valid C string.
        let raw = from_err_ptr(unsafe {
            kernel::bindings::device_create_with_groups(
                class.raw.as_ptr(),
                core::ptr::null_mut(),
                0,
                data.cast_mut(),
                group.groups().cast_mut(),
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        });
        let raw = match raw.map(NonNull::new) {
            Ok(Some(raw)) => raw,
            Ok(None) | Err(_) => {
                // SAFETY: the reference leaked above, unused by anyone.
                drop(unsafe { Arc::<T>::from_raw(data.cast()) });
                return Err(raw.err().unwrap_or(ENOMEM));
            }
        };
        Ok(Self {
            raw,
            counters: Some(CounterState {
                _group: group,
                data,
                release: Self::release_counters::<T>,
            }),
            _class: class,
        })
    }

    /// # Safety
    ///
    /// `data` must be the pointer `with_counters::<T>` leaked, given back
    /// once.
    unsafe fn release_counters<T: Counters>(data: *const core::ffi::c_void) {
        // SAFETY: per the function's contract.
        drop(unsafe { Arc::<T>::from_raw(data.cast()) });
    }

    /// # Safety
    ///
    /// Called by sysfs for a `stats/` file of a device made by
    /// `with_counters::<T>`, whose driver data is the `Arc<T>` (alive until
    /// after `device_unregister` removed the files and waited for readers)
    /// and with a `PAGE_SIZE` buffer.
    unsafe extern "C" fn show_counter<T: Counters>(
        dev: *mut kernel::bindings::device,
        attr: *mut kernel::bindings::device_attribute,
        buf: *mut kernel::ffi::c_char,
    ) -> isize {
        // SAFETY: `attr` belongs to the device's `CounterGroup`.
        let index = unsafe { CounterGroup::index(attr) };
        // SAFETY: the device is live during `show`; its driver data is the
        // leaked `Arc<T>` (see above).
        let counters = unsafe { &*kernel::bindings::dev_get_drvdata(dev).cast::<T>() };
        // SAFETY: sysfs passes a `PAGE_SIZE` buffer.
        unsafe { CounterGroup::show(buf, counters.counter(index)) }
    }
}

impl AsRef<device::Device> for ClassDevice {
    fn as_ref(&self) -> &device::Device {
        // SAFETY: registered and alive as long as `self`.
        unsafe { device::Device::from_raw(self.raw.as_ptr()) }
    }
}

impl Drop for ClassDevice {
    fn drop(&mut self) {
        // SAFETY: registered, by the type invariant. Unregistering removes
        // the `stats/` files and waits for their readers.
        unsafe { kernel::bindings::device_unregister(self.raw.as_ptr()) };
        if let Some(c) = self.counters.take() {
            // SAFETY: the data `with_counters` leaked; no file reads it any
            // more.
            unsafe { (c.release)(c.data) };
        }
    }
}

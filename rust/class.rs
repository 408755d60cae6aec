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

/// A device of a [`Class`], unregistered on drop.
///
/// # Invariants
///
/// `raw` was returned by a successful `device_create` and is registered.
pub struct ClassDevice {
    raw: NonNull<kernel::bindings::device>,
    _class: Arc<Class>,
}

// SAFETY: a registered device may be used and unregistered from any thread.
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
            _class: class,
        })
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
        // SAFETY: registered, by the type invariant.
        unsafe { kernel::bindings::device_unregister(self.raw.as_ptr()) };
    }
}

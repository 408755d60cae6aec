// SPDX-License-Identifier: GPL-2.0

//! Attribute groups of a device: a read-only `stats/` group of counters
//! ([`CounterGroup`]), and named groups of files served by an object
//! ([`DeviceGroup`]), such as an ADI's `qos/`.
//!
//! The kernel crate has no sysfs attribute abstraction. A [`CounterGroup`]
//! builds the C attribute group for a list of counter names at run time;
//! each attribute remembers its counter's index, and the owner's `show`
//! callback (which knows where the device's counters live) turns the index
//! into a value with [`CounterGroup::index`] and prints it with
//! [`CounterGroup::show`].
//!
//! C header: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h).

use core::ffi::c_void;
use core::fmt;

use kernel::device;
use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::aref::ARef;

use super::bindings;

/// A `show` callback of a device attribute.
pub type ShowFn = unsafe extern "C" fn(
    *mut bindings::device,
    *mut bindings::device_attribute,
    *mut ffi::c_char,
) -> isize;

/// One attribute and the index of its counter.
#[repr(C)]
struct CounterAttr {
    attr: bindings::device_attribute,
    index: usize,
}

/// The `stats/` group: one read-only file per counter name.
///
/// # Invariants
///
/// `group.attrs` points to `attr_ptrs`, a null-terminated array of the
/// `attr.attr` fields of `attrs`, whose `show` is the callback given to
/// `new`; `groups[0]` points to `group`, `groups[1]` is null. The value is
/// boxed and never moved, so the pointers stay valid while it lives.
pub struct CounterGroup {
    _names: KVec<CString>,
    _attrs: KVec<CounterAttr>,
    _attr_ptrs: KVec<*mut bindings::attribute>,
    group: bindings::attribute_group,
    groups: [*const bindings::attribute_group; 2],
}

// SAFETY: after construction the group is only read (by sysfs).
unsafe impl Send for CounterGroup {}
// SAFETY: See `Send`.
unsafe impl Sync for CounterGroup {}

impl CounterGroup {
    /// The group for counters `names` (copied), shown by `show`.
    pub fn new(names: &[&CStr], show: ShowFn) -> Result<KBox<Self>> {
        let mut owned = KVec::with_capacity(names.len(), GFP_KERNEL)?;
        for name in names {
            owned.push(name.to_cstring()?, GFP_KERNEL)?;
        }
        let mut attrs = KVec::with_capacity(names.len(), GFP_KERNEL)?;
        // The names' heap buffers do not move when `owned` is moved into
        // the group.
        for (index, name) in owned.iter().enumerate() {
            // SAFETY: all-zero is a valid `device_attribute` (no callbacks).
            let mut attr: bindings::device_attribute = unsafe { core::mem::zeroed() };
            attr.attr.name = name.as_char_ptr();
            attr.attr.mode = 0o444;
            // `sysfs_attr_init`: a dynamically allocated attribute needs a
            // static lockdep key.
            #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
            {
                attr.attr.key = kernel::static_lock_class!().as_ptr();
            }
            attr.__bindgen_anon_1.show = Some(show);
            attrs.push(CounterAttr { attr, index }, GFP_KERNEL)?;
        }
        let mut attr_ptrs = KVec::with_capacity(names.len() + 1, GFP_KERNEL)?;
        for a in attrs.iter_mut() {
            attr_ptrs.push(core::ptr::addr_of_mut!(a.attr.attr), GFP_KERNEL)?;
        }
        attr_ptrs.push(core::ptr::null_mut(), GFP_KERNEL)?;
        // SAFETY: all-zero is a valid `attribute_group` (no callbacks).
        let mut group: bindings::attribute_group = unsafe { core::mem::zeroed() };
        group.name = c"stats".as_char_ptr();
        group.__bindgen_anon_2.attrs = attr_ptrs.as_mut_ptr();
        let mut this = KBox::new(
            CounterGroup {
                _names: owned,
                _attrs: attrs,
                _attr_ptrs: attr_ptrs,
                group,
                groups: [core::ptr::null(); 2],
            },
            GFP_KERNEL,
        )?;
        // INVARIANT: the box does not move: the group's address is stable
        // from here.
        this.groups[0] = core::ptr::addr_of!(this.group);
        Ok(this)
    }

    /// The null-terminated group list (for `dev_groups` or
    /// `device_create_with_groups`).
    pub fn groups(&self) -> *const *const bindings::attribute_group {
        self.groups.as_ptr()
    }

    /// The group itself (for `sysfs_create_group`).
    pub fn group(&self) -> *const bindings::attribute_group {
        core::ptr::addr_of!(self.group)
    }

    /// The counter index of `attr`.
    ///
    /// # Safety
    ///
    /// `attr` must be an attribute of a live `CounterGroup` (as passed to
    /// its `show` callback).
    pub unsafe fn index(attr: *mut bindings::device_attribute) -> usize {
        // SAFETY: per the caller, `attr` is the `attr` field of a
        // `CounterAttr`, the first field of the `#[repr(C)]` struct.
        unsafe { (*attr.cast::<CounterAttr>()).index }
    }

    /// Prints `value` and a newline into a sysfs `show` buffer; returns
    /// the length, as `show` does.
    ///
    /// # Safety
    ///
    /// `buf` must be a `PAGE_SIZE` buffer the caller may write (the buffer
    /// sysfs passes to `show`).
    pub unsafe fn show(buf: *mut ffi::c_char, value: u64) -> isize {
        // SAFETY: per the caller.
        let page =
            unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), kernel::page::PAGE_SIZE) };
        let mut out = PageWriter { page, len: 0 };
        let _ = fmt::Write::write_fmt(&mut out, format_args!("{value}\n"));
        out.len as isize
    }
}

/// A bounded writer over a sysfs page; output past the end is dropped.
pub(crate) struct PageWriter<'a> {
    pub(crate) page: &'a mut [u8],
    pub(crate) len: usize,
}

impl fmt::Write for PageWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.page.len() - self.len;
        let n = s.len().min(room);
        self.page[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// What a [`DeviceGroup`]'s files show and take.
pub trait GroupData: Send + Sync + 'static {
    /// The group's directory name.
    const NAME: &'static CStr;
    /// Its files, in index order.
    const FILES: &'static [&'static CStr];
    /// Whether file `index` may be written (mode 0644, else 0444).
    fn writable(index: usize) -> bool;
    /// Prints file `index` (a newline is added).
    fn show(&self, index: usize, out: &mut dyn fmt::Write) -> fmt::Result;
    /// A write of `input` (what user space wrote, unparsed) to file
    /// `index`.
    fn store(&self, index: usize, input: &[u8]) -> Result;
}

/// One file of a [`DeviceGroup`].
#[repr(C)]
struct DataAttr {
    attr: bindings::device_attribute,
    index: usize,
    data: *const c_void,
}

/// A named attribute group on a device whose files are served by a
/// [`GroupData`], removed (waiting for the callbacks running) on drop.
///
/// # Invariants
///
/// While `dev` holds the group, `group.attrs` points to `attr_ptrs`, a
/// null-terminated array of the `attr.attr` fields of `attrs`, whose
/// callbacks are `show_cb::<T>` / `store_cb::<T>` and whose `data` points
/// to `_data`'s value; `group` does not move (it is boxed).
pub struct DeviceGroup<T: GroupData> {
    dev: ARef<device::Device>,
    group: KBox<bindings::attribute_group>,
    _attrs: KVec<DataAttr>,
    _attr_ptrs: KVec<*mut bindings::attribute>,
    _data: KBox<T>,
}

// SAFETY: the raw structures are only read by sysfs after construction;
// `T` is `Send + Sync`.
unsafe impl<T: GroupData> Send for DeviceGroup<T> {}
// SAFETY: See `Send`.
unsafe impl<T: GroupData> Sync for DeviceGroup<T> {}

impl<T: GroupData> DeviceGroup<T> {
    /// Adds `T::NAME/` with `T::FILES` to `dev`, served by `data`.
    pub fn new(dev: &device::Device, data: T) -> Result<Self> {
        let data = KBox::new(data, GFP_KERNEL)?;
        let ptr = core::ptr::from_ref::<T>(&data).cast::<c_void>();
        let mut attrs = KVec::with_capacity(T::FILES.len(), GFP_KERNEL)?;
        for (index, name) in T::FILES.iter().enumerate() {
            // SAFETY: all-zero is a valid `device_attribute` (no callbacks).
            let mut attr: bindings::device_attribute = unsafe { core::mem::zeroed() };
            attr.attr.name = name.as_char_ptr();
            attr.attr.mode = if T::writable(index) { 0o644 } else { 0o444 };
            #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
            {
                attr.attr.key = kernel::static_lock_class!().as_ptr();
            }
            attr.__bindgen_anon_1.show = Some(Self::show_cb);
            if T::writable(index) {
                attr.__bindgen_anon_2.store = Some(Self::store_cb);
            }
            attrs.push(
                DataAttr {
                    attr,
                    index,
                    data: ptr,
                },
                GFP_KERNEL,
            )?;
        }
        let mut attr_ptrs = KVec::with_capacity(attrs.len() + 1, GFP_KERNEL)?;
        for a in attrs.iter_mut() {
            attr_ptrs.push(core::ptr::addr_of_mut!(a.attr.attr), GFP_KERNEL)?;
        }
        attr_ptrs.push(core::ptr::null_mut(), GFP_KERNEL)?;
        // SAFETY: all-zero is a valid `attribute_group` (no callbacks).
        let mut group: KBox<bindings::attribute_group> =
            KBox::new(unsafe { core::mem::zeroed() }, GFP_KERNEL)?;
        group.name = T::NAME.as_char_ptr();
        group.__bindgen_anon_2.attrs = attr_ptrs.as_mut_ptr();
        let raw = super::raw_device(dev);
        // SAFETY: `raw` is a live device; the group and everything it
        // points to live in heap storage owned by the value returned,
        // whose drop removes the group before freeing them.
        kernel::error::to_result(unsafe {
            bindings::sysfs_create_group(core::ptr::addr_of_mut!((*raw).kobj), &*group)
        })?;
        // INVARIANT: the group is on `dev`, pointing into our storage.
        Ok(DeviceGroup {
            dev: dev.into(),
            group,
            _attrs: attrs,
            _attr_ptrs: attr_ptrs,
            _data: data,
        })
    }

    /// The heap bytes the group holds: its attribute group, attributes,
    /// attribute pointers and data (not the sysfs nodes: the kernel's).
    pub fn heap_bytes(&self) -> usize {
        core::mem::size_of::<bindings::attribute_group>()
            + super::footprint::of_vec(&self._attrs)
            + super::footprint::of_vec(&self._attr_ptrs)
            + core::mem::size_of::<T>()
    }

    /// # Safety
    ///
    /// `attr` must be an attribute of a live `DeviceGroup<T>`.
    unsafe fn data_of<'a>(attr: *mut bindings::device_attribute) -> (&'a T, usize) {
        // SAFETY: per the caller, `attr` is the first field of a
        // `#[repr(C)]` `DataAttr` whose `data` points to the group's `T`,
        // alive while the group is on the device (type invariant).
        unsafe {
            let a = &*attr.cast::<DataAttr>();
            (&*a.data.cast::<T>(), a.index)
        }
    }

    /// # Safety
    ///
    /// Called by sysfs for a file of this group while it is on the device,
    /// with a `PAGE_SIZE` buffer.
    unsafe extern "C" fn show_cb(
        _dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *mut ffi::c_char,
    ) -> isize {
        // SAFETY: sysfs calls us only while the group exists; removal
        // waits for running callbacks.
        let (data, index) = unsafe { Self::data_of(attr) };
        // SAFETY: sysfs passes a `PAGE_SIZE` buffer, ours during the call.
        let page =
            unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), kernel::page::PAGE_SIZE) };
        let mut out = PageWriter { page, len: 0 };
        match data.show(index, &mut out) {
            Ok(()) => {
                let _ = fmt::Write::write_str(&mut out, "\n");
                out.len as isize
            }
            Err(_) => EINVAL.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by sysfs for a writable file of this group while it is on
    /// the device, with `count` bytes at `buf`.
    unsafe extern "C" fn store_cb(
        _dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *const ffi::c_char,
        count: usize,
    ) -> isize {
        // SAFETY: as for `show_cb`.
        let (data, index) = unsafe { Self::data_of(attr) };
        // SAFETY: sysfs passes `count` readable bytes (at most a page).
        let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
        match data.store(index, input) {
            Ok(()) => count as isize,
            Err(e) => e.to_errno() as isize,
        }
    }
}

impl<T: GroupData> Drop for DeviceGroup<T> {
    fn drop(&mut self) {
        let raw = super::raw_device(&self.dev);
        // SAFETY: the group was added to the device in `new` (type
        // invariant); removing it waits for its running callbacks, after
        // which none reads our storage.
        unsafe { bindings::sysfs_remove_group(core::ptr::addr_of_mut!((*raw).kobj), &*self.group) };
    }
}

/// Parses a decimal number as written to a sysfs file: digits only, one
/// trailing newline allowed; `EINVAL` for anything else (no sign, no
/// spaces, no other base) and for a value past `u64`.
pub fn parse_u64(input: &[u8]) -> Result<u64> {
    let digits = input.strip_suffix(b"\n").unwrap_or(input);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(EINVAL);
    }
    digits.iter().try_fold(0u64, |v, &d| {
        v.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(EINVAL)
    })
}

// SPDX-License-Identifier: GPL-2.0

//! A read-only `stats/` attribute group of counters, for any device.
//!
//! The kernel crate has no sysfs attribute abstraction. A [`CounterGroup`]
//! builds the C attribute group for a list of counter names at run time;
//! each attribute remembers its counter's index, and the owner's `show`
//! callback (which knows where the device's counters live) turns the index
//! into a value with [`CounterGroup::index`] and prints it with
//! [`CounterGroup::show`].
//!
//! C header: [`include/linux/sysfs.h`](srctree/include/linux/sysfs.h).

use core::fmt;

use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CString;

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

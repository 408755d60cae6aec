// SPDX-License-Identifier: GPL-2.0

//! Mapping a device's pages into user space (`mmap(2)` on a device fd).

use core::ptr::NonNull;

use kernel::error::to_result;
use kernel::prelude::*;

use super::bindings;

/// A VMA being created by `mmap(2)` on a VFIO device fd.
///
/// # Invariants
///
/// Wraps a `struct vm_area_struct` under construction by `mmap(2)`, with the
/// mmap lock held for writing, for the lifetime of the reference.
#[repr(transparent)]
pub struct Vma(kernel::mm::virt::VmaNew);

impl Vma {
    /// # Safety
    ///
    /// `vma` must be a VMA being set up by `mmap(2)`, valid for `'a`.
    pub(super) unsafe fn from_raw<'a>(vma: *mut bindings::vm_area_struct) -> &'a Self {
        // SAFETY: `Vma` is a transparent wrapper of `VmaNew`, whose
        // `from_raw` has the same requirements as ours.
        let new = unsafe { kernel::mm::virt::VmaNew::from_raw(vma.cast()) };
        // SAFETY: same layout, same lifetime.
        unsafe { &*core::ptr::from_ref(new).cast::<Self>() }
    }

    /// The VMA as the kernel crate's `VmaNew` (flags, permissions, size).
    pub fn as_new(&self) -> &kernel::mm::virt::VmaNew {
        &self.0
    }

    /// The file offset of the mapping, in bytes.
    pub fn offset(&self) -> u64 {
        // SAFETY: `vm_pgoff` is set before `mmap` is called and stable while
        // the VMA is being set up (type invariant).
        let pgoff = unsafe { (*self.0.as_ptr()).vm_pgoff };
        (pgoff as u64) << kernel::page::PAGE_SHIFT
    }

    /// Size of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.0.end() - self.0.start()
    }

    /// Whether the mapping is empty (never, for a real `mmap(2)`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maps `page` at byte offset `at` of the VMA, taking a reference on
    /// it for as long as it stays mapped; the page must be one the kernel
    /// may map into user space (an order-0, non-slab page), which every
    /// [`MappablePage`] is.
    pub fn insert_page(&self, at: usize, page: &MappablePage) -> Result {
        let mixed = self.0.set_mixedmap();
        let addr = self.0.start().checked_add(at).ok_or(EINVAL)?;
        if at >= self.len() {
            return Err(EINVAL);
        }
        // SAFETY: `mixed` is this VMA with VM_MIXEDMAP set, `addr` is inside
        // it, and `page.raw` is a live page suitable for mapping (type
        // invariant of `MappablePage`); `vm_insert_page` takes its own
        // reference.
        to_result(unsafe { bindings::vm_insert_page(mixed.as_ptr(), addr, page.raw.as_ptr()) })
    }
}

/// A page another module gave us for mapping into user space (e.g. a PF's
/// doorbell page), borrowed for the lifetime of the reference.
///
/// # Invariants
///
/// `raw` is a live, order-0 page that may be mapped to user space, and
/// stays allocated while this value exists.
pub struct MappablePage {
    raw: NonNull<bindings::page>,
}

impl MappablePage {
    /// # Safety
    ///
    /// `raw` must satisfy the type invariants for as long as the value is
    /// used.
    pub unsafe fn from_raw(raw: NonNull<bindings::page>) -> Self {
        // INVARIANT: the caller's promise.
        MappablePage { raw }
    }
}

// SPDX-License-Identifier: GPL-2.0

//! What a module's own objects take on the heap, for the `vdcm_bytes` and
//! `pf_bytes` figures of an ADI: the sizes a module asked its allocators
//! for, summed by the module from what it holds (not measured from the
//! allocators, so slab rounding is not in them).

use kernel::alloc::Allocator;
use kernel::alloc::Vec;

/// The heap bytes of `v`'s buffer: its capacity, not its length.
pub fn of_vec<T, A: Allocator>(v: &Vec<T, A>) -> usize {
    v.capacity() * core::mem::size_of::<T>()
}

/// The layout the kernel crate's `Arc<T>` allocates: its count, then `T`.
#[repr(C)]
struct ArcLayout<T> {
    _count: kernel::bindings::refcount_t,
    _data: T,
}

/// The bytes of the allocation behind an `Arc<T>`.
pub const fn of_arc<T>() -> usize {
    core::mem::size_of::<ArcLayout<T>>()
}

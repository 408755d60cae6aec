// SPDX-License-Identifier: GPL-2.0

//! Eventfd contexts: how a device signals user space (VFIO interrupt
//! triggers, `VFIO_DEVICE_SET_IRQS` with `VFIO_IRQ_SET_DATA_EVENTFD`).
//!
//! C header: [`include/linux/eventfd.h`](srctree/include/linux/eventfd.h).

use core::ptr::NonNull;

use kernel::error::from_err_ptr;
use kernel::prelude::*;

use super::bindings;

/// A reference to the eventfd context behind a user's file descriptor.
///
/// The context outlives the descriptor: the user may close the fd at any
/// time, signalling keeps working until the handle is dropped.
///
/// # Invariants
///
/// `ctx` is a context on which this handle holds one reference (taken by
/// `eventfd_ctx_fdget`, dropped by `eventfd_ctx_put` in `Drop`).
pub struct EventFd {
    ctx: NonNull<bindings::eventfd_ctx>,
}

// SAFETY: an eventfd context is reference counted and its operations lock
// internally; it may be signalled and released from any thread.
unsafe impl Send for EventFd {}
// SAFETY: `signal` takes `&self` and the C side serialises signallers.
unsafe impl Sync for EventFd {}

impl EventFd {
    /// The eventfd behind file descriptor `fd` of the calling process.
    ///
    /// `EBADF` if `fd` is not open, `EINVAL` if it is not an eventfd.
    pub fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: `eventfd_ctx_fdget` accepts any integer; it returns a
        // referenced context or an error pointer.
        let ctx = from_err_ptr(unsafe { bindings::eventfd_ctx_fdget(fd) })?;
        // INVARIANT: a successful `eventfd_ctx_fdget` returned a non-null
        // context with a reference for us.
        Ok(EventFd {
            ctx: NonNull::new(ctx).ok_or(EINVAL)?,
        })
    }

    /// Adds one to the eventfd's counter and wakes its waiters. Any
    /// context.
    pub fn signal(&self) {
        // SAFETY: `ctx` is a live context (type invariant).
        unsafe { bindings::eventfd_signal_mask(self.ctx.as_ptr(), 0) };
    }

    /// Whether `self` and `other` are the same eventfd.
    pub fn same_as(&self, other: &EventFd) -> bool {
        self.ctx == other.ctx
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: gives back the reference this handle holds (type
        // invariant); `ctx` is not used afterwards.
        unsafe { bindings::eventfd_ctx_put(self.ctx.as_ptr()) };
    }
}

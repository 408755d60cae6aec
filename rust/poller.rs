// SPDX-License-Identifier: GPL-2.0

//! A worker that polls something in process context, at intervals it picks
//! itself, and that can be stopped synchronously.
//!
//! The kernel crate's delayed work has no cancel; a [`Poller`] adds one:
//! [`Poller::stop`] waits for a running poll to finish, cancels a pending
//! one and gives back the reference the queued work held, so nothing runs
//! (or leaks) after it returns. A stopped poller is never queued again.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h).

use kernel::prelude::*;
use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;
use kernel::time::Jiffies;
use kernel::workqueue;
use kernel::workqueue::DelayedWork;
use kernel::workqueue::WorkItem;

/// What a [`Poller`] polls.
pub trait Poll: Send + Sync + 'static {
    /// Polls once. Returns the delay before the next poll, or `None` to
    /// stay idle until [`Poller::kick`].
    fn poll(&self) -> Option<Jiffies>;
}

/// Polls a `T` on the system workqueue.
#[pin_data]
pub struct Poller<T: Poll> {
    #[pin]
    work: DelayedWork<Poller<T>>,
    stopping: Atomic<bool>,
    inner: T,
}

kernel::impl_has_delayed_work! {
    impl{T: Poll} HasDelayedWork<Self> for Poller<T> { self.work }
}

impl<T: Poll> Poller<T> {
    /// A poller of `inner`, idle until kicked.
    pub fn new(inner: T) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Poller {
                work <- kernel::workqueue::new_delayed_work!("vdcm::Poller::work"),
                stopping: Atomic::new(false),
                inner,
            }),
            GFP_KERNEL,
        )
    }

    /// What is polled.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// Polls as soon as possible, unless a poll is already queued or the
    /// poller is stopped.
    pub fn kick(self: &Arc<Self>) {
        if !self.stopping.load(Relaxed) {
            // Already queued: the queued poll will do.
            let _ = queue().enqueue(self.clone());
        }
    }

    /// Stops polling: when this returns, no poll runs or is queued, and
    /// none will be.
    pub fn stop(self: &Arc<Self>) {
        self.stopping.store(true, Relaxed);
        let dwork = self.work_ptr();
        // SAFETY: `dwork` is the initialised delayed work of this live
        // poller; cancelling waits for a running instance (which may
        // re-queue itself: the cancel handles that) and dequeues a pending
        // one.
        let was_pending = unsafe { kernel::bindings::cancel_delayed_work_sync(dwork) };
        if was_pending {
            // SAFETY: queuing consumed one `Arc` (turned into the pointer
            // the work item is reached by); the cancelled work will never
            // run to give it back, so we do. `self` holds another reference,
            // so this is not the last one.
            drop(unsafe { Arc::from_raw(Arc::as_ptr(self)) });
        }
    }

    fn work_ptr(&self) -> *mut kernel::bindings::delayed_work {
        // `DelayedWork` is a transparent wrapper of `struct delayed_work`.
        core::ptr::from_ref(&self.work).cast_mut().cast()
    }
}

/// The per-CPU system workqueue (`system_percpu_wq`), where polls run.
///
/// The kernel crate's [`workqueue::system`] is `system_wq`, which this
/// kernel marks deprecated (its first use logs "enqueued on deprecated
/// workqueue"); `system_percpu_wq` is its successor with the same
/// behaviour.
fn queue() -> &'static workqueue::Queue {
    // SAFETY: `system_percpu_wq` is allocated during early boot
    // (`workqueue_init_early`), before any module loads, and never freed,
    // so it points at a valid workqueue for `'static`.
    unsafe { workqueue::Queue::from_raw(kernel::bindings::system_percpu_wq) }
}

impl<T: Poll> WorkItem for Poller<T> {
    type Pointer = Arc<Poller<T>>;

    fn run(this: Arc<Self>) {
        if this.stopping.load(Relaxed) {
            return;
        }
        if let Some(delay) = this.inner.poll() {
            if !this.stopping.load(Relaxed) {
                let _ = queue().enqueue_delayed(this, delay);
            }
        }
    }
}

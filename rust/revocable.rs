// SPDX-License-Identifier: GPL-2.0

//! A value that readers use without taking a lock, even across calls that
//! sleep, and that its owner takes away once, waiting for the readers
//! inside.
//!
//! The kernel crate's `Revocable` guards readers with RCU, so they must not
//! sleep; a PF's callbacks sleep (they take mutexes and wait for their
//! engines). A mutex around an `Option` would serialise every reader and,
//! with lock debugging, cost more than the trapped access itself. Here a
//! reader is one atomic increment and one decrement; only revocation waits.

use core::cell::UnsafeCell;
use core::ops::Deref;

use kernel::new_condvar;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::atomic::Acquire;
use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Full;
use kernel::sync::atomic::Relaxed;
use kernel::sync::atomic::Release;
use kernel::sync::CondVar;
use kernel::sync::Mutex;

/// Set in [`SleepableRevocable::state`] once revocation began; the other
/// bits count the readers inside.
const GONE: u64 = 1 << 63;

/// A `T` readers borrow with [`SleepableRevocable::access`] and the owner
/// takes with [`SleepableRevocable::revoke`], which waits until no reader
/// holds it.
#[pin_data]
pub struct SleepableRevocable<T> {
    /// The readers inside, and [`GONE`].
    state: Atomic<u64>,
    /// `Some` until revoked. Written only by `revoke`, once no reader is
    /// inside and none can enter.
    value: UnsafeCell<Option<T>>,
    /// Taken by `revoke` while it waits, and by the last reader out once
    /// revocation began, so the wake-up cannot be missed.
    #[pin]
    lock: Mutex<()>,
    #[pin]
    drained: CondVar,
}

// SAFETY: readers on any thread get `&T` (so `T: Sync`), and `revoke` on
// any thread moves the `T` out (so `T: Send`); the atomics, mutex and
// condition variable are shared safely.
unsafe impl<T: Send + Sync> Sync for SleepableRevocable<T> {}
// SAFETY: the `T` moves with the container, so `T: Send` is enough; the
// reader count is zero whenever the container can be moved (nothing
// borrows it).
unsafe impl<T: Send> Send for SleepableRevocable<T> {}

impl<T> SleepableRevocable<T> {
    /// A container holding `value`.
    pub fn new(value: T) -> impl PinInit<Self> {
        pin_init!(Self {
            state: Atomic::new(0),
            value: UnsafeCell::new(Some(value)),
            lock <- new_mutex!(()),
            drained <- new_condvar!(),
        })
    }

    /// The value, unless revocation began; it stays valid while the guard
    /// lives, which may be across sleeping calls.
    pub fn access(&self) -> Option<RevocableGuard<'_, T>> {
        let mut seen = self.state.load(Relaxed);
        loop {
            if seen & GONE != 0 {
                return None;
            }
            match self.state.cmpxchg(seen, seen + 1, Acquire) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        // SAFETY: this reader is counted and `GONE` was clear when it was,
        // so `revoke` has not reached the write and will not before the
        // guard drops (it waits for the count to reach zero); the value is
        // only read while the guard lives.
        let value = unsafe { &*self.value.get() };
        match value {
            Some(value) => Some(RevocableGuard { slot: self, value }),
            // Unreachable: `value` is `None` only after `revoke` set
            // `GONE`. The count is given back all the same.
            None => {
                self.leave();
                None
            }
        }
    }

    /// A reader leaves; the last one out after revocation began wakes it.
    fn leave(&self) {
        let before = self.state.fetch_sub(1, Release);
        if before == GONE | 1 {
            let _lock = self.lock.lock();
            self.drained.notify_all();
        }
    }

    /// Takes the value: no reader can enter from now on, and this waits
    /// (sleeping) for the readers inside to leave. `None` if it was
    /// already revoked. Must not be called by a holder of a guard of the
    /// same container, which would wait for itself.
    pub fn revoke(&self) -> Option<T> {
        let mut seen = self.state.load(Relaxed);
        loop {
            if seen & GONE != 0 {
                return None;
            }
            match self.state.cmpxchg(seen, seen | GONE, Full) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        let mut lock = self.lock.lock();
        while self.state.load(Acquire) != GONE {
            self.drained.wait(&mut lock);
        }
        drop(lock);
        // SAFETY: `GONE` is set, so no reader can enter, and the count is
        // zero, so none is inside (the acquire load orders their reads
        // before this write); only the first `revoke` gets here.
        unsafe { (*self.value.get()).take() }
    }
}

/// A reader's borrow of a [`SleepableRevocable`]'s value.
pub struct RevocableGuard<'a, T> {
    slot: &'a SleepableRevocable<T>,
    value: &'a T,
}

impl<T> Deref for RevocableGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value
    }
}

impl<T> Drop for RevocableGuard<'_, T> {
    fn drop(&mut self) {
        self.slot.leave();
    }
}

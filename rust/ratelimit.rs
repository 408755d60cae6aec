// SPDX-License-Identifier: GPL-2.0

//! Rate limiting for log messages user space can trigger at will.
//!
//! The kernel crate has no `dev_err_ratelimited!`. A [`RateLimit`] allows a
//! burst of messages per interval and counts the ones it suppresses, so a
//! user issuing bad requests in a loop cannot flood the kernel log.

use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Relaxed;
use kernel::time::Instant;
use kernel::time::Monotonic;

/// Allows `BURST` events per `INTERVAL_MS` milliseconds.
pub struct RateLimit<const BURST: u32 = 10, const INTERVAL_MS: i64 = 5000> {
    base: Instant<Monotonic>,
    /// Start of the current window, in ms since `base`.
    window: Atomic<i64>,
    /// Events seen in the current window.
    seen: Atomic<u32>,
    /// Events suppressed since the last one allowed.
    suppressed: Atomic<u32>,
}

impl<const BURST: u32, const INTERVAL_MS: i64> RateLimit<BURST, INTERVAL_MS> {
    /// A limiter whose first window starts now.
    pub fn new() -> Self {
        RateLimit {
            base: Instant::now(),
            window: Atomic::new(0),
            seen: Atomic::new(0),
            suppressed: Atomic::new(0),
        }
    }

    /// Whether an event may be logged now. `Some(n)`: yes, and `n` events
    /// were suppressed since the last one allowed (worth saying); `None`:
    /// suppress it.
    ///
    /// Concurrent callers may let a few more than `BURST` through at a
    /// window's edge; the limit is for logging, not for accounting.
    pub fn allow(&self) -> Option<u32> {
        let now = self.base.elapsed().as_millis();
        if now - self.window.load(Relaxed) >= INTERVAL_MS {
            self.window.store(now, Relaxed);
            self.seen.store(0, Relaxed);
        }
        if self.seen.fetch_add(1, Relaxed) < BURST {
            Some(self.suppressed.xchg(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

impl<const BURST: u32, const INTERVAL_MS: i64> Default for RateLimit<BURST, INTERVAL_MS> {
    fn default() -> Self {
        Self::new()
    }
}

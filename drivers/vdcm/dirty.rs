// SPDX-License-Identifier: GPL-2.0

//! DMA dirty logging of an ADI: which pages of the tenant's memory the PF
//! wrote while a migration logs them.
//!
//! Every write a PF makes on the tenant's behalf goes through the core's
//! DMA service (`dma_rw`), which marks the pages here; pages the PF pinned
//! for writing may be written without the core seeing it, so every report
//! counts them dirty for as long as they are pinned. Logging is one bit
//! per 4 KiB page of each range the user asked for, allocated at start.
//! When nothing is logged, marking costs one relaxed atomic load.

use kernel::new_mutex;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Relaxed;
use kernel::sync::atomic::Release;
use kernel::sync::Mutex;

use crate::vdcm_kernel::vfio::dirty::IovaBitmap;
use crate::vdcm_kernel::vfio::dirty::IovaRange;

/// The page a bit stands for.
const PAGE: u64 = PAGE_SIZE as u64;
/// Most pages logged at once: 256 GiB of 4 KiB pages, an 8 MiB bitmap.
const MAX_PAGES: u64 = 1 << 26;

/// One logged range and its bits.
struct Tracked {
    start: u64,
    pages: u64,
    bits: KVVec<u64>,
}

impl Tracked {
    /// The pages of `[iova, iova + len)` inside this range, as bit
    /// indexes.
    fn pages_of(&self, iova: u64, len: u64) -> core::ops::Range<u64> {
        let end = iova.saturating_add(len);
        let lo = iova.max(self.start);
        let hi = end.min(self.start + self.pages * PAGE);
        if lo >= hi {
            return 0..0;
        }
        (lo - self.start) / PAGE..(hi - self.start).div_ceil(PAGE)
    }
}

/// The dirty log of one ADI.
#[pin_data]
pub struct DirtyLog {
    /// Whether logging runs: read without the lock on every DMA write.
    active: Atomic<bool>,
    #[pin]
    ranges: Mutex<KVec<Tracked>>,
}

impl DirtyLog {
    /// The heap bytes of the tracked ranges and their bitmaps (none unless
    /// a migration logs).
    pub fn heap_bytes(&self) -> usize {
        use crate::vdcm_kernel::footprint::of_vec;
        let ranges = self.ranges.lock();
        of_vec(&ranges) + ranges.iter().map(|t| of_vec(&t.bits)).sum::<usize>()
    }

    /// A log that is not running.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(DirtyLog {
            active: Atomic::new(false),
            ranges <- new_mutex!(KVec::new()),
        })
    }

    /// Starts logging `ranges` (aligned and disjoint, as the VFIO core
    /// checked). The log's granularity is 4 KiB whatever `page_size`
    /// asks, which only makes reports finer; a page size below that, or
    /// not a power of two, is raised to it. `EBUSY` if logging runs,
    /// `E2BIG` for more than [`MAX_PAGES`] pages.
    pub fn start(&self, ranges: &[IovaRange], page_size: &mut u64) -> Result {
        let mut tracked = self.ranges.lock();
        if self.active.load(Relaxed) {
            return Err(EBUSY);
        }
        if *page_size < PAGE || !page_size.is_power_of_two() {
            *page_size = PAGE;
        }
        ranges
            .iter()
            .try_fold(0u64, |sum, r| sum.checked_add(r.len.div_ceil(PAGE)))
            .filter(|&n| n <= MAX_PAGES)
            .ok_or(E2BIG)?;
        let mut list = KVec::with_capacity(ranges.len(), GFP_KERNEL)?;
        for r in ranges {
            let pages = r.len.div_ceil(PAGE);
            let words = usize::try_from(pages.div_ceil(64))?;
            list.push(
                Tracked {
                    start: r.start,
                    pages,
                    bits: KVVec::from_elem(0u64, words, GFP_KERNEL)?,
                },
                GFP_KERNEL,
            )?;
        }
        *tracked = list;
        self.active.store(true, Release);
        Ok(())
    }

    /// Stops logging and frees the bitmaps; a no-op if it is not running.
    pub fn stop(&self) {
        let mut tracked = self.ranges.lock();
        self.active.store(false, Relaxed);
        *tracked = KVec::new();
    }

    /// Records a write of `len` bytes at `iova`.
    pub fn mark(&self, iova: u64, len: u64) {
        if !self.active.load(Relaxed) || len == 0 {
            return;
        }
        let mut tracked = self.ranges.lock();
        for t in tracked.iter_mut() {
            for page in t.pages_of(iova, len) {
                if let Some(w) = t.bits.get_mut((page / 64) as usize) {
                    *w |= 1 << (page % 64);
                }
            }
        }
    }

    /// Sets in `dirty` the pages of `[iova, iova + len)` written since the
    /// last report and clears them. `EINVAL` while logging is stopped.
    pub fn read_and_clear(&self, iova: u64, len: u64, dirty: &mut IovaBitmap<'_>) -> Result {
        let mut tracked = self.ranges.lock();
        if !self.active.load(Relaxed) {
            return Err(EINVAL);
        }
        for t in tracked.iter_mut() {
            let pages = t.pages_of(iova, len);
            let mut page = pages.start;
            while page < pages.end {
                let Some(w) = t.bits.get_mut((page / 64) as usize) else {
                    break;
                };
                // Whole empty words are skipped at once.
                if *w == 0 {
                    page = (page / 64 + 1) * 64;
                    continue;
                }
                let bit = 1u64 << (page % 64);
                if *w & bit != 0 {
                    *w &= !bit;
                    dirty.set(t.start + page * PAGE, PAGE);
                }
                page += 1;
            }
        }
        Ok(())
    }
}

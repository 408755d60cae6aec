// SPDX-License-Identifier: GPL-2.0

//! Doorbell pages: a page of memory a PF gives a tenant to write to
//! directly (mapped into user space with no trap), and that the PF reads.

use kernel::page::Page;
use kernel::prelude::*;

/// A zeroed, order-0 page used as a doorbell.
pub struct DoorbellPage {
    page: Page,
}

impl DoorbellPage {
    /// Allocates a zeroed doorbell page.
    pub fn new() -> Result<Self> {
        Ok(DoorbellPage {
            page: Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?,
        })
    }

    /// The page, for mapping.
    pub fn page(&self) -> &Page {
        &self.page
    }

    /// Reads the 32-bit little-endian word at byte `offset` (4-byte
    /// aligned), as the tenant last wrote it.
    pub fn read_u32(&self, offset: usize) -> Result<u32> {
        if offset % 4 != 0 || offset >= kernel::page::PAGE_SIZE {
            return Err(EINVAL);
        }
        let mut word = [0u8; 4];
        // SAFETY: `word` is valid for 4 bytes of writes; the range is inside
        // the page (checked above). The tenant may write the page
        // concurrently: the copy then sees either value of each byte, which
        // the caller treats as untrusted input anyway.
        unsafe { self.page.read_raw(word.as_mut_ptr(), offset, 4)? };
        Ok(u32::from_le_bytes(word))
    }

    /// Copies `buf.len()` bytes from byte `offset` of the page, as the
    /// tenant last wrote them; `EINVAL` past the page's end.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result {
        if offset
            .checked_add(buf.len())
            .is_none_or(|end| end > kernel::page::PAGE_SIZE)
        {
            return Err(EINVAL);
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes of writes; the range
        // is inside the page (checked above). Concurrent tenant writes are
        // seen partially at worst; callers treat the bytes as untrusted.
        unsafe { self.page.read_raw(buf.as_mut_ptr(), offset, buf.len()) }
    }

    /// Zeroes the page, so nothing of a previous tenant is visible.
    pub fn clear(&self) -> Result {
        let zero = [0u8; 256];
        for at in (0..kernel::page::PAGE_SIZE).step_by(zero.len()) {
            // SAFETY: `zero` is valid for reads; the range is inside the
            // page.
            unsafe { self.page.write_raw(zero.as_ptr(), at, zero.len())? };
        }
        Ok(())
    }

    /// Copies `buf` to byte `offset` of the page (e.g. the contents a
    /// migrated tenant left in it); `EINVAL` past the page's end.
    pub fn write(&self, offset: usize, buf: &[u8]) -> Result {
        if offset
            .checked_add(buf.len())
            .is_none_or(|end| end > kernel::page::PAGE_SIZE)
        {
            return Err(EINVAL);
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes of reads; the range
        // is inside the page (checked above).
        unsafe { self.page.write_raw(buf.as_ptr(), offset, buf.len()) }
    }

    /// Writes the 32-bit little-endian word at byte `offset` (4-byte
    /// aligned), e.g. to clear a doorbell on reset.
    pub fn write_u32(&self, offset: usize, value: u32) -> Result {
        if offset % 4 != 0 || offset >= kernel::page::PAGE_SIZE {
            return Err(EINVAL);
        }
        let word = value.to_le_bytes();
        // SAFETY: `word` is valid for 4 bytes of reads; the range is inside
        // the page (checked above).
        unsafe { self.page.write_raw(word.as_ptr(), offset, 4) }
    }
}

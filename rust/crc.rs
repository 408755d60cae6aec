// SPDX-License-Identifier: GPL-2.0

//! CRC-32C (Castagnoli) through the kernel's library, which uses the CPU's
//! CRC instructions where it has them.
//!
//! C header: [`include/linux/crc32.h`](srctree/include/linux/crc32.h).

use super::bindings;

/// Continues a CRC-32C over `data` from the running value `crc`, without
/// pre- or post-inversion (as the C function): a standard CRC-32C of
/// `data` is `!crc32c(!0, data)`.
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    // SAFETY: `data` is valid for reads of `data.len()` bytes for the
    // duration of the call, which only reads it.
    unsafe { bindings::crc32c(crc, data.as_ptr().cast(), data.len()) }
}

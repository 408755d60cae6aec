// SPDX-License-Identifier: GPL-2.0

//! Little-endian fields in a byte buffer: how saved ADI state is written
//! and read, by the VDCM's migration stream and by a Rust PF's own part of
//! it.
//!
//! A [`Writer`] fills a buffer sized beforehand and fails with `ENOSPC`
//! past its end; a [`Reader`] fails with `ENODATA` past the end of what it
//! reads, so a truncated state is refused wherever it is cut.

use kernel::prelude::*;

/// `ENODATA`, which the kernel crate has no constant for: the state ends
/// before the field.
pub fn truncated() -> Error {
    Error::from_errno(-(kernel::bindings::ENODATA as i32))
}

/// Writes fields into a buffer, front to back.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, at: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.at
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.at == 0
    }

    /// Appends `bytes`.
    pub fn bytes(&mut self, bytes: &[u8]) -> Result {
        let end = self.at.checked_add(bytes.len()).ok_or(ENOSPC)?;
        self.buf
            .get_mut(self.at..end)
            .ok_or(ENOSPC)?
            .copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }

    /// Room for `len` bytes, to be filled by the caller.
    pub fn reserve(&mut self, len: usize) -> Result<&mut [u8]> {
        let start = self.at;
        let end = start.checked_add(len).ok_or(ENOSPC)?;
        if end > self.buf.len() {
            return Err(ENOSPC);
        }
        self.at = end;
        self.buf.get_mut(start..end).ok_or(ENOSPC)
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.at).unwrap_or(&[])
    }

    /// Appends a `u8`.
    pub fn u8(&mut self, v: u8) -> Result {
        self.bytes(&[v])
    }

    /// Appends a `u16`.
    pub fn u16(&mut self, v: u16) -> Result {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a `u32`.
    pub fn u32(&mut self, v: u32) -> Result {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a `u64`.
    pub fn u64(&mut self, v: u64) -> Result {
        self.bytes(&v.to_le_bytes())
    }
}

/// Reads fields from a buffer, front to back.
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.at
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }

    /// The next `len` bytes.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(len).ok_or_else(truncated)?;
        let out = self.buf.get(self.at..end).ok_or_else(truncated)?;
        self.at = end;
        Ok(out)
    }

    /// The next `N` bytes, as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// The next `u8`.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// The next `u16`.
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// The next `u32`.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// The next `u64`.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

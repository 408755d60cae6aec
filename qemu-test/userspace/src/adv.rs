// SPDX-License-Identifier: GPL-2.0

//! Helpers of the adversarial tests (`adi_bad_input`, `adi_fuzz`,
//! `adi_races`, `adi_group`): a seeded PRNG, raw system calls that let a
//! test pass what a safe wrapper would not (NULL buffers, odd flags), and a
//! counter of bad inputs with errno checks.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// splitmix64: small, fast, and reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One element of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// The number after command-line flag `name` (`--seed N`); `None` if the
/// flag is absent or its value is not a number.
pub fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

/// A seed from the clock, for runs without `--seed`.
pub fn clock_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_secs().wrapping_mul(1_000_000_007) ^ u64::from(t.subsec_nanos())
}

/// `ioctl(fd, cmd, arg)` with a raw pointer argument; the errno on failure.
///
/// # Safety
///
/// `arg` must be valid for whatever the kernel may read or write for
/// `cmd` given the bytes at `arg`, or be an address the kernel checks
/// (e.g. NULL, which faults in the kernel's user copy).
pub unsafe fn ioctl_ptr(fd: &impl AsRawFd, cmd: libc::c_ulong, arg: *mut u8) -> io::Result<i32> {
    // SAFETY: the caller's promise.
    let rc = unsafe { vmm_sys_util::ioctl::ioctl_with_mut_ptr(fd, cmd, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `ioctl(fd, cmd, buf)` on a byte buffer the kernel may read and write
/// up to its full length.
pub fn ioctl_buf(fd: &impl AsRawFd, cmd: libc::c_ulong, buf: &mut [u8]) -> io::Result<i32> {
    // SAFETY: `buf` is live and exclusively borrowed; callers keep every
    // `argsz` in it at most `buf.len()`, so the kernel stays inside it.
    unsafe { ioctl_ptr(fd, cmd, buf.as_mut_ptr()) }
}

/// `pread(2)` of `len` bytes into `buf` (NULL allowed: the kernel must
/// fault on it, not us).
pub fn pread_raw(fd: &impl AsRawFd, buf: *mut u8, len: usize, off: u64) -> io::Result<usize> {
    // SAFETY: the kernel checks `buf`; callers pass either a live buffer of
    // `len` bytes or an address that faults in the kernel's user copy.
    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.cast(), len, off as libc::off_t) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `pwrite(2)` of `len` bytes from `buf` (see [`pread_raw`]).
pub fn pwrite_raw(fd: &impl AsRawFd, buf: *const u8, len: usize, off: u64) -> io::Result<usize> {
    // SAFETY: as for `pread_raw`; the kernel only reads `buf`.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), buf.cast(), len, off as libc::off_t) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A mapping made by [`mmap_raw`], unmapped on drop.
pub struct RawMap {
    /// Start address.
    pub addr: *mut u8,
    /// Length in bytes.
    pub len: usize,
}

impl RawMap {
    /// Stores `v` at byte `off` (4-byte aligned, inside the mapping).
    pub fn store_u32(&self, off: usize, v: u32) {
        assert!(off.is_multiple_of(4) && off + 4 <= self.len);
        // SAFETY: in bounds and aligned (checked); the mapping is live.
        unsafe { std::ptr::write_volatile(self.addr.add(off).cast::<u32>(), v) }
    }

    /// Loads the 32-bit word at byte `off`.
    pub fn load_u32(&self, off: usize) -> u32 {
        assert!(off.is_multiple_of(4) && off + 4 <= self.len);
        // SAFETY: in bounds and aligned (checked); the mapping is live.
        unsafe { std::ptr::read_volatile(self.addr.add(off).cast::<u32>()) }
    }
}

impl Drop for RawMap {
    fn drop(&mut self) {
        // SAFETY: our mapping, unmapped once.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// `mmap(NULL, len, prot, flags, fd, off)`.
pub fn mmap_raw(
    fd: &impl AsRawFd,
    off: u64,
    len: usize,
    prot: i32,
    flags: i32,
) -> io::Result<RawMap> {
    // SAFETY: a fresh mapping chosen by the kernel; nothing aliases it.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            flags,
            fd.as_raw_fd(),
            off as libc::off_t,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(RawMap {
        addr: addr.cast(),
        len,
    })
}

/// Counts bad inputs and checks the errno each one got.
#[derive(Default)]
pub struct BadInputs {
    /// Bad inputs tried.
    pub tried: u64,
}

impl BadInputs {
    /// `result` must be the error `errno`; `what` names the input.
    pub fn expect<T: std::fmt::Debug>(
        &mut self,
        what: impl FnOnce() -> String,
        result: io::Result<T>,
        errno: i32,
    ) -> Result<(), String> {
        self.tried += 1;
        match result {
            Err(e) if e.raw_os_error() == Some(errno) => Ok(()),
            other => Err(format!(
                "{}: {other:?}, want {}",
                what(),
                io::Error::from_raw_os_error(errno)
            )),
        }
    }

    /// `result` must be a success, which is returned.
    pub fn expect_ok<T: std::fmt::Debug>(
        &mut self,
        what: impl FnOnce() -> String,
        result: io::Result<T>,
    ) -> Result<T, String> {
        self.tried += 1;
        result.map_err(|e| format!("{}: {e}, want success", what()))
    }
}

/// `VFIO_DEVICE_GET_REGION_INFO`'s fixed part, on any device fd: the
/// region's offset and size.
pub fn region_offset_size(dev: &File, index: u32) -> Result<(u64, u64), String> {
    let info = crate::vfio::region_info(dev, index)?;
    Ok((info.offset, info.size))
}

/// Finds PCI capability `id` in the config space of `dev` (region 7 at
/// `cfg`), walking the list from 0x34.
pub fn find_cap(dev: &File, cfg: u64, id: u8) -> Result<Option<u64>, String> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 4];
    dev.read_exact_at(&mut b[..1], cfg + 0x34)
        .map_err(|e| format!("config read: {e}"))?;
    let mut at = u64::from(b[0]);
    for _ in 0..48 {
        if at == 0 {
            return Ok(None);
        }
        dev.read_exact_at(&mut b, cfg + at)
            .map_err(|e| format!("config read at {at:#x}: {e}"))?;
        if b[0] == id {
            return Ok(Some(at));
        }
        at = u64::from(b[1]);
    }
    Err("capability list does not end".into())
}

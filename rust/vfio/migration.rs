// SPDX-License-Identifier: GPL-2.0

//! VFIO migration v2 of an emulated device: the states, the data stream
//! files user space reads the device's state from and writes it back to,
//! and the step function that splits a user's request into the arcs a
//! driver implements.
//!
//! The VFIO core owns the uapi (`VFIO_DEVICE_FEATURE_MIGRATION`,
//! `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`, the data fd's installation); a
//! [`Driver`] with `migration_set_state` gets the `mig_ops` table. Its data
//! streams are [`MigrationStream`]s: a buffer behind an anonymous file,
//! read front to back by a saving user, written front to back by a
//! resuming one, and ended by the driver when the state machine leaves the
//! transfer state (reads and writes then fail with `ENODEV`, as the uapi
//! asks).
//!
//! C header: [`include/linux/vfio.h`](srctree/include/linux/vfio.h); uapi
//! in [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h).

use core::ptr::NonNull;

use kernel::error::from_err_ptr;
use kernel::ffi;
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::sync::ArcBorrow;
use kernel::sync::Mutex;
use kernel::types::ForeignOwnable;
use kernel::uaccess::UserPtr;
use kernel::uaccess::UserSlice;

use super::bindings;
use super::Device;
use super::Driver;

/// A migration state (`enum vfio_device_mig_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigState {
    /// The device failed a transition; only a reset leaves it.
    Error,
    /// Stopped: no DMA, no interrupts, state frozen.
    Stop,
    /// Running normally.
    Running,
    /// Stopped, with the state being read out.
    StopCopy,
    /// Stopped, with a state being written in.
    Resuming,
    /// Running but not initiating peer-to-peer DMA.
    RunningP2p,
    /// Running, with the state's first part being read out.
    PreCopy,
    /// [`MigState::PreCopy`] without peer-to-peer DMA.
    PreCopyP2p,
}

impl MigState {
    /// The state of a raw uapi value, `None` for one out of range.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_ERROR => Self::Error,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP => Self::Stop,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING => Self::Running,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP_COPY => Self::StopCopy,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_RESUMING => Self::Resuming,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING_P2P => Self::RunningP2p,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY => Self::PreCopy,
            bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY_P2P => Self::PreCopyP2p,
            _ => return None,
        })
    }

    /// The uapi value.
    pub fn raw(self) -> u32 {
        match self {
            Self::Error => bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_ERROR,
            Self::Stop => bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP,
            Self::Running => bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING,
            Self::StopCopy => bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP_COPY,
            Self::Resuming => bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_RESUMING,
            Self::RunningP2p => bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING_P2P,
            Self::PreCopy => bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY,
            Self::PreCopyP2p => bindings::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY_P2P,
        }
    }
}

/// What a migratable device supports (`vfio_device.migration_flags`).
pub mod flags {
    use super::bindings;
    /// STOP, STOP_COPY, RESUMING (mandatory).
    pub const STOP_COPY: u32 = bindings::VFIO_MIGRATION_STOP_COPY;
    /// RUNNING_P2P.
    pub const P2P: u32 = bindings::VFIO_MIGRATION_P2P;
    /// PRE_COPY (and PRE_COPY_P2P with [`P2P`]).
    pub const PRE_COPY: u32 = bindings::VFIO_MIGRATION_PRE_COPY;
}

impl<T: Driver> Device<T> {
    /// The next arc from `cur` towards `new` the VFIO core's state machine
    /// takes with this device's migration flags (`vfio_mig_get_next_state`);
    /// `EINVAL` if `new` cannot be reached.
    pub fn next_mig_state(&self, cur: MigState, new: MigState) -> Result<MigState> {
        let mut next = 0;
        // SAFETY: `self` is a live, initialised VFIO device; `next` is
        // valid for writes.
        kernel::error::to_result(unsafe {
            bindings::vfio_mig_get_next_state(self.as_raw(), cur.raw(), new.raw(), &mut next)
        })?;
        MigState::from_raw(next).ok_or(EINVAL)
    }

    /// Whether user space opted in to the second version of
    /// `VFIO_MIG_GET_PRECOPY_INFO` (its `flags` are then an output).
    pub fn precopy_info_v2(&self) -> bool {
        // SAFETY: `self` is live; the core writes the field only while it
        // handles a device feature ioctl, under the device's own rules,
        // and a stale read only picks the older reply format.
        unsafe { (*self.as_raw()).precopy_info_v2 != 0 }
    }
}

/// Which way a stream carries data.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// The device's state, read by user space.
    Save,
    /// A state written by user space, at most this many bytes.
    Resume(usize),
}

struct StreamData {
    buf: KVVec<u8>,
    /// Bytes read so far (saving).
    pos: usize,
    /// No more data will be appended (saving): reads at the end return 0.
    complete: bool,
    /// `VFIO_MIG_GET_PRECOPY_INFO` is allowed, and with which reply format.
    precopy: Option<bool>,
    /// The state machine left the transfer state: `ENODEV` from now on.
    ended: bool,
}

/// The data of one migration data file.
#[pin_data]
pub struct MigrationStream {
    dir: Direction,
    #[pin]
    data: Mutex<StreamData>,
}

/// `ENOMSG`, which the kernel crate has no constant for: a pre-copy
/// stream's temporary end.
fn enomsg() -> Error {
    Error::from_errno(-(bindings::ENOMSG as i32))
}

impl MigrationStream {
    fn new(dir: Direction) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(MigrationStream {
                dir,
                data <- new_mutex!(StreamData {
                    buf: KVVec::new(),
                    pos: 0,
                    complete: false,
                    precopy: None,
                    ended: false,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// An empty stream to save into; [`MigrationStream::append`] fills it.
    pub fn new_save() -> Result<Arc<Self>> {
        Self::new(Direction::Save)
    }

    /// An empty stream user space writes at most `limit` bytes into.
    pub fn new_resume(limit: usize) -> Result<Arc<Self>> {
        Self::new(Direction::Resume(limit))
    }

    /// Appends `bytes` for the reader; `complete` marks the end of the
    /// state (reads past it return 0 instead of `ENOMSG`).
    pub fn append(&self, bytes: &[u8], complete: bool) -> Result {
        let mut d = self.data.lock();
        if d.ended || d.complete {
            return Err(EINVAL);
        }
        d.buf.extend_from_slice(bytes, GFP_KERNEL)?;
        d.complete = complete;
        Ok(())
    }

    /// Allows `VFIO_MIG_GET_PRECOPY_INFO` (in a pre-copy state), with the
    /// reply format of `v2` (see [`Device::precopy_info_v2`]), or not.
    pub fn set_precopy(&self, precopy: Option<bool>) {
        self.data.lock().precopy = precopy;
    }

    /// Calls `f` with what was appended or written so far.
    pub fn with_data<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self.data.lock().buf)
    }

    /// Ends the stream: later reads and writes fail with `ENODEV`, and the
    /// buffer is freed. Returns what a resuming user wrote.
    pub fn end(&self) -> KVVec<u8> {
        let mut d = self.data.lock();
        d.ended = true;
        d.pos = 0;
        core::mem::take(&mut d.buf)
    }

    /// An anonymous file on this stream (read-only for saving, write-only
    /// for resuming), to hand to user space.
    pub fn open_file(self: &Arc<Self>) -> Result<DataFile> {
        let (name, flags) = match self.dir {
            Direction::Save => (c"vdcm_mig_save", bindings::O_RDONLY),
            Direction::Resume(_) => (c"vdcm_mig_resume", bindings::O_WRONLY),
        };
        let private = self.clone().into_foreign();
        // SAFETY: `STREAM_FOPS` is a static table whose callbacks expect
        // `private_data` to be an `Arc<MigrationStream>` from
        // `into_foreign`, which `private` is; the name is a static string.
        let file = unsafe {
            bindings::anon_inode_getfile(
                name.as_char_ptr(),
                &STREAM_FOPS.0,
                private.cast(),
                flags as ffi::c_int,
            )
        };
        let file = match from_err_ptr(file) {
            Ok(f) => f,
            Err(e) => {
                // SAFETY: the file was not created, so `private` was not
                // handed over; it is taken back once.
                drop(unsafe { Arc::<MigrationStream>::from_foreign(private) });
                return Err(e);
            }
        };
        // SAFETY: `file` is a new file of ours with its inode; a stream has
        // no position (reads and writes ignore offsets and `pread` fails).
        unsafe { bindings::stream_open((*file).f_inode, file) };
        // INVARIANT: one reference, ours.
        Ok(DataFile(NonNull::new(file).ok_or(EINVAL)?))
    }

    fn read(&self, out: &mut kernel::uaccess::UserSliceWriter) -> Result<usize> {
        let mut d = self.data.lock();
        if d.ended || self.dir != Direction::Save {
            return Err(ENODEV);
        }
        let left = d.buf.get(d.pos..).unwrap_or(&[]);
        if left.is_empty() {
            return if d.complete { Ok(0) } else { Err(enomsg()) };
        }
        let n = left.len().min(out.len());
        out.write_slice(left.get(..n).unwrap_or(&[]))?;
        d.pos += n;
        Ok(n)
    }

    fn write(&self, input: &mut kernel::uaccess::UserSliceReader) -> Result<usize> {
        let Direction::Resume(limit) = self.dir else {
            return Err(EINVAL);
        };
        let mut d = self.data.lock();
        if d.ended {
            return Err(ENODEV);
        }
        let n = input.len();
        if d.buf.len().checked_add(n).is_none_or(|end| end > limit) {
            return Err(EFBIG);
        }
        let at = d.buf.len();
        d.buf.resize(at + n, 0, GFP_KERNEL)?;
        if let Err(e) = input.read_slice(d.buf.get_mut(at..).unwrap_or(&mut [])) {
            d.buf.truncate(at);
            return Err(e);
        }
        Ok(n)
    }

    /// `VFIO_MIG_GET_PRECOPY_INFO`: what is left of the initial data.
    fn precopy_info(&self, cmd: u32, arg: ffi::c_ulong) -> Result<isize> {
        // `VFIO_MIG_GET_PRECOPY_INFO`.
        if cmd != super::ioctl::vfio_io(21) {
            return Err(ENOTTY);
        }
        let (left, v2) = {
            let d = self.data.lock();
            let v2 = match (d.ended, d.precopy) {
                (false, Some(v2)) => v2,
                _ => return Err(EINVAL),
            };
            ((d.buf.len() - d.pos.min(d.buf.len())) as u64, v2)
        };
        let size = core::mem::size_of::<bindings::vfio_precopy_info>();
        let (mut reader, mut writer) =
            UserSlice::new(UserPtr::from_addr(arg), size).reader_writer();
        let argsz = reader.read::<u32>()?;
        let flags = reader.read::<u32>()?;
        if (argsz as usize) < size {
            return Err(EINVAL);
        }
        // `flags` is an output only with v2 (and then no flag is set:
        // the initial data never changes); v1 leaves it as it was.
        writer.write(&argsz)?;
        writer.write(&if v2 { 0 } else { flags })?;
        writer.write(&left)?;
        // The state is saved whole at STOP_COPY: nothing is dirtied.
        writer.write(&0u64)?;
        Ok(0)
    }
}

/// A new migration data file, holding one reference until it is handed to
/// the VFIO core (which installs it as the user's data fd) or dropped.
///
/// # Invariants
///
/// The pointer is a file we hold one reference to.
pub struct DataFile(NonNull<bindings::file>);

impl DataFile {
    /// Gives the reference to the caller.
    fn into_raw(self) -> *mut bindings::file {
        let f = self.0.as_ptr();
        core::mem::forget(self);
        f
    }
}

impl Drop for DataFile {
    fn drop(&mut self) {
        // SAFETY: we hold one reference (type invariant).
        unsafe { bindings::fput(self.0.as_ptr()) };
    }
}

/// `file_operations` holds raw pointers; the table is never written.
#[repr(transparent)]
struct Fops(bindings::file_operations);

// SAFETY: the table is immutable and its pointers are to static code and
// to this module's `struct module`.
unsafe impl Sync for Fops {}

static STREAM_FOPS: Fops = Fops(bindings::file_operations {
    owner: core::ptr::addr_of!(kernel::bindings::__this_module).cast_mut(),
    read: Some(stream_read),
    write: Some(stream_write),
    unlocked_ioctl: Some(stream_ioctl),
    compat_ioctl: bindings::compat_ptr_ioctl,
    release: Some(stream_release),
    // SAFETY: an all-zero `file_operations` is valid: every other member
    // is an optional function pointer or a flag word.
    ..unsafe { core::mem::zeroed() }
});

/// # Safety
///
/// `file` must be a stream file of `STREAM_FOPS`.
unsafe fn stream_of<'a>(file: *mut bindings::file) -> ArcBorrow<'a, MigrationStream> {
    // SAFETY: `private_data` is the `Arc` from `open_file`, released only
    // by `stream_release`, after the last call on the file.
    unsafe { <Arc<MigrationStream> as ForeignOwnable>::borrow((*file).private_data) }
}

/// # Safety
///
/// Called by the VFS on a stream file with a user buffer of `count` bytes.
unsafe extern "C" fn stream_read(
    file: *mut bindings::file,
    buf: *mut ffi::c_char,
    count: usize,
    _ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: per the function's contract.
    let stream = unsafe { stream_of(file) };
    let mut out = UserSlice::new(UserPtr::from_ptr(buf.cast()), count).writer();
    match stream.read(&mut out) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
///
/// Called by the VFS on a stream file with a user buffer of `count` bytes.
unsafe extern "C" fn stream_write(
    file: *mut bindings::file,
    buf: *const ffi::c_char,
    count: usize,
    _ppos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: per the function's contract.
    let stream = unsafe { stream_of(file) };
    let mut input = UserSlice::new(UserPtr::from_ptr(buf.cast_mut().cast()), count).reader();
    match stream.write(&mut input) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
///
/// Called by the VFS on a stream file.
unsafe extern "C" fn stream_ioctl(
    file: *mut bindings::file,
    cmd: ffi::c_uint,
    arg: ffi::c_ulong,
) -> ffi::c_long {
    // SAFETY: per the function's contract.
    let stream = unsafe { stream_of(file) };
    match stream.precopy_info(cmd, arg) {
        Ok(r) => r as ffi::c_long,
        Err(e) => e.to_errno() as ffi::c_long,
    }
}

/// # Safety
///
/// Called by the VFS once, after the last reference to a stream file.
unsafe extern "C" fn stream_release(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> ffi::c_int {
    // SAFETY: `private_data` came from `into_foreign` in `open_file` and is
    // taken back once, here.
    drop(unsafe { <Arc<MigrationStream> as ForeignOwnable>::from_foreign((*file).private_data) });
    0
}

/// The `mig_ops` table of a [`Driver`].
pub(super) struct MigVTable<T: Driver>(core::marker::PhantomData<T>);

impl<T: Driver> MigVTable<T> {
    pub(super) const OPS: bindings::vfio_migration_ops = bindings::vfio_migration_ops {
        migration_set_state: Some(Self::set_state),
        migration_get_state: Some(Self::get_state),
        migration_get_data_size: Some(Self::data_size),
    };

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device of this driver.
    unsafe extern "C" fn set_state(
        vdev: *mut bindings::vfio_device,
        new: bindings::vfio_device_mig_state,
    ) -> *mut bindings::file {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        let Some(new) = MigState::from_raw(new) else {
            return EINVAL.to_ptr();
        };
        match T::migration_set_state(dev, new) {
            Ok(Some(file)) => file.into_raw(),
            Ok(None) => core::ptr::null_mut(),
            Err(e) => e.to_ptr(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device and a valid
    /// pointer.
    unsafe extern "C" fn get_state(
        vdev: *mut bindings::vfio_device,
        state: *mut bindings::vfio_device_mig_state,
    ) -> ffi::c_int {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        match T::migration_get_state(dev) {
            Ok(s) => {
                // SAFETY: `state` is valid for writes during the call.
                unsafe { *state = s.raw() };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device and a valid
    /// pointer.
    unsafe extern "C" fn data_size(
        vdev: *mut bindings::vfio_device,
        len: *mut ffi::c_ulong,
    ) -> ffi::c_int {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        match T::migration_data_size(dev) {
            Ok(n) => {
                // SAFETY: `len` is valid for writes during the call.
                unsafe { *len = n as ffi::c_ulong };
                0
            }
            Err(e) => e.to_errno(),
        }
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The C ops table of a [`Driver`] and its trampolines.

use core::marker::PhantomData;
use core::ptr::addr_of_mut;

use kernel::ffi;
use kernel::prelude::*;
use kernel::uaccess::UserPtr;
use kernel::uaccess::UserSlice;

use super::bindings;
use super::Device;
use super::Driver;
use super::Ioctl;
use super::RegionCaps;
use super::Vma;

/// The C ops table for a [`Driver`] and its trampolines.
pub(super) struct DeviceVTable<T: Driver>(PhantomData<T>);

impl<T: Driver> DeviceVTable<T> {
    pub(super) const OPS: bindings::vfio_device_ops = bindings::vfio_device_ops {
        name: kernel::str::as_char_ptr_in_const_context(T::NAME).cast_mut(),
        release: Some(Self::release),
        bind_iommufd: Some(bindings::vfio_iommufd_emulated_bind),
        unbind_iommufd: Some(bindings::vfio_iommufd_emulated_unbind),
        attach_ioas: Some(bindings::vfio_iommufd_emulated_attach_ioas),
        detach_ioas: Some(bindings::vfio_iommufd_emulated_detach_ioas),
        open_device: Some(Self::open_device),
        close_device: Some(Self::close_device),
        read: if T::HAS_READ { Some(Self::read) } else { None },
        write: if T::HAS_WRITE {
            Some(Self::write)
        } else {
            None
        },
        ioctl: if T::HAS_IOCTL {
            Some(Self::ioctl)
        } else {
            None
        },
        get_region_info_caps: if T::HAS_REGION_INFO {
            Some(Self::get_region_info_caps)
        } else {
            None
        },
        request: if T::HAS_REQUEST {
            Some(Self::request)
        } else {
            None
        },
        mmap: if T::HAS_MMAP { Some(Self::mmap) } else { None },
        dma_unmap: if T::HAS_DMA_UNMAP {
            Some(Self::dma_unmap)
        } else {
            None
        },
        // SAFETY: an all-zero `vfio_device_ops` is valid: every other member
        // is an optional function pointer.
        ..unsafe { core::mem::zeroed() }
    };

    /// [`Self::OPS`] without `release`, used until the data is initialised.
    pub(super) const ALLOC_OPS: bindings::vfio_device_ops = bindings::vfio_device_ops {
        release: None,
        ..Self::OPS
    };

    /// # Safety
    ///
    /// Called by the VFIO core once, after the last reference is gone.
    unsafe extern "C" fn release(vdev: *mut bindings::vfio_device) {
        let this = vdev.cast::<Device<T>>();
        // SAFETY: `OPS` (with this callback) is only installed once `data`
        // is initialised, and nothing uses the device any more; the core
        // frees the memory after we return.
        unsafe { core::ptr::drop_in_place(addr_of_mut!((*this).data)) };
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device.
    unsafe extern "C" fn open_device(vdev: *mut bindings::vfio_device) -> ffi::c_int {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        match T::open(dev) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device.
    unsafe extern "C" fn close_device(vdev: *mut bindings::vfio_device) {
        // SAFETY: the core passes a live device that uses `OPS`.
        T::close(unsafe { Device::<T>::from_raw(vdev) });
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device, a user buffer of
    /// `count` bytes and a valid position pointer.
    unsafe extern "C" fn read(
        vdev: *mut bindings::vfio_device,
        buf: *mut ffi::c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        let mut out = UserSlice::new(UserPtr::from_ptr(buf.cast()), count).writer();
        // SAFETY: `ppos` is valid for reads and writes during the call.
        let pos = unsafe { &mut *ppos };
        Self::rw_result(T::read(dev, &mut out, *pos as u64), pos)
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device, a user buffer of
    /// `count` bytes and a valid position pointer.
    unsafe extern "C" fn write(
        vdev: *mut bindings::vfio_device,
        buf: *const ffi::c_char,
        count: usize,
        ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        let mut input = UserSlice::new(UserPtr::from_ptr(buf.cast_mut().cast()), count).reader();
        // SAFETY: `ppos` is valid for reads and writes during the call.
        let pos = unsafe { &mut *ppos };
        Self::rw_result(T::write(dev, &mut input, *pos as u64), pos)
    }

    /// Turns a read/write result into the C return value, advancing `pos`.
    fn rw_result(result: Result<usize>, pos: &mut bindings::loff_t) -> isize {
        match result {
            Ok(n) => {
                // `n` is at most the user's `count`, which fits `isize`.
                *pos = pos.saturating_add(n as bindings::loff_t);
                n as isize
            }
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device.
    unsafe extern "C" fn ioctl(
        vdev: *mut bindings::vfio_device,
        cmd: ffi::c_uint,
        arg: ffi::c_ulong,
    ) -> ffi::c_long {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        match T::ioctl(dev, Ioctl { cmd, arg }) {
            Ok(ret) => ret as ffi::c_long,
            Err(e) => e.to_errno() as ffi::c_long,
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device, the user's region
    /// info (index filled in) and an empty capability chain.
    unsafe extern "C" fn get_region_info_caps(
        vdev: *mut bindings::vfio_device,
        info: *mut bindings::vfio_region_info,
        caps: *mut bindings::vfio_info_cap,
    ) -> ffi::c_int {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        // SAFETY: `info` is the core's kernel copy, valid during the call.
        let info = unsafe { &mut *info };
        let mut caps = RegionCaps {
            raw: caps,
            _p: PhantomData,
        };
        match T::region_info(dev, info.index, &mut caps) {
            Ok(r) => {
                info.flags = r.flags;
                info.size = r.size;
                info.offset = r.offset;
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device and a VMA being
    /// set up by `mmap(2)`.
    unsafe extern "C" fn mmap(
        vdev: *mut bindings::vfio_device,
        vma: *mut bindings::vm_area_struct,
    ) -> ffi::c_int {
        // SAFETY: the core passes a live device that uses `OPS`.
        let dev = unsafe { Device::<T>::from_raw(vdev) };
        // SAFETY: `vma` is a VMA under construction by `mmap(2)`, with the
        // mmap lock held, valid for the call.
        let vma = unsafe { Vma::from_raw(vma) };
        match T::mmap(dev, vma) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFIO core with a registered device.
    unsafe extern "C" fn request(vdev: *mut bindings::vfio_device, count: ffi::c_uint) {
        // SAFETY: the core passes a live device that uses `OPS`.
        T::request(unsafe { Device::<T>::from_raw(vdev) }, count);
    }

    /// # Safety
    ///
    /// Called by the VFIO core (iommufd) with a registered device.
    unsafe extern "C" fn dma_unmap(vdev: *mut bindings::vfio_device, iova: u64, length: u64) {
        // SAFETY: the core passes a live device that uses `OPS`.
        T::dma_unmap(unsafe { Device::<T>::from_raw(vdev) }, iova, length);
    }
}

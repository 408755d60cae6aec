// SPDX-License-Identifier: GPL-2.0

//! VFIO: the user-space device API the VDCM's virtual devices are exposed
//! through.
//!
//! C header: [`include/uapi/linux/vfio.h`](srctree/include/uapi/linux/vfio.h)

use super::bindings;

/// The VFIO API version the running kernel's headers define, as returned by
/// `VFIO_GET_API_VERSION`.
pub const API_VERSION: u32 = bindings::VFIO_API_VERSION;

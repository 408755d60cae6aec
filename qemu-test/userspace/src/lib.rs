// SPDX-License-Identifier: GPL-2.0

//! Shared pieces of the VDCM's user-space tests: a TAP reporter, sysfs
//! helpers and the VFIO / iommufd ioctls the tests issue.
//!
//! The tests run inside the test VM. Each binary prints one line per test
//! point, `ok - NAME` or `not ok - NAME`, with `# ` diagnostics; the harness
//! numbers the points of all binaries into one TAP stream.

pub mod adv;
pub mod dma;
pub mod mdev;
pub mod sysfs;
pub mod tap;
pub mod vfio;

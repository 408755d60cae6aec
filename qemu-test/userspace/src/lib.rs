// SPDX-License-Identifier: GPL-2.0

//! Shared pieces of the VDCM's user-space tests: a TAP reporter, sysfs
//! helpers, the VFIO / iommufd ioctls the tests issue, and the simulated
//! PF's register ABI ([`abi`]) and descriptor format ([`desc`]), included
//! from `samples/vdcm_sim/` so that they are defined once.
//!
//! The tests run inside the test VM. Each binary prints one line per test
//! point, `ok - NAME` or `not ok - NAME`, with `# ` diagnostics; the harness
//! numbers the points of all binaries into one TAP stream.

#[path = "../../../samples/vdcm_sim/abi.rs"]
pub mod abi;
pub mod adv;
#[path = "../../../samples/vdcm_sim/desc.rs"]
pub mod desc;
pub mod dma;
pub mod load;
pub mod mdev;
pub mod sysfs;
pub mod tap;
pub mod vfio;

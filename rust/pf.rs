// SPDX-License-Identifier: GPL-2.0

//! The PF backend contract between the VDCM and SIOV-capable PF drivers.
//!
//! C header: `include/vdcm_pf.h`. The VDCM exports the contract's entry
//! points; a PF driver module calls them through the safe wrappers here.

use super::bindings;

/// The contract version this module was built against.
pub const CONTRACT_VERSION: u32 = bindings::VDCM_PF_CONTRACT_VERSION;

/// Returns the contract version of the loaded VDCM module.
///
/// A PF driver calls this before registering and refuses to register when
/// it differs from [`CONTRACT_VERSION`]. The call also makes the PF driver
/// module depend on the VDCM module, so the VDCM cannot be unloaded under it.
pub fn loaded_contract_version() -> u32 {
    // SAFETY: `vdcm_pf_contract_version` takes no arguments, touches no
    // shared state and may be called from any context; modpost resolved the
    // symbol against the VDCM module, which stays loaded while we are.
    unsafe { bindings::vdcm_pf_contract_version() }
}

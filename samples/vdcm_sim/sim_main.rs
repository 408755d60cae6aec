// SPDX-License-Identifier: GPL-2.0

//! A simulated SIOV-capable PF.
//!
//! No SIOV hardware exists on the machines this project is tested on, so
//! this module plays the PF: it registers with the VDCM through the same C
//! contract (`include/vdcm_pf.h`) a real PF driver would use.

use kernel::prelude::*;

#[path = "../../rust/lib.rs"]
pub mod vdcm_kernel;

use vdcm_kernel::pf;

module! {
    type: SimPf,
    name: "vdcm_sim",
    authors: ["The VDCM developers"],
    description: "Simulated SIOV-capable PF for the VDCM",
    license: "GPL",
}

/// The loaded simulated PF.
struct SimPf;

impl kernel::Module for SimPf {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let loaded = pf::loaded_contract_version();
        if loaded != pf::CONTRACT_VERSION {
            pr_err!(
                "VDCM implements PF contract v{}, this PF was built for v{}: rebuild both from one tree\n",
                loaded,
                pf::CONTRACT_VERSION
            );
            return Err(EINVAL);
        }
        pr_info!("loaded: PF contract v{}\n", loaded);
        Ok(SimPf)
    }
}

impl Drop for SimPf {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}

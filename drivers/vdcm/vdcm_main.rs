// SPDX-License-Identifier: GPL-2.0

//! Virtual Device Composition Module (VDCM) for Scalable I/O Virtualization.
//!
//! The VDCM composes Assignable Device Interfaces (ADIs) out of a SIOV PF's
//! queue pairs and exposes each composition to user space as a PCI device
//! through vfio-mdev and iommufd. This file only wires the pieces together:
//! PFs and their mdev types are in `host`, the virtual device of an ADI in
//! `adi`, the BAR0 register file in `regs`; the safe abstractions over the
//! C APIs are in the project's `rust/` tree.

use kernel::prelude::*;
use kernel::sync::Arc;

#[path = "../../rust/lib.rs"]
pub mod vdcm_kernel;

pub mod adi;
pub mod host;
pub mod regs;

use vdcm_kernel::mdev;
use vdcm_kernel::pf;
use vdcm_kernel::vfio;

module! {
    type: VdcmModule,
    name: "vdcm",
    authors: ["The VDCM developers"],
    description: "SIOV Virtual Device Composition Module (vfio-mdev + iommufd)",
    license: "GPL",
}

/// Entry point of the PF backend contract: the version this VDCM implements.
///
/// Exported to PF driver modules by `vdcm_exports.c`; declared in
/// `include/vdcm_pf.h`.
#[no_mangle]
pub extern "C" fn vdcm_pf_contract_version() -> u32 {
    pf::CONTRACT_VERSION
}

/// The loaded VDCM: PF drivers can register while it lives.
struct VdcmModule {
    _host: pf::HostRegistration<host::Host>,
}

impl kernel::Module for VdcmModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let driver = Arc::pin_init(mdev::DriverRegistration::new(module)?, GFP_KERNEL)?;
        let host = pf::HostRegistration::new(Arc::new(host::Host::new(driver), GFP_KERNEL)?)?;
        pr_info!(
            "loaded: PF contract v{}, VFIO API {}, BAR0 {} bytes ({} queue slots, {} MSI-X vectors)\n",
            pf::CONTRACT_VERSION,
            vfio::API_VERSION,
            regs::BAR0_SIZE,
            regs::MAX_QUEUES,
            regs::MAX_VECTORS,
        );
        Ok(VdcmModule { _host: host })
    }
}

impl Drop for VdcmModule {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}

// SPDX-License-Identifier: GPL-2.0

//! Virtual Device Composition Module (VDCM) for Scalable I/O Virtualization.
//!
//! The VDCM composes Assignable Device Interfaces (ADIs) out of a SIOV PF's
//! resources and exposes each one to user space as a PCI device through
//! vfio-mdev and iommufd. The core holds the mechanisms; the PF driver
//! supplies the device personality through the PF contract
//! (`include/vdcm_pf.h`). This file only wires the pieces together:
//!
//! - `registry`: a PF registers, its description is checked;
//! - `layout`: the checked ADI types and where a BAR access goes;
//! - `host`: the mdev driver, the PFs' pools and the ADIs' counters;
//! - `vdev`: the virtual device of one ADI (VFIO ops, reset, revocation);
//! - `irqs`: MSI-X vectors, notifiers, the MSI-X table and PBA;
//! - `tenant`: what the PF reaches the tenant through (DMA, IRQs, pins);
//! - `config`: the emulated PCI config space.
//!
//! The safe abstractions over the C APIs are in the project's `rust/` tree.

use kernel::prelude::*;
use kernel::sync::Arc;

#[path = "../../rust/vdcm_core.rs"]
pub mod vdcm_kernel;

pub mod config;
pub mod dirty;
pub mod host;
pub mod irqs;
pub mod layout;
pub mod migration;
pub mod qos;
pub mod registry;
pub mod tenant;
pub mod vdev;

use vdcm_kernel::mdev;
use vdcm_kernel::pf_host;
use vdcm_kernel::vfio;

module! {
    type: VdcmModule,
    name: "vdcm",
    authors: ["The VDCM developers"],
    description: "SIOV Virtual Device Composition Module (vfio-mdev + iommufd)",
    license: "GPL",
    // iova_bitmap_set(), for DMA dirty logging.
    imports_ns: ["IOMMUFD"],
}

/// Entry point of the PF contract: the version this VDCM implements.
///
/// Exported to PF driver modules by `vdcm_exports.c`; declared in
/// `include/vdcm_pf.h`.
#[no_mangle]
pub extern "C" fn vdcm_pf_contract_version() -> u32 {
    pf_host::CONTRACT_VERSION
}

/// The loaded VDCM: PF drivers can register while it lives.
pub struct VdcmModule {
    _registry: pf_host::HostRegistration<registry::Registry>,
}

impl kernel::Module for VdcmModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let driver = Arc::pin_init(mdev::DriverRegistration::new(module)?, GFP_KERNEL)?;
        let registry =
            pf_host::HostRegistration::new(Arc::new(registry::Registry::new(driver), GFP_KERNEL)?)?;
        pr_info!(
            "loaded: PF contract v{}, VFIO API {}\n",
            pf_host::CONTRACT_VERSION,
            vfio::API_VERSION,
        );
        Ok(VdcmModule {
            _registry: registry,
        })
    }
}

impl Drop for VdcmModule {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}

// SPDX-License-Identifier: GPL-2.0

//! What happens when a PF registers with the VDCM: its description is
//! checked once, here, and either refused with a line in the log that says
//! why, or turned into an mdev parent offering its ADI types.

use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::Arc;

use crate::config;
use crate::host::PfLink;
use crate::host::Pool;
use crate::host::Vdcm;
use crate::layout::AdiType;
use crate::qos::Admission;
use crate::qos::PfQosFiles;
use crate::vdcm_kernel::mdev;
use crate::vdcm_kernel::pasid::PasidSpace;
use crate::vdcm_kernel::pf_host;
use crate::vdcm_kernel::pf_host::Pf;
use crate::vdcm_kernel::pf_host::PfDescription;
use crate::vdcm_kernel::sysfs::DeviceGroup;

/// PCI Express extended capabilities start here.
const EXT_CAP_START: u32 = 0x100;

/// Whether the PF's config space has the SIOV DVSEC (vendor 0x8086,
/// DVSEC ID 5) among its extended capabilities.
fn has_siov_capability(pf: &Pf) -> bool {
    let mut at = EXT_CAP_START;
    // Extended capabilities are at least 4 bytes apart: a longer chain
    // than fits in the space is a loop.
    for _ in 0..(config::CONFIG_SPACE_SIZE as u32 - EXT_CAP_START) / 4 {
        let Ok(hdr) = pf.config_read(at, 4) else {
            return false;
        };
        if hdr == 0 || hdr == u32::MAX {
            return false;
        }
        if hdr & 0xffff == u32::from(config::EXT_CAP_ID_DVSEC) {
            let vendor = pf.config_read(at + config::DVSEC_HEADER1 as u32, 2);
            let id = pf.config_read(at + config::DVSEC_HEADER2 as u32, 2);
            if vendor == Ok(u32::from(config::INTEL_VENDOR_ID))
                && id == Ok(u32::from(config::SIOV_DVSEC_ID))
            {
                return true;
            }
        }
        let next = hdr >> 20;
        if next < EXT_CAP_START {
            return false;
        }
        at = next;
    }
    false
}

/// The VDCM as the host PFs register with.
pub struct Registry {
    driver: Arc<mdev::DriverRegistration<Vdcm>>,
}

/// What the VDCM keeps for one registered PF.
pub struct PfState {
    // Dropped first: removes the PF's ADIs (giving their guarantees back).
    _parent: Pin<KBox<mdev::Parent<Vdcm>>>,
    _qos_files: DeviceGroup<PfQosFiles>,
}

impl Registry {
    /// A registry whose ADIs are driven by `driver`.
    pub fn new(driver: Arc<mdev::DriverRegistration<Vdcm>>) -> Self {
        Registry { driver }
    }
}

impl pf_host::Host for Registry {
    type PfState = PfState;

    fn pf_added(&self, pf: Arc<Pf>, desc: PfDescription) -> Result<Self::PfState> {
        let dev: ARef<kernel::device::Device> = pf.device().into();
        let refuse = |why: &str| {
            dev_err!(dev, "PF description refused: {}\n", why);
            EINVAL
        };
        if !(1..=20).contains(&desc.pasid_bits) {
            return Err(refuse("PASIDs must be 1 to 20 bits wide"));
        }
        if desc.pools.is_empty() || desc.pools.iter().any(|p| p.size == 0) {
            return Err(refuse("the PF offers no pool, or an empty one"));
        }
        let types = AdiType::check_all(&desc).map_err(refuse)?;
        let mut pools = KVec::new();
        for p in desc.pools.into_iter() {
            pools.push(Pool::new(p.name, p.size), GFP_KERNEL)?;
        }
        if !has_siov_capability(&pf) {
            dev_err!(
                dev,
                "PF has no SIOV capability (DVSEC 8086:5) in its config space: not a SIOV PF\n"
            );
            return Err(EINVAL);
        }
        let (stats, names) = PfLink::stats_for(&types, &desc.counters)?;
        for c in desc.counters.iter() {
            if names.iter().any(|n| n.to_bytes() == c.to_bytes()) {
                return Err(refuse("a PF counter has the name of a core counter"));
            }
        }
        let pasid_bits = desc.pasid_bits;
        let pasids = PasidSpace::new(&dev, pasid_bits)?;
        let link = Arc::new(
            PfLink {
                pf,
                types,
                pools,
                pasids,
                stats,
                pf_counters: desc.counters,
                admission: Admission::new(desc.qos_capacity),
            },
            GFP_KERNEL,
        )?;
        let mut infos = KVec::new();
        for t in link.types.iter() {
            infos.push(
                mdev::TypeInfo {
                    sysfs_name: &t.name,
                    pretty_name: &t.description,
                },
                GFP_KERNEL,
            )?;
        }
        let mut all_names: KVec<&CStr> = KVec::new();
        for n in names.iter() {
            all_names.push(n, GFP_KERNEL)?;
        }
        for c in link.pf_counters.iter() {
            all_names.push(c, GFP_KERNEL)?;
        }
        let qos_files = DeviceGroup::new(&dev, PfQosFiles { link: link.clone() })?;
        let parent =
            mdev::Parent::new(&dev, self.driver.clone(), &infos, &all_names, link.clone())?;
        dev_info!(
            dev,
            "SIOV PF registered: {} ADI type(s), {}-bit PASIDs, {} counter(s)\n",
            link.types.len(),
            pasid_bits,
            link.pf_counters.len()
        );
        Ok(PfState {
            _parent: parent,
            _qos_files: qos_files,
        })
    }
}

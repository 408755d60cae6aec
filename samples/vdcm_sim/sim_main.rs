// SPDX-License-Identifier: GPL-2.0

//! A simulated SIOV-capable PF.
//!
//! No SIOV hardware exists on the machines this project is tested on, so
//! this module plays the PF: it creates `num_pfs` PF devices
//! (`/sys/class/vdcm_sim/vdcm_simN`) and registers each with the VDCM
//! through the same C contract (`include/vdcm_pf.h`) a real PF driver
//! would use, with its own device personality (`adi`, `regs`, `desc`).

use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;

#[path = "../../rust/pf_driver.rs"]
pub mod vdcm_kernel;

pub mod abi;
pub mod adi;
pub mod desc;
mod desc_tests;
pub mod direct;
pub mod engine;
pub mod regs;
pub mod sched;
pub mod sim_pf;

use sim_pf::Queues;
use sim_pf::SimPf;
use vdcm_kernel::class;
use vdcm_kernel::compat;
use vdcm_kernel::pf;

module! {
    type: SimModule,
    name: "vdcm_sim",
    authors: ["The VDCM developers"],
    description: "Simulated SIOV-capable PF for the VDCM",
    license: "GPL",
    params: {
        num_pfs: u32 {
            default: 1,
            description: "Number of simulated PFs (1..=16)",
        },
        num_qps: u32 {
            default: 64,
            description: "Queue pairs per simulated PF (1..=4096)",
        },
        siov_cap: u32 {
            default: 1,
            description: "1: the PFs' config space shows the SIOV capability; 0: it does not, and the VDCM refuses them",
        },
        direct_bench: u32 {
            default: 0,
            description: "At load, run at least this many descriptors through PF 0's engine from an in-kernel client (the ADI path's baseline in `make bench`) and log the rate; 0: don't",
        },
        num_portals: u32 {
            default: 1024,
            description: "Portals on each PF's shared queue pair (0..=16384; 0: no shared mode)",
        },
        qos_capacity: u32 {
            default: 100000,
            description: "Descriptors per second each PF can guarantee to its ADIs in all (the bound of their qos/guaranteed_rate); 0: the PFs do not schedule ADIs and refuse QoS settings",
        },
    },
}

/// One simulated PF: its device and its registration with the VDCM.
struct SimPfDevice {
    // Dropped first: the VDCM removes the PF's ADIs before the device goes.
    _registration: Pin<KBox<pf::Registration<SimPf>>>,
    _dev: class::ClassDevice,
}

/// The loaded module: its PFs.
struct SimModule {
    _pfs: KVec<SimPfDevice>,
}

impl kernel::Module for SimModule {
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
        let pfs = compat::param(&module_parameters::num_pfs);
        let qps = compat::param(&module_parameters::num_qps);
        let portals = compat::param(&module_parameters::num_portals);
        if !(1..=16).contains(&pfs) || !(1..=4096).contains(&qps) || portals > 16384 {
            pr_err!(
                "num_pfs={} num_qps={} num_portals={}: want 1..=16 PFs of 1..=4096 queue pairs and 0..=16384 portals\n",
                pfs,
                qps,
                portals
            );
            return Err(EINVAL);
        }
        let pools = [
            pf::Pool {
                name: c"queue pairs",
                size: qps,
            },
            pf::Pool {
                name: c"portals",
                size: portals,
            },
        ];
        // Without portals, no shared type (and no empty pool).
        let shared = usize::from(portals > 0);
        let info = pf::PfInfo {
            pasid_bits: 20,
            pools: &pools[..1 + shared],
            types: &adi::TYPES[..2 + shared],
            counters: adi::COUNTERS,
            qos_capacity: compat::param(&module_parameters::qos_capacity).into(),
        };
        let siov_cap = compat::param(&module_parameters::siov_cap) != 0;
        let class = Arc::new(class::Class::new(c"vdcm_sim")?, GFP_KERNEL)?;
        let mut list = KVec::with_capacity(pfs as usize, GFP_KERNEL)?;
        for i in 0..pfs {
            let name = CString::try_from_fmt(fmt!("vdcm_sim{}", i))?;
            let queues = Queues::new(qps, portals)?;
            let dev = class::ClassDevice::with_counters(class.clone(), &name, queues.clone())?;
            let registration = KBox::pin_init(
                pf::Registration::new(dev.as_ref(), &info, SimPf::new(queues.clone(), siov_cap)?)?,
                GFP_KERNEL,
            )?;
            let direct = compat::param(&module_parameters::direct_bench);
            if i == 0 && direct > 0 {
                let r = direct::run(registration.driver(), &queues, direct.into(), 50)?;
                pr_info!(
                    "direct client: {} descriptors in {} ns, {} bytes of MEMMOVE in {} ns\n",
                    r.descs,
                    r.descs_ns,
                    r.bytes,
                    r.bytes_ns
                );
            }
            list.push(
                SimPfDevice {
                    _registration: registration,
                    _dev: dev,
                },
                GFP_KERNEL,
            )?;
        }
        pr_info!(
            "loaded: {} PF(s) of {} queue pairs and {} portals, PF contract v{}\n",
            pfs,
            qps,
            portals,
            loaded
        );
        Ok(SimModule { _pfs: list })
    }
}

impl Drop for SimModule {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}

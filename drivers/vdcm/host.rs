// SPDX-License-Identifier: GPL-2.0

//! The VDCM as host of SIOV PFs: what happens when a PF registers, the mdev
//! types it gets, and the accounting of its queue pairs.
//!
//! Each registered PF becomes an mdev parent offering one type per ADI
//! shape (see [`TYPES`]). Creating an ADI reserves its queue pairs from the
//! PF's [`QpPool`]; the reservation lives as long as the ADI's VFIO device
//! and returns the queue pairs when that device is released, so
//! `available_instances` is exact at every moment.

use core::fmt;

use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;

use crate::adi::Adi;
use crate::vdcm_kernel::mdev;
use crate::vdcm_kernel::pasid::PasidSpace;
use crate::vdcm_kernel::pf;
use crate::vdcm_kernel::vfio;

/// An ADI shape offered as an mdev type.
struct AdiType {
    info: mdev::TypeInfo,
    /// Dedicated queue pairs an ADI of this type gets; 0 for one portal on
    /// the PF's shared queue pair.
    qps: u32,
}

impl AdiType {
    fn shared(&self) -> bool {
        self.qps == 0
    }
}

/// The mdev types a PF offers, in this order; the last (shared) only if
/// the PF has shared mode.
const TYPES: [AdiType; 3] = [
    AdiType {
        info: mdev::TypeInfo {
            sysfs_name: c"1q",
            pretty_name: c"VDCM ADI, 1 dedicated queue pair",
        },
        qps: 1,
    },
    AdiType {
        info: mdev::TypeInfo {
            sysfs_name: c"4q",
            pretty_name: c"VDCM ADI, 4 dedicated queue pairs",
        },
        qps: 4,
    },
    AdiType {
        info: mdev::TypeInfo {
            sysfs_name: c"shared",
            pretty_name: c"VDCM ADI, 1 portal on a shared queue pair",
        },
        qps: 0,
    },
];

/// The queue pairs of one PF not given to any ADI yet.
pub struct QpPool {
    free: Atomic<u32>,
}

impl QpPool {
    /// Takes `n` queue pairs, or fails with `ENOSPC` if fewer are free.
    fn reserve(self: &Arc<Self>, n: u32) -> Result<QpReservation> {
        let mut free = self.free.load(Relaxed);
        loop {
            let left = free.checked_sub(n).ok_or(ENOSPC)?;
            match self.free.cmpxchg(free, left, Relaxed) {
                Ok(_) => {
                    return Ok(QpReservation {
                        pool: self.clone(),
                        n,
                    })
                }
                Err(now) => free = now,
            }
        }
    }

    fn free(&self) -> u32 {
        self.free.load(Relaxed)
    }
}

/// Queue pairs held by one ADI; given back to the pool on drop.
pub struct QpReservation {
    pool: Arc<QpPool>,
    n: u32,
}

impl QpReservation {
    /// How many queue pairs are held.
    pub fn count(&self) -> u32 {
        self.n
    }
}

impl Drop for QpReservation {
    fn drop(&mut self) {
        self.pool.free.fetch_add(self.n, Relaxed);
    }
}

/// A registered PF, shared by the PF's state and its ADIs.
pub struct PfLink {
    /// The PF, reached through the contract.
    pub pf: pf::Pf,
    /// What it offers.
    pub caps: pf::Caps,
    /// Where its ADIs' PASIDs come from.
    pub pasids: Arc<PasidSpace>,
}

/// What the VDCM keeps for one registered PF (the mdev parent's data).
pub struct PfData {
    link: Arc<PfLink>,
    qps: Arc<QpPool>,
    portals: Arc<QpPool>,
}

/// The mdev driver of the VDCM's ADIs.
pub struct Vdcm;

#[vtable]
impl mdev::Driver for Vdcm {
    type ParentData = PfData;
    type DeviceData = KBox<vfio::Registration<Adi>>;

    const NAME: &'static CStr = c"vdcm";
    const DEVICE_API: &'static CStr = c"vfio-pci";

    fn probe(mdev: &mdev::Device, parent: &PfData, type_index: usize) -> Result<Self::DeviceData> {
        let ty = TYPES.get(type_index).ok_or(EINVAL)?;
        if ty.shared() {
            let portal = parent.portals.reserve(1).inspect_err(|_| {
                dev_err!(
                    parent.link.pf.device(),
                    "cannot create a shared ADI: all {} portals in use\n",
                    parent.link.caps.num_portals
                );
            })?;
            let adi = Adi::new(parent.link.clone(), portal, true)?;
            let reg =
                vfio::Registration::new(vfio::UnregisteredDevice::new(mdev.as_device(), adi)?)?;
            dev_info!(
                mdev.as_device(),
                "ADI created on a shared queue pair portal\n"
            );
            return Ok(KBox::new(reg, GFP_KERNEL)?);
        }
        let qps = parent.qps.reserve(ty.qps).inspect_err(|_| {
            dev_err!(
                parent.link.pf.device(),
                "cannot create a {}-QP ADI: only {} of {} queue pairs free\n",
                ty.qps,
                parent.qps.free(),
                parent.link.caps.num_qps
            );
        })?;
        let adi = Adi::new(parent.link.clone(), qps, false)?;
        let dev = vfio::UnregisteredDevice::new(mdev.as_device(), adi)?;
        let reg = vfio::Registration::new(dev)?;
        dev_info!(
            mdev.as_device(),
            "ADI created with {} queue pair(s)\n",
            ty.qps
        );
        Ok(KBox::new(reg, GFP_KERNEL)?)
    }

    fn remove(_mdev: &mdev::Device, _parent: &PfData, data: Self::DeviceData) {
        let dev = data.device().clone();
        // Unregistering waits until the user has closed the device.
        drop(data);
        // The PF is still registered here: its ADIs are removed before it
        // goes. The queue pairs go back to it now, not when the last
        // reference to the device is dropped.
        dev.release_queues();
    }

    const STATS: &'static [&'static CStr] = &[
        c"descriptors",
        c"bytes",
        c"faults",
        c"invalid",
        c"interrupts",
        c"traps_bar0",
        c"traps_config",
        c"traps_bar2",
        c"resets",
        c"pasid",
    ];

    fn stat(data: &vfio::Registration<Adi>, index: usize) -> u64 {
        let adi: &Adi = data.device();
        let qp = || adi.queue_stats();
        match index {
            0 => qp().descriptors,
            1 => qp().bytes,
            2 => qp().faults,
            3 => qp().invalid,
            4 => adi.counters().interrupts.load(Relaxed),
            5 => adi.traps().bar0.load(Relaxed),
            6 => adi.traps().config.load(Relaxed),
            7 => adi.traps().bar2.load(Relaxed),
            8 => adi.counters().resets.load(Relaxed),
            9 => adi.pasid().into(),
            _ => 0,
        }
    }

    fn available_instances(parent: &PfData, type_index: usize) -> u32 {
        let pasids = parent.link.pasids.available();
        let adis = match TYPES.get(type_index) {
            Some(ty) if ty.shared() => parent.portals.free(),
            Some(ty) => parent.qps.free() / ty.qps,
            None => 0,
        };
        adis.min(pasids)
    }

    fn description(parent: &PfData, type_index: usize, out: &mut dyn fmt::Write) -> fmt::Result {
        let ty = TYPES.get(type_index).ok_or(fmt::Error)?;
        if ty.shared() {
            return write!(
                out,
                "1 portal on the shared queue pair of this PF ({} portals, {} free)",
                parent.link.caps.num_portals,
                parent.portals.free()
            );
        }
        write!(
            out,
            "{} dedicated queue pair(s) of {} on this PF, {} free",
            ty.qps,
            parent.link.caps.num_qps,
            parent.qps.free()
        )
    }
}

/// The VDCM as the host PFs register with.
pub struct Host {
    driver: Arc<mdev::DriverRegistration<Vdcm>>,
}

impl Host {
    /// A host whose ADIs are driven by `driver`.
    pub fn new(driver: Arc<mdev::DriverRegistration<Vdcm>>) -> Self {
        Host { driver }
    }
}

impl pf::Host for Host {
    type PfState = Pin<KBox<mdev::Parent<Vdcm>>>;

    fn pf_added(&self, pf: pf::Pf) -> Result<Self::PfState> {
        let caps = pf.caps();
        let dev: ARef<kernel::device::Device> = pf.device().into();
        if caps.num_qps == 0
            || !(1..=20).contains(&caps.pasid_bits)
            || caps.doorbell_size == 0
            || caps.doorbell_size as usize % kernel::page::PAGE_SIZE != 0
            || caps.modes & pf::MODE_DEDICATED == 0
        {
            dev_err!(
                dev,
                "PF capabilities unusable by the VDCM: {:?} (need QPs, 1..20 PASID bits, page-sized doorbells, dedicated mode)\n",
                caps
            );
            return Err(EINVAL);
        }
        if !pf.has_siov_capability() {
            dev_err!(
                dev,
                "PF has no SIOV capability (DVSEC 8086:5) in its config space: not a SIOV PF\n"
            );
            return Err(EINVAL);
        }
        let shared = caps.modes & pf::MODE_SHARED != 0 && caps.num_portals > 0;
        let all = TYPES.map(|t| t.info);
        let types = if shared { &all[..] } else { &all[..2] };
        let data = PfData {
            link: Arc::new(
                PfLink {
                    pasids: PasidSpace::new(&dev, caps.pasid_bits)?,
                    pf,
                    caps,
                },
                GFP_KERNEL,
            )?,
            qps: Arc::new(
                QpPool {
                    free: Atomic::new(caps.num_qps),
                },
                GFP_KERNEL,
            )?,
            portals: Arc::new(
                QpPool {
                    free: Atomic::new(if shared { caps.num_portals } else { 0 }),
                },
                GFP_KERNEL,
            )?,
        };
        let parent = mdev::Parent::new(&dev, self.driver.clone(), types, data)?;
        dev_info!(
            dev,
            "SIOV PF registered: {} queue pairs, {} portals, {}-bit PASIDs, {}-byte doorbells, {} interrupts\n",
            caps.num_qps,
            caps.num_portals,
            caps.pasid_bits,
            caps.doorbell_size,
            caps.num_irqs
        );
        Ok(parent)
    }
}

// SPDX-License-Identifier: GPL-2.0

//! The mdev driver of the VDCM's ADIs, and the accounting of each PF's
//! resources.
//!
//! Each registered PF is an mdev parent offering one type per ADI type it
//! described. Creating an ADI reserves the type's units from the PF's
//! [`Pool`]; the reservation lives as long as the ADI's VFIO device and
//! returns the units when that device is released, so
//! `available_instances` is exact at every moment.

use core::fmt;

use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;

use crate::layout::AdiType;
use crate::qos::AdiQosFiles;
use crate::qos::Admission;
use crate::vdcm_kernel::mdev;
use crate::vdcm_kernel::pasid::PasidSpace;
use crate::vdcm_kernel::pf_host::Pf;
use crate::vdcm_kernel::sysfs::DeviceGroup;
use crate::vdcm_kernel::vfio;
use crate::vdev::Adi;

/// The units of one resource of a PF not given to any ADI yet.
pub struct Pool {
    /// What one unit is.
    pub name: CString,
    /// Units the PF offers.
    pub size: u32,
    free: Atomic<u32>,
}

impl Pool {
    /// A pool of `size` free units of `name`.
    pub fn new(name: CString, size: u32) -> Self {
        Pool {
            name,
            size,
            free: Atomic::new(size),
        }
    }

    /// Units free now.
    pub fn free(&self) -> u32 {
        self.free.load(Relaxed)
    }
}

/// Units of one pool held by one ADI; given back on drop.
pub struct Reservation {
    link: Arc<PfLink>,
    pool: usize,
    units: u32,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(p) = self.link.pools.get(self.pool) {
            p.free.fetch_add(self.units, Relaxed);
        }
    }
}

/// A counter in an ADI's `stats/` directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Interrupts delivered through an eventfd.
    Interrupts,
    /// Function resets.
    Resets,
    /// The ADI's PASID.
    Pasid,
    /// Config-space accesses.
    TrapsConfig,
    /// Accesses to BAR `n` through the device file.
    TrapsBar(usize),
    /// Bytes the VDCM's own objects of the ADI hold (see
    /// [`AdiData::own_bytes`]).
    OwnBytes,
    /// The PF's counter `n`.
    Pf(usize),
}

/// Names of the core's counters, in [`Stat`] order; BAR traps follow.
const CORE_STATS: [(&CStr, Stat); 5] = [
    (c"interrupts", Stat::Interrupts),
    (c"resets", Stat::Resets),
    (c"pasid", Stat::Pasid),
    (c"traps_config", Stat::TrapsConfig),
    (c"vdcm_bytes", Stat::OwnBytes),
];

const TRAPS_BAR: [&CStr; 6] = [
    c"traps_bar0",
    c"traps_bar1",
    c"traps_bar2",
    c"traps_bar3",
    c"traps_bar4",
    c"traps_bar5",
];

/// A registered PF, shared by the PF's state and its ADIs.
pub struct PfLink {
    /// The PF, reached through the contract.
    pub pf: Arc<Pf>,
    /// Its ADI types, checked.
    pub types: KVec<Arc<AdiType>>,
    /// Its resources.
    pub pools: KVec<Pool>,
    /// Where its ADIs' PASIDs come from.
    pub pasids: Arc<PasidSpace>,
    /// What each file of an ADI's `stats/` shows.
    pub stats: KVec<Stat>,
    /// The PF's counter names.
    pub pf_counters: KVec<CString>,
    /// Its guaranteed capacity, and what its ADIs hold of it.
    pub admission: Admission,
}

/// What the VDCM keeps for one ADI's mdev device: its `qos/` files (gone
/// first) and its VFIO device.
pub struct AdiData {
    qos: Option<DeviceGroup<AdiQosFiles>>,
    reg: KBox<vfio::Registration<Adi>>,
}

impl AdiData {
    /// What the VDCM allocated for the ADI itself: this object, the box of
    /// its VFIO registration, its `qos/` group's storage and the ADI's own
    /// ([`Adi::own_bytes`]). The kernel's objects (the mdev and VFIO
    /// devices, sysfs nodes, the iommufd access) are not counted.
    pub fn own_bytes(&self) -> usize {
        core::mem::size_of::<AdiData>()
            + core::mem::size_of::<vfio::Registration<Adi>>()
            + self.qos.as_ref().map_or(0, |g| g.heap_bytes())
            + self.reg.device().own_bytes()
    }
}

impl PfLink {
    /// The stats of an ADI of this PF: the core's, a `traps_barN` for each
    /// BAR some type has, then the PF's. Returns the kinds and names.
    pub fn stats_for(
        types: &[Arc<AdiType>],
        pf_counters: &[CString],
    ) -> Result<(KVec<Stat>, KVec<&'static CStr>)> {
        let mut kinds = KVec::new();
        let mut names = KVec::new();
        for (name, kind) in CORE_STATS {
            kinds.push(kind, GFP_KERNEL)?;
            names.push(name, GFP_KERNEL)?;
        }
        for (bar, name) in TRAPS_BAR.iter().enumerate() {
            if types
                .iter()
                .any(|t| t.bars.get(bar).is_some_and(|b| b.size != 0))
            {
                kinds.push(Stat::TrapsBar(bar), GFP_KERNEL)?;
                names.push(*name, GFP_KERNEL)?;
            }
        }
        for i in 0..pf_counters.len() {
            kinds.push(Stat::Pf(i), GFP_KERNEL)?;
        }
        Ok((kinds, names))
    }

    /// Takes `units` of pool `pool`, or fails with `ENOSPC`.
    fn reserve(self: &Arc<Self>, pool: usize, units: u32) -> Result<Reservation> {
        let p = self.pools.get(pool).ok_or(EINVAL)?;
        let mut free = p.free.load(Relaxed);
        loop {
            let left = free.checked_sub(units).ok_or(ENOSPC)?;
            match p.free.cmpxchg(free, left, Relaxed) {
                Ok(_) => {
                    return Ok(Reservation {
                        link: self.clone(),
                        pool,
                        units,
                    })
                }
                Err(now) => free = now,
            }
        }
    }
}

/// The mdev driver of the VDCM's ADIs.
pub struct Vdcm;

#[vtable]
impl mdev::Driver for Vdcm {
    type ParentData = Arc<PfLink>;
    type DeviceData = KBox<AdiData>;

    const NAME: &'static CStr = c"vdcm";
    const DEVICE_API: &'static CStr = c"vfio-pci";

    fn probe(
        mdev: &mdev::Device,
        link: &Arc<PfLink>,
        type_index: usize,
    ) -> Result<Self::DeviceData> {
        let ty = link.types.get(type_index).ok_or(EINVAL)?;
        let pool = link.pools.get(ty.pool).ok_or(EINVAL)?;
        let reservation = link.reserve(ty.pool, ty.units).inspect_err(|_| {
            dev_err!(
                link.pf.device(),
                "cannot create an ADI of type {}: it takes {} of the {} {}, {} free\n",
                ty.name.to_str().unwrap_or("?"),
                ty.units,
                pool.size,
                pool.name.to_str().unwrap_or("?"),
                pool.free()
            );
        })?;
        let adi = Adi::new(link.clone(), type_index, reservation)?;
        let reg = KBox::new(
            vfio::Registration::new(vfio::UnregisteredDevice::new(mdev.as_device(), adi)?)?,
            GFP_KERNEL,
        )?;
        let qos = DeviceGroup::new(
            mdev.as_device(),
            AdiQosFiles {
                adi: reg.device().clone(),
            },
        )?;
        dev_info!(
            mdev.as_device(),
            "ADI created: type {}, PASID {}\n",
            ty.name.to_str().unwrap_or("?"),
            reg.device().pasid()
        );
        Ok(KBox::new(
            AdiData {
                qos: Some(qos),
                reg,
            },
            GFP_KERNEL,
        )?)
    }

    fn remove(_mdev: &mdev::Device, _link: &Arc<PfLink>, mut data: Self::DeviceData) {
        // No QoS change can start once the files are gone.
        drop(data.qos.take());
        let dev = data.reg.device().clone();
        // Unregistering waits until the user has closed the device.
        drop(data);
        // The PF is still registered here: its ADIs are removed before it
        // goes. Its side of the ADI goes now, not when the last reference
        // to the device is dropped.
        dev.destroy_pf_side();
    }

    fn stat(data: &AdiData, index: usize) -> u64 {
        let adi: &Adi = data.reg.device();
        match adi.link().stats.get(index) {
            Some(Stat::Interrupts) => adi.counters().interrupts.load(Relaxed),
            Some(Stat::Resets) => adi.counters().resets.load(Relaxed),
            Some(Stat::Pasid) => adi.pasid().into(),
            Some(Stat::TrapsConfig) => adi.traps().config.load(Relaxed),
            Some(Stat::TrapsBar(n)) => adi.traps().bars.get(*n).map_or(0, |c| c.load(Relaxed)),
            Some(Stat::OwnBytes) => data.own_bytes() as u64,
            Some(Stat::Pf(n)) => {
                let mut values = [0u64; crate::vdcm_kernel::pf_host::limits::COUNTERS];
                adi.pf_counters(&mut values);
                values.get(*n).copied().unwrap_or(0)
            }
            None => 0,
        }
    }

    fn available_instances(link: &Arc<PfLink>, type_index: usize) -> u32 {
        let Some(ty) = link.types.get(type_index) else {
            return 0;
        };
        let adis = link.pools.get(ty.pool).map_or(0, |p| p.free() / ty.units);
        adis.min(link.pasids.available())
    }

    fn description(link: &Arc<PfLink>, type_index: usize, out: &mut dyn fmt::Write) -> fmt::Result {
        let ty = link.types.get(type_index).ok_or(fmt::Error)?;
        let pool = link.pools.get(ty.pool).ok_or(fmt::Error)?;
        write!(
            out,
            "takes {} of {} {} on this PF, {} free",
            ty.units,
            pool.size,
            pool.name.to_str().map_err(|_| fmt::Error)?,
            pool.free()
        )
    }
}

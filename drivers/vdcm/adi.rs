// SPDX-License-Identifier: GPL-2.0

//! The virtual PCI device of one ADI, as user space sees it through VFIO.
//!
//! Regions follow the vfio-pci layout; region `i` starts at file offset
//! `i << REGION_SHIFT`:
//!
//! - BAR0: the trapped slow-path register file (`regs`), 16 KiB;
//! - config space: emulated, 4 KiB;
//! - every other region is absent (size 0).

use kernel::prelude::*;

use crate::host::QpReservation;
use crate::regs;
use crate::vdcm_kernel::vfio;
use crate::vdcm_kernel::vfio::pci;

/// File offsets of region `i` start at `i << REGION_SHIFT`.
pub const REGION_SHIFT: u32 = 40;

/// One ADI: the virtual device's state.
#[pin_data]
pub struct Adi {
    qps: QpReservation,
}

impl Adi {
    /// A new ADI over the reserved queue pairs `qps`.
    pub fn new(qps: QpReservation) -> impl PinInit<Self, Error> {
        try_pin_init!(Adi { qps })
    }

    /// How many queue pairs the ADI holds.
    pub fn queue_pairs(&self) -> u32 {
        self.qps.count()
    }
}

#[vtable]
impl vfio::Driver for Adi {
    const NAME: &'static CStr = c"vdcm-adi";

    fn region_info(
        _dev: &vfio::Device<Self>,
        index: u32,
        _caps: &mut vfio::RegionCaps<'_>,
    ) -> Result<vfio::RegionInfo> {
        let rw = pci::REGION_FLAG_READ | pci::REGION_FLAG_WRITE;
        let (flags, size) = match index {
            pci::BAR0_REGION_INDEX => (rw, regs::BAR0_SIZE),
            pci::CONFIG_REGION_INDEX => (rw, 4096),
            i if i < pci::NUM_REGIONS => (0, 0),
            _ => return Err(EINVAL),
        };
        Ok(vfio::RegionInfo {
            flags,
            size,
            offset: u64::from(index) << REGION_SHIFT,
        })
    }

    fn ioctl(_dev: &vfio::Device<Self>, ioctl: vfio::Ioctl) -> Result<isize> {
        match ioctl.cmd {
            vfio::DEVICE_GET_INFO => ioctl.reply_device_info(vfio::DeviceInfo {
                flags: pci::DEVICE_FLAGS_PCI | pci::DEVICE_FLAGS_RESET,
                num_regions: pci::NUM_REGIONS,
                num_irqs: pci::NUM_IRQS,
            }),
            _ => Err(ENOTTY),
        }
    }
}

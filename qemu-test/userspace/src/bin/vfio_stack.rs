// SPDX-License-Identifier: GPL-2.0

//! Proves the test kernel's VFIO / mdev / iommufd stack works, using the
//! kernel's mtty sample as a known-good mediated device: the DMAR unit is in
//! scalable mode, an mtty mdev is created through sysfs, shows up as an
//! iommufd cdev, is bound to an iommufd and attached to an IOAS, answers
//! VFIO ioctls and config reads, and is removed again.

use std::path::Path;

use vdcm_selftests::mdev::MdevType;
use vdcm_selftests::sysfs;
use vdcm_selftests::tap;
use vdcm_selftests::tap::ensure;
use vdcm_selftests::tap::Outcome;
use vdcm_selftests::tap::Reporter;
use vdcm_selftests::vfio;

/// VT-d ECAP bits (VT-d spec, "Extended Capability Register").
const ECAP_PASID: u64 = 1 << 40;
const ECAP_SMTS: u64 = 1 << 43;
/// RTADDR_REG "Translation Table Mode" = scalable (DMA_RTADDR_SMT).
const RTADDR_SMT: u64 = 1 << 10;

/// The PCI IDs mtty's config space reports.
const MTTY_VENDOR_DEVICE: u32 = 0x3253_4348;

fn dmar_scalable_mode() -> Outcome {
    let ecap = sysfs::read_hex("/sys/class/iommu/dmar0/intel-iommu/ecap")?;
    ensure(ecap & ECAP_SMTS != 0, || {
        format!("ecap {ecap:#x}: no scalable mode (SMTS, bit 43)")
    })?;
    ensure(ecap & ECAP_PASID != 0, || {
        format!("ecap {ecap:#x}: no PASID support (bit 40)")
    })?;
    // A capability is not a mode: the root table in use must be a
    // scalable-mode one (RTADDR_REG.TTM, what the driver programmed).
    sysfs::ensure_debugfs()?;
    let regs = sysfs::read("/sys/kernel/debug/iommu/intel/iommu_regset")?;
    let rtaddr = regs
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("RTADDR")).then(|| f.nth(1)).flatten()
        })
        .ok_or("no RTADDR line in iommu_regset")?;
    let rtaddr = u64::from_str_radix(rtaddr.trim_start_matches("0x"), 16)
        .map_err(|e| format!("RTADDR {rtaddr:?}: {e}"))?;
    ensure(rtaddr & RTADDR_SMT != 0, || {
        format!("RTADDR {rtaddr:#x}: root table is not in scalable mode (bit 10 clear)")
    })
}

fn bind_and_probe(cdev: &Path) -> Outcome {
    let dev = vfio::CdevDevice::open(cdev)?;
    tap::note(format_args!(
        "{}: devid {} attached to ioas {}",
        cdev.display(),
        dev.devid,
        dev.ioas
    ));
    let info = dev.info()?;
    ensure(info.flags & vfio::VFIO_DEVICE_FLAGS_PCI != 0, || {
        format!(
            "GET_INFO flags {:#x} lack VFIO_DEVICE_FLAGS_PCI",
            info.flags
        )
    })?;
    ensure(info.num_regions == vfio::VFIO_PCI_NUM_REGIONS, || {
        format!(
            "GET_INFO num_regions {} != {}",
            info.num_regions,
            vfio::VFIO_PCI_NUM_REGIONS
        )
    })?;
    let ids = dev.read_u32(vfio::VFIO_PCI_CONFIG_REGION_INDEX, 0)?;
    ensure(ids == MTTY_VENDOR_DEVICE, || {
        format!("config space vendor/device {ids:#010x}, mtty reports {MTTY_VENDOR_DEVICE:#010x}")
    })
}

fn main() {
    let mut t = Reporter::default();
    t.point("dmar_scalable_mode", dmar_scalable_mode);

    let mtty = MdevType::new("mtty", "mtty-1");
    let before = mtty.available();
    let mut created = None;
    t.point("mtty_mdev_create", || {
        let before = before.clone()?;
        ensure(before > 0, || {
            format!("{}: no instance available", mtty.dir().display())
        })?;
        let mdev = mtty.create()?.map_err(|e| format!("create: {e}"))?;
        ensure(mdev.exists(), || {
            format!("{} missing after create", mdev.dir().display())
        })?;
        let after = mtty.available()?;
        created = Some(mdev);
        ensure(after + 1 == before, || {
            format!("available_instances {before} -> {after}, want -1")
        })
    });

    if let Some(mdev) = created {
        t.point("mtty_cdev_bind_iommufd", || {
            let cdev = mdev.cdev()?;
            ensure(cdev.exists(), || format!("{} missing", cdev.display()))?;
            bind_and_probe(&cdev)
        });
        t.point("mtty_mdev_remove", || {
            let cdev = mdev.cdev()?;
            mdev.remove()?;
            ensure(!mdev.exists(), || {
                format!("{} still there after remove", mdev.dir().display())
            })?;
            ensure(!cdev.exists(), || {
                format!("{} still there after remove", cdev.display())
            })?;
            let (after, before) = (mtty.available()?, before.clone()?);
            ensure(after == before, || {
                format!("available_instances {after} after remove, was {before}")
            })
        });
    } else {
        t.not_run("mtty_cdev_bind_iommufd", "mtty_mdev_create failed");
        t.not_run("mtty_mdev_remove", "mtty_mdev_create failed");
    }
    std::process::exit(t.exit_code());
}

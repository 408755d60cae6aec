// SPDX-License-Identifier: GPL-2.0

//! Proves the test kernel's VFIO / mdev / iommufd stack works, using the
//! kernel's mtty sample as a known-good mediated device: the DMAR unit is in
//! scalable mode, an mtty mdev is created through sysfs, shows up as an
//! iommufd cdev, is bound to an iommufd and attached to an IOAS, answers
//! VFIO ioctls and config reads, and is removed again.

use std::path::Path;
use std::path::PathBuf;

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

/// The mtty type used, and the PCI IDs mtty's config space reports.
const MTTY_TYPES: &str = "/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1";
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

/// The cdev of an mdev: /dev/vfio/devices/<name of its vfio-dev entry>.
fn mdev_cdev(mdev: &Path) -> Result<PathBuf, String> {
    let dir = mdev.join("vfio-dev");
    let entry = std::fs::read_dir(&dir)
        .map_err(|e| format!("read {}: {e}", dir.display()))?
        .next()
        .ok_or(format!("{} is empty", dir.display()))?
        .map_err(|e| e.to_string())?;
    Ok(Path::new("/dev/vfio/devices").join(entry.file_name()))
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

    let types = Path::new(MTTY_TYPES);
    let avail_path = types.join("available_instances");
    let uuid = sysfs::new_uuid();
    let before = sysfs::read_u64(&avail_path);
    let mdev = uuid
        .as_ref()
        .map(|u| Path::new("/sys/bus/mdev/devices").join(u));

    let created = t.point("mtty_mdev_create", || {
        let before = before.clone()?;
        let uuid = uuid.clone()?;
        let mdev = mdev.clone()?;
        ensure(before > 0, || format!("{} is 0", avail_path.display()))?;
        sysfs::write(types.join("create"), &uuid)?;
        ensure(mdev.exists(), || {
            format!("{} missing after create", mdev.display())
        })?;
        let after = sysfs::read_u64(&avail_path)?;
        ensure(after + 1 == before, || {
            format!("available_instances {before} -> {after}, want -1")
        })
    });

    if created {
        t.point("mtty_cdev_bind_iommufd", || {
            let mdev = mdev.clone()?;
            let cdev = mdev_cdev(&mdev)?;
            ensure(cdev.exists(), || format!("{} missing", cdev.display()))?;
            bind_and_probe(&cdev)
        });
        t.point("mtty_mdev_remove", || {
            let mdev = mdev.clone()?;
            let cdev = mdev_cdev(&mdev)?;
            sysfs::write(mdev.join("remove"), "1")?;
            ensure(!mdev.exists(), || {
                format!("{} still there after remove", mdev.display())
            })?;
            ensure(!cdev.exists(), || {
                format!("{} still there after remove", cdev.display())
            })?;
            let after = sysfs::read_u64(&avail_path)?;
            let before = before.clone()?;
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

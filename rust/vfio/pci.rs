// SPDX-License-Identifier: GPL-2.0

//! The vfio-pci device API: region and IRQ indexes, flags.

use super::bindings;

/// Region index of BAR `n` (0..=5) is `BAR0_REGION_INDEX + n`.
pub const BAR0_REGION_INDEX: u32 = bindings::VFIO_PCI_BAR0_REGION_INDEX;
/// Region index of the expansion ROM.
pub const ROM_REGION_INDEX: u32 = bindings::VFIO_PCI_ROM_REGION_INDEX;
/// Region index of the configuration space.
pub const CONFIG_REGION_INDEX: u32 = bindings::VFIO_PCI_CONFIG_REGION_INDEX;
/// Number of regions of a vfio-pci device.
pub const NUM_REGIONS: u32 = bindings::VFIO_PCI_NUM_REGIONS;
/// IRQ index of MSI-X.
pub const MSIX_IRQ_INDEX: u32 = bindings::VFIO_PCI_MSIX_IRQ_INDEX;
/// IRQ index of the error notification (`VFIO_PCI_ERR_IRQ_INDEX`).
pub const ERR_IRQ_INDEX: u32 = bindings::VFIO_PCI_ERR_IRQ_INDEX;
/// IRQ index of the release request (`VFIO_PCI_REQ_IRQ_INDEX`): the
/// device asks its user to let it go.
pub const REQ_IRQ_INDEX: u32 = bindings::VFIO_PCI_REQ_IRQ_INDEX;
/// `VFIO_IRQ_INFO_EVENTFD`: the index takes eventfd triggers.
pub const IRQ_INFO_EVENTFD: u32 = bindings::VFIO_IRQ_INFO_EVENTFD;
/// `VFIO_IRQ_INFO_NORESIZE`: enabled vectors cannot be added to without
/// disabling the index first.
pub const IRQ_INFO_NORESIZE: u32 = bindings::VFIO_IRQ_INFO_NORESIZE;
/// Number of IRQ indexes of a vfio-pci device.
pub const NUM_IRQS: u32 = bindings::VFIO_PCI_NUM_IRQS;

/// `VFIO_DEVICE_FLAGS_PCI`: the device follows the vfio-pci API.
pub const DEVICE_FLAGS_PCI: u32 = bindings::VFIO_DEVICE_FLAGS_PCI;
/// `VFIO_DEVICE_FLAGS_RESET`: the device supports `VFIO_DEVICE_RESET`.
pub const DEVICE_FLAGS_RESET: u32 = bindings::VFIO_DEVICE_FLAGS_RESET;

/// `VFIO_REGION_INFO_FLAG_READ`.
pub const REGION_FLAG_READ: u32 = bindings::VFIO_REGION_INFO_FLAG_READ;
/// `VFIO_REGION_INFO_FLAG_WRITE`.
pub const REGION_FLAG_WRITE: u32 = bindings::VFIO_REGION_INFO_FLAG_WRITE;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
pub const REGION_FLAG_MMAP: u32 = bindings::VFIO_REGION_INFO_FLAG_MMAP;

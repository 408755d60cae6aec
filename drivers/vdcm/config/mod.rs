// SPDX-License-Identifier: GPL-2.0

//! PCI configuration space of an emulated PCI Express function.
//!
//! A [`ConfigSpace`] is the 4 KiB configuration space of a type 0 (endpoint)
//! function, held in memory and accessed the way a guest accesses it through
//! the VFIO config region: [`ConfigSpace::read`] and [`ConfigSpace::write`]
//! of 1, 2 or 4 naturally aligned bytes. Each byte carries its own access
//! rules, fixed when the space is built:
//!
//! - bits in the byte's *write mask* are read-write;
//! - bits in its *write-1-to-clear mask* are cleared by writing 1 (the device
//!   model sets them with [`ConfigSpace::set_bits`]);
//! - every other bit is read-only, and bytes nothing was declared at read as
//!   zero.
//!
//! A guest write becomes `new = (old & !wmask) | (value & wmask)`, then
//! `new &= !(value & w1c)`. Writes the device model has to act on (memory
//! decoding switched, a function-level reset requested, MSI-X enabled...)
//! are reported as a [`ConfigEvent`]; the register file has already been
//! updated when the event is returned.
//!
//! [`ConfigBuilder`] lays the space out: the header with its IDs and BARs,
//! then the capabilities in the order they are added, linked from the
//! capabilities pointer (`0x34`) starting at `0x40`, and extended
//! capabilities linked from `0x100`. Nothing here is specific to one device:
//!
//! ```ignore
//! let space = ConfigBuilder::new(&DeviceIds {
//!     vendor: 0x8086,
//!     device: 0x0b25,
//!     revision: 1,
//!     class: 0x088000,
//!     subsystem_vendor: 0x8086,
//!     subsystem: 0,
//! })?
//! .bar64(0, 0x4000, false)?
//! .power_management()?
//! .pcie_endpoint()?
//! .msix(&MsixLayout {
//!     vectors: 16,
//!     table_bar: 0,
//!     table_offset: 0x2000,
//!     pba_bar: 0,
//!     pba_offset: 0x3000,
//! })?
//! .siov_dvsec(&SiovDvsec {
//!     supported_page_sizes: 1,
//!     system_page_size: 1,
//!     ..SiovDvsec::default()
//! })?
//! .build()?;
//! ```
//!
//! Files: `caps.rs` the register and capability layouts, `space.rs` the
//! space and its access rules, `builder.rs` the layout, `tests.rs` the
//! KUnit suite.

mod builder;
mod caps;
mod space;
mod tests;

pub use builder::*;
pub use caps::*;
pub use space::*;

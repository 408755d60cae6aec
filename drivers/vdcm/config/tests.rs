// SPDX-License-Identifier: GPL-2.0

//! KUnit cases of the config-space emulator.

use kernel::prelude::*;

#[kunit_tests(vdcm_pci_config)]
mod cases {
    use super::super::*;
    use kernel::prelude::*;

    const IDS: DeviceIds = DeviceIds {
        vendor: 0x1af4,
        device: 0x10f7,
        revision: 0x02,
        class: 0x12_3456,
        subsystem_vendor: 0x1af4,
        subsystem: 0x0042,
    };

    const MSIX: MsixLayout = MsixLayout {
        vectors: 8,
        table_bar: 0,
        table_offset: 0x2000,
        pba_bar: 0,
        pba_offset: 0x3000,
    };

    /// BAR0: 64-bit, 16 KiB; BAR2: 32-bit prefetchable, 4 KiB; BAR4 unused.
    fn full() -> Result<ConfigSpace> {
        ConfigBuilder::new(&IDS)?
            .bar64(0, 0x4000, false)?
            .bar32(2, 0x1000, true)?
            .power_management()?
            .pcie_endpoint()?
            .msix(&MSIX)?
            .siov_dvsec(&SiovDvsec {
                flags: 1,
                function_dependency_link: 0,
                supported_page_sizes: 0x553,
                system_page_size: 1,
                capabilities: 1,
            })?
            .build()
    }

    fn cap(c: &ConfigSpace, id: u8) -> Result<u64> {
        c.find_capability(id).map(|at| at as u64).ok_or(ENOENT)
    }

    #[test]
    fn spaces_of_one_layout_share_it_and_nothing_else() -> Result {
        let a = full()?;
        let mut b = a.fresh()?;
        assert!(kernel::sync::Arc::ptr_eq(a.template(), b.template()));
        // Only the bytes that can change are the space's own: a few dozen,
        // not a copy of the 4 KiB.
        assert!(b.heap_bytes() > 0 && b.heap_bytes() <= 128);
        assert!(a.template().heap_bytes() >= CONFIG_SPACE_SIZE);
        // A write to one space leaves the other as it was.
        b.write(0x04, 2, u32::from(COMMAND_MEMORY))?;
        b.write(0x10, 4, 0xfee0_0000)?;
        assert_eq!(b.command(), COMMAND_MEMORY);
        assert_eq!(a.command(), 0);
        assert_eq!(a.read(0x10, 4)?, BAR_MEM_64);
        // The device cannot set bits in a byte no guest can change.
        assert_eq!(b.set_bits(0x00, 1, 1), Err(EINVAL));
        assert_eq!(b.read(0x00, 2)?, 0x1af4);
        // A reset gives back the reset values of the changed bytes.
        b.reset();
        assert_eq!(b.command(), 0);
        assert_eq!(b.read(0x10, 4)?, BAR_MEM_64);
        Ok(())
    }

    #[test]
    fn ids_and_class_read_back() -> Result {
        let c = full()?;
        assert_eq!(c.read(0x00, 2)?, 0x1af4);
        assert_eq!(c.read(0x02, 2)?, 0x10f7);
        assert_eq!(c.read(0x00, 4)?, 0x10f7_1af4);
        assert_eq!(c.read(0x08, 4)?, 0x1234_5602);
        assert_eq!(c.read(0x09, 1)?, 0x56);
        assert_eq!(c.read(0x0b, 1)?, 0x12);
        assert_eq!(c.read(0x2c, 4)?, 0x0042_1af4);
        assert_eq!(c.read(0x0e, 1)?, 0);
        assert_eq!(c.read(0x3d, 1)?, 0);
        // Unimplemented space reads as zero.
        assert_eq!(c.read(0x28, 4)?, 0);
        assert_eq!(c.read(0xffc, 4)?, 0);
        assert_eq!(
            ConfigBuilder::new(&DeviceIds {
                class: 0x100_0000,
                ..IDS
            })
            .err(),
            Some(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn read_only_writes_are_ignored() -> Result {
        let mut c = full()?;
        let before_ptr = c.read(0x34, 1)?;
        for offset in [0x00, 0x08, 0x0c, 0x2c, 0x34, 0x3c, 0x800] {
            let before = c.read(offset, 4)?;
            assert_eq!(c.write(offset, 4, 0xffff_ffff)?, ConfigEvent::None);
            let after = c.read(offset, 4)?;
            match offset {
                // Cache Line Size and Interrupt Line are scratch registers.
                0x0c => assert_eq!(after, before | 0xff),
                0x3c => assert_eq!(after, before | 0xff),
                _ => assert_eq!(after, before),
            }
        }
        assert_eq!(c.read(0x34, 1)?, before_ptr);
        assert_eq!(c.read(0x3d, 1)?, 0);
        // Capability IDs and next pointers are read-only.
        let pm = cap(&c, CAP_ID_PM)?;
        let hdr = c.read(pm, 2)?;
        c.write(pm, 2, 0)?;
        assert_eq!(c.read(pm, 2)?, hdr);
        Ok(())
    }

    #[test]
    fn command_writes_only_rw_bits() -> Result {
        let mut c = full()?;
        assert!(!c.memory_enabled() && !c.bus_master_enabled());
        assert_eq!(
            c.write(0x04, 2, 0xffff)?,
            ConfigEvent::CommandChanged {
                old: 0,
                new: 0x0406
            }
        );
        assert_eq!(c.read(0x04, 2)?, 0x0406);
        assert!(c.memory_enabled() && c.bus_master_enabled());
        // Same value again: no event. A byte write of the low half.
        assert_eq!(c.write(0x04, 2, 0x0406)?, ConfigEvent::None);
        assert_eq!(
            c.write(0x04, 1, 0x02)?,
            ConfigEvent::CommandChanged {
                old: 0x0406,
                new: 0x0402
            }
        );
        assert!(c.memory_enabled() && !c.bus_master_enabled());
        Ok(())
    }

    #[test]
    fn status_errors_are_w1c() -> Result {
        let mut c = full()?;
        assert_eq!(c.read(0x06, 2)?, u32::from(STATUS_CAP_LIST));
        c.set_bits(0x06, 2, 0x3000)?;
        assert_eq!(c.read(0x06, 2)?, 0x3010);
        // Writing 0 keeps them, writing 1 clears only that bit; the
        // capabilities-list bit is read-only.
        c.write(0x06, 2, 0)?;
        assert_eq!(c.read(0x06, 2)?, 0x3010);
        c.write(0x06, 2, 0x1010)?;
        assert_eq!(c.read(0x06, 2)?, 0x2010);
        // A dword write to Command/Status clears too.
        c.write(0x04, 4, 0xffff_0000)?;
        assert_eq!(c.read(0x06, 2)?, 0x0010);
        // Without capabilities the bit is clear.
        let bare = ConfigBuilder::new(&IDS)?.build()?;
        assert_eq!(bare.read(0x06, 2)?, 0);
        assert_eq!(bare.read(0x34, 1)?, 0);
        Ok(())
    }

    #[test]
    fn bar32_sizing() -> Result {
        let mut c = full()?;
        // BAR2: 4 KiB, prefetchable.
        assert_eq!(c.read(0x18, 4)?, 0x8);
        c.write(0x18, 4, 0xffff_ffff)?;
        assert_eq!(c.read(0x18, 4)?, 0xffff_f008);
        assert_eq!(c.bar_size(2), 0x1000);
        c.write(0x18, 4, 0xfebf_1234)?;
        assert_eq!(c.read(0x18, 4)?, 0xfebf_1008);
        assert_eq!(c.bar_address(2), 0xfebf_1000);
        // Unused BARs read as 0 and ignore writes.
        for n in [4u64, 5] {
            c.write(0x10 + 4 * n, 4, 0xffff_ffff)?;
            assert_eq!(c.read(0x10 + 4 * n, 4)?, 0);
            assert_eq!(c.bar_address(n as usize), 0);
        }
        Ok(())
    }

    #[test]
    fn bar64_sizing_both_halves() -> Result {
        let mut c = full()?;
        // BAR0/1: 16 KiB, 64-bit, not prefetchable.
        assert_eq!(c.read(0x10, 4)?, 0x4);
        c.write(0x10, 4, 0xffff_ffff)?;
        c.write(0x14, 4, 0xffff_ffff)?;
        assert_eq!(c.read(0x10, 4)?, 0xffff_c004);
        assert_eq!(c.read(0x14, 4)?, 0xffff_ffff);
        // A BAR above 4 GiB: the upper dword is writable only above the size.
        let mut big = ConfigBuilder::new(&IDS)?.bar64(2, 1 << 34, true)?.build()?;
        big.write(0x18, 4, 0xffff_ffff)?;
        big.write(0x1c, 4, 0xffff_ffff)?;
        assert_eq!(big.read(0x18, 4)?, 0x0000_000c);
        assert_eq!(big.read(0x1c, 4)?, 0xffff_fffc);
        assert_eq!(big.bar_size(2), 1 << 34);
        assert_eq!(big.bar_size(3), 0);
        Ok(())
    }

    #[test]
    fn bar_address_round_trip() -> Result {
        let mut c = full()?;
        c.write(0x10, 4, 0xfe00_4000)?;
        c.write(0x14, 4, 0x0000_0038)?;
        assert_eq!(c.bar_address(0), 0x38_fe00_4000);
        // The upper slot is not a BAR of its own.
        assert_eq!(c.bar_address(1), 0);
        // Address bits below the size are hardwired to 0.
        c.write(0x10, 2, 0x1230)?;
        assert_eq!(c.bar_address(0), 0x38_fe00_0000);
        assert_eq!(c.bar_address(6), 0);
        Ok(())
    }

    #[test]
    fn bad_bars_are_refused() -> Result {
        let b = || ConfigBuilder::new(&IDS);
        assert_eq!(b()?.bar32(0, 8, false).err(), Some(EINVAL));
        assert_eq!(b()?.bar32(0, 0x3000, false).err(), Some(EINVAL));
        assert_eq!(b()?.bar32(0, 1 << 32, false).err(), Some(EINVAL));
        assert_eq!(b()?.bar32(6, 0x1000, false).err(), Some(EINVAL));
        assert_eq!(b()?.bar64(5, 0x1000, false).err(), Some(EINVAL));
        assert_eq!(
            b()?.bar64(0, 0x1000, false)?.bar32(1, 0x1000, false).err(),
            Some(EINVAL)
        );
        assert_eq!(
            b()?.bar32(1, 0x1000, false)?.bar64(0, 0x1000, false).err(),
            Some(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn capability_chain() -> Result {
        let c = full()?;
        let mut at = c.read(0x34, 1)?;
        assert_eq!(at, 0x40);
        let mut ids = KVec::new();
        while at != 0 {
            assert!((0x40..0x100).contains(&at) && at % 4 == 0);
            ids.push(c.read(at.into(), 1)?, GFP_KERNEL)?;
            at = c.read(u64::from(at) + 1, 1)?;
            assert!(ids.len() <= 3);
        }
        assert_eq!(&ids[..], &[0x01, 0x10, 0x11]);
        // PM: version 3, D0, No_Soft_Reset.
        let pm = cap(&c, CAP_ID_PM)?;
        assert_eq!(c.read(pm + 2, 2)? & 7, 3);
        assert_eq!(c.read(pm + 4, 2)?, 0x0008);
        // PCIe: v2 endpoint, FLR capable.
        let exp = cap(&c, CAP_ID_EXP)?;
        assert_eq!(c.read(exp + 2, 2)?, 0x0002);
        assert_ne!(c.read(exp + 4, 4)? & (1 << 28), 0);
        // MSI-X: table size N-1, BIR/offsets.
        let msix = cap(&c, CAP_ID_MSIX)?;
        assert_eq!(c.read(msix + 2, 2)?, 7);
        assert_eq!(c.read(msix + 4, 4)?, 0x2000);
        assert_eq!(c.read(msix + 8, 4)?, 0x3000);
        Ok(())
    }

    #[test]
    fn dvsec_at_0x100() -> Result {
        let mut c = full()?;
        let header = c.read(0x100, 4)?;
        assert_eq!(header & 0xffff, 0x0023);
        assert_eq!((header >> 16) & 0xf, 1);
        assert_eq!(header >> 20, 0);
        assert_eq!(c.read(0x104, 4)?, 0x8086 | (24 << 20));
        assert_eq!(c.read(0x108, 2)?, 5);
        assert_eq!(c.read(0x10a, 1)?, 1);
        assert_eq!(c.read(0x10c, 4)?, 0x553);
        assert_eq!(c.read(0x114, 4)?, 1);
        assert_eq!(c.find_extended_capability(EXT_CAP_ID_DVSEC), Some(0x100));
        // System Page Size is writable in the supported bits only; the rest
        // of the DVSEC is read-only.
        c.write(0x110, 4, 0xffff_ffff)?;
        assert_eq!(c.read(0x110, 4)?, 0x553);
        c.write(0x104, 4, 0)?;
        assert_eq!(c.read(0x104, 4)?, 0x8086 | (24 << 20));
        // A second DVSEC is linked from the first.
        let two = ConfigBuilder::new(&IDS)?
            .add_dvsec(0x1234, 7, 1, &[0xaa, 0xbb])?
            .add_dvsec(0x5678, 9, 0, &[])?
            .build()?;
        assert_eq!(two.read(0x100, 4)? >> 20, 0x10c);
        assert_eq!(two.read(0x104, 4)?, 0x1234 | (1 << 16) | (12 << 20));
        assert_eq!(two.read(0x10a, 2)?, 0xbbaa);
        assert_eq!(two.read(0x10c, 4)? >> 20, 0);
        assert_eq!(two.read(0x114, 2)?, 9);
        Ok(())
    }

    #[test]
    fn flr_is_reported_and_reads_zero() -> Result {
        let mut c = full()?;
        let devctl = cap(&c, CAP_ID_EXP)? + 8;
        assert_eq!(c.read(devctl, 2)?, 0x2810);
        assert_eq!(
            c.write(devctl, 2, 0x8000 | 0x2810)?,
            ConfigEvent::FunctionLevelReset
        );
        assert_eq!(c.read(devctl, 2)? & 0x8000, 0);
        // A byte write of the upper half, and a dword write, report it too.
        assert_eq!(
            c.write(devctl + 1, 1, 0x80)?,
            ConfigEvent::FunctionLevelReset
        );
        assert_eq!(c.write(devctl, 4, 0x8000)?, ConfigEvent::FunctionLevelReset);
        assert_eq!(c.write(devctl, 2, 0x0001)?, ConfigEvent::None);
        // Only the writable Device Control bits stick.
        c.write(devctl, 2, 0xffff)?;
        assert_eq!(c.read(devctl, 2)?, 0x78ff);
        // Device Status errors are write-1-to-clear.
        c.set_bits(devctl + 2, 2, 0x5)?;
        c.write(devctl + 2, 2, 0x1)?;
        assert_eq!(c.read(devctl + 2, 2)?, 0x4);
        Ok(())
    }

    #[test]
    fn msix_enable_and_function_mask() -> Result {
        let mut c = full()?;
        let flags = cap(&c, CAP_ID_MSIX)? + 2;
        assert!(!c.msix_enabled() && !c.msix_function_masked());
        let off = MsixControl::default();
        let on = MsixControl {
            enabled: true,
            function_masked: true,
        };
        assert_eq!(
            c.write(flags, 2, 0xffff)?,
            ConfigEvent::MsixControlChanged { old: off, new: on }
        );
        // The table size is read-only.
        assert_eq!(c.read(flags, 2)?, 0xc007);
        c.write(flags, 1, 0)?;
        assert_eq!(c.read(flags, 2)?, 0xc007);
        assert!(c.msix_enabled() && c.msix_function_masked());
        assert_eq!(
            c.write(flags + 1, 1, 0x80)?,
            ConfigEvent::MsixControlChanged {
                old: on,
                new: MsixControl {
                    enabled: true,
                    function_masked: false
                }
            }
        );
        assert!(c.msix_enabled() && !c.msix_function_masked());
        assert_eq!(c.write(flags, 2, 0x8000)?, ConfigEvent::None);
        // MSI-X outside its BAR, or with no BAR, is refused at build time.
        let b = || ConfigBuilder::new(&IDS);
        assert_eq!(
            b()?.bar32(0, 0x1000, false)?.msix(&MSIX)?.build().err(),
            Some(EINVAL)
        );
        assert_eq!(b()?.msix(&MSIX)?.build().err(), Some(EINVAL));
        let overlapping = MsixLayout {
            pba_offset: 0x2070,
            ..MSIX
        };
        assert_eq!(
            b()?.bar32(0, 0x4000, false)?
                .msix(&overlapping)?
                .build()
                .err(),
            Some(EINVAL)
        );
        let none = MsixLayout { vectors: 0, ..MSIX };
        assert_eq!(b()?.msix(&none).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn power_state() -> Result {
        let mut c = full()?;
        let pmcsr = cap(&c, CAP_ID_PM)? + 4;
        assert_eq!(c.power_state(), PowerState::D0);
        assert_eq!(
            c.write(pmcsr, 2, 3)?,
            ConfigEvent::PowerStateChanged {
                old: PowerState::D0,
                new: PowerState::D3Hot
            }
        );
        assert_eq!(c.read(pmcsr, 2)?, 0x000b);
        // D1 and D2 are unsupported: the state does not change.
        assert_eq!(c.write(pmcsr, 2, 1)?, ConfigEvent::None);
        assert_eq!(c.power_state(), PowerState::D3Hot);
        c.write(pmcsr, 1, 0)?;
        assert_eq!(c.power_state(), PowerState::D0);
        assert_eq!(c.write(pmcsr, 2, 2)?, ConfigEvent::None);
        assert_eq!(c.read(pmcsr, 2)?, 0x0008);
        Ok(())
    }

    #[test]
    fn bad_accesses_are_refused() -> Result {
        let mut c = full()?;
        for len in [0, 3, 5, 8] {
            assert_eq!(c.read(0, len), Err(EINVAL));
            assert_eq!(c.write(0, len, 0), Err(EINVAL));
        }
        for (offset, len) in [(1, 2), (2, 4), (0x103, 4), (0xfff, 2)] {
            assert_eq!(c.read(offset, len), Err(EINVAL));
            assert_eq!(c.write(offset, len, 0xffff_ffff), Err(EINVAL));
        }
        for offset in [0x1000, 0x1004, u64::MAX - 3, u64::MAX] {
            assert_eq!(c.read(offset, 4), Err(EINVAL));
            assert_eq!(c.write(offset, 1, 0), Err(EINVAL));
            assert_eq!(c.set_bits(offset, 1, 1), Err(EINVAL));
        }
        // Refused writes changed nothing; the last byte is still readable.
        assert_eq!(c.read(0x04, 4)?, u32::from(STATUS_CAP_LIST) << 16);
        assert_eq!(c.read(0xfff, 1)?, 0);
        Ok(())
    }

    #[test]
    fn capabilities_that_do_not_fit() -> Result {
        let b = || ConfigBuilder::new(&IDS);
        let body = KVec::from_elem(0u8, 0xf00, GFP_KERNEL)?;
        assert_eq!(b()?.add_dvsec(1, 1, 0, &body).err(), Some(ENOSPC));
        assert_eq!(b()?.add_dvsec(1, 1, 16, &[]).err(), Some(EINVAL));
        // Exactly filling the extended space is fine.
        assert!(b()?.add_dvsec(1, 1, 0, &body[..0xf00 - 0x0a]).is_ok());
        assert_eq!(
            b()?.power_management()?.power_management().err(),
            Some(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn reset_restores_defaults() -> Result {
        let mut c = full()?;
        let exp = cap(&c, CAP_ID_EXP)?;
        let msix = cap(&c, CAP_ID_MSIX)?;
        let pm = cap(&c, CAP_ID_PM)?;
        let mut before = KVec::new();
        for offset in (0..0x1000).step_by(4) {
            before.push(c.read(offset, 4)?, GFP_KERNEL)?;
        }
        c.write(0x04, 2, 0x0406)?;
        c.set_bits(0x06, 2, 0x8000)?;
        c.write(0x10, 4, 0xffff_ffff)?;
        c.write(0x18, 4, 0xfebf_0000)?;
        c.write(0x3c, 1, 11)?;
        c.write(exp + 8, 2, 0x00ff)?;
        c.write(msix + 2, 2, 0xc000)?;
        c.write(pm + 4, 2, 3)?;
        c.write(0x110, 4, 0x40)?;
        c.reset();
        for (i, &value) in before.iter().enumerate() {
            assert_eq!(c.read(4 * i as u64, 4)?, value);
        }
        assert!(!c.memory_enabled() && !c.msix_enabled());
        assert_eq!(c.power_state(), PowerState::D0);
        assert_eq!(c.bar_address(0), 0);
        Ok(())
    }
}

// SPDX-License-Identifier: GPL-2.0

//! KUnit cases of the descriptor format (`desc.rs`), built into the
//! simulated PF only (the guest driver shares `desc.rs`, not its tests).

#[kernel::prelude::kunit_tests(vdcm_sim_desc)]
mod cases {
    use crate::desc::*;

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C over "123456789", through
        // the kernel's implementation the engine uses.
        assert_eq!(
            !crate::vdcm_kernel::crc::crc32c(!0, b"123456789"),
            0xe306_9283
        );
    }

    #[test]
    fn decode_fields() {
        let mut raw = [0u8; DESC_SIZE];
        raw[0] = Opcode::MemMove as u8;
        raw[1] = FLAG_INTERRUPT;
        raw[4..8].copy_from_slice(&4096u32.to_le_bytes());
        raw[8..16].copy_from_slice(&0x1000u64.to_le_bytes());
        raw[16..24].copy_from_slice(&0x2000u64.to_le_bytes());
        raw[24..32].copy_from_slice(&0x3000u64.to_le_bytes());
        let d = Descriptor::decode(&raw);
        assert_eq!(d.size, 4096);
        assert_eq!((d.src, d.dst, d.completion), (0x1000, 0x2000, 0x3000));
        assert!(d.wants_interrupt());
        assert_eq!(d.validate(false), Ok(Opcode::MemMove));
    }

    #[test]
    fn encode_decode_round_trip() {
        let d = Descriptor::new(Opcode::Crc32c, 512, 0x1_0000_1000, 0)
            .with_completion(0x2000)
            .with_operand(0xdead_beef)
            .with_interrupt();
        let back = Descriptor::decode(&d.to_bytes());
        assert_eq!(back, d);
        assert_eq!(back.validate(false), Ok(Opcode::Crc32c));
        assert!(back.wants_interrupt());
        assert_eq!(d.to_bytes()[1], FLAG_INTERRUPT);

        let c = Completion {
            status: Status::PageFault,
            opcode: Opcode::MemMove as u8,
            done: 7,
            fault_iova: 0x5000,
            result: 0x1234_5678,
        };
        let raw = c.encode();
        let mut words = [0u64; COMPLETION_SIZE / 8];
        for (w, chunk) in words.iter_mut().zip(raw.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        assert_eq!(Completion::decode(&words), Some(c));
        assert_eq!(Completion::decode(&[0; 4]), None);
    }

    #[test]
    fn validate_rejects() {
        let mut raw = [0u8; DESC_SIZE];
        raw[0] = 9;
        assert_eq!(
            Descriptor::decode(&raw).validate(false),
            Err(Status::InvalidOpcode)
        );
        raw[0] = Opcode::Fill as u8;
        assert_eq!(
            Descriptor::decode(&raw).validate(false),
            Err(Status::InvalidSize)
        );
        raw[4..8].copy_from_slice(&(MAX_TRANSFER + 1).to_le_bytes());
        assert_eq!(
            Descriptor::decode(&raw).validate(false),
            Err(Status::InvalidSize)
        );
        raw[4..8].copy_from_slice(&8u32.to_le_bytes());
        raw[63] = 1;
        assert_eq!(
            Descriptor::decode(&raw).validate(false),
            Err(Status::InvalidField)
        );
        raw[63] = 0;
        raw[0] = Opcode::Batch as u8;
        assert_eq!(
            Descriptor::decode(&raw).validate(true),
            Err(Status::InvalidField)
        );
        assert_eq!(Descriptor::decode(&raw).validate(false), Ok(Opcode::Batch));
    }
}

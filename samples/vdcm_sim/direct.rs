// SPDX-License-Identifier: GPL-2.0

//! An in-kernel client of the simulated PF's engine: the baseline the ADI
//! path's throughput is measured against (`make bench`).
//!
//! It takes a queue pair of the PF and binds it to a tenant that is plain
//! kernel memory, so the engine runs the same descriptors as for an ADI but
//! with no VDCM, VFIO or iommufd between it and the memory, and no user
//! space ringing the doorbell. The workload mirrors the benchmark's ADI
//! fast path: rings of 64 BATCH descriptors of 32 NOPs each, then rings of
//! four 64 KiB MEMMOVEs. The module parameter `direct_bench` runs it once
//! when the module loads and logs the result.

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Mutex;
use kernel::time::delay::fsleep;
use kernel::time::Delta;
use kernel::time::Instant;
use kernel::time::Monotonic;

use crate::desc;
use crate::desc::Descriptor;
use crate::desc::Opcode;
use crate::sim_pf::Queues;
use crate::sim_pf::SimPf;
use crate::sim_pf::DOORBELL_TAIL;
use crate::vdcm_kernel::tenant::Tenant;
use crate::vdcm_kernel::tenant::TenantOps;
use crate::vdcm_kernel::tenant::TenantRef;

/// Layout of the client's memory (IOVA = offset).
const RING: usize = 0;
const RING_SIZE: u32 = 64;
const COMPL: usize = 0x1000;
const BATCH: usize = 0x2000;
const BATCH_NOPS: u32 = 32;
const SRC: usize = 0x10000;
const DST: usize = 0x20000;
const MOVE_SIZE: u32 = 0x10000;
const MEM: usize = 0x30000;

/// A tenant that is kernel memory: IOVA `x` is byte `x` of `mem`.
#[pin_data]
struct KernelTenant {
    #[pin]
    mem: Mutex<VVec<u8>>,
    irqs: Atomic<u64>,
}

impl TenantOps for KernelTenant {
    fn dma_rw(&self, iova: u64, buf: &mut [u8], write: bool) -> Result {
        let mut mem = self.mem.lock();
        let start = usize::try_from(iova).map_err(|_| EFAULT)?;
        let end = start.checked_add(buf.len()).ok_or(EFAULT)?;
        let range = mem.get_mut(start..end).ok_or(EFAULT)?;
        if write {
            range.copy_from_slice(buf);
        } else {
            buf.copy_from_slice(range);
        }
        Ok(())
    }

    fn raise_irq(&self, _vector: u32) {
        self.irqs.fetch_add(1, Relaxed);
    }

    // Kernel memory is always resident: there is nothing to pin.
    fn pin(&self, _slot: u32, _iova: u64, _len: u64, _write: bool) -> Result {
        Ok(())
    }

    fn unpin(&self, _slot: u32) {}
}

impl KernelTenant {
    fn write(&self, at: usize, bytes: &[u8]) -> Result {
        let mut mem = self.mem.lock();
        mem.get_mut(at..at + bytes.len())
            .ok_or(EINVAL)?
            .copy_from_slice(bytes);
        Ok(())
    }

    fn status(&self, at: usize) -> u8 {
        self.mem.lock().get(at).copied().unwrap_or(0)
    }
}

/// What one run measured.
pub struct DirectResult {
    /// Descriptors run in the NOP phase, as the engine counts them (each
    /// BATCH and each of its members).
    pub descs: u64,
    /// Time of the NOP phase.
    pub descs_ns: i64,
    /// Bytes moved in the MEMMOVE phase.
    pub bytes: u64,
    /// Time of the MEMMOVE phase.
    pub bytes_ns: i64,
}

/// A 64-byte descriptor for the in-kernel tenant, whose IOVAs are offsets
/// into its memory.
fn encode(op: Opcode, size: u32, src: usize, dst: usize, completion: usize) -> [u8; 64] {
    Descriptor::new(op, size, src as u64, dst as u64)
        .with_completion(completion as u64)
        .to_bytes()
}

/// Runs the workload on a queue pair of `pf` (whose queue pairs are
/// `queues`): at least `descs` descriptors of NOPs, then `move_rings` rings
/// of MEMMOVEs.
pub fn run(pf: &SimPf, queues: &Queues, descs: u64, move_rings: u32) -> Result<DirectResult> {
    let qp = pf.qp_alloc()?;
    let result = run_on(pf, queues, qp, descs, move_rings);
    pf.qp_stop(qp);
    pf.qp_unbind(qp);
    pf.qp_free(qp);
    result
}

fn run_on(
    pf: &SimPf,
    queues: &Queues,
    qp: u32,
    descs: u64,
    move_rings: u32,
) -> Result<DirectResult> {
    let tenant = Tenant::new(try_pin_init!(KernelTenant {
        mem <- new_mutex!(VVec::from_elem(0u8, MEM, GFP_KERNEL)?),
        irqs: Atomic::new(0),
    }))?;
    let t = tenant.ops();
    pf.qp_bind(qp, 0, TenantRef::new(&tenant))?;
    pf.qp_start(qp, RING as u64, RING_SIZE, 0)?;
    let doorbell = queues.doorbells.get(qp as usize).ok_or(EINVAL)?;
    for k in 0..BATCH_NOPS as usize {
        t.write(BATCH + k * 64, &encode(Opcode::Nop, 0, 0, 0, 0))?;
    }
    let mut tail = 0u32;
    // Posts one ring of `op` descriptors (the last with a completion
    // record), rings the doorbell and waits for the completion.
    let mut ring_of = |op: Opcode, size: u32, src: usize, dst: usize, n: u32| -> Result {
        t.write(COMPL, &[0u8; 32])?;
        for i in 0..n {
            let compl = if i + 1 == n { COMPL } else { 0 };
            let slot = (tail % RING_SIZE) as usize;
            t.write(RING + slot * 64, &encode(op, size, src, dst, compl))?;
            tail = tail.wrapping_add(1);
        }
        doorbell.write_u32(DOORBELL_TAIL, tail)?;
        let start = Instant::<Monotonic>::now();
        while t.status(COMPL) == 0 {
            if start.elapsed().as_millis() > 10_000 {
                return Err(ETIMEDOUT);
            }
            fsleep(Delta::from_micros(20));
        }
        if t.status(COMPL) != desc::Status::Success as u8 {
            return Err(EIO);
        }
        Ok(())
    };
    let per_ring = u64::from(RING_SIZE * (BATCH_NOPS + 1));
    let start = Instant::<Monotonic>::now();
    for _ in 0..descs.div_ceil(per_ring) {
        ring_of(Opcode::Batch, BATCH_NOPS, BATCH, 0, RING_SIZE)?;
    }
    let descs_ns = start.elapsed().as_nanos();
    let ran = descs.div_ceil(per_ring) * per_ring;
    let start = Instant::<Monotonic>::now();
    for _ in 0..move_rings {
        ring_of(Opcode::MemMove, MOVE_SIZE, SRC, DST, 4)?;
    }
    let bytes_ns = start.elapsed().as_nanos();
    Ok(DirectResult {
        descs: ran,
        descs_ns,
        bytes: u64::from(move_rings) * 4 * u64::from(MOVE_SIZE),
        bytes_ns,
    })
}

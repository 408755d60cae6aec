// SPDX-License-Identifier: GPL-2.0

//! One simulated SIOV PF: its queue pairs, the PASID-table entry of each
//! (PASID and tenant), and their doorbell pages.
//!
//! The VDCM reaches all of it through the PF contract ([`QueueOps`]); a
//! queue pair's tenant is only ever reached through the tenant object the
//! VDCM bound to it, as a real PF's DMA is only ever translated through the
//! IOMMU's PASID-table entry for the queue's PASID.
//!
//! Locking: `qps` protects the queue-pair table. It is also held while a
//! queue pair's descriptors are processed, so `qp_stop` returns only when
//! none is in flight.

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;

use crate::vdcm_kernel::doorbell::DoorbellPage;
use crate::vdcm_kernel::pf::QpStats;
use crate::vdcm_kernel::pf::QueueOps;
use crate::vdcm_kernel::pf::TenantRef;

/// Byte offset of the tail register in a doorbell page.
pub const DOORBELL_TAIL: usize = 0;

/// A running queue pair's ring.
#[derive(Clone, Copy, Debug)]
pub struct Ring {
    /// IOVA of descriptor 0.
    pub base: u64,
    /// Descriptors in the ring (a power of two).
    pub size: u32,
    /// Next descriptor the engine processes.
    pub head: u32,
}

/// One queue pair.
#[derive(Default)]
struct Qp {
    allocated: bool,
    /// PASID-table entry: the PASID and the tenant it translates to.
    binding: Option<(u32, TenantRef)>,
    ring: Option<Ring>,
    stats: QpStats,
}

/// A simulated PF's queue pairs.
#[pin_data]
pub struct SimPf {
    #[pin]
    qps: Mutex<KVec<Qp>>,
    doorbells: KVec<DoorbellPage>,
}

impl SimPf {
    /// A PF of `num_qps` free queue pairs.
    pub fn new(num_qps: u32) -> Result<impl PinInit<Self, Error>> {
        let n = num_qps as usize;
        let mut qps = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut doorbells = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            qps.push(Qp::default(), GFP_KERNEL)?;
            doorbells.push(DoorbellPage::new()?, GFP_KERNEL)?;
        }
        Ok(try_pin_init!(SimPf {
            qps <- new_mutex!(qps),
            doorbells,
        }))
    }

    /// Runs `f` on allocated queue pair `qp`; `EINVAL` for any other.
    fn with_qp<R>(&self, qp: u32, f: impl FnOnce(&mut Qp) -> Result<R>) -> Result<R> {
        let mut qps = self.qps.lock();
        match qps.get_mut(qp as usize) {
            Some(q) if q.allocated => f(q),
            _ => Err(EINVAL),
        }
    }
}

impl QueueOps for SimPf {
    fn qp_alloc(&self) -> Result<u32> {
        let mut qps = self.qps.lock();
        let (i, q) = qps
            .iter_mut()
            .enumerate()
            .find(|(_, q)| !q.allocated)
            .ok_or(ENOSPC)?;
        *q = Qp {
            allocated: true,
            ..Qp::default()
        };
        // The doorbell of a fresh queue pair reads 0, not what the last
        // tenant wrote.
        self.doorbells
            .get(i)
            .ok_or(EINVAL)?
            .write_u32(DOORBELL_TAIL, 0)?;
        u32::try_from(i).map_err(|_| EINVAL)
    }

    fn qp_free(&self, qp: u32) {
        let _ = self.with_qp(qp, |q| {
            *q = Qp::default();
            Ok(())
        });
    }

    fn qp_bind(&self, qp: u32, pasid: u32, tenant: TenantRef) -> Result {
        self.with_qp(qp, |q| {
            if q.binding.is_some() {
                return Err(EBUSY);
            }
            q.binding = Some((pasid, tenant));
            Ok(())
        })
    }

    fn qp_unbind(&self, qp: u32) {
        let _ = self.with_qp(qp, |q| {
            q.ring = None;
            q.binding = None;
            Ok(())
        });
    }

    fn qp_start(&self, qp: u32, ring_iova: u64, ring_size: u32) -> Result {
        self.with_qp(qp, |q| {
            if q.binding.is_none() {
                return Err(ENXIO);
            }
            if !ring_size.is_power_of_two() || ring_iova % 64 != 0 {
                return Err(EINVAL);
            }
            q.ring = Some(Ring {
                base: ring_iova,
                size: ring_size,
                head: 0,
            });
            Ok(())
        })
    }

    fn qp_stop(&self, qp: u32) {
        // Taking the lock waits for descriptors being processed.
        let _ = self.with_qp(qp, |q| {
            q.ring = None;
            Ok(())
        });
    }

    fn qp_doorbell(&self, qp: u32) -> Option<&kernel::page::Page> {
        self.doorbells.get(qp as usize).map(DoorbellPage::page)
    }

    fn qp_stats(&self, qp: u32) -> QpStats {
        self.with_qp(qp, |q| Ok(q.stats)).unwrap_or_default()
    }
}

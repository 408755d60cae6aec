// SPDX-License-Identifier: GPL-2.0

//! How the engine shares itself between ADIs: the QoS settings the VDCM
//! gives (`set_qos`) and the per-ADI scheduling state they drive.
//!
//! - **Guarantees first.** An ADI with a `guaranteed_rate` earns committed
//!   credit at that rate; while it has credit and work, it is served
//!   before everything else (the VDCM admitted the sum of the guarantees
//!   against the PF's capacity).
//! - **Strict priority** between levels: a level is served only while no
//!   higher level has work it is allowed to run.
//! - **Deficit round robin** by `weight` within a level: each round an ADI
//!   earns credit in proportion to its weight -- the lightest ADI with
//!   work [`ROUND_BASE`] descriptors, the others as many times that as
//!   their weight is the lightest's, all scaled down if a round would run
//!   more than [`ROUND_MAX`] -- and runs descriptors while its credit
//!   lasts; what it did not spend carries over, up to one quantum.
//! - **Token bucket** for `max_rate`: credit earned at that rate, at most
//!   [`BURST_MS`] of it; an ADI out of tokens waits, and the engine wakes
//!   when the first of the waiting earns one.
//!
//! The round robin counts submissions, as a work queue arbitrates its
//! entries: a ring slot or portal slot is one, whatever it holds. The
//! rates count the work: a descriptor costs what it counts for the ADI (a
//! BATCH one plus its members), charged after it ran, so a bucket can go
//! below zero.
//!
//! The state of a multi-queue ADI lives in its first queue pair's entry
//! (its "leader"); its other queue pairs point there.

use crate::vdcm_kernel::pf::Qos;

/// Submissions the lightest ADI of a level earns per round.
pub const ROUND_BASE: i64 = 64;
/// Most descriptors one round earns all the ADIs of a level together
/// (a weight spread beyond 16:1 scales every quantum down).
pub const ROUND_MAX: i64 = 16 * ROUND_BASE;
/// Hundredths of a descriptor per descriptor (credit's unit).
pub const UNIT: i64 = 100;
/// The most credit a token bucket holds, in milliseconds of its rate.
pub const BURST_MS: i64 = 32;
const NS_PER_S: i64 = 1_000_000_000;
/// The highest priority level.
pub const MAX_PRIORITY: u32 = crate::vdcm_kernel::bindings::VDCM_QOS_PRIORITY_MAX;

/// The settings of an ADI nobody changed (`set_qos` always comes before
/// the first descriptor, but queue pairs of the in-kernel client never
/// get one).
pub const DEFAULT_QOS: Qos = Qos {
    weight: 100,
    priority: 0,
    max_rate: 0,
    guaranteed_rate: 0,
    threshold: crate::abi::PORTAL_SLOTS,
};

/// A rate-driven credit, in nano-descriptors (1e9 per descriptor).
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    credit: i64,
}

impl Bucket {
    /// Adds what `rate` descriptors per second earn in `ns`, up to the
    /// burst.
    fn refill(&mut self, rate: u64, ns: i64) {
        let earned = (rate as i64).saturating_mul(ns);
        self.credit = self.credit.saturating_add(earned).min(Self::cap(rate));
    }

    /// The most a bucket of `rate` holds: [`BURST_MS`] of it, at least
    /// one descriptor.
    fn cap(rate: u64) -> i64 {
        (rate as i64 * BURST_MS * 1_000_000).max(NS_PER_S)
    }

    fn has(&self) -> bool {
        self.credit > 0
    }

    fn charge(&mut self, descriptors: u64) {
        self.credit = self
            .credit
            .saturating_sub((descriptors as i64).saturating_mul(NS_PER_S));
    }

    /// Nanoseconds until the bucket holds credit again at `rate`.
    fn wait_ns(&self, rate: u64) -> i64 {
        if self.has() || rate == 0 {
            return 0;
        }
        (1 - self.credit) / rate as i64 + 1
    }
}

/// The scheduling state of one ADI.
#[derive(Clone, Copy, Debug)]
pub struct Sched {
    /// Its settings.
    pub qos: Qos,
    /// DRR credit, in hundredths of a descriptor.
    pub deficit: i64,
    /// `max_rate`'s bucket.
    tokens: Bucket,
    /// `guaranteed_rate`'s credit.
    committed: Bucket,
    /// When the buckets were last filled (ns, monotonic); 0: never.
    last_ns: i64,
    /// The DRR round this ADI last earned its quantum in.
    pub round: u64,
}

impl Default for Sched {
    fn default() -> Self {
        Sched {
            qos: DEFAULT_QOS,
            deficit: 0,
            tokens: Bucket::default(),
            committed: Bucket::default(),
            last_ns: 0,
            round: 0,
        }
    }
}

impl Sched {
    /// New settings; the credit earned so far is kept, capped by the new
    /// rates at the next refill.
    pub fn set(&mut self, qos: &Qos) {
        self.qos = *qos;
        if qos.max_rate == 0 {
            self.tokens = Bucket::default();
        }
        if qos.guaranteed_rate == 0 {
            self.committed = Bucket::default();
        }
    }

    /// Fills the buckets for the time since the last call.
    pub fn refill(&mut self, now_ns: i64) {
        let ns = if self.last_ns == 0 {
            // First use: a full burst, as if idle for long.
            BURST_MS * 1_000_000
        } else {
            (now_ns - self.last_ns).clamp(0, BURST_MS * 1_000_000)
        };
        self.last_ns = now_ns;
        if self.qos.max_rate != 0 {
            self.tokens.refill(self.qos.max_rate, ns);
        }
        if self.qos.guaranteed_rate != 0 {
            self.committed.refill(self.qos.guaranteed_rate, ns);
        }
    }

    /// Whether the rate limit lets the ADI run a descriptor now.
    pub fn may_run(&self) -> bool {
        self.qos.max_rate == 0 || self.tokens.has()
    }

    /// Whether the ADI has guaranteed credit to use now.
    pub fn guaranteed(&self) -> bool {
        self.qos.guaranteed_rate != 0 && self.committed.has() && self.may_run()
    }

    /// Whether the guarantee pass serves the ADI now, with `pending`
    /// submissions waiting: it has guaranteed credit for the last of
    /// `min(pending, chunk)` of them, or for as many as its bucket can
    /// hold if that is fewer. Waiting for a chunk's worth keeps the
    /// pass's serve as cheap per descriptor as a round's -- one ring fetch
    /// for many descriptors, not one for every descriptor the credit
    /// trickles in for -- and costs the ADI nothing: the credit waits in
    /// the bucket, so the guaranteed rate is the same.
    pub fn guarantee_due(&self, pending: u32, chunk: u32) -> bool {
        if !self.guaranteed() {
            return false;
        }
        let holds = Bucket::cap(self.qos.guaranteed_rate) / NS_PER_S;
        let want = i64::from(pending.min(chunk).max(1)).min(holds);
        self.committed.credit > (want - 1) * NS_PER_S
    }

    /// Charges one submission of the ADI that ran `descriptors`: to the
    /// rate limit, and to its round-robin credit (`drr`) or its
    /// guarantee's.
    pub fn charge(&mut self, descriptors: u64, drr: bool) {
        if self.qos.max_rate != 0 {
            self.tokens.charge(descriptors);
        }
        if drr {
            self.deficit -= UNIT;
        } else if self.qos.guaranteed_rate != 0 {
            self.committed.charge(descriptors);
        }
    }

    /// This round's quantum, in hundredths of a descriptor, when the
    /// ADIs of the level with work have weights of at least `w_min` and
    /// `w_sum` in all: never below one descriptor.
    pub fn quantum(&self, w_min: u32, w_sum: u32) -> i64 {
        let w_min = i64::from(w_min.max(1));
        let w = i64::from(self.qos.weight.max(1));
        let total = i64::from(w_sum.max(1)) * ROUND_BASE;
        let q = if total > ROUND_MAX * w_min {
            w * ROUND_MAX * UNIT / i64::from(w_sum.max(1))
        } else {
            w * ROUND_BASE * UNIT / w_min
        };
        q.max(UNIT)
    }

    /// Submissions worth fetching at once: what the round's credit
    /// (`drr`) or the guarantee's allows, at least one, at most `max`.
    pub fn allowance(&self, drr: bool, max: u32) -> u32 {
        let n = if drr {
            (self.deficit + UNIT - 1) / UNIT
        } else {
            (self.committed.credit + NS_PER_S - 1) / NS_PER_S
        };
        u32::try_from(n.clamp(1, max.into())).unwrap_or(max)
    }

    /// Nanoseconds until a rate-limited ADI may run again; 0 if it may.
    pub fn wait_ns(&self) -> i64 {
        if self.qos.max_rate == 0 {
            0
        } else {
            self.tokens.wait_ns(self.qos.max_rate)
        }
    }
}

#[kernel::prelude::kunit_tests(vdcm_sim_sched)]
mod cases {
    use super::*;

    fn limited(rate: u64) -> Sched {
        let mut s = Sched::default();
        s.set(&Qos {
            max_rate: rate,
            ..DEFAULT_QOS
        });
        s
    }

    #[test]
    fn unlimited_always_runs() {
        let mut s = Sched::default();
        s.refill(1);
        s.charge(1_000_000, true);
        assert!(s.may_run());
        assert_eq!(s.wait_ns(), 0);
        assert!(!s.guaranteed());
    }

    #[test]
    fn token_bucket_earns_its_rate() {
        // 1000/s: the first refill is a full burst (32 ms: 32 descriptors).
        let mut s = limited(1000);
        s.refill(1_000);
        // One more than the burst: the bucket owes one descriptor, which
        // takes 1 ms to earn.
        s.charge(33, true);
        assert!(!s.may_run());
        let wait = s.wait_ns();
        assert!(wait > 999_000 && wait <= 1_000_002);
        s.refill(1_000 + 500_000);
        assert!(!s.may_run());
        s.refill(1_000 + 1_000_002);
        assert!(s.may_run());
    }

    #[test]
    fn bucket_holds_at_most_its_burst() {
        let mut s = limited(1000);
        s.refill(1);
        // A long idle spell earns no more than the burst.
        s.refill(10_000_000_000);
        s.charge(32, true);
        assert!(!s.may_run());
    }

    #[test]
    fn guarantee_spends_its_own_credit() {
        let mut s = Sched::default();
        s.set(&Qos {
            guaranteed_rate: 1000,
            ..DEFAULT_QOS
        });
        s.refill(1);
        assert!(s.guaranteed());
        let deficit = s.deficit;
        s.charge(32, false);
        assert!(!s.guaranteed());
        // The round robin's credit is untouched by guaranteed work.
        assert_eq!(s.deficit, deficit);
    }

    #[test]
    fn guarantee_waits_for_a_chunk() {
        let mut s = Sched::default();
        s.set(&Qos {
            guaranteed_rate: 100_000,
            ..DEFAULT_QOS
        });
        // The first refill is a full burst: 3200 descriptors, a chunk.
        s.refill(1);
        assert!(s.guarantee_due(4096, 64));
        s.charge(3200, false);
        // 100 us earn 10 descriptors: due for 10 waiting, not for 4096.
        s.refill(1 + 100_000);
        assert!(s.guarantee_due(10, 64));
        assert!(!s.guarantee_due(4096, 64));
        // 640 us earn the 64 of a chunk.
        s.refill(1 + 640_000);
        assert!(s.guarantee_due(4096, 64));
        // A bucket smaller than a chunk (1000/s holds 32): due when full.
        let mut t = Sched::default();
        t.set(&Qos {
            guaranteed_rate: 1000,
            ..DEFAULT_QOS
        });
        t.refill(1);
        t.charge(32, false);
        t.refill(1 + 31_000_000);
        assert!(!t.guarantee_due(4096, 64));
        t.refill(1 + 32_000_000);
        assert!(t.guarantee_due(4096, 64));
        // No guarantee: never due.
        assert!(!Sched::default().guarantee_due(1, 64));
    }

    fn weighted(weight: u32) -> Sched {
        let mut s = Sched::default();
        s.set(&Qos {
            weight,
            ..DEFAULT_QOS
        });
        s
    }

    #[test]
    fn quantum_follows_the_weight() {
        // Equal weights: ROUND_BASE descriptors each.
        assert_eq!(weighted(100).quantum(100, 200), ROUND_BASE * UNIT);
        // 1:2:4: the lightest gets ROUND_BASE, the others 2 and 4 times.
        assert_eq!(weighted(1).quantum(1, 7), ROUND_BASE * UNIT);
        assert_eq!(weighted(4).quantum(1, 7), 4 * ROUND_BASE * UNIT);
        // 1:200: scaled to ROUND_MAX in all, the ratio kept, never below
        // one descriptor.
        let heavy = weighted(200).quantum(1, 201);
        let light = weighted(1).quantum(1, 201);
        assert!(heavy + light <= ROUND_MAX * UNIT);
        assert_eq!(light, UNIT.max(ROUND_MAX * UNIT / 201));
        assert_eq!(heavy, 200 * ROUND_MAX * UNIT / 201);
    }
}

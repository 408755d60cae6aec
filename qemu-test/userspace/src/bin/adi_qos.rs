// SPDX-License-Identifier: GPL-2.0

//! Quality of service between ADIs: the per-ADI knobs of `qos/` (weight,
//! priority, max_rate, guaranteed_rate, threshold), their validation, the
//! PF's admission control of guaranteed rates, and what the engine does
//! with them: a live token-bucket rate limit, weighted shares among ADIs
//! of equal priority, strict priority levels, settings that survive a
//! reset, and a shared portal's threshold refusing work with `Retry`.
//!
//! Expects vdcm.ko and vdcm_sim.ko loaded with `num_pfs=2` and the
//! defaults otherwise (1024 queue pairs and portals, `qos_capacity`
//! whatever it is: the test reads it).
//!
//!     adi_qos [--seed N] [--secs N]   (--secs: the knob fuzz's duration)
//!
//! Rates are measured with the ADI's `stats/descriptors` counter while its
//! ring is kept full of NOPs: the ring memory is zero, which is a NOP
//! without completion record or interrupt, so keeping it full is only a
//! matter of publishing tails.

use std::io;
use std::sync::atomic::fence;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;
use std::time::Instant;

use vdcm_selftests::abi;
use vdcm_selftests::adv;
use vdcm_selftests::adv::Rng;
use vdcm_selftests::desc::Completion;
use vdcm_selftests::desc::Descriptor;
use vdcm_selftests::desc::Opcode;
use vdcm_selftests::desc::Status;
use vdcm_selftests::desc::COMPLETION_SIZE;
use vdcm_selftests::desc::DESC_SIZE;
use vdcm_selftests::dma;
use vdcm_selftests::dma::Portal;
use vdcm_selftests::dma::Queue;
use vdcm_selftests::dma::Tenant;
use vdcm_selftests::load;
use vdcm_selftests::load::capacity;
use vdcm_selftests::load::create;
use vdcm_selftests::load::drive;
use vdcm_selftests::load::guaranteed_left as left;
use vdcm_selftests::load::measure;
use vdcm_selftests::load::measure_one;
use vdcm_selftests::load::pf_path;
use vdcm_selftests::load::qos_get as knob;
use vdcm_selftests::load::qos_set as set;
use vdcm_selftests::load::qos_try_set as try_set;
use vdcm_selftests::load::queue_status;
use vdcm_selftests::load::write_raw;
use vdcm_selftests::load::Feeder;
use vdcm_selftests::mdev::Mdev;
use vdcm_selftests::mdev::Removed;
use vdcm_selftests::tap::ensure;
use vdcm_selftests::tap::note;
use vdcm_selftests::tap::Outcome;
use vdcm_selftests::tap::Reporter;

const PF: &str = "vdcm_sim0";
/// The second PF: its guarantees are its own.
const OTHER_PF: &str = "vdcm_sim1";
const TYPE_1Q: &str = "vdcm_sim-1q";
const TYPE_SHARED: &str = "vdcm_sim-shared";

/// The five knobs of an ADI's `qos/`.
const KNOBS: [&str; 5] = [
    "weight",
    "priority",
    "max_rate",
    "guaranteed_rate",
    "threshold",
];
/// Defaults and ranges of the interface.
const WEIGHT_DEFAULT: u64 = 100;
const WEIGHT_MAX: u64 = 200;
const PRIORITY_MAX: u64 = 15;
const MAX_RATE_MAX: u64 = 10_000_000;
const THRESHOLD_MAX: u64 = abi::PORTAL_SLOTS as u64;

/// IOVA the tenant's memory is mapped at (`load::open`'s), and its layout
/// (offsets).
const IOVA: u64 = load::IOVA;
/// The knob fuzz's MEMMOVE ring (a feeder's ring of `load::RING_SIZE`
/// zero-byte NOPs is at offset 0 too: `load::Feeder::new`).
const RING: usize = 0;
/// Completion records, 32 bytes each (up to 64).
const COMPL: usize = 0x4_0000;
/// Sources and destinations of the data descriptors, `XFER` bytes each.
const SRC: usize = 0x4_8000;
const DST: usize = 0x5_0000;
const XFER: usize = 256;
const MEM: usize = 0x6_0000;
/// Longest wait for one completion record (the engine polls its quiet
/// queues at least every 32 ms; TCG is slow, not that slow).
const TIMEOUT: Duration = Duration::from_secs(5);

/// Traffic before a measurement, so the engine's scheduler and the token
/// bucket are past their start (a bucket starts with a burst).
const WARMUP: Duration = Duration::from_secs(1);
/// The window of the unlimited-rate measurement.
const UNLIMITED_WINDOW: Duration = Duration::from_secs(1);
/// Time a new setting is given to take effect: the interface says live
/// settings apply within a second.
const SETTLE: Duration = Duration::from_secs(1);
/// The window a rate limit is checked over: at `R1_MAX` it counts 4000
/// descriptors, so the tolerance is far above the counting granularity.
const RATE_WINDOW: Duration = Duration::from_secs(2);
/// Relative tolerance of an enforced rate (token bucket refill jitter,
/// sysfs read latency under TCG).
const RATE_TOL: f64 = 0.10;
/// The first rate limit: at most this, and at most a quarter of the
/// unlimited rate so the limit, not the engine, sets the pace.
const R1_MAX: u64 = 2000;
/// Below this the unlimited rate is too low for the test to tell a limit
/// from noise: the engine is broken (or absurdly slow).
const R1_MIN: u64 = 100;
/// The window of the weighted-share measurement: 3 s of a saturated
/// engine is ~300k-900k descriptors, so even the weight-1 ADI's share is
/// counted over tens of thousands.
const SHARE_WINDOW: Duration = Duration::from_secs(3);
/// Relative tolerance of a weighted share (DRR quanta are whole polls).
const SHARE_TOL: f64 = 0.15;
/// The lower priority level's rate while the higher one is saturated, at
/// most this fraction of the higher one's (strict priority: ~0, plus the
/// odd poll where the higher ring was between refills).
const STARVE_MAX: f64 = 0.02;
/// The lower level's rate once the higher stops, at least this fraction
/// of what the higher one had (it gets the whole engine).
const RISE_MIN: f64 = 0.5;
/// The window after the higher level stops: the interface says within 1 s.
const RISE_WINDOW: Duration = Duration::from_secs(1);
/// Threshold test: threshold and how many descriptors beyond it.
const THRESH_T: usize = 8;
const THRESH_K: usize = 5;
/// Knob fuzz: default duration (`--secs` overrides), and the data
/// descriptors of one traffic group (more than small thresholds, fewer
/// than the 64-slot ring and the 63-slot portal).
const FUZZ_SECS: u64 = 10;
const GROUP: usize = 16;
/// A group not done in this long is stuck: the slowest valid setting the
/// fuzz makes (max_rate 1) lasts only until the next max_rate write.
const GROUP_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------
// sysfs: the knobs and the PF's figures are `load`'s; what a refused
// write must do

fn errno_name(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

/// Writing `text` to `k` must fail with `errno` and leave the value.
fn refused(m: &Mdev, k: &str, text: &str, errno: i32) -> Outcome {
    let before = knob(m, k)?;
    match try_set(m, k, text) {
        Err(e) if e.raw_os_error() == Some(errno) => {}
        other => {
            return Err(format!(
                "write {text:?} to qos/{k} (holding {before}): {other:?}, want {}",
                errno_name(errno)
            ))
        }
    }
    let after = knob(m, k)?;
    ensure(after == before, || {
        format!("qos/{k} {before} -> {after} after a refused write of {text:?}")
    })
}

// ---------------------------------------------------------------------
// ADIs: `load`'s feeders, kept full by `load::drive` from this thread

/// Opens the created ADI `mdev` with `MEM` bytes at `IOVA` (see
/// `load::open`).
fn open(mdev: Removed) -> Result<Tenant, String> {
    load::open(mdev, MEM)
}

/// A 1q ADI whose ring of NOPs (zero bytes) is kept full on demand,
/// refilled by counter: the rate the engine gives it is its
/// `stats/descriptors` over time.
fn feeder(mdev: Removed) -> Result<Feeder, String> {
    Feeder::new(open(mdev)?)
}

/// The feeder's unlimited rate, and `R1` derived from it.
fn unlimited_and_r1(f: &mut Feeder) -> Result<(f64, u64), String> {
    drive(std::slice::from_mut(f), Duration::from_millis(300))?;
    let u = measure_one(f, UNLIMITED_WINDOW)?;
    let r1 = R1_MAX.min((u / 4.0) as u64);
    note(format!("unlimited rate {u:.0}/s, R1 = {r1}/s"));
    ensure(r1 >= R1_MIN, || {
        format!(
            "unlimited rate {u:.0} descriptors/s ({}): too low to test a limit",
            queue_status(&f.t.dev)
        )
    })?;
    Ok((u, r1))
}

fn within(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want
}

/// Checks the feeder's rate over `RATE_WINDOW` is `want` ± `RATE_TOL`.
fn check_rate(f: &mut Feeder, want: u64, what: &str) -> Outcome {
    let r = measure_one(f, RATE_WINDOW)?;
    note(format!("{what}: {r:.0}/s, want {want}/s ± {RATE_TOL}"));
    ensure(within(r, want as f64, RATE_TOL), || {
        format!(
            "{what}: {r:.0} descriptors/s over {RATE_WINDOW:?}, want {want} ± {:.0} % ({})",
            RATE_TOL * 100.0,
            queue_status(&f.t.dev)
        )
    })
}

// ---------------------------------------------------------------------
// Points

fn defaults_and_pf_group() -> Outcome {
    for pf in [PF, OTHER_PF] {
        let (cap, l) = (capacity(pf)?, left(pf)?);
        ensure(cap > 0, || format!("{pf}: qos/capacity {cap}"))?;
        ensure(l == cap, || {
            format!("{pf}: qos/guaranteed_left {l}, capacity {cap}, with no guarantee held")
        })?;
    }
    let one = create(PF, TYPE_1Q)?;
    let shared = create(PF, TYPE_SHARED)?;
    for (m, ty, threshold) in [
        (&one.0, TYPE_1Q, 0),
        (&shared.0, TYPE_SHARED, THRESHOLD_MAX),
    ] {
        let want = [WEIGHT_DEFAULT, 0, 0, 0, threshold];
        for (k, want) in KNOBS.iter().zip(want) {
            let got = knob(m, k)?;
            ensure(got == want, || {
                format!("new {ty} ADI: qos/{k} {got}, want {want}")
            })?;
        }
        let retries = vdcm_selftests::sysfs::read_u64(m.dir().join("stats/retries"))?;
        ensure(retries == 0, || {
            format!("new {ty} ADI: stats/retries {retries}")
        })?;
    }
    let (cap, l) = (capacity(PF)?, left(PF)?);
    ensure(l == cap, || {
        format!("guaranteed_left {l} with two new ADIs, capacity {cap}")
    })?;
    // The PF's figures are read-only.
    for name in ["capacity", "guaranteed_left"] {
        let r = write_raw(&pf_path(PF, name), "1\n");
        ensure(r.is_err(), || format!("{PF}: writing qos/{name} succeeded"))?;
    }
    let (cap2, l2) = (capacity(PF)?, left(PF)?);
    ensure(cap2 == cap && l2 == l, || {
        format!("capacity {cap} -> {cap2}, guaranteed_left {l} -> {l2} after writes")
    })?;
    note(format!("{PF}: capacity {cap}"));
    Ok(())
}

/// Not a decimal number with an optional newline: EINVAL for every knob.
const GARBAGE: [&str; 10] = [
    "\n", // empty (a zero-length write never reaches the store)
    "abc",
    "-1",
    "+1",
    "0x10",
    "1 2",
    " 1",
    "12abc",
    "1.5",
    "18446744073709551616",
];

fn knob_validation() -> Outcome {
    let one = create(PF, TYPE_1Q)?;
    let shared = create(PF, TYPE_SHARED)?;
    let a = &one.0;
    let einval = libc::EINVAL;
    // (knob, valid values, invalid numbers); valid ones are written with
    // and without the newline.
    let cases: [(&str, &[u64], &[u64]); 4] = [
        ("weight", &[1, WEIGHT_MAX, 37], &[0, 201, 1 << 32 | 1]),
        ("priority", &[0, PRIORITY_MAX, 5], &[16, 1 << 32]),
        ("max_rate", &[0, MAX_RATE_MAX, 1234], &[10_000_001, 1 << 32]),
        ("guaranteed_rate", &[0, 1, 0], &[]),
    ];
    for (k, valid, invalid) in cases {
        for (i, &v) in valid.iter().enumerate() {
            let text = if i % 2 == 0 {
                format!("{v}\n")
            } else {
                v.to_string()
            };
            try_set(a, k, &text).map_err(|e| format!("write {text:?} to qos/{k}: {e}"))?;
            let got = knob(a, k)?;
            ensure(got == v, || format!("qos/{k} reads {got} after {text:?}"))?;
        }
        for v in invalid {
            refused(a, k, &format!("{v}\n"), einval)?;
        }
        for g in GARBAGE {
            refused(a, k, g, einval)?;
        }
    }
    // Thresholds: 1..=63 on the shared type; no write on a dedicated one.
    let s = &shared.0;
    for v in [1, THRESHOLD_MAX, 20] {
        set(s, "threshold", v)?;
    }
    for v in [0, THRESHOLD_MAX + 1, 1 << 32 | 1] {
        refused(s, "threshold", &format!("{v}\n"), einval)?;
    }
    for g in GARBAGE {
        refused(s, "threshold", g, einval)?;
    }
    for v in [10, 0, 1, THRESHOLD_MAX] {
        refused(a, "threshold", &format!("{v}\n"), einval)?;
    }
    ensure(knob(a, "threshold")? == 0, || {
        "1q threshold no longer reads 0".into()
    })?;
    // guaranteed_rate against max_rate, both ways.
    set(a, "guaranteed_rate", 0)?;
    set(a, "max_rate", 1000)?;
    refused(a, "guaranteed_rate", "1001\n", einval)?;
    set(a, "guaranteed_rate", 1000)?;
    refused(a, "max_rate", "999\n", einval)?;
    refused(a, "max_rate", "1\n", einval)?;
    let (cap, l) = (capacity(PF)?, left(PF)?);
    ensure(l + 1000 == cap, || {
        format!("guaranteed_left {l} with 1000 guaranteed, capacity {cap}")
    })?;
    set(a, "max_rate", 0)?;
    set(a, "max_rate", 1000)?;
    set(a, "guaranteed_rate", 0)?;
    set(a, "max_rate", 0)?;
    // The same on the shared type, and its other knobs' bounds.
    set(s, "max_rate", 500)?;
    refused(s, "guaranteed_rate", "501\n", einval)?;
    set(s, "guaranteed_rate", 500)?;
    refused(s, "max_rate", "499\n", einval)?;
    set(s, "guaranteed_rate", 0)?;
    set(s, "max_rate", 0)?;
    set(s, "weight", WEIGHT_MAX)?;
    refused(s, "weight", "0\n", einval)?;
    set(s, "priority", PRIORITY_MAX)?;
    refused(s, "priority", "16\n", einval)?;
    let l = left(PF)?;
    ensure(l == cap, || {
        format!("guaranteed_left {l} after the guarantees went back to 0, capacity {cap}")
    })
}

fn admission() -> Outcome {
    let cap = capacity(PF)?;
    let l0 = left(PF)?;
    ensure(l0 == cap, || {
        format!(
            "guaranteed_left {l0} before the test, capacity {cap}: another ADI holds a guarantee"
        )
    })?;
    ensure(cap >= 2, || format!("capacity {cap}: too small to split"))?;
    let other0 = left(OTHER_PF)?;
    let other_same = |step: &str| -> Outcome {
        let now = left(OTHER_PF)?;
        ensure(now == other0, || {
            format!("{step}: {OTHER_PF}'s guaranteed_left {other0} -> {now}")
        })
    };
    let expect_left = |want: u64, step: &str| -> Outcome {
        let l = left(PF)?;
        ensure(l == want, || {
            format!("{step}: guaranteed_left {l}, want {want} (capacity {cap})")
        })
    };
    let a = create(PF, TYPE_1Q)?;
    let b = create(PF, TYPE_1Q)?;
    let half = cap / 2;
    let rest = cap - half;
    set(&a.0, "guaranteed_rate", half)?;
    expect_left(rest, "A holds capacity/2")?;
    other_same("A holds capacity/2")?;
    refused(
        &b.0,
        "guaranteed_rate",
        &format!("{}\n", rest + 1),
        libc::ENOSPC,
    )?;
    expect_left(rest, "B refused")?;
    set(&b.0, "guaranteed_rate", rest)?;
    expect_left(0, "B holds the rest")?;
    other_same("B holds the rest")?;
    // Rewriting a guarantee counts it once; growing it past a full PF fails.
    set(&a.0, "guaranteed_rate", half)?;
    refused(
        &a.0,
        "guaranteed_rate",
        &format!("{}\n", half + 1),
        libc::ENOSPC,
    )?;
    expect_left(0, "A rewritten")?;
    // Removal gives A's guarantee back.
    drop(a);
    expect_left(half, "A removed")?;
    other_same("A removed")?;
    set(&b.0, "guaranteed_rate", 0)?;
    expect_left(cap, "B back to 0")?;
    other_same("B back to 0")?;
    // The other PF's pool is its own: it can be filled while this one is.
    set(&b.0, "guaranteed_rate", cap)?;
    expect_left(0, "B holds all")?;
    let c = create(OTHER_PF, TYPE_1Q)?;
    let ocap = capacity(OTHER_PF)?;
    let give = other0.min(ocap);
    set(&c.0, "guaranteed_rate", give)?;
    let ol = left(OTHER_PF)?;
    ensure(ol == other0 - give, || {
        format!("{OTHER_PF}: guaranteed_left {ol} with {give} of {other0} taken")
    })?;
    expect_left(0, "the other PF's ADI took its guarantee")?;
    set(&c.0, "guaranteed_rate", 0)?;
    set(&b.0, "guaranteed_rate", 0)?;
    expect_left(cap, "all back to 0")?;
    other_same("all back to 0")
}

fn rate_limit_live() -> Outcome {
    let mut f = feeder(create(PF, TYPE_1Q)?)?;
    let (_, r1) = unlimited_and_r1(&mut f)?;
    set(f.mdev(), "max_rate", r1)?;
    drive(std::slice::from_mut(&mut f), SETTLE)?;
    check_rate(&mut f, r1, "max_rate R1")?;
    let r2 = r1 / 2;
    set(f.mdev(), "max_rate", r2)?;
    drive(std::slice::from_mut(&mut f), SETTLE)?;
    check_rate(&mut f, r2, "max_rate R2 = R1/2, set live")?;
    set(f.mdev(), "max_rate", 0)?;
    drive(std::slice::from_mut(&mut f), Duration::from_millis(500))?;
    let r = measure_one(&mut f, UNLIMITED_WINDOW)?;
    note(format!("max_rate 0 again: {r:.0}/s"));
    ensure(r > 2.0 * r1 as f64, || {
        format!(
            "max_rate back to 0: {r:.0} descriptors/s, want above 2 x R1 = {}",
            2 * r1
        )
    })
}

fn weights() -> Outcome {
    let ws = [1u64, 2, 4];
    let total_w: u64 = ws.iter().sum();
    let mut fs = Vec::new();
    for w in ws {
        // Set before the device is opened: it applies all the same.
        let m = create(PF, TYPE_1Q)?;
        set(&m.0, "weight", w)?;
        // Refilled by marks (see `priority`): a ring that runs dry while
        // its feeder waits on a counter read gives its share away.
        fs.push(Feeder::marked(open(m)?)?);
    }
    drive(&mut fs, WARMUP)?;
    let rates = measure(&mut fs, SHARE_WINDOW)?;
    let total: f64 = rates.iter().sum();
    ensure(total > 0.0, || "no descriptor ran".into())?;
    let shares: Vec<f64> = rates.iter().map(|r| r / total).collect();
    note(format!(
        "weights {ws:?}: rates {:?}/s, shares {:?}, want {:?}",
        rates.iter().map(|r| r.round() as u64).collect::<Vec<_>>(),
        shares.iter().map(|s| format!("{s:.3}")).collect::<Vec<_>>(),
        ws.iter()
            .map(|&w| format!("{:.3}", w as f64 / total_w as f64))
            .collect::<Vec<_>>()
    ));
    for ((&w, s), f) in ws.iter().zip(&shares).zip(&fs) {
        let want = w as f64 / total_w as f64;
        ensure(within(*s, want, SHARE_TOL), || {
            format!(
                "weight {w}: share {s:.3}, want {want:.3} ± {:.0} % ({})",
                SHARE_TOL * 100.0,
                queue_status(&f.t.dev)
            )
        })?;
    }
    Ok(())
}

fn priority() -> Outcome {
    let h = create(PF, TYPE_1Q)?;
    set(&h.0, "priority", 1)?;
    let l = create(PF, TYPE_1Q)?;
    set(&l.0, "priority", 0)?;
    // Refilled by completion marks, not by counter reads: a counter read
    // waits for the engine's poll, and a higher level that runs dry while
    // its feeder waits is not saturated, so the lower one would rightly
    // get the engine.
    let mut fs = vec![Feeder::marked(open(h)?)?, Feeder::marked(open(l)?)?];
    drive(&mut fs, WARMUP)?;
    let r = measure(&mut fs, RATE_WINDOW)?;
    let (rh, rl) = (r[0], r[1]);
    note(format!(
        "both saturated: H (priority 1) {rh:.0}/s, L (priority 0) {rl:.0}/s"
    ));
    ensure(rh > 0.0, || {
        format!("H ran nothing ({})", queue_status(&fs[0].t.dev))
    })?;
    ensure(rl < STARVE_MAX * rh, || {
        format!(
            "L ran {rl:.0}/s while H ran {rh:.0}/s: more than {:.0} % of H's",
            STARVE_MAX * 100.0
        )
    })?;
    fs[0].on = false;
    let r = measure(&mut fs, RISE_WINDOW)?;
    note(format!("H stopped: L {:.0}/s over {RISE_WINDOW:?}", r[1]));
    ensure(r[1] > RISE_MIN * rh, || {
        format!(
            "H stopped: L ran {:.0}/s over the next {RISE_WINDOW:?}, want above {:.0} % of H's {rh:.0}/s ({})",
            r[1],
            RISE_MIN * 100.0,
            queue_status(&fs[1].t.dev)
        )
    })
}

fn reset_keeps_settings() -> Outcome {
    let mut f = feeder(create(PF, TYPE_1Q)?)?;
    let (_, r1) = unlimited_and_r1(&mut f)?;
    let want = [("weight", 7), ("priority", 3), ("max_rate", r1)];
    for (k, v) in want {
        set(f.mdev(), k, v)?;
    }
    // Work queued at the limit when the reset comes.
    drive(std::slice::from_mut(&mut f), Duration::from_millis(500))?;
    let resets = f.t.stat("resets")?;
    f.t.dev.reset()?;
    let now = f.t.stat("resets")?;
    ensure(now == resets + 1, || format!("resets {resets} -> {now}"))?;
    let check = |m: &Mdev, when: &str| -> Outcome {
        for (k, v) in want {
            let got = knob(m, k)?;
            ensure(got == v, || {
                format!("{when}: qos/{k} {got}, was set to {v}")
            })?;
        }
        Ok(())
    };
    check(f.mdev(), "after VFIO_DEVICE_RESET")?;
    f.restart()?;
    drive(std::slice::from_mut(&mut f), SETTLE)?;
    check_rate(&mut f, r1, "max_rate R1 after the reset")?;
    check(f.mdev(), "after traffic following the reset")?;
    // And a close and reopen.
    let t = f.into_tenant();
    let Tenant {
        dev,
        mem,
        efd,
        mdev,
    } = t;
    drop((dev, mem, efd));
    check(&mdev.0, "after close")?;
    let t = open(mdev)?;
    check(&t.mdev.0, "after close and reopen")
}

/// Writes `descs` into the portal's slots from `tail` on, then publishes
/// the new tail once; returns it.
fn portal_submit(p: &Portal, mut tail: u32, descs: &[Descriptor]) -> u32 {
    for d in descs {
        let slot = (tail % abi::PORTAL_SLOTS) as usize;
        p.page().write_bytes(slot * DESC_SIZE, &d.to_bytes());
        tail = tail.wrapping_add(1);
    }
    fence(SeqCst);
    p.page().write_u32(abi::PORTAL_TAIL, tail);
    tail
}

fn compl_off(i: usize) -> usize {
    COMPL + i * COMPLETION_SIZE
}

fn pattern_of(i: usize, round: u64) -> u64 {
    0x0101_0101_0101_0101u64.wrapping_mul(i as u64 + 1) ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Submits `n` FILLs of `XFER` bytes (slot i to `DST + i * XFER`, its
/// completion record at `compl_off(i)`, the last asking for an
/// interrupt) in one tail update; waits for the n records.
fn fill_round(
    t: &Tenant,
    p: &Portal,
    tail: &mut u32,
    n: usize,
    round: u64,
) -> Result<Vec<Completion>, String> {
    t.mem.write(COMPL, &vec![0u8; n * COMPLETION_SIZE]);
    t.mem.write(DST, &vec![0u8; n * XFER]);
    let descs: Vec<Descriptor> = (0..n)
        .map(|i| {
            let d = Descriptor::new(Opcode::Fill, XFER as u32, 0, IOVA + (DST + i * XFER) as u64)
                .with_operand(pattern_of(i, round))
                .with_completion(IOVA + compl_off(i) as u64);
            if i + 1 == n {
                d.with_interrupt()
            } else {
                d
            }
        })
        .collect();
    dma::wait_eventfd(&t.efd, Duration::ZERO);
    *tail = portal_submit(p, *tail, &descs);
    (0..n)
        .map(|i| {
            dma::wait_completion(&t.mem, compl_off(i), TIMEOUT).ok_or_else(|| {
                format!(
                    "descriptor {i} of {n}: no completion record in {TIMEOUT:?} ({})",
                    queue_status(&t.dev)
                )
            })
        })
        .collect()
}

fn filled(t: &Tenant, i: usize, round: u64) -> bool {
    let want = pattern_of(i, round).to_le_bytes();
    t.mem
        .bytes(DST + i * XFER, XFER)
        .chunks_exact(8)
        .all(|c| c == want)
}

fn threshold_retry() -> Outcome {
    let m = create(PF, TYPE_SHARED)?;
    // Set before open.
    set(&m.0, "threshold", THRESH_T as u64)?;
    let t = open(m)?;
    let p = Portal::start(&t.dev, 0)?;
    let mut tail = 0u32;
    let n = THRESH_T + THRESH_K;
    let r0 = t.stat("retries")?;
    let c = fill_round(&t, &p, &mut tail, n, 1)?;
    let got: Vec<Status> = c.iter().map(|c| c.status).collect();
    let want: Vec<Status> = (0..n)
        .map(|i| {
            if i < THRESH_T {
                Status::Success
            } else {
                Status::Retry
            }
        })
        .collect();
    ensure(got == want, || {
        format!("threshold {THRESH_T}, {n} descriptors in one submission: statuses {got:?}, want {want:?}")
    })?;
    for i in 0..n {
        let (ran, zero) = (
            filled(&t, i, 1),
            t.mem.bytes(DST + i * XFER, XFER).iter().all(|&b| b == 0),
        );
        if i < THRESH_T {
            ensure(ran, || {
                format!("descriptor {i}: Success but nothing filled")
            })?;
        } else {
            ensure(zero, || {
                format!("descriptor {i}: Retry, yet its destination was written")
            })?;
        }
    }
    ensure(dma::wait_eventfd(&t.efd, TIMEOUT) >= 1, || {
        "no interrupt for the refused descriptor that asked for one".into()
    })?;
    let r1 = t.stat("retries")?;
    ensure(r1 == r0 + THRESH_K as u64, || {
        format!("stats/retries {r0} -> {r1}, want +{THRESH_K}")
    })?;
    // Live: the whole portal again, the same submission runs in full.
    set(&t.mdev.0, "threshold", THRESHOLD_MAX)?;
    let c = fill_round(&t, &p, &mut tail, n, 2)?;
    let got: Vec<Status> = c.iter().map(|c| c.status).collect();
    ensure(got.iter().all(|&s| s == Status::Success), || {
        format!("threshold {THRESHOLD_MAX}, {n} descriptors: statuses {got:?}")
    })?;
    for i in 0..n {
        ensure(filled(&t, i, 2), || {
            format!("threshold {THRESHOLD_MAX}: descriptor {i} did not fill")
        })?;
    }
    let r2 = t.stat("retries")?;
    ensure(r2 == r1, || {
        format!("stats/retries {r1} -> {r2} with nothing refused")
    })
}

// ---------------------------------------------------------------------
// Knob fuzz

/// What a write should get.
#[derive(Debug, PartialEq)]
enum Expect {
    Ok,
    /// One of these errnos.
    Err(Vec<i32>),
}

/// The knob values of one ADI, as the test believes them.
#[derive(Clone, Copy, Debug)]
struct Knobs {
    shared: bool,
    /// In `KNOBS` order.
    v: [u64; 5],
}

const MAX_RATE: usize = 2;
const GUARANTEED: usize = 3;

impl Knobs {
    fn defaults(shared: bool) -> Self {
        Knobs {
            shared,
            v: [
                WEIGHT_DEFAULT,
                0,
                0,
                0,
                if shared { THRESHOLD_MAX } else { 0 },
            ],
        }
    }

    /// What writing `value` (`None`: not a decimal number) to knob `k`
    /// should get, the other ADI holding `other_g` of capacity `cap`.
    fn expect(&self, k: usize, value: Option<u64>, other_g: u64, cap: u64) -> Expect {
        let einval = || Expect::Err(vec![libc::EINVAL]);
        let Some(v) = value else { return einval() };
        let ok_if = |c: bool| if c { Expect::Ok } else { einval() };
        match k {
            0 => ok_if((1..=WEIGHT_MAX).contains(&v)),
            1 => ok_if(v <= PRIORITY_MAX),
            MAX_RATE => ok_if(v <= MAX_RATE_MAX && (v == 0 || v >= self.v[GUARANTEED])),
            GUARANTEED => {
                let m = self.v[MAX_RATE];
                let over_max = m != 0 && v > m;
                let over_cap = other_g.checked_add(v).is_none_or(|s| s > cap);
                match (over_max, over_cap) {
                    (false, false) => Expect::Ok,
                    (true, false) => einval(),
                    // Both wrong: the interface does not order the checks.
                    (true, true) => Expect::Err(vec![libc::EINVAL, libc::ENOSPC]),
                    // Beyond the max_rate range and the capacity: either.
                    (false, true) if v > MAX_RATE_MAX => {
                        Expect::Err(vec![libc::EINVAL, libc::ENOSPC])
                    }
                    (false, true) => Expect::Err(vec![libc::ENOSPC]),
                }
            }
            _ => ok_if(self.shared && (1..=THRESHOLD_MAX).contains(&v)),
        }
    }
}

/// A random text for knob `k`: mostly numbers around its bounds, some not
/// numbers at all. Returns the text and the number it spells.
fn gen_value(r: &mut Rng, k: usize, me: &Knobs, other_g: u64, cap: u64) -> (String, Option<u64>) {
    if r.one_in(5) {
        return (r.pick(&GARBAGE).to_string(), None);
    }
    let v = match k {
        0 => {
            let x = r.below(260);
            r.pick(&[0, 1, 2, WEIGHT_DEFAULT, WEIGHT_MAX, WEIGHT_MAX + 1, x])
        }
        1 => {
            let x = r.below(20);
            r.pick(&[0, 1, PRIORITY_MAX, PRIORITY_MAX + 1, x])
        }
        MAX_RATE => {
            let g = me.v[GUARANTEED];
            let x = 1000 + r.below(MAX_RATE_MAX);
            r.pick(&[
                0,
                0,
                1,
                g,
                g.saturating_sub(1),
                MAX_RATE_MAX,
                MAX_RATE_MAX + 1,
                x,
            ])
        }
        GUARANTEED => {
            let free = cap.saturating_sub(other_g);
            let m = me.v[MAX_RATE];
            let (x, y) = (r.below(cap / 4 + 1), r.below(cap + 10));
            r.pick(&[0, 0, 1, free, free + 1, m, m + 1, x, y])
        }
        _ => {
            let x = r.below(70);
            r.pick(&[0, 1, 8, THRESHOLD_MAX, THRESHOLD_MAX + 1, x])
        }
    };
    let text = if r.one_in(2) {
        format!("{v}\n")
    } else {
        v.to_string()
    };
    (text, Some(v))
}

/// Where an ADI's data descriptors go.
enum Submit<'a> {
    Ring(Queue<'a>),
    Portal { p: Portal, tail: u32 },
}

/// MEMMOVE traffic on one ADI, one group in flight at a time, every
/// result checked.
struct Traffic<'a> {
    t: &'a Tenant,
    path: Submit<'a>,
    /// The group in flight: (slot, round of its source pattern).
    inflight: Vec<(usize, u64)>,
    sent: Instant,
    round: u64,
    /// Successes verified, refusals seen (and resubmitted).
    ok: u64,
    retried: u64,
}

impl<'a> Traffic<'a> {
    fn new(t: &'a Tenant, path: Submit<'a>) -> Self {
        Traffic {
            t,
            path,
            inflight: Vec::new(),
            sent: Instant::now(),
            round: 0,
            ok: 0,
            retried: 0,
        }
    }

    fn shared(&self) -> bool {
        matches!(self.path, Submit::Portal { .. })
    }

    fn src_data(slot: usize, round: u64) -> Vec<u8> {
        (0..XFER)
            .map(|i| (i as u64 ^ (round * 131) ^ (slot as u64 * 7)) as u8)
            .collect()
    }

    /// Sends `slots` (their sources written for `round`s already).
    fn send(&mut self, slots: Vec<(usize, u64)>) {
        let descs: Vec<Descriptor> = slots
            .iter()
            .map(|&(s, _)| {
                self.t.mem.write(compl_off(s), &[0u8; COMPLETION_SIZE]);
                self.t.mem.write(DST + s * XFER, &[0u8; XFER]);
                Descriptor::new(
                    Opcode::MemMove,
                    XFER as u32,
                    IOVA + (SRC + s * XFER) as u64,
                    IOVA + (DST + s * XFER) as u64,
                )
                .with_completion(IOVA + compl_off(s) as u64)
            })
            .collect();
        match &mut self.path {
            Submit::Ring(q) => {
                for d in &descs {
                    q.push(d);
                }
                q.ring();
            }
            Submit::Portal { p, tail } => *tail = portal_submit(p, *tail, &descs),
        }
        self.inflight = slots;
        self.sent = Instant::now();
    }

    fn new_group(&mut self) {
        self.round += 1;
        let round = self.round;
        let slots: Vec<(usize, u64)> = (0..GROUP).map(|s| (s, round)).collect();
        for &(s, r) in &slots {
            self.t.mem.write(SRC + s * XFER, &Self::src_data(s, r));
        }
        self.send(slots);
    }

    /// Checks the group in flight if it is done; resubmits what was
    /// refused, else starts a new group if `more`.
    fn step(&mut self, more: bool) -> Outcome {
        if self.inflight.is_empty() {
            if more {
                self.new_group();
            }
            return Ok(());
        }
        let mut records = Vec::new();
        for &(s, _) in &self.inflight {
            match dma::completion(&self.t.mem, compl_off(s)) {
                Some(c) => records.push(c),
                None if self.sent.elapsed() > GROUP_TIMEOUT => {
                    return Err(format!(
                        "{} MEMMOVEs not done in {GROUP_TIMEOUT:?} ({})",
                        self.inflight.len(),
                        queue_status(&self.t.dev)
                    ))
                }
                None => return Ok(()),
            }
        }
        let mut again = Vec::new();
        for (&(s, r), c) in self.inflight.iter().zip(records) {
            let dst = self.t.mem.bytes(DST + s * XFER, XFER);
            match c.status {
                Status::Success => {
                    ensure(c.done == XFER as u32, || format!("MEMMOVE slot {s}: {c:?}"))?;
                    ensure(dst == Self::src_data(s, r), || {
                        format!("MEMMOVE slot {s} round {r}: wrong bytes at the destination")
                    })?;
                    self.ok += 1;
                }
                Status::Retry if self.shared() => {
                    ensure(dst.iter().all(|&b| b == 0), || {
                        format!("MEMMOVE slot {s}: Retry, yet its destination was written")
                    })?;
                    self.retried += 1;
                    again.push((s, r));
                }
                _ => return Err(format!("MEMMOVE slot {s} round {r}: {c:?}")),
            }
        }
        self.inflight.clear();
        if !again.is_empty() {
            self.send(again);
        } else if more {
            self.new_group();
        }
        Ok(())
    }

    /// Finishes what is in flight (refusals resubmitted), sending nothing
    /// new.
    fn drain(&mut self) -> Outcome {
        let start = Instant::now();
        while !self.inflight.is_empty() {
            self.step(false)?;
            if start.elapsed() > GROUP_TIMEOUT {
                return Err(format!(
                    "traffic did not drain in {GROUP_TIMEOUT:?} ({})",
                    queue_status(&self.t.dev)
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

fn knob_fuzz(seed: u64, secs: u64) -> Outcome {
    note(format!(
        "seed {seed} (replay: adi_qos --seed {seed} --secs {secs})"
    ));
    let cap = capacity(PF)?;
    let l0 = left(PF)?;
    ensure(l0 == cap, || {
        format!("guaranteed_left {l0} before the fuzz, capacity {cap}")
    })?;
    let a = open(create(PF, TYPE_1Q)?)?;
    let b = open(create(PF, TYPE_SHARED)?)?;
    let (d0a, d0b) = (a.stat("descriptors")?, b.stat("descriptors")?);
    let (r0a, r0b) = (a.stat("retries")?, b.stat("retries")?);
    let q = Queue::start(&a.dev, &a.mem, IOVA, 0, RING, 64, 0)?;
    let p = Portal::start(&b.dev, 0)?;
    let mut traffic = [
        Traffic::new(&a, Submit::Ring(q)),
        Traffic::new(&b, Submit::Portal { p, tail: 0 }),
    ];
    let mdevs = [&a.mdev.0, &b.mdev.0];
    let mut model = [Knobs::defaults(false), Knobs::defaults(true)];
    let mut r = Rng::new(seed);
    let mut writes = [0u64; 3]; // ok, EINVAL, ENOSPC
    let start = Instant::now();
    let limit = Duration::from_secs(secs);
    let mut n = 0u64;
    while start.elapsed() < limit {
        n += 1;
        let i = r.below(2) as usize;
        let k = r.below(KNOBS.len() as u64) as usize;
        let other_g = model[1 - i].v[GUARANTEED];
        let (text, value) = gen_value(&mut r, k, &model[i], other_g, cap);
        let want = model[i].expect(k, value, other_g, cap);
        let m = mdevs[i];
        let held = model[i].v;
        let old = held[k];
        let got = try_set(m, KNOBS[k], &text);
        let what = || {
            format!(
                "write #{n}: {text:?} to qos/{} of the {} ADI (holding {held:?})",
                KNOBS[k],
                if i == 0 { "1q" } else { "shared" },
            )
        };
        match (&want, &got) {
            (Expect::Ok, Ok(())) => {
                model[i].v[k] = value.unwrap_or_default();
                writes[0] += 1;
            }
            (Expect::Err(errnos), Err(e)) if errnos.contains(&e.raw_os_error().unwrap_or(0)) => {
                writes[if e.raw_os_error() == Some(libc::ENOSPC) {
                    2
                } else {
                    1
                }] += 1;
            }
            _ => {
                return Err(format!(
                    "{}: got {got:?}, want {}",
                    what(),
                    match &want {
                        Expect::Ok => "success".to_string(),
                        Expect::Err(e) => e
                            .iter()
                            .map(|&e| errno_name(e))
                            .collect::<Vec<_>>()
                            .join(" or "),
                    }
                ))
            }
        }
        let back = knob(m, KNOBS[k])?;
        ensure(back == model[i].v[k], || {
            format!(
                "{}: reads {back} after it, want {} (was {old})",
                what(),
                model[i].v[k]
            )
        })?;
        if k == GUARANTEED {
            let l = left(PF)?;
            let held = model[0].v[GUARANTEED] + model[1].v[GUARANTEED];
            ensure(l + held == cap, || {
                format!("{}: guaranteed_left {l}, {held} held of {cap}", what())
            })?;
        }
        for t in traffic.iter_mut() {
            t.step(true)?;
        }
    }
    // Defaults back (guaranteed_rate first, so that max_rate 0 is not
    // needed to lower it), then the traffic in flight finishes.
    for (m, k) in mdevs.iter().zip(model.iter()) {
        let d = Knobs::defaults(k.shared);
        let order: &[usize] = if k.shared {
            &[GUARANTEED, MAX_RATE, 0, 1, 4]
        } else {
            &[GUARANTEED, MAX_RATE, 0, 1]
        };
        for &j in order {
            set(m, KNOBS[j], d.v[j])?;
        }
    }
    let l = left(PF)?;
    ensure(l == cap, || {
        format!("guaranteed_left {l} after restoring, capacity {cap}")
    })?;
    for t in traffic.iter_mut() {
        t.drain()?;
    }
    note(format!(
        "{n} writes in {:.1} s: {} accepted, {} EINVAL, {} ENOSPC",
        start.elapsed().as_secs_f64(),
        writes[0],
        writes[1],
        writes[2]
    ));
    note(format!(
        "traffic: 1q {} MEMMOVEs verified; shared {} verified, {} refused with Retry and resubmitted",
        traffic[0].ok, traffic[1].ok, traffic[1].retried
    ));
    ensure(writes[0] > 0 && writes[1] > 0, || {
        format!("writes {writes:?}: the fuzz did not try both kinds")
    })?;
    for (t, name, d0, r0) in [
        (&traffic[0], "1q", d0a, r0a),
        (&traffic[1], "shared", d0b, r0b),
    ] {
        ensure(t.ok > 0, || format!("{name}: no MEMMOVE completed"))?;
        let d = t.t.stat("descriptors")? - d0;
        ensure(d >= t.ok, || {
            format!(
                "{name}: stats/descriptors grew by {d}, {} MEMMOVEs verified",
                t.ok
            )
        })?;
        let rt = t.t.stat("retries")? - r0;
        ensure(rt == t.retried, || {
            format!(
                "{name}: stats/retries grew by {rt}, {} Retry records seen",
                t.retried
            )
        })?;
    }
    Ok(())
}

fn main() {
    let seed = adv::arg("--seed").unwrap_or_else(adv::clock_seed);
    let secs = adv::arg("--secs").unwrap_or(FUZZ_SECS);
    let mut t = Reporter::default();
    t.point("qos_defaults_and_pf_group", defaults_and_pf_group);
    t.point("qos_knob_validation", knob_validation);
    t.point("qos_admission", admission);
    t.point("qos_rate_limit_live", rate_limit_live);
    t.point("qos_weights", weights);
    t.point("qos_priority", priority);
    t.point("qos_reset_keeps_settings", reset_keeps_settings);
    t.point("qos_threshold_retry", threshold_retry);
    t.point("qos_knob_fuzz", || knob_fuzz(seed, secs));
    std::process::exit(t.exit_code());
}

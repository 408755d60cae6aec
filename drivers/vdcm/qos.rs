// SPDX-License-Identifier: GPL-2.0

//! Per-ADI QoS: the knobs, their checks and their sysfs files.
//!
//! The core owns the settings of every ADI (`/sys/bus/mdev/devices/<uuid>/
//! qos/`) and the PF's admission control (`<PF device>/qos/`); the PF
//! enforces them through `set_qos`, because scheduling its engine is the
//! device's job. A setting is checked against the header's limits and the
//! ADI's type, admitted (a guaranteed rate against what the PF has left),
//! given to the PF, and only then kept: a refused write changes nothing.
//! Settings belong to the ADI, not to its user: a reset or a new open keeps
//! them, and removal gives the guarantee back.

use core::fmt;

use kernel::prelude::*;
use kernel::sync::aref::ARef;
use kernel::sync::atomic::Atomic;
use kernel::sync::atomic::Relaxed;
use kernel::sync::Arc;

use crate::host::PfLink;
use crate::vdcm_kernel::bindings;
use crate::vdcm_kernel::pf_host::Qos;
use crate::vdcm_kernel::sysfs::parse_u64;
use crate::vdcm_kernel::sysfs::GroupData;
use crate::vdcm_kernel::vfio;
use crate::vdev::Adi;

/// One knob of `qos/`, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Knob {
    /// Share among ADIs of equal priority.
    Weight,
    /// Strict priority level.
    Priority,
    /// Descriptors per second at most; 0: unlimited.
    MaxRate,
    /// Descriptors per second guaranteed; admission-controlled.
    GuaranteedRate,
    /// In-flight cap of a shared ADI's portal.
    Threshold,
}

const KNOBS: [Knob; 5] = [
    Knob::Weight,
    Knob::Priority,
    Knob::MaxRate,
    Knob::GuaranteedRate,
    Knob::Threshold,
];

impl Knob {
    fn get(self, q: &Qos) -> u64 {
        match self {
            Knob::Weight => q.weight.into(),
            Knob::Priority => q.priority.into(),
            Knob::MaxRate => q.max_rate,
            Knob::GuaranteedRate => q.guaranteed_rate,
            Knob::Threshold => q.threshold.into(),
        }
    }
}

/// The settings of a new ADI of a type whose largest threshold is
/// `max_threshold`.
pub fn defaults(max_threshold: u32) -> Qos {
    Qos {
        weight: bindings::VDCM_QOS_WEIGHT_DEFAULT,
        priority: 0,
        max_rate: 0,
        guaranteed_rate: 0,
        threshold: max_threshold,
    }
}

/// `q` with `knob` set to `value`, or why that is not allowed.
pub fn with(q: &Qos, knob: Knob, value: u64, max_threshold: u32) -> Result<Qos, &'static str> {
    let mut n = *q;
    let small = |max: u32| u32::try_from(value).ok().filter(|&v| v <= max);
    match knob {
        Knob::Weight => {
            n.weight = small(bindings::VDCM_QOS_WEIGHT_MAX)
                .filter(|&v| v >= bindings::VDCM_QOS_WEIGHT_MIN)
                .ok_or("weight must be 1 to 200")?;
        }
        Knob::Priority => {
            n.priority =
                small(bindings::VDCM_QOS_PRIORITY_MAX).ok_or("priority must be 0 to 15")?;
        }
        Knob::MaxRate => {
            if value > u64::from(bindings::VDCM_QOS_RATE_MAX) {
                return Err("max_rate must be at most 10000000 descriptors/s (0: unlimited)");
            }
            if value != 0 && value < q.guaranteed_rate {
                return Err("max_rate must not be below guaranteed_rate");
            }
            n.max_rate = value;
        }
        Knob::GuaranteedRate => {
            if q.max_rate != 0 && value > q.max_rate {
                return Err("guaranteed_rate must not exceed max_rate");
            }
            n.guaranteed_rate = value;
        }
        Knob::Threshold => {
            if max_threshold == 0 {
                return Err("this ADI type has no portal threshold");
            }
            n.threshold = small(max_threshold)
                .filter(|&v| v >= 1)
                .ok_or("threshold must be 1 to the portal's depth")?;
        }
    }
    Ok(n)
}

/// Checks every field of `q` for an ADI whose type's largest threshold
/// is `max_threshold` (e.g. settings a migration stream carries).
pub fn check(q: &Qos, max_threshold: u32) -> Result<(), &'static str> {
    let mut n = defaults(max_threshold);
    // In an order that each step's cross-check sees the fields it needs.
    for (knob, value) in [
        (Knob::Weight, u64::from(q.weight)),
        (Knob::Priority, u64::from(q.priority)),
        (Knob::MaxRate, q.max_rate),
        (Knob::GuaranteedRate, q.guaranteed_rate),
    ] {
        n = with(&n, knob, value, max_threshold)?;
    }
    if max_threshold == 0 {
        return if q.threshold == 0 {
            Ok(())
        } else {
            Err("this ADI type has no portal threshold")
        };
    }
    with(&n, Knob::Threshold, q.threshold.into(), max_threshold).map(|_| ())
}

/// The PF's guaranteed capacity and what its ADIs hold of it.
pub struct Admission {
    /// Descriptors per second the PF can guarantee; 0: no QoS.
    pub capacity: u64,
    held: Atomic<u64>,
}

impl Admission {
    /// The admission of a PF of `capacity`.
    pub fn new(capacity: u64) -> Self {
        Admission {
            capacity,
            held: Atomic::new(0),
        }
    }

    /// Capacity nobody holds.
    pub fn left(&self) -> u64 {
        self.capacity.saturating_sub(self.held.load(Relaxed))
    }

    /// Moves an ADI's guarantee from `old` to `new` if `apply` (which gives
    /// the PF the new settings) succeeds; `ENOSPC` if the PF has not that
    /// much left. On error nothing changed.
    pub fn change(&self, old: u64, new: u64, apply: impl FnOnce() -> Result) -> Result {
        let mut held = self.held.load(Relaxed);
        loop {
            let others = held.saturating_sub(old);
            let total = others
                .checked_add(new)
                .filter(|&t| t <= self.capacity)
                .ok_or(ENOSPC)?;
            match self.held.cmpxchg(held, total, Relaxed) {
                Ok(_) => break,
                Err(now) => held = now,
            }
        }
        apply().inspect_err(|_| self.release(new, old))
    }

    /// Gives back `from` and takes `to` instead (no check: undoing a
    /// change, or releasing with `to` 0).
    pub fn release(&self, from: u64, to: u64) {
        let mut held = self.held.load(Relaxed);
        loop {
            let next = held.saturating_sub(from).saturating_add(to);
            match self.held.cmpxchg(held, next, Relaxed) {
                Ok(_) => return,
                Err(now) => held = now,
            }
        }
    }
}

/// The files of an ADI's `qos/`.
pub struct AdiQosFiles {
    /// The ADI (kept while its files exist; removed before it goes).
    pub adi: ARef<vfio::Device<Adi>>,
}

impl GroupData for AdiQosFiles {
    const NAME: &'static CStr = c"qos";
    const FILES: &'static [&'static CStr] = &[
        c"weight",
        c"priority",
        c"max_rate",
        c"guaranteed_rate",
        c"threshold",
    ];

    fn writable(_index: usize) -> bool {
        true
    }

    fn show(&self, index: usize, out: &mut dyn fmt::Write) -> fmt::Result {
        let knob = KNOBS.get(index).ok_or(fmt::Error)?;
        write!(out, "{}", knob.get(&self.adi.qos()))
    }

    fn store(&self, index: usize, input: &[u8]) -> Result {
        let knob = *KNOBS.get(index).ok_or(EINVAL)?;
        let name = Self::FILES.get(index).ok_or(EINVAL)?;
        let dev: &vfio::Device<Adi> = &self.adi;
        let Ok(value) = parse_u64(input) else {
            dev_err!(
                dev.parent(),
                "qos/{}: not a decimal number\n",
                name.to_str().unwrap_or("?")
            );
            return Err(EINVAL);
        };
        dev.set_qos_knob(dev.parent(), knob, name, value)
    }
}

/// The files of a PF's `qos/` (beside its mdev types).
pub struct PfQosFiles {
    /// The PF.
    pub link: Arc<PfLink>,
}

impl GroupData for PfQosFiles {
    const NAME: &'static CStr = c"qos";
    const FILES: &'static [&'static CStr] = &[c"capacity", c"guaranteed_left"];

    fn writable(_index: usize) -> bool {
        false
    }

    fn show(&self, index: usize, out: &mut dyn fmt::Write) -> fmt::Result {
        let a = &self.link.admission;
        match index {
            0 => write!(out, "{}", a.capacity),
            _ => write!(out, "{}", a.left()),
        }
    }

    fn store(&self, _index: usize, _input: &[u8]) -> Result {
        Err(EPERM)
    }
}

#[kunit_tests(vdcm_qos)]
mod tests {
    use super::*;

    #[test]
    fn parse_takes_decimal_only() {
        assert_eq!(parse_u64(b"0"), Ok(0));
        assert_eq!(parse_u64(b"200\n"), Ok(200));
        assert_eq!(parse_u64(b"18446744073709551615"), Ok(u64::MAX));
        for bad in [
            &b""[..],
            b"\n",
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"0x10",
            b"1\n\n",
            b"18446744073709551616",
        ] {
            assert_eq!(parse_u64(bad), Err(EINVAL));
        }
    }

    #[test]
    fn limits_of_each_knob() {
        let d = defaults(63);
        assert_eq!((d.weight, d.priority, d.threshold), (100, 0, 63));
        for (knob, good, bad) in [
            (Knob::Weight, [1u64, 200], [0u64, 201]),
            (Knob::Priority, [0, 15], [16, 1 << 32]),
            (Knob::MaxRate, [0, 10_000_000], [10_000_001, u64::MAX]),
            (Knob::Threshold, [1, 63], [0, 64]),
        ] {
            for v in good {
                assert_eq!(with(&d, knob, v, 63).map(|q| knob.get(&q)), Ok(v));
            }
            for v in bad {
                assert!(with(&d, knob, v, 63).is_err());
            }
        }
        // A dedicated type has no threshold at all.
        assert!(with(&defaults(0), Knob::Threshold, 1, 0).is_err());
    }

    #[test]
    fn guarantee_within_the_rate_limit() {
        let limited = with(&defaults(0), Knob::MaxRate, 1000, 0).unwrap_or(defaults(0));
        assert!(with(&limited, Knob::GuaranteedRate, 1001, 0).is_err());
        let g = with(&limited, Knob::GuaranteedRate, 1000, 0);
        assert!(g.is_ok());
        let g = g.unwrap_or(limited);
        assert!(with(&g, Knob::MaxRate, 999, 0).is_err());
        assert!(with(&g, Knob::MaxRate, 0, 0).is_ok());
        assert!(check(&g, 0).is_ok());
        assert!(check(&Qos { threshold: 5, ..g }, 0).is_err());
        assert!(check(&Qos { weight: 0, ..g }, 0).is_err());
    }

    #[test]
    fn admission_refuses_oversubscription() {
        let a = Admission::new(100);
        assert_eq!(a.change(0, 60, || Ok(())), Ok(()));
        assert_eq!(a.change(0, 41, || Ok(())), Err(ENOSPC));
        assert_eq!(a.left(), 40);
        // A PF refusing the change leaves the capacity as it was.
        assert_eq!(a.change(0, 40, || Err(EIO)), Err(EIO));
        assert_eq!(a.left(), 40);
        // Moving one ADI's guarantee counts its old one as free.
        assert_eq!(a.change(60, 100, || Ok(())), Ok(()));
        assert_eq!(a.left(), 0);
        a.release(100, 0);
        assert_eq!(a.left(), 100);
    }
}

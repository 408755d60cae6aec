// SPDX-License-Identifier: GPL-2.0

//! A seeded, reproducible random mix of operations on three ADIs (two of
//! one queue, one of four): ioctls with random payloads, region reads and
//! writes at random offsets and sizes, BAR0 register writes with random
//! values (queues enabled with random ring bases and sizes), config writes
//! with random values (command register, FLR, ...), doorbell stores with
//! random tails, descriptors with random fields, IOAS map/unmap,
//! `VFIO_DEVICE_RESET` and, rarely, close and reopen. Afterwards every ADI
//! must still answer and run a NOP.
//!
//!     adi_fuzz [--seed N] [--ops N] [--secs N]
//!
//! The seed is printed; the same seed replays the same operations (the
//! device's answers may differ with timing: the engine runs concurrently).
//!
//! Expects vdcm.ko and vdcm_sim.ko loaded with the defaults.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::Duration;
use std::time::Instant;

use vdcm_selftests::abi;
use vdcm_selftests::adv;
use vdcm_selftests::adv::Rng;
use vdcm_selftests::desc::Descriptor;
use vdcm_selftests::desc::Opcode;
use vdcm_selftests::desc::Status;
use vdcm_selftests::dma;
use vdcm_selftests::dma::DmaMem;
use vdcm_selftests::mdev::Mdev;
use vdcm_selftests::mdev::MdevType;
use vdcm_selftests::tap::ensure;
use vdcm_selftests::tap::note;
use vdcm_selftests::tap::Outcome;
use vdcm_selftests::tap::Reporter;
use vdcm_selftests::vfio;
use vdcm_selftests::vfio::CdevDevice;

const PF: &str = "vdcm_sim0";
const IOVA: u64 = 0x10_0000;
/// Per ADI: rings at 0x1000 * q, completion records at 0x4000, data above.
const MEM: usize = 0x10000;
const COMPL: u64 = 0x4000;
const DATA: u64 = 0x8000;
/// Where the extra buffer is mapped and unmapped at random.
const EXTRA_IOVA: u64 = 0x1000_0000;
const EXTRA: usize = 0x4000;
const CFG: u64 = 7 << 40;
const BAR2: u64 = 2 << 40;
const PAGE: usize = 4096;

/// Operation kinds, for the per-kind counts.
const KINDS: [&str; 13] = [
    "bar0_write",
    "queue_enable",
    "bar0_read",
    "region_rw",
    "config_write",
    "doorbell",
    "descriptors",
    "ioctl",
    "ioas_map_unmap",
    "reset",
    "irq_loopback",
    "reopen",
    "command_enable",
];

struct Adi {
    mdev: Mdev,
    queues: u64,
    vectors: u32,
    mem: DmaMem,
    extra: DmaMem,
    efds: Vec<dma::EventFd>,
    /// Fields drop in order: the doorbells before the device.
    bar2: Option<adv::RawMap>,
    dev: Option<CdevDevice>,
    tails: [u32; 4],
    exp_cap: u64,
}

impl Adi {
    fn new(ty: &str, queues: u64) -> Result<Self, String> {
        let mdev = MdevType::new(PF, ty)
            .create()?
            .map_err(|e| format!("create {ty}: {e}"))?;
        let mut adi = Adi {
            mdev,
            queues,
            vectors: queues as u32 + 1,
            mem: DmaMem::new(MEM).map_err(|e| e.to_string())?,
            extra: DmaMem::new(EXTRA).map_err(|e| e.to_string())?,
            efds: Vec::new(),
            bar2: None,
            dev: None,
            tails: [0; 4],
            exp_cap: 0,
        };
        for _ in 0..adi.vectors {
            adi.efds.push(dma::eventfd().map_err(|e| e.to_string())?);
        }
        adi.open()?;
        Ok(adi)
    }

    /// Opens the device, maps the memory and the doorbells, wires the
    /// eventfds and enables memory space and bus mastering.
    fn open(&mut self) -> Result<(), String> {
        self.bar2 = None;
        self.dev = None;
        let dev = CdevDevice::open(self.mdev.cdev()?)?;
        dma::map(&dev, &self.mem, IOVA)?;
        for (v, efd) in self.efds.iter().enumerate() {
            dma::set_vector_eventfd(&dev.vfio, v as u32, efd)?;
        }
        dev.enable()?;
        self.exp_cap = adv::find_cap(&dev.device, CFG, 0x10)?.ok_or("no PCIe capability")?;
        let len = self.queues as usize * PAGE;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        self.bar2 = Some(
            adv::mmap_raw(&dev.device, BAR2, len, rw, libc::MAP_SHARED)
                .map_err(|e| format!("mmap BAR2: {e}"))?,
        );
        self.tails = [0; 4];
        self.dev = Some(dev);
        Ok(())
    }

    fn fd(&self) -> &File {
        &self.dev.as_ref().expect("open").device
    }

    fn dev(&self) -> &CdevDevice {
        self.dev.as_ref().expect("open")
    }

    fn w32(&self, pos: u64, v: u32) -> bool {
        adv::pwrite_raw(self.fd(), v.to_le_bytes().as_ptr(), 4, pos).is_ok()
    }

    fn w64(&self, pos: u64, v: u64) -> bool {
        adv::pwrite_raw(self.fd(), v.to_le_bytes().as_ptr(), 8, pos).is_ok()
    }
}

/// A random IOVA: mostly inside the ADI's mapping, sometimes around or
/// far from it.
fn rand_iova(r: &mut Rng) -> u64 {
    match r.below(10) {
        0 => r.next_u64(),
        1 => EXTRA_IOVA + r.below(2 * EXTRA as u64),
        2 => IOVA + MEM as u64 - r.below(64),
        _ => IOVA + DATA + r.below(MEM as u64 - DATA),
    }
}

fn rand_desc(r: &mut Rng) -> Descriptor {
    let opcode = if r.one_in(8) {
        r.next_u64() as u8
    } else {
        r.below(6) as u8
    };
    let size = match r.below(8) {
        0 => r.next_u64() as u32,
        1 => 0,
        2 => r.below(32) as u32 + 1,
        3 => 256 * 1024 + r.below(2) as u32,
        _ => r.below(4096) as u32 + 1,
    };
    let completion = match r.below(6) {
        0 => 0,
        1 => rand_iova(r),
        _ => IOVA + COMPL + 32 * r.below(64),
    };
    // Drawn in the order the fields are laid out, so a seed replays.
    let flags = r.below(4) as u8;
    let (src, dst) = (rand_iova(r), rand_iova(r));
    let mut d = Descriptor::new(Opcode::Nop, size, src, dst)
        .with_completion(completion)
        .with_operand(r.next_u64());
    // Any byte, reserved flag bits too: the engine must refuse them.
    d.opcode = opcode;
    d.flags = flags;
    d
}

/// One random operation on `a`; returns its kind.
fn op(r: &mut Rng, a: &mut Adi) -> usize {
    let q = r.below(a.queues);
    let blk = abi::queue(q as u16);
    let roll = r.below(1000);
    match roll {
        0..150 => {
            let off = match r.below(6) {
                0 => abi::DEVCTL,
                1 => abi::INTCTL,
                2 => {
                    blk + r.pick(&[
                        abi::Q_RING_BASE,
                        4,
                        abi::Q_RING_SIZE,
                        abi::Q_CONTROL,
                        abi::Q_STATUS,
                        abi::Q_PASID,
                    ])
                }
                3 => u64::from(abi::MSIX_TABLE) + 4 * r.below(0x400),
                4 => u64::from(abi::MSIX_PBA) + 8 * r.below(8),
                _ => r.below(abi::BAR0_SIZE) & !3,
            };
            let v = r.next_u64();
            if r.one_in(2) && off % 8 == 0 {
                a.w64(off, v);
            } else {
                a.w32(off, v as u32);
            }
            0
        }
        150..250 => {
            if r.one_in(2) {
                a.w32(abi::DEVCTL, abi::DEVCTL_ENABLE);
            }
            let base = match r.below(4) {
                0 => rand_iova(r),
                _ => IOVA + 0x1000 * q,
            };
            let size = match r.below(4) {
                0 => r.next_u64() as u32,
                1 => 1 << r.below(13),
                _ => 64,
            };
            a.w64(blk + abi::Q_RING_BASE, base);
            a.w32(blk + abi::Q_RING_SIZE, size);
            let vector = if r.one_in(4) {
                r.below(256)
            } else {
                r.below(u64::from(a.vectors))
            };
            let ctl = if r.one_in(8) {
                r.next_u64() as u32
            } else {
                abi::CONTROL_ENABLE | (vector as u32) << abi::CONTROL_VECTOR_SHIFT
            };
            a.w32(blk + abi::Q_CONTROL, ctl);
            a.tails[q as usize] = 0;
            1
        }
        250..350 => {
            let mut b = [0u8; 8];
            let len = r.pick(&[4usize, 8]);
            let off = r.below(0x4000 / len as u64) * len as u64;
            let _ = adv::pread_raw(a.fd(), b.as_mut_ptr(), len, off);
            2
        }
        350..410 => {
            // Mostly the trapped regions; the others are refused (and
            // logged) and so kept rare.
            let index = if r.one_in(20) {
                r.below(12)
            } else {
                r.pick(&[0, 7])
            };
            let len = r.pick(&[0usize, 1, 2, 3, 4, 8, 16, 64, 256, 4096]);
            let off = match r.below(4) {
                0 => r.below(1 << 40),
                1 => r.below(0x4100),
                _ => r.below(0x4000 / 4) * 4,
            };
            let mut buf = [0u8; 4096];
            let pos = index << 40 | off;
            if r.one_in(2) || index == 7 {
                // Config writes are op 4's: here, reads only.
                let _ = adv::pread_raw(a.fd(), buf.as_mut_ptr(), len, pos);
            } else {
                r.fill(&mut buf[..len]);
                let _ = adv::pwrite_raw(a.fd(), buf.as_ptr(), len, pos);
            }
            3
        }
        410..490 => {
            let exp = a.exp_cap;
            let off = match r.below(8) {
                0 => 4,
                1 => exp + 8,
                2 => r.below(0x40),
                3 => 0x10 + 4 * r.below(6),
                4 => r.below(0x100),
                5 => r.below(0x1000),
                _ => exp + r.below(0x3c),
            };
            let len = r.pick(&[1usize, 2, 4]);
            let off = off & !(len as u64 - 1);
            let v = r.next_u64() as u32;
            let _ = adv::pwrite_raw(a.fd(), v.to_le_bytes().as_ptr(), len, CFG + off);
            // Memory space stays on most of the time: BAR0 accesses with it
            // off are refused and logged.
            if !r.one_in(10) {
                let _ = vfio::set_pci_command(a.fd(), vfio::PCI_COMMAND_MEMORY_MASTER);
            }
            4
        }
        490..640 => {
            let tail = if r.one_in(10) {
                r.next_u64() as u32
            } else {
                a.tails[q as usize].wrapping_add(r.below(8) as u32)
            };
            a.tails[q as usize] = tail;
            if let Some(m) = &a.bar2 {
                m.store_u32(q as usize * PAGE, tail);
            }
            5
        }
        640..790 => {
            let n = r.below(4) as u32 + 1;
            for _ in 0..n {
                let d = rand_desc(r);
                let slot = a.tails[q as usize] % 64;
                a.mem
                    .write((0x1000 * q) as usize + slot as usize * 64, &d.to_bytes());
                a.tails[q as usize] = a.tails[q as usize].wrapping_add(1);
            }
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            if let Some(m) = &a.bar2 {
                m.store_u32(q as usize * PAGE, a.tails[q as usize]);
            }
            6
        }
        790..860 => {
            fuzz_ioctl(r, a);
            7
        }
        860..900 => {
            let dev = a.dev();
            match r.below(6) {
                0 => {
                    let _ = dma::unmap(dev, IOVA, MEM as u64);
                    let _ = dma::map(dev, &a.mem, IOVA);
                }
                1 => {
                    let _ = dma::unmap(dev, rand_iova(r) & !0xfff, PAGE as u64 * r.below(4));
                }
                2 => {
                    let _ = dma::unmap(dev, EXTRA_IOVA, EXTRA as u64);
                }
                _ => {
                    let iova = EXTRA_IOVA + PAGE as u64 * r.below(4);
                    let _ = dma::map(dev, &a.extra, iova);
                }
            }
            8
        }
        900..930 => {
            let _ = vfio::ioctl_val(a.fd(), vfio::VFIO_DEVICE_RESET(), 0);
            if !r.one_in(10) {
                let _ = vfio::set_pci_command(a.fd(), vfio::PCI_COMMAND_MEMORY_MASTER);
            }
            a.tails = [0; 4];
            9
        }
        930..960 => {
            let v = r.below(u64::from(a.vectors)) as u32;
            let flags = r.pick(&[
                dma::IRQ_SET_NONE_TRIGGER,
                dma::IRQ_SET_NONE_MASK,
                dma::IRQ_SET_NONE_UNMASK,
            ]);
            let _ = dma::set_irqs_raw(a.fd(), flags, dma::MSIX_INDEX, v, 1, &[], None);
            for efd in &a.efds {
                dma::wait_eventfd(efd, Duration::ZERO);
            }
            10
        }
        960..961 if r.one_in(4) => {
            // Close and reopen: rare (about one op in 4000).
            if a.open().is_err() {
                // Leave it closed for this op; the next reopen retries.
                let _ = a.open();
            }
            11
        }
        _ => {
            let _ = vfio::set_pci_command(a.fd(), vfio::PCI_COMMAND_MEMORY_MASTER);
            a.w32(abi::DEVCTL, abi::DEVCTL_ENABLE);
            12
        }
    }
}

/// An ioctl with a random payload. Only the ioctls the driver answers and
/// unknown numbers: bind/attach/detach would take the device out of the
/// test's IOAS.
fn fuzz_ioctl(r: &mut Rng, a: &Adi) {
    let mut buf = [0u8; 2048];
    r.fill(&mut buf);
    let which = r.below(6);
    let cmd = match which {
        0 => vfio::VFIO_DEVICE_GET_INFO(),
        1 => vfio::VFIO_DEVICE_GET_REGION_INFO(),
        2 => vfio::VFIO_DEVICE_GET_IRQ_INFO(),
        3 | 4 => vfio::VFIO_DEVICE_SET_IRQS(),
        _ => vfio::vfio_io(r.pick(&[0u32, 1, 5, 12, 13, 14, 15, 16, 21, 30])),
    };
    // argsz within the buffer, mostly plausible.
    let argsz = match r.below(4) {
        0 => r.below(buf.len() as u64 + 1) as u32,
        _ => r.pick(&[16u32, 20, 24, 32, 36, 64]),
    };
    buf[..4].copy_from_slice(&argsz.to_le_bytes());
    if which == 1 || which == 2 {
        let index = if r.one_in(8) {
            r.next_u64() as u32
        } else {
            r.below(10) as u32
        };
        buf[8..12].copy_from_slice(&index.to_le_bytes());
    }
    if (3..=4).contains(&which) && !r.one_in(8) {
        // A mostly well-formed SET_IRQS, so it gets past validation and
        // acts (and the refused ones, which are logged, stay rare).
        let data = r.pick(&[1u32, 2, 4]);
        let action = r.pick(&[8u32, 16, 32]);
        let start = r.below(u64::from(a.vectors)) as u32;
        let count = r.below(u64::from(a.vectors - start) + 1) as u32;
        let count = if data == 1 { count } else { count.max(1) };
        for (i, v) in [20 + 4 * count, data | action, dma::MSIX_INDEX, start, count]
            .into_iter()
            .enumerate()
        {
            buf[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        for i in 0..count as usize {
            let fd: i32 = match r.below(4) {
                0 => -1,
                _ => a.efds[r.below(a.efds.len() as u64) as usize].as_raw_fd(),
            };
            buf[20 + 4 * i..24 + 4 * i].copy_from_slice(&fd.to_le_bytes());
        }
    }
    let _ = adv::ioctl_buf(a.fd(), cmd, &mut buf);
}

/// After the storm: the ADI, reopened, answers GET_INFO and runs a NOP.
fn still_works(a: &mut Adi) -> Outcome {
    a.open()?;
    let dev = a.dev.as_ref().ok_or("not open")?;
    let info = dev.info()?;
    ensure(info.num_regions == 9 && info.num_irqs == 5, || {
        format!("GET_INFO after fuzzing: {info:?}")
    })?;
    dev.reset()?;
    a.bar2 = None;
    let mut q = dma::Queue::start(dev, &a.mem, IOVA, 0, 0, 64, 0)?;
    a.mem.write(COMPL as usize, &[0u8; 32]);
    q.push(&Descriptor::new(Opcode::Nop, 0, 0, 0).with_completion(IOVA + COMPL));
    q.ring();
    let c = dma::wait_completion(&a.mem, COMPL as usize, Duration::from_secs(10))
        .ok_or_else(|| format!("NOP did not complete; STATUS {:?}", q.status()))?;
    ensure(c.status == Status::Success, || format!("NOP: {c:?}"))
}

fn main() {
    let seed = adv::arg("--seed").unwrap_or_else(adv::clock_seed);
    let want_ops = adv::arg("--ops").unwrap_or(100_000);
    let secs = adv::arg("--secs").unwrap_or(240);
    let mut t = Reporter::default();
    let t1 = MdevType::new(PF, "vdcm_sim-1q");
    let avail = t1.available().unwrap_or(0);
    let mut adis: Vec<Adi> = Vec::new();
    let made = t.point("fuzz_setup_three_adis", || {
        note(format!(
            "replay: adi_fuzz --seed {seed} --ops {want_ops} --secs {secs}"
        ));
        for (ty, q) in [("vdcm_sim-1q", 1), ("vdcm_sim-1q", 1), ("vdcm_sim-4q", 4)] {
            adis.push(Adi::new(ty, q)?);
        }
        Ok(())
    });
    if made {
        let mut r = Rng::new(seed);
        let mut counts = [0u64; KINDS.len()];
        let start = Instant::now();
        let limit = Duration::from_secs(secs);
        let mut ops = 0u64;
        let mut turns = 0u64;
        while ops < want_ops && (!turns.is_multiple_of(256) || start.elapsed() < limit) {
            turns += 1;
            let i = r.below(adis.len() as u64) as usize;
            if adis[i].dev.is_none() {
                let _ = adis[i].open();
                continue;
            }
            counts[op(&mut r, &mut adis[i])] += 1;
            ops += 1;
        }
        let took = start.elapsed();
        t.point(&format!("fuzz_{}k_ops_no_crash", want_ops / 1000), || {
            let rate = ops as f64 / took.as_secs_f64();
            note(format!(
                "seed {seed}: {ops} ops in {:.1} s ({rate:.0} ops/s)",
                took.as_secs_f64()
            ));
            let per: Vec<String> = KINDS
                .iter()
                .zip(counts)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            note(per.join(", "));
            for a in adis.iter_mut() {
                still_works(a).map_err(|e| format!("{}: {e}", a.mdev.uuid()))?;
            }
            ensure(ops >= want_ops, || {
                format!("only {ops} of {want_ops} ops in the {secs} s limit")
            })
        });
    }
    t.point("fuzz_adis_removed", || {
        for a in adis.drain(..) {
            let Adi {
                mdev, bar2, dev, ..
            } = a;
            drop(bar2);
            drop(dev);
            mdev.remove()?;
            ensure(!mdev.exists(), || format!("{} still there", mdev.uuid()))?;
        }
        let now = t1.available()?;
        ensure(now == avail, || {
            format!("available_instances {avail} -> {now}")
        })
    });
    std::process::exit(t.exit_code());
}

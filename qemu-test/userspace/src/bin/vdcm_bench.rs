// SPDX-License-Identifier: GPL-2.0

//! `make bench`: what an ADI costs, measured side by side with the kernel's
//! mtty sample (the mdev baseline) and, when the VM has an SR-IOV device,
//! an SR-IOV VF bound to vfio-pci.
//!
//! Every compared figure is measured in the same run, interleaved (ADI,
//! mtty, VF, then the next iteration, the order alternating), and reported
//! as the median. Writes a JSON object (see `Documentation/benchmarks.rst`
//! for every key) to `--out` and prints a table.
//!
//! The last phase measures QoS between ADIs (the `qos_*` keys, see
//! `qos_phase`): fairness at equal weights, weighted shares, a noisy
//! neighbour's effect on a victim's latency, a rate limit's accuracy and
//! what the scheduler's mechanisms cost, each beside its goal
//! (`qos_goals`, `qos_goals_met`). A QoS measurement that fails leaves its
//! figures null and its error in `qos_errors`; the others still run, the
//! JSON is written and the exit status is 1.
//!
//! Usage: `vdcm_bench [--quick] [--out FILE] [--max-adis N] [--max-secs S]
//! [--descs N]`.
//! Expects vdcm.ko, vdcm_sim.ko and mtty loaded. `--quick` is the tiny run
//! `make check` does so the code cannot rot: a few iterations of
//! everything.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use serde::ser::SerializeMap;
use serde::Serialize;
use serde::Serializer;

use vdcm_selftests::abi;
use vdcm_selftests::desc::Descriptor;
use vdcm_selftests::desc::Opcode;
use vdcm_selftests::desc::Status;
use vdcm_selftests::desc::DESC_SIZE;
use vdcm_selftests::dma;
use vdcm_selftests::dma::Queue;
use vdcm_selftests::dma::Tenant;
use vdcm_selftests::load;
use vdcm_selftests::load::Feeder;
use vdcm_selftests::load::KnobGuard;
use vdcm_selftests::mdev::Mdev;
use vdcm_selftests::mdev::MdevType;
use vdcm_selftests::sysfs;
use vdcm_selftests::vfio;
use vdcm_selftests::vfio::CdevDevice;
use vfio_ioctls::DmaLoggingRange;
use vfio_ioctls::VfioDevice;
use vfio_ioctls::VfioError;

const PF: &str = "vdcm_sim0";
const ADI_TYPE: &str = "vdcm_sim-1q";
/// The type the density benchmark creates: shared ADIs, one portal each.
const SCALE_TYPE: &str = "vdcm_sim-shared";
const MTTY_PARENT: &str = "mtty";
const MTTY_TYPE: &str = "mtty-1";
/// mtty's BAR0 is a 16550 UART; its scratch register has no side effects.
const UART_SCR: u64 = 7;
/// An ADI register with no side effect while the queue is stopped.
const ADI_REG: u64 = abi::queue(0) + abi::Q_RING_SIZE;

/// Layout of the data-path memory (offsets from `IOVA`).
const IOVA: u64 = 0x10_0000;
const RING: usize = 0;
const COMPL: usize = 0x1000;
const BATCH: usize = 0x2000;
const SRC: usize = 0x40000;
const DST: usize = 0x80000;
const MEM: usize = 0x100000;
const RING_SIZE: u32 = 64;
/// NOPs per BATCH descriptor (the engine's maximum).
const BATCH_NOPS: u32 = 32;
const MOVE_SIZE: u32 = 0x10000;
const TIMEOUT: Duration = Duration::from_secs(10);

type Res<T> = Result<T, String>;

/// `bench.json`: every key is described in `Documentation/benchmarks.rst`.
/// A missing measurement is `null`; so is a NaN (serde_json writes
/// non-finite numbers as null).
#[derive(Serialize)]
struct Report {
    quick: u8,
    iterations: u64,
    run_seconds: f64,
    adi_create_open_us: f64,
    mtty_create_open_us: f64,
    vf_create_open_us: Option<f64>,
    vf_baseline: String,
    adi_close_remove_us: f64,
    mtty_close_remove_us: f64,
    vf_close_remove_us: Option<f64>,
    max_adis_per_pf: u64,
    max_adis_limit: String,
    bytes_per_idle_adi: f64,
    slab_bytes_per_idle_adi: f64,
    /// The same measurement for `idle_devices_compared` ADIs and as many
    /// mtty devices, taking turns (median of the rounds).
    idle_devices_compared: u64,
    adi_bytes_per_idle_dev: f64,
    mtty_bytes_per_idle_dev: f64,
    adi_slab_bytes_per_idle_dev: f64,
    mtty_slab_bytes_per_idle_dev: f64,
    /// What the VDCM and the PF allocated for an idle ADI themselves
    /// (`stats/vdcm_bytes` + `stats/pf_bytes`), and each part.
    vdcm_own_bytes_per_idle_adi: f64,
    vdcm_part_bytes_per_idle_adi: f64,
    pf_part_bytes_per_idle_adi: f64,
    remove_all_adis_s: f64,
    create_latency_scaling: Vec<f64>,
    open_latency_scaling: Vec<f64>,
    fastpath_traps_per_1m_desc: f64,
    fastpath_descriptors: u64,
    fastpath_traps: u64,
    adi_desc_per_s: f64,
    adi_bytes_per_s: f64,
    direct_desc_per_s: Option<f64>,
    direct_bytes_per_s: Option<f64>,
    adi_vs_direct_throughput_ratio: Option<f64>,
    adi_vs_direct_bytes_ratio: Option<f64>,
    config_read_ns: f64,
    bar0_read_ns: f64,
    bar0_write_ns: f64,
    bar0_rw_ns: f64,
    mtty_config_read_ns: f64,
    mtty_region_read_ns: f64,
    mtty_region_write_ns: f64,
    mtty_region_rw_ns: f64,
    vf_config_read_ns: Option<f64>,
    vf_bar0_read_ns: Option<f64>,
    reset_us: f64,
    mtty_reset_us: f64,
    vf_reset_us: Option<f64>,
    irq_latency_us: f64,
    irq_latency_warm_samples_us: Vec<f64>,
    irq_latency_cold_us: Option<f64>,
    dirty_log_off_bytes_per_s: f64,
    dirty_log_on_bytes_per_s: f64,
    migration_downtime_ms: f64,
    migration_total_ms: f64,
    migration_stream_bytes: u64,
    migration_busy_downtime_ms: f64,
    migration_busy_total_ms: f64,
    migration_busy_stream_bytes: u64,
    mtty_migration_downtime_ms: f64,
    mtty_migration_total_ms: f64,
    mtty_migration_stream_bytes: u64,
    /// The `qos_*` keys, at the top level.
    #[serde(flatten)]
    qos: QosReport,
    ratios: Ratios,
}

/// `bench.json`'s `ratios`.
#[derive(Serialize)]
struct Ratios {
    create_open_adi_vs_mtty: Option<f64>,
    create_open_adi_vs_vf: Option<f64>,
    config_read_adi_vs_mtty: Option<f64>,
    region_rw_adi_vs_mtty: Option<f64>,
    reset_adi_vs_mtty: Option<f64>,
    config_read_adi_vs_vf: Option<f64>,
    reset_adi_vs_vf: Option<f64>,
    throughput_adi_vs_direct: Option<f64>,
    dirty_log_on_vs_off: Option<f64>,
    migration_downtime_adi_vs_mtty: Option<f64>,
    migration_busy_downtime_adi_vs_mtty: Option<f64>,
    idle_bytes_adi_vs_mtty: Option<f64>,
}

/// The median of `v` (the mean of the middle two for an even count); NaN
/// for none.
fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Parameters of a run.
struct Params {
    quick: bool,
    out: PathBuf,
    /// Create/open iterations per kind.
    iters: usize,
    /// Rounds of register accesses and accesses per round.
    reg_rounds: usize,
    reg_inner: usize,
    resets: usize,
    /// Engine descriptors for the trap count.
    descs: u64,
    /// Seconds of MEMMOVE for the byte rate.
    move_secs: f64,
    irq_warm: usize,
    irq_cold: usize,
    /// Rounds of MEMMOVE with the DMA log off and on, and migrations of
    /// each kind.
    log_rounds: usize,
    migrations: usize,
    /// Most ADIs to hold open at once, and the time allowed for it.
    max_adis: usize,
    max_secs: f64,
    /// The in-kernel client's run (vdcm_sim's `direct_bench`, logged at
    /// load): descriptors and their ns, MEMMOVE bytes and their ns.
    direct: Option<[f64; 4]>,
    /// Rounds of the idle-memory comparison (each kind once a round).
    idle_rounds: usize,
    /// The QoS phase's sizes and windows.
    qos: QosParams,
    /// `--only-qos STEPS`: run just these steps of the QoS phase (a comma
    /// list of `qos_phase`'s names, or `all`) and write only its keys; for
    /// iterating on one figure.
    only_qos: Option<Vec<String>>,
}

impl Params {
    fn parse() -> Res<Self> {
        let mut p = Params {
            quick: false,
            out: PathBuf::from("bench.json"),
            iters: 30,
            reg_rounds: 200,
            reg_inner: 20,
            resets: 50,
            descs: 1_000_000,
            move_secs: 3.0,
            irq_warm: 200,
            irq_cold: 10,
            log_rounds: 6,
            migrations: 20,
            max_adis: 4096,
            max_secs: 420.0,
            direct: None,
            idle_rounds: 3,
            qos: QosParams::full(),
            only_qos: None,
        };
        let mut args = std::env::args().skip(1);
        let mut max = None;
        let mut descs = None;
        let mut secs = None;
        while let Some(a) = args.next() {
            let mut val = |what: &str| args.next().ok_or(format!("{what} needs a value"));
            match a.as_str() {
                "--quick" => p.quick = true,
                "--out" => p.out = PathBuf::from(val("--out")?),
                "--max-adis" => max = Some(val("--max-adis")?),
                "--descs" => descs = Some(val("--descs")?),
                "--max-secs" => secs = Some(val("--max-secs")?),
                "--only-qos" => {
                    let v = val("--only-qos")?;
                    p.only_qos = Some(v.split(',').map(str::to_string).collect());
                }
                "--direct" => {
                    // "DESCS NS BYTES NS", as vdcm_sim logs them.
                    let v = val("--direct")?;
                    let nums: Vec<f64> = v
                        .split_whitespace()
                        .map(|x| x.parse::<f64>())
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("--direct {v:?}: {e}"))?;
                    let arr: [f64; 4] = nums
                        .try_into()
                        .map_err(|_| format!("--direct {v:?}: want 4 numbers"))?;
                    p.direct = Some(arr);
                }
                _ => return Err(format!("unknown argument {a:?}")),
            }
        }
        if p.quick {
            p.iters = 3;
            // Register accesses are cheap: enough rounds that one stall of
            // the shared machine does not decide the median.
            p.reg_rounds = 50;
            p.resets = 3;
            p.descs = u64::from(RING_SIZE * (BATCH_NOPS + 1));
            p.move_secs = 0.0;
            p.irq_warm = 3;
            p.irq_cold = 0;
            p.log_rounds = 1;
            p.migrations = 2;
            p.max_adis = 8;
            p.max_secs = 10.0;
            p.idle_rounds = 1;
            p.qos = QosParams::quick();
        }
        if let Some(m) = max {
            p.max_adis = m.parse().map_err(|e| format!("--max-adis {m}: {e}"))?;
        }
        if let Some(t) = secs {
            p.max_secs = t.parse().map_err(|e| format!("--max-secs {t}: {e}"))?;
        }
        if let Some(d) = descs {
            p.descs = d.parse().map_err(|e| format!("--descs {d}: {e}"))?;
        }
        Ok(p)
    }
}

/// A device opened through its cdev, closed before its mdev is removed.
struct Opened {
    dev: CdevDevice,
    mdev: Mdev,
}

impl Opened {
    fn close_remove(self) -> Res<()> {
        drop(self.dev);
        self.mdev.remove()
    }
}

/// Creates a device of `ty` through sysfs and opens it through its cdev
/// (bind to a new iommufd, attach to a new IOAS); returns it and the time
/// that took.
fn create_open(ty: &MdevType) -> Res<(Opened, f64)> {
    let t = Instant::now();
    let mdev = ty
        .create()?
        .map_err(|e| format!("create in {}: {e}", ty.dir().display()))?;
    let dev = match mdev.cdev().and_then(CdevDevice::open) {
        Ok(d) => d,
        Err(e) => {
            let _ = mdev.remove();
            return Err(e);
        }
    };
    Ok((Opened { dev, mdev }, us(t.elapsed())))
}

/// The SR-IOV baseline: a PF bound to pci-pf-stub (the generic PF driver
/// that only enables VFs), one VF at a time bound to vfio-pci.
struct Sriov {
    pf: PathBuf,
}

impl Sriov {
    /// The first PCI function that can have VFs, bound to pci-pf-stub.
    fn find() -> Res<Option<Self>> {
        let Ok(dir) = std::fs::read_dir("/sys/bus/pci/devices") else {
            return Ok(None);
        };
        let mut fns: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        fns.sort();
        let Some(pf) = fns.into_iter().find(|p| {
            sysfs::read_u64(p.join("sriov_totalvfs")).is_ok_and(|n| n > 0)
                && !p.join("physfn").exists()
        }) else {
            return Ok(None);
        };
        let bdf = name(&pf);
        if driver(&pf).as_deref() != Some("pci-pf-stub") {
            if pf.join("driver").exists() {
                sysfs::write(pf.join("driver/unbind"), &bdf)?;
            }
            sysfs::write(pf.join("driver_override"), "pci-pf-stub")?;
            sysfs::write("/sys/bus/pci/drivers_probe", &bdf)?;
        }
        if driver(&pf).as_deref() != Some("pci-pf-stub") {
            return Err(format!("{bdf}: could not bind pci-pf-stub"));
        }
        sysfs::write(pf.join("sriov_numvfs"), "0")?;
        // VFs are bound explicitly, to vfio-pci.
        sysfs::write(pf.join("sriov_drivers_autoprobe"), "0")?;
        Ok(Some(Sriov { pf }))
    }

    /// Enables one VF, binds it to vfio-pci and opens it through its cdev.
    fn create_open(&self) -> Res<(CdevDevice, f64)> {
        let t = Instant::now();
        sysfs::write(self.pf.join("sriov_numvfs"), "1")?;
        let vf = std::fs::canonicalize(self.pf.join("virtfn0"))
            .map_err(|e| format!("{}/virtfn0: {e}", self.pf.display()))?;
        let bdf = name(&vf);
        sysfs::write(vf.join("driver_override"), "vfio-pci")?;
        sysfs::write("/sys/bus/pci/drivers/vfio-pci/bind", &bdf)?;
        let entry = std::fs::read_dir(vf.join("vfio-dev"))
            .map_err(|e| format!("{bdf}/vfio-dev: {e}"))?
            .next()
            .ok_or(format!("{bdf}: no vfio-dev entry"))?
            .map_err(|e| e.to_string())?;
        let dev = CdevDevice::open(Path::new("/dev/vfio/devices").join(entry.file_name()))?;
        Ok((dev, us(t.elapsed())))
    }

    fn remove(&self) -> Res<()> {
        sysfs::write(self.pf.join("sriov_numvfs"), "0")
    }

    fn describe(&self) -> String {
        let id = |f: &str| sysfs::read(self.pf.join(f)).unwrap_or_default();
        format!(
            "{} {}:{} (pci-pf-stub), VF via vfio-pci",
            name(&self.pf),
            id("vendor"),
            id("device")
        )
    }
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn driver(dev: &Path) -> Option<String> {
    std::fs::read_link(dev.join("driver"))
        .ok()
        .map(|l| name(&l))
}

/// Create-and-open and close-and-remove, interleaved.
struct Lifecycle {
    adi: Vec<f64>,
    mtty: Vec<f64>,
    vf: Vec<f64>,
    adi_remove: Vec<f64>,
    mtty_remove: Vec<f64>,
    vf_remove: Vec<f64>,
}

fn lifecycle(p: &Params, sriov: Option<&Sriov>) -> Res<Lifecycle> {
    let adi_ty = MdevType::new(PF, ADI_TYPE);
    let mtty_ty = MdevType::new(MTTY_PARENT, MTTY_TYPE);
    let mut r = Lifecycle {
        adi: vec![],
        mtty: vec![],
        vf: vec![],
        adi_remove: vec![],
        mtty_remove: vec![],
        vf_remove: vec![],
    };
    for i in 0..p.iters {
        for k in 0..3 {
            // Rotate which kind goes first.
            match (i + k) % 3 {
                0 => {
                    let (o, t) = create_open(&adi_ty)?;
                    r.adi.push(t);
                    let t = Instant::now();
                    o.close_remove()?;
                    r.adi_remove.push(us(t.elapsed()));
                }
                1 => {
                    let (o, t) = create_open(&mtty_ty)?;
                    r.mtty.push(t);
                    let t = Instant::now();
                    o.close_remove()?;
                    r.mtty_remove.push(us(t.elapsed()));
                }
                _ => {
                    if let Some(s) = sriov {
                        let (d, t) = s.create_open()?;
                        r.vf.push(t);
                        let t = Instant::now();
                        drop(d);
                        s.remove()?;
                        r.vf_remove.push(us(t.elapsed()));
                    }
                }
            }
        }
    }
    Ok(r)
}

/// A region of an open device, for raw pread/pwrite at a cached offset
/// (no region-info ioctl per access).
struct Region<'a> {
    file: &'a File,
    base: u64,
}

impl<'a> Region<'a> {
    fn new(dev: &'a CdevDevice, index: u32) -> Res<Self> {
        Ok(Region {
            file: &dev.device,
            base: dev.region(index)?.offset,
        })
    }

    fn read(&self, off: u64, buf: &mut [u8]) -> Res<()> {
        self.file
            .read_exact_at(buf, self.base + off)
            .map_err(|e| format!("read at {off:#x}: {e}"))
    }

    fn write(&self, off: u64, buf: &[u8]) -> Res<()> {
        self.file
            .write_all_at(buf, self.base + off)
            .map_err(|e| format!("write at {off:#x}: {e}"))
    }
}

/// Nanoseconds per call of `f`, over `n` calls.
fn per_call(n: usize, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    let t = Instant::now();
    for _ in 0..n {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e9 / n as f64)
}

struct Access {
    adi_config_read: Vec<f64>,
    adi_bar0_read: Vec<f64>,
    adi_bar0_write: Vec<f64>,
    mtty_config_read: Vec<f64>,
    mtty_bar0_read: Vec<f64>,
    mtty_bar0_write: Vec<f64>,
    adi_reset: Vec<f64>,
    mtty_reset: Vec<f64>,
    vf_config_read: Vec<f64>,
    vf_bar0_read: Vec<f64>,
    vf_reset: Vec<f64>,
}

/// The igb VF's status register (VTSTATUS), read-only.
const VF_REG: u64 = 0x8;
/// VF resets are function-level resets with their 100 ms waits: fewer.
const VF_RESETS: usize = 10;

/// Trapped accesses and resets on one ADI, one mtty device and, if there
/// is one, a VF, interleaved.
fn access(p: &Params, sriov: Option<&Sriov>) -> Res<Access> {
    let (adi, _) = create_open(&MdevType::new(PF, ADI_TYPE))?;
    let (mtty, _) = create_open(&MdevType::new(MTTY_PARENT, MTTY_TYPE))?;
    let vf = match sriov.map(Sriov::create_open) {
        Some(Ok((d, _))) => Some(d),
        Some(Err(e)) => return Err(e),
        None => None,
    };
    let mut r = Access {
        adi_config_read: vec![],
        adi_bar0_read: vec![],
        adi_bar0_write: vec![],
        mtty_config_read: vec![],
        mtty_bar0_read: vec![],
        mtty_bar0_write: vec![],
        adi_reset: vec![],
        mtty_reset: vec![],
        vf_config_read: vec![],
        vf_bar0_read: vec![],
        vf_reset: vec![],
    };
    let result = (|| -> Res<()> {
        adi.dev.enable()?;
        let acfg = Region::new(&adi.dev, vfio::VFIO_PCI_CONFIG_REGION_INDEX)?;
        let abar = Region::new(&adi.dev, dma::BAR0)?;
        let mcfg = Region::new(&mtty.dev, vfio::VFIO_PCI_CONFIG_REGION_INDEX)?;
        let mbar = Region::new(&mtty.dev, 0)?;
        let vregions = match &vf {
            Some(d) => Some((
                Region::new(d, vfio::VFIO_PCI_CONFIG_REGION_INDEX)?,
                Region::new(d, 0)?,
            )),
            None => None,
        };
        let n = p.reg_inner;
        let mut b4 = [0u8; 4];
        let mut b1 = [0u8; 1];
        for _ in 0..p.reg_rounds {
            r.adi_config_read
                .push(per_call(n, || acfg.read(0, &mut b4))?);
            r.mtty_config_read
                .push(per_call(n, || mcfg.read(0, &mut b4))?);
            r.adi_bar0_read
                .push(per_call(n, || abar.read(ADI_REG, &mut b4))?);
            r.mtty_bar0_read
                .push(per_call(n, || mbar.read(UART_SCR, &mut b1))?);
            r.adi_bar0_write
                .push(per_call(n, || abar.write(ADI_REG, &64u32.to_le_bytes()))?);
            r.mtty_bar0_write
                .push(per_call(n, || mbar.write(UART_SCR, &[0x5a]))?);
            if let Some((vcfg, vbar)) = &vregions {
                r.vf_config_read
                    .push(per_call(n, || vcfg.read(0, &mut b4))?);
                r.vf_bar0_read
                    .push(per_call(n, || vbar.read(VF_REG, &mut b4))?);
            }
        }
        for _ in 0..p.resets {
            let t = Instant::now();
            adi.dev.reset()?;
            r.adi_reset.push(us(t.elapsed()));
            let t = Instant::now();
            mtty.dev.reset()?;
            r.mtty_reset.push(us(t.elapsed()));
            if let Some(d) = vf.as_ref().filter(|_| r.vf_reset.len() < VF_RESETS) {
                let t = Instant::now();
                d.reset()?;
                r.vf_reset.push(us(t.elapsed()));
            }
        }
        Ok(())
    })();
    let a = adi.close_remove();
    let m = mtty.close_remove();
    let v = match (vf, sriov) {
        (Some(d), Some(s)) => {
            drop(d);
            s.remove()
        }
        _ => Ok(()),
    };
    result.and(a).and(m).and(v)?;
    Ok(r)
}

/// The 1q ADI the fast-path figures are measured on: opened, memory
/// mapped, vector 0 on an eventfd.
struct Datapath(dma::Tenant);

impl std::ops::Deref for Datapath {
    type Target = dma::Tenant;

    fn deref(&self) -> &dma::Tenant {
        &self.0
    }
}

impl Datapath {
    fn new() -> Res<Self> {
        dma::Tenant::new(&MdevType::new(PF, ADI_TYPE), MEM, IOVA).map(Datapath)
    }

    /// Waits for the completion record at `off`; fails unless it says
    /// success.
    fn wait(&self, off: usize) -> Res<()> {
        let t = Instant::now();
        let mut spins = 0u32;
        loop {
            let mut st = [0u8; 1];
            self.mem.read(off, &mut st);
            match st[0] {
                0 => {}
                s if s == Status::Success as u8 => return Ok(()),
                s => return Err(format!("completion status {s}")),
            }
            if t.elapsed() > TIMEOUT {
                return Err(format!("no completion in {TIMEOUT:?}"));
            }
            spins += 1;
            if spins < 100 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
}

struct Fast {
    descs: u64,
    traps: u64,
    secs: f64,
    bytes: u64,
    bytes_secs: f64,
    irq_warm: Vec<f64>,
    irq_cold: Vec<f64>,
    log_off: Vec<f64>,
    log_on: Vec<f64>,
}

/// Fills the BATCH descriptor array at `BATCH` with `BATCH_NOPS` NOPs.
fn write_batch_nops(mem: &dma::DmaMem) {
    let nop = dma::nop();
    for k in 0..BATCH_NOPS as usize {
        dma::write_desc(mem, BATCH + k * DESC_SIZE, &nop);
    }
}

/// The fast path: trap count and descriptor rate over `p.descs` NOPs,
/// the MEMMOVE byte rate, and interrupt latency.
fn fastpath(p: &Params) -> Res<Fast> {
    let s = Datapath::new()?;
    let mut q = Queue::start(&s.dev, &s.mem, IOVA, 0, RING, RING_SIZE, 0)?;
    write_batch_nops(&s.mem);
    let batch = Descriptor::new(Opcode::Batch, BATCH_NOPS, IOVA + BATCH as u64, 0);
    let compl = IOVA + COMPL as u64;
    // One full ring per doorbell: RING_SIZE BATCH descriptors, the last
    // with a completion record.
    let ring_of = |q: &mut Queue<'_>, d: &Descriptor, n: u32| -> Res<()> {
        s.mem.write(COMPL, &[0u8; 32]);
        for i in 0..n {
            let mut d = *d;
            if i + 1 == n {
                d.completion = compl;
            }
            q.push(&d);
        }
        q.ring();
        s.wait(COMPL)
    };
    let d0 = s.stat("descriptors")?;
    let t0 = s.traps()?;
    let start = Instant::now();
    // Counted as the engine counts: a BATCH and each of its members.
    let per_ring = u64::from(RING_SIZE * (BATCH_NOPS + 1));
    for _ in 0..p.descs.div_ceil(per_ring) {
        ring_of(&mut q, &batch, RING_SIZE)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let descs = s.stat("descriptors")? - d0;
    let traps = s.traps()? - t0;

    let mv = Descriptor::new(
        Opcode::MemMove,
        MOVE_SIZE,
        IOVA + SRC as u64,
        IOVA + DST as u64,
    );
    let b0 = s.stat("bytes")?;
    let start = Instant::now();
    loop {
        ring_of(&mut q, &mv, 4)?;
        if start.elapsed().as_secs_f64() >= p.move_secs {
            break;
        }
    }
    let bytes_secs = start.elapsed().as_secs_f64();
    let bytes = s.stat("bytes")? - b0;

    // What the DMA log costs: the same MEMMOVE loop with it off and on,
    // alternating (the order too), each round half the MEMMOVE time. Each
    // logged round must have seen the destination pages written.
    let range = DmaLoggingRange {
        iova: IOVA,
        length: MEM as u64,
    };
    let vf = &s.dev.vfio;
    let (mut log_off, mut log_on) = (vec![], vec![]);
    for round in 0..p.log_rounds {
        for on in [round % 2 == 0, round % 2 != 0] {
            if on {
                vf.start_dma_logging(4096, &[range])
                    .map_err(|e| format!("start DMA logging: {}", vfio::error_chain(&e)))?;
            }
            let b0 = s.stat("bytes")?;
            let start = Instant::now();
            loop {
                ring_of(&mut q, &mv, 4)?;
                if start.elapsed().as_secs_f64() >= p.move_secs / 2.0 {
                    break;
                }
            }
            let rate = (s.stat("bytes")? - b0) as f64 / start.elapsed().as_secs_f64();
            if on {
                let bits = vf
                    .report_dma_logging(range, 4096)
                    .map_err(|e| format!("DMA log report: {}", vfio::error_chain(&e)))?;
                vf.stop_dma_logging()
                    .map_err(|e| format!("stop DMA logging: {}", vfio::error_chain(&e)))?;
                let missed = (DST..DST + MOVE_SIZE as usize)
                    .step_by(4096)
                    .map(|off| off / 4096)
                    .filter(|pg| bits.get(pg / 64).is_none_or(|w| w & (1 << (pg % 64)) == 0))
                    .count();
                if missed > 0 {
                    return Err(format!("the DMA log missed {missed} pages MEMMOVE wrote"));
                }
                log_on.push(rate);
            } else {
                log_off.push(rate);
            }
        }
    }

    // Interrupt latency: doorbell store to eventfd readable, one NOP with
    // the interrupt flag at a time. Warm: back to back, the engine polling
    // at its fastest. Cold: after a quiet spell long enough for its
    // backoff to reach the maximum.
    let irq = Descriptor::new(Opcode::Nop, 0, 0, 0)
        .with_completion(compl)
        .with_interrupt();
    let one = |q: &mut Queue<'_>| -> Res<f64> {
        dma::wait_eventfd(&s.efd, Duration::ZERO);
        s.mem.write(COMPL, &[0u8; 32]);
        q.push(&irq);
        let t = Instant::now();
        q.ring();
        if dma::wait_eventfd(&s.efd, TIMEOUT) == 0 {
            return Err("no completion interrupt".into());
        }
        let lat = us(t.elapsed());
        s.wait(COMPL)?;
        Ok(lat)
    };
    let mut irq_warm = vec![];
    for _ in 0..p.irq_warm {
        irq_warm.push(one(&mut q)?);
    }
    let mut irq_cold = vec![];
    for _ in 0..p.irq_cold {
        std::thread::sleep(Duration::from_millis(600));
        irq_cold.push(one(&mut q)?);
    }
    drop(q);
    Ok(Fast {
        descs,
        traps,
        secs,
        bytes,
        bytes_secs,
        irq_warm,
        irq_cold,
        log_off,
        log_on,
    })
}

const PRE_COPY: u32 = vfio::uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY;
const STOP_COPY: u32 = vfio::uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP_COPY;
const STOP: u32 = vfio::uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_STOP;
const RESUMING: u32 = vfio::uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_RESUMING;
const RUNNING: u32 = vfio::uapi::vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One migration from `src` (running) to `dst` (stopped), as a VMM does
/// it: PRE_COPY, its data read while the precopy info says there is some,
/// `at_stop`, then (the downtime) STOP_COPY and the rest of the stream,
/// RESUMING, the stream written, RUNNING; `src` ends stopped. Returns the
/// downtime and the total in ms, and the stream's length.
fn migrate(
    src: &VfioDevice,
    dst: &VfioDevice,
    at_stop: impl FnOnce() -> Res<()>,
) -> Res<(f64, f64, u64)> {
    let e = |what: &'static str| move |e: VfioError| format!("{what}: {}", vfio::error_chain(&e));
    let start = Instant::now();
    src.set_migration_state(PRE_COPY).map_err(e("PRE_COPY"))?;
    let mut data = vec![];
    loop {
        let info = src.mig_get_precopy_info().map_err(e("precopy info"))?;
        let want = (info.initial_bytes + info.dirty_bytes) as usize;
        if want == 0 {
            break;
        }
        let mut buf = vec![0u8; want];
        let n = src
            .read_migration_data(&mut buf)
            .map_err(e("read pre-copy data"))?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    at_stop()?;
    let stop = Instant::now();
    src.set_migration_state(STOP_COPY).map_err(e("STOP_COPY"))?;
    data.extend(
        src.read_migration_data_to_end()
            .map_err(e("read the stream"))?,
    );
    dst.set_migration_state(RESUMING).map_err(e("RESUMING"))?;
    dst.write_migration_data(&data)
        .map_err(e("write the stream"))?;
    dst.set_migration_state(RUNNING)
        .map_err(e("RUNNING after RESUMING"))?;
    let down = ms(stop.elapsed());
    let total = ms(start.elapsed());
    src.set_migration_state(STOP).map_err(e("STOP"))?;
    Ok((down, total, data.len() as u64))
}

#[derive(Default)]
struct MigKind {
    down: Vec<f64>,
    total: Vec<f64>,
    bytes: u64,
}

impl MigKind {
    fn push(&mut self, (down, total, bytes): (f64, f64, u64)) {
        self.down.push(down);
        self.total.push(total);
        self.bytes = bytes;
    }
}

#[derive(Default)]
struct Mig {
    idle: MigKind,
    busy: MigKind,
    mtty: MigKind,
}

/// Migration, ping-pong between two ADIs of one type (the second maps the
/// first's memory at the same IOVA, as a guest's memory follows it) and
/// between two mtty devices, interleaved: an idle ADI (queue enabled,
/// nothing queued), a busy one (a full ring of BATCH descriptors rung just
/// before the stop: in-flight work completes on the source, the rest runs
/// on the destination, and every descriptor is counted once), and mtty.
fn migration(p: &Params) -> Res<Mig> {
    let ty = MdevType::new(PF, ADI_TYPE);
    let a = Datapath::new()?;
    let b = dma::Tenant::new(&ty, 4096, 2 * MEM as u64 + IOVA)?;
    dma::map(&b.dev, &a.mem, IOVA)?;
    {
        let _q = Queue::start(&a.dev, &a.mem, IOVA, 0, RING, RING_SIZE, 0)?;
    }
    let bells = [&a.dev, &b.dev].map(|d| {
        d.mmap(2, 0, 4096)
            .map_err(|e| format!("mmap doorbell: {e}"))
    });
    let [Ok(bell_a), Ok(bell_b)] = bells else {
        return Err("mmap the doorbells".into());
    };
    write_batch_nops(&a.mem);
    let mtty_ty = MdevType::new(MTTY_PARENT, MTTY_TYPE);
    let (ma, _) = create_open(&mtty_ty)?;
    let (mb, _) = create_open(&mtty_ty)?;
    let e = |e: VfioError| format!("STOP: {}", vfio::error_chain(&e));
    b.dev.vfio.set_migration_state(STOP).map_err(e)?;
    mb.dev.vfio.set_migration_state(STOP).map_err(e)?;
    let (adis, bells, mttys) = (
        [&a.dev.vfio, &b.dev.vfio],
        [&bell_a, &bell_b],
        [&ma.dev.vfio, &mb.dev.vfio],
    );
    let mut r = Mig::default();
    let (mut cur, mut tail, mut pushed) = (0usize, 0u32, 0u64);
    let d0 = a.stat("descriptors")? + b.stat("descriptors")?;
    let batch = Descriptor::new(Opcode::Batch, BATCH_NOPS, IOVA + BATCH as u64, 0);
    for i in 0..p.migrations {
        for kind in 0..3 {
            match (kind + i) % 3 {
                0 => {
                    r.idle.push(migrate(adis[cur], adis[1 - cur], || Ok(()))?);
                    cur = 1 - cur;
                }
                1 => {
                    a.mem.write(COMPL, &[0u8; 32]);
                    let at_stop = || {
                        for k in 0..RING_SIZE {
                            let mut d = batch;
                            if k + 1 == RING_SIZE {
                                d.completion = IOVA + COMPL as u64;
                            }
                            let slot = (tail.wrapping_add(k) % RING_SIZE) as usize;
                            dma::write_desc(&a.mem, RING + slot * DESC_SIZE, &d);
                        }
                        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                        bells[cur].write_u32(abi::DOORBELL_TAIL, tail.wrapping_add(RING_SIZE));
                        Ok(())
                    };
                    r.busy.push(migrate(adis[cur], adis[1 - cur], at_stop)?);
                    tail = tail.wrapping_add(RING_SIZE);
                    pushed += u64::from(RING_SIZE * (BATCH_NOPS + 1));
                    cur = 1 - cur;
                    a.wait(COMPL)?;
                }
                _ => {
                    let src = i % 2;
                    r.mtty.push(migrate(mttys[src], mttys[1 - src], || Ok(()))?);
                }
            }
        }
    }
    let ran = a.stat("descriptors")? + b.stat("descriptors")? - d0;
    if ran != pushed {
        return Err(format!(
            "migrating busy ADIs: the two ran {ran} descriptors, {pushed} were queued"
        ));
    }
    drop((bell_a, bell_b));
    ma.close_remove()?;
    mb.close_remove()?;
    Ok(r)
}

fn meminfo() -> Res<(u64, u64)> {
    let text = sysfs::read("/proc/meminfo")?;
    let field = |name: &str| -> Res<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .map(|kb: u64| kb * 1024)
            .ok_or(format!("/proc/meminfo has no {name}"))
    };
    Ok((field("MemAvailable:")?, field("Slab:")?))
}

/// What an open idle device costs, measured the same way for an ADI and
/// an mtty device: `MemAvailable` and `Slab` before and after creating
/// and opening `n` of one kind (all held open), per device; the two
/// kinds take turns, `rounds` times each, and each figure is the median.
struct IdleCost {
    n: usize,
    adi: Vec<f64>,
    adi_slab: Vec<f64>,
    mtty: Vec<f64>,
    mtty_slab: Vec<f64>,
    /// The ADIs' own `stats/vdcm_bytes` and `stats/pf_bytes`, averaged
    /// (the same in every round: no median needed).
    vdcm_own: f64,
    pf_own: f64,
}

/// Gives every slab cache's empty slabs back to the page allocator
/// (`/sys/kernel/slab/*/shrink`), so that what is allocated next takes
/// fresh pages and shows in `MemAvailable`: after the scaling phase has
/// freed thousands of ADIs, the caches hold enough free objects for a
/// few dozen devices and the drop would be zero.
fn shrink_slabs() -> Res<()> {
    let dir =
        std::fs::read_dir("/sys/kernel/slab").map_err(|e| format!("read /sys/kernel/slab: {e}"))?;
    for e in dir.flatten() {
        // Aliases are symlinks to the same cache; a cache that refuses
        // (none should) just keeps its slabs.
        let _ = std::fs::write(e.path().join("shrink"), "1");
    }
    Ok(())
}

/// `meminfo()` once memory has stopped moving: slabs shrunk, then again
/// every 0.5 s until two readings of `MemAvailable` are within 32 KiB
/// (work deferred by the last removals -- RCU callbacks, device releases
/// -- frees memory for a while), at most 20 times.
fn quiet_meminfo() -> Res<(u64, u64)> {
    let mut last = meminfo()?;
    for _ in 0..20 {
        shrink_slabs()?;
        std::thread::sleep(Duration::from_millis(500));
        let now = meminfo()?;
        if now.0.abs_diff(last.0) < 32 << 10 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Creates and opens `n` devices of type `ty` into `held`; returns the
/// `MemAvailable` drop and the `Slab` growth around them, per device.
fn idle_cost_of(ty: &MdevType, n: usize, held: &mut Vec<Opened>) -> Res<(f64, f64)> {
    let (avail0, slab0) = quiet_meminfo()?;
    for _ in 0..n {
        held.push(create_open(ty)?.0);
    }
    let (avail1, slab1) = quiet_meminfo()?;
    let n = n as f64;
    Ok((
        (avail0 as f64 - avail1 as f64) / n,
        (slab1 as f64 - slab0 as f64) / n,
    ))
}

/// The mean of `stats/NAME` over `devs`.
fn mean_stat(devs: &[Opened], name: &str) -> Res<f64> {
    let mut sum = 0u64;
    for o in devs {
        sum += sysfs::read_u64(o.mdev.dir().join("stats").join(name))?;
    }
    Ok(sum as f64 / devs.len().max(1) as f64)
}

/// The `idle_*` figures: as many mtty devices as mtty allows at once (its
/// ports are few), and as many ADIs.
fn idle_cost(rounds: usize) -> Res<IdleCost> {
    let mtty = MdevType::new(MTTY_PARENT, MTTY_TYPE);
    let adi = MdevType::new(PF, SCALE_TYPE);
    let n = mtty.available()?.min(adi.available()?) as usize;
    if n == 0 {
        return Err("no mtty or ADI instance available".into());
    }
    let mut r = IdleCost {
        n,
        adi: vec![],
        adi_slab: vec![],
        mtty: vec![],
        mtty_slab: vec![],
        vdcm_own: f64::NAN,
        pf_own: f64::NAN,
    };
    for k in 0..rounds {
        // ADI first in even rounds, mtty first in odd ones. Both kinds stay
        // open until the round's end: the second cannot reuse what the
        // first freed.
        let mut held = Vec::with_capacity(2 * n);
        let measured = (|| -> Res<()> {
            for adi_now in [k % 2 == 0, k % 2 == 1] {
                if adi_now {
                    let first = held.len();
                    let (a, s) = idle_cost_of(&adi, n, &mut held)?;
                    r.adi.push(a);
                    r.adi_slab.push(s);
                    let adis = &held[first..];
                    (r.vdcm_own, r.pf_own) =
                        (mean_stat(adis, "vdcm_bytes")?, mean_stat(adis, "pf_bytes")?);
                } else {
                    let (a, s) = idle_cost_of(&mtty, n, &mut held)?;
                    r.mtty.push(a);
                    r.mtty_slab.push(s);
                }
            }
            Ok(())
        })();
        let mut first_err = measured.err();
        for o in held.drain(..).rev() {
            if let Err(e) = o.close_remove() {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    Ok(r)
}

struct Scale {
    count: usize,
    limit: String,
    create: Vec<f64>,
    open: Vec<f64>,
    avail_delta: f64,
    slab_delta: f64,
    remove_secs: f64,
}

/// Creates and opens shared ADIs (one portal each: the density mode) until
/// creation fails, `p.max_adis` are open or the time runs out; every one
/// stays open until the end.
fn scaling(p: &Params) -> Res<Scale> {
    let ty = MdevType::new(PF, SCALE_TYPE);
    let free = ty.available()?;
    // Every open ADI holds three fds (the device, a dup of it for raw
    // region access, its iommufd): take the system's maximum rather than
    // a count that breaks when the client's internals change.
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .map_err(|e| format!("read /proc/sys/fs/nr_open: {e}"))?;
    let want: libc::rlim_t = nr_open
        .trim()
        .parse()
        .map_err(|e| format!("/proc/sys/fs/nr_open {nr_open:?}: {e}"))?;
    if (want as u64) < p.max_adis as u64 * 3 + 256 {
        return Err(format!(
            "fs.nr_open is {want}: too few fds for {} open ADIs",
            p.max_adis
        ));
    }
    let lim = libc::rlimit {
        rlim_cur: want,
        rlim_max: want,
    };
    // SAFETY: plain syscall on a local struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(format!(
            "setrlimit(NOFILE, {want}): {}",
            std::io::Error::last_os_error()
        ));
    }
    let settle = || std::thread::sleep(Duration::from_millis(500));
    settle();
    let (avail0, slab0) = meminfo()?;
    let mut held: Vec<Opened> = vec![];
    let mut create = vec![];
    let mut open = vec![];
    let start = Instant::now();
    let limit = loop {
        if held.len() >= p.max_adis {
            break format!(
                "stopped at the benchmark's cap of {} (PF had {free} free portals)",
                p.max_adis
            );
        }
        if start.elapsed().as_secs_f64() > p.max_secs {
            break format!("stopped after {} s (time budget)", p.max_secs);
        }
        let t = Instant::now();
        let mdev = match ty.create()? {
            Ok(m) => m,
            Err(e) => {
                break format!(
                    "create failed: {e} (the PF had {free} free portals, one per shared ADI)"
                )
            }
        };
        let c = us(t.elapsed());
        let t = Instant::now();
        match mdev.cdev().and_then(CdevDevice::open) {
            Ok(dev) => {
                open.push(us(t.elapsed()));
                create.push(c);
                held.push(Opened { dev, mdev });
            }
            Err(e) => {
                let _ = mdev.remove();
                break format!("open failed: {e}");
            }
        }
    };
    let count = held.len();
    settle();
    let (avail1, slab1) = meminfo()?;
    let t = Instant::now();
    let mut first_err = None;
    for o in held.drain(..).rev() {
        if let Err(e) = o.close_remove() {
            first_err.get_or_insert(e);
        }
    }
    let remove_secs = t.elapsed().as_secs_f64();
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(Scale {
        count,
        limit,
        create,
        open,
        avail_delta: avail0 as f64 - avail1 as f64,
        slab_delta: slab1 as f64 - slab0 as f64,
        remove_secs,
    })
}

// ---------------------------------------------------------------------
// QoS: how the engine shares itself between ADIs (the per-ADI `qos/`
// knobs). Saturating ADIs are `load::Feeder`s kept full from a second
// thread (`load::saturate`) while this one reads their counters. "QoS off"
// is every ADI at the values it was created with (the defaults: the
// engine is then plain round robin); "QoS on" is knobs set.

/// The QoS phase's sizes and windows.
struct QosParams {
    /// ADI counts of the fairness figure.
    jain_ns: Vec<usize>,
    /// Saturation before a window (rings filled, credit settled), and the
    /// window.
    jain_warm: Duration,
    jain_window: Duration,
    weighted_warm: Duration,
    weighted_window: Duration,
    /// Latency samples on each side, the aggressor's head start, and the
    /// longest one side may take.
    noisy_samples: usize,
    noisy_warm: Duration,
    noisy_max: Duration,
    /// The unlimited-rate probe (after `rate_probe_warm`), then the limit's
    /// settling and its window.
    rate_probe_warm: Duration,
    rate_probe: Duration,
    rate_settle: Duration,
    rate_window: Duration,
    /// Pairs of overhead slices (one off, one on), each slice after its
    /// settling.
    overhead_pairs: usize,
    overhead_settle: Duration,
    overhead_slice: Duration,
    /// How long each weight setting of the timeline holds, and how often
    /// it samples the rates.
    timeline_step: Duration,
    timeline_sample: Duration,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

impl QosParams {
    /// `make bench`: about 80 s (see `qos_phase`).
    fn full() -> Self {
        QosParams {
            jain_ns: vec![2, 8, 64],
            jain_warm: secs(0.5),
            jain_window: secs(2.5),
            weighted_warm: secs(1.0),
            weighted_window: secs(5.0),
            noisy_samples: 2000,
            noisy_warm: secs(0.5),
            noisy_max: secs(20.0),
            rate_probe_warm: secs(0.3),
            rate_probe: secs(1.0),
            rate_settle: secs(1.0),
            rate_window: secs(3.0),
            overhead_pairs: 60,
            overhead_settle: secs(0.02),
            overhead_slice: secs(0.1),
            timeline_step: secs(2.0),
            timeline_sample: secs(0.2),
        }
    }

    /// `--quick`: about 10 s; no 64-ADI group.
    fn quick() -> Self {
        QosParams {
            jain_ns: vec![2, 8],
            jain_warm: secs(0.2),
            jain_window: secs(0.3),
            weighted_warm: secs(0.2),
            weighted_window: secs(0.8),
            noisy_samples: 500,
            noisy_warm: secs(0.2),
            noisy_max: secs(8.0),
            rate_probe_warm: secs(0.1),
            rate_probe: secs(0.4),
            rate_settle: secs(0.5),
            rate_window: secs(0.8),
            overhead_pairs: 4,
            overhead_settle: secs(0.02),
            overhead_slice: secs(0.1),
            timeline_step: secs(0.4),
            timeline_sample: secs(0.2),
        }
    }
}

/// A figure per ADI count, written as a JSON object in ascending count
/// order (`{"2": …, "8": …, "64": …}`).
#[derive(Default)]
struct ByN(Vec<(usize, Option<f64>)>);

impl ByN {
    fn push(&mut self, n: usize, v: f64) {
        self.0.push((n, Some(v).filter(|v| v.is_finite())));
    }
}

impl Serialize for ByN {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (n, v) in &self.0 {
            m.serialize_entry(&n.to_string(), v)?;
        }
        m.end()
    }
}

#[derive(Serialize, Default)]
struct Latencies {
    alone: Option<f64>,
    with_aggressor: Option<f64>,
}

#[derive(Serialize, Default)]
struct OffOn {
    off: Vec<f64>,
    on: Vec<f64>,
}

/// A goal: the figure at least `min` or at most `max`.
#[derive(Serialize, Clone, Copy)]
struct Goal {
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<f64>,
}

impl Goal {
    fn met(&self, v: Option<f64>) -> Option<bool> {
        let v = v?;
        Some(self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m))
    }
}

/// The goals of the QoS figures.
const QOS_GOALS: [(&str, Goal); 5] = [
    (
        "qos_jain_equal",
        Goal {
            min: Some(0.99),
            max: None,
        },
    ),
    (
        "qos_weighted_error_pct",
        Goal {
            min: None,
            max: Some(5.0),
        },
    ),
    (
        "qos_noisy_p99_ratio",
        Goal {
            min: None,
            max: Some(2.0),
        },
    ),
    (
        "qos_rate_error_pct",
        Goal {
            min: None,
            max: Some(5.0),
        },
    ),
    (
        "qos_overhead_ratio",
        Goal {
            min: Some(0.95),
            max: None,
        },
    ),
];

/// `bench.json`'s `qos_*` keys (see `qos_phase` for what each measures).
/// A figure whose measurement failed is null and its error is in
/// `qos_errors`.
#[derive(Serialize, Default)]
struct QosReport {
    qos_jain_equal: Option<f64>,
    qos_jain_equal_by_n: ByN,
    qos_jain_mixed_by_n: ByN,
    qos_timeline: Vec<TimelineSample>,
    qos_jain_equal_dedicated_by_n: ByN,
    qos_jain_equal_shared_by_n: ByN,
    qos_jain_shared_vs_dedicated_by_n: ByN,
    qos_jain_equal_desc_per_s_by_n: ByN,
    qos_weighted_error_pct: Option<f64>,
    qos_weighted_weights: Vec<u64>,
    qos_weighted_shares: Vec<f64>,
    qos_noisy_p99_ratio: Option<f64>,
    qos_noisy_p99_us: Latencies,
    qos_noisy_p50_us: Latencies,
    qos_noisy_samples: u64,
    qos_noisy_aggressor_desc_per_s: Option<f64>,
    qos_rate_error_pct: Option<f64>,
    qos_rate_set: Option<u64>,
    qos_rate_achieved: Option<f64>,
    qos_rate_unlimited: Option<f64>,
    qos_overhead_ratio: Option<f64>,
    qos_overhead_desc_per_s: OffOn,
    qos_overhead_pair_ratios: Vec<f64>,
    qos_goals: BTreeMap<&'static str, Goal>,
    qos_goals_met: BTreeMap<&'static str, Option<bool>>,
    qos_errors: BTreeMap<String, String>,
}

/// A finite `v`, else null.
fn finite(v: f64) -> Option<f64> {
    Some(v).filter(|v| v.is_finite())
}

/// Jain's fairness index of `x`: (sum x)^2 / (n * sum x^2); 1 is
/// perfectly fair, 1/n is one taking all. NaN for none or all zero.
fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let sq: f64 = x.iter().map(|v| v * v).sum();
    if x.is_empty() || sq == 0.0 {
        return f64::NAN;
    }
    sum * sum / (x.len() as f64 * sq)
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// The `q` quantile of `v` by nearest rank; NaN for none.
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// The victim's memory: a 64-slot ring at 0, its completion record after.
const VICTIM_RING: u32 = 64;
const VICTIM_REC: usize = 0x1000;
const VICTIM_MEM: usize = 0x2000;
/// Samples of each side the latency figure leaves out: the first ones
/// after a quiet spell find the engine polling slowly.
const VICTIM_DISCARD: usize = 20;
/// Longest wait for rings to run dry between groups.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The ADIs the phase creates, so that it can check every one is gone.
#[derive(Default)]
struct Created(Vec<PathBuf>);

impl Created {
    /// Creates and opens an ADI of type `ty` with `mem` bytes at
    /// `load::IOVA`.
    fn open(&mut self, ty: &str, mem: usize) -> Res<Tenant> {
        let m = load::create(PF, ty)?;
        self.0.push(m.0.dir().to_path_buf());
        load::open(m, mem)
    }

    /// A saturating 1q ADI (ring refilled by marks).
    fn ring(&mut self) -> Res<Feeder> {
        Feeder::marked(self.open(ADI_TYPE, load::MARKED_MEM)?)
    }

    /// A saturating shared ADI (portal refilled by marks).
    fn portal(&mut self) -> Res<Feeder> {
        Feeder::portal(self.open(SCALE_TYPE, load::PORTAL_MEM)?)
    }

    /// Fails if an ADI created so far still exists.
    fn all_gone(&self) -> Res<()> {
        let left: Vec<_> = self.0.iter().filter(|d| d.exists()).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} of the {} ADIs the phase created still exist, e.g. {}",
                left.len(),
                self.0.len(),
                left[0].display()
            ))
        }
    }
}

/// Saturates the feeders of `pool` whose indices are in `group` (the
/// others idle) for `warm`, then measures each one's rate over `window`;
/// afterwards every ring drains.
fn saturated_rates(
    pool: &mut [Feeder],
    group: &[usize],
    warm: Duration,
    window: Duration,
) -> Res<Vec<f64>> {
    for (i, f) in pool.iter_mut().enumerate() {
        f.on = group.contains(&i);
    }
    let r = load::saturate(pool, |ts| {
        std::thread::sleep(warm);
        let sel: Vec<&Tenant> = group.iter().map(|&i| ts[i]).collect();
        load::measure_each(&sel, window)
    });
    for f in pool.iter_mut() {
        f.on = false;
    }
    let drained = load::drain(pool, DRAIN_TIMEOUT);
    let rates = r??;
    drained?;
    Ok(rates)
}

/// `qos_jain_equal*`: equal (default) weights, n saturating ADIs at once
/// on the one PF, for each n of `jain_ns`: n dedicated 1q ADIs
/// (`qos_jain_equal_dedicated_by_n`), n shared ones
/// (`qos_jain_equal_shared_by_n`); the worse of the two is
/// `qos_jain_equal_by_n`, and the worst of those `qos_jain_equal`. Then
/// half of each at once (`qos_jain_mixed_by_n`) with the mix's mean
/// shared rate over its mean dedicated rate
/// (`qos_jain_shared_vs_dedicated_by_n`). The mix is reported, not taken
/// for the headline: there the shared ADIs demand less than a fair share
/// (their portal is refilled one slot at a time from user space, see
/// below), so their lower throughput is their submission's limit, which
/// Jain's index of raw throughput cannot tell from unfairness; the ratio
/// says how far below the dedicated ones they stayed.
///
/// How each kind is saturated (see `load`): a 1q ADI's 4096-slot ring of
/// NOPs is topped up every 2 ms, far more than the 64 descriptors a round
/// of the engine takes from it. A shared ADI's portal holds 63
/// descriptors, less than one round's quantum of 64, and the engine runs
/// it dry in every poll: it stays saturated only if it is refilled before
/// the engine's next poll, so every portal slot is a NOP with a
/// completion record and the saturating thread spins over the records,
/// republishing each slot as soon as it completes. Even so a portal runs
/// at most 63 descriptors per round where a ring runs 64 (a mix of the
/// two cannot exceed a Jain index of about 0.99994), and less if the
/// refill misses the gap between the engine's polls.
///
/// Rates: `stats/descriptors` of each ADI over `jain_window`, after
/// `jain_warm`, each counter read timed on its own.
fn qos_jain(p: &QosParams, c: &mut Created, r: &mut QosReport) -> Res<()> {
    let max = p.jain_ns.iter().copied().max().unwrap_or(0);
    // The pool: `max` 1q ADIs, then `max` shared ones.
    let mut pool = Vec::with_capacity(2 * max);
    for _ in 0..max {
        pool.push(c.ring()?);
    }
    for _ in 0..max {
        pool.push(c.portal()?);
    }
    let mut worst = f64::INFINITY;
    for &n in &p.jain_ns {
        let half = n / 2;
        let mixed: Vec<usize> = (0..half).chain(max..max + (n - half)).collect();
        let rates = saturated_rates(&mut pool, &mixed, p.jain_warm, p.jain_window)?;
        let (ded, sh) = rates.split_at(half);
        let j = jain(&rates);
        if !j.is_finite() {
            return Err(format!("{n} saturated ADIs ran nothing"));
        }
        r.qos_jain_mixed_by_n.push(n, j);
        r.qos_jain_shared_vs_dedicated_by_n
            .push(n, mean(sh) / mean(ded));
        r.qos_jain_equal_desc_per_s_by_n.push(n, rates.iter().sum());
        let dedicated: Vec<usize> = (0..n).collect();
        let d = saturated_rates(&mut pool, &dedicated, p.jain_warm, p.jain_window)?;
        r.qos_jain_equal_dedicated_by_n.push(n, jain(&d));
        let shared: Vec<usize> = (max..max + n).collect();
        let s = saturated_rates(&mut pool, &shared, p.jain_warm, p.jain_window)?;
        r.qos_jain_equal_shared_by_n.push(n, jain(&s));
        let both = jain(&d).min(jain(&s));
        worst = worst.min(both);
        r.qos_jain_equal_by_n.push(n, both);
        if !(jain(&d).is_finite() && jain(&s).is_finite()) {
            return Err(format!(
                "{n} saturated ADIs of one kind ran nothing: dedicated {d:.0?}/s, shared {s:.0?}/s"
            ));
        }
        eprintln!(
            "[bench] qos: {n} ADIs: Jain {j:.4} mixed (shared/dedicated rate {:.3}, {:.0}/s in all), {:.4} dedicated only, {:.4} shared only",
            mean(sh) / mean(ded),
            rates.iter().sum::<f64>(),
            jain(&d),
            jain(&s)
        );
    }
    r.qos_jain_equal = finite(worst);
    Ok(())
}

/// The weights of the timeline's three ADIs, one setting per step.
const TIMELINE_WEIGHTS: [[u64; 3]; 4] = [[100, 100, 100], [1, 2, 4], [4, 2, 1], [100, 100, 100]];

/// `qos_timeline`: three saturating 1q ADIs while their weights change
/// live every `timeline_step` (equal, 1:2:4, 4:2:1, equal again), each
/// one's descriptors/s every `timeline_sample`: the plot of
/// `Documentation/vdcm.rst` ("Sharing a PF fairly").
fn qos_timeline(p: &QosParams, c: &mut Created, r: &mut QosReport) -> Res<()> {
    let mut fs = Vec::new();
    for _ in 0..3 {
        fs.push(c.ring()?);
    }
    let mut knobs = KnobGuard::default();
    let per_step =
        (p.timeline_step.as_secs_f64() / p.timeline_sample.as_secs_f64()).round() as usize;
    let result = load::saturate(&mut fs, |ts| -> Res<Vec<TimelineSample>> {
        let mut out = Vec::new();
        let start = Instant::now();
        for weights in TIMELINE_WEIGHTS {
            for (t, &w) in ts.iter().zip(&weights) {
                knobs.set(&t.mdev.0, "weight", w)?;
            }
            for _ in 0..per_step.max(1) {
                let rates = load::measure_each(ts, p.timeline_sample)?;
                out.push(TimelineSample {
                    t_s: start.elapsed().as_secs_f64(),
                    weights: weights.to_vec(),
                    rates,
                });
            }
        }
        Ok(out)
    });
    for f in fs.iter_mut() {
        f.on = false;
    }
    let drained = load::drain(&mut fs, DRAIN_TIMEOUT);
    let restored = knobs.restore();
    r.qos_timeline = result??;
    drained?;
    restored
}

/// One sample of `qos_timeline`.
#[derive(Serialize)]
struct TimelineSample {
    /// Seconds since the first weight setting, at the sample's end.
    t_s: f64,
    /// The weights in force.
    weights: Vec<u64>,
    /// Each ADI's descriptors/s over the sample.
    rates: Vec<f64>,
}

/// `qos_weighted_*`: three saturating 1q ADIs at weights 1, 2 and 4.
fn qos_weighted(p: &QosParams, c: &mut Created, r: &mut QosReport) -> Res<()> {
    let ws = [1u64, 2, 4];
    let mut fs = Vec::new();
    for _ in ws {
        fs.push(c.ring()?);
    }
    let mut knobs = KnobGuard::default();
    let result = (|| -> Res<()> {
        for (f, &w) in fs.iter().zip(&ws) {
            knobs.set(f.mdev(), "weight", w)?;
        }
        let group: Vec<usize> = (0..ws.len()).collect();
        let rates = saturated_rates(&mut fs, &group, p.weighted_warm, p.weighted_window)?;
        let total: f64 = rates.iter().sum();
        if total <= 0.0 {
            return Err("three saturated ADIs ran nothing".into());
        }
        let tw: u64 = ws.iter().sum();
        let shares: Vec<f64> = rates.iter().map(|x| x / total).collect();
        let err = shares
            .iter()
            .zip(&ws)
            .map(|(s, &w)| {
                let want = w as f64 / tw as f64;
                (s - want).abs() / want * 100.0
            })
            .fold(0.0, f64::max);
        eprintln!("[bench] qos: weights {ws:?}: shares {shares:.3?}, worst error {err:.2} %");
        r.qos_weighted_weights = ws.to_vec();
        r.qos_weighted_shares = shares;
        r.qos_weighted_error_pct = finite(err);
        Ok(())
    })();
    result.and(knobs.restore())
}

/// One victim submission: a NOP with a completion record, the time from
/// the doorbell store to the record being seen (polled).
fn victim_once(t: &Tenant, q: &mut Queue<'_>) -> Res<f64> {
    t.mem.write(VICTIM_REC, &[0u8; 32]);
    q.push(&dma::nop().with_completion(load::IOVA + VICTIM_REC as u64));
    let start = Instant::now();
    q.ring();
    loop {
        let mut st = [0u8; 1];
        t.mem.read(VICTIM_REC, &mut st);
        if st[0] != 0 {
            let lat = us(start.elapsed());
            if st[0] != Status::Success as u8 {
                return Err(format!("victim NOP: completion status {}", st[0]));
            }
            return Ok(lat);
        }
        if start.elapsed() > TIMEOUT {
            return Err(format!(
                "victim NOP: no completion in {TIMEOUT:?} ({})",
                load::queue_status(&t.dev)
            ));
        }
        std::thread::yield_now();
    }
}

/// `n` latencies of the victim (after `VICTIM_DISCARD` left out), in at
/// most `max`.
fn victim_samples(t: &Tenant, q: &mut Queue<'_>, n: usize, max: Duration) -> Res<Vec<f64>> {
    let start = Instant::now();
    let mut v = Vec::with_capacity(n);
    for i in 0..n + VICTIM_DISCARD {
        let lat = victim_once(t, q)?;
        if i >= VICTIM_DISCARD {
            v.push(lat);
        }
        if start.elapsed() > max {
            break;
        }
    }
    if v.len() < n {
        return Err(format!(
            "only {} victim samples in {max:?}, want {n}",
            v.len()
        ));
    }
    Ok(v)
}

/// `qos_noisy_*`: a victim 1q ADI, one NOP with a completion record at a
/// time, alone, then beside a saturating 1q aggressor at equal weight.
fn qos_noisy(p: &QosParams, c: &mut Created, r: &mut QosReport) -> Res<()> {
    // The aggressor first: it gets the lower queue pair, so in each round
    // of the engine it is served before the victim (the victim's worse
    // order).
    let mut aggr = vec![c.ring()?];
    aggr[0].on = true;
    let victim = c.open(ADI_TYPE, VICTIM_MEM)?;
    let mut q = Queue::start(&victim.dev, &victim.mem, load::IOVA, 0, 0, VICTIM_RING, 0)?;
    let alone = victim_samples(&victim, &mut q, p.noisy_samples, p.noisy_max)?;
    let (with, aggr_rate) = load::saturate(&mut aggr, |ts| -> Res<_> {
        std::thread::sleep(p.noisy_warm);
        let (c0, t0) = (ts[0].stat("descriptors")?, Instant::now());
        let with = victim_samples(&victim, &mut q, p.noisy_samples, p.noisy_max)?;
        let c1 = ts[0].stat("descriptors")?;
        Ok((
            with,
            c1.saturating_sub(c0) as f64 / t0.elapsed().as_secs_f64(),
        ))
    })??;
    aggr[0].on = false;
    load::drain(&mut aggr, DRAIN_TIMEOUT)?;
    let (a99, w99) = (quantile(&alone, 0.99), quantile(&with, 0.99));
    eprintln!(
        "[bench] qos: victim p99 {a99:.0} us alone, {w99:.0} us beside an aggressor at {aggr_rate:.0}/s"
    );
    r.qos_noisy_samples = p.noisy_samples as u64;
    r.qos_noisy_p99_us = Latencies {
        alone: finite(a99),
        with_aggressor: finite(w99),
    };
    r.qos_noisy_p50_us = Latencies {
        alone: finite(quantile(&alone, 0.5)),
        with_aggressor: finite(quantile(&with, 0.5)),
    };
    r.qos_noisy_aggressor_desc_per_s = finite(aggr_rate);
    r.qos_noisy_p99_ratio = ratio(w99, a99);
    Ok(())
}

/// `qos_rate_*`: one saturating 1q ADI limited by max_rate.
fn qos_rate(p: &QosParams, c: &mut Created, r: &mut QosReport) -> Res<()> {
    let mut fs = vec![c.ring()?];
    let mut knobs = KnobGuard::default();
    let result = (|| -> Res<()> {
        let u = saturated_rates(&mut fs, &[0], p.rate_probe_warm, p.rate_probe)?[0];
        r.qos_rate_unlimited = finite(u);
        let set = 20_000u64.min((u / 4.0) as u64);
        if set == 0 {
            return Err(format!("unlimited rate {u:.0}/s: too low to set a limit"));
        }
        knobs.set(fs[0].mdev(), "max_rate", set)?;
        r.qos_rate_set = Some(set);
        let got = saturated_rates(&mut fs, &[0], p.rate_settle, p.rate_window)?[0];
        let err = (got - set as f64).abs() / set as f64 * 100.0;
        eprintln!("[bench] qos: unlimited {u:.0}/s, max_rate {set}: {got:.0}/s ({err:.2} % off)");
        r.qos_rate_achieved = finite(got);
        r.qos_rate_error_pct = finite(err);
        Ok(())
    })();
    result.and(knobs.restore())
}

/// `qos_overhead_*`: one saturating 1q ADI with every mechanism running
/// and none limiting ("on": weight 150, priority 2, a `max_rate` of 10^7/s
/// and a guarantee of 1000/s), over the same ADI with the values it was
/// created with ("off"). The ring stays saturated throughout while the
/// knobs flip between the two every `overhead_slice` (after
/// `overhead_settle`), in pairs of alternating order (off on, on off, ...),
/// `overhead_pairs` times; the figure is the median over the pairs of the
/// "on" slice's rate over the "off" slice's (`qos_overhead_pair_ratios`).
/// This machine's speed changes by tens of percent from one second to the
/// next, for spells of seconds: two neighbouring 100 ms slices almost
/// always meet the same speed, and the median drops the pairs that
/// straddle a change. Measured with the same knobs on both sides (an A/A
/// run), the figure came out at 0.992-1.000 in three runs; the ratio of
/// the totals over 250 ms slices gave 0.960-0.992 in four.
fn qos_overhead(p: &QosParams, c: &mut Created, r: &mut QosReport) -> Res<()> {
    let mut fs = vec![c.ring()?];
    fs[0].on = true;
    let m = Mdev::from_dir(fs[0].mdev().dir().to_path_buf());
    let mut knobs = KnobGuard::default();
    let result = load::saturate(&mut fs, |ts| -> Res<()> {
        std::thread::sleep(p.overhead_settle);
        let mut rates = OffOn::default();
        // (descriptors, seconds) of each setting.
        let mut total = [(0u64, 0f64); 2];
        for k in 0..2 * p.overhead_pairs {
            let on = (k % 2 == 1) != (k / 2 % 2 == 1);
            if on {
                // max_rate before the guarantee it must not be below.
                for (k, v) in [
                    ("weight", 150),
                    ("priority", 2),
                    ("max_rate", 10_000_000),
                    ("guaranteed_rate", 1000),
                ] {
                    knobs.set(&m, k, v)?;
                }
            } else {
                knobs.restore()?;
            }
            std::thread::sleep(p.overhead_settle);
            let (c0, t0) = (ts[0].stat("descriptors")?, Instant::now());
            std::thread::sleep(p.overhead_slice);
            let (c1, t1) = (ts[0].stat("descriptors")?, Instant::now());
            let (n, dt) = (c1.saturating_sub(c0), t1.duration_since(t0).as_secs_f64());
            let t = &mut total[usize::from(on)];
            *t = (t.0 + n, t.1 + dt);
            if on { &mut rates.on } else { &mut rates.off }.push(n as f64 / dt);
        }
        let [off, on] = total.map(|(n, dt)| n as f64 / dt);
        // Slices 2j and 2j+1 hold the j-th "off" and the j-th "on".
        let pairs: Vec<f64> = rates
            .off
            .iter()
            .zip(&rates.on)
            .filter_map(|(&a, &b)| ratio(b, a))
            .collect();
        let q = finite(median(&pairs));
        eprintln!(
            "[bench] qos: overhead: {} slices of {:?}: off {off:.0}/s, on {on:.0}/s ({:.3}), median of pairs {:.3}",
            2 * p.overhead_pairs,
            p.overhead_slice,
            on / off,
            q.unwrap_or(f64::NAN)
        );
        r.qos_overhead_ratio = q;
        r.qos_overhead_desc_per_s = rates;
        r.qos_overhead_pair_ratios = pairs;
        Ok(())
    });
    fs[0].on = false;
    let drained = load::drain(&mut fs, DRAIN_TIMEOUT);
    let restored = knobs.restore();
    result?.and(drained).and(restored)
}

type Measure = fn(&QosParams, &mut Created, &mut QosReport) -> Res<()>;

/// The steps of the QoS phase, in order, by the names `--only-qos` takes.
const QOS_STEPS: [(&str, Measure); 6] = [
    ("jain_equal", qos_jain),
    ("weighted", qos_weighted),
    ("noisy", qos_noisy),
    ("rate", qos_rate),
    ("overhead", qos_overhead),
    ("timeline", qos_timeline),
];

/// The QoS phase. Each measurement creates its ADIs, restores every knob
/// it set and removes them (on error too: guards); a failed one leaves
/// its figures null and its error in `qos_errors`, and the others run.
///
/// Full run, about 80 s: the fairness pool of 64 1q and 64 shared ADIs
/// (created and opened once), nine windows of 0.5 + 2.5 s and the rings
/// draining after each; weights 1 + 5 s; 2 x 2000 latency samples; the
/// rate limit 0.3 + 1 + 1 + 3 s; the overhead 120 x 0.12 s; the timeline 8 s. `--quick`, about
/// 10 s: groups of 2 and 8, windows of a few tenths of a second, 2 x 500
/// samples.
fn qos_phase(p: &QosParams, only: Option<&[String]>) -> QosReport {
    let mut r = QosReport::default();
    let mut c = Created::default();
    let chosen = |name: &str| only.is_none_or(|o| o.iter().any(|s| s == name || s == "all"));
    for (name, f) in QOS_STEPS.into_iter().filter(|(name, _)| chosen(name)) {
        let t = Instant::now();
        if let Err(e) = f(p, &mut c, &mut r) {
            eprintln!("[bench] qos {name} failed: {e}");
            r.qos_errors.insert(name.to_string(), e);
        }
        eprintln!("[bench] qos {name}: {:.1} s", t.elapsed().as_secs_f64());
    }
    if let Err(e) = c.all_gone() {
        r.qos_errors.insert("cleanup".to_string(), e);
    }
    let figures = [
        r.qos_jain_equal,
        r.qos_weighted_error_pct,
        r.qos_noisy_p99_ratio,
        r.qos_rate_error_pct,
        r.qos_overhead_ratio,
    ];
    for ((key, goal), v) in QOS_GOALS.iter().zip(figures) {
        r.qos_goals.insert(key, *goal);
        r.qos_goals_met.insert(key, goal.met(v));
    }
    r
}

/// `a / b`, or null when either is missing.
fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && b > 0.0).then(|| a / b)
}

fn run(p: &Params) -> Res<Report> {
    let began = Instant::now();
    let sriov = match Sriov::find() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("[bench] SR-IOV baseline unavailable: {e}");
            None
        }
    };
    let vf_note = sriov.as_ref().map_or(
        "no SR-IOV capable PCI function in the VM (run through make bench)".to_string(),
        Sriov::describe,
    );
    eprintln!("[bench] SR-IOV baseline: {vf_note}");
    // First: after thousands of ADIs come and go, freed memory keeps
    // coming back for minutes and a few dozen devices do not show.
    eprintln!(
        "[bench] memory (first, before anything churns): idle ADIs beside as many idle mtty devices, x{}",
        p.idle_rounds
    );
    let idle = idle_cost(p.idle_rounds)?;
    eprintln!(
        "[bench] memory: {} idle devices: ADI {:.0} B, mtty {:.0} B each (MemAvailable drop); ADI's own: VDCM {:.0} B + PF {:.0} B",
        idle.n,
        median(&idle.adi),
        median(&idle.mtty),
        idle.vdcm_own,
        idle.pf_own
    );
    eprintln!(
        "[bench] create/open x{} (ADI, mtty, VF interleaved)",
        p.iters
    );
    let lc = lifecycle(p, sriov.as_ref())?;
    eprintln!(
        "[bench] register access {}x{}, resets x{}",
        p.reg_rounds, p.reg_inner, p.resets
    );
    let ac = access(p, sriov.as_ref())?;
    eprintln!("[bench] fast path: {} descriptors", p.descs);
    let f = fastpath(p)?;
    eprintln!(
        "[bench] migration x{} (idle ADI, busy ADI, mtty)",
        p.migrations
    );
    let mg = migration(p)?;
    eprintln!("[bench] scaling: up to {} ADIs open", p.max_adis);
    let sc = scaling(p)?;
    eprintln!(
        "[bench] qos: fairness of {:?} ADIs, weights, noisy neighbour, rate limit, overhead",
        p.qos.jain_ns
    );
    let qos = qos_phase(&p.qos, None);

    let m = |v: &Vec<f64>| median(v);
    let mo = |v: &Vec<f64>| Some(median(v)).filter(|x| x.is_finite());
    let vf = if lc.vf.is_empty() {
        f64::NAN
    } else {
        m(&lc.vf)
    };
    let bar0_rw = (m(&ac.adi_bar0_read) + m(&ac.adi_bar0_write)) / 2.0;
    let mtty_rw = (m(&ac.mtty_bar0_read) + m(&ac.mtty_bar0_write)) / 2.0;
    let desc_rate = f.descs as f64 / f.secs;
    let direct_desc = p.direct.map(|[d, ns, _, _]| d / (ns / 1e9));
    let direct_bytes = p
        .direct
        .filter(|[_, _, b, _]| *b > 0.0)
        .map(|[_, _, b, ns]| b / (ns / 1e9));
    let n = sc.count.max(1) as f64;
    Ok(Report {
        quick: u8::from(p.quick),
        iterations: p.iters as u64,
        run_seconds: began.elapsed().as_secs_f64().round(),
        adi_create_open_us: m(&lc.adi),
        mtty_create_open_us: m(&lc.mtty),
        vf_create_open_us: Some(vf).filter(|v| v.is_finite()),
        vf_baseline: vf_note,
        adi_close_remove_us: m(&lc.adi_remove),
        mtty_close_remove_us: m(&lc.mtty_remove),
        vf_close_remove_us: Some(m(&lc.vf_remove)).filter(|v| v.is_finite()),
        max_adis_per_pf: sc.count as u64,
        max_adis_limit: sc.limit,
        bytes_per_idle_adi: sc.avail_delta / n,
        slab_bytes_per_idle_adi: sc.slab_delta / n,
        idle_devices_compared: idle.n as u64,
        adi_bytes_per_idle_dev: m(&idle.adi),
        mtty_bytes_per_idle_dev: m(&idle.mtty),
        adi_slab_bytes_per_idle_dev: m(&idle.adi_slab),
        mtty_slab_bytes_per_idle_dev: m(&idle.mtty_slab),
        vdcm_own_bytes_per_idle_adi: idle.vdcm_own + idle.pf_own,
        vdcm_part_bytes_per_idle_adi: idle.vdcm_own,
        pf_part_bytes_per_idle_adi: idle.pf_own,
        remove_all_adis_s: sc.remove_secs,
        create_latency_scaling: sc.create,
        open_latency_scaling: sc.open,
        fastpath_traps_per_1m_desc: f.traps as f64 * 1e6 / f.descs.max(1) as f64,
        fastpath_descriptors: f.descs,
        fastpath_traps: f.traps,
        adi_desc_per_s: desc_rate,
        adi_bytes_per_s: f.bytes as f64 / f.bytes_secs,
        direct_desc_per_s: direct_desc,
        direct_bytes_per_s: direct_bytes,
        adi_vs_direct_throughput_ratio: direct_desc.and_then(|d| ratio(desc_rate, d)),
        adi_vs_direct_bytes_ratio: direct_bytes
            .and_then(|d| ratio(f.bytes as f64 / f.bytes_secs, d)),
        config_read_ns: m(&ac.adi_config_read),
        bar0_read_ns: m(&ac.adi_bar0_read),
        bar0_write_ns: m(&ac.adi_bar0_write),
        bar0_rw_ns: bar0_rw,
        mtty_config_read_ns: m(&ac.mtty_config_read),
        mtty_region_read_ns: m(&ac.mtty_bar0_read),
        mtty_region_write_ns: m(&ac.mtty_bar0_write),
        mtty_region_rw_ns: mtty_rw,
        vf_config_read_ns: mo(&ac.vf_config_read),
        vf_bar0_read_ns: mo(&ac.vf_bar0_read),
        reset_us: m(&ac.adi_reset),
        mtty_reset_us: m(&ac.mtty_reset),
        vf_reset_us: mo(&ac.vf_reset),
        irq_latency_us: m(&f.irq_warm),
        irq_latency_warm_samples_us: f.irq_warm.clone(),
        irq_latency_cold_us: Some(m(&f.irq_cold)).filter(|v| v.is_finite()),
        dirty_log_off_bytes_per_s: m(&f.log_off),
        dirty_log_on_bytes_per_s: m(&f.log_on),
        migration_downtime_ms: m(&mg.idle.down),
        migration_total_ms: m(&mg.idle.total),
        migration_stream_bytes: mg.idle.bytes,
        migration_busy_downtime_ms: m(&mg.busy.down),
        migration_busy_total_ms: m(&mg.busy.total),
        migration_busy_stream_bytes: mg.busy.bytes,
        mtty_migration_downtime_ms: m(&mg.mtty.down),
        mtty_migration_total_ms: m(&mg.mtty.total),
        mtty_migration_stream_bytes: mg.mtty.bytes,
        qos,
        ratios: Ratios {
            create_open_adi_vs_mtty: ratio(m(&lc.adi), m(&lc.mtty)),
            idle_bytes_adi_vs_mtty: ratio(m(&idle.adi), m(&idle.mtty)),
            create_open_adi_vs_vf: ratio(m(&lc.adi), vf),
            config_read_adi_vs_mtty: ratio(m(&ac.adi_config_read), m(&ac.mtty_config_read)),
            region_rw_adi_vs_mtty: ratio(bar0_rw, mtty_rw),
            reset_adi_vs_mtty: ratio(m(&ac.adi_reset), m(&ac.mtty_reset)),
            config_read_adi_vs_vf: ratio(m(&ac.adi_config_read), median(&ac.vf_config_read)),
            reset_adi_vs_vf: ratio(m(&ac.adi_reset), median(&ac.vf_reset)),
            throughput_adi_vs_direct: direct_desc.and_then(|d| ratio(desc_rate, d)),
            dirty_log_on_vs_off: ratio(m(&f.log_on), m(&f.log_off)),
            migration_downtime_adi_vs_mtty: ratio(m(&mg.idle.down), m(&mg.mtty.down)),
            migration_busy_downtime_adi_vs_mtty: ratio(m(&mg.busy.down), m(&mg.mtty.down)),
        },
    })
}

fn main() {
    let p = match Params::parse() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vdcm_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Some(only) = &p.only_qos {
        let known = |s: &str| s == "all" || QOS_STEPS.iter().any(|(name, _)| *name == s);
        if let Some(bad) = only.iter().find(|s| !known(s)) {
            let names: Vec<&str> = QOS_STEPS.iter().map(|(name, _)| *name).collect();
            eprintln!("vdcm_bench: --only-qos: no step {bad:?} (steps: all, {names:?})");
            std::process::exit(2);
        }
        let r = qos_phase(&p.qos, Some(only));
        write_json(&p.out, &r);
        qos_errors_exit(&r);
        return;
    }
    match run(&p) {
        Ok(report) => {
            write_json(&p.out, &report);
            qos_errors_exit(&report.qos);
        }
        Err(e) => {
            eprintln!("vdcm_bench: {e}");
            std::process::exit(1);
        }
    }
}

/// Writes `v` to `out` as pretty JSON, or exits.
fn write_json(out: &std::path::Path, v: &impl Serialize) {
    let json = match serde_json::to_string_pretty(v) {
        Ok(j) => j + "\n",
        Err(e) => {
            eprintln!("vdcm_bench: JSON: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = std::fs::write(out, json) {
        eprintln!("vdcm_bench: write {}: {e}", out.display());
        std::process::exit(1);
    }
    eprintln!("[bench] wrote {}", out.display());
}

/// Exits with 1 after naming them if any QoS measurement failed.
fn qos_errors_exit(r: &QosReport) {
    if r.qos_errors.is_empty() {
        return;
    }
    for (what, e) in &r.qos_errors {
        eprintln!("vdcm_bench: qos {what}: {e}");
    }
    std::process::exit(1);
}

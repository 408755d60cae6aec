// SPDX-License-Identifier: GPL-2.0

//! Guest driver for the VDCM's virtual device (PCI `fffe:51a0`).
//!
//! This is what a guest VM loads when a VMM (QEMU `vfio-pci`) hands it an
//! ADI: an ordinary PCI driver that knows nothing of SIOV, PASIDs or the
//! host. It probes the device by its IDs, maps BAR0 (registers, trapped by
//! the VDCM) and BAR2 (queue 0's doorbell, mapped straight through to the
//! PF), enables one MSI-X vector, programs queue 0 with a descriptor ring
//! in guest memory and runs a DMA self-test: MEMMOVE, FILL and CRC32C over
//! guest memory, each finished by a completion interrupt, each result
//! checked by the CPU. With `traffic_ms` it keeps the test running that
//! long, so that several guests can drive one PF at once.
//!
//! The device's registers and descriptor format are documented in
//! `Documentation/vdcm.rst` ("BAR0 register file", "The simulated PF's
//! data mover", "The guest driver"); the descriptor and completion-record
//! encoding is shared with the simulated PF (`samples/vdcm_sim/desc.rs`).

use kernel::{
    device::{Bound, Core, Device},
    dma::Coherent,
    io::Io,
    new_condvar, new_mutex, pci,
    prelude::*,
    sync::{Arc, CondVar, CondVarTimeoutResult, Mutex},
    time::{msecs_to_jiffies, Instant, Monotonic},
};

#[path = "../vdcm_sim/abi.rs"]
pub mod abi;
#[path = "../../rust/compat.rs"]
pub mod compat;
#[path = "../vdcm_sim/desc.rs"]
pub mod desc;

use compat::pci::{IrqReturn, ThreadedHandler, ThreadedIrq};
use desc::{Completion, Descriptor, Opcode, Status};

kernel::module_pci_driver! {
    type: GuestDriver,
    name: "vdcm_guest",
    authors: ["The VDCM developers"],
    description: "Guest driver for the VDCM virtual device, with a DMA self-test",
    license: "GPL",
    params: {
        seed: u32 {
            default: 1,
            description: "Seed of the self-test's data patterns",
        },
        traffic_ms: u32 {
            default: 0,
            description: "After the self-test, repeat it for this many milliseconds (0: once)",
        },
    },
}

/// The device's register interface, from its one definition (the
/// simulated PF's `abi.rs`), as the offsets and sizes the kernel crate's
/// `pci::Bar` takes.
mod regs {
    use super::abi;

    pub(crate) const VENDOR_ID: u16 = abi::VENDOR_ID;
    pub(crate) const DEVICE_ID: u16 = abi::DEVICE_ID;
    pub(crate) const CLASS: u32 = abi::CLASS_CODE;
    pub(crate) const BAR0_SIZE: usize = abi::BAR0_SIZE as usize;
    pub(crate) const DOORBELL_PAGE: usize = abi::DOORBELL_PAGE as usize;
    pub(crate) const DOORBELL_TAIL: usize = abi::DOORBELL_TAIL;
    pub(crate) const DEVCAP: usize = abi::DEVCAP as usize;
    pub(crate) const VERSION: u64 = abi::VERSION as u64;
    pub(crate) const DEVCTL: usize = abi::DEVCTL as usize;
    pub(crate) const DEVCTL_ENABLE: u32 = abi::DEVCTL_ENABLE;
    pub(crate) const DEVCTL_RESET: u32 = abi::DEVCTL_RESET;
    pub(crate) const Q0_RING_BASE: usize = (abi::queue(0) + abi::Q_RING_BASE) as usize;
    pub(crate) const Q0_RING_SIZE: usize = (abi::queue(0) + abi::Q_RING_SIZE) as usize;
    pub(crate) const Q0_CONTROL: usize = (abi::queue(0) + abi::Q_CONTROL) as usize;
    pub(crate) const CONTROL_ENABLE: u32 = abi::CONTROL_ENABLE;
    pub(crate) const Q0_STATUS: usize = (abi::queue(0) + abi::Q_STATUS) as usize;
    pub(crate) const STATUS_RUNNING: u32 = abi::STATUS_RUNNING;
    pub(crate) const Q0_PASID: usize = (abi::queue(0) + abi::Q_PASID) as usize;
}

/// The device's capabilities, from `DEVCAP`.
struct DevCap {
    queues: u64,
    vectors: u64,
    max_ring_order: u64,
    version: u64,
}

impl DevCap {
    fn from_raw(raw: u64) -> Self {
        DevCap {
            queues: raw & 0xff,
            vectors: (raw >> 8) & 0x3ff,
            max_ring_order: (raw >> 20) & 0xf,
            version: raw >> 56,
        }
    }
}

/// The CRC32C (Castagnoli, reflected polynomial 0x82f63b78) lookup table:
/// the guest checks the device's CRC32C results with its own software
/// implementation, independent of the one the device uses.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Continues a CRC32C over `data`. `crc` is the running value without the
/// final inversion: start with `!seed`, finish with `!crc`.
pub fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// Descriptors in the ring.
const RING_ENTRIES: u32 = 16;
/// Bytes each self-test operation covers.
const BUF_SIZE: u32 = 4096;

/// Byte offsets of the parts of the driver's one coherent DMA area.
const RING: usize = 0;
const COMPLETIONS: usize = RING + RING_ENTRIES as usize * desc::DESC_SIZE;
const SRC: usize = 4096;
const DST: usize = SRC + BUF_SIZE as usize;
const FILL: usize = DST + BUF_SIZE as usize;
const AREA_SIZE: usize = FILL + BUF_SIZE as usize;
const AREA_WORDS: usize = AREA_SIZE / 8;
const _: () = assert!(COMPLETIONS + RING_ENTRIES as usize * desc::COMPLETION_SIZE <= SRC);

/// How long one descriptor may take before the driver gives up.
const TIMEOUT_MS: u32 = 10_000;

type Bar0<'bound> = pci::Bar<'bound, { regs::BAR0_SIZE }>;
type Bar2<'bound> = pci::Bar<'bound, { regs::DOORBELL_PAGE }>;

/// Completion interrupts: counted by the threaded handler, waited for by
/// the self-test.
#[pin_data]
struct Interrupts {
    #[pin]
    count: Mutex<u64>,
    #[pin]
    raised: CondVar,
}

impl Interrupts {
    fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            count <- new_mutex!(0),
            raised <- new_condvar!(),
        }? Error)
    }

    /// Waits until at least `target` interrupts have arrived.
    fn wait_for(&self, target: u64) -> Result {
        let mut count = self.count.lock();
        let mut left = msecs_to_jiffies(TIMEOUT_MS);
        while *count < target {
            match self.raised.wait_interruptible_timeout(&mut count, left) {
                CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                CondVarTimeoutResult::Timeout => return Err(ETIMEDOUT),
                CondVarTimeoutResult::Signal { .. } => return Err(EINTR),
            }
        }
        Ok(())
    }

    fn count(&self) -> u64 {
        *self.count.lock()
    }
}

impl ThreadedHandler for Interrupts {
    fn handle_threaded(&self) -> IrqReturn {
        *self.count.lock() += 1;
        self.raised.notify_all();
        IrqReturn::Handled
    }
}

/// Queue 0 as the self-test drives it.
struct Queue<'a> {
    dev: &'a Device<Bound>,
    bar2: &'a Bar2<'a>,
    irqs: &'a Interrupts,
    mem: &'a Coherent<[u64]>,
    /// Descriptors submitted so far (the free-running tail).
    tail: u32,
    /// Interrupts expected so far.
    expected_irqs: u64,
}

/// Totals of a run of self-test rounds.
#[derive(Default)]
struct Totals {
    rounds: u64,
    descriptors: u64,
    bytes: u64,
}

impl Queue<'_> {
    fn iova(&self, offset: usize) -> u64 {
        compat::dma::address(self.mem) + offset as u64
    }

    fn write_word(&self, offset: usize, value: u64) -> Result {
        compat::dma::write(self.mem, offset / 8, value)
    }

    fn read_word(&self, offset: usize) -> Result<u64> {
        compat::dma::read(self.mem, offset / 8)
    }

    /// Posts `d` with a completion record and a completion interrupt,
    /// rings the doorbell, waits for the interrupt and returns the record.
    fn run(&mut self, d: Descriptor) -> Result<Completion> {
        let slot = (self.tail % RING_ENTRIES) as usize;
        let record = COMPLETIONS + slot * desc::COMPLETION_SIZE;
        for w in 0..desc::COMPLETION_SIZE / 8 {
            self.write_word(record + w * 8, 0)?;
        }
        let d = d.with_completion(self.iova(record)).with_interrupt();
        for (w, value) in d.encode().into_iter().enumerate() {
            self.write_word(RING + slot * desc::DESC_SIZE + w * 8, value)?;
        }
        self.tail = self.tail.wrapping_add(1);
        // The doorbell is an MMIO store, ordered after the stores above.
        self.bar2.write32(self.tail, regs::DOORBELL_TAIL);
        self.expected_irqs += 1;
        if let Err(e) = self.irqs.wait_for(self.expected_irqs) {
            if e == ETIMEDOUT {
                dev_err!(
                    self.dev,
                    "no completion interrupt for descriptor {} (opcode {}) within {} ms\n",
                    self.tail,
                    d.opcode,
                    TIMEOUT_MS
                );
            } else {
                dev_err!(
                    self.dev,
                    "waiting for the completion interrupt of descriptor {} was interrupted by a signal\n",
                    self.tail
                );
            }
            return Err(e);
        }
        let mut raw = [0u64; desc::COMPLETION_SIZE / 8];
        for (w, word) in raw.iter_mut().enumerate() {
            *word = self.read_word(record + w * 8)?;
        }
        let Some(c) = Completion::decode(&raw) else {
            dev_err!(
                self.dev,
                "interrupt for descriptor {} arrived but its completion record is empty ({:#x})\n",
                self.tail,
                raw[0]
            );
            return Err(EIO);
        };
        if c.status != Status::Success || c.opcode != d.opcode || c.done != d.size {
            dev_err!(
                self.dev,
                "descriptor {} (opcode {}, {} bytes) completed with {:?}, opcode {}, {} bytes, fault IOVA {:#x}\n",
                self.tail,
                d.opcode,
                d.size,
                c.status,
                c.opcode,
                c.done,
                c.fault_iova
            );
            return Err(EIO);
        }
        Ok(c)
    }

    /// Checks that the `BUF_SIZE` bytes at `offset` are `expect(word)`.
    fn verify(&self, what: &str, offset: usize, expect: impl Fn(usize) -> u64) -> Result {
        for w in 0..BUF_SIZE as usize / 8 {
            let got = self.read_word(offset + w * 8)?;
            if got != expect(w) {
                dev_err!(
                    self.dev,
                    "{}: byte {} of the result is wrong: {:#018x}, expected {:#018x}\n",
                    what,
                    w * 8,
                    got,
                    expect(w)
                );
                return Err(EIO);
            }
        }
        Ok(())
    }

    /// One round: MEMMOVE, FILL and CRC32C over guest memory, each result
    /// checked by the CPU. Returns the CRC32C the device computed.
    fn round(&mut self, seed: u64, round: u64, totals: &mut Totals) -> Result<u32> {
        let pattern =
            |w: usize| (seed << 40 ^ round << 20 ^ w as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // CRC32C seeded with `crc_seed`, computed by the CPU as the data is
        // written (the running value is kept inverted, as in the device).
        let crc_seed = (seed ^ round) as u32;
        let mut crc = !crc_seed;
        for w in 0..BUF_SIZE as usize / 8 {
            let v = pattern(w);
            self.write_word(SRC + w * 8, v)?;
            self.write_word(DST + w * 8, 0)?;
            crc = crc32c_update(crc, &v.to_le_bytes());
        }
        let expected_crc = !crc;

        self.run(Descriptor::new(
            Opcode::MemMove,
            BUF_SIZE,
            self.iova(SRC),
            self.iova(DST),
        ))?;
        self.verify("MEMMOVE", DST, pattern)?;

        let fill = pattern(usize::MAX);
        self.run(Descriptor::new(Opcode::Fill, BUF_SIZE, 0, self.iova(FILL)).with_operand(fill))?;
        self.verify("FILL", FILL, |_| fill)?;

        let c = self.run(
            Descriptor::new(Opcode::Crc32c, BUF_SIZE, self.iova(SRC), 0)
                .with_operand(u64::from(crc_seed)),
        )?;
        if c.result != u64::from(expected_crc) {
            dev_err!(
                self.dev,
                "CRC32C: the device computed {:#010x}, the CPU {:#010x}\n",
                c.result,
                expected_crc
            );
            return Err(EIO);
        }
        totals.rounds += 1;
        totals.descriptors += 3;
        totals.bytes += 3 * u64::from(BUF_SIZE);
        Ok(expected_crc)
    }
}

/// A bound device: its mappings, interrupt and DMA memory, kept until
/// unbind.
struct GuestDevice<'bound> {
    bar0: Bar0<'bound>,
    _bar2: Bar2<'bound>,
    _irq: Arc<ThreadedIrq<'bound, Interrupts>>,
    _mem: Coherent<[u64]>,
}

struct GuestDriver;

crate::vdcm_pci_device_table!(
    PCI_TABLE,
    MODULE_PCI_TABLE,
    <GuestDriver as pci::Driver>::IdInfo,
    // The kernel crate names assigned vendor IDs only and 0xfffe is
    // unassigned: the table matches the device's class, probe checks the
    // IDs.
    [(pci::DeviceId::from_class(regs::CLASS, 0xff_ffff), ())]
);

/// Resets the device and starts queue 0 on the ring at `ring_iova`.
fn start_queue(dev: &Device<Bound>, bar0: &Bar0<'_>, ring_iova: u64) -> Result {
    bar0.write32(regs::DEVCTL_RESET, regs::DEVCTL);
    bar0.write32(regs::DEVCTL_ENABLE, regs::DEVCTL);
    // 64-bit registers through the checked accessors: 7.3 refuses an
    // unchecked 64-bit access to a BAR whose alignment it knows as 4 only.
    bar0.try_write64(ring_iova, regs::Q0_RING_BASE)?;
    bar0.write32(RING_ENTRIES, regs::Q0_RING_SIZE);
    // Completions of queue 0 signal MSI-X vector 0.
    bar0.write32(regs::CONTROL_ENABLE, regs::Q0_CONTROL);
    let status = bar0.read32(regs::Q0_STATUS);
    if status & regs::STATUS_RUNNING == 0 {
        dev_err!(
            dev,
            "queue 0 did not start: STATUS {:#x} (error code {})\n",
            status,
            (status >> 8) & 0xff
        );
        return Err(EIO);
    }
    Ok(())
}

/// Stops queue 0 and disables the device.
fn stop(bar0: &Bar0<'_>) {
    bar0.write32(0, regs::Q0_CONTROL);
    bar0.write32(0, regs::DEVCTL);
}

impl pci::Driver for GuestDriver {
    type IdInfo = ();
    type Data<'bound> = GuestDevice<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: compat::pci::IdInfo<'bound, Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        let dev: &Device<Bound> = pdev.as_ref();
        if pdev.vendor_id().as_raw() != regs::VENDOR_ID || pdev.device_id() != regs::DEVICE_ID {
            return Err(ENODEV);
        }
        pdev.enable_device_mem()?;
        pdev.set_master();

        let bar0 = pdev.iomap_region_sized::<{ regs::BAR0_SIZE }>(0, c"vdcm_guest")?;
        let bar2 = pdev.iomap_region_sized::<{ regs::DOORBELL_PAGE }>(2, c"vdcm_guest")?;
        let cap = DevCap::from_raw(bar0.try_read64(regs::DEVCAP)?);
        if cap.version != regs::VERSION
            || cap.queues == 0
            || cap.vectors == 0
            || (1u64 << cap.max_ring_order) < u64::from(RING_ENTRIES)
        {
            dev_err!(
                dev,
                "unsupported device: DEVCAP layout v{}, {} queues, {} vectors, rings up to 2^{} (this driver: v{}, 1 queue, 1 vector, {} descriptors)\n",
                cap.version,
                cap.queues,
                cap.vectors,
                cap.max_ring_order,
                regs::VERSION,
                RING_ENTRIES
            );
            return Err(ENODEV);
        }

        let msix = pci::IrqTypes::default().with(pci::IrqType::MsiX);
        let irq = Arc::pin_init(
            ThreadedIrq::new(
                pdev,
                msix,
                compat::pci::Flags::TRIGGER_NONE,
                c"vdcm_guest",
                Interrupts::new(),
            ),
            GFP_KERNEL,
        )
        .inspect_err(|e| {
            dev_err!(dev, "no MSI-X vector with a handler: {:?}\n", e);
        })?;
        // The device takes 64-bit IOVAs; the default 32-bit DMA mask is kept
        // (the area is four pages of coherent memory).
        let mem = Coherent::<u64>::zeroed_slice(dev, AREA_WORDS, GFP_KERNEL)?;

        start_queue(dev, &bar0, compat::dma::address(&mem) + RING as u64)?;
        dev_info!(
            dev,
            "virtual device {:04x}:{:04x}: {} queue(s), {} MSI-X vectors, layout v{}; queue 0 started (host PASID {})\n",
            regs::VENDOR_ID,
            regs::DEVICE_ID,
            cap.queues,
            cap.vectors,
            cap.version,
            bar0.read32(regs::Q0_PASID)
        );

        let seed = u64::from(compat::param(&module_parameters::seed));
        let traffic_ms = i64::from(compat::param(&module_parameters::traffic_ms));
        let mut queue = Queue {
            dev,
            bar2: &bar2,
            irqs: irq.handler(),
            mem: &mem,
            tail: 0,
            expected_irqs: 0,
        };
        let mut totals = Totals::default();
        let start = Instant::<Monotonic>::now();
        let result = queue.round(seed, 0, &mut totals).and_then(|crc| {
            dev_info!(
                dev,
                "self-test passed: MEMMOVE {} B, FILL {} B, CRC32C {:#010x}, {} completion interrupts\n",
                BUF_SIZE,
                BUF_SIZE,
                crc,
                irq.handler().count()
            );
            while start.elapsed().as_millis() < traffic_ms {
                queue.round(seed, totals.rounds, &mut totals)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            stop(&bar0);
            dev_err!(
                dev,
                "self-test failed after {} good rounds: {:?}\n",
                totals.rounds,
                e
            );
            return Err(e);
        }
        if traffic_ms > 0 {
            dev_info!(
                dev,
                "traffic passed: {} rounds, {} descriptors, {} bytes, {} interrupts in {} ms, every result checked\n",
                totals.rounds,
                totals.descriptors,
                totals.bytes,
                irq.handler().count(),
                start.elapsed().as_millis()
            );
        }

        Ok(GuestDevice {
            bar0,
            _bar2: bar2,
            _irq: irq,
            _mem: mem,
        })
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        stop(&this.bar0);
        dev_info!(pdev, "queue 0 stopped, device disabled\n");
    }
}

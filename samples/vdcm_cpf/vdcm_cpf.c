// SPDX-License-Identifier: GPL-2.0
/*
 * vdcm_cpf - a SIOV PF driver in C, the example a PF author starts from
 *
 * The VDCM (drivers/vdcm) composes virtual PCI devices out of a PF's
 * Assignable Device Interfaces (ADIs). It owns every mechanism an ADI needs
 * -- mdev types, VFIO and iommufd, the emulated config space and MSI-X,
 * PASIDs, tenant DMA, reset, removal -- and asks the PF, through the ops
 * table of include/vdcm_pf.h, only for the device's personality. This
 * module is that personality for a small device, written the way a
 * hardware PF driver would write it, minus the hardware:
 *
 *   one PF, vdcm_cpf0 (class vdcm_cpf), offering num_adis ADIs of one type,
 *   "mbox", each of which is
 *
 *   BAR0  4 KiB, 32-bit, trapped: a register file
 *         0x000 ID       RO  0x31465043 ("CPF1")
 *         0x004 MAILBOX  RW  scratch
 *         0x008 BUF_LO   RW  tenant IOVA of a buffer, low half
 *         0x00c BUF_HI   RW  high half
 *         0x010 BUF_LEN  RW  bytes to checksum, 1..4096
 *         0x014 RESULT   RO  CRC-32C of the buffer
 *         0x018 STATUS   RO  bit 0 done, bit 1 error
 *         0x01c COUNT    RO  doorbells handled since reset
 *         0x800 MSI-X table, 0xc00 PBA (1 vector; emulated by the VDCM)
 *   BAR2  4 KiB, 64-bit, mapped straight into the tenant: the doorbell
 *         page. A non-zero 32-bit store at offset 0 asks for the CRC-32C
 *         of the buffer; the result raises MSI-X vector 0.
 *
 * Register accesses are 32 bits wide and naturally aligned; any other
 * access is refused (-EINVAL). Stores to the doorbell page do not trap, so
 * the PF polls it, once a jiffy while any ADI exists -- where a hardware PF
 * would have its doorbell write start the queue.
 *
 * Migration: a quiesced ADI's doorbell is not served (a store made then
 * waits in the page); its saved state is struct cpf_state, the registers
 * and the doorbell word, so a doorbell rung but not served yet is served
 * on the destination.
 *
 * Locks: cpf_pf.lock protects the list of ADIs and is held by the poller
 * for a whole pass; cpf_adi.lock protects one ADI's registers and counters
 * and is held while its doorbell is served. Order: cpf_pf.lock, then
 * cpf_adi.lock.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitfield.h>
#include <linux/crc32.h>
#include <linux/device.h>
#include <linux/gfp.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci_ids.h>
#include <linux/pci_regs.h>
#include <linux/slab.h>
#include <linux/unaligned.h>
#include <linux/workqueue.h>

#include <vdcm_pf.h>

#define CPF_NAME		"vdcm_cpf"
#define CPF_MAX_ADIS		64

/* BAR0 registers */
#define CPF_REG_ID		0x000
#define CPF_REG_MAILBOX		0x004
#define CPF_REG_BUF_LO		0x008
#define CPF_REG_BUF_HI		0x00c
#define CPF_REG_BUF_LEN		0x010
#define CPF_REG_RESULT		0x014
#define CPF_REG_STATUS		0x018
#define CPF_REG_COUNT		0x01c

#define CPF_ID_VALUE		0x31465043	/* "CPF1", little endian */
#define CPF_STATUS_DONE		BIT(0)
#define CPF_STATUS_ERROR	BIT(1)
#define CPF_BUF_MAX		4096

#define CPF_BAR_SIZE		4096
#define CPF_MSIX_TABLE		0x800
#define CPF_MSIX_PBA		0xc00

/* The PF's own config space: its IDs and where the SIOV DVSEC sits. */
#define CPF_PF_VENDOR		0xfffe
#define CPF_PF_DEVICE		0x51c1
#define CPF_PCIE_CAP		0x40
#define CPF_SIOV_DVSEC		0x100
#define CPF_SIOV_DVSEC_LEN	0x18
#define CPF_SIOV_DVSEC_ID	5

static unsigned int num_adis = 8;
module_param(num_adis, uint, 0444);
MODULE_PARM_DESC(num_adis, "ADIs the PF offers (1..64, default 8)");

static bool siov_cap = true;
module_param(siov_cap, bool, 0444);
MODULE_PARM_DESC(siov_cap,
		 "1: the PF's config space shows the SIOV DVSEC; 0: it does not, and the VDCM refuses the PF");

/**
 * struct cpf_regs - the BAR0 registers of one ADI that hold state
 * @mailbox: MAILBOX
 * @buf_lo: BUF_LO
 * @buf_hi: BUF_HI
 * @buf_len: BUF_LEN
 * @result: RESULT
 * @status: STATUS
 * @count: COUNT
 *
 * All zero is the reset value.
 */
struct cpf_regs {
	u32 mailbox;
	u32 buf_lo;
	u32 buf_hi;
	u32 buf_len;
	u32 result;
	u32 status;
	u32 count;
};

/* struct cpf_state.magic: "CPFS", and the layout's version. */
#define CPF_STATE_MAGIC		0x53465043
#define CPF_STATE_VERSION	1

/**
 * struct cpf_state - the saved state of one ADI (little endian)
 * @magic: CPF_STATE_MAGIC
 * @version: CPF_STATE_VERSION
 * @doorbell: the doorbell word as the tenant left it
 * @regs: the register file
 *
 * The PASID is not in it: each ADI keeps its own.
 */
struct cpf_state {
	__le32 magic;
	__le32 version;
	__le32 doorbell;
	__le32 regs[7];
};

/**
 * struct cpf_adi - the PF's side of one ADI
 * @node: entry in &cpf_pf.adis
 * @tenant: the tenant, referenced while the ADI exists
 * @pasid: the PASID the VDCM allocated for the ADI
 * @doorbell: the page behind BAR2
 * @buf: where a doorbell's buffer is copied to be checksummed
 * @lock: protects @regs, the counters and @buf; held while a doorbell is
 *        served, so a reset waits for one in flight
 * @regs: the register file
 * @quiesced: stopped for a migration: the doorbell is not served
 * @checksums: counter "checksums": doorbells that produced a RESULT
 * @bytes: counter "bytes": bytes checksummed
 * @faults: counter "faults": doorbells whose buffer could not be read
 * @mailbox_writes: counter "mailbox_writes": writes to MAILBOX
 */
struct cpf_adi {
	struct list_head node;
	struct vdcm_tenant *tenant;
	u32 pasid;
	struct page *doorbell;
	u8 *buf;
	struct mutex lock; /* registers, counters, buf; held while serving */
	struct cpf_regs regs;
	bool quiesced;
	u64 checksums;
	u64 bytes;
	u64 faults;
	u64 mailbox_writes;
};

/**
 * struct cpf_pf - the PF
 * @pf: what is registered with the VDCM
 * @dev: the PF's device, the mdev parent of its ADIs
 * @pool: the one resource the ADI type is made of
 * @config: the PF's PCI configuration space, as config_read returns it
 * @lock: protects @adis
 * @adis: the ADIs, each a &struct cpf_adi
 * @poll: the doorbell poller; queued while @adis is not empty
 */
struct cpf_pf {
	struct vdcm_pf pf;
	struct device *dev;
	struct vdcm_pool pool;
	u8 config[PCI_CFG_SPACE_EXP_SIZE];
	struct mutex lock; /* the list of ADIs; taken before an ADI's lock */
	struct list_head adis;
	struct delayed_work poll;
};

/* The one PF of the module, for cpf_exit(). */
static struct cpf_pf *cpf_pf0;

static const struct class cpf_class = {
	.name = CPF_NAME,
};

static struct cpf_pf *to_cpf(struct vdcm_pf *pf)
{
	return container_of(pf, struct cpf_pf, pf);
}

/*
 * The personality. BAR0 is trapped as a whole: the VDCM answers the MSI-X
 * table and PBA itself and passes every other access to trap_read and
 * trap_write. BAR2 is one page, mapped into the tenant from direct_page.
 */
static const struct vdcm_bar_range cpf_bar0_ranges[] = {
	{ .kind = VDCM_RANGE_TRAP, .offset = 0, .size = CPF_BAR_SIZE },
};

static const struct vdcm_bar_range cpf_bar2_ranges[] = {
	{ .kind = VDCM_RANGE_DIRECT, .offset = 0, .size = CPF_BAR_SIZE },
};

static const struct vdcm_adi_type cpf_types[] = {
	{
		.name = "mbox",
		.description = "VDCM C sample: trapped mailbox + direct doorbell",
		.vendor = 0xfffe,
		.device = 0x51c0,
		.subsystem_vendor = 0xfffe,
		.subsystem = 0x51c0,
		.revision = 1,
		.class = 0xff0000,
		.bars = {
			[0] = {
				.size = CPF_BAR_SIZE,
				.flags = 0,
				.nr_ranges = ARRAY_SIZE(cpf_bar0_ranges),
				.ranges = cpf_bar0_ranges,
			},
			/* A 64-bit BAR takes slots 2 and 3. */
			[2] = {
				.size = CPF_BAR_SIZE,
				.flags = VDCM_BAR_64BIT,
				.nr_ranges = ARRAY_SIZE(cpf_bar2_ranges),
				.ranges = cpf_bar2_ranges,
			},
		},
		.msix = {
			.vectors = 1,
			.bar = 0,
			.table_offset = CPF_MSIX_TABLE,
			.pba_offset = CPF_MSIX_PBA,
		},
		.pool = 0,
		.units = 1,
		.nr_pins = 0,
		.state_size = sizeof(struct cpf_state),
	},
};

/* Listed in each ADI's stats/ directory, in the order counters fills. */
static const char *const cpf_counter_names[] = {
	"checksums", "bytes", "faults", "mailbox_writes",
};

/**
 * cpf_build_config() - lay out the PF's configuration space
 * @config: PCI_CFG_SPACE_EXP_SIZE bytes, zeroed
 *
 * A PCI Express endpoint with the vendor and device IDs of the sample and,
 * if siov_cap is set, the SIOV DVSEC (vendor 0x8086, ID 5) as its only
 * extended capability. The VDCM looks for that DVSEC to tell a SIOV PF. A
 * PF on the PCI bus needs no such table: its config_read reads the
 * device's own config space.
 */
static void cpf_build_config(u8 *config)
{
	put_unaligned_le16(CPF_PF_VENDOR, config + PCI_VENDOR_ID);
	put_unaligned_le16(CPF_PF_DEVICE, config + PCI_DEVICE_ID);
	put_unaligned_le16(PCI_STATUS_CAP_LIST, config + PCI_STATUS);
	config[PCI_REVISION_ID] = 1;
	config[PCI_CLASS_PROG] = 0x00;
	put_unaligned_le16(0xff00, config + PCI_CLASS_DEVICE);
	config[PCI_CAPABILITY_LIST] = CPF_PCIE_CAP;

	/* PCI Express capability, version 2, endpoint: extended space exists. */
	config[CPF_PCIE_CAP + PCI_CAP_LIST_ID] = PCI_CAP_ID_EXP;
	config[CPF_PCIE_CAP + PCI_CAP_LIST_NEXT] = 0;
	put_unaligned_le16(FIELD_PREP(PCI_EXP_FLAGS_VERS, 2) |
			   FIELD_PREP(PCI_EXP_FLAGS_TYPE, PCI_EXP_TYPE_ENDPOINT),
			   config + CPF_PCIE_CAP + PCI_EXP_FLAGS);

	if (!siov_cap)
		return;

	/* Extended capability header: DVSEC, version 1, last in the list. */
	put_unaligned_le32(PCI_EXT_CAP_ID_DVSEC | 1 << 16,
			   config + CPF_SIOV_DVSEC);
	/* DVSEC header 1: vendor, revision 0, length of the whole DVSEC. */
	put_unaligned_le32(PCI_VENDOR_ID_INTEL | CPF_SIOV_DVSEC_LEN << 20,
			   config + CPF_SIOV_DVSEC + PCI_DVSEC_HEADER1);
	/* DVSEC header 2: the DVSEC ID of Scalable IOV. */
	put_unaligned_le16(CPF_SIOV_DVSEC_ID,
			   config + CPF_SIOV_DVSEC + PCI_DVSEC_HEADER2);
	/* Supported page sizes and system page size: 4 KiB. */
	put_unaligned_le32(1, config + CPF_SIOV_DVSEC + 0x0c);
	put_unaligned_le32(1, config + CPF_SIOV_DVSEC + 0x10);
}

/**
 * cpf_config_read() - &vdcm_pf_ops.config_read: read the PF's config space
 * @pf: the PF
 * @offset: byte offset
 * @len: 1, 2 or 4
 * @value: where the value goes
 *
 * Called at registration, while the VDCM checks for the SIOV DVSEC. A PCI
 * PF returns pci_read_config_*() here.
 *
 * Return: 0, or -EINVAL for an access outside the space or not naturally
 * aligned.
 */
static int cpf_config_read(struct vdcm_pf *pf, u32 offset, u32 len, u32 *value)
{
	const u8 *config = to_cpf(pf)->config;

	if ((len != 1 && len != 2 && len != 4) || offset % len ||
	    offset > PCI_CFG_SPACE_EXP_SIZE - len)
		return -EINVAL;

	switch (len) {
	case 1:
		*value = config[offset];
		break;
	case 2:
		*value = get_unaligned_le16(config + offset);
		break;
	default:
		*value = get_unaligned_le32(config + offset);
		break;
	}
	return 0;
}

/**
 * cpf_adi_create() - &vdcm_pf_ops.adi_create: build the PF's side of an ADI
 * @pf: the PF
 * @type: index in cpf_types (always 0 here)
 * @pasid: the PASID the ADI's DMA is tagged with
 * @tenant: the ADI's tenant; a reference is taken for as long as it is kept
 * @adi: where the per-ADI pointer goes; the VDCM passes it to every other op
 *
 * The VDCM has already reserved the ADI's unit of the pool, so this fails
 * only for want of memory. The new ADI is as after a reset: registers and
 * doorbell page zero.
 *
 * Return: 0 or -ENOMEM.
 */
static int cpf_adi_create(struct vdcm_pf *pf, u32 type, u32 pasid,
			  struct vdcm_tenant *tenant, void **adi)
{
	struct cpf_pf *cpf = to_cpf(pf);
	struct cpf_adi *a;

	a = kzalloc_obj(*a, GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	a->doorbell = alloc_page(GFP_KERNEL | __GFP_ZERO);
	a->buf = kmalloc(CPF_BUF_MAX, GFP_KERNEL);
	if (!a->doorbell || !a->buf) {
		if (a->doorbell)
			__free_page(a->doorbell);
		kfree(a->buf);
		kfree(a);
		return -ENOMEM;
	}
	mutex_init(&a->lock);

	/*
	 * A hardware PF writes the PASID into the PASID field of the queue it
	 * gives this ADI, so that the queue's DMA is translated through the
	 * tenant's I/O page table. This PF copies through tenant->ops->dma_rw
	 * instead, which translates in software; it keeps the PASID only to
	 * show where it would go.
	 */
	a->pasid = pasid;
	tenant->ops->get(tenant);
	a->tenant = tenant;

	mutex_lock(&cpf->lock);
	list_add_tail(&a->node, &cpf->adis);
	mutex_unlock(&cpf->lock);
	/* Start the poller if this is the first ADI; a no-op if it runs. */
	queue_delayed_work(system_dfl_wq, &cpf->poll, 1);

	*adi = a;
	return 0;
}

/**
 * cpf_adi_destroy() - &vdcm_pf_ops.adi_destroy: undo cpf_adi_create()
 * @pf: the PF
 * @adi: the ADI
 *
 * The VDCM calls this last for the ADI, after the tenant's mappings of the
 * doorbell page are gone. Once the ADI is off the list the poller, which
 * walks the list under the same lock, cannot reach it.
 */
static void cpf_adi_destroy(struct vdcm_pf *pf, void *adi)
{
	struct cpf_pf *cpf = to_cpf(pf);
	struct cpf_adi *a = adi;

	mutex_lock(&cpf->lock);
	list_del(&a->node);
	mutex_unlock(&cpf->lock);

	a->tenant->ops->put(a->tenant);
	__free_page(a->doorbell);
	kfree(a->buf);
	mutex_destroy(&a->lock);
	kfree(a);
}

/* A register access the device accepts: 32 bits, naturally aligned. */
static bool cpf_access_ok(u32 bar, u64 offset, u32 size)
{
	return bar == 0 && size == 4 && !(offset % 4);
}

/**
 * cpf_trap_read() - &vdcm_pf_ops.trap_read: a tenant reads a BAR0 register
 * @pf: the PF
 * @adi: the ADI
 * @bar: the BAR; only BAR0 has trapped ranges
 * @offset: byte offset in the BAR, outside the MSI-X table and PBA
 * @size: bytes
 * @value: where the register's value goes
 *
 * The VDCM has already checked that the access lies in a trapped range and
 * that memory space is enabled; it counts the access in stats/traps_bar0.
 * Offsets past COUNT read as zero.
 *
 * Return: 0, or -EINVAL for an access that is not 32 bits and aligned.
 */
static int cpf_trap_read(struct vdcm_pf *pf, void *adi, u32 bar, u64 offset,
			 u32 size, u64 *value)
{
	struct cpf_adi *a = adi;
	u32 v;

	if (!cpf_access_ok(bar, offset, size))
		return -EINVAL;

	mutex_lock(&a->lock);
	switch (offset) {
	case CPF_REG_ID:
		v = CPF_ID_VALUE;
		break;
	case CPF_REG_MAILBOX:
		v = a->regs.mailbox;
		break;
	case CPF_REG_BUF_LO:
		v = a->regs.buf_lo;
		break;
	case CPF_REG_BUF_HI:
		v = a->regs.buf_hi;
		break;
	case CPF_REG_BUF_LEN:
		v = a->regs.buf_len;
		break;
	case CPF_REG_RESULT:
		v = a->regs.result;
		break;
	case CPF_REG_STATUS:
		v = a->regs.status;
		break;
	case CPF_REG_COUNT:
		v = a->regs.count;
		break;
	default:
		v = 0;
		break;
	}
	mutex_unlock(&a->lock);

	*value = v;
	return 0;
}

/**
 * cpf_trap_write() - &vdcm_pf_ops.trap_write: a tenant writes a BAR0 register
 * @pf: the PF
 * @adi: the ADI
 * @bar: the BAR; only BAR0 has trapped ranges
 * @offset: byte offset in the BAR, outside the MSI-X table and PBA
 * @size: bytes
 * @value: the value written, in the low @size bytes
 *
 * Writes to read-only registers, and past COUNT, are ignored.
 *
 * Return: 0, or -EINVAL for an access that is not 32 bits and aligned.
 */
static int cpf_trap_write(struct vdcm_pf *pf, void *adi, u32 bar, u64 offset,
			  u32 size, u64 value)
{
	struct cpf_adi *a = adi;
	u32 v = value;

	if (!cpf_access_ok(bar, offset, size))
		return -EINVAL;

	mutex_lock(&a->lock);
	switch (offset) {
	case CPF_REG_MAILBOX:
		a->regs.mailbox = v;
		a->mailbox_writes++;
		break;
	case CPF_REG_BUF_LO:
		a->regs.buf_lo = v;
		break;
	case CPF_REG_BUF_HI:
		a->regs.buf_hi = v;
		break;
	case CPF_REG_BUF_LEN:
		a->regs.buf_len = v;
		break;
	default:
		break;
	}
	mutex_unlock(&a->lock);
	return 0;
}

/**
 * cpf_direct_page() - &vdcm_pf_ops.direct_page: the page behind BAR2
 * @pf: the PF
 * @adi: the ADI
 * @bar: the BAR
 * @offset: page-aligned offset inside a direct range
 *
 * Called when the tenant's mapping of the doorbell faults the page in. The
 * page stays allocated until cpf_adi_destroy().
 *
 * Return: the ADI's doorbell page, or NULL (the mapping is refused) for
 * any other place.
 */
static struct page *cpf_direct_page(struct vdcm_pf *pf, void *adi, u32 bar,
				    u64 offset)
{
	struct cpf_adi *a = adi;

	if (bar != 2 || offset != 0)
		return NULL;
	return a->doorbell;
}

/**
 * cpf_reset() - &vdcm_pf_ops.reset: the PF's part of a function reset
 * @pf: the PF
 * @adi: the ADI
 *
 * Called for an FLR, VFIO_DEVICE_RESET, the tenant closing the device and
 * revocation. Taking the ADI's lock waits for a doorbell being served;
 * then every register and the doorbell page return to zero, so the next
 * tenant sees nothing of this one. The VDCM resets config space and MSI-X.
 */
static void cpf_reset(struct vdcm_pf *pf, void *adi)
{
	struct cpf_adi *a = adi;

	mutex_lock(&a->lock);
	memset(&a->regs, 0, sizeof(a->regs));
	memset(a->buf, 0, CPF_BUF_MAX);
	clear_page(page_address(a->doorbell));
	a->quiesced = false;
	mutex_unlock(&a->lock);
}

/**
 * cpf_quiesce() - &vdcm_pf_ops.quiesce: stop serving the doorbell
 * @pf: the PF
 * @adi: the ADI
 *
 * Taking the ADI's lock waits for a doorbell being served, with its
 * interrupt; after that the poller leaves the doorbell alone.
 *
 * Return: 0.
 */
static int cpf_quiesce(struct vdcm_pf *pf, void *adi)
{
	struct cpf_adi *a = adi;

	mutex_lock(&a->lock);
	a->quiesced = true;
	mutex_unlock(&a->lock);
	return 0;
}

/**
 * cpf_unquiesce() - &vdcm_pf_ops.unquiesce: serve the doorbell again
 * @pf: the PF
 * @adi: the ADI
 *
 * A doorbell rung while quiesced (or restored rung) is served at the next
 * poll.
 */
static void cpf_unquiesce(struct vdcm_pf *pf, void *adi)
{
	struct cpf_adi *a = adi;

	mutex_lock(&a->lock);
	a->quiesced = false;
	mutex_unlock(&a->lock);
}

/**
 * cpf_save() - &vdcm_pf_ops.save: the ADI's state, for a migration
 * @pf: the PF
 * @adi: the ADI, quiesced
 * @buf: where struct cpf_state goes
 * @len: room in @buf
 *
 * Return: the bytes written, or -ENOSPC if @buf is too small.
 */
static int cpf_save(struct vdcm_pf *pf, void *adi, void *buf, u32 len)
{
	struct cpf_adi *a = adi;
	struct cpf_state *s = buf;
	const u32 *regs = (const u32 *)&a->regs;
	int i;

	BUILD_BUG_ON(sizeof(a->regs) != sizeof(s->regs));
	if (len < sizeof(*s))
		return -ENOSPC;
	mutex_lock(&a->lock);
	s->magic = cpu_to_le32(CPF_STATE_MAGIC);
	s->version = cpu_to_le32(CPF_STATE_VERSION);
	s->doorbell = cpu_to_le32(READ_ONCE(*(u32 *)page_address(a->doorbell)));
	for (i = 0; i < ARRAY_SIZE(s->regs); i++)
		s->regs[i] = cpu_to_le32(regs[i]);
	mutex_unlock(&a->lock);
	return sizeof(*s);
}

/**
 * cpf_restore() - &vdcm_pf_ops.restore: take over a migrated ADI's state
 * @pf: the PF
 * @adi: the ADI, quiesced and freshly reset
 * @buf: struct cpf_state, as cpf_save() wrote it
 * @len: its bytes
 *
 * Checks the whole state before it changes anything: a wrong size, magic
 * or version, a STATUS bit the device never sets or a BUF_LEN it would
 * refuse is -EINVAL, and the ADI is left as it was.
 *
 * Return: 0 or -EINVAL.
 */
static int cpf_restore(struct vdcm_pf *pf, void *adi, const void *buf, u32 len)
{
	struct cpf_adi *a = adi;
	const struct cpf_state *s = buf;
	struct cpf_regs r;
	u32 *regs = (u32 *)&r;
	int i;

	if (len != sizeof(*s) || le32_to_cpu(s->magic) != CPF_STATE_MAGIC ||
	    le32_to_cpu(s->version) != CPF_STATE_VERSION)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(s->regs); i++)
		regs[i] = le32_to_cpu(s->regs[i]);
	if (r.status & ~(CPF_STATUS_DONE | CPF_STATUS_ERROR) ||
	    r.buf_len > CPF_BUF_MAX)
		return -EINVAL;

	mutex_lock(&a->lock);
	a->regs = r;
	WRITE_ONCE(*(u32 *)page_address(a->doorbell), le32_to_cpu(s->doorbell));
	mutex_unlock(&a->lock);
	return 0;
}

/**
 * cpf_unpinned() - &vdcm_pf_ops.unpinned: a pinned range is being unmapped
 * @pf: the PF
 * @adi: the ADI
 * @slot: the pin slot
 *
 * The "mbox" type has no pin slots (nr_pins 0) and never calls
 * tenant->ops->pin, so the VDCM never calls this. A PF that pins, e.g. a
 * descriptor ring while its queue runs, stops the queue here.
 */
static void cpf_unpinned(struct vdcm_pf *pf, void *adi, u32 slot)
{
}

/**
 * cpf_counters() - &vdcm_pf_ops.counters: the ADI's counters
 * @pf: the PF
 * @adi: the ADI
 * @values: ARRAY_SIZE(cpf_counter_names) values, in that order
 *
 * Read when user space reads one of the ADI's stats/ files.
 */
static void cpf_counters(struct vdcm_pf *pf, void *adi, u64 *values)
{
	struct cpf_adi *a = adi;

	mutex_lock(&a->lock);
	values[0] = a->checksums;
	values[1] = a->bytes;
	values[2] = a->faults;
	values[3] = a->mailbox_writes;
	mutex_unlock(&a->lock);
}

static const struct vdcm_pf_ops cpf_ops = {
	.config_read = cpf_config_read,
	.adi_create = cpf_adi_create,
	.adi_destroy = cpf_adi_destroy,
	.trap_read = cpf_trap_read,
	.trap_write = cpf_trap_write,
	.direct_page = cpf_direct_page,
	.reset = cpf_reset,
	.unpinned = cpf_unpinned,
	.counters = cpf_counters,
	.quiesce = cpf_quiesce,
	.unquiesce = cpf_unquiesce,
	.save = cpf_save,
	.restore = cpf_restore,
};

/**
 * cpf_serve_doorbell() - checksum the ADI's buffer, as the device would
 * @a: the ADI, its lock held
 *
 * Reads BUF_LEN bytes at the tenant IOVA in BUF_HI:BUF_LO through the
 * tenant's DMA service, which fails while the ADI's bus mastering is
 * disabled (-EPERM) or for an IOVA the tenant has not mapped (-EFAULT).
 * Either way the doorbell completes: STATUS says how, COUNT advances and
 * MSI-X vector 0 is raised.
 */
static void cpf_serve_doorbell(struct cpf_adi *a)
{
	struct vdcm_tenant *t = a->tenant;
	u64 iova = (u64)a->regs.buf_hi << 32 | a->regs.buf_lo;
	u32 len = a->regs.buf_len;

	a->regs.result = 0;
	if (!len || len > CPF_BUF_MAX) {
		a->regs.status = CPF_STATUS_ERROR;
	} else if (t->ops->dma_rw(t, iova, a->buf, len, false)) {
		a->regs.status = CPF_STATUS_ERROR;
		a->faults++;
	} else {
		/* Standard CRC-32C: seed and final value inverted. */
		a->regs.result = ~crc32c(~0U, a->buf, len);
		a->regs.status = CPF_STATUS_DONE;
		a->checksums++;
		a->bytes += len;
	}
	a->regs.count++;
	t->ops->raise_irq(t, 0);
}

/**
 * cpf_poll() - the doorbell poller
 * @work: &cpf_pf.poll
 *
 * A doorbell store reaches the page without trapping, so the PF looks at
 * every ADI's doorbell word once a jiffy and serves those that are set,
 * clearing them first. It runs for as long as any ADI exists; the first
 * cpf_adi_create() starts it again.
 */
static void cpf_poll(struct work_struct *work)
{
	struct cpf_pf *cpf = container_of(to_delayed_work(work), struct cpf_pf,
					  poll);
	struct cpf_adi *a;

	mutex_lock(&cpf->lock);
	list_for_each_entry(a, &cpf->adis, node) {
		u32 *bell = page_address(a->doorbell);

		mutex_lock(&a->lock);
		if (!a->quiesced && READ_ONCE(*bell) && xchg(bell, 0))
			cpf_serve_doorbell(a);
		mutex_unlock(&a->lock);
	}
	if (!list_empty(&cpf->adis))
		queue_delayed_work(system_dfl_wq, &cpf->poll, 1);
	mutex_unlock(&cpf->lock);
}

static int __init cpf_init(void)
{
	struct cpf_pf *cpf;
	int ret;

	if (num_adis < 1 || num_adis > CPF_MAX_ADIS) {
		pr_err("num_adis=%u: must be 1..%d\n", num_adis, CPF_MAX_ADIS);
		return -EINVAL;
	}

	cpf = kzalloc_obj(*cpf, GFP_KERNEL);
	if (!cpf)
		return -ENOMEM;
	mutex_init(&cpf->lock);
	INIT_LIST_HEAD(&cpf->adis);
	INIT_DELAYED_WORK(&cpf->poll, cpf_poll);
	cpf_build_config(cpf->config);

	ret = class_register(&cpf_class);
	if (ret)
		goto err_free;

	/* The mdev core names the types "<class name>-<type name>": vdcm_cpf-mbox. */
	cpf->dev = device_create(&cpf_class, NULL, 0, NULL, CPF_NAME "0");
	if (IS_ERR(cpf->dev)) {
		ret = PTR_ERR(cpf->dev);
		goto err_class;
	}

	cpf->pool.name = "checksum slots";
	cpf->pool.size = num_adis;
	cpf->pf = (struct vdcm_pf) {
		.version = VDCM_PF_CONTRACT_VERSION,
		.dev = cpf->dev,
		.pasid_bits = 20,
		.nr_pools = 1,
		.pools = &cpf->pool,
		.nr_types = ARRAY_SIZE(cpf_types),
		.types = cpf_types,
		.nr_counters = ARRAY_SIZE(cpf_counter_names),
		.counter_names = cpf_counter_names,
		.ops = &cpf_ops,
	};

	/*
	 * The VDCM checks the description, reads the config space for the
	 * SIOV DVSEC and creates the mdev types; it logs what it refuses.
	 */
	ret = vdcm_register_pf(&cpf->pf);
	if (ret) {
		dev_err(cpf->dev, "the VDCM refused the PF: %d\n", ret);
		goto err_device;
	}
	dev_info(cpf->dev, "PF registered: %u ADIs of type mbox\n", num_adis);
	cpf_pf0 = cpf;
	return 0;

err_device:
	device_unregister(cpf->dev);
err_class:
	class_unregister(&cpf_class);
err_free:
	mutex_destroy(&cpf->lock);
	kfree(cpf);
	return ret;
}

static void __exit cpf_exit(void)
{
	struct cpf_pf *cpf = cpf_pf0;

	/* Removes every ADI first, waiting for their users to release them. */
	vdcm_unregister_pf(&cpf->pf);
	/* No ADI is left, so the poller does not queue itself again. */
	cancel_delayed_work_sync(&cpf->poll);
	device_unregister(cpf->dev);
	class_unregister(&cpf_class);
	mutex_destroy(&cpf->lock);
	kfree(cpf);
}

module_init(cpf_init);
module_exit(cpf_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("VDCM sample PF in C: a trapped mailbox and a mapped doorbell");

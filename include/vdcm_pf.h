/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The PF contract: how a SIOV-capable PF driver plugs into the Virtual
 * Device Composition Module (VDCM).
 *
 * The VDCM core owns the mechanisms every Assignable Device Interface (ADI)
 * needs: mdev types and their accounting, the VFIO / iommufd / legacy-group
 * lifecycle, the emulated PCI config space (header, command gating, PM,
 * PCIe with FLR, MSI-X capability, SIOV DVSEC), the MSI-X table and PBA,
 * eventfds, PASID allocation, the tenant's DMA, trap counting, reset
 * orchestration, removal and revocation.
 *
 * The PF driver supplies the device personality, per ADI type: its PCI
 * identity, the layout of its BARs (which ranges are trapped and which are
 * pages mapped straight into the tenant), what a trapped access means,
 * which page backs each directly mapped range, its part of a reset, and its
 * own counters. A register name, a ring format or a device ID of a PF never
 * appears in the core.
 *
 * Any PF driver module, in C or in Rust, includes this header; Rust modules
 * bindgen it and never share Rust types across modules. The contract is
 * versioned: a PF built against another version is refused (-EPROTO).
 *
 * What a hardware PF programs: the PASID passed to @adi_create is the one
 * the ADI's queues must tag their DMA with, and addresses the tenant writes
 * into the ADI's registers are tenant IOVAs, used unchanged as device
 * addresses (the IOMMU translates (RID, PASID, IOVA) through the tenant's
 * I/O page table). A PF without such an IOMMU path (a simulated one, or a
 * device reached through the core's DMA service) copies through
 * vdcm_tenant_ops.dma_rw instead, which translates in software.
 */
#ifndef _VDCM_PF_H
#define _VDCM_PF_H

#include <linux/types.h>

struct device;
struct page;
struct vdcm_pf;
struct vdcm_tenant;

/* Bumped on every incompatible change of this header. */
#define VDCM_PF_CONTRACT_VERSION 8

/* Limits the core enforces at registration. */
#define VDCM_PF_MAX_TYPES	8	/* ADI types per PF */
#define VDCM_PF_MAX_POOLS	4	/* resource pools per PF */
#define VDCM_PF_MAX_RANGES	8	/* ranges per BAR */
#define VDCM_PF_MAX_COUNTERS	16	/* named counters per PF */
#define VDCM_PF_MAX_DVSECS	2	/* extra DVSECs per ADI type */
#define VDCM_PF_MAX_DVSEC_BODY	64	/* bytes of one DVSEC body */
#define VDCM_PF_MAX_PINS	64	/* pin slots per ADI */
#define VDCM_PF_NUM_BARS	6
#define VDCM_PF_MAX_STATE	65536	/* bytes of a PF's per-ADI saved state */

/**
 * struct vdcm_pool - a resource the PF's ADI types are made of
 * @name: what one unit is (e.g. "queue pairs"), shown in the mdev type's
 *        description
 * @size: units the PF offers
 *
 * The core reserves an ADI's units before it calls &vdcm_pf_ops.adi_create
 * and gives them back after &vdcm_pf_ops.adi_destroy, so a type's
 * available_instances is exact at every moment. @adi_create must not fail
 * for want of units the core reserved.
 */
struct vdcm_pool {
	const char *name;
	u32 size;
};

/* Kinds of range in a BAR (&struct vdcm_bar_range.kind). */
#define VDCM_RANGE_TRAP		0 /* accesses reach trap_read / trap_write */
#define VDCM_RANGE_DIRECT	1 /* pages mapped straight into the tenant */

/**
 * struct vdcm_bar_range - one range of a BAR
 * @kind: VDCM_RANGE_TRAP or VDCM_RANGE_DIRECT
 * @offset: start in the BAR; page aligned for a direct range
 * @size: bytes; a whole number of pages for a direct range
 *
 * A direct range is offered to the VMM as a sparse-mmap area: its pages
 * come from &vdcm_pf_ops.direct_page and no access to them traps. Reads
 * and writes of a direct range through the device file are refused
 * (-EINVAL) and counted. Offsets of a BAR in no range read as zero and
 * ignore writes.
 */
struct vdcm_bar_range {
	u32 kind;
	u32 offset;
	u32 size;
};

/* BAR flags (&struct vdcm_bar.flags). */
#define VDCM_BAR_64BIT		(1U << 0) /* 64-bit memory BAR (two slots) */
#define VDCM_BAR_PREFETCH	(1U << 1) /* prefetchable */

/**
 * struct vdcm_bar - one memory BAR of an ADI type
 * @size: bytes, a power of two of at least 4096; 0: no BAR here
 * @flags: VDCM_BAR_*
 * @nr_ranges: entries of @ranges (at most VDCM_PF_MAX_RANGES)
 * @ranges: the BAR's ranges, in ascending, non-overlapping order
 */
struct vdcm_bar {
	u64 size;
	u32 flags;
	u32 nr_ranges;
	const struct vdcm_bar_range *ranges;
};

/**
 * struct vdcm_msix - where the core emulates an ADI's MSI-X table and PBA
 * @vectors: MSI-X vectors of the ADI (1..2048)
 * @bar: the BAR that holds both
 * @table_offset: offset of the table (16 bytes per vector), 8-byte aligned
 * @pba_offset: offset of the pending bit array, 8-byte aligned
 *
 * Both lie inside trapped ranges of @bar. The core answers accesses there
 * itself; the PF never sees them.
 */
struct vdcm_msix {
	u16 vectors;
	u8 bar;
	u32 table_offset;
	u32 pba_offset;
};

/**
 * struct vdcm_dvsec - a read-only Designated Vendor-Specific Extended
 *                     Capability the PF adds to its ADIs' config space
 * @vendor: DVSEC vendor ID
 * @id: DVSEC ID
 * @revision: DVSEC revision (4 bits)
 * @len: bytes of @body (at most VDCM_PF_MAX_DVSEC_BODY)
 * @body: the capability's contents after its two headers
 */
struct vdcm_dvsec {
	u16 vendor;
	u16 id;
	u8 revision;
	u32 len;
	const u8 *body;
};

/**
 * struct vdcm_adi_type - one kind of ADI a PF offers (one mdev type)
 * @name: the mdev type's sysfs name, e.g. "1q" ([a-z0-9_-], at most 16)
 * @description: the mdev type's pretty name
 * @vendor: PCI vendor ID of the virtual function
 * @device: PCI device ID
 * @subsystem_vendor: PCI subsystem vendor ID
 * @subsystem: PCI subsystem ID
 * @revision: PCI revision ID
 * @class: PCI class code, 24 bits (base class in the top byte)
 * @bars: the memory BARs; a 64-bit BAR takes two slots (the next is 0)
 * @msix: the MSI-X table and PBA
 * @nr_dvsecs: entries of @dvsecs (at most VDCM_PF_MAX_DVSECS)
 * @dvsecs: extra read-only capabilities, after the core's SIOV DVSEC
 * @pool: the &vdcm_pf.pools entry an ADI of this type draws from
 * @units: units of @pool one ADI takes (at least 1)
 * @nr_pins: pin slots (&vdcm_tenant_ops.pin) one ADI may use
 * @state_size: bytes &vdcm_pf_ops.save writes at most for one ADI of this
 *              type (at most VDCM_PF_MAX_STATE); 0: ADIs of this type
 *              cannot be migrated, and the core offers no migration for
 *              them
 * @max_threshold: the largest &vdcm_qos.threshold an ADI of this type
 *                 takes (a shared type: the depth of its portal); 0: the
 *                 type has no threshold (a dedicated queue)
 *
 * The core builds the config space of a PCI Express endpoint from this:
 * the IDs, the BARs (sizing included), Power Management, PCI Express with
 * Function Level Reset, MSI-X, the SIOV DVSEC and @dvsecs.
 */
struct vdcm_adi_type {
	const char *name;
	const char *description;
	u16 vendor;
	u16 device;
	u16 subsystem_vendor;
	u16 subsystem;
	u8 revision;
	u32 class;
	struct vdcm_bar bars[VDCM_PF_NUM_BARS];
	struct vdcm_msix msix;
	u32 nr_dvsecs;
	const struct vdcm_dvsec *dvsecs;
	u32 pool;
	u32 units;
	u32 nr_pins;
	u32 state_size;
	u32 max_threshold;
};

/* Limits and defaults of struct vdcm_qos, which the core enforces. */
#define VDCM_QOS_WEIGHT_MIN	1
#define VDCM_QOS_WEIGHT_MAX	200
#define VDCM_QOS_WEIGHT_DEFAULT	100
#define VDCM_QOS_PRIORITY_MAX	15
#define VDCM_QOS_RATE_MAX	10000000	/* descriptors per second */

/**
 * struct vdcm_qos - how a PF shares itself with one ADI
 * @weight: share among the ADIs of equal @priority, 1..200 (default 100):
 *          under contention each gets work in proportion to its weight
 * @priority: 0..15 (default 0): a higher level is served first; a lower
 *            level only gets what the higher ones leave
 * @max_rate: most descriptors per second the ADI runs; 0: unlimited
 * @guaranteed_rate: descriptors per second the ADI is served at whatever
 *                   the others do, if it submits that many; 0: none. The
 *                   core admits it against &vdcm_pf.qos_capacity and
 *                   keeps it at most @max_rate when that is set
 * @threshold: most descriptors a shared ADI holds in flight in its portal
 *             (1..the type's max_threshold, default max_threshold); work
 *             beyond it is refused back to the tenant, not run; 0 for a
 *             type without a threshold
 *
 * Descriptors are counted as the PF counts them for the ADI (a batch is
 * one plus its members in the simulated PF).
 */
struct vdcm_qos {
	u32 weight;
	u32 priority;
	u64 max_rate;
	u64 guaranteed_rate;
	u32 threshold;
};

/**
 * struct vdcm_tenant_ops - what the core does for a PF on an ADI's behalf
 * @dma_rw: copy @len bytes between @buf and the tenant's @iova (@write: to
 *          the tenant), translated through the tenant's I/O address space.
 *          Returns 0; -EFAULT if any byte of the range is not mapped (or,
 *          for a write, mapped read-only): nothing was written; -EPERM
 *          while the ADI's bus mastering is disabled; -ENODEV while the
 *          tenant has the device closed, or once it is revoked. May sleep.
 * @raise_irq: signal MSI-X vector @vector of the ADI (delivered to its
 *             eventfd, or left pending while masked). Dropped while the
 *             tenant has the device closed, once it is revoked, and for a
 *             vector the ADI does not have. Process context; may sleep.
 * @pin: pin @len bytes of the tenant's memory at @iova (@write: the PF will
 *       write them) in pin slot @slot (below the type's @nr_pins), e.g. a
 *       descriptor ring while its queue runs. Returns 0, -EBUSY if @slot
 *       holds a pin, -EFAULT if the range is not mapped, -ENODEV as for
 *       @dma_rw. When the tenant unmaps any part of a pinned range the core
 *       calls &vdcm_pf_ops.unpinned first and then drops the pin. May sleep.
 * @unpin: drop the pin in @slot, if any. May sleep.
 * @get: take a reference on the tenant object.
 * @put: drop a reference; the last one frees it.
 *
 * A PF reaches the tenant only through this object. It is the software
 * stand-in for the IOMMU's PASID-table entry: a PF copying through @dma_rw
 * can never reach another tenant's memory or an IOVA the tenant has not
 * mapped.
 */
struct vdcm_tenant_ops {
	int (*dma_rw)(struct vdcm_tenant *t, u64 iova, void *buf, size_t len,
		      bool write);
	void (*raise_irq)(struct vdcm_tenant *t, u32 vector);
	int (*pin)(struct vdcm_tenant *t, u32 slot, u64 iova, u64 len,
		   bool write);
	void (*unpin)(struct vdcm_tenant *t, u32 slot);
	void (*get)(struct vdcm_tenant *t);
	void (*put)(struct vdcm_tenant *t);
};

/**
 * struct vdcm_tenant - the tenant of one ADI, as the core hands it to the PF
 * @ops: its operations, all present
 *
 * The PF holds a reference (&vdcm_tenant_ops.get) for as long as it keeps
 * the pointer.
 */
struct vdcm_tenant {
	const struct vdcm_tenant_ops *ops;
};

/**
 * struct vdcm_pf_ops - what the core asks of a PF
 * @config_read: read @len (1, 2 or 4) bytes at @offset of the PF's own PCI
 *               configuration space into @value (pci_read_config_*() for a
 *               PCI PF). The core registers a PF only if its extended
 *               capabilities include the SIOV DVSEC (vendor 0x8086, ID 5);
 *               it reads naturally aligned offsets below 4096, and takes an
 *               error as "no such capability".
 * @adi_create: build the PF's side of a new ADI of type @type: take the
 *              units the core reserved, program @pasid into them, keep
 *              @tenant (taking a reference) and store the PF's per-ADI
 *              pointer in @adi. The ADI starts as after a reset. Returns 0
 *              or a negative errno (the core logs it and fails creation).
 * @adi_destroy: undo @adi_create: stop, unprogram the PASID, give the
 *               units back, drop the tenant. The tenant's mappings of the
 *               direct pages are gone by then.
 * @trap_read: a tenant read of @size (1, 2, 4 or 8) bytes at @offset of
 *             BAR @bar, inside a trapped range and outside the MSI-X table
 *             and PBA. Stores the value (little endian, in the low bytes);
 *             returns 0, or -EINVAL for an access the device does not
 *             accept (width, alignment), which the tenant sees as the
 *             read's error.
 * @trap_write: the same for a write of @value.
 * @direct_page: the page backing offset @offset (page aligned, inside a
 *               direct range) of BAR @bar; it must stay allocated until
 *               @adi_destroy. NULL refuses the mapping. Called with the
 *               tenant's mmap lock held and not serialised with the other
 *               calls: it only looks the page up, and takes no lock the PF
 *               holds around tenant operations (which may fault memory in).
 * @reset: the PF's part of a function reset (FLR, VFIO_DEVICE_RESET, the
 *         tenant closing the device, revocation): stop every queue and
 *         wait until none of its work is in flight, return every register
 *         to its reset value and clear the direct pages, so the next
 *         tenant reads nothing of this one. The core drops every pin still
 *         held when this returns. Config space, MSI-X and interrupt state
 *         are the core's.
 * @unpinned: the tenant is unmapping part of the range pinned in @slot:
 *            stop using it (e.g. fail the queue whose ring it is). The
 *            core drops the pin when this returns and signals the ADI's
 *            error notifier. A PF that never pins leaves it empty.
 * @counters: fill &vdcm_pf.nr_counters values, in &vdcm_pf.counter_names
 *            order, for the ADI. Any context that may sleep.
 *
 * @quiesce: stop the ADI's work for a migration: fetch no new work (a
 *           doorbell or portal store made from now on stays where the
 *           tenant wrote it, unacted on), let work in flight finish and
 *           write its completions, raise no interrupt and issue no DMA
 *           once this returns. The registers keep answering trapped
 *           accesses. Called only on a running ADI. Returns 0 or a
 *           negative errno (the migration step fails with it).
 * @unquiesce: undo @quiesce: act on the registers and direct pages as
 *             they are now (after a @restore, as the source left them),
 *             including work submitted while quiesced.
 * @save: write the ADI's state (registers, queue positions, the contents
 *        of the direct pages that matter) into @buf, at most @len bytes
 *        (the type's state_size). Called quiesced. Returns the bytes
 *        written or a negative errno. The format is the PF's; it should
 *        carry its own version.
 * @restore: make the ADI's state the one in @buf (@len bytes, as @save of
 *           an ADI of the same type wrote it, maybe on another PF of the
 *           same driver). Check everything first: on error nothing has
 *           changed. Called quiesced, on a freshly reset ADI; its PASID
 *           and queues stay its own. Returns 0, -EINVAL for a state it
 *           does not accept, or another negative errno.
 *
 * @set_qos: schedule the ADI by @qos from now on (every field checked by
 *           the core against the limits above and the type). Called right
 *           after @adi_create with the defaults, on every change an
 *           operator makes (while the ADI runs or not), and on a
 *           migration's destination after @restore with the source's
 *           settings. @reset leaves the settings alone. Returns 0 or a
 *           negative errno (the change is then refused with it). Present
 *           if and only if &vdcm_pf.qos_capacity is not 0.
 *
 * Context: for one ADI, @adi_create comes first and @adi_destroy last,
 * with no other call in flight; the core calls @reset, @unpinned,
 * @quiesce, @unquiesce, @save, @restore and @set_qos one at a time. @reset also ends
 * a quiesce: the ADI is then as after @adi_create. @trap_read, @trap_write, @direct_page and @counters are not
 * serialised: they may run concurrently with each other and with @reset or
 * @unpinned (as accesses reach a hardware function's registers while it
 * resets), so a PF makes each of them atomic with its own lock where its
 * state needs it. Calls for different ADIs may run concurrently. While it calls the PF it holds no lock that a tenant
 * operation of any ADI takes, so a PF may hold its own locks around tenant
 * operations (its engine does) and wait for them in any op. All may sleep.
 *
 * Counting: every access to a BAR through the device file counts in the
 * ADI's stats/traps_barN, refused ones included; stores to direct pages
 * never reach the core and never count.
 */
struct vdcm_pf_ops {
	int (*config_read)(struct vdcm_pf *pf, u32 offset, u32 len, u32 *value);
	int (*adi_create)(struct vdcm_pf *pf, u32 type, u32 pasid,
			  struct vdcm_tenant *tenant, void **adi);
	void (*adi_destroy)(struct vdcm_pf *pf, void *adi);
	int (*trap_read)(struct vdcm_pf *pf, void *adi, u32 bar, u64 offset,
			 u32 size, u64 *value);
	int (*trap_write)(struct vdcm_pf *pf, void *adi, u32 bar, u64 offset,
			  u32 size, u64 value);
	struct page *(*direct_page)(struct vdcm_pf *pf, void *adi, u32 bar,
				    u64 offset);
	void (*reset)(struct vdcm_pf *pf, void *adi);
	void (*unpinned)(struct vdcm_pf *pf, void *adi, u32 slot);
	void (*counters)(struct vdcm_pf *pf, void *adi, u64 *values);
	int (*quiesce)(struct vdcm_pf *pf, void *adi);
	void (*unquiesce)(struct vdcm_pf *pf, void *adi);
	int (*save)(struct vdcm_pf *pf, void *adi, void *buf, u32 len);
	int (*restore)(struct vdcm_pf *pf, void *adi, const void *buf, u32 len);
	int (*set_qos)(struct vdcm_pf *pf, void *adi, const struct vdcm_qos *qos);
};

/**
 * struct vdcm_pf - a SIOV-capable PF, as registered with the VDCM
 * @version: VDCM_PF_CONTRACT_VERSION the PF driver was built with
 * @dev: the PF's device; ADIs are created under it (it is the mdev parent,
 *       and its types appear as "<dev_driver_string(dev)>-<type name>")
 * @pasid_bits: width of the PASIDs the PF's queues carry (1..20)
 * @nr_pools: entries of @pools (1..VDCM_PF_MAX_POOLS)
 * @pools: what the ADI types are made of
 * @nr_types: entries of @types (1..VDCM_PF_MAX_TYPES)
 * @types: the ADI types, one mdev type each
 * @nr_counters: entries of @counter_names (at most VDCM_PF_MAX_COUNTERS)
 * @counter_names: the PF's per-ADI counters, listed in each ADI's sysfs
 *                 stats/ directory beside the core's own; sysfs names, none
 *                 equal to a core counter's (interrupts, resets, pasid,
 *                 traps_config, traps_barN): such a PF is refused
 * @qos_capacity: descriptors per second the PF can guarantee in all, the
 *                bound of the sum of its ADIs' &vdcm_qos.guaranteed_rate;
 *                0: the PF does not schedule its ADIs (no @ops.set_qos),
 *                and the core refuses every QoS setting with -EOPNOTSUPP
 * @ops: the PF's operations, all present except as said of set_qos
 * @priv: the PF driver's own pointer, for its ops
 * @vdcm: the core's, while the PF is registered; the PF driver leaves it
 *        alone
 *
 * Everything reached from this structure must stay valid and unchanged
 * from vdcm_register_pf() until vdcm_unregister_pf() returns.
 */
struct vdcm_pf {
	u32 version;
	struct device *dev;
	u32 pasid_bits;
	u32 nr_pools;
	const struct vdcm_pool *pools;
	u32 nr_types;
	const struct vdcm_adi_type *types;
	u32 nr_counters;
	const char *const *counter_names;
	u64 qos_capacity;
	const struct vdcm_pf_ops *ops;
	void *priv;
	void *vdcm;
};

/**
 * vdcm_pf_contract_version() - the contract version of the loaded VDCM
 *
 * Return: VDCM_PF_CONTRACT_VERSION as the VDCM was built.
 */
u32 vdcm_pf_contract_version(void);

/**
 * vdcm_register_pf() - offer a PF's ADI types to the VDCM
 * @pf: the PF; see struct vdcm_pf for its lifetime rules
 *
 * Every field is checked here, once; the core logs what it refused.
 *
 * Return: 0; -EPROTO for a contract version mismatch; -EINVAL for a
 * description the core cannot use (a missing operation, a layout that
 * does not fit, a PF without the SIOV capability); -ENODEV if the VDCM is
 * not ready; another negative errno from creating the PF's mdev types.
 */
int vdcm_register_pf(struct vdcm_pf *pf);

/**
 * vdcm_unregister_pf() - withdraw a PF
 * @pf: a PF registered with vdcm_register_pf()
 *
 * Every ADI of the PF is removed first: its users are asked to release it
 * and the call waits until they have. May sleep.
 */
void vdcm_unregister_pf(struct vdcm_pf *pf);

#endif /* _VDCM_PF_H */

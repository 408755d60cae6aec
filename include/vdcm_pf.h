/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The PF backend contract: how a SIOV-capable PF driver registers with the
 * Virtual Device Composition Module (VDCM). Any PF driver module, in C or
 * in Rust, includes this header; Rust modules bindgen it and never share
 * Rust types across modules.
 *
 * The contract is versioned: a PF driver built against another version is
 * refused at registration (-EPROTO).
 */
#ifndef _VDCM_PF_H
#define _VDCM_PF_H

#include <linux/types.h>

struct device;
struct page;
struct vdcm_pf;

/* Bumped on every incompatible change of this header. */
#define VDCM_PF_CONTRACT_VERSION 5

/* How a PF can hand its queue pairs to ADIs. */
#define VDCM_PF_MODE_DEDICATED	(1U << 0) /* whole QPs per ADI */
#define VDCM_PF_MODE_SHARED	(1U << 1) /* portals on a shared QP */

/**
 * struct vdcm_pf_caps - what a PF offers to the VDCM
 * @num_qps: queue pairs the VDCM may compose ADIs from
 * @pasid_bits: width of the PASIDs the PF's queues carry (1..20)
 * @doorbell_size: bytes of one doorbell/portal page (PAGE_SIZE multiple)
 * @num_irqs: interrupt messages the PF can route to ADIs
 * @modes: VDCM_PF_MODE_* the PF supports
 * @num_portals: portals the PF offers on its shared queue pairs
 *               (VDCM_PF_MODE_SHARED; 0 otherwise)
 */
struct vdcm_pf_caps {
	u32 num_qps;
	u32 pasid_bits;
	u32 doorbell_size;
	u32 num_irqs;
	u32 modes;
	u32 num_portals;
};

/*
 * Completion interrupts of a portal are raised with this bit set in the
 * @qp argument of vdcm_tenant.raise_irq, the portal's number below it.
 */
#define VDCM_PF_PORTAL_IRQ	(1U << 31)

/**
 * struct vdcm_tenant - the tenant a queue pair works for, as the VDCM
 *                      gives it to the PF when it binds a PASID
 * @dma_rw: copy @len bytes between @buf and the tenant's @iova (@write: to
 *          the tenant). Returns 0; -EFAULT if any byte of the range is not
 *          mapped (or, for a write, mapped read-only): nothing was written;
 *          -EPERM while the tenant's device does not allow DMA (bus master
 *          disabled); -ENODEV once the binding is revoked. May sleep.
 * @raise_irq: signal the completion interrupt of queue pair @qp (one the
 *             tenant is bound to), or of portal N for @qp =
 *             VDCM_PF_PORTAL_IRQ | N. Process context (a work item or a
 *             threaded interrupt handler); may sleep.
 * @get: take a reference on the tenant object.
 * @put: drop a reference; the last one frees it.
 *
 * The tenant object is the software stand-in for the IOMMU's PASID-table
 * entry: the PF's engine reaches tenant memory only through @dma_rw, so it
 * can never reach another tenant's memory or an IOVA the tenant has not
 * mapped. The PF holds a reference for as long as it keeps the pointer;
 * after @qp_unbind (and when the tenant closes its device) the VDCM revokes
 * the binding, so late calls fail with -ENODEV instead of touching memory.
 */
struct vdcm_tenant {
	int (*dma_rw)(struct vdcm_tenant *t, u64 iova, void *buf, size_t len,
		      bool write);
	void (*raise_irq)(struct vdcm_tenant *t, u32 qp);
	void (*get)(struct vdcm_tenant *t);
	void (*put)(struct vdcm_tenant *t);
};

/**
 * struct vdcm_qp_stats - counters of one queue pair since it was allocated
 * @descriptors: descriptors completed (successfully or not)
 * @bytes: bytes processed
 * @faults: descriptors that faulted on an unmapped IOVA
 * @invalid: descriptors rejected as malformed
 * @interrupts: completion interrupts raised
 */
struct vdcm_qp_stats {
	u64 descriptors;
	u64 bytes;
	u64 faults;
	u64 invalid;
	u64 interrupts;
};

/**
 * struct vdcm_pf_ops - what the VDCM asks of a PF
 * @qp_alloc: take one free queue pair for a dedicated ADI; stores its
 *            index in @qp. -ENOSPC when none is free.
 * @qp_free: give back a queue pair (unbound and stopped).
 * @qp_bind: program the queue pair's PASID and the tenant it works for;
 *           the PF takes its own reference on @tenant if it keeps it.
 * @qp_unbind: forget the queue pair's tenant (dropping the PF's reference);
 *             the queue pair is stopped first.
 * @qp_start: start processing the ring at @ring_iova of @ring_size
 *            64-byte descriptors (a power of two); the tail is whatever the
 *            tenant writes to the doorbell page. The VDCM keeps the ring's
 *            pages pinned while the queue pair runs, and stops it (qp_stop)
 *            before the tenant's unmapping of the ring completes.
 * @qp_stop: stop the queue pair and wait until none of its descriptors is
 *           in flight (drain); the ring head is forgotten and the doorbell
 *           page cleared (the next tenant reads nothing of this one).
 * @qp_doorbell: the doorbell page of the queue pair, mapped into the
 *               tenant's address space; valid until @qp_free.
 * @qp_stats: the queue pair's counters.
 * @portal_alloc: (shared mode) open a portal on a shared queue pair for
 *                the tenant @tenant with PASID @pasid: work submitted
 *                through the portal runs tagged with @pasid, in the
 *                tenant's address space. Stores the portal's number in
 *                @portal. -ENOSPC when none is free. The portal starts
 *                disabled.
 * @portal_enable: (shared mode) accept (@enable) or stop accepting work
 *                 through the portal; disabling waits until none of its
 *                 work is in flight, forgets what was submitted and clears
 *                 the portal page.
 * @portal_free: (shared mode) close a portal (disabled first), dropping
 *               the PF's reference on its tenant.
 * @portal_page: (shared mode) the portal's page, mapped into the tenant;
 *               valid until @portal_free.
 * @portal_stats: (shared mode) the portal's counters.
 * @config_read: read @len (1, 2 or 4) bytes at @offset of the PF's PCI
 *               configuration space into @value (for a PCI PF,
 *               pci_read_config_*()). The VDCM registers a PF only if its
 *               extended capabilities include the SIOV DVSEC (vendor
 *               0x8086, DVSEC ID 5).
 *
 * Calls for one queue pair are serialised by the VDCM; calls for different
 * queue pairs may run concurrently. All may sleep.
 */
struct vdcm_pf_ops {
	int (*qp_alloc)(struct vdcm_pf *pf, u32 *qp);
	void (*qp_free)(struct vdcm_pf *pf, u32 qp);
	int (*qp_bind)(struct vdcm_pf *pf, u32 qp, u32 pasid,
		       struct vdcm_tenant *tenant);
	void (*qp_unbind)(struct vdcm_pf *pf, u32 qp);
	int (*qp_start)(struct vdcm_pf *pf, u32 qp, u64 ring_iova, u32 ring_size);
	void (*qp_stop)(struct vdcm_pf *pf, u32 qp);
	struct page *(*qp_doorbell)(struct vdcm_pf *pf, u32 qp);
	void (*qp_stats)(struct vdcm_pf *pf, u32 qp, struct vdcm_qp_stats *stats);
	int (*portal_alloc)(struct vdcm_pf *pf, u32 pasid,
			    struct vdcm_tenant *tenant, u32 *portal);
	int (*portal_enable)(struct vdcm_pf *pf, u32 portal, bool enable);
	void (*portal_free)(struct vdcm_pf *pf, u32 portal);
	struct page *(*portal_page)(struct vdcm_pf *pf, u32 portal);
	void (*portal_stats)(struct vdcm_pf *pf, u32 portal,
			     struct vdcm_qp_stats *stats);
	int (*config_read)(struct vdcm_pf *pf, u32 offset, u32 len, u32 *value);
};

/**
 * struct vdcm_pf - a SIOV-capable PF, as registered with the VDCM
 * @version: VDCM_PF_CONTRACT_VERSION the PF driver was built with
 * @dev: the PF's device; ADIs are created under it (it is the mdev parent)
 * @caps: what the PF offers
 * @ops: the PF's queue-pair operations
 * @priv: the PF driver's own pointer, for its ops
 * @vdcm: owned by the VDCM while the PF is registered; the PF driver
 *        leaves it alone
 *
 * The structure must stay valid and unchanged from vdcm_register_pf()
 * until vdcm_unregister_pf() returns.
 */
struct vdcm_pf {
	u32 version;
	struct device *dev;
	struct vdcm_pf_caps caps;
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
 * vdcm_register_pf() - offer a PF's queue pairs to the VDCM
 * @pf: the PF; see struct vdcm_pf for its lifetime rules
 *
 * Return: 0, -EPROTO for a contract version mismatch, -EINVAL for
 * capabilities the VDCM cannot use or a PF without the SIOV capability, -ENODEV if the VDCM is not ready, or
 * another negative errno from creating the PF's mdev types.
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

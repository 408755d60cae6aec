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

/* Bumped on every incompatible change of this header. */
#define VDCM_PF_CONTRACT_VERSION 2

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
 */
struct vdcm_pf_caps {
	u32 num_qps;
	u32 pasid_bits;
	u32 doorbell_size;
	u32 num_irqs;
	u32 modes;
};

/**
 * struct vdcm_pf - a SIOV-capable PF, as registered with the VDCM
 * @version: VDCM_PF_CONTRACT_VERSION the PF driver was built with
 * @dev: the PF's device; ADIs are created under it (it is the mdev parent)
 * @caps: what the PF offers
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
 * capabilities the VDCM cannot use, -ENODEV if the VDCM is not ready, or
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

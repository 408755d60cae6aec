/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The PF backend contract: how a SIOV-capable PF driver registers with the
 * Virtual Device Composition Module (VDCM). Any PF driver module, in C or
 * in Rust, includes this header; Rust modules bindgen it and never share
 * Rust types across modules.
 *
 * The contract is versioned: a PF driver built against another version is
 * refused at registration.
 */
#ifndef _VDCM_PF_H
#define _VDCM_PF_H

#include <linux/types.h>

/* Bumped on every incompatible change of this header. */
#define VDCM_PF_CONTRACT_VERSION 1

/**
 * vdcm_pf_contract_version() - the contract version of the loaded VDCM
 *
 * Return: VDCM_PF_CONTRACT_VERSION as the VDCM was built.
 */
u32 vdcm_pf_contract_version(void);

#endif /* _VDCM_PF_H */

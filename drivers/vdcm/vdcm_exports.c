// SPDX-License-Identifier: GPL-2.0
/*
 * The VDCM's exported C ABI. The functions are defined in Rust
 * (vdcm_main.rs, `#[no_mangle] extern "C"`); C is only needed for
 * EXPORT_SYMBOL_GPL, which has no Rust equivalent for out-of-tree modules.
 */
#include <linux/export.h>
#include <vdcm_pf.h>

EXPORT_SYMBOL_GPL(vdcm_pf_contract_version);
EXPORT_SYMBOL_GPL(vdcm_register_pf);
EXPORT_SYMBOL_GPL(vdcm_unregister_pf);

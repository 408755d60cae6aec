/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Headers whose bindings the project generates itself because the kernel
 * crate of the target kernel has none. See the allowlists in ../Kbuild.
 */
#include <linux/vfio.h>
#include <linux/mdev.h>
#include <linux/iommufd.h>
#include <linux/eventfd.h>
#include <linux/iommu.h>
#include <linux/crc32.h>
#include <linux/anon_inodes.h>
#include <linux/interval_tree.h>
#include <linux/iova_bitmap.h>
#include <linux/fs.h>
#include <vdcm_pf.h>

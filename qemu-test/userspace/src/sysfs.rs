// SPDX-License-Identifier: GPL-2.0

//! sysfs and debugfs helpers.

use std::fs;
use std::path::Path;

use crate::tap::Context;

/// Reads a sysfs attribute, trimmed.
pub fn read(path: impl AsRef<Path>) -> Result<String, String> {
    let path = path.as_ref();
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .context(format!("read {}", path.display()))
}

/// Reads a sysfs attribute that holds a decimal number.
pub fn read_u64(path: impl AsRef<Path>) -> Result<u64, String> {
    let path = path.as_ref();
    let text = read(path)?;
    text.parse()
        .context(format!("{} = {text:?} is not a number", path.display()))
}

/// Reads a sysfs attribute that holds a hexadecimal number, with or
/// without `0x`.
pub fn read_hex(path: impl AsRef<Path>) -> Result<u64, String> {
    let path = path.as_ref();
    let text = read(path)?;
    u64::from_str_radix(text.trim_start_matches("0x"), 16)
        .context(format!("{} = {text:?} is not hexadecimal", path.display()))
}

/// Writes `value` to a sysfs attribute.
pub fn write(path: impl AsRef<Path>, value: &str) -> Result<(), String> {
    let path = path.as_ref();
    fs::write(path, value).context(format!("write {value:?} to {}", path.display()))
}

/// A fresh random UUID from the kernel.
pub fn new_uuid() -> Result<String, String> {
    read("/proc/sys/kernel/random/uuid")
}

/// Makes sure debugfs is mounted at /sys/kernel/debug.
pub fn ensure_debugfs() -> Result<(), String> {
    let mounts = read("/proc/mounts")?;
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/kernel/debug"))
    {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "debugfs", "none", "/sys/kernel/debug"])
        .status()
        .context("run mount")?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("mount -t debugfs failed: {status}"))
    }
}

// SPDX-License-Identifier: GPL-2.0

//! Creating and removing mediated devices through sysfs.

use std::io;
use std::path::Path;
use std::path::PathBuf;

use crate::sysfs;

/// An mdev type of a parent: `/sys/class/mdev_bus/<parent>/mdev_supported_types/<name>`.
pub struct MdevType {
    dir: PathBuf,
}

impl MdevType {
    /// The type `name` of parent `parent`.
    pub fn new(parent: &str, name: &str) -> Self {
        MdevType {
            dir: Path::new("/sys/class/mdev_bus")
                .join(parent)
                .join("mdev_supported_types")
                .join(name),
        }
    }

    /// The type's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `available_instances`.
    pub fn available(&self) -> Result<u64, String> {
        sysfs::read_u64(self.dir.join("available_instances"))
    }

    /// Creates a device of this type; returns it, or the raw I/O error of
    /// the `create` write (so tests can check the errno).
    pub fn create(&self) -> Result<Result<Mdev, io::Error>, String> {
        let uuid = sysfs::new_uuid()?;
        Ok(std::fs::write(self.dir.join("create"), &uuid).map(|()| Mdev::new(&uuid)))
    }
}

/// A mediated device: `/sys/bus/mdev/devices/<uuid>`.
pub struct Mdev {
    dir: PathBuf,
}

impl Mdev {
    /// The device with `uuid`.
    pub fn new(uuid: &str) -> Self {
        Mdev {
            dir: Path::new("/sys/bus/mdev/devices").join(uuid),
        }
    }

    /// The device whose sysfs directory is `dir`.
    pub fn from_dir(dir: PathBuf) -> Self {
        Mdev { dir }
    }

    /// Its UUID (the name of its sysfs directory).
    pub fn uuid(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The device's sysfs directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the device exists.
    pub fn exists(&self) -> bool {
        self.dir.exists()
    }

    /// Its VFIO cdev: `/dev/vfio/devices/<name of its vfio-dev entry>`.
    pub fn cdev(&self) -> Result<PathBuf, String> {
        let dir = self.dir.join("vfio-dev");
        let entry = std::fs::read_dir(&dir)
            .map_err(|e| format!("read {}: {e}", dir.display()))?
            .next()
            .ok_or(format!("{} is empty", dir.display()))?
            .map_err(|e| e.to_string())?;
        Ok(Path::new("/dev/vfio/devices").join(entry.file_name()))
    }

    /// Removes the device through its `remove` attribute.
    pub fn remove(&self) -> Result<(), String> {
        sysfs::write(self.dir.join("remove"), "1")
    }
}

/// An mdev removed when this guard is dropped. Declared after the device
/// fds that use it in a struct (fields drop in order), it is removed only
/// once they are closed: removal waits for the device's users.
pub struct Removed(pub Mdev);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = self.0.remove();
    }
}

//! Mounting an image read-only, as a sandbox sees it (what `ctr images
//! mount` and `podman image mount` give): each layer's EROFS image on a
//! read-only loop device, mounted `-t erofs -o ro`, and an overlay of them
//! all (`lowerdir=top:…:base`, no upper dir, read-only) on the target.
//!
//! The layer mounts live under `$MSB_HOME/mounts/<id>/`, `<id>` derived from
//! the target's absolute path, next to `mount.json`, which says what was
//! mounted where so that [`unmount`] can undo it:
//!
//! ```text
//! mounts/<id>/mount.json   the target, the image, the layer mount dirs
//! mounts/<id>/0, 1, …      each layer's EROFS mount, base first
//! mounts/<id>/empty        an empty lower dir, for an image of one layer
//! ```
//!
//! Overlayfs wants two lower dirs when it has no upper one, so a one-layer
//! image gets the empty dir under it: every msb mount is an overlay, and
//! whiteouts and opaque markers never show.
//!
//! Everything is done with system calls (`mount(2)`, the `fsopen` mount
//! API, loop-device ioctls), so a missing privilege or file system is named
//! from the error number rather than parsed from a tool's message. Loop
//! devices are set up with autoclear: unmounting a layer frees its device.

use crate::digest::Digest;
use crate::store::{ImageView, Store, StoreError};
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags, fsconfig_create,
    fsconfig_set_string, fsmount, fsopen, move_mount,
};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Errors of [`mount`] and [`unmount`].
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The store could not give the image.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// File system trouble, with the path concerned.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// Mounting needs what this process or kernel lacks.
    #[error("{0}")]
    Unsupported(String),
    /// A mount system call failed.
    #[error("{what}: {error}")]
    Mount {
        /// What was being mounted where.
        what: String,
        /// The error.
        error: io::Error,
    },
    /// A layer's EROFS image is not in the store.
    #[error("layer {0}: its EROFS image {1} is missing from the store (msb check, or load the image again)")]
    MissingLayer(Digest, PathBuf),
    /// The target already carries an msb mount.
    #[error("{0}: already an msb mount; msb umount it first")]
    Busy(PathBuf),
    /// `umount` of something msb did not mount.
    #[error("{0}: not mounted by msb (no record of it in {1})")]
    NotOurs(PathBuf, PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> MountError + '_ {
    move |error| MountError::Io { path: path.to_path_buf(), error }
}

/// What `mount.json` records.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The overlay's mount point (absolute).
    target: PathBuf,
    /// The image: its ref or ID, as asked.
    image: String,
    /// Its config digest.
    config_digest: Digest,
    /// The layer mount dirs, base first (and the empty dir, if any, last).
    dirs: Vec<PathBuf>,
}

/// A finished mount.
#[derive(Debug)]
pub struct Mounted {
    /// The overlay's mount point (absolute).
    pub target: PathBuf,
    /// Where the layer mounts and the record live.
    pub state_dir: PathBuf,
}

/// Mounts `image` (named `name`, for the record) read-only on the existing
/// directory `target`. A failure unmounts what was mounted and removes what
/// was created.
pub fn mount(store: &Store, image: &ImageView, name: &str, target: &Path) -> Result<Mounted, MountError> {
    let target = fs::canonicalize(target).map_err(io_err(target))?;
    if !target.is_dir() {
        return Err(MountError::Io { path: target, error: io::Error::other("not a directory") });
    }
    let mut devices = Vec::new();
    for layer in &image.layers {
        if !layer.erofs.is_file() {
            return Err(MountError::MissingLayer(layer.diff_id.clone(), layer.erofs.clone()));
        }
        let blobs = store.layer_devices(&layer.diff_id)?;
        if let Some(missing) = blobs.iter().find(|b| !b.is_file()) {
            return Err(MountError::MissingLayer(layer.diff_id.clone(), missing.clone()));
        }
        devices.push(blobs);
    }
    let state_dir = state_dir(store, &target);
    let parent = store.root().join("mounts");
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    match fs::create_dir(&state_dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(MountError::Busy(target)),
        other => other.map_err(io_err(&state_dir))?,
    }
    let mut dirs: Vec<PathBuf> = (0..image.layers.len()).map(|i| state_dir.join(i.to_string())).collect();
    if dirs.len() < 2 {
        dirs.push(state_dir.join("empty"));
    }
    // Recorded first: whatever happens next, `umount` can clean up.
    let record = Record {
        target: target.clone(),
        image: name.to_string(),
        config_digest: image.config_digest.clone(),
        dirs: dirs.clone(),
    };
    let result = write_record(&state_dir, &record).and_then(|()| {
        // The lock keeps `gc` from deleting a layer while it is being opened.
        let _lock = store.lock()?;
        mount_all(image, &devices, &dirs, &target)
    });
    match result {
        Ok(()) => Ok(Mounted { target, state_dir }),
        Err(e) => {
            let _ = undo(&state_dir, &record, false);
            Err(e)
        }
    }
}

/// Undoes the [`mount`] on `target`: the overlay, then every layer mount,
/// then the dirs and the record. Refuses a directory msb did not mount.
pub fn unmount(store: &Store, target: &Path) -> Result<PathBuf, MountError> {
    let absolute = fs::canonicalize(target).map_err(io_err(target))?;
    let state_dir = state_dir(store, &absolute);
    let path = state_dir.join("mount.json");
    let bytes = match fs::read(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(MountError::NotOurs(absolute, store.root().join("mounts")));
        }
        other => other.map_err(io_err(&path))?,
    };
    let record: Record = serde_json::from_slice(&bytes)
        .map_err(|e| MountError::Io { path: path.clone(), error: io::Error::new(io::ErrorKind::InvalidData, e) })?;
    if record.target != absolute {
        return Err(MountError::NotOurs(absolute, store.root().join("mounts")));
    }
    // Whatever is mounted there now must be an overlay (ours, or none).
    if let Some(other) = fs_type_at(&absolute).filter(|t| t != "overlay") {
        return Err(MountError::Unsupported(format!(
            "{}: a {other} file system is mounted over msb's overlay; unmount it first",
            absolute.display()
        )));
    }
    undo(&state_dir, &record, true)?;
    Ok(absolute)
}

/// The type of the file system mounted on `dir` last (the visible one), from
/// `/proc/self/mountinfo`; `None` if `dir` is no mount point.
fn fs_type_at(dir: &Path) -> Option<String> {
    // mountinfo escapes space, tab, newline and backslash as octal.
    let mut escaped = String::new();
    for c in dir.to_string_lossy().chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => escaped.push_str(&format!("\\{:03o}", c as u32)),
            c => escaped.push(c),
        }
    }
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .rfind(|l| l.split(' ').nth(4) == Some(escaped.as_str()))
        .and_then(|l| l.split(" - ").nth(1)?.split(' ').next().map(str::to_string))
}

/// `$MSB_HOME/mounts/<id>`, `<id>` naming the absolute `target`.
fn state_dir(store: &Store, target: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let id = Digest::of(target.as_os_str().as_bytes());
    store.root().join("mounts").join(&id.hex()[..16])
}

fn write_record(state_dir: &Path, record: &Record) -> Result<(), MountError> {
    let path = state_dir.join("mount.json");
    let mut bytes = serde_json::to_vec_pretty(record)
        .map_err(|e| MountError::Io { path: path.clone(), error: io::Error::other(e) })?;
    bytes.push(b'\n');
    fs::write(&path, bytes).map_err(io_err(&path))
}

/// Each layer on its dir (with the blobs it reads from, `devices`, as its
/// extra devices), then the overlay on `target`.
fn mount_all(image: &ImageView, devices: &[Vec<PathBuf>], dirs: &[PathBuf], target: &Path) -> Result<(), MountError> {
    for dir in dirs {
        fs::create_dir(dir).map_err(io_err(dir))?;
    }
    for ((layer, blobs), dir) in image.layers.iter().zip(devices).zip(dirs) {
        let device = loop_device::attach(&layer.erofs)?;
        let extra = blobs.iter().map(|b| loop_device::attach(b)).collect::<Result<Vec<_>, _>>()?;
        let options = extra.iter().map(|d| format!("device={}", d.path().display())).collect::<Vec<_>>().join(",");
        let options = CString::new(options).map_err(|e| MountError::Unsupported(e.to_string()))?;
        let data = (!extra.is_empty()).then_some(options.as_c_str());
        let result = rustix::mount::mount(device.path(), dir, "erofs", MountFlags::RDONLY, data);
        // The mount holds the devices now; with autoclear, closing ours is
        // what frees them once the mount goes (or right away, on failure).
        drop((device, extra));
        result.map_err(|e| {
            mount_error(e.into(), "erofs", format!("mounting {} on {}", layer.erofs.display(), dir.display()))
        })?;
    }
    let lowers: Vec<&Path> = dirs.iter().rev().map(PathBuf::as_path).collect();
    overlay(&lowers, target)
}

/// A read-only overlay of `lowers` (top first) on `target`: the mount API
/// with one `lowerdir+` per layer (no length limit; Linux 6.8+), else
/// `mount(2)` with `lowerdir=a:b:…` (one page of options at most).
fn overlay(lowers: &[&Path], target: &Path) -> Result<(), MountError> {
    let what = || format!("mounting the overlay on {}", target.display());
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| mount_error(e.into(), "overlay", what()))?;
    // The source column of mountinfo and df.
    fsconfig_set_string(&fs, "source", "msb").map_err(|e| mount_error(e.into(), "overlay", what()))?;
    let mut added = true;
    for lower in lowers {
        match fsconfig_set_string(&fs, "lowerdir+", *lower) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) => {
                added = false;
                break;
            }
            Err(e) => return Err(mount_error(e.into(), "overlay", what())),
        }
    }
    if !added {
        return overlay_legacy(lowers, target);
    }
    fsconfig_create(&fs).map_err(|e| mount_error(e.into(), "overlay", what()))?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::MOUNT_ATTR_RDONLY)
        .map_err(|e| mount_error(e.into(), "overlay", what()))?;
    move_mount(&mnt, "", rustix::fs::CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(|e| mount_error(e.into(), "overlay", what()))
}

fn overlay_legacy(lowers: &[&Path], target: &Path) -> Result<(), MountError> {
    let what = || format!("mounting the overlay on {}", target.display());
    let mut joined = Vec::new();
    for lower in lowers {
        use std::os::unix::ffi::OsStrExt;
        let bytes = lower.as_os_str().as_bytes();
        if bytes.iter().any(|b| matches!(b, b':' | b',')) {
            return Err(MountError::Unsupported(format!(
                "{}: a path with ':' or ',' cannot be an overlay lower dir on this kernel (older than 6.8)",
                lower.display()
            )));
        }
        if !joined.is_empty() {
            joined.push(b':');
        }
        joined.extend_from_slice(bytes);
    }
    let data = [b"lowerdir=".as_slice(), &joined].concat();
    if data.len() >= 4096 {
        return Err(MountError::Unsupported(format!(
            "{}: {} layers give overlay options longer than this kernel (older than 6.8) takes; set a shorter MSB_HOME",
            target.display(),
            lowers.len()
        )));
    }
    let data = CString::new(data).map_err(|e| MountError::Unsupported(e.to_string()))?;
    rustix::mount::mount("overlay", target, "overlay", MountFlags::RDONLY, Some(data.as_c_str()))
        .map_err(|e| mount_error(e.into(), "overlay", what()))
}

/// Unmounts the overlay (if `target_too`) and every layer of `record`,
/// then removes `state_dir`. What is not mounted is skipped, so a partial
/// mount is undone too.
fn undo(state_dir: &Path, record: &Record, target_too: bool) -> Result<(), MountError> {
    // Only mount points are unmounted: an unprivileged failure cleans up too.
    if target_too && fs_type_at(&record.target).is_some() {
        unmount_one(&record.target)?;
    }
    for dir in record.dirs.iter().rev() {
        if dir.exists() {
            if fs_type_at(dir).is_some() {
                unmount_one(dir)?;
            }
            fs::remove_dir(dir).map_err(io_err(dir))?;
        }
    }
    let path = state_dir.join("mount.json");
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&path)(e)),
        _ => {}
    }
    fs::remove_dir(state_dir).map_err(io_err(state_dir))
}

/// `umount(2)`; a dir that is not a mount point is fine.
fn unmount_one(dir: &Path) -> Result<(), MountError> {
    match rustix::mount::unmount(dir, UnmountFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(rustix::io::Errno::BUSY) => Err(MountError::Mount {
            what: format!("unmounting {}", dir.display()),
            error: io::Error::other("busy: a process still uses it"),
        }),
        Err(e) => Err(mount_error(e.into(), "", format!("unmounting {}", dir.display()))),
    }
}

/// A mount error, naming what is missing when it is privilege or kernel
/// support.
fn mount_error(error: io::Error, fs_type: &str, what: String) -> MountError {
    match error.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => MountError::Unsupported(format!(
            "{what}: permission denied: mounting needs root (CAP_SYS_ADMIN in the initial user namespace)"
        )),
        Some(libc::ENODEV) if !fs_type.is_empty() => {
            let listed = fs::read_to_string("/proc/filesystems")
                .is_ok_and(|s| s.lines().any(|l| l.split_whitespace().last() == Some(fs_type)));
            let hint =
                if listed { String::new() } else { format!(" (not in /proc/filesystems; try modprobe {fs_type})") };
            MountError::Unsupported(format!("{what}: the kernel has no {fs_type} file system{hint}"))
        }
        _ => MountError::Mount { what, error },
    }
}

/// Loop devices: a file as a read-only block device that goes away when
/// its last user (the mount) does.
mod loop_device {
    use super::{MountError, mount_error};
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::{Path, PathBuf};

    const LOOP_CTL_GET_FREE: u64 = 0x4C82;
    const LOOP_CONFIGURE: u64 = 0x4C0A;
    const LOOP_SET_FD: u64 = 0x4C00;
    const LOOP_SET_STATUS64: u64 = 0x4C04;
    const LOOP_CLR_FD: u64 = 0x4C01;
    const LO_FLAGS_READ_ONLY: u32 = 1;
    const LO_FLAGS_AUTOCLEAR: u32 = 4;

    /// `struct loop_info64` of `<linux/loop.h>`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct LoopInfo64 {
        device: u64,
        inode: u64,
        rdevice: u64,
        offset: u64,
        sizelimit: u64,
        number: u32,
        encrypt_type: u32,
        encrypt_key_size: u32,
        flags: u32,
        file_name: [u8; 64],
        crypt_name: [u8; 64],
        encrypt_key: [u8; 32],
        init: [u64; 2],
    }

    /// `struct loop_config` of `<linux/loop.h>`.
    #[repr(C)]
    struct LoopConfig {
        fd: u32,
        block_size: u32,
        info: LoopInfo64,
        reserved: [u64; 8],
    }

    const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232 && std::mem::size_of::<LoopConfig>() == 304);

    /// An attached loop device, open.
    pub struct Device {
        _file: File,
        path: PathBuf,
    }

    impl Device {
        /// `/dev/loopN`.
        pub fn path(&self) -> &Path {
            &self.path
        }
    }

    /// `ioctl(fd, request, arg)`.
    fn ioctl(file: &File, request: u64, arg: usize) -> io::Result<i32> {
        // SAFETY: `request` is one of the loop ioctls above and `arg` is an
        // integer or a pointer to the `#[repr(C)]` struct it expects, alive
        // for the call.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), request as _, arg) };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
    }

    /// Attaches `image` to a free loop device, read-only, with autoclear.
    pub fn attach(image: &Path) -> Result<Device, MountError> {
        let what = |s: &str| format!("{s} for {}", image.display());
        let backing = File::open(image).map_err(super::io_err(image))?;
        let control = "/dev/loop-control";
        let ctl = OpenOptions::new()
            .read(true)
            .write(true)
            .open(control)
            .map_err(|e| mount_error(e, "", what(&format!("opening {control}"))))?;
        let mut info = LoopInfo64 {
            device: 0,
            inode: 0,
            rdevice: 0,
            offset: 0,
            sizelimit: 0,
            number: 0,
            encrypt_type: 0,
            encrypt_key_size: 0,
            flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
            file_name: [0; 64],
            crypt_name: [0; 64],
            encrypt_key: [0; 32],
            init: [0; 2],
        };
        {
            use std::os::unix::ffi::OsStrExt;
            let name = image.as_os_str().as_bytes();
            let n = name.len().min(63);
            info.file_name[..n].copy_from_slice(&name[..n]);
        }
        // Another process may take the free device first: try again.
        for _ in 0..32 {
            let n = ioctl(&ctl, LOOP_CTL_GET_FREE, 0)
                .map_err(|e| mount_error(e, "", what("finding a free loop device")))?;
            let path = PathBuf::from(format!("/dev/loop{n}"));
            let dev = OpenOptions::new()
                .read(true)
                .open(&path)
                .map_err(|e| mount_error(e, "", what(&format!("opening {}", path.display()))))?;
            let config = LoopConfig { fd: backing.as_raw_fd() as u32, block_size: 0, info, reserved: [0; 8] };
            match ioctl(&dev, LOOP_CONFIGURE, &config as *const LoopConfig as usize) {
                Ok(_) => return Ok(Device { _file: dev, path }),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => continue,
                // Before Linux 5.8: set the file, then the flags.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOTTY)) => {
                    match ioctl(&dev, LOOP_SET_FD, backing.as_raw_fd() as usize) {
                        Ok(_) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => continue,
                        Err(e) => return Err(mount_error(e, "", what(&format!("attaching {}", path.display())))),
                    }
                    if let Err(e) = ioctl(&dev, LOOP_SET_STATUS64, &info as *const LoopInfo64 as usize) {
                        let _ = ioctl(&dev, LOOP_CLR_FD, 0);
                        return Err(mount_error(e, "", what(&format!("configuring {}", path.display()))));
                    }
                    return Ok(Device { _file: dev, path });
                }
                Err(e) => return Err(mount_error(e, "", what(&format!("attaching {}", path.display())))),
            }
        }
        Err(MountError::Mount {
            what: what("finding a free loop device"),
            error: io::Error::other("every free device was taken by others; try again"),
        })
    }
}

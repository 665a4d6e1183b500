//! `tmp/`: each process's scratch space, tied to the life of the process.
//!
//! A process that opens the store gets `tmp/proc-<pid>-<random>/` and holds an
//! exclusive flock on its sibling `tmp/proc-<pid>-<random>.lock` until it
//! exits; the kernel drops the lock however the process ends. Staging
//! directories, spool files and the temp files of atomic writes all live
//! inside ([`Store::tmp_dir`]). Whatever in `tmp/` no held lock covers is
//! dead, and the next command that opens the store removes all of it at once
//! ([`remove_dead`]): no age threshold, and never a live process's files.
//!
//! The lock file is created (exclusively) and locked before its directory
//! exists, and removed only after its directory is gone, so a directory
//! without a lock file beside it never belongs to a live process.
//!
//! On SIGINT or SIGTERM the binary calls [`exit_on_signal`], which waits for
//! a commit in progress ([`critical`]) to finish, removes this process's
//! directories and exits with 128 + the signal number.

use super::{StoreError, io_err};
use std::fs::{self, File, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Names of process directories start with this.
const PREFIX: &str = "proc-";
/// A process directory's lock file is its name with this suffix.
const LOCK_SUFFIX: &str = ".lock";

/// One process directory this process holds.
struct ProcessDir {
    /// The `tmp/` it is in.
    tmp_root: PathBuf,
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: File,
}

/// This process's directories, one per store it opened.
static DIRS: Mutex<Vec<ProcessDir>> = Mutex::new(Vec::new());

/// Held while the refs change (commit, tag, rmi, repair) and by a signal
/// handler until the process exits, so a signal never lands mid-commit.
static CRITICAL: Mutex<()> = Mutex::new(());

fn guard<T>(mutex: &'static Mutex<T>) -> MutexGuard<'static, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Held while a change becomes visible; a SIGINT or SIGTERM that arrives
/// meanwhile takes effect once the guard drops.
pub fn critical() -> MutexGuard<'static, ()> {
    guard(&CRITICAL)
}

/// This process's directory in `tmp_root`, created and locked on first use.
pub(super) fn process_dir(tmp_root: &Path) -> Result<PathBuf, StoreError> {
    let mut dirs = guard(&DIRS);
    if let Some(found) = dirs.iter().find(|d| d.tmp_root == tmp_root) {
        return Ok(found.dir.clone());
    }
    let prefix = format!("{PREFIX}{}-", std::process::id());
    for _ in 0..16 {
        let (file, lock_path) = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(LOCK_SUFFIX)
            .tempfile_in(tmp_root)
            .map_err(io_err(tmp_root))?
            .keep()
            .map_err(|e| StoreError::Io { path: tmp_root.to_path_buf(), error: e.error })?;
        // A cleaner that opened the new file before we locked it takes it
        // for dead and unlinks it: then try another name.
        if file.try_lock().is_err() || !same_file(&file, &lock_path) {
            continue;
        }
        let Some(dir) = lock_path.to_str().and_then(|p| p.strip_suffix(LOCK_SUFFIX)).map(PathBuf::from) else {
            continue;
        };
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&lock_path);
                continue;
            }
            Err(e) => {
                let _ = fs::remove_file(&lock_path);
                return Err(io_err(&dir)(e));
            }
        }
        dirs.push(ProcessDir { tmp_root: tmp_root.to_path_buf(), dir: dir.clone(), lock_path, _lock: file });
        return Ok(dir);
    }
    Err(StoreError::Corrupt { path: tmp_root.to_path_buf(), reason: "cannot create a process directory".into() })
}

/// Whether the open `file` is still the one at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Removes everything in `tmp_root` that no live process holds: process
/// directories whose lock is free, and anything else that is not a held
/// process directory (leftovers of older versions). Returns the bytes freed.
/// Entries that vanish or resist removal meanwhile are skipped.
pub(super) fn remove_dead(tmp_root: &Path) -> Result<u64, StoreError> {
    let mut freed = 0;
    for entry in fs::read_dir(tmp_root).map_err(io_err(tmp_root))? {
        let entry = entry.map_err(io_err(tmp_root))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(LOCK_SUFFIX).filter(|s| s.starts_with(PREFIX)) {
            let Ok(file) = File::options().read(true).write(true).open(&path) else { continue };
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(_)) => continue,
            }
            if !same_file(&file, &path) {
                continue;
            }
            // Ours now: the directory goes first, then the lock file.
            let dir = tmp_root.join(stem);
            freed += size_of(&dir);
            let _ = fs::remove_dir_all(&dir);
            let _ = fs::remove_file(&path);
        } else if !tmp_root.join(format!("{name}{LOCK_SUFFIX}")).exists() {
            freed += size_of(&path);
            let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
    Ok(freed)
}

/// Bytes under `path` (0 if it is gone).
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = path.symlink_metadata() else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path).map(|entries| entries.flatten().map(|e| size_of(&e.path())).sum()).unwrap_or(0)
}

/// Removes this process's directories (and their locks). Call once, as
/// the process ends; if a signal is being handled, this waits for the
/// handler to exit the process.
pub fn release_process_tmp() {
    let _critical = critical();
    remove_own();
}

fn remove_own() {
    for dir in guard(&DIRS).drain(..) {
        // Other threads may still create files in it (a signal does not
        // stop them): try again until it is gone.
        for _ in 0..100 {
            if fs::remove_dir_all(&dir.dir).is_ok() || !dir.dir.exists() {
                break;
            }
        }
        let _ = fs::remove_file(&dir.lock_path);
    }
}

/// For a SIGINT or SIGTERM: waits for a commit in progress, removes this
/// process's directories, and exits with 128 + `signal` (130, 143).
pub fn exit_on_signal(signal: i32) -> ! {
    let _critical = critical();
    remove_own();
    std::process::exit(128 + signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_entries_go_and_live_ones_stay() {
        let home = tempfile::tempdir().unwrap();
        let tmp = home.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        // A dead process directory (lock free), a loose file, a loose dir.
        fs::create_dir(tmp.join("proc-1-dead")).unwrap();
        fs::write(tmp.join("proc-1-dead").join("blob"), b"12345").unwrap();
        fs::write(tmp.join("proc-1-dead.lock"), b"").unwrap();
        fs::write(tmp.join("spool-old"), b"123").unwrap();
        fs::create_dir(tmp.join("stage-old")).unwrap();
        let live = process_dir(&tmp).unwrap();
        assert_eq!(process_dir(&tmp).unwrap(), live, "one directory per process and store");
        fs::write(live.join("staged"), b"x").unwrap();

        assert_eq!(remove_dead(&tmp).unwrap(), 8);
        let mut left: Vec<_> = fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().path()).collect();
        left.sort();
        let lock = PathBuf::from(format!("{}{LOCK_SUFFIX}", live.display()));
        assert_eq!(left, vec![live.clone(), lock]);
        assert!(live.join("staged").exists());
    }
}

//! Reading and writing the user's files. Writes are atomic: the new content goes into an
//! unnamed file in the target's folder (Linux `O_TMPFILE`), which gets a hidden name only
//! once it is complete and is then renamed over the target. A process killed at any moment
//! leaves either the old file or the new one, never a mix. A kill in the instant between
//! naming and renaming (two system calls; SIGKILL cannot be deferred) leaves that hidden
//! `.NAME.glassbox-PID-N.tmp` beside the target, and the next save of NAME removes it.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{Error, Result};

/// Reads a whole file of at most `max` bytes, refusing directories and larger files with
/// a clear message (before reading anything).
pub fn read_file(path: &Path, max: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::file(path, "is a directory, expected a file"));
    }
    if !meta.is_file() {
        // /dev/zero or a FIFO would be read forever.
        return Err(Error::file(
            path,
            "is not a regular file (a device, pipe or socket); save it to a file first",
        ));
    }
    if meta.len() > max {
        return Err(Error::file(
            path,
            format!(
                "is {:.2} GiB; Glassbox reads such files up to {:.2} GiB",
                meta.len() as f64 / GIB,
                max as f64 / GIB
            ),
        ));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

const GIB: f64 = (1u64 << 30) as f64;

/// The hidden names a save of `name` uses for the moment between writing and renaming.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.glassbox-")
}

const TEMP_SUFFIX: &str = ".tmp";

/// Removes hidden temporary files a killed save of `name` may have left in `dir`.
fn sweep(dir: &Path, name: &str) {
    let prefix = temp_prefix(name);
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        if n.starts_with(&prefix) && n.ends_with(TEMP_SUFFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// An unnamed file in `dir` (O_TMPFILE), or None where the file system has none.
fn unnamed_file(dir: &Path) -> Option<File> {
    let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a plain open(2) of a NUL-terminated path; the descriptor is owned by File.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    Some(unsafe { File::from_raw_fd(fd) })
}

/// Gives the unnamed `file` the name `to` (linkat through /proc, no privilege needed).
fn link_unnamed(file: &File, to: &Path) -> std::io::Result<()> {
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).expect("no NUL");
    let to = CString::new(to.as_os_str().as_bytes()).map_err(|_| std::io::Error::other("NUL in the path"))?;
    // SAFETY: two NUL-terminated paths; linkat(2) does not keep them.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The environment variable of the test-only pause in [`write_atomic`].
pub const TEST_PAUSE_VAR: &str = "GLASSBOX_TEST_SAVE_PAUSE_MS";

/// A test hook (tests/saves.rs), off unless [`TEST_PAUSE_VAR`] is set: once a save's bytes
/// are written and synced but before they get a name, it says so on stderr and waits that
/// many milliseconds, so that a test can kill the process there, inside the write, for sure.
fn test_pause(path: &Path) {
    let Some(ms) = std::env::var(TEST_PAUSE_VAR).ok().and_then(|v| v.parse::<u64>().ok()) else {
        return;
    };
    eprintln!("glassbox: test pause: {} written, not yet renamed", path.display());
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

/// Writes a file atomically (see the module comment). The file keeps the permissions of
/// the one it replaces.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "is not a file name to write to"))?
        .to_string_lossy()
        .into_owned();
    sweep(dir, &name);
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644);
    match unnamed_file(dir) {
        Some(mut f) => {
            f.write_all(bytes).map_err(|e| Error::io(path, e))?;
            f.sync_all().map_err(|e| Error::io(path, e))?;
            test_pause(path);
            let _ = f.set_permissions(std::fs::Permissions::from_mode(mode));
            // linkat cannot replace a file: a hidden name first, then the atomic rename.
            let hidden: PathBuf = dir.join(format!(
                "{}{}-{}{TEMP_SUFFIX}",
                temp_prefix(&name),
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            link_unnamed(&f, &hidden).map_err(|e| Error::io(path, e))?;
            if let Err(e) = std::fs::rename(&hidden, path) {
                let _ = std::fs::remove_file(&hidden);
                return Err(Error::io(path, e));
            }
        }
        None => {
            // No O_TMPFILE here: the hidden name from the start, renamed over the target.
            let mut f = tempfile::Builder::new()
                .prefix(&temp_prefix(&name))
                .suffix(TEMP_SUFFIX)
                .tempfile_in(dir)
                .map_err(|e| Error::io(dir, e))?;
            f.write_all(bytes).map_err(|e| Error::io(path, e))?;
            f.as_file().sync_all().map_err(|e| Error::io(path, e))?;
            test_pause(path);
            let _ = f.as_file().set_permissions(std::fs::Permissions::from_mode(mode));
            f.persist(path).map_err(|e| Error::io(path, e.error))?;
        }
    }
    // The rename itself reaches the disk with the folder.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_keeps_mode_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.bin");
        write_atomic(&p, b"one").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A leftover of a save killed between naming and renaming is swept.
        std::fs::write(dir.path().join(".w.bin.glassbox-1-0.tmp"), b"stale").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["w.bin"]);
    }

    #[test]
    fn a_missing_folder_is_a_clear_error() {
        let e = write_atomic(Path::new("/nonexistent-folder/x.png"), b"x").unwrap_err();
        assert!(e.to_string().contains("nonexistent-folder"), "{e}");
    }
}

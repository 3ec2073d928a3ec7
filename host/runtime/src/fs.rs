//! Files only this user may read: the one place the host creates them (key
//! files, salts, token files, audit logs, state files, the SQLite store).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// How [`open_private`] opens the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new file; an existing one is an `AlreadyExists` error.
    CreateNew,
    /// Appending, creating the file if missing.
    Append,
    /// Writing from empty, creating the file if missing.
    Truncate,
}

/// Opens `path` with mode 0600 (a new file never exists with wider permissions,
/// even briefly), creating its parent directory (0700) first.
pub fn open_private(path: &Path, mode: Mode) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    let mut options = OpenOptions::new();
    match mode {
        Mode::CreateNew => options.write(true).create_new(true),
        Mode::Append => options.append(true).create(true),
        Mode::Truncate => options.write(true).create(true).truncate(true),
    };
    options.mode(0o600).open(path)
}

/// Writes `bytes` to the new file `path` (mode 0600) and syncs it and its
/// directory; an existing file is an `AlreadyExists` error and is left alone.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = open_private(path, Mode::CreateNew)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    sync_dir_of(path)
}

/// Syncs the directory holding `path`, so a file created or renamed there
/// survives a crash.
pub fn sync_dir_of(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

/// Replaces the contents of `path` (mode 0600) with `bytes` and syncs it.
pub fn overwrite_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = open_private(path, Mode::Truncate)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Replaces `path` with `bytes` atomically: a private temporary file beside it,
/// synced, then renamed over it, and the directory synced. A crash leaves either
/// the old contents or the new, never a mix.
pub fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A name no other writer (thread or process) uses at the same time.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".{}.{n}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let tmp = path.with_file_name(name);
    write_private(&tmp, bytes)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir_of(path)
}

/// Creates `dir` and its parents, mode 0700 for the ones created.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn files_are_private_and_new_means_new() {
        let dir = std::env::temp_dir().join(format!("sb-fs-{}", std::process::id()));
        let path = dir.join("sub/key");
        write_private(&path, b"one").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = write_private(&path, b"two").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        overwrite_private(&path, b"three").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        replace_private(&path, b"four").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"four");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

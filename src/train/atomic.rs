//! Writing files so that an interrupted write never leaves a half-written
//! file in place of a good one.

use std::path::Path;

use crate::Error;

/// Writes `bytes` to `path` through a temporary file (synced to disk) and a
/// rename, replacing `path` if it exists. On error the temporary file is
/// removed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_through_temp(path, bytes, |tmp| std::fs::rename(tmp, path))
}

/// Like [`write_atomically`] but never replaces a file: if `path` exists
/// (even if it appeared while the bytes were written) it is kept and the
/// write is an error.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_through_temp(path, bytes, |tmp| {
        // A hard link fails if the name is taken, atomically.
        std::fs::hard_link(tmp, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                std::io::Error::new(e.kind(), "the file already exists and is not replaced")
            } else {
                e
            }
        })?;
        std::fs::remove_file(tmp)
    })
}

fn write_through_temp(
    path: &Path,
    bytes: &[u8],
    commit: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), Error> {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| commit(&tmp));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

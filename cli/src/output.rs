//! The one guard every output path of every command goes through.
//!
//! The rules (docs/cli.md, "Guarantees"):
//! - an output is never the same file as an input (compared by device and
//!   inode, so links and other spellings of a path are caught), not even with
//!   `--force`;
//! - before any work starts: the folder exists and is writable, the path is
//!   not a folder, and an existing file is only replaced with `--force`;
//! - the content goes to a temporary file in the same folder, which is then
//!   renamed into place without replacing anything that appeared meanwhile
//!   (unless `--force`), so an interrupted or failed write never leaves half
//!   a file in place of a good one;
//! - a target that is not a regular file (a character device such as
//!   `/dev/null`, or a FIFO) is written in place, never replaced by a
//!   regular file; block devices and sockets are refused;
//! - temporary files are removed on error and on a signal
//!   ([`crate::signals`]).

use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Result;
use crate::signals;

/// A file's identity: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    /// The identity of what `path` names (following links), if it exists.
    fn of(path: &Path) -> Option<Self> {
        fs::metadata(path).ok().map(|m| Identity {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// How the target is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A regular file (or nothing yet): temporary file, then rename.
    Replace,
    /// A character device or a FIFO: opened and written in place.
    InPlace,
}

/// An output path that passed the checks made before any work starts; its
/// [`write`](Output::write) makes the checks again when it commits.
#[derive(Debug, Clone)]
pub struct Output {
    path: PathBuf,
    force: bool,
    kind: Kind,
    inputs: Vec<(PathBuf, Identity)>,
}

impl Output {
    /// Checks `path` as an output of a command that reads `inputs`
    /// (paths that do not exist are ignored here: reading them fails later
    /// with its own message).
    pub fn check(path: &Path, force: bool, inputs: &[&Path]) -> Result<Self> {
        let shown = path.display();
        let name = path
            .file_name()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("{shown}: not a file name"))?;
        let inputs: Vec<(PathBuf, Identity)> = inputs
            .iter()
            .filter_map(|p| Identity::of(p).map(|id| (p.to_path_buf(), id)))
            .collect();
        let output = Output {
            path: path.to_path_buf(),
            force,
            kind: Kind::Replace,
            inputs,
        };
        output.refuse_input()?;
        let kind = match fs::symlink_metadata(path) {
            Err(_) => Kind::Replace,
            Ok(_) => {
                // What the path names (a link's target), if anything.
                match fs::metadata(path) {
                    Ok(m) if m.is_dir() => {
                        return Err(format!("{shown}: is a folder; give a file name"));
                    }
                    Ok(m) if m.file_type().is_char_device() || m.file_type().is_fifo() => {
                        Kind::InPlace
                    }
                    Ok(m) if m.file_type().is_block_device() || m.file_type().is_socket() => {
                        return Err(format!(
                            "{shown}: is a block device or a socket; refusing to write to it"
                        ));
                    }
                    _ if !force => {
                        return Err(format!(
                            "{shown}: already exists; pass --force to overwrite it"
                        ));
                    }
                    _ => Kind::Replace,
                }
            }
        };
        if kind == Kind::Replace {
            let dir = folder_of(path);
            match fs::metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(format!("{shown}: {} is not a folder", dir.display())),
                Err(_) => {
                    return Err(format!(
                        "{shown}: the folder {} does not exist",
                        dir.display()
                    ));
                }
            }
            // Probe: the temporary file of the real write goes to the same
            // folder, so this is the permission that matters.
            let probe = temp_name(&dir, name);
            match OpenOptions::new().write(true).create_new(true).open(&probe) {
                Ok(_) => {
                    let _ = fs::remove_file(&probe);
                }
                Err(e) => {
                    return Err(format!(
                        "{shown}: cannot write in the folder {}: {}",
                        dir.display(),
                        one_line(&e.to_string())
                    ));
                }
            }
        }
        Ok(Output { kind, ..output })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the target is written in place (a character device or a
    /// FIFO, such as `/dev/stdout` in a pipe).
    pub fn in_place(&self) -> bool {
        self.kind == Kind::InPlace
    }

    /// Writes the output through `body`: to a temporary file committed by a
    /// rename (regular files), or in place (devices, FIFOs). On any error the
    /// temporary file is removed and the target is untouched.
    pub fn write(&self, body: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
        let failed = |e: io::Error| {
            format!(
                "{}: cannot write: {}",
                self.path.display(),
                one_line(&e.to_string())
            )
        };
        if self.kind == Kind::InPlace {
            let file = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .map_err(failed)?;
            let mut out = BufWriter::new(file);
            return body(&mut out).and_then(|()| out.flush()).map_err(failed);
        }
        self.write_through_file(|tmp| {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(tmp)
                .map_err(failed)?;
            let mut out = BufWriter::new(file);
            body(&mut out)
                .and_then(|()| out.flush())
                .and_then(|()| out.get_ref().sync_all())
                .map_err(failed)
        })
    }

    /// Like [`write`](Output::write) for writers that take a path: `body`
    /// creates the file at the temporary path it is given (same folder, same
    /// extension as the target), which is then committed. A target that is
    /// not a regular file is refused here.
    pub fn write_through_file(&self, body: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        if self.kind == Kind::InPlace {
            return Err(format!(
                "{}: is not a regular file; this output can only be written to a regular file",
                self.path.display()
            ));
        }
        let dir = folder_of(&self.path);
        let name = self.path.file_name().expect("checked in Output::check");
        let mut tmp = temp_name(&dir, name);
        if let Some(ext) = self.path.extension() {
            // `.NAME.tmp-PID-N.EXT`: writers pick the format by extension.
            let mut with_ext = tmp.into_os_string();
            with_ext.push(".");
            with_ext.push(ext);
            tmp = PathBuf::from(with_ext);
        }
        signals::register_temp(tmp.clone());
        let written = body(&tmp);
        let mut temps = signals::lock_temps();
        let committed = written.and_then(|()| self.commit(&tmp));
        let _ = fs::remove_file(&tmp);
        signals::forget_temp(&mut temps, &tmp);
        committed
    }

    /// Writes `bytes`.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.write(|w| w.write_all(bytes))
    }

    /// Moves the finished temporary file into place, checking again what
    /// the target is now.
    fn commit(&self, tmp: &Path) -> Result<()> {
        let shown = self.path.display();
        let failed = |e: io::Error| format!("{shown}: cannot write: {}", one_line(&e.to_string()));
        self.refuse_input()?;
        if fs::symlink_metadata(&self.path).is_ok() {
            if !self.force {
                return Err(format!(
                    "{shown}: appeared while the command ran; not replaced (pass --force to overwrite it)"
                ));
            }
            if let Ok(m) = fs::metadata(&self.path)
                && !m.is_file()
            {
                return Err(format!(
                    "{shown}: is no longer a regular file; not replaced"
                ));
            }
            return fs::rename(tmp, &self.path).map_err(failed);
        }
        // No-replace: a hard link fails if the name exists by now.
        match fs::hard_link(tmp, &self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(format!(
                "{shown}: appeared while the command ran; not replaced (pass --force to overwrite it)"
            )),
            // A file system without hard links: rename (checked just above).
            Err(_) => fs::rename(tmp, &self.path).map_err(failed),
        }
    }

    /// Refuses a target that is one of the inputs.
    fn refuse_input(&self) -> Result<()> {
        let Some(id) = Identity::of(&self.path) else {
            return Ok(());
        };
        match self.inputs.iter().find(|(_, i)| *i == id) {
            Some((input, _)) => Err(format!(
                "{}: is the input {}; choose another output path (an input is never overwritten, not even with --force)",
                self.path.display(),
                input.display()
            )),
            None => Ok(()),
        }
    }
}

/// The folder a path's file goes in (`.` for a bare file name).
fn folder_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// A fresh temporary name beside the target: `.NAME.tmp-PID-N`.
fn temp_name(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Messages stay on one line whatever the OS says.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("normflow-output-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_input_is_never_an_output_even_with_force() {
        let d = dir("input");
        let input = d.join("data.csv");
        fs::write(&input, "1,2\n").unwrap();
        let link = d.join("link.csv");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        for out in [&input, &link] {
            let e = Output::check(out, true, &[&input]).unwrap_err();
            assert!(e.contains("is the input"), "{e}");
        }
        let hard = d.join("hard.csv");
        fs::hard_link(&input, &hard).unwrap();
        assert!(Output::check(&hard, true, &[&input]).is_err());
        assert_eq!(fs::read(&input).unwrap(), b"1,2\n");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn existing_files_need_force_and_appearing_ones_are_kept() {
        let d = dir("exists");
        let out = d.join("model.json");
        fs::write(&out, "mine").unwrap();
        let e = Output::check(&out, false, &[]).unwrap_err();
        assert!(e.contains("already exists; pass --force"), "{e}");
        fs::remove_file(&out).unwrap();
        let guard = Output::check(&out, false, &[]).unwrap();
        // The file appears while the command runs.
        fs::write(&out, "appeared").unwrap();
        let e = guard.write_bytes(b"new").unwrap_err();
        assert!(e.contains("appeared while the command ran"), "{e}");
        assert_eq!(fs::read(&out).unwrap(), b"appeared");
        assert_eq!(entries(&d), vec!["model.json"]);
        // With --force it is replaced.
        Output::check(&out, true, &[])
            .unwrap()
            .write_bytes(b"new")
            .unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"new");
        assert_eq!(entries(&d), vec!["model.json"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn failed_bodies_leave_no_temporary_file_and_no_target() {
        let d = dir("fail");
        let out = d.join("x.csv");
        let guard = Output::check(&out, false, &[]).unwrap();
        let e = guard
            .write(|w| {
                w.write_all(b"half")?;
                Err(io::Error::other("boom"))
            })
            .unwrap_err();
        assert!(e.contains("boom"), "{e}");
        assert!(entries(&d).is_empty(), "{:?}", entries(&d));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_folders_and_folders_as_files_are_refused_before_work() {
        let d = dir("folders");
        let e = Output::check(&d.join("no/such/x.csv"), true, &[]).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        let e = Output::check(&d, true, &[]).unwrap_err();
        assert!(e.contains("is a folder"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn fifos_are_written_in_place_not_replaced() {
        let d = dir("fifo");
        let fifo = d.join("pipe.csv");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !status.is_ok_and(|s| s.success()) {
            return; // no mkfifo on this system
        }
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(&fifo).unwrap())
        };
        Output::check(&fifo, false, &[])
            .unwrap()
            .write_bytes(b"1,2\n")
            .unwrap();
        assert_eq!(reader.join().unwrap(), b"1,2\n");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        fs::remove_dir_all(&d).unwrap();
    }
}

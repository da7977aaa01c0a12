//! Files the tools write are written atomically: a temporary file in the same directory,
//! synced, then renamed over the target, so a crash never leaves a half-written file.
//! Files the tools read back are read only when they are regular files of plausible size,
//! and output paths are proven writable (a probe file created and removed) before any work.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// An output path that cannot be written, or that would overwrite an input or a run's own
/// file: found by the probes before any work. A usage mistake (`trainer` exits with 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// An output file named by a directory.
    #[error("{}: is a directory, expected a file name", .0.display())]
    IsDirectory(PathBuf),
    /// An output file that is a file the command reads (the same device and inode, or the
    /// same path once links are resolved).
    #[error("{}: is {}, which this command reads; write the output elsewhere", .output.display(), .input.display())]
    OutputIsInput {
        /// The output.
        output: PathBuf,
        /// The input it is.
        input: PathBuf,
    },
    /// An output file that is one of a run directory's own files.
    #[error("{}: one of the run directory's own files; write the output elsewhere", .0.display())]
    OutputIsRunFile(PathBuf),
    /// Two outputs of one command name the same file: one would be lost.
    #[error("{} and {} are the same file: one output would be lost", .0.display(), .1.display())]
    SameOutputTwice(PathBuf, PathBuf),
    /// An output file that exists and is not a regular file (a named pipe, a device, a
    /// socket): writing a new file and renaming it over would replace it.
    #[error("{}: {kind}, not a regular file; writing there would replace it", .path.display())]
    NotRegularOutput {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// An output file in a directory that does not exist.
    #[error("{}: the directory {} does not exist", .path.display(), .dir.display())]
    NoDirectory {
        /// The file.
        path: PathBuf,
        /// Its missing directory.
        dir: PathBuf,
    },
    /// An output path where nothing can be written (permissions, a name too long, ...).
    #[error("{}: cannot write there: {reason}", .path.display())]
    NotWritable {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        reason: String,
    },
    /// A run directory named by something that is not a directory.
    #[error("{}: exists and is not a directory", .0.display())]
    NotADirectory(PathBuf),
}

use anyhow::{bail, Context};

/// The prefix of [`write_atomic`]'s temporary files (what a killed process leaves behind).
pub const TEMP_PREFIX: &str = ".tmp-";

/// The file in a run directory whose lock (`flock`) a `trainer fit` holds while it writes
/// the run: a second `fit` into the same directory, fresh or resumed, is refused instead of
/// interleaving epochs with the first and removing its temporary files. The operating
/// system releases the lock when the process ends, however it ends.
pub const LOCK_FILE: &str = ".fit.lock";

/// Whether another `trainer fit` holds the run lock of `dir` ([`LOCK_FILE`]).
pub fn run_locked(dir: &Path) -> bool {
    open_lock(&dir.join(LOCK_FILE), false)
        .is_ok_and(|file| matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
}

/// Opens the lock file `path` (creating it with `create`) without following a symbolic
/// link (one would create its target outside the run directory) and without blocking (a
/// named pipe would block the open forever), and only if it is a regular file.
fn open_lock(path: &Path, create: bool) -> anyhow::Result<std::fs::File> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.is_file() {
            bail!(
                "{}: {}, not the regular file a run's lock is; remove it",
                path.display(),
                file_kind(&meta)
            );
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(create).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options
        .open(path)
        .with_context(|| format!("{}: cannot open the run's lock file", path.display()))?;
    // What was opened, not the name a moment earlier.
    if !file
        .metadata()
        .with_context(|| format!("{}: cannot read", path.display()))?
        .is_file()
    {
        bail!("{}: not a regular file", path.display());
    }
    Ok(file)
}

/// What a file that is not a regular file is, in words.
pub fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a named pipe";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "not a file"
    }
}

/// The run locks this process holds: each run directory (canonical) with its lock file.
static HELD: std::sync::Mutex<Vec<(PathBuf, std::fs::File)>> = std::sync::Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<(PathBuf, std::fs::File)>> {
    HELD.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the run lock of the existing directory `dir` until [`unlock_run`] or the end of
/// this process ([`LOCK_FILE`]); taking it again is a no-op. Fails, naming the directory,
/// if another process holds it.
///
/// A lock is only good on the file that is still the directory's [`LOCK_FILE`]: the
/// process before may have removed it (as [`unlock_run`] does, while still holding it)
/// between our open and our lock, leaving us the lock of a removed file, which a third
/// process creating the name anew would not see. Then the name is opened again.
pub fn lock_run(dir: &Path) -> anyhow::Result<()> {
    let key = dir
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve the run directory", dir.display()))?;
    let mut held = held();
    if held.iter().any(|(path, _)| *path == key) {
        return Ok(());
    }
    let path = dir.join(LOCK_FILE);
    for _ in 0..100 {
        let file = open_lock(&path, true)?;
        match file.try_lock() {
            Ok(()) if is_named(&file, &path) => {
                held.push((key, file));
                return Ok(());
            }
            // Removed or replaced by the process that held it: open the name again.
            Ok(()) => continue,
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{}: another `trainer fit` is writing this run directory (it holds \
                 {LOCK_FILE}); wait for it to end, or give another --out",
                dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("{}: cannot lock", path.display()))
            }
        }
    }
    bail!(
        "{}: removed again every time it was locked; is another process removing it?",
        path.display()
    )
}

/// Whether the open `file` is what `path` names now (the same device and inode).
fn is_named(file: &std::fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// Releases the run lock of `dir` if this process holds it ([`lock_run`]), removing the
/// lock file first, while the lock is still held, so that a finished run's directory
/// holds only the run's files; a `fit` that opened the file before it was removed opens
/// the name again ([`lock_run`]). A lock file that is no longer the one locked (replaced
/// by hand) is left alone.
pub fn unlock_run(dir: &Path) {
    let Ok(key) = dir.canonicalize() else {
        return;
    };
    let mut held = held();
    if let Some(index) = held.iter().position(|(path, _)| *path == key) {
        let (dir, file) = held.swap_remove(index);
        release(&dir, file);
    }
}

/// [`unlock_run`] for every run lock this process holds: what `trainer fit` does when it
/// ends, however it ends (short of being killed, when the operating system releases the
/// lock and the file stays, to be taken over by the next `fit`).
pub fn unlock_runs() {
    for (dir, file) in held().drain(..) {
        release(&dir, file);
    }
}

/// Removes the lock file of `dir` if it is `file`, then releases the lock (closing it).
fn release(dir: &Path, file: std::fs::File) {
    let path = dir.join(LOCK_FILE);
    if is_named(&file, &path) {
        let _ = std::fs::remove_file(&path);
    }
    drop(file);
}

/// Where `fit --force` sets the files of the run it replaces aside (inside the run
/// directory) until the new run's first epoch is saved.
pub const SET_ASIDE_DIR: &str = ".replaced";

/// Moves the files `names` of the run in `dir` into [`SET_ASIDE_DIR`], from where
/// [`put_back`] restores them if the new run saves nothing, and [`drop_set_aside`]
/// removes them once it has saved an epoch.
pub fn set_aside(dir: &Path, names: &[&str]) -> anyhow::Result<()> {
    let aside = dir.join(SET_ASIDE_DIR);
    std::fs::create_dir(&aside)
        .with_context(|| format!("{}: cannot set the old run aside", aside.display()))?;
    for name in names {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::rename(&path, aside.join(name))
                .with_context(|| format!("{}: cannot set it aside", path.display()))?;
        }
    }
    Ok(())
}

/// Restores the files [`set_aside`] moved, if any (a replacing run saved nothing, or was
/// killed before it did): the run directory holds the old run again.
pub fn put_back(dir: &Path) -> anyhow::Result<()> {
    let aside = dir.join(SET_ASIDE_DIR);
    let Ok(entries) = std::fs::read_dir(&aside) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("{}: cannot read", aside.display()))?;
        let back = dir.join(entry.file_name());
        std::fs::rename(entry.path(), &back)
            .with_context(|| format!("{}: cannot put the old run back", back.display()))?;
    }
    std::fs::remove_dir(&aside).with_context(|| format!("{}: cannot remove", aside.display()))
}

/// Removes the files [`set_aside`] moved: the replacing run has saved an epoch.
pub fn drop_set_aside(dir: &Path) -> anyhow::Result<()> {
    let aside = dir.join(SET_ASIDE_DIR);
    if std::fs::symlink_metadata(&aside).is_ok() {
        std::fs::remove_dir_all(&aside)
            .with_context(|| format!("{}: cannot remove the replaced run", aside.display()))?;
    }
    Ok(())
}

/// Undoes a run that saved nothing in `dir`: removes its lock file ([`LOCK_FILE`]), then
/// the directories [`probe_dir`] created for it (`created`).
pub fn remove_unsaved_run(dir: &Path, created: &[PathBuf]) {
    let _ = std::fs::remove_file(dir.join(LOCK_FILE));
    remove_created(created);
}

/// Writes a file the user named (an export, `--logits`, a calibrated file) atomically, as
/// [`write_atomic`] does, except that a symbolic link is written through (its target
/// replaced, the link kept, as a shell redirection would), an existing file keeps its
/// permissions (a read-only blob stays read-only), and a named pipe, device or socket is
/// refused, never replaced.
pub fn write_output(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let resolved;
    let path = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            resolved = std::fs::canonicalize(path).with_context(|| {
                format!(
                    "{}: a symbolic link whose target cannot be resolved",
                    path.display()
                )
            })?;
            resolved.as_path()
        }
        _ => path,
    };
    let existing = std::fs::metadata(path).ok();
    if let Some(meta) = &existing {
        if !meta.is_file() {
            bail!(
                "{}: {}, not a regular file; writing there would replace it",
                path.display(),
                file_kind(meta)
            );
        }
    }
    write_file(path, bytes, existing.map(|meta| meta.permissions()))
}

/// Writes a run directory's own file (`model.mpk`, `run.json`, ...) atomically, creating
/// the parent directory if needed: whatever is at `path` (a link or a pipe left there is
/// damage the run repairs) is replaced by a regular file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_file(path, bytes, None)
}

/// A temporary file beside `path`, synced, renamed over it; `permissions` or 0644.
fn write_file(
    path: &Path,
    bytes: &[u8],
    permissions: Option<std::fs::Permissions>,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the directory", dir.display()))?;
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
    // tempfile creates 0600; the tools' outputs are ordinary files, and a file replaced
    // keeps the permissions it had.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let permissions = permissions.unwrap_or_else(|| std::fs::Permissions::from_mode(0o644));
        temp.as_file()
            .set_permissions(permissions)
            .with_context(|| format!("{}: cannot set permissions", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = permissions;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("{}: cannot write", path.display()))?;
    temp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("{}: cannot replace the file", path.display()))?;
    Ok(())
}

/// Reads `path` whole if it is a regular file (following symbolic links) of at most `max`
/// bytes: a named pipe would block, a device (a link to `/dev/zero`) read without end.
pub fn read_regular(path: &Path, max: u64) -> anyhow::Result<Vec<u8>> {
    fmnist_runtime::dataset::regular_file(path)?;
    let mut file = fmnist_runtime::dataset::open_checked(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    // What was opened, not what the name pointed to a moment ago.
    let metadata = file
        .metadata()
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if !metadata.is_file() {
        bail!("{}: not a regular file", path.display());
    }
    if metadata.len() > max {
        bail!(
            "{}: {} bytes, more than the {max} such a file can have",
            path.display(),
            metadata.len()
        );
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    (&mut file)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if bytes.len() as u64 > max {
        bail!("{}: grew past {max} bytes while read", path.display());
    }
    Ok(bytes)
}

/// What identifies a file: its canonical path (links resolved; for a file not yet there,
/// its directory's canonical path and its name), and its device and inode when it exists.
fn identity(path: &Path) -> (Option<PathBuf>, Option<(u64, u64)>) {
    let canonical = std::fs::canonicalize(path).ok().or_else(|| {
        let name = path.file_name()?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        Some(std::fs::canonicalize(dir).ok()?.join(name))
    });
    #[cfg(unix)]
    let inode = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    };
    #[cfg(not(unix))]
    let inode = None;
    (canonical, inode)
}

fn same_file(a: &Path, b: &Path) -> bool {
    let ((path_a, inode_a), (path_b, inode_b)) = (identity(a), identity(b));
    (inode_a.is_some() && inode_a == inode_b) || (path_a.is_some() && path_a == path_b)
}

/// Refuses, before any work, outputs that would destroy what the command reads or what a
/// run holds: an output that is one of `inputs` (the same file, links and hard links
/// included), one of the files of the run directory `run` (the names given, and its lock),
/// or the same file as another output.
pub fn check_outputs(
    outputs: &[&Path],
    inputs: &[&Path],
    run: Option<(&Path, &[&str])>,
) -> Result<(), FileError> {
    for (i, output) in outputs.iter().enumerate() {
        if let Some(input) = inputs.iter().find(|input| same_file(output, input)) {
            return Err(FileError::OutputIsInput {
                output: output.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
        if let Some((dir, files)) = run {
            let mut own = files.iter().chain(&[LOCK_FILE]);
            if own.any(|name| same_file(output, &dir.join(name))) {
                return Err(FileError::OutputIsRunFile(output.to_path_buf()));
            }
        }
        if let Some(other) = outputs[..i].iter().find(|other| same_file(output, other)) {
            return Err(FileError::SameOutputTwice(
                other.to_path_buf(),
                output.to_path_buf(),
            ));
        }
    }
    Ok(())
}

/// Proves that a file can be written at `path` (as [`write_atomic`] writes it) without
/// writing it: `path` is not a directory, its directory exists, a temporary file can be
/// created in it, and (when `path` does not exist yet) a file of that very name can be
/// created. Everything created is removed.
pub fn probe_file(path: &Path) -> Result<(), FileError> {
    if path.is_dir() {
        return Err(FileError::IsDirectory(path.to_path_buf()));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(FileError::NoDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    let not_writable = |error: std::io::Error| FileError::NotWritable {
        path: path.to_path_buf(),
        reason: os_reason(error),
    };
    probe_in(dir).map_err(not_writable)?;
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(FileError::NotRegularOutput {
                path: path.to_path_buf(),
                kind: file_kind(&meta),
            });
        }
    }
    if std::fs::symlink_metadata(path).is_err() {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(not_writable)?;
        std::fs::remove_file(path).map_err(not_writable)?;
    }
    Ok(())
}

/// Proves that the run directory `dir` can be written: creates it if needed and a probe
/// file in it. Returns the directories it created (outermost first), which
/// [`remove_created`] takes away again if the run ends before writing anything.
pub fn probe_dir(dir: &Path) -> Result<Vec<PathBuf>, FileError> {
    let not_writable = |error: std::io::Error| FileError::NotWritable {
        path: dir.to_path_buf(),
        reason: os_reason(error),
    };
    if let Ok(metadata) = std::fs::metadata(dir) {
        if !metadata.is_dir() {
            return Err(FileError::NotADirectory(dir.to_path_buf()));
        }
        probe_in(dir).map_err(not_writable)?;
        return Ok(Vec::new());
    }
    let mut created: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && std::fs::symlink_metadata(a).is_err())
        .map(Path::to_path_buf)
        .collect();
    created.reverse();
    std::fs::create_dir_all(dir).map_err(not_writable)?;
    if let Err(error) = probe_in(dir) {
        remove_created(&created);
        return Err(not_writable(error));
    }
    Ok(created)
}

/// Removes the directories [`probe_dir`] created, innermost first, as long as they are
/// empty.
pub fn remove_created(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
    }
}

/// What the operating system said, without the probe's temporary name.
fn os_reason(error: std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => error.to_string(),
    }
}

fn probe_in(dir: &Path) -> std::io::Result<()> {
    let mut probe = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    probe.write_all(b"probe")?;
    probe.close()
}

/// Removes the temporary files a killed [`write_atomic`] left in `dir` (regular files
/// named `.tmp-*`); returns how many.
pub fn remove_temporaries(dir: &Path) -> anyhow::Result<usize> {
    let mut removed = 0;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?;
    for entry in entries.flatten() {
        let is_temp = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(TEMP_PREFIX));
        if is_temp && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path()).with_context(|| {
                format!(
                    "{}: cannot remove the temporary file",
                    entry.path().display()
                )
            })?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_directory_locked_elsewhere_is_refused_and_seen_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!run_locked(dir.path()));
        // Another process's lock: an open file description of its own.
        let other = std::fs::File::create(dir.path().join(LOCK_FILE)).unwrap();
        other.lock().unwrap();
        assert!(run_locked(dir.path()));
        let error = format!("{:#}", lock_run(dir.path()).unwrap_err());
        assert!(
            error.contains("another `trainer fit` is writing this run directory"),
            "{error}"
        );
        assert!(error.contains(&dir.path().display().to_string()), "{error}");
        drop(other);
        assert!(!run_locked(dir.path()));
        lock_run(dir.path()).unwrap();
        // Held by this process now: taking it again is a no-op, and others see it.
        lock_run(dir.path()).unwrap();
        assert!(run_locked(dir.path()));
    }

    #[test]
    fn unlocking_removes_the_lock_file_and_the_run_can_be_locked_again() {
        let dir = tempfile::tempdir().unwrap();
        // A stale lock file, left by a killed run: taken over.
        std::fs::File::create(dir.path().join(LOCK_FILE)).unwrap();
        lock_run(dir.path()).unwrap();
        assert!(run_locked(dir.path()));
        unlock_run(dir.path());
        assert!(!dir.path().join(LOCK_FILE).exists(), "the lock file stays");
        assert!(!run_locked(dir.path()));
        // Taken again (a new file), then held by this process until it is released.
        lock_run(dir.path()).unwrap();
        assert!(dir.path().join(LOCK_FILE).exists());
        assert!(run_locked(dir.path()));
        // A lock file replaced by hand is not this process's to remove.
        std::fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), b"someone else's").unwrap();
        unlock_run(dir.path());
        assert_eq!(
            std::fs::read(dir.path().join(LOCK_FILE)).unwrap(),
            b"someone else's"
        );
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn reads_only_regular_files_of_plausible_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_regular(&path, 5).unwrap(), b"12345");
        let error = read_regular(&path, 4).unwrap_err().to_string();
        assert!(error.contains("more than the 4"), "{error}");
        let error = read_regular(dir.path(), 100).unwrap_err().to_string();
        assert!(error.contains("a directory"), "{error}");
        #[cfg(unix)]
        {
            let link = dir.path().join("zero");
            std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
            let error = read_regular(&link, 100).unwrap_err().to_string();
            assert!(error.contains("a device"), "{error}");
        }
    }

    #[test]
    fn probes_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.onnx");
        probe_file(&file).unwrap();
        let run = dir.path().join("a/b");
        let created = probe_dir(&run).unwrap();
        assert_eq!(created, [dir.path().join("a"), run.clone()]);
        assert!(run.is_dir());
        remove_created(&created);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let long = dir.path().join("x".repeat(300));
        assert!(probe_file(&long).is_err());
        assert!(probe_dir(&long).is_err());
        std::fs::write(&file, b"").unwrap();
        assert!(probe_dir(&file).is_err());
        std::fs::write(dir.path().join(".tmp-abc"), b"left").unwrap();
        assert_eq!(remove_temporaries(dir.path()).unwrap(), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

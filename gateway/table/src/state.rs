//! Files in shared memory that outlive the gateway: each worker's flow journal
//! (`sluice_lb::journal`), written by one gateway and read by the next.
//!
//! A [`StateFile`] is created fresh, sized, locked (`flock`, exclusive: released by the kernel
//! when the process ends, SIGKILL included) and mapped shared; the worker writes its journal
//! into it. The next gateway finds the file with [`previous`], takes the lock — which tells it
//! the old gateway is gone: a lock still held means a gateway still runs, and the file is
//! refused after a short wait — and reads it with `pread`, never through a mapping: a file
//! truncated under it gives a short read, not a SIGBUS. What it reads is checked record by
//! record by the journal's decoder.
//!
//! The file is opened as the table file is (`O_NOFOLLOW`, a regular file of ours, mode 0600) and
//! its mapping is registered for SIGBUS containment: if it is truncated while we write, the
//! mapping turns into private zeros and [`StateFile::lost`] says so; the gateway goes on
//! forwarding, without a journal.
//!
//! Unsafe: yes — a slice over the shared mapping (see [`StateFile::as_mut`]).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memmap2::MmapRaw;

use crate::shm::{OpenError, io_err, open_checked};
use crate::sigbus::Registration;

/// A state file this process writes: mapped, locked.
#[derive(Debug)]
pub struct StateFile {
    // Declared before `map`: unregistered before it is unmapped.
    registration: Registration,
    map: MmapRaw,
    _file: File,
    path: PathBuf,
}

impl StateFile {
    /// Creates a file of `len` zero bytes at `path` (one left there by a gateway that died
    /// before it finished starting is replaced), locks it and maps it.
    pub fn create(path: &Path, len: usize) -> Result<StateFile, OpenError> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path)(e)),
        }
        let (file, _) = open_checked(path, true)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::WriterBusy { path: path.to_owned() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(path)(e)),
        }
        file.set_len(len as u64).map_err(io_err(path))?;
        let map = MmapRaw::map_raw(&file).map_err(io_err(path))?;
        let registration = Registration::new(map.as_ptr(), map.len());
        Ok(StateFile { registration, map, _file: file, path: path.to_owned() })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file was truncated under its mapping: what is written since goes to private
    /// memory and nobody will read it.
    pub fn lost(&self) -> bool {
        self.registration.hit()
    }
}

impl AsMut<[u8]> for StateFile {
    fn as_mut(&mut self) -> &mut [u8] {
        // The mapping spans `map.len()` bytes and lives as long as `self`; `&mut self` makes this
        // the only slice of it in this process, and the exclusive lock keeps every other gateway
        // out (a process ignoring the lock could change bytes we only ever write, never read
        // back to decide anything). A truncation under it is contained by `sigbus`, which swaps
        // the pages for private zeros in place: the slice stays valid.
        // SAFETY: valid for `len` bytes, not aliased in this process, alive while borrowed.
        unsafe { core::slice::from_raw_parts_mut(self.map.as_mut_ptr(), self.map.len()) }
    }
}

/// A state file a previous gateway left, locked for reading.
#[derive(Debug)]
pub struct PreviousFile {
    file: File,
    path: PathBuf,
}

impl PreviousFile {
    /// Its length now.
    pub fn len(&self) -> u64 {
        self.file.metadata().map_or(0, |m| m.len())
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads up to `buf.len()` bytes at `offset` (fewer at the end of the file).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, OpenError> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(&self.path)(e)),
            }
        }
        Ok(done)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The state file at `path`, if there is one, without waiting for its lock: for a file whose
/// contents never change once written (the SYN cookie key), which a gateway still running (an
/// upgrade's old one) may share. Checked as [`previous`] checks it.
pub fn read_only(path: &Path) -> Result<Option<PreviousFile>, OpenError> {
    match open_checked(path, false) {
        Ok((file, _)) => Ok(Some(PreviousFile { file, path: path.to_owned() })),
        Err(OpenError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The state file at `path`, if there is one, once no process holds its lock: `Ok(None)` when
/// there is no file. A gateway still running holds it; this waits up to `wait` for it to end
/// (an upgrade: the old gateway is stopping), then refuses with [`OpenError::WriterBusy`].
pub fn previous(path: &Path, wait: Duration) -> Result<Option<PreviousFile>, OpenError> {
    let (file, _) = match open_checked(path, false) {
        Ok(f) => f,
        Err(OpenError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(PreviousFile { file, path: path.to_owned() })),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::WriterBusy { path: path.to_owned() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sluice-state-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn what_one_writes_the_next_reads_once_the_first_is_gone() {
        let d = dir();
        let p = d.join("flows");
        assert!(previous(&p, Duration::ZERO).unwrap().is_none());
        let mut f = StateFile::create(&p, 8192).unwrap();
        f.as_mut()[100..105].copy_from_slice(b"hello");
        // Held: a second reader waits, then is refused.
        assert!(matches!(previous(&p, Duration::from_millis(50)), Err(OpenError::WriterBusy { .. })));
        drop(f);
        let prev = previous(&p, Duration::ZERO).unwrap().unwrap();
        assert_eq!(prev.len(), 8192);
        let mut b = [0u8; 5];
        assert_eq!(prev.read_at(&mut b, 100).unwrap(), 5);
        assert_eq!(&b, b"hello");
        assert_eq!(prev.read_at(&mut b, 8190).unwrap(), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_link_or_a_loose_file_is_refused() {
        let d = dir();
        let p = d.join("flows");
        std::os::unix::fs::symlink("/etc/passwd", &p).unwrap();
        assert!(matches!(previous(&p, Duration::ZERO), Err(OpenError::Symlink { .. })));
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"x").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(previous(&p, Duration::ZERO), Err(OpenError::Mode { .. })));
        std::fs::remove_dir_all(&d).unwrap();
    }
}

//! [`SmallDisk`]: a tmpfs of a few mebibytes mounted on a new temporary directory, to fill up
//! (disk full) and free again, unmounted on drop even when the test panics.

use std::path::{Path, PathBuf};

use crate::{require_root, run};

/// A small tmpfs on a temporary directory.
pub struct SmallDisk {
    dir: tempfile::TempDir,
    filler: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `mebibytes` MiB.
    pub fn mount(mebibytes: u32) -> SmallDisk {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_owned();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mebibytes}m,mode=0755"),
                "crmonban-test",
                &path,
            ],
        );
        let filler = dir.path().join("filler");
        SmallDisk { dir, filler }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills every free byte with a file of its own.
    pub fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .unwrap();
        let block = vec![0u8; 64 * 1024];
        let mut small = false;
        loop {
            let chunk = if small { &block[..512] } else { &block[..] };
            match file.write(chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && !small => small = true,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", self.filler.display()),
            }
        }
        let _ = file.sync_all();
    }

    /// Frees what [`SmallDisk::fill`] took.
    pub fn free(&self) {
        let _ = std::fs::remove_file(&self.filler);
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let path = self.dir.path().to_str().unwrap_or_default().to_owned();
        // Lazy: a file still open (a daemon being stopped) must not keep the mount.
        let _ = std::process::Command::new("umount")
            .args(["-l", &path])
            .status();
    }
}

//! Files that must outlive a power cut. `File::sync_all` puts a file's bytes
//! on the disk; the name that leads to it lives in its directory, which is
//! synced on its own.

use std::path::Path;

/// Syncs the directory that holds `path`, so that a file created or renamed
/// there keeps its name after a power cut.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
}

/// Writes `bytes` as `path` so that after a power cut the file is whole or
/// absent: under a temporary name beside it, synced, renamed, the directory
/// synced.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_parent(path)
}

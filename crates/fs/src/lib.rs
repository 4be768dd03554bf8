//! strongroom-fs: files read straight out of a disk image, with no mount and
//! no AWS.
//!
//! A [`BlockSource`] is a read-only disk (a local image, or an EBS snapshot
//! through the EBS direct APIs in `strongroom-aws`). [`open`] reads its
//! partition table (GPT, MBR or none), recognises the filesystem and returns
//! a [`Filesystem`]: ext2/3/4 (`ext4-view`), xfs (`lamxfs`) or NTFS
//! (`ntfs`), each reading only the blocks the asked paths need. [`walk`]
//! expands paths and globs; [`local`] writes what they name to a folder.

pub mod detect;
pub mod error;
mod ext4;
pub mod local;
mod ntfs;
pub mod partition;
pub mod source;
pub mod walk;
mod xfs;

use std::sync::Arc;

use serde::Serialize;

pub use detect::Content;
pub use error::{FsError, Result, SourceError};
pub use partition::{Partition, Table, TableKind};
pub use source::{
    BlockFetch, BlockSource, CacheLimits, CachedSource, ImageFile, MemoryDisk, Slice, SourceStats,
};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A device, FIFO, socket or reparse point: listed, never restored.
    Other,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "a regular file",
            Kind::Dir => "a directory",
            Kind::Symlink => "a symbolic link",
            Kind::Other => "a special file",
        }
    }
}

/// A point in time as the filesystem stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Time {
    /// Seconds since the Unix epoch (negative before 1970).
    pub seconds: i64,
    pub nanoseconds: u32,
}

/// One file, directory or link, as a listing or `stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Absolute path from the filesystem's root, `/`-separated.
    pub path: String,
    pub kind: Kind,
    /// Bytes (for a symlink: its target's length).
    pub size: u64,
    /// Permission bits (`0o7777`), where the filesystem keeps them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified: Option<Time>,
    /// The inode (ext, xfs) or MFT record (NTFS), where the reader tells it:
    /// equal for hard links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
}

impl Entry {
    /// The last path component (`/` for the root).
    pub fn name(&self) -> &str {
        match self.path.rsplit_once('/') {
            Some((_, "")) | None => "/",
            Some((_, name)) => name,
        }
    }
}

/// A read-only filesystem. Paths are absolute, `/`-separated, normalised by
/// [`normalize`]; a symlink as the last component is not followed.
pub trait Filesystem {
    /// `ext4`, `xfs`, `ntfs`.
    fn kind(&self) -> &'static str;
    /// The entry at `path`.
    fn stat(&mut self, path: &str) -> Result<Entry>;
    /// The entries of the directory at `path` (not `.` or `..`), sorted by name.
    fn list(&mut self, path: &str) -> Result<Vec<Entry>>;
    /// The target of the symlink at `path`.
    fn read_link(&mut self, path: &str) -> Result<String>;
    /// Streams the bytes `start..end` (clamped to the file's size) of the
    /// regular file at `path` to `sink`, in pieces of at most 1 MiB, in
    /// order; returns how many bytes were streamed. Holes arrive as zeros.
    fn read(
        &mut self,
        path: &str,
        start: u64,
        end: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64>;
}

/// Size of the pieces [`Filesystem::read`] streams.
pub const CHUNK: usize = 1 << 20;

/// Most components a path may have (a bound on work, not a filesystem limit).
pub const MAX_DEPTH: usize = 1024;

/// Normalises a path: absolute, `/`-separated, no empty, `.` or `..`
/// components (`..` stops at the root). Refuses NUL and over-long paths.
pub fn normalize(path: &str) -> Result<String> {
    if path.contains('\0') {
        return Err(FsError::InvalidInput(format!(
            "path {path:?} contains a NUL character"
        )));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.len() > MAX_DEPTH || path.len() > 64 * 1024 {
        return Err(FsError::InvalidInput(format!(
            "path {:?}... is deeper than {MAX_DEPTH} components or longer than 64 KiB",
            &path[..path.len().min(80)]
        )));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The disk, where on it the filesystem is, and the filesystem.
pub struct Opened {
    pub fs: Box<dyn Filesystem>,
    /// What was found on the volume read.
    pub content: Content,
    pub table: TableKind,
    /// The partition read (`None`: the whole disk).
    pub partition: Option<Partition>,
}

/// Opens the filesystem on `disk`: the partition numbered `partition`, or,
/// without one, the whole disk when it has no table, else the one partition
/// that holds a filesystem Strongroom reads (several: the caller must
/// choose, and the error lists them).
pub fn open(disk: Arc<dyn BlockSource>, partition: Option<u32>) -> Result<Opened> {
    let table = partition::read_table(disk.as_ref())?;
    let volume = |p: &Partition| -> Result<Arc<dyn BlockSource>> {
        Ok(Arc::new(Slice::new(disk.clone(), p.start, p.size)?))
    };
    let (source, chosen): (Arc<dyn BlockSource>, Option<Partition>) = match (partition, table.kind) {
        (Some(n), TableKind::None) => {
            return Err(FsError::InvalidInput(format!(
                "partition {n} was asked for, but the disk has no partition table (omit the partition to read the whole disk)"
            )))
        }
        (Some(n), _) => match table.partitions.iter().find(|p| p.number == n) {
            Some(p) => (volume(p)?, Some(p.clone())),
            None => {
                return Err(FsError::InvalidInput(format!(
                    "the disk has no partition {n}; its partitions are {}",
                    describe_partitions(&table.partitions)
                )))
            }
        },
        (None, TableKind::None) => (disk.clone(), None),
        (None, _) => {
            let mut readable = Vec::new();
            let mut seen = Vec::new();
            for p in &table.partitions {
                let content = detect::detect(volume(p)?.as_ref())?;
                seen.push(format!("{} ({})", p.number, content.describe()));
                if content.readable() {
                    readable.push(p.clone());
                }
            }
            match readable.as_slice() {
                [one] => (volume(one)?, Some(one.clone())),
                [] => {
                    return Err(FsError::Unsupported(format!(
                        "no partition of the disk holds a filesystem Strongroom reads (ext2/3/4, xfs, NTFS): {}",
                        if seen.is_empty() { "the table is empty".to_string() } else { seen.join(", ") }
                    )))
                }
                many => {
                    return Err(FsError::InvalidInput(format!(
                        "the disk has {} partitions with filesystems: {}; choose one with the partition number",
                        many.len(),
                        describe_partitions(many)
                    )))
                }
            }
        }
    };
    let content = detect::detect(source.as_ref())?;
    let where_ = match &chosen {
        Some(p) => format!("partition {}", p.number),
        None => "the disk".to_string(),
    };
    let fs: Box<dyn Filesystem> = match &content {
        Content::Ext(_) => Box::new(ext4::Ext4Fs::open(source)?),
        Content::Xfs => Box::new(xfs::XfsFs::open(source)?),
        Content::Ntfs => Box::new(ntfs::NtfsFs::open(source)?),
        other => {
            return Err(FsError::Unsupported(format!(
                "{where_} holds {}; Strongroom reads ext2/3/4, xfs and NTFS",
                other.describe()
            )))
        }
    };
    Ok(Opened {
        fs,
        content,
        table: table.kind,
        partition: chosen,
    })
}

fn describe_partitions(partitions: &[Partition]) -> String {
    partitions
        .iter()
        .map(|p| format!("{} ({}, {} MiB)", p.number, p.kind, p.size >> 20))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The path of `name` in the directory `dir`.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// A directory entry's name as Strongroom names paths: `None` for `.` and
/// `..`; a name that is not UTF-8, or that holds `/` or NUL, is refused,
/// naming its directory.
pub(crate) fn entry_name(dir: &str, raw: &[u8]) -> Result<Option<String>> {
    match std::str::from_utf8(raw) {
        Ok(".") | Ok("..") => Ok(None),
        // Only a damaged directory holds such a name: it would name another path.
        Ok(n) if n.is_empty() || n.contains(['/', '\0']) => Err(FsError::Corrupt {
            path: dir.to_string(),
            detail: format!("an entry is named {n:?}"),
        }),
        Ok(n) => Ok(Some(n.to_string())),
        Err(_) => Err(FsError::Unsupported(format!(
            "{dir} holds an entry whose name is not UTF-8 ({}), which Strongroom cannot name",
            String::from_utf8_lossy(raw)
        ))),
    }
}

/// Maps a reader's own error at `path`: what it could not find is
/// `NotFound`, what it could not read from the disk is `Source`, the rest is
/// damage or an unsupported feature.
pub(crate) fn corrupt(path: &str, detail: impl std::fmt::Display) -> FsError {
    FsError::Corrupt {
        path: path.to_string(),
        detail: detail.to_string(),
    }
}

/// Remembers the disk's last error, so that a reader's opaque I/O error can
/// be reported as what the disk said.
#[derive(Clone, Default)]
pub(crate) struct LastError(Arc<std::sync::Mutex<Option<SourceError>>>);

impl LastError {
    pub(crate) fn set(&self, e: SourceError) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
    pub(crate) fn take(&self) -> Option<SourceError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalize("").unwrap(), "/");
        assert_eq!(normalize("a//b/./c/").unwrap(), "/a/b/c");
        assert_eq!(normalize("/../a/../../b").unwrap(), "/b");
        assert!(normalize("a\0b").is_err());
        assert!(normalize(&"a/".repeat(2000)).is_err());
    }
}

//! xfs through `lamxfs` (v4 and v5, B+tree extent maps, all directory
//! forms, log replay in memory). `lamxfs` keeps neither owners nor times in
//! its metadata, so this module reads them from the inode core itself.

use std::sync::Arc;

use lamxfs::{BlockRead, EntryKind, Error as XfsError, Inode, Path, Xfs};

use crate::error::{FsError, Result, SourceError};
use crate::source::BlockSource;
use crate::{corrupt, entry_name, join, Entry, Filesystem, Kind, LastError, Time, CHUNK};

struct Reader {
    src: Arc<dyn BlockSource>,
    last: LastError,
}

impl BlockRead for Reader {
    type Error = SourceError;
    fn read_at(
        &mut self,
        offset_bytes: u64,
        buf: &mut [u8],
    ) -> std::result::Result<(), SourceError> {
        self.src
            .read_at(offset_bytes, buf)
            .inspect_err(|e| self.last.set(e.clone()))
    }
}

/// The superblock fields that place an inode on the disk.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    blocksize: u64,
    agblocks: u64,
    inodesize: u64,
    inopblog: u32,
    agblklog: u32,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub(crate) struct XfsFs {
    fs: Xfs<Reader>,
    src: Arc<dyn BlockSource>,
    geometry: Geometry,
    last: LastError,
}

impl XfsFs {
    pub(crate) fn open(src: Arc<dyn BlockSource>) -> Result<Self> {
        let last = LastError::default();
        let mut sb = [0u8; 512];
        src.read_at(0, &mut sb).map_err(|source| FsError::Source {
            path: "/".into(),
            source,
        })?;
        let geometry = Geometry {
            blocksize: u64::from(be32(&sb, 4)),
            agblocks: u64::from(be32(&sb, 84)),
            inodesize: u64::from(be16(&sb, 104)),
            inopblog: u32::from(sb[123]),
            agblklog: u32::from(sb[124]),
        };
        let reader = Reader {
            src: src.clone(),
            last: last.clone(),
        };
        let fs = Xfs::open(reader, src.size()).map_err(|e| map(&last, "/", e))?;
        Ok(Self {
            fs,
            src,
            geometry,
            last,
        })
    }

    fn err(&self, path: &str, e: XfsError) -> FsError {
        map(&self.last, path, e)
    }

    fn resolve(&mut self, path: &str) -> Result<Inode> {
        self.fs
            .resolve(Path::new(path.as_bytes()))
            .map_err(|e| map(&self.last, path, e))
    }

    /// Owner, group, permissions and modification time from the inode core
    /// (`xfs_dinode`: mode at 2, uid at 8, gid at 12, mtime at 40; a v3
    /// inode with the bigtime flag in `di_flags2` at 120 keeps nanoseconds
    /// since 1901-12-13T20:45:52Z, else seconds and nanoseconds as two
    /// 32-bit fields). `None` when the inode is not where the superblock
    /// says or has no inode magic: the entry is then listed without them.
    fn core(&self, ino: u64) -> Option<(u32, u32, u32, Time)> {
        let g = self.geometry;
        let shift = g.agblklog.checked_add(g.inopblog)?;
        if shift >= 64 || g.inodesize < 100 || g.inodesize > 2048 {
            return None;
        }
        let agno = ino >> shift;
        let agino = ino & ((1u64 << shift) - 1);
        let agbno = agino >> g.inopblog;
        let slot = agino & ((1u64 << g.inopblog) - 1);
        let offset = agno
            .checked_mul(g.agblocks)?
            .checked_add(agbno)?
            .checked_mul(g.blocksize)?
            .checked_add(slot.checked_mul(g.inodesize)?)?;
        let mut b = vec![0u8; g.inodesize as usize];
        self.src.read_at(offset, &mut b).ok()?;
        if &b[0..2] != b"IN" {
            return None;
        }
        let mode = u32::from(be16(&b, 2)) & 0o7777;
        let (uid, gid) = (be32(&b, 8), be32(&b, 12));
        let bigtime = b[4] >= 3 && b.len() >= 128 && be64(&b, 120) & (1 << 3) != 0;
        let modified = if bigtime {
            let ns = be64(&b, 40);
            Time {
                seconds: (ns / 1_000_000_000) as i64 - (1i64 << 31),
                nanoseconds: (ns % 1_000_000_000) as u32,
            }
        } else {
            Time {
                seconds: i64::from(be32(&b, 40) as i32),
                nanoseconds: be32(&b, 44).min(999_999_999),
            }
        };
        Some((mode, uid, gid, modified))
    }

    fn entry(&mut self, path: String, inode: Inode) -> Result<Entry> {
        let m = self.fs.metadata(&inode).map_err(|e| self.err(&path, e))?;
        let kind = if m.is_file() {
            Kind::File
        } else if m.is_dir() {
            Kind::Dir
        } else if m.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Other
        };
        let core = self.core(inode.ino);
        Ok(Entry {
            path,
            kind,
            size: m.size(),
            mode: Some(core.map_or(m.mode() & 0o7777, |c| c.0)),
            uid: core.map(|c| c.1),
            gid: core.map(|c| c.2),
            modified: core.map(|c| c.3),
            inode: Some(inode.ino),
        })
    }
}

fn map(last: &LastError, path: &str, e: XfsError) -> FsError {
    match e {
        XfsError::NotFound { .. } => FsError::NotFound { path: path.into() },
        XfsError::NotARegularFile => FsError::NotAFile {
            path: path.into(),
            kind: "not a regular file",
        },
        XfsError::NotASymlink => FsError::InvalidInput(format!("{path} is not a symbolic link")),
        XfsError::Io { .. } => FsError::Source {
            path: path.into(),
            source: last
                .take()
                .unwrap_or_else(|| SourceError::Other(format!("{e:?}"))),
        },
        XfsError::UnsupportedFeature(what) => FsError::Unsupported(format!(
            "{path}: the xfs filesystem uses a feature Strongroom cannot read: {what}"
        )),
        XfsError::BadSuperblock(lamxfs::SuperblockReason::ExternalLog) => FsError::Unsupported(
            "the xfs filesystem keeps its log on another device, which Strongroom cannot read"
                .into(),
        ),
        XfsError::BadSuperblock(lamxfs::SuperblockReason::RealtimeDevice) => FsError::Unsupported(
            "the xfs filesystem has a realtime device, which Strongroom cannot read".into(),
        ),
        other => corrupt(path, format!("{} ({other:?})", other.token())),
    }
}

impl Filesystem for XfsFs {
    fn kind(&self) -> &'static str {
        "xfs"
    }

    fn stat(&mut self, path: &str) -> Result<Entry> {
        let inode = self.resolve(path)?;
        self.entry(path.to_string(), inode)
    }

    fn list(&mut self, path: &str) -> Result<Vec<Entry>> {
        let dir = self.stat(path)?;
        if dir.kind != Kind::Dir {
            return Err(FsError::NotADirectory { path: path.into() });
        }
        let items = self
            .fs
            .read_dir(Path::new(path.as_bytes()))
            .map_err(|e| self.err(path, e))?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(name) = entry_name(path, &item.name)? else {
                continue;
            };
            let child = join(path, &name);
            let mut e = self.entry(
                child,
                Inode {
                    ino: item.inode_number,
                },
            )?;
            if item.kind != EntryKind::Other && e.kind == Kind::Other {
                e.kind = match item.kind {
                    EntryKind::Regular => Kind::File,
                    EntryKind::Directory => Kind::Dir,
                    EntryKind::Symlink => Kind::Symlink,
                    EntryKind::Other => Kind::Other,
                };
            }
            out.push(e);
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn read_link(&mut self, path: &str) -> Result<String> {
        let target = self
            .fs
            .read_link(Path::new(path.as_bytes()))
            .map_err(|e| self.err(path, e))?;
        String::from_utf8(target)
            .map_err(|_| FsError::Unsupported(format!("{path}: the link's target is not UTF-8")))
    }

    fn read(
        &mut self,
        path: &str,
        start: u64,
        end: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let inode = self.resolve(path)?;
        let e = self.entry(path.to_string(), inode)?;
        if e.kind != Kind::File {
            return Err(FsError::NotAFile {
                path: path.into(),
                kind: e.kind.name(),
            });
        }
        let end = end.min(e.size);
        let mut at = start;
        let mut buf = vec![0u8; CHUNK];
        while at < end {
            let piece = ((end - at) as usize).min(CHUNK);
            let n = self
                .fs
                .read_file_at(&inode, at, &mut buf[..piece])
                .map_err(|e| self.err(path, e))?;
            if n == 0 {
                return Err(corrupt(
                    path,
                    format!("the file ends at {at} bytes, before its size {}", e.size),
                ));
            }
            sink(&buf[..n])?;
            at += n as u64;
        }
        Ok(at.saturating_sub(start))
    }
}

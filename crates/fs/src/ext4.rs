//! ext2/3/4 through `ext4-view` (extents, block maps, htree directories,
//! metadata checksums, journal replay in memory), with inline data and
//! timestamps outside 1970-2038 from Strongroom's copy of it
//! (`vendor/ext4-view`).

use std::sync::Arc;

use ext4_view::{Ext4, Ext4Error, Ext4Read, FileType, Metadata};

use crate::error::{FsError, Result, SourceError};
use crate::source::BlockSource;
use crate::{corrupt, entry_name, join, Entry, Filesystem, Kind, LastError, Time, CHUNK};

struct Reader {
    src: Arc<dyn BlockSource>,
    last: LastError,
}

impl Ext4Read for Reader {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.src.read_at(start_byte, dst).map_err(|e| {
            self.last.set(e.clone());
            Box::new(e) as Box<dyn std::error::Error + Send + Sync>
        })
    }
}

pub(crate) struct Ext4Fs {
    fs: Ext4,
    src: Arc<dyn BlockSource>,
    last: LastError,
    /// The last file read and its extent ranges: a file read part by part
    /// (S3 multipart) walks its block map once, not once per part.
    ranges: Option<(String, Ranges)>,
}

type Ranges = Vec<(u64, std::ops::Range<u64>)>;

/// Extent ranges kept per read, for the hints (a fragmented file beyond
/// this reads ahead by the sequential window only).
const MAX_RANGES: usize = 100_000;
/// How far ahead of the read the hints reach.
const HINT_BYTES: u64 = 16 << 20;

impl Ext4Fs {
    pub(crate) fn open(src: Arc<dyn BlockSource>) -> Result<Self> {
        let last = LastError::default();
        let reader = Reader {
            src: src.clone(),
            last: last.clone(),
        };
        let fs = Ext4::load(Box::new(reader)).map_err(|e| map(&last, "/", e))?;
        Ok(Self {
            fs,
            src,
            last,
            ranges: None,
        })
    }

    fn err(&self, path: &str, e: Ext4Error) -> FsError {
        map(&self.last, path, e)
    }
}

fn map(last: &LastError, path: &str, e: Ext4Error) -> FsError {
    let path_s = path.to_string();
    match e {
        Ext4Error::NotFound => FsError::NotFound { path: path_s },
        Ext4Error::NotADirectory => FsError::NotADirectory { path: path_s },
        Ext4Error::IsADirectory => FsError::NotAFile {
            path: path_s,
            kind: Kind::Dir.name(),
        },
        Ext4Error::IsASpecialFile => FsError::NotAFile {
            path: path_s,
            kind: Kind::Other.name(),
        },
        Ext4Error::NotASymlink => FsError::InvalidInput(format!("{path} is not a symbolic link")),
        Ext4Error::NotAbsolute
        | Ext4Error::MalformedPath
        | Ext4Error::PathTooLong
        | Ext4Error::NotUtf8 => FsError::InvalidInput(format!("{path}: {e}")),
        Ext4Error::TooManySymlinks => FsError::Limit {
            path: path_s,
            what: "too many symbolic links to follow".into(),
        },
        Ext4Error::Encrypted => FsError::Unsupported(format!(
            "{path} is encrypted with ext4 file encryption, which Strongroom cannot read"
        )),
        Ext4Error::Incompatible(i) => FsError::Unsupported(format!(
            "{path}: the ext4 filesystem uses a feature Strongroom cannot read: {i}"
        )),
        Ext4Error::Io(inner) => FsError::Source {
            path: path_s,
            source: last
                .take()
                .unwrap_or_else(|| SourceError::Other(inner.to_string())),
        },
        other => corrupt(path, other),
    }
}

/// The device ranges that hold the file's bytes `from..to`.
fn hints(ranges: &[(u64, std::ops::Range<u64>)], from: u64, to: u64) -> Vec<std::ops::Range<u64>> {
    let first = ranges.partition_point(|(at, r)| at + (r.end - r.start) <= from);
    ranges[first..]
        .iter()
        .take_while(|(at, _)| *at < to)
        .map(|(at, r)| {
            let skip = from.saturating_sub(*at);
            let keep = (to - at).min(r.end - r.start);
            r.start + skip..r.start + keep
        })
        .filter(|r| r.start < r.end)
        .collect()
}

fn kind_of(t: FileType) -> Kind {
    match t {
        FileType::Regular => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    }
}

fn entry(path: String, m: &Metadata) -> Entry {
    let t = m.modified();
    Entry {
        path,
        kind: kind_of(m.file_type()),
        size: m.len(),
        mode: Some(u32::from(m.mode()) & 0o7777),
        uid: Some(m.uid()),
        gid: Some(m.gid()),
        modified: Some(Time {
            seconds: t.seconds(),
            nanoseconds: t.nanoseconds(),
        }),
        inode: None,
    }
}

impl Filesystem for Ext4Fs {
    fn kind(&self) -> &'static str {
        "ext4"
    }

    fn stat(&mut self, path: &str) -> Result<Entry> {
        let m = self
            .fs
            .symlink_metadata(path)
            .map_err(|e| self.err(path, e))?;
        Ok(entry(path.to_string(), &m))
    }

    fn list(&mut self, path: &str) -> Result<Vec<Entry>> {
        let dir = self.stat(path)?;
        if dir.kind != Kind::Dir {
            return Err(FsError::NotADirectory { path: path.into() });
        }
        let mut out = Vec::new();
        for item in self.fs.read_dir(path).map_err(|e| self.err(path, e))? {
            let item = item.map_err(|e| self.err(path, e))?;
            let Some(name) = entry_name(path, item.file_name().as_ref())? else {
                continue;
            };
            let child = join(path, &name);
            let m = item.metadata().map_err(|e| self.err(&child, e))?;
            out.push(entry(child, &m));
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn read_link(&mut self, path: &str) -> Result<String> {
        let target = self.fs.read_link(path).map_err(|e| self.err(path, e))?;
        target
            .to_str()
            .map(str::to_string)
            .map_err(|_| FsError::Unsupported(format!("{path}: the link's target is not UTF-8")))
    }

    fn read(
        &mut self,
        path: &str,
        start: u64,
        end: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let e = self.stat(path)?;
        if e.kind != Kind::File {
            return Err(FsError::NotAFile {
                path: path.into(),
                kind: e.kind.name(),
            });
        }
        let end = end.min(e.size);
        if start >= end {
            return Ok(0);
        }
        let mut file = self.fs.open(path).map_err(|e| self.err(path, e))?;
        // Read-ahead along the file's own extent map: the device is told
        // which of its bytes the next HINT_BYTES of the file are.
        let ranges = match self.ranges.take() {
            Some((p, r)) if p == path => r,
            _ => file
                .disk_ranges(MAX_RANGES)
                .map_err(|e| self.err(path, e))?,
        };
        let mut hinted_to = start;
        file.seek_to(start).map_err(|e| self.err(path, e))?;
        let mut buf = vec![0u8; CHUNK];
        let mut done = 0u64;
        let want = end - start;
        while done < want {
            let at = start + done;
            if at >= hinted_to.saturating_sub(HINT_BYTES / 2) && !ranges.is_empty() {
                hinted_to = (at + HINT_BYTES).min(end);
                self.src.will_read(&hints(&ranges, at, hinted_to));
            }
            let piece = ((want - done) as usize).min(CHUNK);
            let mut filled = 0;
            while filled < piece {
                let n = file
                    .read_bytes(&mut buf[filled..piece])
                    .map_err(|e| self.err(path, e))?;
                if n == 0 {
                    return Err(corrupt(
                        path,
                        format!(
                            "the file ends at {} bytes, before its size {}",
                            start + done + filled as u64,
                            e.size
                        ),
                    ));
                }
                filled += n;
            }
            sink(&buf[..piece])?;
            done += piece as u64;
        }
        self.ranges = Some((path.to_owned(), ranges));
        Ok(done)
    }
}

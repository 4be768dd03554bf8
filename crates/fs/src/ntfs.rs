//! NTFS through the `ntfs` crate (MFT records, attribute lists, resident
//! and non-resident data, sparse runs, B-tree directory indexes). Symbolic
//! links are reparse points (symlink or junction) or Interix links, as
//! ntfs-3g writes them. NTFS keeps no POSIX owner or mode: entries carry the
//! modification time and the MFT record number.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use ntfs::indexes::NtfsFileNameIndex;
use ntfs::structured_values::{NtfsFileAttributeFlags, NtfsFileNamespace};
use ntfs::{Ntfs, NtfsAttributeType, NtfsError, NtfsFile, NtfsReadSeek};

use crate::error::{FsError, Result, SourceError};
use crate::source::BlockSource;
use crate::{corrupt, join, Entry, Filesystem, Kind, LastError, Time, CHUNK};

/// `Read + Seek` over a block source, as the `ntfs` crate reads.
struct Cursor {
    src: Arc<dyn BlockSource>,
    pos: u64,
    last: LastError,
}

impl Read for Cursor {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.src.size();
        if self.pos >= size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(size - self.pos) as usize;
        self.src.read_at(self.pos, &mut buf[..n]).map_err(|e| {
            self.last.set(e.clone());
            std::io::Error::other(e)
        })?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Cursor {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let to = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.src.size().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = to.ok_or_else(|| std::io::Error::other("seek out of range"))?;
        Ok(self.pos)
    }
}

pub(crate) struct NtfsFs {
    ntfs: Ntfs,
    cur: Cursor,
}

/// The first MFT records are the filesystem's own ($MFT, $LogFile, ... up
/// to 15, reserved to 23); their names in the root start with `$`.
const FIRST_USER_RECORD: u64 = 24;
/// Reparse data is at most 16 KiB.
const MAX_REPARSE: u64 = 16 * 1024;
const IO_REPARSE_TAG_SYMLINK: u32 = 0xA000_000C;
const IO_REPARSE_TAG_MOUNT_POINT: u32 = 0xA000_0003;
/// Seconds from 1601-01-01 (NT time) to 1970-01-01.
const NT_TO_UNIX: i64 = 11_644_473_600;

fn map(last: &LastError, path: &str, e: NtfsError) -> FsError {
    match e {
        NtfsError::Io(inner) => FsError::Source {
            path: path.into(),
            source: last
                .take()
                .unwrap_or_else(|| SourceError::Other(inner.to_string())),
        },
        other => corrupt(path, other),
    }
}

impl NtfsFs {
    pub(crate) fn open(src: Arc<dyn BlockSource>) -> Result<Self> {
        let last = LastError::default();
        let mut cur = Cursor {
            src,
            pos: 0,
            last: last.clone(),
        };
        let mut ntfs = Ntfs::new(&mut cur).map_err(|e| map(&last, "/", e))?;
        ntfs.read_upcase_table(&mut cur)
            .map_err(|e| map(&last, "/", e))?;
        Ok(Self { ntfs, cur })
    }
}

/// The file at `path` (symlinks are not followed).
fn resolve<'n>(ntfs: &'n Ntfs, cur: &mut Cursor, path: &str) -> Result<NtfsFile<'n>> {
    let last = cur.last.clone();
    let mut file = ntfs.root_directory(cur).map_err(|e| map(&last, "/", e))?;
    let mut walked = String::new();
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        if !file.is_directory() {
            return Err(FsError::NotADirectory {
                path: if walked.is_empty() {
                    "/".into()
                } else {
                    walked
                },
            });
        }
        walked.push('/');
        walked.push_str(comp);
        let next = {
            let index = file
                .directory_index(cur)
                .map_err(|e| map(&last, &walked, e))?;
            let mut finder = index.finder();
            let entry = match NtfsFileNameIndex::find(&mut finder, ntfs, cur, comp) {
                None => {
                    return Err(FsError::NotFound {
                        path: path.to_string(),
                    })
                }
                Some(entry) => entry.map_err(|e| map(&last, &walked, e))?,
            };
            entry
                .to_file(ntfs, cur)
                .map_err(|e| map(&last, &walked, e))?
        };
        file = next;
    }
    Ok(file)
}

/// The value of the file's first attribute of type `ty` (unnamed for
/// `$DATA`), read up to `max` bytes; `None` when it has none.
fn attribute_bytes(
    file: &NtfsFile<'_>,
    cur: &mut Cursor,
    ty: NtfsAttributeType,
    max: u64,
    path: &str,
) -> Result<Option<Vec<u8>>> {
    let last = cur.last.clone();
    let mut attributes = file.attributes();
    while let Some(item) = attributes.next(cur) {
        let item = item.map_err(|e| map(&last, path, e))?;
        let attribute = item.to_attribute().map_err(|e| map(&last, path, e))?;
        if attribute.ty().map_err(|e| map(&last, path, e))? != ty {
            continue;
        }
        if ty == NtfsAttributeType::Data
            && !attribute
                .name()
                .map_err(|e| map(&last, path, e))?
                .is_empty()
        {
            continue;
        }
        let mut value = attribute.value(cur).map_err(|e| map(&last, path, e))?;
        let len = value.len().min(max) as usize;
        let mut out = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n = value
                .read(cur, &mut out[filled..])
                .map_err(|e| map(&last, path, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        out.truncate(filled);
        return Ok(Some(out));
    }
    Ok(None)
}

fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// A symlink's target from its reparse data, as a `/`-separated path.
fn reparse_target(data: &[u8]) -> Option<String> {
    if data.len() < 16 {
        return None;
    }
    let tag = u32::from_le_bytes(data[0..4].try_into().ok()?);
    let field = |at: usize| u16::from_le_bytes([data[at], data[at + 1]]) as usize;
    let (buffer, print_off, print_len, subst_off, subst_len) = match tag {
        IO_REPARSE_TAG_SYMLINK if data.len() >= 20 => {
            (20, field(12), field(14), field(8), field(10))
        }
        IO_REPARSE_TAG_MOUNT_POINT => (16, field(12), field(14), field(8), field(10)),
        _ => return None,
    };
    let pick = |off: usize, len: usize| data.get(buffer + off..buffer + off + len).map(utf16);
    let target = pick(print_off, print_len)
        .filter(|s| !s.is_empty())
        .or_else(|| pick(subst_off, subst_len))?;
    let target = target
        .strip_prefix("\\??\\")
        .unwrap_or(&target)
        .replace('\\', "/");
    Some(target)
}

/// What `file` is and, for a link, its target.
fn classify(
    file: &NtfsFile<'_>,
    cur: &mut Cursor,
    path: &str,
) -> Result<(Kind, u64, Option<String>, Option<Time>)> {
    let last = cur.last.clone();
    let info = file.info().map_err(|e| map(&last, path, e))?;
    let nt = info.modification_time().nt_timestamp();
    let modified = Some(Time {
        seconds: (nt / 10_000_000) as i64 - NT_TO_UNIX,
        nanoseconds: ((nt % 10_000_000) * 100) as u32,
    });
    let attrs = info.file_attributes();
    if attrs.contains(NtfsFileAttributeFlags::REPARSE_POINT) {
        let data = attribute_bytes(
            file,
            cur,
            NtfsAttributeType::ReparsePoint,
            MAX_REPARSE,
            path,
        )?;
        return Ok(match data.as_deref().and_then(reparse_target) {
            Some(t) => (Kind::Symlink, t.len() as u64, Some(t), modified),
            None => (Kind::Other, 0, None, modified),
        });
    }
    if file.is_directory() {
        return Ok((Kind::Dir, 0, None, modified));
    }
    let size = data_len(file, cur, path)?;
    // An Interix symlink: a system file whose data is "IntxLNK\1" and the
    // target in UTF-16 (how ntfs-3g stores links it cannot make reparse points).
    if attrs.contains(NtfsFileAttributeFlags::SYSTEM) && (8..=MAX_REPARSE).contains(&size) {
        if let Some(data) = attribute_bytes(file, cur, NtfsAttributeType::Data, MAX_REPARSE, path)?
        {
            if data.starts_with(b"IntxLNK\x01") {
                let t = utf16(&data[8..]);
                return Ok((Kind::Symlink, t.len() as u64, Some(t), modified));
            }
        }
    }
    Ok((Kind::File, size, None, modified))
}

fn data_len(file: &NtfsFile<'_>, cur: &mut Cursor, path: &str) -> Result<u64> {
    let last = cur.last.clone();
    match file.data(cur, "") {
        None => Ok(0),
        Some(item) => {
            let item = item.map_err(|e| map(&last, path, e))?;
            let attribute = item.to_attribute().map_err(|e| map(&last, path, e))?;
            Ok(attribute.value_length())
        }
    }
}

impl Filesystem for NtfsFs {
    fn kind(&self) -> &'static str {
        "ntfs"
    }

    fn stat(&mut self, path: &str) -> Result<Entry> {
        let file = resolve(&self.ntfs, &mut self.cur, path)?;
        let (kind, size, _, modified) = classify(&file, &mut self.cur, path)?;
        Ok(Entry {
            path: path.to_string(),
            kind,
            size,
            mode: None,
            uid: None,
            gid: None,
            modified,
            inode: Some(file.file_record_number()),
        })
    }

    fn list(&mut self, path: &str) -> Result<Vec<Entry>> {
        let last = self.cur.last.clone();
        let dir = resolve(&self.ntfs, &mut self.cur, path)?;
        if !dir.is_directory() {
            return Err(FsError::NotADirectory { path: path.into() });
        }
        let index = dir
            .directory_index(&mut self.cur)
            .map_err(|e| map(&last, path, e))?;
        let mut entries = index.entries();
        let mut names: Vec<(String, u64)> = Vec::new();
        while let Some(entry) = entries.next(&mut self.cur) {
            let entry = entry.map_err(|e| map(&last, path, e))?;
            let Some(key) = entry.key() else { continue };
            let key = key.map_err(|e| map(&last, path, e))?;
            let record = entry.file_reference().file_record_number();
            // DOS names are second names of files listed under their long
            // name (the crate checks the namespace when it reads the key).
            if key.namespace() == NtfsFileNamespace::Dos {
                continue;
            }
            let name = key.name().to_string_lossy();
            let Some(name) = crate::entry_name(path, name.as_bytes())? else {
                continue;
            };
            if record < FIRST_USER_RECORD && name.starts_with('$') {
                continue;
            }
            names.push((name, record));
        }
        names.sort();
        names.dedup();
        let mut out = Vec::with_capacity(names.len());
        for (name, record) in names {
            let child = join(path, &name);
            let file = self
                .ntfs
                .file(&mut self.cur, record)
                .map_err(|e| map(&last, &child, e))?;
            let (kind, size, _, modified) = classify(&file, &mut self.cur, &child)?;
            out.push(Entry {
                path: child,
                kind,
                size,
                mode: None,
                uid: None,
                gid: None,
                modified,
                inode: Some(record),
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn read_link(&mut self, path: &str) -> Result<String> {
        let file = resolve(&self.ntfs, &mut self.cur, path)?;
        match classify(&file, &mut self.cur, path)? {
            (Kind::Symlink, _, Some(target), _) => Ok(target),
            _ => Err(FsError::InvalidInput(format!(
                "{path} is not a symbolic link"
            ))),
        }
    }

    fn read(
        &mut self,
        path: &str,
        start: u64,
        end: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let last = self.cur.last.clone();
        let file = resolve(&self.ntfs, &mut self.cur, path)?;
        let (kind, size, _, _) = classify(&file, &mut self.cur, path)?;
        if kind != Kind::File {
            return Err(FsError::NotAFile {
                path: path.into(),
                kind: kind.name(),
            });
        }
        let end = end.min(size);
        if start >= end {
            return Ok(0);
        }
        let Some(item) = file.data(&mut self.cur, "") else {
            return Ok(0);
        };
        let item = item.map_err(|e| map(&last, path, e))?;
        let attribute = item.to_attribute().map_err(|e| map(&last, path, e))?;
        let mut value = attribute
            .value(&mut self.cur)
            .map_err(|e| map(&last, path, e))?;
        // Read-ahead from the extent map: the data runs' positions on disk.
        if let ntfs::attribute_value::NtfsAttributeValue::NonResident(v) = &value {
            let mut ranges = Vec::new();
            for run in v.data_runs() {
                let Ok(run) = run else { break };
                if let Some(p) = run.data_position().value() {
                    ranges.push(p.get()..p.get().saturating_add(run.allocated_size()));
                }
                if ranges.len() >= 256 {
                    break;
                }
            }
            self.cur.src.will_read(&ranges);
        }
        value
            .seek(&mut self.cur, SeekFrom::Start(start))
            .map_err(|e| map(&last, path, e))?;
        let mut buf = vec![0u8; CHUNK];
        let mut done = 0u64;
        let want = end - start;
        while done < want {
            let piece = ((want - done) as usize).min(CHUNK);
            let mut filled = 0;
            while filled < piece {
                let n = value
                    .read(&mut self.cur, &mut buf[filled..piece])
                    .map_err(|e| map(&last, path, e))?;
                if n == 0 {
                    return Err(corrupt(
                        path,
                        format!(
                            "the data ends at {} bytes, before its size {size}",
                            start + done + filled as u64
                        ),
                    ));
                }
                filled += n;
            }
            sink(&buf[..piece])?;
            done += piece as u64;
        }
        Ok(done)
    }
}

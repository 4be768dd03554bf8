//! Writing what a filesystem holds into a local folder: each entry at its
//! path relative to the filesystem's root, directories recursively, symlinks
//! as symlinks, hard links (where the reader tells inodes) as hard links,
//! runs of zeros as holes, permissions and modification times kept.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{FsError, Result};
use crate::walk::{walk, Limits};
use crate::{Entry, Filesystem, Kind};

/// One restored entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Restored {
    /// The path on the filesystem read.
    pub path: String,
    pub kind: Kind,
    pub size: u64,
    /// SHA-256 of a file's content, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A symlink's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Another restored path this one is a hard link of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_of: Option<String>,
}

/// Bytes compared for holes: the page size of most filesystems.
const HOLE: usize = 4096;

/// The local path of `path` (absolute on the filesystem read) under `out`.
/// Each component must be a plain name, so nothing lands outside `out`.
pub fn destination(out: &Path, path: &str) -> Result<PathBuf> {
    let mut dest = out.to_path_buf();
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        if comp == "." || comp == ".." || comp.contains('\0') {
            return Err(FsError::Corrupt {
                path: path.into(),
                detail: format!("the path has a component {comp:?}"),
            });
        }
        dest.push(comp);
    }
    Ok(dest)
}

fn output(path: &Path, e: impl std::fmt::Display) -> FsError {
    FsError::Output {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// Makes the directories from `out` down to `dir` (at or under `out`), each
/// a real directory: a symlink or a file on the way is refused, so nothing is
/// ever written outside `out` through a link (an image can hold a symlink
/// and a path through it, `/lnk -> /etc` and `/lnk/passwd`).
fn make_dirs_under(out: &Path, dir: &Path) -> Result<()> {
    let rel = dir
        .strip_prefix(out)
        .map_err(|_| output(dir, format!("is not under {}", out.display())))?;
    let mut at = out.to_path_buf();
    for comp in rel.components() {
        at.push(comp);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(output(
                    &at,
                    "is a symlink or a file, not a directory: nothing is restored through it",
                ))
            }
            Err(_) => fs::create_dir(&at).map_err(|e| output(&at, e))?,
        }
    }
    Ok(())
}

/// Removes what is at `dest` unless it is a directory, so that nothing is
/// written through a symlink that was there.
fn clear(dest: &Path) -> Result<()> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => Err(output(dest, "a directory is in the way")),
        Ok(_) => fs::remove_file(dest).map_err(|e| output(dest, e)),
        Err(_) => Ok(()),
    }
}

/// Writes the file at `path` to `dest`, streaming, with holes for zero runs;
/// returns its SHA-256 (hex).
pub fn write_file(fs: &mut dyn Filesystem, entry: &Entry, dest: &Path) -> Result<String> {
    clear(dest)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(|e| output(dest, e))?;
    let mut hash = Sha256::new();
    let mut at = 0u64;
    fs.read(&entry.path, 0, entry.size, &mut |chunk: &[u8]| {
        hash.update(chunk);
        for piece in chunk.chunks(HOLE) {
            if piece.iter().all(|b| *b == 0) {
                file.seek(SeekFrom::Current(piece.len() as i64))
                    .map_err(|e| output(dest, e))?;
            } else {
                file.write_all(piece).map_err(|e| output(dest, e))?;
            }
        }
        at += chunk.len() as u64;
        Ok(())
    })?;
    if at != entry.size {
        return Err(FsError::Corrupt {
            path: entry.path.clone(),
            detail: format!("read {at} bytes of a file of {}", entry.size),
        });
    }
    file.set_len(at).map_err(|e| output(dest, e))?;
    finish(&file, entry, dest)?;
    Ok(hex(&hash.finalize()))
}

fn finish(file: &File, entry: &Entry, dest: &Path) -> Result<()> {
    if let Some(mode) = entry.mode {
        file.set_permissions(fs::Permissions::from_mode(mode & 0o1777))
            .map_err(|e| output(dest, e))?;
    }
    if let Some(t) = entry.modified {
        if let Some(time) = system_time(t) {
            file.set_modified(time).map_err(|e| output(dest, e))?;
        }
    }
    Ok(())
}

fn system_time(t: crate::Time) -> Option<std::time::SystemTime> {
    let d = std::time::Duration::new(t.seconds.unsigned_abs(), t.nanoseconds.min(999_999_999));
    if t.seconds >= 0 {
        std::time::UNIX_EPOCH.checked_add(d)
    } else {
        std::time::UNIX_EPOCH.checked_sub(d)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entries not under a directory among them (which restores them anyway).
pub fn roots(entries: &[Entry]) -> Vec<&Entry> {
    let dirs: Vec<String> = entries
        .iter()
        .filter(|e| e.kind == Kind::Dir)
        .map(|e| {
            if e.path == "/" {
                "/".to_string()
            } else {
                format!("{}/", e.path)
            }
        })
        .collect();
    entries
        .iter()
        .filter(|e| {
            !dirs
                .iter()
                .any(|d| e.path.starts_with(d.as_str()) && e.path.len() > d.len().max(1))
        })
        .collect()
}

/// Restores `entries` (and everything under the directories among them)
/// into `out`, each at its path relative to the filesystem's root. Calls
/// `progress` after each entry.
pub fn extract(
    fs: &mut dyn Filesystem,
    entries: &[Entry],
    out: &Path,
    limits: Limits,
    progress: &mut dyn FnMut(&Restored),
) -> Result<Vec<Restored>> {
    fs::create_dir_all(out).map_err(|e| output(out, e))?;
    let mut restored = Vec::new();
    let mut links: HashMap<u64, (String, PathBuf)> = HashMap::new();
    // Directories get their permissions and times after their content.
    let mut dirs: Vec<(Entry, PathBuf)> = Vec::new();
    for root in roots(entries) {
        walk(fs, root.clone(), limits, &mut |fs, entry| {
            let dest = destination(out, &entry.path)?;
            // Parents (those of what was asked for with default
            // permissions), never through a link.
            if let Some(parent) = dest.parent().filter(|_| dest != out) {
                make_dirs_under(out, parent)?;
            }
            let mut r = Restored {
                path: entry.path.clone(),
                kind: entry.kind,
                size: entry.size,
                sha256: None,
                target: None,
                link_of: None,
            };
            match entry.kind {
                Kind::Dir => {
                    make_dirs_under(out, &dest)?;
                    dirs.push((entry.clone(), dest));
                }
                Kind::Symlink => {
                    let target = fs.read_link(&entry.path)?;
                    clear(&dest)?;
                    std::os::unix::fs::symlink(&target, &dest).map_err(|e| output(&dest, e))?;
                    r.target = Some(target);
                }
                Kind::File => match entry.inode.and_then(|i| links.get(&i)) {
                    Some((first, first_dest)) if entry.inode.is_some() => {
                        clear(&dest)?;
                        fs::hard_link(first_dest, &dest).map_err(|e| output(&dest, e))?;
                        r.link_of = Some(first.clone());
                        r.sha256 = restored
                            .iter()
                            .find(|x: &&Restored| &x.path == first)
                            .and_then(|x| x.sha256.clone());
                    }
                    _ => {
                        r.sha256 = Some(write_file(fs, entry, &dest)?);
                        if let Some(i) = entry.inode {
                            links.insert(i, (entry.path.clone(), dest));
                        }
                    }
                },
                Kind::Other => {}
            }
            progress(&r);
            restored.push(r);
            Ok(())
        })?;
    }
    for (entry, dest) in dirs.into_iter().rev() {
        if let Ok(dir) = File::open(&dest) {
            finish(&dir, &entry, &dest)?;
        }
    }
    Ok(restored)
}

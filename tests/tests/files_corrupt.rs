//! Damaged filesystems never crash the readers: real images (ext4 by
//! `mkfs.ext4 -d`, xfs and NTFS by `tests/fsimages/build.py`), with bytes
//! changed where the readers read metadata (superblocks, group descriptors,
//! inodes, extent trees and B+trees, directory blocks, MFT records, index
//! records), are opened, walked and every file read. Each run either
//! succeeds or fails with an error that names a path; never a panic, and
//! never more than a bounded number of reads (a loop in a damaged structure
//! would show as that bound).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use strongroom_fs::walk::{walk, Limits};
use strongroom_fs::{open, BlockSource, FsError, ImageFile, Kind, SourceError};
use strongroom_tests::fsimages::{build, TempDir};

/// Reads one run may make: a clean walk of these images makes a few
/// thousand.
const MAX_READS: u64 = 200_000;

/// An image with some bytes changed, counting (and bounding) reads, and
/// recording which ranges were read.
struct Damaged {
    base: Arc<ImageFile>,
    changes: BTreeMap<u64, u8>,
    reads: AtomicU64,
    seen: Option<Mutex<Vec<(u64, u64)>>>,
}

impl BlockSource for Damaged {
    fn size(&self) -> u64 {
        self.base.size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        if self.reads.fetch_add(1, Ordering::Relaxed) >= MAX_READS {
            return Err(SourceError::Budget { limit: MAX_READS });
        }
        self.base.read_at(offset, buf)?;
        if let Some(seen) = &self.seen {
            seen.lock().unwrap().push((offset, buf.len() as u64));
        }
        for (at, b) in self.changes.range(offset..offset + buf.len() as u64) {
            buf[(at - offset) as usize] = *b;
        }
        Ok(())
    }
}

/// Opens, walks and (unless `walk_only`) reads every file; the bytes read.
fn exercise(disk: Arc<dyn BlockSource>, walk_only: bool) -> Result<usize, FsError> {
    let mut opened = open(disk, None)?;
    let fs = opened.fs.as_mut();
    let root = fs.stat("/")?;
    let mut files = Vec::new();
    walk(
        fs,
        root,
        Limits {
            max_entries: 100_000,
        },
        &mut |fs, e| {
            match e.kind {
                Kind::File => files.push(e.path.clone()),
                Kind::Symlink => {
                    fs.read_link(&e.path)?;
                }
                _ => {}
            }
            Ok(())
        },
    )?;
    let mut bytes = 0usize;
    if walk_only {
        return Ok(files.len());
    }
    for f in &files {
        fs.read(f, 0, u64::MAX, &mut |chunk| {
            bytes += chunk.len();
            Ok(())
        })?;
    }
    Ok(bytes)
}

fn small_tree(dir: &Path) {
    let w = |p: &str, n: usize| {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let data: Vec<u8> = (0..n).map(|i| (i * 7 + p.len()) as u8).collect();
        std::fs::write(path, data).unwrap();
    };
    w("etc/hosts", 120);
    w("srv/data/big.bin", 300_000);
    w("srv/data/mid.bin", 40_000);
    for i in 0..300 {
        w(&format!("many/entry-{i:03}"), i % 50);
    }
    w("a/b/c/d/e/f/deep.txt", 10);
    std::os::unix::fs::symlink("../etc/hosts", dir.join("srv/hosts-link")).unwrap();
}

struct Image {
    path: PathBuf,
    /// Byte ranges a clean run reads (metadata and data).
    read: Vec<(u64, u64)>,
    _tmp: Arc<TempDir>,
}

fn images() -> &'static Vec<(&'static str, Image)> {
    static IMAGES: std::sync::OnceLock<Vec<(&'static str, Image)>> = std::sync::OnceLock::new();
    IMAGES.get_or_init(|| {
        let tmp = Arc::new(TempDir::new("corrupt"));
        let tree = tmp.0.join("tree");
        small_tree(&tree);
        let mut out = Vec::new();
        for fs in ["ext4", "xfs", "ntfs"] {
            let path = tmp.0.join(format!("{fs}.img"));
            if fs == "ext4" {
                let mkfs = which("mkfs.ext4");
                let ok = Command::new(mkfs)
                    .args(["-q", "-F", "-d"])
                    .arg(&tree)
                    .arg(&path)
                    .arg("16M")
                    .status()
                    .expect("mkfs.ext4 (make setup installs e2fsprogs)");
                assert!(ok.success(), "mkfs.ext4 -d failed");
            } else {
                build(&[
                    "image",
                    "--fs",
                    fs,
                    "--tree",
                    tree.to_str().unwrap(),
                    "--out",
                    path.to_str().unwrap(),
                ]);
            }
            let clean = |seen: bool| {
                Arc::new(Damaged {
                    base: Arc::new(ImageFile::open(&path).unwrap()),
                    changes: BTreeMap::new(),
                    reads: AtomicU64::new(0),
                    seen: seen.then(|| Mutex::new(Vec::new())),
                })
            };
            let bytes = exercise(clean(false), false)
                .unwrap_or_else(|e| panic!("the clean {fs} image: {e}"));
            assert!(bytes > 300_000, "{fs}: read {bytes} bytes of files");
            // What opening and walking reads: the metadata, where damage is aimed.
            let walked = clean(true);
            let files = exercise(walked.clone(), true).unwrap();
            assert!(files > 300, "{fs}: walked {files} files");
            let read = walked.seen.as_ref().unwrap().lock().unwrap().clone();
            out.push((
                fs,
                Image {
                    path,
                    read,
                    _tmp: tmp.clone(),
                },
            ));
        }
        out
    })
}

fn which(tool: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("{tool} is missing: make setup installs it");
}

fn run_damaged(image: &Image, picks: &[(u64, u8)]) -> Result<usize, FsError> {
    // Each pick lands in a range the clean run read: index into all bytes read.
    let total: u64 = image.read.iter().map(|(_, n)| n).sum();
    let mut changes = BTreeMap::new();
    for (pick, value) in picks {
        let mut at = pick % total;
        for (offset, n) in &image.read {
            if at < *n {
                changes.insert(offset + at, *value);
                break;
            }
            at -= n;
        }
    }
    let disk = Arc::new(Damaged {
        base: Arc::new(ImageFile::open(&image.path).unwrap()),
        changes,
        reads: AtomicU64::new(0),
        seen: None,
    });
    // Files are read too: damaged extent maps and data runs show there.
    exercise(disk, false)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn damaged_metadata_gives_an_error_naming_a_path_never_a_panic(
        which in 0usize..3,
        picks in prop::collection::vec((any::<u64>(), any::<u8>()), 1..24),
    ) {
        let (name, image) = &images()[which];
        match run_damaged(image, &picks) {
            Ok(_) => {}
            Err(e) => {
                let text = e.to_string();
                prop_assert!(!text.is_empty());
                prop_assert!(
                    text.contains('/') || matches!(e, FsError::Unsupported(_) | FsError::InvalidInput(_)),
                    "{name}: {text}"
                );
                prop_assert!(!text.contains("panicked"), "{name}: {text}");
            }
        }
    }
}

/// The damage above is not harmless: aimed at what the readers read, a good
/// share of it is found (an error naming a path), per filesystem.
#[test]
fn damage_to_metadata_is_found() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (name, image) in images() {
        let mut errors = 0;
        for _ in 0..100 {
            let picks: Vec<(u64, u8)> = (0..8).map(|_| (next(), next() as u8)).collect();
            if let Err(e) = run_damaged(image, &picks) {
                assert!(!e.to_string().is_empty());
                errors += 1;
            }
        }
        assert!(
            errors >= 10,
            "{name}: only {errors} of 100 damaged images gave an error"
        );
        eprintln!("{name}: {errors} of 100 damaged images gave an error");
    }
}

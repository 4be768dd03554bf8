//! The filesystem readers against real images: each built at test time from
//! a directory tree by the filesystem's own tools (`tests/fsimages/build.py`:
//! `mkfs.xfs -p`, `mkntfs` + ntfs-3g, `mkfs.ext4 -d`), every restored entry
//! compared with the tree's manifest (SHA-256 of every file, links, owners,
//! permissions and times where the filesystem keeps them).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use strongroom_fs::local::extract;
use strongroom_fs::walk::{expand, walk, Limits};
use strongroom_fs::{open, BlockSource, Entry, FsError, ImageFile, Kind, TableKind};
use strongroom_tests::fsimages::{build, image, tree, TempDir, Tree};

fn disk(path: &Path) -> Arc<dyn BlockSource> {
    Arc::new(ImageFile::open(path).expect("open the image"))
}

/// Restores the whole filesystem of `image` and compares it with the
/// manifest, as `expect[fs]` says the filesystem can hold the tree.
fn restores_the_tree(tree: &Tree, image: &Path, fs_name: &str) {
    let expect = &tree.manifest["expect"][fs_name];
    let fields: Vec<&str> = expect["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let absent: Vec<&str> = expect["absent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let extra: Vec<&str> = expect["extra"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let differ = &expect["differ"];

    let source = disk(image);
    let mut opened = open(source.clone(), None).expect("open the filesystem");
    assert_eq!(
        opened.fs.kind(),
        if fs_name == "ext4" { "ext4" } else { fs_name }
    );
    let fs = opened.fs.as_mut();

    // Every entry with its metadata, as the reader lists it.
    let mut listed: BTreeMap<String, Entry> = BTreeMap::new();
    let root = fs.stat("/").unwrap();
    walk(fs, root, Limits::default(), &mut |_, e| {
        listed.insert(e.path.clone(), e.clone());
        Ok(())
    })
    .unwrap();

    let out = tree
        .dir
        .parent()
        .unwrap()
        .join(format!("restored-{fs_name}"));
    let _ = std::fs::remove_dir_all(&out);
    let entries = expand(fs, &["/".to_string()], Limits::default()).unwrap();
    let restored = extract(fs, &entries, &out, Limits::default(), &mut |_| {}).unwrap();
    let restored: BTreeMap<String, _> = restored.into_iter().map(|r| (r.path.clone(), r)).collect();

    let mut checked = 0;
    for m in tree.manifest["entries"].as_array().unwrap() {
        let rel = m["path"].as_str().unwrap();
        if absent.contains(&rel) {
            assert!(
                !listed.contains_key(&format!("/{rel}")),
                "{rel} cannot be on {fs_name}"
            );
            continue;
        }
        let path = format!("/{rel}");
        let want = |field: &str| -> Value {
            differ
                .get(rel)
                .and_then(|d| d.get(field))
                .cloned()
                .unwrap_or_else(|| m[field].clone())
        };
        let e = listed
            .get(&path)
            .unwrap_or_else(|| panic!("{fs_name}: {path} is not listed"));
        let r = restored
            .get(&path)
            .unwrap_or_else(|| panic!("{fs_name}: {path} was not restored"));
        let kind = match m["type"].as_str().unwrap() {
            "file" => Kind::File,
            "dir" => Kind::Dir,
            "symlink" => Kind::Symlink,
            other => panic!("manifest type {other}"),
        };
        assert_eq!(e.kind, kind, "{fs_name}: {path} kind");
        let local = out.join(rel);
        match kind {
            Kind::File => {
                assert_eq!(
                    e.size,
                    m["size"].as_u64().unwrap(),
                    "{fs_name}: {path} size"
                );
                assert_eq!(
                    r.sha256.as_deref(),
                    m["sha256"].as_str(),
                    "{fs_name}: {path} SHA-256"
                );
                assert_eq!(
                    std::fs::metadata(&local).unwrap().len(),
                    e.size,
                    "{path} restored size"
                );
            }
            Kind::Symlink => {
                assert_eq!(
                    r.target.as_deref(),
                    m["target"].as_str(),
                    "{fs_name}: {path} target"
                );
                assert_eq!(
                    std::fs::read_link(&local).unwrap().to_str(),
                    m["target"].as_str(),
                    "{path} restored as a symlink"
                );
            }
            _ => assert!(local.is_dir(), "{path} restored as a directory"),
        }
        if fields.contains(&"mode") {
            assert_eq!(
                e.mode.map(u64::from),
                want("mode").as_u64(),
                "{fs_name}: {path} mode"
            );
        }
        if fields.contains(&"uid") {
            assert_eq!(
                e.uid.map(u64::from),
                want("uid").as_u64(),
                "{fs_name}: {path} uid"
            );
            assert_eq!(
                e.gid.map(u64::from),
                want("gid").as_u64(),
                "{fs_name}: {path} gid"
            );
        }
        if fields.contains(&"mtime") && kind != Kind::Symlink {
            assert_eq!(
                e.modified.map(|t| t.seconds),
                want("mtime").as_i64(),
                "{fs_name}: {path} mtime"
            );
        }
        if fields.contains(&"hardlink_of") {
            if let Some(first) = want("hardlink_of").as_str() {
                let first = &listed[&format!("/{first}")];
                if e.inode.is_some() {
                    assert_eq!(
                        e.inode, first.inode,
                        "{fs_name}: {path} is a hard link of {}",
                        first.path
                    );
                }
            }
        }
        checked += 1;
    }
    assert!(
        checked > 10_000,
        "{fs_name}: only {checked} entries compared"
    );
    for path in listed.keys() {
        let rel = &path[1..];
        if path == "/"
            || extra
                .iter()
                .any(|x| rel == *x || rel.starts_with(&format!("{x}/")))
        {
            continue;
        }
        assert!(
            tree.manifest["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["path"] == *rel),
            "{fs_name}: {path} is on the filesystem but not in the tree"
        );
    }
}

#[test]
fn xfs_restores_every_file_of_the_tree() {
    let tree = tree("xfs");
    let (img, _) = image(&tree, "xfs", "bare", &[]);
    restores_the_tree(&tree, &img, "xfs");
}

#[test]
fn ntfs_on_a_gpt_disk_restores_every_file_of_the_tree() {
    let tree = tree("ntfs");
    let (img, described) = image(&tree, "ntfs", "gpt", &[]);
    let opened = open(disk(&img), None).unwrap();
    assert_eq!(opened.table, TableKind::Gpt);
    assert_eq!(
        opened.partition.as_ref().map(|p| u64::from(p.number)),
        described["partition"].as_u64(),
        "the one partition with a filesystem is chosen"
    );
    assert_eq!(
        opened.partition.unwrap().start,
        described["offset"].as_u64().unwrap()
    );
    restores_the_tree(&tree, &img, "ntfs");
}

#[test]
fn ext4_with_inline_data_on_an_mbr_disk_restores_every_file_of_the_tree() {
    let tree = tree("ext4");
    let (img, _) = image(&tree, "ext4", "mbr", &[]);
    let opened = open(disk(&img), None).unwrap();
    assert_eq!(opened.table, TableKind::Mbr);
    drop(opened);
    restores_the_tree(&tree, &img, "ext4");
}

#[test]
fn partitions_are_chosen_or_refused_by_number() {
    let tree = tree("parts");
    let (img, described) = image(&tree, "xfs", "mbr", &[]);
    let n = described["partition"].as_u64().unwrap() as u32;
    let opened = open(disk(&img), Some(n)).unwrap();
    assert_eq!(opened.fs.kind(), "xfs");
    assert_eq!(opened.table, TableKind::Mbr);
    let err = open(disk(&img), Some(9)).err().unwrap();
    assert!(matches!(err, FsError::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("no partition 9"), "{err}");
    let err = open(disk(&img), Some(1).filter(|one| *one != n)).err();
    if let Some(err) = err {
        assert!(matches!(err, FsError::Unsupported(_)), "{err:?}");
    }
}

#[test]
fn globs_and_missing_paths() {
    let tree = tree("globs");
    let (img, _) = image(&tree, "ntfs", "bare", &[]);
    let mut opened = open(disk(&img), None).unwrap();
    let fs = opened.fs.as_mut();
    let got = expand(
        fs,
        &["/many/f0000[0-4]".to_string(), "/sizes/*".to_string()],
        Limits::default(),
    )
    .unwrap();
    let names: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
    assert!(
        names.starts_with(&[
            "/many/f00000",
            "/many/f00001",
            "/many/f00002",
            "/many/f00003",
            "/many/f00004"
        ]),
        "{names:?}"
    );
    assert!(
        names.iter().skip(5).all(|n| n.starts_with("/sizes/")),
        "{names:?}"
    );
    let err = expand(fs, &["/no/such/file".to_string()], Limits::default()).unwrap_err();
    assert_eq!(err.error_name(), "Strongroom.NotFound");
    assert!(err.to_string().contains("/no/such/file"), "{err}");
    let err = expand(fs, &["/many/*.nothing".to_string()], Limits::default()).unwrap_err();
    assert!(err.to_string().contains("matched nothing"), "{err}");
    let err = expand(fs, &["/many/f00000/x".to_string()], Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            FsError::NotADirectory { .. } | FsError::NotFound { .. }
        ),
        "{err:?}"
    );
    let limited = Limits { max_entries: 100 };
    let err = expand(fs, &["/many/*".to_string()], limited).unwrap_err();
    assert!(matches!(err, FsError::Limit { .. }), "{err:?}");
}

#[test]
fn disks_strongroom_cannot_read_are_named() {
    let tmp = TempDir::new("signatures");
    for (kind, words) in [
        ("unformatted", "unformatted"),
        ("luks", "LUKS"),
        ("lvm", "LVM2"),
        ("btrfs", "btrfs"),
        ("zfs", "ZFS"),
        ("swap", "swap"),
    ] {
        let out = tmp.0.join(format!("{kind}.img"));
        build(&["image", "--fs", kind, "--out", out.to_str().unwrap()]);
        let err = open(disk(&out), None)
            .err()
            .unwrap_or_else(|| panic!("{kind} opened"));
        assert_eq!(err.error_name(), "Strongroom.InvalidInput", "{kind}: {err}");
        assert!(err.to_string().contains(words), "{kind}: {err}");
    }
}

/// A file larger than 4 GiB, with data at its start, across the 4 GiB mark
/// and at its end (offsets past 32 bits), sparse in between: restored from
/// ext4 and from NTFS with the tree's SHA-256, and written with holes.
#[test]
fn a_file_over_4_gib_restores_with_its_end_and_its_holes() {
    use std::os::unix::fs::MetadataExt;
    let tree = strongroom_tests::fsimages::tree_with("big", &["--big"]);
    let m = tree.manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "big/over-4GiB")
        .expect("the big file is in the tree")
        .clone();
    let size = m["size"].as_u64().unwrap();
    assert!(size > 4 << 30);
    for fs_name in ["ext4", "ntfs"] {
        let (img, _) = image(&tree, fs_name, "bare", &[]);
        let mut opened = open(disk(&img), None).unwrap();
        let fs = opened.fs.as_mut();
        let entries = expand(fs, &["/big/over-4GiB".to_string()], Limits::default()).unwrap();
        assert_eq!(entries[0].size, size, "{fs_name}");
        let out = tree.dir.parent().unwrap().join(format!("big-{fs_name}"));
        let restored = extract(fs, &entries, &out, Limits::default(), &mut |_| {}).unwrap();
        assert_eq!(
            restored[0].sha256.as_deref(),
            m["sha256"].as_str(),
            "{fs_name}: SHA-256"
        );
        let local = std::fs::metadata(out.join("big/over-4GiB")).unwrap();
        assert_eq!(local.len(), size, "{fs_name}: size");
        assert!(
            local.blocks() * 512 < 64 << 20,
            "{fs_name}: written with holes ({} blocks)",
            local.blocks()
        );
        std::fs::remove_dir_all(&out).unwrap();
        std::fs::remove_file(&img).unwrap();
    }
}

/// An image with a symlink and a path through it (`/lnk -> /tmp/...`,
/// `/lnk/file`): restoring both never writes outside the output folder.
#[test]
fn nothing_is_restored_through_a_symlink_out_of_the_folder() {
    let tmp = TempDir::new("escape");
    let outside = tmp.0.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("file"), b"host's own").unwrap();
    let tree = tmp.0.join("tree");
    std::fs::create_dir_all(tree.join("lnk")).unwrap();
    std::fs::write(tree.join("lnk/file"), b"from the image").unwrap();
    // The image's /lnk is a directory; the restore makes /lnk a symlink to
    // the host's folder first (as a hostile image would order it).
    let img = tmp.0.join("disk.img");
    let mkfs = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mkfs.ext4 (make setup installs e2fsprogs)");
    assert!(std::process::Command::new(mkfs)
        .args(["-q", "-F", "-d"])
        .arg(&tree)
        .arg(&img)
        .arg("8M")
        .status()
        .unwrap()
        .success());
    let out = tmp.0.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("lnk")).unwrap();
    let mut opened = open(disk(&img), None).unwrap();
    let fs = opened.fs.as_mut();
    let entries = expand(fs, &["/lnk".to_string()], Limits::default()).unwrap();
    let err = extract(fs, &entries, &out, Limits::default(), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert_eq!(std::fs::read(outside.join("file")).unwrap(), b"host's own");
}

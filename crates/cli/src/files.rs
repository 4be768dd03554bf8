//! `strongroom files`: list and restore files straight out of a disk image,
//! with the same readers the file restore runs.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::json;
use strongroom_fs::local::{extract, Restored};
use strongroom_fs::walk::{expand, walk, Limits};
use strongroom_fs::{
    open, BlockSource, CacheLimits, CachedSource, Entry, FsError, ImageFile, Kind, Opened,
    TableKind,
};

#[derive(Subcommand)]
pub enum FilesCommand {
    /// List a path (a directory's entries, or one entry) of a disk's filesystem.
    Ls(LsArgs),
    /// Restore paths and globs from a disk's filesystem into a folder.
    Get(GetArgs),
}

#[derive(Args)]
#[group(required = true, multiple = false, id = "disk")]
pub struct Disk {
    /// An EBS snapshot, read through the EBS direct APIs with the
    /// environment's credentials (no volume, no instance).
    #[arg(long, group = "disk")]
    snapshot: Option<String>,
    /// A raw disk or partition image (a local file or block device).
    #[arg(long, group = "disk")]
    image: Option<PathBuf>,
}

#[derive(Args)]
pub struct DiskArgs {
    #[command(flatten)]
    disk: Disk,
    /// The snapshot's region (default: the environment's, AWS_REGION).
    #[arg(long, requires = "snapshot")]
    region: Option<String>,
    /// The partition to read (numbered as Linux numbers them: GPT entries
    /// from 1, MBR 1-4 primary, 5 on logical). Without it: the whole disk
    /// when it has no partition table, else the one partition with a
    /// filesystem Strongroom reads.
    #[arg(long)]
    partition: Option<u32>,
}

#[derive(Args)]
pub struct LsArgs {
    #[command(flatten)]
    disk: DiskArgs,
    /// Everything under the directory, not only its entries.
    #[arg(long)]
    recursive: bool,
    /// JSON: one array of entries.
    #[arg(long)]
    json: bool,
    /// The path, from the filesystem's root.
    #[arg(default_value = "/")]
    path: String,
}

#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    disk: DiskArgs,
    /// The folder to restore into; each file lands at its path relative to
    /// the filesystem's root.
    #[arg(long)]
    out: PathBuf,
    /// JSON: the report (every restored entry with its SHA-256).
    #[arg(long)]
    json: bool,
    /// Paths and globs (`*`, `?`, `[a-z]`, `**`); directories are restored
    /// with everything under them.
    #[arg(required = true)]
    paths: Vec<String>,
}

/// An error for the CLI: the Strongroom error name, then what happened.
fn fail(e: FsError) -> String {
    format!("{}: {e}", e.error_name())
}

/// The disk, and the runtime a snapshot's reads run on (kept for as long as
/// the disk is read; the reads themselves block, on this thread).
struct OpenDisk {
    source: Arc<dyn BlockSource>,
    _runtime: Option<tokio::runtime::Runtime>,
}

/// Whether `id` has the shape of an EBS snapshot id.
fn is_snapshot_id(id: &str) -> bool {
    id.strip_prefix("snap-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn open_snapshot(id: &str, region: Option<&str>) -> Result<OpenDisk, String> {
    if !is_snapshot_id(id) {
        return Err(format!(
            "Strongroom.InvalidInput: --snapshot {id:?} is not a snapshot id: give one such as snap-0123456789abcdef0"
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let source = runtime.block_on(async {
        let cloud = strongroom_aws::AwsCloud::from_env().await;
        let region = match region {
            Some(r) => r.to_string(),
            None => cloud
                .clients
                .config()
                .region()
                .map(|r| r.to_string())
                .ok_or("Strongroom.InvalidInput: no region: give --region or set AWS_REGION")?,
        };
        let snapshot =
            strongroom_aws::ebs_direct::EbsSnapshot::open(cloud.clients.own_ebs(&region), id)
                .await
                .map_err(|source| {
                    fail(FsError::Source {
                        path: id.to_string(),
                        source,
                    })
                })?;
        Ok::<_, String>(
            Arc::new(CachedSource::new(snapshot, CacheLimits::default())) as Arc<dyn BlockSource>,
        )
    })?;
    Ok(OpenDisk {
        source,
        _runtime: Some(runtime),
    })
}

fn open_disk(args: &DiskArgs) -> Result<(OpenDisk, Opened), String> {
    let disk = match (&args.disk.snapshot, &args.disk.image) {
        (Some(id), _) => open_snapshot(id, args.region.as_deref())?,
        (None, Some(image)) => OpenDisk {
            source: Arc::new(ImageFile::open(image).map_err(|source| {
                fail(FsError::Source {
                    path: image.display().to_string(),
                    source,
                })
            })?),
            _runtime: None,
        },
        (None, None) => return Err("Strongroom.InvalidInput: give --snapshot or --image".into()),
    };
    let opened = open(disk.source.clone(), args.partition).map_err(fail)?;
    Ok((disk, opened))
}

fn describe(opened: &Opened) -> String {
    let table = match opened.table {
        TableKind::Gpt => "GPT",
        TableKind::Mbr => "MBR",
        TableKind::None => "no partition table",
    };
    match &opened.partition {
        Some(p) => format!(
            "{} on partition {} ({table}, {} MiB at {} MiB)",
            opened.content.describe(),
            p.number,
            p.size >> 20,
            p.start >> 20
        ),
        None => format!("{} on the whole disk ({table})", opened.content.describe()),
    }
}

fn line(e: &Entry, target: Option<&str>) -> String {
    let kind = match e.kind {
        Kind::File => '-',
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::Other => '?',
    };
    let mode = e.mode.map_or("----".to_string(), |m| format!("{m:04o}"));
    let owner = match (e.uid, e.gid) {
        (Some(u), Some(g)) => format!("{u}:{g}"),
        _ => "-".to_string(),
    };
    let time = e.modified.map_or("-".to_string(), |t| {
        time::OffsetDateTime::from_unix_timestamp(t.seconds)
            .map(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            })
            .unwrap_or_else(|_| t.seconds.to_string())
    });
    let mut s = format!(
        "{kind}{mode} {owner:>11} {:>14} {time:>20} {}",
        e.size, e.path
    );
    if let Some(t) = target {
        s.push_str(" -> ");
        s.push_str(t);
    }
    s
}

pub fn run(cmd: &FilesCommand) -> Result<(), String> {
    match cmd {
        FilesCommand::Ls(args) => ls(args),
        FilesCommand::Get(args) => get(args),
    }
}

fn ls(args: &LsArgs) -> Result<(), String> {
    let (disk, mut opened) = open_disk(&args.disk)?;
    let fs = opened.fs.as_mut();
    let path = strongroom_fs::normalize(&args.path).map_err(fail)?;
    let root = fs.stat(&path).map_err(fail)?;
    let mut entries: Vec<(Entry, Option<String>)> = Vec::new();
    let mut add =
        |fs: &mut dyn strongroom_fs::Filesystem, e: &Entry| -> strongroom_fs::Result<()> {
            let target = if e.kind == Kind::Symlink {
                Some(fs.read_link(&e.path)?)
            } else {
                None
            };
            entries.push((e.clone(), target));
            Ok(())
        };
    if root.kind != Kind::Dir {
        add(fs, &root).map_err(fail)?;
    } else if args.recursive {
        walk(fs, root.clone(), Limits::default(), &mut |fs, e| {
            if e.path == root.path {
                Ok(())
            } else {
                add(fs, e)
            }
        })
        .map_err(fail)?;
    } else {
        for e in fs.list(&path).map_err(fail)? {
            add(fs, &e).map_err(fail)?;
        }
    }
    if args.json {
        let items: Vec<serde_json::Value> = entries
            .iter()
            .map(|(e, t)| {
                let mut v = serde_json::to_value(e).expect("an entry serializes");
                if let Some(t) = t {
                    v["target"] = json!(t);
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items).expect("JSON"));
    } else {
        eprintln!("{}", describe(&opened));
        for (e, t) in &entries {
            println!("{}", line(e, t.as_deref()));
        }
    }
    let _ = disk;
    Ok(())
}

fn get(args: &GetArgs) -> Result<(), String> {
    let (disk, mut opened) = open_disk(&args.disk)?;
    let what = describe(&opened);
    let fs = opened.fs.as_mut();
    let entries = expand(fs, &args.paths, Limits::default()).map_err(fail)?;
    let quiet = args.json;
    let restored = extract(
        fs,
        &entries,
        &args.out,
        Limits::default(),
        &mut |r: &Restored| {
            if !quiet {
                match r.kind {
                    Kind::File => println!(
                        "file    {:>14} {} {}{}",
                        r.size,
                        r.sha256.as_deref().unwrap_or("-"),
                        r.path,
                        r.link_of
                            .as_ref()
                            .map(|l| format!(" (hard link of {l})"))
                            .unwrap_or_default()
                    ),
                    Kind::Dir => println!("dir     {:>14} {:64} {}", "", "", r.path),
                    Kind::Symlink => println!(
                        "symlink {:>14} {:64} {} -> {}",
                        "",
                        "",
                        r.path,
                        r.target.as_deref().unwrap_or("")
                    ),
                    Kind::Other => {
                        println!("skipped {:>14} {:64} {} (a special file)", "", "", r.path)
                    }
                }
            }
        },
    )
    .map_err(fail)?;
    let stats = disk.source.stats();
    let files = restored.iter().filter(|r| r.kind == Kind::File).count();
    let bytes: u64 = restored
        .iter()
        .filter(|r| r.kind == Kind::File && r.link_of.is_none())
        .map(|r| r.size)
        .sum();
    if args.json {
        let report = json!({
            "filesystem": what,
            "out": args.out,
            "restored": restored,
            "files": files,
            "bytes": bytes,
            "disk": { "size": disk.source.size(), "read": stats },
        });
        println!("{}", serde_json::to_string_pretty(&report).expect("JSON"));
    } else {
        eprintln!(
            "restored {files} files ({bytes} bytes) and {} other entries from {what} into {}; read {} bytes of a {}-byte disk",
            restored.len() - files,
            args.out.display(),
            stats.bytes_fetched,
            disk.source.size()
        );
    }
    Ok(())
}

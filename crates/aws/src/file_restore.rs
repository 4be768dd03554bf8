//! File restores: one CopyFiles step, reading one EBS snapshot through the
//! EBS direct APIs (with the location's credentials: a vault's role
//! included) and writing to the destination bucket (with the function's own
//! credentials), streamed: memory holds one part of one file, plus the
//! block cache.
//!
//! The filesystem readers are synchronous (and ext4's is not `Send`), so a
//! step runs them on one blocking thread; their block fetches and the S3
//! calls block on the runtime from there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::Region;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use aws_smithy_types::base64;
use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest, Sha256};
use strongroom_core::model::Location;
use strongroom_core::ports::ObjectStore;
use strongroom_core::restore::files::{
    object_key, part_size, FileCopied, FileToCopy, FilesProgress, Upload, MAX_OBJECT_BYTES,
    SINGLE_PUT_BYTES,
};
use strongroom_core::restore::run::{RestorePlan, RestoreState, REPORTS_PREFIX};
use strongroom_core::runs::S3Object;
use strongroom_core::{CloudError, ErrorKind};
use strongroom_fs::local::roots;
use strongroom_fs::walk::{expand, walk, Limits};
use strongroom_fs::{BlockSource, CacheLimits, CachedSource, FsError, Kind, SourceError};
use tokio::runtime::Handle;

use crate::ebs_direct::EbsSnapshot;
use crate::error::from_sdk;
use crate::AwsCloud;

/// How long one step copies before handing on (the function's timeout is
/// 15 minutes). `STRONGROOM_FILES_STEP_SECONDS` overrides it.
const STEP_SECONDS: u64 = 600;
/// Entries one file restore may name (directories walked included).
const MAX_ENTRIES: u64 = 1_000_000;
/// S3's longest key.
const MAX_KEY_BYTES: usize = 1024;

fn step_budget() -> (Duration, u64) {
    let seconds = std::env::var("STRONGROOM_FILES_STEP_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(STEP_SECONDS);
    // Bytes per step (tests make restores span steps with a small one).
    let bytes = std::env::var("STRONGROOM_FILES_STEP_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    (Duration::from_secs(seconds), bytes)
}

fn fs_error(e: FsError, snapshot: &str, region: &str) -> CloudError {
    let kind = match e.error_name() {
        "Strongroom.NotFound" => ErrorKind::NotFound,
        "Strongroom.AccessDenied" => ErrorKind::AccessDenied,
        "Strongroom.Throttled" => ErrorKind::Throttled,
        "Strongroom.InvalidInput" => ErrorKind::InvalidInput,
        _ => ErrorKind::Internal,
    };
    let message = match &e {
        FsError::NotFound { .. } => format!("restore.paths: {e}"),
        _ => e.to_string(),
    };
    CloudError::new(kind, "ReadFiles", snapshot, region, message)
}

fn source_error(e: SourceError, snapshot: &str, region: &str) -> CloudError {
    fs_error(
        FsError::Source {
            path: snapshot.to_owned(),
            source: e,
        },
        snapshot,
        region,
    )
}

/// The destination bucket's S3 client: the function's own credentials, the
/// bucket's region.
fn s3_in(cloud: &AwsCloud, region: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(cloud.clients.config())
            .region(Region::new(region.to_owned()))
            .build(),
    )
}

/// Before anything is read: the destination bucket is there and reachable.
pub(crate) async fn preflight(cloud: &AwsCloud, plan: &RestorePlan) -> Result<(), CloudError> {
    let RestorePlan::Files {
        bucket,
        bucket_region,
        ..
    } = plan
    else {
        return Ok(());
    };
    match s3_in(cloud, bucket_region)
        .head_bucket()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = from_sdk(e, "HeadBucket", bucket, bucket_region);
            let why = match e.kind {
                ErrorKind::NotFound => "does not exist (in that region)",
                ErrorKind::AccessDenied => "cannot be written by Strongroom's restore role",
                _ => return Err(e),
            };
            Err(CloudError::new(
                e.kind,
                "HeadBucket",
                bucket,
                bucket_region,
                format!("restore.destination.bucket: `{bucket}` {why}"),
            ))
        }
    }
}

/// The snapshot of an AMI's volume at `device` (default: its root device).
async fn image_snapshot(
    cloud: &AwsCloud,
    location: &Location,
    image: &str,
    device: Option<&str>,
) -> Result<String, CloudError> {
    let cx = cloud.clients.for_location(location).await?;
    let out = cx
        .ec2()
        .describe_images()
        .image_ids(image)
        .send()
        .await
        .map_err(|e| from_sdk(e, "DescribeImages", image, &location.region))?;
    let Some(i) = out.images().first() else {
        return Err(CloudError::new(
            ErrorKind::NotFound,
            "DescribeImages",
            image,
            &location.region,
            format!("from.recovery_point: the AMI `{image}` is not there any more"),
        ));
    };
    let device = device.or(i.root_device_name()).unwrap_or("/dev/xvda");
    let mappings = i.block_device_mappings();
    mappings
        .iter()
        .find(|m| m.device_name() == Some(device))
        .and_then(|m| m.ebs().and_then(|e| e.snapshot_id()))
        .map(str::to_owned)
        .ok_or_else(|| {
            CloudError::new(
                ErrorKind::InvalidInput,
                "DescribeImages",
                image,
                &location.region,
                format!(
                    "restore.device: the AMI `{image}` has no EBS volume at `{device}`; it has {}",
                    mappings
                        .iter()
                        .filter(|m| m.ebs().is_some())
                        .filter_map(|m| m.device_name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

/// One CopyFiles step.
pub(crate) async fn copy_files(
    cloud: &AwsCloud,
    state: &RestoreState,
) -> Result<FilesProgress, CloudError> {
    let RestorePlan::Files {
        snapshot,
        image,
        device,
        ..
    } = &state.plan
    else {
        return Err(CloudError::new(
            ErrorKind::InvalidInput,
            "CopyFiles",
            &state.execution,
            &state.location.region,
            "state.plan: not a file restore",
        ));
    };
    let region = state.location.region.clone();
    let mut progress = state.files.clone().unwrap_or_default();
    progress.steps += 1;
    let snapshot_id = match (&progress.snapshot, snapshot, image) {
        (Some(s), _, _) | (None, Some(s), _) => s.clone(),
        (None, None, Some(i)) => {
            image_snapshot(cloud, &state.location, i, device.as_deref()).await?
        }
        (None, None, None) => {
            return Err(CloudError::new(
                ErrorKind::InvalidInput,
                "CopyFiles",
                &state.execution,
                &region,
                "state.plan: names neither a snapshot nor an image",
            ))
        }
    };
    progress.snapshot = Some(snapshot_id.clone());
    let cx = cloud.clients.for_location(&state.location).await?;
    let snap = EbsSnapshot::open(cx.ebs(), &snapshot_id)
        .await
        .map_err(|e| source_error(e, &snapshot_id, &region))?;
    let source = Arc::new(CachedSource::new(snap, CacheLimits::default()));
    let step = Step {
        cloud: cloud.clone(),
        handle: Handle::current(),
        state: state.clone(),
        source,
        snapshot: snapshot_id,
        region,
    };
    tokio::task::spawn_blocking(move || step.run(progress))
        .await
        .map_err(|e| CloudError::new(ErrorKind::Internal, "CopyFiles", "", "", e.to_string()))?
}

/// Aborts the upload a failed restore left (CleanUp).
pub(crate) async fn abort(cloud: &AwsCloud, state: &RestoreState) -> Result<(), CloudError> {
    let (
        RestorePlan::Files {
            bucket,
            bucket_region,
            ..
        },
        Some(FilesProgress {
            upload: Some(u), ..
        }),
    ) = (&state.plan, &state.files)
    else {
        return Ok(());
    };
    abort_upload(&s3_in(cloud, bucket_region), bucket, u, bucket_region).await
}

/// Aborts one multipart upload; one already gone (`NoSuchUpload`) is done.
async fn abort_upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    u: &Upload,
    region: &str,
) -> Result<(), CloudError> {
    match s3
        .abort_multipart_upload()
        .bucket(bucket)
        .key(&u.key)
        .upload_id(&u.upload_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = from_sdk(e, "AbortMultipartUpload", &u.key, region);
            if e.kind == ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

struct Step {
    cloud: AwsCloud,
    handle: Handle,
    state: RestoreState,
    source: Arc<CachedSource<EbsSnapshot>>,
    snapshot: String,
    region: String,
}

/// The S3 user metadata of a restored file.
fn metadata(f: &FileToCopy, point: &str) -> Vec<(String, String)> {
    let mut m = vec![("strongroom-recovery-point".to_owned(), point.to_owned())];
    if let Some(mode) = f.mode {
        m.push(("mode".into(), format!("{mode:04o}")));
    }
    if let Some(uid) = f.uid {
        m.push(("uid".into(), uid.to_string()));
    }
    if let Some(gid) = f.gid {
        m.push(("gid".into(), gid.to_string()));
    }
    if let Some(t) = f.mtime {
        m.push(("mtime".into(), t.to_string()));
    }
    m
}

impl Step {
    fn err(&self, e: FsError) -> CloudError {
        fs_error(e, &self.snapshot, &self.region)
    }

    fn list_object(&self, name: &str) -> S3Object {
        S3Object {
            bucket: self.state.bucket.clone(),
            key: format!("{REPORTS_PREFIX}{}/{name}", self.state.execution),
        }
    }

    fn run(self, mut progress: FilesProgress) -> Result<FilesProgress, CloudError> {
        // The budget counts from the start of the step: the first step's
        // listing takes from it.
        let (budget, step_bytes) = step_budget();
        let deadline = Instant::now() + budget;
        let RestorePlan::Files {
            partition,
            paths,
            bucket,
            prefix,
            kms_key_id,
            bucket_region,
            ..
        } = self.state.plan.clone()
        else {
            unreachable!("checked by copy_files");
        };
        let disk: Arc<dyn BlockSource> = self.source.clone();
        let mut opened = strongroom_fs::open(disk, partition).map_err(|e| self.err(e))?;
        let fs = opened.fs.as_mut();
        let limits = Limits {
            max_entries: MAX_ENTRIES,
        };

        // The first step lists what the paths name.
        let todo: Vec<FileToCopy> = match &progress.todo {
            None => {
                let found = expand(fs, &paths, limits).map_err(|e| self.err(e))?;
                let mut todo = Vec::new();
                for root in roots(&found) {
                    // One budget for every path: what is left of it.
                    let left = Limits {
                        max_entries: MAX_ENTRIES.saturating_sub(todo.len() as u64),
                    };
                    walk(fs, root.clone(), left, &mut |fs, e| {
                        if todo.len() as u64 >= MAX_ENTRIES {
                            return Err(FsError::Limit {
                                path: e.path.clone(),
                                what: format!(
                                    "the paths name more than {MAX_ENTRIES} entries; restore fewer at a time"
                                ),
                            });
                        }
                        let target = if e.kind == Kind::Symlink {
                            Some(fs.read_link(&e.path)?)
                        } else {
                            None
                        };
                        todo.push(FileToCopy {
                            path: e.path.clone(),
                            kind: format!("{:?}", e.kind).to_lowercase(),
                            size: if e.kind == Kind::File { e.size } else { 0 },
                            mode: e.mode,
                            uid: e.uid,
                            gid: e.gid,
                            mtime: e.modified.map(|t| t.seconds),
                            target,
                        });
                        Ok(())
                    })
                    .map_err(|e| self.err(e))?;
                }
                // S3 keys are at most 1,024 bytes: found now, not hours in.
                if let Some(long) = todo.iter().find(|f| {
                    f.kind == "file" && object_key(&prefix, &f.path).len() > MAX_KEY_BYTES
                }) {
                    return Err(self.err(FsError::InvalidInput(format!(
                        "restore.destination.prefix: {} makes an S3 key longer than {MAX_KEY_BYTES} bytes; use a shorter prefix or restore its directory into another bucket",
                        long.path
                    ))));
                }
                if let Some(big) = todo.iter().find(|f| f.size > MAX_OBJECT_BYTES) {
                    return Err(self.err(FsError::InvalidInput(format!(
                        "restore.paths: {} is {} bytes, more than S3's largest object (5 TiB)",
                        big.path, big.size
                    ))));
                }
                progress.total_entries = todo.len() as u64;
                progress.total_bytes = todo.iter().map(|f| f.size).sum();
                progress.filesystem = match &opened.partition {
                    Some(p) => format!("{} on partition {}", opened.content.describe(), p.number),
                    None => format!("{} on the whole disk", opened.content.describe()),
                };
                let at = self.list_object("files-todo.json");
                self.put_json(&at, &todo)?;
                progress.todo = Some(at);
                todo
            }
            Some(at) => self.get_json(at)?,
        };
        let mut results: Vec<FileCopied> = match &progress.results {
            Some(at) => self.get_json(at)?,
            None => Vec::new(),
        };

        let s3 = s3_in(&self.cloud, &bucket_region);
        let mut sent = 0u64;
        let dest = Dest {
            s3: &s3,
            bucket: &bucket,
            kms_key_id: kms_key_id.as_deref(),
            region: &bucket_region,
            point: &self.state.point.id,
        };
        while (progress.next as usize) < todo.len() {
            if Instant::now() >= deadline || sent >= step_bytes {
                break;
            }
            let f = &todo[progress.next as usize];
            if f.kind != "file" {
                results.push(FileCopied {
                    file: f.clone(),
                    key: None,
                    sha256: None,
                });
                progress.next += 1;
                continue;
            }
            let key = object_key(&prefix, &f.path);
            // The upload this step was handed (a retry of this step gets it
            // again: it is never aborted here).
            let carried = progress.upload.as_ref().map(|u| u.upload_id.clone());
            // A carried upload that is gone (an earlier attempt of this step
            // completed or lost it) is dropped: the file starts again, whole.
            let mut copied;
            let mut attempts = 0;
            loop {
                attempts += 1;
                copied = self.copy_one(
                    fs,
                    f,
                    &key,
                    &dest,
                    &mut progress.upload,
                    &mut sent,
                    deadline,
                    step_bytes,
                );
                let upload_gone = matches!(&copied, Err(e) if e.kind == ErrorKind::NotFound
                    && matches!(e.operation, "UploadPart" | "ListParts" | "CompleteMultipartUpload"));
                if !(upload_gone && carried.is_some() && attempts == 1) {
                    break;
                }
                progress.upload = None;
            }
            match copied {
                Ok(Some(sha256)) => {
                    progress.copied_files += 1;
                    progress.copied_bytes += f.size;
                    results.push(FileCopied {
                        file: f.clone(),
                        key: Some(key),
                        sha256: Some(sha256),
                    });
                    progress.next += 1;
                }
                Ok(None) => break, // paused inside the file: the next step goes on
                Err(e) => {
                    // Nothing half-written stays: an upload this step began
                    // goes. One it was handed stays for the step's retry
                    // (CleanUp aborts it if the restore fails).
                    if let Some(u) = progress.upload.take() {
                        if carried.as_deref() != Some(u.upload_id.as_str()) {
                            // Best effort: the step's own error is the one to report.
                            let _ = self.handle.block_on(abort_upload(
                                &s3,
                                &bucket,
                                &u,
                                &bucket_region,
                            ));
                        }
                    }
                    return Err(e);
                }
            }
        }
        let at = self.list_object("files.json");
        self.put_json(&at, &results)?;
        progress.results = Some(at);
        let stats = self.source.stats();
        progress.blocks_fetched += stats.blocks_fetched;
        progress.bytes_fetched += stats.bytes_fetched;
        progress.done = progress.next as usize >= todo.len() && progress.upload.is_none();
        Ok(progress)
    }

    fn put_json<T: serde::Serialize>(&self, at: &S3Object, v: &T) -> Result<(), CloudError> {
        let body = serde_json::to_vec(v).map_err(|e| {
            CloudError::new(
                ErrorKind::Internal,
                "PutObject",
                &at.key,
                &self.region,
                e.to_string(),
            )
        })?;
        self.handle.block_on(self.cloud.put_object(at, body))
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, at: &S3Object) -> Result<T, CloudError> {
        let body = self.handle.block_on(self.cloud.get_object(at))?;
        serde_json::from_slice(&body).map_err(|e| {
            CloudError::new(
                ErrorKind::Internal,
                "GetObject",
                &at.key,
                &self.region,
                format!("the file restore's list is not what it wrote: {e}"),
            )
        })
    }

    /// Copies one file, or goes on with its upload; `Some(sha256)` when the
    /// file is complete, `None` when the step's budget ran out inside it.
    #[allow(clippy::too_many_arguments)]
    fn copy_one(
        &self,
        fs: &mut dyn strongroom_fs::Filesystem,
        f: &FileToCopy,
        key: &str,
        dest: &Dest<'_>,
        upload: &mut Option<Upload>,
        sent: &mut u64,
        deadline: Instant,
        step_bytes: u64,
    ) -> Result<Option<String>, CloudError> {
        if f.size <= SINGLE_PUT_BYTES && upload.is_none() {
            let mut body = Vec::with_capacity(f.size as usize);
            fs.read(&f.path, 0, f.size, &mut |chunk| {
                body.extend_from_slice(chunk);
                Ok(())
            })
            .map_err(|e| self.err(e))?;
            let sha = strongroom_fs::local::hex(&Sha256::digest(&body));
            *sent += body.len() as u64;
            let mut put = dest
                .s3
                .put_object()
                .bucket(dest.bucket)
                .key(key)
                .body(ByteStream::from(body));
            for (k, v) in metadata(f, dest.point) {
                put = put.metadata(k, v);
            }
            if let Some(k) = dest.kms_key_id {
                put = put
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(k);
            }
            self.handle
                .block_on(put.send())
                .map_err(|e| from_sdk(e, "PutObject", key, dest.region))?;
            return Ok(Some(sha));
        }
        // Multipart: start it, or go on with the one in progress.
        let mut u = match upload.take() {
            Some(u) if u.key == key => u,
            other => {
                // An upload of another key cannot be continued: it goes.
                if let Some(old) = other {
                    self.handle
                        .block_on(abort_upload(dest.s3, dest.bucket, &old, dest.region))?;
                }
                let mut create = dest
                    .s3
                    .create_multipart_upload()
                    .bucket(dest.bucket)
                    .key(key);
                for (k, v) in metadata(f, dest.point) {
                    create = create.metadata(k, v);
                }
                if let Some(k) = dest.kms_key_id {
                    create = create
                        .server_side_encryption(ServerSideEncryption::AwsKms)
                        .ssekms_key_id(k);
                }
                let out = self
                    .handle
                    .block_on(create.send())
                    .map_err(|e| from_sdk(e, "CreateMultipartUpload", key, dest.region))?;
                Upload {
                    key: key.to_owned(),
                    upload_id: out.upload_id().unwrap_or_default().to_owned(),
                    offset: 0,
                    part: 1,
                    part_size: part_size(f.size),
                    sha256_state: encode_state(&Sha256::new()),
                }
            }
        };
        let mut hasher = decode_state(&u.sha256_state).ok_or_else(|| {
            CloudError::new(
                ErrorKind::Internal,
                "CopyFiles",
                key,
                dest.region,
                "the SHA-256 state carried between steps is damaged",
            )
        })?;
        while u.offset < f.size {
            if u.offset > 0 && (Instant::now() >= deadline || *sent >= step_bytes) {
                u.sha256_state = encode_state(&hasher);
                *upload = Some(u);
                return Ok(None);
            }
            let end = (u.offset + u.part_size).min(f.size);
            let mut part = Vec::with_capacity((end - u.offset) as usize);
            fs.read(&f.path, u.offset, end, &mut |chunk| {
                hasher.update(chunk);
                part.extend_from_slice(chunk);
                Ok(())
            })
            .map_err(|e| self.err(e))?;
            let n = part.len() as u64;
            *upload = Some(u.clone());
            self.handle
                .block_on(
                    dest.s3
                        .upload_part()
                        .bucket(dest.bucket)
                        .key(key)
                        .upload_id(&u.upload_id)
                        .part_number(u.part as i32)
                        .body(ByteStream::from(part))
                        .send(),
                )
                .map_err(|e| from_sdk(e, "UploadPart", key, dest.region))?;
            *sent += n;
            u.offset += n;
            u.part += 1;
        }
        // Every part, as S3 has them (not kept between steps).
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .handle
                .block_on(
                    dest.s3
                        .list_parts()
                        .bucket(dest.bucket)
                        .key(key)
                        .upload_id(&u.upload_id)
                        .set_part_number_marker(marker.clone())
                        .send(),
                )
                .map_err(|e| from_sdk(e, "ListParts", key, dest.region))?;
            for p in out.parts() {
                parts.push(
                    CompletedPart::builder()
                        .set_part_number(p.part_number())
                        .set_e_tag(p.e_tag().map(str::to_owned))
                        .build(),
                );
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(m)) => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        *upload = Some(u.clone());
        self.handle
            .block_on(
                dest.s3
                    .complete_multipart_upload()
                    .bucket(dest.bucket)
                    .key(key)
                    .upload_id(&u.upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send(),
            )
            .map_err(|e| from_sdk(e, "CompleteMultipartUpload", key, dest.region))?;
        *upload = None;
        Ok(Some(strongroom_fs::local::hex(&hasher.finalize())))
    }
}

struct Dest<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    kms_key_id: Option<&'a str>,
    region: &'a str,
    point: &'a str,
}

fn encode_state(h: &Sha256) -> String {
    base64::encode(h.serialize())
}

fn decode_state(s: &str) -> Option<Sha256> {
    let bytes = base64::decode(s).ok()?;
    let array = bytes.as_slice().try_into().ok()?;
    Sha256::deserialize(array).ok()
}

//! File restores: files read out of one EBS snapshot, written to S3.
//!
//! The restore state machine runs CopyFiles again and again: each step
//! copies files (and parts of a large one) for a bounded time, then hands
//! its progress to the next. The first step lists what the paths name into
//! the stack's bucket (`restores/<execution>/files-todo.json`); every step
//! appends what it copied to `restores/<execution>/files.json`, which the
//! report points at. A file is streamed as a multipart upload (memory holds
//! one part), carried from step to step by its upload id, its next part and
//! the SHA-256 state of what was read so far.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::runs::S3Object;

/// S3's largest object.
pub const MAX_OBJECT_BYTES: u64 = 5 << 40;
/// S3's most parts per upload.
pub const MAX_PARTS: u64 = 10_000;
/// The smallest part Strongroom uploads (S3's minimum is 5 MiB).
pub const MIN_PART_BYTES: u64 = 8 << 20;
/// Files at most this large are written with one PutObject.
pub const SINGLE_PUT_BYTES: u64 = MIN_PART_BYTES;
/// The most CopyFiles steps of one restore (each copies for minutes).
pub const MAX_STEPS: u32 = 2_000;

/// The part size for a file of `size` bytes: 8 MiB, or more so that the
/// file fits in S3's 10,000 parts, in whole MiB.
pub fn part_size(size: u64) -> u64 {
    let need = size.div_ceil(MAX_PARTS);
    need.max(MIN_PART_BYTES).div_ceil(1 << 20) << 20
}

/// The object key of the file at `path` (absolute on the filesystem).
pub fn object_key(prefix: &str, path: &str) -> String {
    format!("{prefix}{}", path.trim_start_matches('/'))
}

/// A file to copy, as listed at the first step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileToCopy {
    pub path: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Modification time, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// One entry restored, in `files.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCopied {
    #[serde(flatten)]
    pub file: FileToCopy,
    /// The object written (files only: directories and links are listed,
    /// with their metadata, but S3 has no such objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A file's multipart upload, between steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
    /// Bytes of the file uploaded so far (whole parts).
    pub offset: u64,
    /// The next part's number (from 1).
    pub part: u32,
    pub part_size: u64,
    /// The SHA-256 state after `offset` bytes (base64).
    pub sha256_state: String,
}

/// A file restore's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesProgress {
    /// The snapshot read (an AMI's, found at the first step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// What the paths name (written at the first step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub todo: Option<S3Object>,
    /// What was copied so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<S3Object>,
    pub total_entries: u64,
    pub total_bytes: u64,
    /// The index in `todo` of the next entry.
    pub next: u64,
    pub copied_files: u64,
    pub copied_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Upload>,
    /// Snapshot blocks fetched, and their bytes, in all steps.
    pub blocks_fetched: u64,
    pub bytes_fetched: u64,
    pub steps: u32,
    pub done: bool,
    /// What the disk holds, e.g. `xfs on partition 1 (GPT)`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filesystem: String,
}

impl FilesProgress {
    /// Checks progress handed to a step (a step trusts no input): its lists
    /// are this restore's own in the stack's bucket, its snapshot is a
    /// snapshot id, its upload is under the plan's prefix and has the shape
    /// a step makes. Nothing is read or written on a progress refused here.
    pub fn validate(&self, execution: &str, bucket: &str, prefix: &str) -> Result<(), Error> {
        let own = |o: &Option<S3Object>, name: &str| {
            o.as_ref().is_none_or(|o| {
                o.bucket == bucket
                    && o.key == format!("{}{execution}/{name}", super::run::REPORTS_PREFIX)
            })
        };
        if !own(&self.todo, "files-todo.json") || !own(&self.results, "files.json") {
            return Err(Error::invalid(
                "state.files",
                "names lists that are not this restore's (restores/<execution>/ in the stack's bucket)",
            ));
        }
        if let Some(s) = &self.snapshot {
            let ok = s.strip_prefix("snap-").is_some_and(|h| {
                matches!(h.len(), 8 | 17) && h.chars().all(|c| c.is_ascii_hexdigit())
            });
            if !ok {
                return Err(Error::invalid(
                    "state.files.snapshot",
                    format!("`{s}` is not a snapshot id"),
                ));
            }
        }
        if self.next > self.total_entries || self.steps > MAX_STEPS {
            return Err(Error::invalid(
                "state.files",
                "is past its own list or its steps",
            ));
        }
        if let Some(u) = &self.upload {
            let ok = u.key.starts_with(prefix)
                && u.key.len() <= 1024
                && (1..=MAX_PARTS).contains(&u64::from(u.part))
                && u.part_size >= MIN_PART_BYTES
                && u.part_size % (1 << 20) == 0
                && Some(u.offset) == u64::from(u.part - 1).checked_mul(u.part_size)
                && !u.upload_id.is_empty()
                && u.upload_id.len() <= 1024;
            if !ok {
                return Err(Error::invalid(
                    "state.files.upload",
                    "is not an upload a step of this restore makes (under the plan's prefix, whole parts)",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_fit_s3s_limits() {
        assert_eq!(part_size(1), MIN_PART_BYTES);
        assert_eq!(part_size(4 << 30), MIN_PART_BYTES);
        let big = 1u64 << 40;
        let p = part_size(big);
        assert!(big.div_ceil(p) <= MAX_PARTS && p % (1 << 20) == 0);
        let p = part_size(MAX_OBJECT_BYTES);
        assert!(MAX_OBJECT_BYTES.div_ceil(p) <= MAX_PARTS);
        assert_eq!(
            object_key("restores/x/", "/etc/hosts"),
            "restores/x/etc/hosts"
        );
        assert_eq!(object_key("", "/a"), "a");
    }

    #[test]
    fn progress_from_elsewhere_is_refused() {
        let own = |name: &str| S3Object {
            bucket: "stack".into(),
            key: format!("restores/r1/{name}"),
        };
        let good = FilesProgress {
            snapshot: Some("snap-0123456789abcdef0".into()),
            todo: Some(own("files-todo.json")),
            results: Some(own("files.json")),
            total_entries: 3,
            next: 1,
            upload: Some(Upload {
                key: "restores/r1/files/big".into(),
                upload_id: "id".into(),
                offset: 2 * MIN_PART_BYTES,
                part: 3,
                part_size: MIN_PART_BYTES,
                sha256_state: String::new(),
            }),
            ..FilesProgress::default()
        };
        good.validate("r1", "stack", "restores/r1/files/").unwrap();
        let mut bad = Vec::new();
        let mut p = good.clone();
        p.todo = Some(S3Object {
            bucket: "other".into(),
            key: "restores/r1/files-todo.json".into(),
        });
        bad.push(p);
        let mut p = good.clone();
        p.results = Some(own("report.json"));
        bad.push(p);
        let mut p = good.clone();
        p.snapshot = Some("vol-0123456789abcdef0".into());
        bad.push(p);
        let mut p = good.clone();
        p.next = 4;
        bad.push(p);
        for change in [
            |u: &mut Upload| u.key = "recovery-points/x".into(),
            |u: &mut Upload| u.part = 0,
            |u: &mut Upload| u.offset += 1,
            |u: &mut Upload| u.part_size = 1 << 20,
            |u: &mut Upload| u.upload_id.clear(),
        ] {
            let mut p = good.clone();
            change(p.upload.as_mut().unwrap());
            bad.push(p);
        }
        for p in bad {
            assert!(
                p.validate("r1", "stack", "restores/r1/files/").is_err(),
                "{p:?}"
            );
        }
    }
}

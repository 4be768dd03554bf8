//! What a backup run keeps in S3 instead of in Step Functions state.
//!
//! A state's input or output is at most 256 KiB, and one execution's history
//! at most 25,000 events: a run of thousands of sources fits neither. So
//! Discover writes the batches (JSON Lines, one Map item each) and its
//! findings to the stack's bucket, the Distributed Map reads the batches from
//! there and writes every child execution's result there (`ResultWriter`),
//! Prune and Report write their full reports there, and the state carries
//! only where those files are. Every key of a run is under
//! `runs/<policy>/<execution>/`.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::tags::RunKey;

/// The environment variable that names the stack's bucket.
pub const BUCKET_VARIABLE: &str = "STRONGROOM_BUCKET";

/// An S3 object (what the state carries in place of its contents).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
}

impl S3Object {
    /// Checks the bucket name and the key, naming `at` on failure.
    pub fn validate(&self, at: &str) -> Result<(), Error> {
        check_bucket(&self.bucket, &format!("{at}.bucket"))?;
        check_key(&self.key, &format!("{at}.key"))
    }
}

impl std::fmt::Display for S3Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Where one run's files are: the bucket, and a key for each file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFiles {
    pub bucket: String,
    /// `runs/<policy>/<execution>/`: every key below starts with it.
    pub prefix: String,
    /// The Map items: one [`crate::backup::discover::Batch`] per line.
    pub batches: String,
    /// What Discover found besides the batches ([`crate::backup::discover::Findings`]).
    pub discovery: String,
    /// The `ResultWriter` prefix: the Map Run writes `<results>/<map run id>/manifest.json`.
    pub results: String,
    /// Prune's full report.
    pub prune: String,
    /// The run report.
    pub report: String,
}

impl RunFiles {
    /// The files of `run` in `bucket`. `at` names where the bucket came from.
    pub fn new(bucket: &str, run: &RunKey, at: &str) -> Result<Self, Error> {
        check_bucket(bucket, at)?;
        let prefix = format!("runs/{}/{}/", run.policy, run.execution);
        let key = |name: &str| format!("{prefix}{name}");
        Ok(Self {
            bucket: bucket.to_owned(),
            batches: key("batches.jsonl"),
            discovery: key("discovery.json"),
            results: key("snapshots"),
            prune: key("prune.json"),
            report: key("report.json"),
            prefix,
        })
    }

    /// Checks what a later stage was handed: the files of `run`, as
    /// [`RunFiles::new`] names them.
    pub fn validate(&self, run: &RunKey, at: &str) -> Result<(), Error> {
        let expected = Self::new(&self.bucket, run, &format!("{at}.bucket"))?;
        if *self != expected {
            return Err(Error::invalid(
                at,
                format!(
                    "does not name the files of run {}/{}; pass Discover's `files` unchanged",
                    run.policy, run.execution
                ),
            ));
        }
        Ok(())
    }

    pub fn object(&self, key: &str) -> S3Object {
        S3Object {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
        }
    }
}

/// S3's rules for a (general purpose) bucket name: 3-63 characters of
/// lowercase letters, digits, dots and hyphens, starting and ending with a
/// letter or digit, no two adjacent dots, not shaped like an IP address.
pub fn check_bucket(name: &str, at: &str) -> Result<(), Error> {
    let fail = |why: &str| {
        Err(Error::invalid(
            at,
            format!("`{name}` is not an S3 bucket name: {why}; name the stack's bucket"),
        ))
    };
    if !(3..=63).contains(&name.len()) {
        return fail("it must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return fail("only lowercase letters, digits, dots and hyphens are allowed");
    }
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !edge(name.as_bytes()[0]) || !edge(name.as_bytes()[name.len() - 1]) {
        return fail("it must start and end with a letter or digit");
    }
    if name.contains("..") {
        return fail("two dots may not be adjacent");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return fail("it may not look like an IP address");
    }
    Ok(())
}

/// An object key: 1-1,024 bytes of UTF-8.
fn check_key(key: &str, at: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > 1024 {
        return Err(Error::invalid(
            at,
            format!("is {} bytes long; an S3 key is 1 to 1,024 bytes", key.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunKey {
        RunKey {
            policy: "daily".into(),
            scheduled_time: crate::model::parse_time("2026-11-29T03:00:00Z").unwrap(),
            execution: "daily-1".into(),
        }
    }

    #[test]
    fn every_file_of_a_run_is_under_its_prefix() {
        let f = RunFiles::new("strongroom-runs", &run(), "STRONGROOM_BUCKET").unwrap();
        assert_eq!(f.prefix, "runs/daily/daily-1/");
        for key in [&f.batches, &f.discovery, &f.results, &f.prune, &f.report] {
            assert!(key.starts_with(&f.prefix), "{key}");
        }
        f.validate(&run(), "files").unwrap();
    }

    #[test]
    fn files_of_another_run_are_refused() {
        let f = RunFiles::new("strongroom-runs", &run(), "b").unwrap();
        let mut other = run();
        other.execution = "daily-2".into();
        let e = f.validate(&other, "files").unwrap_err();
        assert!(e.to_string().contains("`files`"), "{e}");
        let mut moved = f.clone();
        moved.report = "elsewhere.json".into();
        assert!(moved.validate(&run(), "files").is_err());
    }

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for good in [
            "abc",
            "strongroom-runs-123456789012",
            "a.b-c",
            &"a".repeat(63),
        ] {
            check_bucket(good, "b").unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "ab",
            &"a".repeat(64),
            "Upper",
            "under_score",
            "-start",
            "end-",
            "a..b",
            "192.168.5.4",
        ] {
            let e = check_bucket(bad, "STRONGROOM_BUCKET").unwrap_err();
            assert!(e.to_string().contains("STRONGROOM_BUCKET"), "{bad}: {e}");
        }
    }
}

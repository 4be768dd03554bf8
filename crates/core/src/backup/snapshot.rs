//! Snapshot: makes this run's recovery point of every target in a [`Batch`],
//! exactly once, and returns the [`BatchResult`] the completion checks update.

use std::collections::HashMap;

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::backup::discover::Batch;
use crate::error::{CloudError, Error, ErrorKind, ErrorReport};
use crate::kind::Idempotency;
use crate::model::{Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState, ResourceType};
use crate::policy::AccountRole;
use crate::ports::{CreateRequest, ObjectStore, RecoveryPoints, RunPoint};
use crate::restore::settings::{record_key, RecoveryPointRecord, SourceSettings, RECORD_FORMAT};
use crate::runs::S3Object;
use crate::tags::{recovery_point_tags, RunKey};

/// The longest wait between two completion checks (unless `poll_seconds`
/// asks for longer): 15 minutes.
pub const MAX_WAIT_BETWEEN_CHECKS: u32 = 15 * 60;

/// The wait before the next check of anything the state machine waits for
/// (completion checks, copy passes): twice the last wait, at least
/// `poll_seconds`, at most [`MAX_WAIT_BETWEEN_CHECKS`] (or `poll_seconds` if
/// larger). After no wait yet (`last` 0) it is `poll_seconds`.
pub fn next_wait(last: u32, poll_seconds: u32) -> u32 {
    let cap = MAX_WAIT_BETWEEN_CHECKS.max(poll_seconds);
    last.saturating_mul(2).max(poll_seconds).min(cap)
}

impl BatchResult {
    /// The wait after a completion check that found points still pending.
    pub fn next_wait(&self) -> u32 {
        next_wait(self.wait_seconds, self.poll_seconds)
    }
}

/// Creates in flight at once inside one batch.
pub const CREATE_CONCURRENCY: usize = 8;

/// What happened to one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A new recovery point was made.
    Created,
    /// This run's recovery point existed already (a retry or a re-run).
    Existing,
    /// No recovery point; see `error`.
    Failed,
    /// The source no longer exists (the Tagging API lists deleted resources
    /// for a while): nothing to protect, not a failure; `error` says why.
    Skipped,
    /// The create's answer was lost (a timeout, a dropped connection, a
    /// server error, an AMI name taken by an AMI no describe shows yet): it
    /// may or may not have made a recovery point, and `error` holds what was
    /// seen. The create is never sent again (EBS snapshots have no
    /// idempotency token); the completion checks look for what it made by
    /// its tags and settle the target as created, or as failed once
    /// [`VISIBILITY_GRACE_SECONDS`](crate::backup::status::VISIBILITY_GRACE_SECONDS)
    /// have passed without a sign of it.
    Unconfirmed,
}

/// One target's result. Tags are left out to keep the state small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetResult {
    pub resource_type: ResourceType,
    pub id: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point: Option<RecoveryPoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    /// Why what a restore needs was not recorded for this recovery point
    /// (the point itself is fine; a restore then needs the settings in its
    /// request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_error: Option<ErrorReport>,
}

/// A batch after Snapshot (and after each Status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchResult {
    pub run: RunKey,
    pub location: Location,
    pub poll_seconds: u32,
    /// The wait before the next completion check: `poll_seconds` at first,
    /// doubled by each check up to [`MAX_WAIT_BETWEEN_CHECKS`] (or
    /// `poll_seconds` if larger), so that a batch pending for a day costs a
    /// bounded number of history events. The state machine's `Wait` reads it.
    #[serde(default)]
    pub wait_seconds: u32,
    pub results: Vec<TargetResult>,
    /// Recovery points still pending: the state machine waits while this is > 0.
    pub pending: usize,
    /// Completion checks done so far.
    pub polls: u32,
    /// When the first completion check ran: the start of the
    /// [`MAX_WAIT_SECONDS`](crate::backup::status::MAX_WAIT_SECONDS) a recovery
    /// point may stay pending. Counting from the check rather than the
    /// scheduled time keeps a late re-run or a redrive from failing fresh
    /// snapshots at once.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::model::utc_time::option"
    )]
    pub waiting_since: Option<OffsetDateTime>,
    /// The role that reaches the location's account, when the policy names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<AccountRole>,
}

impl BatchResult {
    /// Counts what the completion checks still wait for: pending recovery
    /// points and unconfirmed creates.
    pub(super) fn count_pending(&mut self) {
        self.pending = self
            .results
            .iter()
            .filter(|r| {
                r.outcome == Outcome::Unconfirmed
                    || r.recovery_point
                        .as_ref()
                        .is_some_and(|p| p.state == RecoveryPointState::Pending)
            })
            .count();
    }
}

/// Writes the record of `r`'s recovery point.
async fn record<S: ObjectStore>(
    store: &S,
    bucket: &str,
    r: &TargetResult,
    target: &crate::model::Target,
    settings: &SourceSettings,
) -> Result<(), CloudError> {
    let point = r
        .recovery_point
        .as_ref()
        .expect("filtered on a recovery point");
    let record = RecoveryPointRecord {
        format: RECORD_FORMAT,
        recovery_point: point.id.clone(),
        kind: point.kind,
        location: point.location.clone(),
        source: point.source.clone(),
        source_tags: target
            .tags
            .iter()
            .filter(|(k, _)| !k.to_ascii_lowercase().starts_with("aws:"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        settings: settings.clone(),
        copy_of: None,
    };
    let object = S3Object {
        bucket: bucket.to_owned(),
        key: record_key(&point.location, &point.id),
    };
    let body = serde_json::to_vec_pretty(&record).expect("a record serializes");
    store.put_object(&object, body).await
}

/// The kind of recovery point `t` gets in this batch.
fn kind_of(batch: &Batch, t: ResourceType) -> RecoveryPointKind {
    RecoveryPointKind::for_source(t, batch.policy.ec2.mode)
}

/// Whether the per-location lookup (not a deterministic name) makes `t` idempotent.
fn lookup_covers(batch: &Batch, t: ResourceType) -> bool {
    kind_of(batch, t).facts().idempotency == Idempotency::RunLookup
}

/// Whether the completion checks can find a recovery point of `kind` whose
/// create answer was lost by its tags: EC2's kinds, whose ids AWS picks
/// (EBS snapshots, instance sets, AMIs).
pub(crate) fn found_by_tags(kind: RecoveryPointKind) -> bool {
    kind.facts().snapshots != crate::kind::Snapshots::None
}

fn needs_lookup(batch: &Batch) -> bool {
    batch
        .targets
        .iter()
        .any(|t| lookup_covers(batch, t.resource_type))
}

/// Makes this run's recovery point of every target in the batch, exactly once:
/// one idempotency lookup per location for the kinds whose ids AWS picks,
/// deterministic names for the rest. One target failing does not stop the
/// others, and a create whose answer was lost is left [`Outcome::Unconfirmed`]
/// for the completion checks, not sent again. Fails as a whole only when the
/// lookup is throttled, before any create.
///
/// What a restore will need is described first (one call per type) and,
/// with a `bucket`, written there as each new point's
/// [`RecoveryPointRecord`]; failing that is reported on the target
/// (`record_error`), never a failure of the backup.
pub async fn snapshot_batch<P: RecoveryPoints + ObjectStore>(
    batch: Batch,
    cloud: &P,
    now: OffsetDateTime,
    bucket: Option<&str>,
) -> Result<BatchResult, Error> {
    batch.validate(now)?;
    cloud.use_roles(&batch.policy.accounts);
    let run = &batch.run;
    let location = &batch.location;
    let (settings, settings_error) = match cloud.describe_settings(location, &batch.targets).await {
        Ok(s) => (s, None),
        Err(e) => (Default::default(), Some(ErrorReport::from(&e))),
    };
    // Without a complete lookup we cannot know what exists, so we create nothing
    // of the kinds it covers.
    let (existing, lookup_error): (HashMap<String, RunPoint>, Option<CloudError>) =
        if needs_lookup(&batch) {
            match cloud.find_run_snapshots(location, run).await {
                Ok(points) => (
                    points
                        .into_iter()
                        .map(|p| (p.point.source.clone(), p))
                        .collect(),
                    None,
                ),
                Err(e) if e.kind.is_retryable() => return Err(e.into()),
                Err(e) => (HashMap::new(), Some(e)),
            }
        } else {
            (HashMap::new(), None)
        };
    let lookup_error = lookup_error.map(|e| ErrorReport::from(&e));

    let policy = &batch.policy;
    let batch_ref = &batch;
    let results: Vec<(usize, TargetResult)> = stream::iter(batch.targets.iter().enumerate())
        .map(|(i, target)| {
            let existing = &existing;
            let lookup_error = &lookup_error;
            let settings = &settings;
            async move {
                let base = |outcome, recovery_point, error| TargetResult {
                    resource_type: target.resource_type,
                    id: target.id.clone(),
                    outcome,
                    recovery_point,
                    error,
                    record_error: None,
                };
                if lookup_covers(batch_ref, target.resource_type) {
                    if let Some(e) = lookup_error {
                        return (i, base(Outcome::Failed, None, Some(e.clone())));
                    }
                    if let Some(p) = existing.get(target.source_ref()) {
                        // Made by an earlier attempt of this execution (a
                        // retried batch): this run created it.
                        let outcome = if run.made_by_this_execution(&p.execution, p.point.kind) {
                            Outcome::Created
                        } else {
                            Outcome::Existing
                        };
                        return (i, base(outcome, Some(p.point.clone()), None));
                    }
                }
                let request = CreateRequest {
                    kind: kind_of(batch_ref, target.resource_type),
                    location,
                    target,
                    run,
                    name: run.recovery_point_name(target, kind_of(batch_ref, target.resource_type)),
                    tags: recovery_point_tags(policy, run, target, location),
                    ec2: &policy.ec2,
                    cluster_copy: crate::copy::ClusterCopy::for_kind(
                        policy,
                        kind_of(batch_ref, target.resource_type),
                    ),
                    settings: settings.get(target.source_ref()),
                };
                match cloud.create(&request).await {
                    Ok(c) => {
                        let outcome = if c.existed {
                            Outcome::Existing
                        } else {
                            Outcome::Created
                        };
                        (i, base(outcome, Some(c.recovery_point), None))
                    }
                    // Only the create's own "no such source" means the source is
                    // gone: a recovery point vanishing under a name lookup is a failure.
                    Err(e) if e.kind == ErrorKind::NotFound && *e.resource == *target.id => {
                        (i, base(Outcome::Skipped, None, Some(ErrorReport::from(&e))))
                    }
                    // The answer was lost: the completion checks find what
                    // it made by its tags (EC2's kinds; the databases' are
                    // found by name when the SDK sends their create again).
                    Err(e)
                        if e.unconfirmed
                            && found_by_tags(kind_of(batch_ref, target.resource_type)) =>
                    {
                        (
                            i,
                            base(Outcome::Unconfirmed, None, Some(ErrorReport::from(&e))),
                        )
                    }
                    Err(e) => (i, base(Outcome::Failed, None, Some(ErrorReport::from(&e)))),
                }
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect()
        .await;
    let mut results = results;
    results.sort_by_key(|(i, _)| *i);
    if let Some(bucket) = bucket {
        let targets: std::collections::HashMap<&str, &crate::model::Target> =
            batch.targets.iter().map(|t| (t.id.as_str(), t)).collect();
        let records = results.iter_mut().filter_map(|(_, r)| {
            let target = targets.get(r.id.as_str())?;
            r.recovery_point.as_ref()?;
            Some((r, *target))
        });
        stream::iter(records)
            .map(|(r, target)| {
                let settings = settings.get(target.source_ref());
                let settings_error = &settings_error;
                async move {
                    r.record_error = match settings {
                        Some(s) => record(cloud, bucket, r, target, s)
                            .await
                            .err()
                            .map(|e| ErrorReport::from(&e)),
                        None => Some(settings_error.clone().unwrap_or_else(|| {
                            ErrorReport::new(
                                ErrorKind::NotFound,
                                format!(
                                    "{} was not found by the settings describe; a restore needs its settings in the request",
                                    target.id
                                ),
                            )
                        })),
                    };
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }
    // Each target's failure stays its own: once a create has been sent the
    // batch never fails as a whole (a retried batch would send every create
    // again and count the first attempt's points as existing).
    let mut out = BatchResult {
        run: batch.run.clone(),
        location: batch.location.clone(),
        poll_seconds: batch.poll_seconds,
        wait_seconds: batch.poll_seconds,
        results: results.into_iter().map(|(_, r)| r).collect(),
        pending: 0,
        polls: 0,
        waiting_since: None,
        role: batch
            .policy
            .accounts
            .iter()
            .find(|a| a.account == batch.location.account && a.role_arn.is_some())
            .cloned(),
    };
    out.count_pending();
    Ok(out)
}

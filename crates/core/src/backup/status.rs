//! Status: the completion check the state machine repeats while a batch has
//! pending recovery points.

use std::collections::HashMap;

use crate::backup::snapshot::{BatchResult, Outcome, TargetResult};
use crate::error::{Error, ErrorKind, ErrorReport};
use crate::model::{utc, RecoveryPoint, RecoveryPointKind, RecoveryPointState, ResourceType};
use crate::ports::{RecoveryPoints, RunPoint};
use crate::tags::RunKey;

/// A recovery point still pending this long after the first completion check is failed.
pub const MAX_WAIT_SECONDS: i64 = 24 * 3600;

/// How long after the first completion check a describe may still miss a new
/// recovery point: the EC2 API is eventually consistent, and "a resource you
/// just created may not show in a describe yet". Until then a missing point
/// is pending, not gone, and an unconfirmed create is looked for, not failed.
pub const VISIBILITY_GRACE_SECONDS: i64 = 10 * 60;

/// The completion check: refreshes every pending recovery point of the batch
/// (at most one describe per kind), and looks for what each unconfirmed
/// create made (one run lookup for the location). A point that is missing
/// [`VISIBILITY_GRACE_SECONDS`] after the batch's first completion check
/// (`waiting_since`, set by that check) is failed, as is one still pending
/// [`MAX_WAIT_SECONDS`] after it.
pub async fn refresh_batch<P: RecoveryPoints>(
    mut batch: BatchResult,
    cloud: &P,
    now: time::OffsetDateTime,
) -> Result<BatchResult, Error> {
    batch.validate(now)?;
    cloud.use_roles(batch.role.as_slice());
    let pending: Vec<RecoveryPoint> = batch
        .results
        .iter()
        .filter_map(|r| r.recovery_point.clone())
        .filter(|p| p.state == RecoveryPointState::Pending)
        .collect();
    let unconfirmed = batch
        .results
        .iter()
        .any(|r| r.outcome == Outcome::Unconfirmed);
    if pending.is_empty() && !unconfirmed {
        batch.polls += 1;
        batch.count_pending();
        return Ok(batch);
    }
    // Both calls come before any change: an error leaves the batch as it was.
    let fresh = if pending.is_empty() {
        Vec::new()
    } else {
        cloud.refresh(&batch.location, &pending).await?
    };
    // A lookup that fails leaves the unconfirmed creates as they are until
    // their grace ends: it must not fail the batch's other targets.
    // An instance's lost create may have made a snapshot set or an AMI.
    let unconfirmed_instances = batch
        .results
        .iter()
        .any(|r| r.outcome == Outcome::Unconfirmed && r.resource_type == ResourceType::Ec2Instance);
    let (found, lookup_error): (HashMap<String, RunPoint>, Option<String>) = if unconfirmed {
        let snapshots = cloud.find_run_snapshots(&batch.location, &batch.run).await;
        let amis = if unconfirmed_instances {
            cloud.find_run_amis(&batch.location, &batch.run).await
        } else {
            Ok(Vec::new())
        };
        match (snapshots, amis) {
            (Ok(s), Ok(a)) => (
                s.into_iter()
                    .chain(a)
                    .map(|p| (p.point.source.clone(), p))
                    .collect(),
                None,
            ),
            (Err(e), _) | (_, Err(e)) => (HashMap::new(), Some(e.to_string())),
        }
    } else {
        (HashMap::new(), None)
    };
    let fresh: HashMap<(RecoveryPointKind, String), RecoveryPoint> = fresh
        .into_iter()
        .map(|p| ((p.kind, p.id.clone()), p))
        .collect();
    let since = *batch.waiting_since.get_or_insert(utc(now));
    let waited = (now - since).whole_seconds();
    let overdue = waited > MAX_WAIT_SECONDS;
    let unseen_too_long = waited > VISIBILITY_GRACE_SECONDS;
    let run = batch.run.clone();
    for r in batch.results.iter_mut() {
        if r.outcome == Outcome::Unconfirmed {
            settle_unconfirmed(r, &found, &run, unseen_too_long, lookup_error.as_deref());
            continue;
        }
        let Some(p) = r.recovery_point.as_mut() else {
            continue;
        };
        if p.state != RecoveryPointState::Pending {
            continue;
        }
        match fresh.get(&(p.kind, p.id.clone())) {
            Some(f) => p.state = f.state,
            // Not visible yet: a describe may miss a new point for a while.
            None if !unseen_too_long => {}
            None => {
                p.state = RecoveryPointState::Failed;
                r.error = Some(ErrorReport::new(
                    ErrorKind::NotFound,
                    format!(
                        "recovery point {} disappeared before it completed (not seen for {} minutes)",
                        p.id,
                        VISIBILITY_GRACE_SECONDS / 60
                    ),
                ));
            }
        }
        if p.state == RecoveryPointState::Pending && overdue {
            p.state = RecoveryPointState::Failed;
            r.error = Some(ErrorReport::new(
                ErrorKind::NotReady,
                format!(
                    "recovery point {} still pending {} hours after the first completion check",
                    p.id,
                    MAX_WAIT_SECONDS / 3600
                ),
            ));
        }
        if p.state == RecoveryPointState::Failed && r.error.is_none() {
            r.error = Some(ErrorReport::new(
                ErrorKind::Internal,
                format!("recovery point {} ended in an error state", p.id),
            ));
        }
    }
    batch.polls += 1;
    batch.count_pending();
    batch.wait_seconds = batch.next_wait();
    Ok(batch)
}

/// An unconfirmed create: what the run lookup found of it makes it created
/// (this execution's) or existing (a re-run's); when nothing has shown for
/// the visibility grace, none was made, and the target fails with the error
/// its create saw. The create is never sent again.
fn settle_unconfirmed(
    r: &mut TargetResult,
    found: &HashMap<String, RunPoint>,
    run: &RunKey,
    unseen_too_long: bool,
    lookup_error: Option<&str>,
) {
    if let Some(p) = found.get(&r.id) {
        r.outcome = if run.made_by_this_execution(&p.execution, p.point.kind) {
            Outcome::Created
        } else {
            Outcome::Existing
        };
        r.recovery_point = Some(p.point.clone());
        r.error = None;
    } else if unseen_too_long {
        r.outcome = Outcome::Failed;
        let (kind, seen) = r.error.take().map_or(
            (
                ErrorKind::Throttled,
                "the create's answer was lost".to_owned(),
            ),
            |e| (e.error_type, e.message),
        );
        let why = match lookup_error {
            None => format!(
                "no recovery point of it appeared within {} minutes, so none was made",
                VISIBILITY_GRACE_SECONDS / 60
            ),
            Some(e) => format!("the lookup for it kept failing ({e})"),
        };
        r.error = Some(ErrorReport::new(
            kind,
            format!("{seen}; {why}: running this scheduled time again makes it"),
        ));
    }
}

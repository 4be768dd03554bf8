//! Status: the completion check the state machine repeats while a batch has
//! pending recovery points.

use std::collections::HashMap;

use crate::backup::snapshot::BatchResult;
use crate::error::{Error, ErrorKind, ErrorReport};
use crate::model::{utc, RecoveryPoint, RecoveryPointKind, RecoveryPointState};
use crate::ports::RecoveryPoints;

/// A recovery point still pending this long after the first completion check is failed.
pub const MAX_WAIT_SECONDS: i64 = 24 * 3600;

/// The completion check: refreshes every pending recovery point of the batch
/// (at most one describe per kind). A point that vanished, or is still pending
/// [`MAX_WAIT_SECONDS`] after the batch's first completion check
/// (`waiting_since`, set by that check), is failed.
pub async fn refresh_batch<P: RecoveryPoints>(
    mut batch: BatchResult,
    cloud: &P,
    now: time::OffsetDateTime,
) -> Result<BatchResult, Error> {
    batch.validate(now)?;
    let pending: Vec<RecoveryPoint> = batch
        .results
        .iter()
        .filter_map(|r| r.recovery_point.clone())
        .filter(|p| p.state == RecoveryPointState::Pending)
        .collect();
    if !pending.is_empty() {
        let fresh = cloud.refresh(&batch.location, &pending).await?;
        let fresh: HashMap<(RecoveryPointKind, String), RecoveryPoint> = fresh
            .into_iter()
            .map(|p| ((p.kind, p.id.clone()), p))
            .collect();
        let since = *batch.waiting_since.get_or_insert(utc(now));
        let overdue = (now - since).whole_seconds() > MAX_WAIT_SECONDS;
        for r in batch.results.iter_mut() {
            let Some(p) = r.recovery_point.as_mut() else {
                continue;
            };
            if p.state != RecoveryPointState::Pending {
                continue;
            }
            match fresh.get(&(p.kind, p.id.clone())) {
                Some(f) => p.state = f.state,
                None => {
                    p.state = RecoveryPointState::Failed;
                    r.error = Some(ErrorReport::new(
                        ErrorKind::NotFound,
                        format!("recovery point {} disappeared before it completed", p.id),
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
    }
    batch.polls += 1;
    batch.count_pending();
    Ok(batch)
}

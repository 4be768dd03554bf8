//! EBS snapshots of volumes (`CreateSnapshot`), plus the EBS snapshot
//! operations the instance sets and AMIs share: states by id, deletion,
//! locks, and the run lookup that keeps snapshot creation idempotent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_ec2::types::ResourceType as Ec2ResourceType;
use strongroom_core::kind::Idempotency;
use strongroom_core::listing::Scope;
use strongroom_core::listing::{assemble, ListedSnapshot, Listing};
use strongroom_core::model::{format_time, RecoveryPoint, RecoveryPointKind, RecoveryPointState};
use strongroom_core::ports::{CreateRequest, Created, RunPoint};
use strongroom_core::tags::{self, RunKey};
use strongroom_core::CloudError;

use super::{DestinationCopies, KindAdapter, SnapshotStates};
use crate::clients::LocationClients;
use crate::error::{code_of, from_sdk, is_rate_limited};
use crate::sdk::{
    all_pages, ec2_filter, image_of, is_image_snapshot, states_by_id, tag_filter, with_states,
    PointState, TagsExt, ToSdkTags,
};
use strongroom_core::copy::{FoundCopy, SourceSnapshot, StartCopy};

/// Values per EC2 describe filter (EC2 accepts 200).
const FILTER_CHUNK: usize = 200;
/// The largest DescribeSnapshots page.
const PAGE: i32 = 1000;
/// DescribeLockedSnapshots takes at most this many ids per call.
const LOCK_CHUNK: usize = 1000;

pub(crate) struct Ebs;

/// CreateSnapshot(s) take no client token: an SDK retry after a lost answer
/// could make a second snapshot. The SDK does not retry them;
/// [`send_unless_processed`] does, only while AWS refuses them for their rate.
pub(super) fn no_retries() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled())
}

/// Attempts of a create that AWS keeps refusing for its rate.
const RATE_ATTEMPTS: u32 = 8;
/// The first wait after a refusal; it doubles up to [`RATE_MAX_WAIT`].
const RATE_FIRST_WAIT: Duration = Duration::from_millis(500);
const RATE_MAX_WAIT: Duration = Duration::from_secs(20);

/// Sends a create that has no idempotency token, again while AWS refuses it
/// for its rate (`RequestLimitExceeded` and the like: nothing was processed),
/// waiting a random time up to a doubling bound (AWS's "exponential backoff
/// with full jitter"). Any other failure is returned at once: a timeout or a
/// server error may have taken effect, and sending again could make a
/// duplicate (the error says `unconfirmed`; the completion check looks for
/// what it made).
pub(super) async fn send_unless_processed<T, F, Fut>(mut send: F) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let mut bound = RATE_FIRST_WAIT;
    let mut attempt = 1;
    loop {
        match send().await {
            Err(e) if is_rate_limited(&e) && attempt < RATE_ATTEMPTS => {
                let wait = bound.mul_f64(fastrand::f64());
                tokio::time::sleep(wait).await;
                bound = (bound * 2).min(RATE_MAX_WAIT);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The description on every snapshot and AMI Strongroom makes.
pub(super) fn description(req: &CreateRequest<'_>) -> String {
    format!(
        "strongroom {} {}",
        req.run.policy,
        format_time(req.run.scheduled_time)
    )
}

impl KindAdapter for Ebs {
    async fn create(
        &self,
        cx: &LocationClients,
        req: &CreateRequest<'_>,
    ) -> Result<Created, CloudError> {
        let out = send_unless_processed(|| async {
            cx.ec2()
                .create_snapshot()
                .volume_id(&req.target.id)
                .description(description(req))
                .tag_specifications(req.tags.ec2_spec(Ec2ResourceType::Snapshot))
                .customize()
                .config_override(no_retries())
                .send()
                .await
                .map_err(|e| from_sdk(e, "CreateSnapshot", &req.target.id, cx.region_name()))
        })
        .await?;
        let id = out.snapshot_id().unwrap_or_default().to_owned();
        Ok(Created {
            recovery_point: req.point(id, vec![], out.point_state()),
            existed: false,
        })
    }

    fn snapshot_ids(&self, point: &RecoveryPoint) -> Vec<String> {
        vec![point.id.clone()]
    }

    async fn refresh(
        &self,
        _cx: &LocationClients,
        points: &[&RecoveryPoint],
        snapshots: &SnapshotStates,
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        Ok(with_states(points, snapshots))
    }

    async fn list(&self, cx: &LocationClients, scope: Scope<'_>) -> Result<Listing, CloudError> {
        let filter = match scope {
            Scope::Policy(policy) => tag_filter(tags::POLICY, policy),
            Scope::AnyPolicy => tag_filter(tags::MANAGED, "true"),
        };
        Ok(Listing {
            snapshots: snapshots(cx, [filter]).await?,
            ..Default::default()
        })
    }

    async fn shared_with(
        &self,
        cx: &LocationClients,
        point: &RecoveryPoint,
    ) -> Result<Vec<String>, CloudError> {
        snapshots_shared_with(cx, std::slice::from_ref(&point.id)).await
    }

    async fn delete(&self, cx: &LocationClients, point: &RecoveryPoint) -> Result<(), CloudError> {
        delete_snapshots(cx, std::slice::from_ref(&point.id)).await
    }

    /// Two tag-filtered listings: this run's copies (by policy and time),
    /// and every Strongroom copy still pending here.
    async fn find_copies(
        &self,
        cx: &LocationClients,
        run: &RunKey,
    ) -> Result<DestinationCopies, CloudError> {
        let copy_filter = || ec2_filter("tag-key", [tags::COPY_OF.to_owned()]);
        let ours = snapshots(
            cx,
            [
                tag_filter(tags::POLICY, run.policy.clone()),
                tag_filter(tags::CREATED_AT, format_time(run.scheduled_time)),
                copy_filter(),
            ],
        )
        .await?;
        let pending = snapshots(
            cx,
            [copy_filter(), ec2_filter("status", ["pending".to_owned()])],
        )
        .await?;
        let found = ours
            .into_iter()
            .map(|s| FoundCopy {
                copy_of: s.tags.get(tags::COPY_OF).cloned().unwrap_or_default(),
                execution: s.tags.get(tags::RUN).cloned().unwrap_or_default(),
                id: s.id,
                state: s.state,
            })
            .collect();
        // An AMI copy's snapshots carry copy-of too: they count as AMI copies.
        let ami = RecoveryPointKind::Ami.facts().tag;
        let pending = pending
            .iter()
            .filter(|s| s.tags.get(tags::KIND).map(String::as_str) != Some(ami))
            .count();
        Ok((found, pending))
    }

    async fn describe_sources(
        &self,
        cx: &LocationClients,
        ids: &[String],
    ) -> Result<Vec<SourceSnapshot>, CloudError> {
        let ec2 = cx.ec2();
        let partition = strongroom_core::backup::discover::partition_of(cx.region_name());
        let mut out = Vec::new();
        for chunk in ids.chunks(FILTER_CHUNK) {
            let pages = ec2
                .describe_snapshots()
                .owner_ids("self")
                .filters(ec2_filter("snapshot-id", chunk.to_vec()))
                .max_results(PAGE)
                .into_paginator()
                .send();
            out.extend(
                all_pages(pages, "DescribeSnapshots", cx.region_name(), |p| {
                    p.snapshots()
                        .iter()
                        .filter_map(|s| {
                            let id = s.snapshot_id()?.to_owned();
                            Some(SourceSnapshot {
                                name: String::new(),
                                arn: format!(
                                    "arn:{partition}:ec2:{}::snapshot/{id}",
                                    cx.region_name()
                                ),
                                id,
                                tags: s.tags().to_tags(),
                                kms_keys: s
                                    .encrypted()
                                    .unwrap_or(false)
                                    .then(|| s.kms_key_id().map(str::to_owned))
                                    .flatten()
                                    .into_iter()
                                    .collect(),
                                aws_managed_key: false,
                            })
                        })
                        .collect::<Vec<_>>()
                })
                .await?,
            );
        }
        Ok(out)
    }

    /// One `ModifySnapshotAttribute` (createVolumePermission) per snapshot.
    async fn set_shared(
        &self,
        cx: &LocationClients,
        ids: &[String],
        account: &str,
        add: bool,
    ) -> Result<(), CloudError> {
        use aws_sdk_ec2::types::{CreateVolumePermission, CreateVolumePermissionModifications};
        let permission = CreateVolumePermission::builder().user_id(account).build();
        let change = if add {
            CreateVolumePermissionModifications::builder().add(permission)
        } else {
            CreateVolumePermissionModifications::builder().remove(permission)
        }
        .build();
        let ec2 = cx.ec2();
        for id in ids {
            match ec2
                .modify_snapshot_attribute()
                .snapshot_id(id)
                .create_volume_permission(change.clone())
                .send()
                .await
            {
                Ok(_) => {}
                // Unsharing what is gone: nothing is shared any more.
                Err(e) if !add && code_of(&e) == Some("InvalidSnapshot.NotFound") => {}
                Err(e) => return Err(from_sdk(e, "ModifySnapshotAttribute", id, cx.region_name())),
            }
        }
        Ok(())
    }

    /// `CopySnapshot` in the destination's region, encrypted with its key
    /// and tagged at creation. It takes no client token, so it is sent again
    /// only while AWS refuses it for its rate; a lost answer is found by the
    /// next pass's lookup (`strongroom:copy-of`).
    async fn start_copy(
        &self,
        cx: &LocationClients,
        req: &StartCopy<'_>,
    ) -> Result<(String, RecoveryPointState), CloudError> {
        let description = format!(
            "strongroom copy of {} from {}",
            req.source.id, req.source_location
        );
        let out = send_unless_processed(|| async {
            cx.ec2()
                .copy_snapshot()
                .source_region(&req.source_location.region)
                .source_snapshot_id(&req.source.id)
                .encrypted(true)
                .kms_key_id(req.kms_key)
                .description(&description)
                .tag_specifications(req.tags.ec2_spec(Ec2ResourceType::Snapshot))
                .customize()
                .config_override(no_retries())
                .send()
                .await
                .map_err(|e| {
                    let mut err = from_sdk(e, "CopySnapshot", &req.source.id, cx.region_name());
                    // "Concurrent snapshot copies per destination Region" (20).
                    if err.code.as_deref() == Some("ResourceLimitExceeded") {
                        err.kind = strongroom_core::ErrorKind::NotReady;
                    }
                    err
                })
        })
        .await?;
        Ok((
            out.snapshot_id().unwrap_or_default().to_owned(),
            RecoveryPointState::Pending,
        ))
    }
}

/// Locks `ids` (EBS Snapshot Lock), one `LockSnapshot` each.
pub(crate) async fn lock_snapshots(
    cx: &LocationClients,
    ids: &[String],
    lock: &strongroom_core::copy::SnapshotLock,
) -> Result<(), CloudError> {
    use aws_sdk_ec2::types::LockMode;
    let ec2 = cx.ec2();
    let mode = match lock.mode {
        strongroom_core::copy::LockMode::Governance => LockMode::Governance,
        strongroom_core::copy::LockMode::Compliance => LockMode::Compliance,
    };
    for id in ids {
        let mut req = ec2
            .lock_snapshot()
            .snapshot_id(id)
            .lock_mode(mode.clone())
            .lock_duration(i32::try_from(lock.duration_days).unwrap_or(i32::MAX));
        if let Some(h) = lock.cool_off_hours {
            req = req.cool_off_period(i32::try_from(h).unwrap_or(i32::MAX));
        }
        req.send()
            .await
            .map_err(|e| from_sdk(e, "LockSnapshot", id, cx.region_name()))?;
    }
    Ok(())
}

/// The accounts (or `all`) with create-volume permission on any of `ids`:
/// one `DescribeSnapshotAttribute` per snapshot (AWS has no listing of it).
pub(super) async fn snapshots_shared_with(
    cx: &LocationClients,
    ids: &[String],
) -> Result<Vec<String>, CloudError> {
    let mut out = Vec::new();
    for id in ids {
        let attr = cx
            .ec2()
            .describe_snapshot_attribute()
            .snapshot_id(id)
            .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
            .send()
            .await
            .map_err(|e| from_sdk(e, "DescribeSnapshotAttribute", id, cx.region_name()))?;
        for p in attr.create_volume_permissions() {
            if let Some(u) = p.user_id() {
                out.push(u.to_owned());
            }
            if let Some(g) = p.group() {
                out.push(g.as_str().to_owned());
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Marks `ids` with `strongroom:deleting` (one `CreateTags` for all): a
/// deletion that stops half way is then finished by the next prune.
pub(super) async fn mark_deleting(cx: &LocationClients, ids: &[String]) -> Result<(), CloudError> {
    let now = format_time(time::OffsetDateTime::now_utc());
    cx.ec2()
        .create_tags()
        .set_resources(Some(ids.to_vec()))
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(tags::DELETING)
                .value(now)
                .build(),
        )
        .send()
        .await
        .map_err(|e| from_sdk(e, "CreateTags", &ids.join(","), cx.region_name()))?;
    Ok(())
}

/// Our managed EBS snapshots matching `filters`, every page (instance set
/// members and AMI snapshots included: the core tells them apart).
async fn snapshots(
    cx: &LocationClients,
    filters: impl IntoIterator<Item = aws_sdk_ec2::types::Filter>,
) -> Result<Vec<ListedSnapshot>, CloudError> {
    let mut req = cx
        .ec2()
        .describe_snapshots()
        .owner_ids("self")
        .filters(tag_filter(tags::MANAGED, "true"))
        .max_results(PAGE);
    for f in filters {
        req = req.filters(f);
    }
    let pages = req.into_paginator().send();
    all_pages(pages, "DescribeSnapshots", cx.region_name(), |p| {
        p.snapshots()
            .iter()
            .map(|s| ListedSnapshot {
                id: s.snapshot_id().unwrap_or_default().to_owned(),
                owner: s.owner_id().unwrap_or_default().to_owned(),
                state: s.point_state(),
                tags: s.tags().to_tags(),
                volume_id: s.volume_id().map(str::to_owned),
                of_image: is_image_snapshot(s.description()),
                image_id: image_of(s.description()),
                size_gib: s.volume_size().and_then(|v| u64::try_from(v).ok()),
            })
            .collect::<Vec<_>>()
    })
    .await
}

/// The EBS snapshots and instance snapshot sets that `run`'s policy already
/// made for `run.scheduled_time` at this location: one tag-filtered listing.
pub(crate) async fn run_lookup(
    cx: &LocationClients,
    run: &RunKey,
) -> Result<Vec<RunPoint>, CloudError> {
    let listing = Listing {
        snapshots: snapshots(
            cx,
            [
                tag_filter(tags::POLICY, run.policy.clone()),
                tag_filter(tags::CREATED_AT, format_time(run.scheduled_time)),
            ],
        )
        .await?,
        ..Default::default()
    };
    // A lost answer can leave two snapshots of one volume for one run: one
    // recovery point per source, the first id, with the worst state.
    let mut by_source: BTreeMap<String, RunPoint> = BTreeMap::new();
    for listed in assemble(&cx.location, &run.policy, listing).points {
        // The listing also holds AMI snapshots of the run (no AMIs in it):
        // only the kinds this lookup makes idempotent are answers.
        if listed.point.kind.facts().idempotency != Idempotency::RunLookup {
            continue;
        }
        let p = listed.point;
        match by_source.get_mut(&p.source) {
            None => {
                let execution = listed.tags.get(tags::RUN).cloned().unwrap_or_default();
                by_source.insert(
                    p.source.clone(),
                    RunPoint {
                        point: p,
                        execution,
                    },
                );
            }
            Some(q) => {
                q.point.state = RecoveryPointState::worst([q.point.state, p.state]);
                if p.id < q.point.id {
                    q.point.id = p.id;
                }
            }
        }
    }
    Ok(by_source.into_values().collect())
}

/// EBS snapshot id -> state; ids AWS does not know are absent.
pub(crate) async fn snapshot_states(
    cx: &LocationClients,
    ids: &[String],
) -> Result<HashMap<String, RecoveryPointState>, CloudError> {
    let ec2 = cx.ec2();
    states_by_id(ids, FILTER_CHUNK, |chunk| {
        let pages = ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(ec2_filter("snapshot-id", chunk))
            .max_results(PAGE)
            .into_paginator()
            .send();
        all_pages(pages, "DescribeSnapshots", cx.region_name(), |p| {
            p.snapshots()
                .iter()
                .filter_map(|s| Some((s.snapshot_id()?.to_owned(), s.point_state())))
                .collect::<Vec<_>>()
        })
    })
    .await
}

/// One `DeleteSnapshot` per snapshot; the first failure stops the rest. A
/// snapshot that is gone already counts as deleted.
pub(super) async fn delete_snapshots(
    cx: &LocationClients,
    ids: &[String],
) -> Result<(), CloudError> {
    let ec2 = cx.ec2();
    for id in ids {
        match ec2.delete_snapshot().snapshot_id(id).send().await {
            Ok(_) => {}
            // Gone already (an earlier attempt): what was asked is done.
            Err(e) if code_of(&e) == Some("InvalidSnapshot.NotFound") => {}
            Err(e) => return Err(from_sdk(e, "DeleteSnapshot", id, cx.region_name())),
        }
    }
    Ok(())
}

/// Which of `ids` are under an EBS Snapshot Lock that has not expired.
pub(crate) async fn locked_snapshots(
    cx: &LocationClients,
    ids: &[String],
) -> Result<BTreeSet<String>, CloudError> {
    let ec2 = cx.ec2();
    let mut locked = BTreeSet::new();
    for chunk in ids.chunks(LOCK_CHUNK) {
        let mut token: Option<String> = None;
        loop {
            let out = ec2
                .describe_locked_snapshots()
                .set_snapshot_ids(Some(chunk.to_vec()))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| from_sdk(e, "DescribeLockedSnapshots", "-", cx.region_name()))?;
            for s in out.snapshots() {
                let expired = s.lock_state().map(|l| l.as_str()) == Some("expired");
                if let (Some(id), false) = (s.snapshot_id(), expired) {
                    locked.insert(id.to_owned());
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
    }
    Ok(locked)
}

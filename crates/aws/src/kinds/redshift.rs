//! Manual snapshots of Redshift provisioned clusters (`CreateClusterSnapshot`),
//! named deterministically. Redshift has no snapshot-id filter: describes
//! narrow by our tags, then match by identifier.

use strongroom_core::listing::Scope;
use strongroom_core::listing::{ListedRecord, Listing};
use strongroom_core::model::{format_time, RecoveryPoint, RecoveryPointKind};
use strongroom_core::ports::{CreateRequest, Created};
use strongroom_core::{tags, CloudError};

use super::{DestinationCopies, KindAdapter, SnapshotStates};
use crate::clients::LocationClients;
use crate::error::from_sdk;
use crate::sdk::{all_pages, create_or_find, with_states, PointState, Seen, TagsExt, ToSdkTags};
use strongroom_core::copy::{ClusterCopy, FoundCopy, SourceSnapshot, StartCopy};
use strongroom_core::model::RecoveryPointState;
use strongroom_core::tags::RunKey;
use strongroom_core::ErrorKind;

/// The largest DescribeClusterSnapshots page.
const PAGE: i32 = 100;
/// `ManualSnapshotRetentionPeriod` -1: "retained indefinitely".
const KEEP_UNTIL_PRUNED: i32 = -1;

pub(crate) struct Redshift;

/// Our manual snapshots carrying `key` with one of `values`, every page.
async fn manual_snapshots(
    cx: &LocationClients,
    key: &str,
    values: Vec<String>,
) -> Result<Vec<aws_sdk_redshift::types::Snapshot>, CloudError> {
    let pages = cx
        .redshift()
        .describe_cluster_snapshots()
        .snapshot_type("manual")
        .tag_keys(key)
        // No values: every snapshot that has the key.
        .set_tag_values((!values.is_empty()).then_some(values))
        .max_records(PAGE)
        .into_paginator()
        .send();
    all_pages(pages, "DescribeClusterSnapshots", cx.region_name(), |p| {
        // The type filter is applied again here: not every endpoint honours it.
        p.snapshots()
            .iter()
            .filter(|s| s.snapshot_type() == Some("manual"))
            .cloned()
            .collect::<Vec<_>>()
    })
    .await
}

impl KindAdapter for Redshift {
    async fn create(
        &self,
        cx: &LocationClients,
        req: &CreateRequest<'_>,
    ) -> Result<Created, CloudError> {
        let region = cx.region_name();
        let rs = cx.redshift();
        // Copies are made by the cluster, of snapshots taken after it was
        // configured: configure it first. A failure here does not stop the
        // snapshot; the copy stage finds no copy and says why.
        if let Some(copy) = &req.cluster_copy {
            let _ = Box::pin(ensure_cluster_copy(cx, &req.target.id, copy)).await;
        }
        let create = async {
            let out = rs
                .create_cluster_snapshot()
                .snapshot_identifier(&req.name)
                .cluster_identifier(&req.target.id)
                // Kept until Strongroom prunes it: without a period the
                // cluster's default applies, and a default of N days would
                // delete what the retention promised to keep.
                .manual_snapshot_retention_period(KEEP_UNTIL_PRUNED)
                .set_tags(Some(req.tags.redshift_tags()))
                .send()
                .await
                .map_err(|e| from_sdk(e, "CreateClusterSnapshot", &req.target.id, region))?;
            Ok(out.snapshot().map(Seen::made))
        };
        let find = || async {
            let out = rs
                .describe_cluster_snapshots()
                .snapshot_identifier(&req.name)
                .send()
                .await
                .map_err(|e| from_sdk(e, "DescribeClusterSnapshots", &req.name, region))?;
            Ok(out
                .snapshots()
                .first()
                .map(|s| Seen::existing(s, s.tags().to_tags())))
        };
        create_or_find(
            req,
            "CreateClusterSnapshot",
            &[
                "ClusterSnapshotAlreadyExists",
                "ClusterSnapshotAlreadyExistsFault",
            ],
            create,
            find,
        )
        .await
    }

    async fn refresh(
        &self,
        cx: &LocationClients,
        points: &[&RecoveryPoint],
        _snapshots: &SnapshotStates,
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        // Narrowed to the runs' scheduled times, then matched by identifier.
        let mut times: Vec<String> = points.iter().map(|p| format_time(p.created_at)).collect();
        times.sort();
        times.dedup();
        let states = manual_snapshots(cx, tags::CREATED_AT, times)
            .await?
            .iter()
            .map(|s| {
                let id = s.snapshot_identifier().unwrap_or_default().to_owned();
                (id, s.point_state())
            })
            .collect();
        Ok(with_states(points, &states))
    }

    async fn list(&self, cx: &LocationClients, scope: Scope<'_>) -> Result<Listing, CloudError> {
        let (key, value) = match scope {
            Scope::Policy(policy) => (tags::POLICY, policy),
            Scope::AnyPolicy => (tags::MANAGED, "true"),
        };
        let records = manual_snapshots(cx, key, vec![value.to_owned()])
            .await?
            .iter()
            .map(|s| ListedRecord {
                kind: RecoveryPointKind::RedshiftSnapshot,
                id: s.snapshot_identifier().unwrap_or_default().to_owned(),
                owner: s.owner_account().unwrap_or_default().to_owned(),
                state: s.point_state(),
                tags: s.tags().to_tags(),
                // AWS refuses to delete a snapshot others may restore: said here, for free.
                shared_with: Some(restore_access(s)),
                size_gib: s
                    .total_backup_size_in_mega_bytes()
                    .map(|mb| (mb / 1024.0).ceil() as u64),
            })
            .collect();
        Ok(Listing {
            records,
            ..Default::default()
        })
    }

    async fn shared_with(
        &self,
        cx: &LocationClients,
        point: &RecoveryPoint,
    ) -> Result<Vec<String>, CloudError> {
        let out = cx
            .redshift()
            .describe_cluster_snapshots()
            .snapshot_identifier(&point.id)
            .send()
            .await
            .map_err(|e| from_sdk(e, "DescribeClusterSnapshots", &point.id, cx.region_name()))?;
        Ok(out
            .snapshots()
            .first()
            .map(restore_access)
            .unwrap_or_default())
    }

    async fn delete(&self, cx: &LocationClients, point: &RecoveryPoint) -> Result<(), CloudError> {
        cx.redshift()
            .delete_cluster_snapshot()
            .snapshot_identifier(&point.id)
            .send()
            .await
            .map_err(|e| from_sdk(e, "DeleteClusterSnapshot", &point.id, cx.region_name()))?;
        Ok(())
    }

    /// The copies here Strongroom has tagged (by policy: Redshift filters by
    /// tag), this run's and those pending.
    async fn find_copies(
        &self,
        cx: &LocationClients,
        run: &RunKey,
    ) -> Result<DestinationCopies, CloudError> {
        let created = format_time(run.scheduled_time);
        let mut found = Vec::new();
        let mut pending = 0;
        for s in manual_snapshots(cx, tags::COPY_OF, Vec::new()).await? {
            let t = s.tags().to_tags();
            // Checked here too: the filter narrows, the tags decide.
            if !t.contains_key(tags::COPY_OF)
                || t.get(tags::MANAGED).map(String::as_str) != Some("true")
            {
                continue;
            }
            if s.point_state() == RecoveryPointState::Pending {
                pending += 1;
            }
            if t.get(tags::POLICY) == Some(&run.policy) && t.get(tags::CREATED_AT) == Some(&created)
            {
                found.push(FoundCopy {
                    copy_of: t.get(tags::COPY_OF).cloned().unwrap_or_default(),
                    execution: t.get(tags::RUN).cloned().unwrap_or_default(),
                    id: s.snapshot_identifier().unwrap_or_default().to_owned(),
                    state: s.point_state(),
                });
            }
        }
        Ok((found, pending))
    }

    async fn describe_sources(
        &self,
        cx: &LocationClients,
        ids: &[String],
    ) -> Result<Vec<SourceSnapshot>, CloudError> {
        let partition = strongroom_core::backup::discover::partition_of(cx.region_name());
        let mut out = Vec::new();
        for id in ids {
            let got = cx
                .redshift()
                .describe_cluster_snapshots()
                .snapshot_identifier(id)
                .send()
                .await;
            let snapshots = match got {
                Ok(o) => o.snapshots().to_vec(),
                Err(e) if crate::error::code_of(&e).is_some_and(|c| c.contains("NotFound")) => {
                    vec![]
                }
                Err(e) => {
                    return Err(from_sdk(
                        e,
                        "DescribeClusterSnapshots",
                        id,
                        cx.region_name(),
                    ))
                }
            };
            for s in snapshots {
                out.push(SourceSnapshot {
                    id: id.clone(),
                    name: id.clone(),
                    arn: format!(
                        "arn:{partition}:redshift:{}:{}:snapshot:{}/{id}",
                        cx.region_name(),
                        cx.location.account,
                        s.cluster_identifier().unwrap_or_default()
                    ),
                    tags: s.tags().to_tags(),
                    kms_keys: s.kms_key_id().map(str::to_owned).into_iter().collect(),
                    aws_managed_key: false,
                });
            }
        }
        Ok(out)
    }

    /// Who may restore `ids` (`AuthorizeSnapshotAccess`, or with `add`
    /// false `RevokeSnapshotAccess`): how a Redshift snapshot reaches a
    /// vault, as AWS copies none across accounts.
    async fn set_shared(
        &self,
        cx: &LocationClients,
        ids: &[String],
        account: &str,
        add: bool,
    ) -> Result<(), CloudError> {
        let region = cx.region_name();
        let rs = cx.redshift();
        for id in ids {
            let sent = if add {
                rs.authorize_snapshot_access()
                    .snapshot_identifier(id)
                    .account_with_restore_access(account)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            crate::error::code_of(&e).map(str::to_owned),
                            from_sdk(e, "AuthorizeSnapshotAccess", id, region),
                        )
                    })
            } else {
                rs.revoke_snapshot_access()
                    .snapshot_identifier(id)
                    .account_with_restore_access(account)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        (
                            crate::error::code_of(&e).map(str::to_owned),
                            from_sdk(e, "RevokeSnapshotAccess", id, region),
                        )
                    })
            };
            match sent {
                Ok(()) => {}
                // Already so: what was asked is done.
                Err((Some(code), _))
                    if (add && code.contains("AlreadyExists"))
                        || (!add && code.contains("NotFound")) => {}
                Err((_, e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// The cluster made the copy (same identifier, in the destination
    /// region): tag it as Strongroom's. Not there yet is `NotReady` while the
    /// cluster copies to this region; a cluster that copies elsewhere or
    /// nowhere is an error that says so.
    async fn start_copy(
        &self,
        cx: &LocationClients,
        req: &StartCopy<'_>,
    ) -> Result<(String, RecoveryPointState), CloudError> {
        let region = cx.region_name();
        let got = cx
            .redshift()
            .describe_cluster_snapshots()
            .snapshot_identifier(&req.name)
            .send()
            .await;
        let copy = match got {
            Ok(o) => o.snapshots().first().cloned(),
            Err(e) if crate::error::code_of(&e).is_some_and(|c| c.contains("NotFound")) => None,
            Err(e) => return Err(from_sdk(e, "DescribeClusterSnapshots", &req.name, region)),
        };
        if let Some(s) = copy {
            let arn = format!(
                "arn:{}:redshift:{region}:{}:snapshot:{}/{}",
                strongroom_core::backup::discover::partition_of(region),
                cx.location.account,
                s.cluster_identifier().unwrap_or_default(),
                req.name
            );
            cx.redshift()
                .create_tags()
                .resource_name(&arn)
                .set_tags(Some(req.tags.redshift_tags()))
                .send()
                .await
                .map_err(|e| from_sdk(e, "CreateTags", &arn, region))?;
            return Ok((req.name.clone(), s.point_state()));
        }
        // Not copied (yet): does the cluster copy here?
        let cluster = req.source.arn.rsplit(':').next().unwrap_or_default();
        let cluster = cluster.split('/').next().unwrap_or_default();
        let out = cx
            .redshift_in(&req.source_location.region)
            .describe_clusters()
            .cluster_identifier(cluster)
            .send()
            .await
            .map_err(|e| from_sdk(e, "DescribeClusters", cluster, &req.source_location.region))?;
        let copies_to = out
            .clusters()
            .first()
            .and_then(|c| c.cluster_snapshot_copy_status())
            .and_then(|s| s.destination_region())
            .map(str::to_owned);
        match copies_to.as_deref() {
            Some(r) if r == region => Err(CloudError::new(
                ErrorKind::NotReady,
                "DescribeClusterSnapshots",
                &req.name,
                region,
                "the cluster has not copied it yet",
            )),
            other => Err(CloudError::new(
                ErrorKind::InvalidInput,
                "DescribeClusters",
                cluster,
                &req.source_location.region,
                format!(
                    "cluster {cluster} copies its snapshots {}, not to {region}: Strongroom configures a cluster that copies nowhere, and leaves one configured otherwise alone (a cluster copies to one region); change its cross-region snapshot copy or the policy's destination",
                    other.map_or("nowhere".to_owned(), |r| format!("to {r}"))
                ),
            )),
        }
    }
}

/// The snapshot copy grant Strongroom makes in a destination region for
/// `key` (names are 1-63 of lowercase letters, digits and hyphens).
fn grant_name(key: &str) -> String {
    format!("strongroom-{:016x}", tags::fnv1a(key.as_bytes()))
}

/// Makes `cluster` copy its new snapshots to `copy.region`, if it copies
/// nowhere yet: a snapshot copy grant for the destination key first when
/// the cluster is encrypted (`CreateSnapshotCopyGrant` there), then
/// `EnableSnapshotCopy` with `ManualSnapshotRetentionPeriod` -1 (the copies
/// are kept until Strongroom prunes them). A cluster that already copies
/// elsewhere is left alone.
async fn ensure_cluster_copy(
    cx: &LocationClients,
    cluster: &str,
    copy: &ClusterCopy,
) -> Result<(), CloudError> {
    let region = cx.region_name();
    let rs = cx.redshift();
    let out = rs
        .describe_clusters()
        .cluster_identifier(cluster)
        .send()
        .await
        .map_err(|e| from_sdk(e, "DescribeClusters", cluster, region))?;
    let Some(c) = out.clusters().first() else {
        return Ok(());
    };
    if c.cluster_snapshot_copy_status().is_some() {
        return Ok(());
    }
    let mut enable = rs
        .enable_snapshot_copy()
        .cluster_identifier(cluster)
        .destination_region(&copy.region)
        .manual_snapshot_retention_period(KEEP_UNTIL_PRUNED);
    if c.encrypted().unwrap_or(false) {
        let name = grant_name(&copy.kms_key);
        match cx
            .redshift_in(&copy.region)
            .create_snapshot_copy_grant()
            .snapshot_copy_grant_name(&name)
            .kms_key_id(&copy.kms_key)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if crate::error::code_of(&e).is_some_and(|c| c.contains("AlreadyExists")) => {}
            Err(e) => return Err(from_sdk(e, "CreateSnapshotCopyGrant", &name, &copy.region)),
        }
        enable = enable.snapshot_copy_grant_name(name);
    }
    match enable.send().await {
        Ok(_) => Ok(()),
        // Enabled meanwhile (a retried batch).
        Err(e) if crate::error::code_of(&e).is_some_and(|c| c.contains("AlreadyEnabled")) => Ok(()),
        Err(e) => Err(from_sdk(e, "EnableSnapshotCopy", cluster, region)),
    }
}

/// The accounts authorised to restore a snapshot (`AccountsWithRestoreAccess`):
/// their ids, or aliases such as `amazon-redshift-support`.
fn restore_access(s: &aws_sdk_redshift::types::Snapshot) -> Vec<String> {
    s.accounts_with_restore_access()
        .iter()
        .filter_map(|a| a.account_id().or(a.account_alias()).map(str::to_owned))
        .collect()
}

//! Manual snapshots of Redshift provisioned clusters (`CreateClusterSnapshot`),
//! named deterministically. Redshift has no snapshot-id filter: describes
//! narrow by our tags, then match by identifier.

use strongroom_core::listing::{ListedRecord, Listing};
use strongroom_core::model::{format_time, RecoveryPoint, RecoveryPointKind};
use strongroom_core::ports::{CreateRequest, Created};
use strongroom_core::{tags, CloudError};

use super::{KindAdapter, SnapshotStates};
use crate::clients::LocationClients;
use crate::error::from_sdk;
use crate::sdk::{all_pages, create_or_find, with_states, PointState, Seen, TagsExt, ToSdkTags};

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
        .set_tag_values(Some(values))
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

    async fn list(&self, cx: &LocationClients, policy: &str) -> Result<Listing, CloudError> {
        let records = manual_snapshots(cx, tags::POLICY, vec![policy.to_owned()])
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
}

/// The accounts authorised to restore a snapshot (`AccountsWithRestoreAccess`):
/// their ids, or aliases such as `amazon-redshift-support`.
fn restore_access(s: &aws_sdk_redshift::types::Snapshot) -> Vec<String> {
    s.accounts_with_restore_access()
        .iter()
        .filter_map(|a| a.account_id().or(a.account_alias()).map(str::to_owned))
        .collect()
}

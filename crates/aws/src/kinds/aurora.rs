//! Manual DB cluster snapshots of Aurora clusters (`CreateDBClusterSnapshot`), named deterministically.

use strongroom_core::listing::{ListedRecord, Listing};
use strongroom_core::model::{RecoveryPoint, RecoveryPointKind};
use strongroom_core::ports::{CreateRequest, Created};
use strongroom_core::CloudError;

use super::rds::{FILTER_CHUNK, PAGE};
use super::{KindAdapter, SnapshotStates};
use crate::clients::LocationClients;
use crate::error::from_sdk;
use crate::sdk::{
    arn_account, create_or_find, rds_filter, states_by_id, with_states, PointState, Seen, TagsExt,
    ToSdkTags,
};

pub(crate) struct Aurora;

impl KindAdapter for Aurora {
    async fn create(
        &self,
        cx: &LocationClients,
        req: &CreateRequest<'_>,
    ) -> Result<Created, CloudError> {
        {
            let region = cx.region_name();
            let rds = cx.rds();
            let create = async {
                let out = rds
                    .create_db_cluster_snapshot()
                    .db_cluster_snapshot_identifier(&req.name)
                    .db_cluster_identifier(&req.target.id)
                    .set_tags(Some(req.tags.rds_tags()))
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "CreateDBClusterSnapshot", &req.target.id, region))?;
                Ok(out.db_cluster_snapshot().map(Seen::made))
            };
            let find = || async {
                let out = rds
                    .describe_db_cluster_snapshots()
                    .db_cluster_snapshot_identifier(&req.name)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DescribeDBClusterSnapshots", &req.name, region))?;
                Ok(out
                    .db_cluster_snapshots()
                    .first()
                    .map(|s| Seen::existing(s, s.tag_list().to_tags())))
            };
            create_or_find(
                req,
                "CreateDBClusterSnapshot",
                &[
                    "DBClusterSnapshotAlreadyExistsFault",
                    "DBClusterSnapshotAlreadyExists",
                ],
                create,
                find,
            )
            .await
        }
    }

    async fn refresh(
        &self,
        cx: &LocationClients,
        points: &[&RecoveryPoint],
        _snapshots: &SnapshotStates,
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        {
            let rds = cx.rds();
            let ids: Vec<String> = points.iter().map(|p| p.id.clone()).collect();
            let states = states_by_id(&ids, FILTER_CHUNK, |chunk| {
                let rds = &rds;
                async move {
                    let mut pages = rds
                        .describe_db_cluster_snapshots()
                        .filters(rds_filter("db-cluster-snapshot-id", &chunk))
                        .max_records(PAGE)
                        .into_paginator()
                        .send();
                    let mut out = Vec::new();
                    while let Some(page) = pages.next().await {
                        let page = page.map_err(|e| {
                            from_sdk(e, "DescribeDBClusterSnapshots", "-", cx.region_name())
                        })?;
                        for s in page.db_cluster_snapshots() {
                            let id = s.db_cluster_snapshot_identifier().unwrap_or_default();
                            out.push((id.to_owned(), s.point_state()));
                        }
                    }
                    Ok(out)
                }
            })
            .await?;
            Ok(with_states(points, &states))
        }
    }

    async fn list(&self, cx: &LocationClients, _policy: &str) -> Result<Listing, CloudError> {
        {
            let mut pages = cx
                .rds()
                .describe_db_cluster_snapshots()
                .snapshot_type("manual")
                .max_records(PAGE)
                .into_paginator()
                .send();
            let mut records = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    from_sdk(e, "DescribeDBClusterSnapshots", "-", cx.region_name())
                })?;
                for s in page.db_cluster_snapshots() {
                    records.push(ListedRecord {
                        kind: RecoveryPointKind::AuroraSnapshot,
                        id: s
                            .db_cluster_snapshot_identifier()
                            .unwrap_or_default()
                            .to_owned(),
                        owner: arn_account(s.db_cluster_snapshot_arn()),
                        state: s.point_state(),
                        tags: s.tag_list().to_tags(),
                    });
                }
            }
            Ok(Listing {
                records,
                ..Default::default()
            })
        }
    }

    async fn delete(&self, cx: &LocationClients, point: &RecoveryPoint) -> Result<(), CloudError> {
        {
            cx.rds()
                .delete_db_cluster_snapshot()
                .db_cluster_snapshot_identifier(&point.id)
                .send()
                .await
                .map_err(|e| from_sdk(e, "DeleteDBClusterSnapshot", &point.id, cx.region_name()))?;
            Ok(())
        }
    }
}

//! Manual DB snapshots of RDS instances (`CreateDBSnapshot`), named deterministically.

use strongroom_core::listing::{ListedRecord, Listing};
use strongroom_core::model::{RecoveryPoint, RecoveryPointKind};
use strongroom_core::ports::{CreateRequest, Created};
use strongroom_core::CloudError;

use super::{KindAdapter, SnapshotStates};
use crate::clients::LocationClients;
use crate::error::from_sdk;
use crate::sdk::{
    arn_account, create_or_find, rds_filter, states_by_id, with_states, PointState, Seen, TagsExt,
    ToSdkTags,
};

/// Values per RDS describe filter (RDS takes at most 100 per filter).
pub(super) const FILTER_CHUNK: usize = 100;
/// The largest RDS describe page.
pub(super) const PAGE: i32 = 100;

pub(crate) struct Rds;

impl KindAdapter for Rds {
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
                    .create_db_snapshot()
                    .db_snapshot_identifier(&req.name)
                    .db_instance_identifier(&req.target.id)
                    .set_tags(Some(req.tags.rds_tags()))
                    .send()
                    .await
                    .map_err(|e| {
                        let mut err = from_sdk(e, "CreateDBSnapshot", &req.target.id, region);
                        if matches!(
                            err.code.as_deref(),
                            Some("InvalidParameterCombination" | "InvalidDBInstanceState")
                        ) {
                            err.message.push_str(" (an Aurora cluster member is protected through its cluster: select the cluster as aurora-cluster instead)");
                        }
                        err
                    })?;
                Ok(out.db_snapshot().map(Seen::made))
            };
            let find = || async {
                let out = rds
                    .describe_db_snapshots()
                    .db_snapshot_identifier(&req.name)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DescribeDBSnapshots", &req.name, region))?;
                Ok(out
                    .db_snapshots()
                    .first()
                    .map(|s| Seen::existing(s, s.tag_list().to_tags())))
            };
            create_or_find(
                req,
                "CreateDBSnapshot",
                &["DBSnapshotAlreadyExists"],
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
                        .describe_db_snapshots()
                        .filters(rds_filter("db-snapshot-id", &chunk))
                        .max_records(PAGE)
                        .into_paginator()
                        .send();
                    let mut out = Vec::new();
                    while let Some(page) = pages.next().await {
                        let page = page.map_err(|e| {
                            from_sdk(e, "DescribeDBSnapshots", "-", cx.region_name())
                        })?;
                        for s in page.db_snapshots() {
                            let id = s.db_snapshot_identifier().unwrap_or_default();
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
                .describe_db_snapshots()
                .snapshot_type("manual")
                .max_records(PAGE)
                .into_paginator()
                .send();
            let mut records = Vec::new();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| from_sdk(e, "DescribeDBSnapshots", "-", cx.region_name()))?;
                for s in page.db_snapshots() {
                    records.push(ListedRecord {
                        kind: RecoveryPointKind::RdsSnapshot,
                        id: s.db_snapshot_identifier().unwrap_or_default().to_owned(),
                        owner: arn_account(s.db_snapshot_arn()),
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
                .delete_db_snapshot()
                .db_snapshot_identifier(&point.id)
                .send()
                .await
                .map_err(|e| from_sdk(e, "DeleteDBSnapshot", &point.id, cx.region_name()))?;
            Ok(())
        }
    }
}

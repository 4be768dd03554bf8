//! What the two kinds of RDS recovery point share: DB snapshots (RDS) and DB
//! cluster snapshots (Aurora) go through the same calls on different SDK
//! types, so one macro writes both adapters and `rds.rs` and `aurora.rs`
//! state only what differs.

/// Values per RDS describe filter (RDS takes at most 100 per filter).
pub(super) const FILTER_CHUNK: usize = 100;
/// The largest RDS describe page.
pub(super) const PAGE: i32 = 100;

/// An RDS-family adapter: create-or-find by deterministic identifier,
/// states by an identifier filter, manual snapshots for prune, delete.
macro_rules! db_snapshot_kind {
    (
        $adapter:ident, $kind:ident, $snapshot:ident,
        identifier: $ident:ident, source: $source:ident,
        create: $create:ident / $create_op:literal / $created:ident,
        exists: [$($exists:literal),*],
        describe: $describe:ident / $describe_op:literal / $listed:ident / $filter:literal,
        arn: $arn:ident,
        delete: $delete:ident / $delete_op:literal,
        attributes: $attrs:ident / $attrs_op:literal / $attrs_result:ident / $attrs_list:ident,
        explain: $explain:expr $(,)?
    ) => {
        use strongroom_core::listing::{ListedRecord, Listing};
        use strongroom_core::model::{RecoveryPoint, RecoveryPointKind};
        use strongroom_core::ports::{CreateRequest, Created};
        use strongroom_core::CloudError;

        use super::db::{FILTER_CHUNK, PAGE};
        use super::{KindAdapter, SnapshotStates};
        use crate::clients::LocationClients;
        use crate::error::from_sdk;
        use crate::sdk::{
            all_pages, arn_account, create_or_find, rds_filter, states_by_id, with_states,
            PointState, Seen, TagsExt, ToSdkTags,
        };

        /// The snapshot's identifier.
        fn id_of(s: &aws_sdk_rds::types::$snapshot) -> String {
            s.$ident().unwrap_or_default().to_owned()
        }

        pub(crate) struct $adapter;

        impl KindAdapter for $adapter {
            async fn create(
                &self,
                cx: &LocationClients,
                req: &CreateRequest<'_>,
            ) -> Result<Created, CloudError> {
                let region = cx.region_name();
                let rds = cx.rds();
                let create = async {
                    let out = rds
                        .$create()
                        .$ident(&req.name)
                        .$source(&req.target.id)
                        .set_tags(Some(req.tags.rds_tags()))
                        .send()
                        .await
                        .map_err(|e| {
                            let explain: fn(CloudError) -> CloudError = $explain;
                            explain(from_sdk(e, $create_op, &req.target.id, region))
                        })?;
                    Ok(out.$created().map(Seen::made))
                };
                let find = || async {
                    let out = rds
                        .$describe()
                        .$ident(&req.name)
                        .send()
                        .await
                        .map_err(|e| from_sdk(e, $describe_op, &req.name, region))?;
                    Ok(out
                        .$listed()
                        .first()
                        .map(|s| Seen::existing(s, s.tag_list().to_tags())))
                };
                create_or_find(req, $create_op, &[$($exists),*], create, find).await
            }

            async fn refresh(
                &self,
                cx: &LocationClients,
                points: &[&RecoveryPoint],
                _snapshots: &SnapshotStates,
            ) -> Result<Vec<RecoveryPoint>, CloudError> {
                let rds = cx.rds();
                let ids: Vec<String> = points.iter().map(|p| p.id.clone()).collect();
                let states = states_by_id(&ids, FILTER_CHUNK, |chunk| {
                    let pages = rds
                        .$describe()
                        .filters(rds_filter($filter, &chunk))
                        .max_records(PAGE)
                        .into_paginator()
                        .send();
                    all_pages(pages, $describe_op, cx.region_name(), |p| {
                        p.$listed()
                            .iter()
                            .map(|s| (id_of(s), s.point_state()))
                            .collect::<Vec<_>>()
                    })
                })
                .await?;
                Ok(with_states(points, &states))
            }

            async fn list(&self, cx: &LocationClients, _policy: &str) -> Result<Listing, CloudError> {
                let pages = cx
                    .rds()
                    .$describe()
                    .snapshot_type("manual")
                    .max_records(PAGE)
                    .into_paginator()
                    .send();
                let records = all_pages(pages, $describe_op, cx.region_name(), |p| {
                    p.$listed()
                        .iter()
                        .map(|s| ListedRecord {
                            kind: RecoveryPointKind::$kind,
                            id: id_of(s),
                            owner: arn_account(s.$arn()),
                            state: s.point_state(),
                            tags: s.tag_list().to_tags(),
                            shared_with: None,
                        })
                        .collect::<Vec<_>>()
                })
                .await?;
                Ok(Listing {
                    records,
                    ..Default::default()
                })
            }

            /// The `restore` attribute: accounts (or `all`) that may copy or restore it.
            async fn shared_with(
                &self,
                cx: &LocationClients,
                point: &RecoveryPoint,
            ) -> Result<Vec<String>, CloudError> {
                let out = cx
                    .rds()
                    .$attrs()
                    .$ident(&point.id)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, $attrs_op, &point.id, cx.region_name()))?;
                Ok(out
                    .$attrs_result()
                    .map(|r| {
                        r.$attrs_list()
                            .iter()
                            .filter(|a| a.attribute_name() == Some("restore"))
                            .flat_map(|a| a.attribute_values().iter().cloned())
                            .collect()
                    })
                    .unwrap_or_default())
            }

            async fn delete(&self, cx: &LocationClients, point: &RecoveryPoint) -> Result<(), CloudError> {
                cx.rds()
                    .$delete()
                    .$ident(&point.id)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, $delete_op, &point.id, cx.region_name()))?;
                Ok(())
            }
        }
    };
}
pub(super) use db_snapshot_kind;

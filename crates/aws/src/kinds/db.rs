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
        modify: $modify:ident / $modify_op:literal,
        copy: $copy:ident / $copy_op:literal / $copied:ident / $copy_source:ident / $copy_target:ident,
        encrypts_unencrypted: $encrypts_unencrypted:literal,
        encrypted: $encrypted:ident,
        explain: $explain:expr $(,)?
    ) => {
        use strongroom_core::listing::Scope;
use strongroom_core::listing::{ListedRecord, Listing};
        use strongroom_core::model::{RecoveryPoint, RecoveryPointKind};
        use strongroom_core::ports::{CreateRequest, Created};
        use strongroom_core::CloudError;

        use super::db::{FILTER_CHUNK, PAGE};
        use super::{DestinationCopies, KindAdapter, SnapshotStates};
        use strongroom_core::copy::{FoundCopy, SourceSnapshot, StartCopy};
        use strongroom_core::model::RecoveryPointState;
        use strongroom_core::tags::{self, RunKey};
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

            async fn list(&self, cx: &LocationClients, _scope: Scope<'_>) -> Result<Listing, CloudError> {
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
                            size_gib: s.allocated_storage().and_then(|v| u64::try_from(v).ok()),
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

            /// One listing of the manual snapshots here (RDS filters by no
            /// tag): this run's copies, and every Strongroom copy pending.
            async fn find_copies(
                &self,
                cx: &LocationClients,
                run: &RunKey,
            ) -> Result<DestinationCopies, CloudError> {
                let listing = self.list(cx, Scope::Policy(&run.policy)).await?;
                let created = strongroom_core::model::format_time(run.scheduled_time);
                let mut found = Vec::new();
                let mut pending = 0;
                for r in listing.records {
                    let Some(of) = r.tags.get(tags::COPY_OF) else { continue };
                    if r.tags.get(tags::MANAGED).map(String::as_str) != Some("true") {
                        continue;
                    }
                    if r.state == RecoveryPointState::Pending {
                        pending += 1;
                    }
                    if r.tags.get(tags::POLICY) == Some(&run.policy)
                        && r.tags.get(tags::CREATED_AT) == Some(&created)
                    {
                        found.push(FoundCopy {
                            copy_of: of.clone(),
                            execution: r.tags.get(tags::RUN).cloned().unwrap_or_default(),
                            id: r.id,
                            state: r.state,
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
                let rds = cx.rds();
                let mut out = Vec::new();
                for chunk in ids.chunks(FILTER_CHUNK) {
                    let pages = rds
                        .$describe()
                        .filters(rds_filter($filter, chunk))
                        .max_records(PAGE)
                        .into_paginator()
                        .send();
                    out.extend(
                        all_pages(pages, $describe_op, cx.region_name(), |p| {
                            p.$listed()
                                .iter()
                                .map(|s| SourceSnapshot {
                                    id: id_of(s),
                                    name: id_of(s),
                                    arn: s.$arn().unwrap_or_default().to_owned(),
                                    tags: s.tag_list().to_tags(),
                                    kms_keys: s
                                        .$encrypted()
                                        .unwrap_or(false)
                                        .then(|| s.kms_key_id().map(str::to_owned))
                                        .flatten()
                                        .into_iter()
                                        .collect(),
                                    aws_managed_key: false,
                                })
                                .collect::<Vec<_>>()
                        })
                        .await?,
                    );
                }
                Ok(out)
            }

            /// The `restore` attribute: who may copy or restore it.
            async fn set_shared(
                &self,
                cx: &LocationClients,
                ids: &[String],
                account: &str,
                add: bool,
            ) -> Result<(), CloudError> {
                let rds = cx.rds();
                for id in ids {
                    let req = rds.$modify().$ident(id).attribute_name("restore");
                    let req = if add {
                        req.values_to_add(account)
                    } else {
                        req.values_to_remove(account)
                    };
                    match req.send().await {
                        Ok(_) => {}
                        Err(e) if !add && crate::error::code_of(&e).is_some_and(|c| c.contains("NotFound")) => {}
                        Err(e) => return Err(from_sdk(e, $modify_op, id, cx.region_name())),
                    }
                }
                Ok(())
            }

            /// The copy, named as its source (identifiers are unique per
            /// account and region), by the source's ARN, with the
            /// destination's key. A name taken already is this copy when its
            /// `strongroom:copy-of` says so (a lost answer), else an error.
            async fn start_copy(
                &self,
                cx: &LocationClients,
                req: &StartCopy<'_>,
            ) -> Result<(String, RecoveryPointState), CloudError> {
                let rds = cx.rds();
                let region = cx.region_name();
                let sent = rds
                    .$copy()
                    .$copy_source(&req.source.arn)
                    .$copy_target(&req.name)
                    // RDS encrypts an unencrypted snapshot's copy with the key;
                    // Aurora refuses a key for an unencrypted cluster snapshot,
                    // whose copy then stays unencrypted.
                    .set_kms_key_id(
                        ($encrypts_unencrypted || !req.source.kms_keys.is_empty())
                            .then(|| req.kms_key.to_owned()),
                    )
                    .set_tags(Some(req.tags.rds_tags()))
                    .send()
                    .await;
                match sent {
                    Ok(out) => Ok((
                        req.name.clone(),
                        out.$copied().map_or(RecoveryPointState::Pending, |s| s.point_state()),
                    )),
                    Err(e) => {
                        let mut err = from_sdk(e, $copy_op, &req.source.id, region);
                        match err.code.as_deref() {
                            Some(c) if [$($exists),*].contains(&c) => {
                                let out = rds
                                    .$describe()
                                    .$ident(&req.name)
                                    .send()
                                    .await
                                    .map_err(|e| from_sdk(e, $describe_op, &req.name, region))?;
                                match out.$listed().first() {
                                    Some(s) if s.tag_list().to_tags().get(tags::COPY_OF)
                                        == req.tags.get(tags::COPY_OF) => Ok((req.name.clone(), s.point_state())),
                                    _ => {
                                        err.message.push_str(" (the name is taken by a snapshot that is not this copy)");
                                        Err(err)
                                    }
                                }
                            }
                            // RDS answers SnapshotQuotaExceeded both for the
                            // copies in flight per destination region (20)
                            // and for the manual snapshot quota: only the
                            // first is a wait.
                            Some("SnapshotQuotaExceeded" | "SnapshotQuotaExceededFault")
                                if err.message.to_ascii_lowercase().contains("cop") =>
                            {
                                err.kind = strongroom_core::ErrorKind::NotReady;
                                Err(err)
                            }
                            _ => Err(err),
                        }
                    }
                }
            }
        }
    };
}
pub(super) use db_snapshot_kind;

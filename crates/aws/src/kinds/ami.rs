//! AMIs of EC2 instances (`CreateImage`, no reboot), named deterministically.
//! The listing returns every AMI of the account, ours or not, because any AMI
//! that uses a snapshot protects it.

use aws_sdk_ec2::types::ResourceType as Ec2ResourceType;
use std::collections::BTreeMap;
use strongroom_core::listing::Scope;
use strongroom_core::listing::{is_remains, ListedImage, Listing};

use strongroom_core::model::{
    format_time, RecoveryPoint, RecoveryPointKind, RecoveryPointState, ResourceType,
};
use strongroom_core::ports::{CreateRequest, Created, RunPoint};
use strongroom_core::tags::{self, RunKey};
use strongroom_core::{CloudError, ErrorKind};

use super::ebs::{delete_snapshots, description, mark_deleting, snapshots_shared_with};
use super::{DestinationCopies, KindAdapter, SnapshotStates};
use crate::clients::LocationClients;
use crate::error::{code_of, from_sdk};
use crate::sdk::{
    all_pages, check_same_owner, ec2_filter, image_snapshots, run_tag, states_by_id, tag_filter,
    PointState, TagsExt, ToSdkTags,
};
use strongroom_core::copy::{FoundCopy, SourceSnapshot, StartCopy};

/// Values per EC2 describe filter.
const FILTER_CHUNK: usize = 200;
/// The largest DescribeImages page.
const PAGE: i32 = 1000;

pub(crate) struct Ami;

impl KindAdapter for Ami {
    async fn create(
        &self,
        cx: &LocationClients,
        req: &CreateRequest<'_>,
    ) -> Result<Created, CloudError> {
        let region = cx.region_name();
        let ec2 = cx.ec2();
        let res = ec2
            .create_image()
            .instance_id(&req.target.id)
            .name(&req.name)
            .no_reboot(true)
            .description(description(req))
            .tag_specifications(req.tags.ec2_spec(Ec2ResourceType::Image))
            .tag_specifications(req.tags.ec2_spec(Ec2ResourceType::Snapshot))
            .send()
            .await;
        match res {
            Ok(out) => {
                let id = out.image_id().unwrap_or_default().to_owned();
                return Ok(Created {
                    recovery_point: req.point(id, vec![], RecoveryPointState::Pending),
                    existed: false,
                });
            }
            Err(e) if code_of(&e) == Some("InvalidAMIName.Duplicate") => {}
            Err(e) => return Err(from_sdk(e, "CreateImage", &req.target.id, region)),
        }
        // The name is taken: by this run's earlier attempt, or it is an error.
        let out = ec2
            .describe_images()
            .owners("self")
            .filters(ec2_filter("name", [req.name.clone()]))
            .send()
            .await
            .map_err(|e| from_sdk(e, "DescribeImages", &req.name, region))?;
        // A new AMI may not show in describes yet (EC2 is eventually
        // consistent): unconfirmed, for the completion checks to find, not
        // waited for here.
        let image = out.images().first().ok_or_else(|| {
            CloudError::new(
                ErrorKind::Throttled,
                "DescribeImages",
                &req.name,
                region,
                "the AMI name is taken but no AMI of this account shows it yet (EC2 describes \
                 lag behind creation)",
            )
            .unconfirmed()
        })?;
        let tags = image.tags().to_tags();
        check_same_owner(&tags, req, "CreateImage")?;
        Ok(Created {
            recovery_point: req.point(
                image.image_id().unwrap_or_default().to_owned(),
                image_snapshots(image),
                image.point_state(),
            ),
            existed: !req.run.made_by_this_execution(run_tag(&tags), req.kind),
        })
    }

    async fn refresh(
        &self,
        cx: &LocationClients,
        points: &[&RecoveryPoint],
        _snapshots: &SnapshotStates,
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        let ec2 = cx.ec2();
        let ids: Vec<String> = points.iter().map(|p| p.id.clone()).collect();
        let images = states_by_id(&ids, FILTER_CHUNK, |chunk| {
            let ec2 = &ec2;
            async move {
                let out = ec2
                    .describe_images()
                    .owners("self")
                    .filters(ec2_filter("image-id", chunk))
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DescribeImages", "-", cx.region_name()))?;
                Ok(out
                    .images()
                    .iter()
                    .map(|i| {
                        let id = i.image_id().unwrap_or_default().to_owned();
                        (id, (i.point_state(), image_snapshots(i)))
                    })
                    .collect())
            }
        })
        .await?;
        Ok(points
            .iter()
            .filter_map(|p| {
                images.get(&p.id).map(|(state, members)| RecoveryPoint {
                    state: *state,
                    members: members.clone(),
                    ..(*p).clone()
                })
            })
            .collect())
    }

    async fn list(&self, cx: &LocationClients, _scope: Scope<'_>) -> Result<Listing, CloudError> {
        let pages = cx
            .ec2()
            .describe_images()
            .owners("self")
            .include_deprecated(true)
            .include_disabled(true)
            .max_results(PAGE)
            .into_paginator()
            .send();
        let images = all_pages(pages, "DescribeImages", cx.region_name(), |p| {
            p.images()
                .iter()
                .map(|i| ListedImage {
                    id: i.image_id().unwrap_or_default().to_owned(),
                    owner: i.owner_id().unwrap_or_default().to_owned(),
                    state: i.point_state(),
                    tags: i.tags().to_tags(),
                    snapshots: image_snapshots(i),
                    size_gib: Some(
                        i.block_device_mappings()
                            .iter()
                            .filter_map(|m| m.ebs()?.volume_size())
                            .map(|v| u64::try_from(v).unwrap_or(0))
                            .sum(),
                    ),
                })
                .collect::<Vec<_>>()
        })
        .await?;
        Ok(Listing {
            images,
            ..Default::default()
        })
    }

    /// Launch permissions of the AMI and create-volume permissions of its
    /// snapshots (shared on their own, they would go with the AMI).
    async fn shared_with(
        &self,
        cx: &LocationClients,
        point: &RecoveryPoint,
    ) -> Result<Vec<String>, CloudError> {
        let mut out = snapshots_shared_with(cx, &point.members).await?;
        if is_remains(&point.id) {
            return Ok(out);
        }
        match cx
            .ec2()
            .describe_image_attribute()
            .image_id(&point.id)
            .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
            .send()
            .await
        {
            Ok(attr) => {
                for p in attr.launch_permissions() {
                    out.extend(
                        [
                            p.user_id().map(str::to_owned),
                            p.group().map(|g| g.as_str().to_owned()),
                            p.organization_arn().map(str::to_owned),
                            p.organizational_unit_arn().map(str::to_owned),
                        ]
                        .into_iter()
                        .flatten(),
                    );
                }
            }
            // Deregistered since the listing: only its snapshots can be shared.
            Err(e) if image_gone(code_of(&e)) => {}
            Err(e) => {
                return Err(from_sdk(
                    e,
                    "DescribeImageAttribute",
                    &point.id,
                    cx.region_name(),
                ))
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Deregisters the AMI and deletes its snapshots in the same call
    /// (`DeleteAssociatedSnapshots`). A snapshot AWS did not delete is marked
    /// `strongroom:deleting`, and the next prune lists it as what the AMI
    /// left and finishes it. What a deregistered AMI left is deleted snapshot
    /// by snapshot, never through an AMI id: AWS refuses to delete a snapshot
    /// that a registered AMI uses, so a listing that missed a new AMI cannot
    /// cost it its snapshots.
    async fn delete(&self, cx: &LocationClients, point: &RecoveryPoint) -> Result<(), CloudError> {
        let region = cx.region_name();
        if is_remains(&point.id) {
            return delete_snapshots(cx, &point.members).await;
        }
        let out = match cx
            .ec2()
            .deregister_image()
            .image_id(&point.id)
            .delete_associated_snapshots(true)
            .send()
            .await
        {
            Ok(out) => out,
            // Deregistered already (an earlier attempt whose answer was
            // lost): delete what it left.
            Err(e) if image_gone(code_of(&e)) => {
                return delete_snapshots(cx, &point.members).await;
            }
            Err(e) => return Err(from_sdk(e, "DeregisterImage", &point.id, region)),
        };
        // Every member AWS did not report deleted is left.
        let deleted: Vec<&str> = out
            .delete_snapshot_results()
            .iter()
            .filter(|r| r.return_code().map(|c| c.as_str()) == Some("success"))
            .filter_map(|r| r.snapshot_id())
            .collect();
        let left: Vec<String> = point
            .members
            .iter()
            .filter(|m| !deleted.contains(&m.as_str()))
            .cloned()
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        let what: Vec<String> = left
            .iter()
            .map(|id| {
                let code = out
                    .delete_snapshot_results()
                    .iter()
                    .find(|r| r.snapshot_id() == Some(id.as_str()))
                    .and_then(|r| r.return_code())
                    .map_or("not reported", |c| c.as_str());
                format!("{id} ({code})")
            })
            .collect();
        // Best effort: unmarked remains are still deleted once past the grace.
        let marked = mark_deleting(cx, &left).await.is_ok();
        Err(CloudError::new(
            ErrorKind::Internal,
            "DeregisterImage",
            &point.id,
            region,
            format!(
                "the AMI is deregistered but AWS kept {}; {}",
                what.join(", "),
                if marked {
                    "they are marked and the next prune deletes them"
                } else {
                    "the next prune deletes them once they are 7 days old"
                }
            ),
        ))
    }
    /// Two tag-filtered `DescribeImages`: this run's AMI copies, and every
    /// Strongroom AMI copy still pending here.
    async fn find_copies(
        &self,
        cx: &LocationClients,
        run: &RunKey,
    ) -> Result<DestinationCopies, CloudError> {
        let copy_filter = || ec2_filter("tag-key", [tags::COPY_OF.to_owned()]);
        let ours = images(
            cx,
            vec![
                tag_filter(tags::POLICY, run.policy.clone()),
                tag_filter(tags::CREATED_AT, format_time(run.scheduled_time)),
                copy_filter(),
            ],
        )
        .await?;
        let pending = images(
            cx,
            vec![copy_filter(), ec2_filter("state", ["pending".to_owned()])],
        )
        .await?;
        let found = ours
            .iter()
            .map(|i| {
                let t = i.tags().to_tags();
                FoundCopy {
                    copy_of: t.get(tags::COPY_OF).cloned().unwrap_or_default(),
                    execution: t.get(tags::RUN).cloned().unwrap_or_default(),
                    id: i.image_id().unwrap_or_default().to_owned(),
                    state: i.point_state(),
                }
            })
            .collect();
        Ok((found, pending.len()))
    }

    /// The AMIs with their names, tags, and the key of their (first
    /// encrypted) snapshot.
    async fn describe_sources(
        &self,
        cx: &LocationClients,
        ids: &[String],
    ) -> Result<Vec<SourceSnapshot>, CloudError> {
        let partition = strongroom_core::backup::discover::partition_of(cx.region_name());
        let mut found = Vec::new();
        for chunk in ids.chunks(FILTER_CHUNK) {
            found.extend(images(cx, vec![ec2_filter("image-id", chunk.to_vec())]).await?);
        }
        // DescribeImages does not tell the keys: the AMIs' snapshots do, in
        // one DescribeSnapshots for all.
        let snapshot_ids: Vec<String> = found.iter().flat_map(image_snapshots).collect();
        let snapshots = if snapshot_ids.is_empty() {
            Vec::new()
        } else {
            super::ebs::Ebs.describe_sources(cx, &snapshot_ids).await?
        };
        Ok(found
            .iter()
            .map(|i| {
                let id = i.image_id().unwrap_or_default().to_owned();
                let mine = image_snapshots(i);
                let mut kms_keys: Vec<String> = snapshots
                    .iter()
                    .filter(|s| mine.contains(&s.id))
                    .flat_map(|s| s.kms_keys.iter().cloned())
                    .collect();
                kms_keys.sort();
                kms_keys.dedup();
                SourceSnapshot {
                    arn: format!("arn:{partition}:ec2:{}::image/{id}", cx.region_name()),
                    name: i.name().unwrap_or_default().to_owned(),
                    tags: i.tags().to_tags(),
                    kms_keys,
                    aws_managed_key: false,
                    id,
                }
            })
            .collect())
    }

    /// The AMI's launch permission and its snapshots' create-volume
    /// permission: another account copies an AMI only with both.
    async fn set_shared(
        &self,
        cx: &LocationClients,
        ids: &[String],
        account: &str,
        add: bool,
    ) -> Result<(), CloudError> {
        use aws_sdk_ec2::types::{LaunchPermission, LaunchPermissionModifications};
        let region = cx.region_name();
        let permission = LaunchPermission::builder().user_id(account).build();
        let change = if add {
            LaunchPermissionModifications::builder().add(permission)
        } else {
            LaunchPermissionModifications::builder().remove(permission)
        }
        .build();
        for i in images(cx, vec![ec2_filter("image-id", ids.to_vec())]).await? {
            let id = i.image_id().unwrap_or_default();
            cx.ec2()
                .modify_image_attribute()
                .image_id(id)
                .launch_permission(change.clone())
                .send()
                .await
                .map_err(|e| from_sdk(e, "ModifyImageAttribute", id, region))?;
            super::ebs::Ebs
                .set_shared(cx, &image_snapshots(&i), account, add)
                .await?;
        }
        Ok(())
    }

    /// `CopyImage` in the destination's region: encrypted with its key,
    /// named as the source, tagged at creation (the AMI and its snapshots),
    /// with a client token made of the source and the destination, so a
    /// repeated request makes no second copy.
    async fn start_copy(
        &self,
        cx: &LocationClients,
        req: &StartCopy<'_>,
    ) -> Result<(String, RecoveryPointState), CloudError> {
        let region = cx.region_name();
        let token = copy_token(req);
        let sent = cx
            .ec2()
            .copy_image()
            .source_image_id(&req.source.id)
            .source_region(&req.source_location.region)
            .name(&req.name)
            .description(format!(
                "strongroom copy of {} from {}",
                req.source.id, req.source_location
            ))
            .encrypted(true)
            .kms_key_id(req.kms_key)
            .client_token(token)
            .tag_specifications(req.tags.ec2_spec(Ec2ResourceType::Image))
            .tag_specifications(req.tags.ec2_spec(Ec2ResourceType::Snapshot))
            .send()
            .await;
        match sent {
            Ok(out) => Ok((
                out.image_id().unwrap_or_default().to_owned(),
                RecoveryPointState::Pending,
            )),
            Err(e) => {
                let mut err = from_sdk(e, "CopyImage", &req.source.id, region);
                match err.code.as_deref() {
                    // Concurrent AMI copies per destination region.
                    Some("ResourceLimitExceeded") => err.kind = ErrorKind::NotReady,
                    // The name is this copy's when its copy-of says so.
                    Some("InvalidAMIName.Duplicate") => {
                        let found =
                            images(cx, vec![ec2_filter("name", [req.name.clone()])]).await?;
                        if let Some(i) = found.first() {
                            if i.tags().to_tags().get(tags::COPY_OF) == req.tags.get(tags::COPY_OF)
                            {
                                return Ok((
                                    i.image_id().unwrap_or_default().to_owned(),
                                    i.point_state(),
                                ));
                            }
                        }
                        err.message
                            .push_str(" (the name is taken by an AMI that is not this copy)");
                    }
                    _ => {}
                }
                Err(err)
            }
        }
    }
}

/// `CopyImage`'s client token: 64 ASCII characters at most, the same for the
/// same source, destination, policy and run time.
fn copy_token(req: &StartCopy<'_>) -> String {
    let key = format!(
        "{}|{}|{}|{}",
        req.source.arn,
        req.destination,
        req.tags.get(tags::POLICY).map_or("", String::as_str),
        req.tags.get(tags::CREATED_AT).map_or("", String::as_str)
    );
    format!("strongroom-copy-{:016x}", tags::fnv1a(key.as_bytes()))
}

/// Our AMIs matching `filters` (disabled ones too), every page.
async fn images(
    cx: &LocationClients,
    filters: Vec<aws_sdk_ec2::types::Filter>,
) -> Result<Vec<aws_sdk_ec2::types::Image>, CloudError> {
    let pages = cx
        .ec2()
        .describe_images()
        .owners("self")
        .include_disabled(true)
        .set_filters(Some(filters))
        .max_results(PAGE)
        .into_paginator()
        .send();
    all_pages(pages, "DescribeImages", cx.region_name(), |p| {
        p.images().to_vec()
    })
    .await
}

/// The AMIs `run`'s policy made for `run.scheduled_time` at this location,
/// one per source: one tag-filtered, paged `DescribeImages`.
pub(crate) async fn run_images(
    cx: &LocationClients,
    run: &RunKey,
) -> Result<Vec<RunPoint>, CloudError> {
    let pages = cx
        .ec2()
        .describe_images()
        .owners("self")
        .include_disabled(true)
        .filters(tag_filter(tags::MANAGED, "true"))
        .filters(tag_filter(tags::POLICY, run.policy.clone()))
        .filters(tag_filter(
            tags::CREATED_AT,
            format_time(run.scheduled_time),
        ))
        .max_results(PAGE)
        .into_paginator()
        .send();
    let images = all_pages(pages, "DescribeImages", cx.region_name(), |p| {
        p.images().to_vec()
    })
    .await?;
    let mut by_source: BTreeMap<String, RunPoint> = BTreeMap::new();
    for i in images {
        let t = i.tags().to_tags();
        let Some(source) = t.get(tags::SOURCE).cloned() else {
            continue;
        };
        by_source.entry(source.clone()).or_insert_with(|| RunPoint {
            point: RecoveryPoint {
                id: i.image_id().unwrap_or_default().to_owned(),
                kind: RecoveryPointKind::Ami,
                members: image_snapshots(&i),
                resource_type: ResourceType::Ec2Instance,
                source,
                location: cx.location.clone(),
                created_at: run.scheduled_time,
                state: i.point_state(),
            },
            execution: run_tag(&t).to_owned(),
        });
    }
    Ok(by_source.into_values().collect())
}

/// Whether AWS answered that the AMI does not exist (any more): the point
/// is what a deregistered AMI left (its id is the AMI its snapshots' name, or
/// `<source>@<time>`).
fn image_gone(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable" | "InvalidAMIID.Malformed")
    )
}

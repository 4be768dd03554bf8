//! Recovery points over EC2, RDS and Redshift: create (tagged at creation,
//! idempotent), the per-location idempotency lookup, and the completion check.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ec2::types::{
    Filter as Ec2Filter, InstanceSpecification, ResourceType as Ec2ResourceType, Tag as Ec2Tag,
    TagSpecification,
};
use strongroom_core::model::{
    Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState, ResourceType, Tags,
};
use strongroom_core::policy::Ec2Mode;
use strongroom_core::ports::{CreateRequest, Created, RecoveryPoints};
use strongroom_core::tags::{self, RunKey};
use strongroom_core::{CloudError, ErrorKind};

use crate::error::{code_of, from_sdk};
use crate::AwsCloud;

/// Filter values per describe call (EC2 accepts 200 per filter).
const FILTER_CHUNK: usize = 200;
/// RDS accepts at most 100 values... per filter in practice; stay under it.
const RDS_FILTER_CHUNK: usize = 100;

fn ec2_tags(tags: &Tags) -> Vec<Ec2Tag> {
    tags.iter()
        .map(|(k, v)| Ec2Tag::builder().key(k).value(v).build())
        .collect()
}

fn tag_spec(resource: Ec2ResourceType, tags: &Tags) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(ec2_tags(tags)))
        .build()
}

fn rds_tags(tags: &Tags) -> Vec<aws_sdk_rds::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect()
}

fn redshift_tags(tags: &Tags) -> Vec<aws_sdk_redshift::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_redshift::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
        })
        .collect()
}

fn ec2_filter(name: &str, values: impl IntoIterator<Item = String>) -> Ec2Filter {
    Ec2Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().collect()))
        .build()
}

fn rds_filter(name: &str, values: &[String]) -> aws_sdk_rds::types::Filter {
    aws_sdk_rds::types::Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

/// Tags from any SDK tag list, as `(key, value)` pairs.
pub(crate) fn tags_from<'a>(
    pairs: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> Tags {
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((k?.to_owned(), v.unwrap_or_default().to_owned())))
        .collect()
}

/// CreateSnapshot(s) take no client token: an SDK retry after a lost response
/// could make a second snapshot. They are not retried by the SDK; a transient
/// failure fails the batch instead, and Step Functions retries the batch, whose
/// idempotency lookup finds what the first attempt made.
fn no_retries() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled())
}

/// What creating (or finding) a named recovery point saw.
struct Seen {
    status: Option<String>,
    /// Set when the name existed already: its tags, to check it is ours.
    existing_tags: Option<Tags>,
}

impl Seen {
    fn made(status: Option<&str>) -> Self {
        Self {
            status: status.map(str::to_owned),
            existing_tags: None,
        }
    }

    fn existing<'a>(
        status: Option<&str>,
        tags: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
    ) -> Self {
        Self {
            status: status.map(str::to_owned),
            existing_tags: Some(tags_from(tags)),
        }
    }
}

/// Pushes each of `points` whose id has a fresh state in `states`, with that state.
fn push_fresh<'a>(
    points: impl Iterator<Item = &'a RecoveryPoint>,
    states: &HashMap<String, RecoveryPointState>,
    fresh: &mut Vec<RecoveryPoint>,
) {
    for p in points {
        if let Some(s) = states.get(&p.id) {
            fresh.push(RecoveryPoint {
                state: *s,
                ..p.clone()
            });
        }
    }
}

/// Snapshots made by CreateImage carry this description; they belong to an AMI.
pub(crate) fn is_ami_snapshot(description: Option<&str>) -> bool {
    description.is_some_and(|d| d.starts_with("Created by CreateImage"))
}

/// An existing recovery point found under our deterministic name must be ours.
fn check_same_owner(
    existing: &Tags,
    req: &CreateRequest<'_>,
    operation: &'static str,
) -> Result<(), CloudError> {
    let same = existing.get(tags::MANAGED).map(String::as_str) == Some("true")
        && existing.get(tags::POLICY) == req.tags.get(tags::POLICY)
        && existing.get(tags::SOURCE) == req.tags.get(tags::SOURCE)
        && existing.get(tags::CREATED_AT) == req.tags.get(tags::CREATED_AT);
    if same {
        Ok(())
    } else {
        Err(CloudError::new(
            ErrorKind::Internal,
            operation,
            &req.name,
            &req.location.region,
            format!(
                "a recovery point named {} exists but was not made by policy {} for {} at {}; rename or remove it",
                req.name,
                req.run.policy,
                req.target.source_ref(),
                req.run.scheduled_time
            ),
        ))
    }
}

impl AwsCloud {
    fn point(
        &self,
        req: &CreateRequest<'_>,
        id: String,
        kind: RecoveryPointKind,
        members: Vec<String>,
        state: RecoveryPointState,
    ) -> RecoveryPoint {
        RecoveryPoint {
            id,
            kind,
            members,
            resource_type: req.target.resource_type,
            source: req.target.source_ref().to_owned(),
            location: req.location.clone(),
            created_at: req.run.scheduled_time.clone(),
            state,
        }
    }

    async fn create_ebs(&self, req: &CreateRequest<'_>) -> Result<Created, CloudError> {
        let region = &req.location.region;
        let out = self
            .clients
            .ec2(region)
            .create_snapshot()
            .volume_id(&req.target.id)
            .description(format!(
                "strongroom {} {}",
                req.run.policy, req.run.scheduled_time
            ))
            .tag_specifications(tag_spec(Ec2ResourceType::Snapshot, &req.tags))
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| from_sdk(e, "CreateSnapshot", &req.target.id, region))?;
        let id = out.snapshot_id().unwrap_or_default().to_owned();
        let state =
            RecoveryPointState::from_aws(out.state().map(|s| s.as_str()).unwrap_or("pending"));
        Ok(Created {
            recovery_point: self.point(req, id, RecoveryPointKind::EbsSnapshot, vec![], state),
            existed: false,
        })
    }

    async fn create_instance_snapshots(
        &self,
        req: &CreateRequest<'_>,
    ) -> Result<Created, CloudError> {
        let region = &req.location.region;
        let out = self
            .clients
            .ec2(region)
            .create_snapshots()
            .instance_specification(
                InstanceSpecification::builder()
                    .instance_id(&req.target.id)
                    .exclude_boot_volume(req.ec2.exclude_boot_volume)
                    .build(),
            )
            .description(format!(
                "strongroom {} {}",
                req.run.policy, req.run.scheduled_time
            ))
            .tag_specifications(tag_spec(Ec2ResourceType::Snapshot, &req.tags))
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| from_sdk(e, "CreateSnapshots", &req.target.id, region))?;
        let mut members = Vec::new();
        let mut states = Vec::new();
        for s in out.snapshots() {
            members.push(s.snapshot_id().unwrap_or_default().to_owned());
            states.push(RecoveryPointState::from_aws(
                s.state().map(|s| s.as_str()).unwrap_or("pending"),
            ));
        }
        members.sort();
        if members.is_empty() {
            return Err(CloudError::new(
                ErrorKind::InvalidInput,
                "CreateSnapshots",
                &req.target.id,
                region,
                "no volume was snapshotted (an instance with only a root volume and exclude_boot_volume set?)",
            ));
        }
        Ok(Created {
            recovery_point: self.point(
                req,
                RecoveryPoint::instance_set_id(&req.target.id, &req.run.scheduled_time),
                RecoveryPointKind::Ec2SnapshotSet,
                members,
                RecoveryPointState::worst(states),
            ),
            existed: false,
        })
    }

    async fn create_ami(&self, req: &CreateRequest<'_>) -> Result<Created, CloudError> {
        let region = &req.location.region;
        let ec2 = self.clients.ec2(region);
        let res = ec2
            .create_image()
            .instance_id(&req.target.id)
            .name(&req.name)
            .no_reboot(true)
            .description(format!(
                "strongroom {} {}",
                req.run.policy, req.run.scheduled_time
            ))
            .tag_specifications(tag_spec(Ec2ResourceType::Image, &req.tags))
            .tag_specifications(tag_spec(Ec2ResourceType::Snapshot, &req.tags))
            .send()
            .await;
        match res {
            Ok(out) => {
                let id = out.image_id().unwrap_or_default().to_owned();
                Ok(Created {
                    recovery_point: self.point(
                        req,
                        id,
                        RecoveryPointKind::Ami,
                        vec![],
                        RecoveryPointState::Pending,
                    ),
                    existed: false,
                })
            }
            Err(e) if code_of(&e) == Some("InvalidAMIName.Duplicate") => {
                let out = ec2
                    .describe_images()
                    .owners("self")
                    .filters(ec2_filter("name", [req.name.clone()]))
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DescribeImages", &req.name, region))?;
                let image = out.images().first().ok_or_else(|| {
                    CloudError::new(
                        ErrorKind::Internal,
                        "DescribeImages",
                        &req.name,
                        region,
                        "AMI name is taken but no AMI of this account has it",
                    )
                })?;
                check_same_owner(
                    &tags_from(image.tags().iter().map(|t| (t.key(), t.value()))),
                    req,
                    "CreateImage",
                )?;
                let state = RecoveryPointState::from_aws(
                    image.state().map(|s| s.as_str()).unwrap_or("pending"),
                );
                let members = image
                    .block_device_mappings()
                    .iter()
                    .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_owned))
                    .collect();
                Ok(Created {
                    recovery_point: self.point(
                        req,
                        image.image_id().unwrap_or_default().to_owned(),
                        RecoveryPointKind::Ami,
                        members,
                        state,
                    ),
                    existed: true,
                })
            }
            Err(e) => Err(from_sdk(e, "CreateImage", &req.target.id, region)),
        }
    }

    /// The shared end of the three create-or-find paths with deterministic names:
    /// an existing recovery point must belong to this policy, source and time.
    fn finish_named(
        &self,
        req: &CreateRequest<'_>,
        kind: RecoveryPointKind,
        operation: &'static str,
        seen: Option<Seen>,
    ) -> Result<Created, CloudError> {
        let seen = seen.ok_or_else(|| {
            CloudError::new(
                ErrorKind::Internal,
                operation,
                &req.name,
                &req.location.region,
                "no snapshot in the response",
            )
        })?;
        if let Some(tags) = &seen.existing_tags {
            check_same_owner(tags, req, operation)?;
        }
        let state = RecoveryPointState::from_aws(seen.status.as_deref().unwrap_or("creating"));
        Ok(Created {
            recovery_point: self.point(req, req.name.clone(), kind, vec![], state),
            existed: seen.existing_tags.is_some(),
        })
    }

    async fn create_rds(&self, req: &CreateRequest<'_>) -> Result<Created, CloudError> {
        let region = &req.location.region;
        let rds = self.clients.rds(region);
        let res = rds
            .create_db_snapshot()
            .db_snapshot_identifier(&req.name)
            .db_instance_identifier(&req.target.id)
            .set_tags(Some(rds_tags(&req.tags)))
            .send()
            .await;
        let seen = match res {
            Ok(out) => out.db_snapshot().map(|s| Seen::made(s.status())),
            Err(e) if code_of(&e) == Some("DBSnapshotAlreadyExists") => rds
                .describe_db_snapshots()
                .db_snapshot_identifier(&req.name)
                .send()
                .await
                .map_err(|e| from_sdk(e, "DescribeDBSnapshots", &req.name, region))?
                .db_snapshots()
                .first()
                .map(|s| {
                    Seen::existing(
                        s.status(),
                        s.tag_list().iter().map(|t| (t.key(), t.value())),
                    )
                }),
            Err(e) => {
                let mut err = from_sdk(e, "CreateDBSnapshot", &req.target.id, region);
                if matches!(
                    err.code.as_deref(),
                    Some("InvalidParameterCombination" | "InvalidDBInstanceState")
                ) {
                    err.message.push_str(" (an Aurora cluster member is protected through its cluster: select the cluster as aurora-cluster instead)");
                }
                return Err(err);
            }
        };
        self.finish_named(
            req,
            RecoveryPointKind::RdsSnapshot,
            "CreateDBSnapshot",
            seen,
        )
    }

    async fn create_aurora(&self, req: &CreateRequest<'_>) -> Result<Created, CloudError> {
        let region = &req.location.region;
        let rds = self.clients.rds(region);
        let res = rds
            .create_db_cluster_snapshot()
            .db_cluster_snapshot_identifier(&req.name)
            .db_cluster_identifier(&req.target.id)
            .set_tags(Some(rds_tags(&req.tags)))
            .send()
            .await;
        let seen = match res {
            Ok(out) => out.db_cluster_snapshot().map(|s| Seen::made(s.status())),
            Err(e)
                if matches!(
                    code_of(&e),
                    Some("DBClusterSnapshotAlreadyExistsFault" | "DBClusterSnapshotAlreadyExists")
                ) =>
            {
                rds.describe_db_cluster_snapshots()
                    .db_cluster_snapshot_identifier(&req.name)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DescribeDBClusterSnapshots", &req.name, region))?
                    .db_cluster_snapshots()
                    .first()
                    .map(|s| {
                        Seen::existing(
                            s.status(),
                            s.tag_list().iter().map(|t| (t.key(), t.value())),
                        )
                    })
            }
            Err(e) => {
                return Err(from_sdk(
                    e,
                    "CreateDBClusterSnapshot",
                    &req.target.id,
                    region,
                ))
            }
        };
        self.finish_named(
            req,
            RecoveryPointKind::AuroraSnapshot,
            "CreateDBClusterSnapshot",
            seen,
        )
    }

    async fn create_redshift(&self, req: &CreateRequest<'_>) -> Result<Created, CloudError> {
        let region = &req.location.region;
        let rs = self.clients.redshift(region);
        let res = rs
            .create_cluster_snapshot()
            .snapshot_identifier(&req.name)
            .cluster_identifier(&req.target.id)
            .set_tags(Some(redshift_tags(&req.tags)))
            .send()
            .await;
        let seen = match res {
            Ok(out) => out.snapshot().map(|s| Seen::made(s.status())),
            Err(e)
                if matches!(
                    code_of(&e),
                    Some("ClusterSnapshotAlreadyExists" | "ClusterSnapshotAlreadyExistsFault")
                ) =>
            {
                rs.describe_cluster_snapshots()
                    .snapshot_identifier(&req.name)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DescribeClusterSnapshots", &req.name, region))?
                    .snapshots()
                    .first()
                    .map(|s| {
                        Seen::existing(s.status(), s.tags().iter().map(|t| (t.key(), t.value())))
                    })
            }
            Err(e) => return Err(from_sdk(e, "CreateClusterSnapshot", &req.target.id, region)),
        };
        self.finish_named(
            req,
            RecoveryPointKind::RedshiftSnapshot,
            "CreateClusterSnapshot",
            seen,
        )
    }

    /// EBS snapshots by id: id -> (state, tags). Missing ids are absent.
    async fn ebs_states(
        &self,
        region: &str,
        ids: &[String],
    ) -> Result<HashMap<String, RecoveryPointState>, CloudError> {
        let ec2 = self.clients.ec2(region);
        let mut out = HashMap::new();
        for chunk in ids.chunks(FILTER_CHUNK) {
            let mut pages = ec2
                .describe_snapshots()
                .owner_ids("self")
                .filters(ec2_filter("snapshot-id", chunk.iter().cloned()))
                .max_results(1000)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| from_sdk(e, "DescribeSnapshots", "-", region))?;
                for s in page.snapshots() {
                    if let Some(id) = s.snapshot_id() {
                        out.insert(
                            id.to_owned(),
                            RecoveryPointState::from_aws(
                                s.state().map(|s| s.as_str()).unwrap_or("pending"),
                            ),
                        );
                    }
                }
            }
        }
        Ok(out)
    }
}

impl RecoveryPoints for AwsCloud {
    async fn find_run_snapshots(
        &self,
        location: &Location,
        run: &RunKey,
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        let region = &location.region;
        let mut pages = self
            .clients
            .ec2(region)
            .describe_snapshots()
            .owner_ids("self")
            .filters(ec2_filter(
                &format!("tag:{}", tags::MANAGED),
                ["true".to_owned()],
            ))
            .filters(ec2_filter(
                &format!("tag:{}", tags::POLICY),
                [run.policy.clone()],
            ))
            .filters(ec2_filter(
                &format!("tag:{}", tags::CREATED_AT),
                [run.scheduled_time.clone()],
            ))
            .max_results(1000)
            .into_paginator()
            .send();
        // source -> (snapshot ids, states)
        let mut by_source: BTreeMap<String, (Vec<String>, Vec<RecoveryPointState>)> =
            BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(e, "DescribeSnapshots", "-", region))?;
            for s in page.snapshots() {
                if is_ami_snapshot(s.description()) {
                    continue;
                }
                let t = tags_from(s.tags().iter().map(|t| (t.key(), t.value())));
                let (Some(source), Some(id)) = (t.get(tags::SOURCE), s.snapshot_id()) else {
                    continue;
                };
                let e = by_source.entry(source.clone()).or_default();
                e.0.push(id.to_owned());
                e.1.push(RecoveryPointState::from_aws(
                    s.state().map(|s| s.as_str()).unwrap_or("pending"),
                ));
            }
        }
        Ok(by_source
            .into_iter()
            .map(|(source, (mut ids, states))| {
                ids.sort();
                let instance = source.starts_with("i-");
                RecoveryPoint {
                    id: if instance {
                        RecoveryPoint::instance_set_id(&source, &run.scheduled_time)
                    } else {
                        ids[0].clone()
                    },
                    kind: if instance {
                        RecoveryPointKind::Ec2SnapshotSet
                    } else {
                        RecoveryPointKind::EbsSnapshot
                    },
                    members: if instance { ids } else { vec![] },
                    resource_type: if instance {
                        ResourceType::Ec2Instance
                    } else {
                        ResourceType::EbsVolume
                    },
                    source,
                    location: location.clone(),
                    created_at: run.scheduled_time.clone(),
                    state: RecoveryPointState::worst(states),
                }
            })
            .collect())
    }

    async fn create(&self, req: &CreateRequest<'_>) -> Result<Created, CloudError> {
        match (req.target.resource_type, req.ec2.mode) {
            (ResourceType::EbsVolume, _) => self.create_ebs(req).await,
            (ResourceType::Ec2Instance, Ec2Mode::Snapshots) => {
                self.create_instance_snapshots(req).await
            }
            (ResourceType::Ec2Instance, Ec2Mode::Ami) => self.create_ami(req).await,
            (ResourceType::RdsInstance, _) => self.create_rds(req).await,
            (ResourceType::AuroraCluster, _) => self.create_aurora(req).await,
            (ResourceType::RedshiftCluster, _) => self.create_redshift(req).await,
        }
    }

    async fn refresh(
        &self,
        location: &Location,
        points: &[RecoveryPoint],
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        let region = &location.region;
        let of = |k: RecoveryPointKind| points.iter().filter(move |p| p.kind == k);
        let mut fresh = Vec::new();

        // EBS snapshots and instance snapshot sets: one describe by snapshot id.
        let ebs_ids: Vec<String> = points
            .iter()
            .flat_map(|p| match p.kind {
                RecoveryPointKind::EbsSnapshot => vec![p.id.clone()],
                RecoveryPointKind::Ec2SnapshotSet => p.members.clone(),
                _ => vec![],
            })
            .collect();
        if !ebs_ids.is_empty() {
            let states = self.ebs_states(region, &ebs_ids).await?;
            push_fresh(of(RecoveryPointKind::EbsSnapshot), &states, &mut fresh);
            for p in of(RecoveryPointKind::Ec2SnapshotSet) {
                let member_states: Option<Vec<_>> =
                    p.members.iter().map(|m| states.get(m).copied()).collect();
                if let Some(ms) = member_states {
                    fresh.push(RecoveryPoint {
                        state: RecoveryPointState::worst(ms),
                        ..p.clone()
                    });
                }
            }
        }

        let ami_ids: Vec<String> = of(RecoveryPointKind::Ami).map(|p| p.id.clone()).collect();
        if !ami_ids.is_empty() {
            let ec2 = self.clients.ec2(region);
            let mut states = HashMap::new();
            for chunk in ami_ids.chunks(FILTER_CHUNK) {
                let out = ec2
                    .describe_images()
                    .owners("self")
                    .filters(ec2_filter("image-id", chunk.iter().cloned()))
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DescribeImages", "-", region))?;
                for i in out.images() {
                    let members: Vec<String> = i
                        .block_device_mappings()
                        .iter()
                        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_owned))
                        .collect();
                    states.insert(
                        i.image_id().unwrap_or_default().to_owned(),
                        (
                            RecoveryPointState::from_aws(
                                i.state().map(|s| s.as_str()).unwrap_or("pending"),
                            ),
                            members,
                        ),
                    );
                }
            }
            for p in of(RecoveryPointKind::Ami) {
                if let Some((s, members)) = states.get(&p.id) {
                    fresh.push(RecoveryPoint {
                        state: *s,
                        members: members.clone(),
                        ..p.clone()
                    });
                }
            }
        }

        let rds_ids: Vec<String> = of(RecoveryPointKind::RdsSnapshot)
            .map(|p| p.id.clone())
            .collect();
        if !rds_ids.is_empty() {
            let rds = self.clients.rds(region);
            let mut states = HashMap::new();
            for chunk in rds_ids.chunks(RDS_FILTER_CHUNK) {
                let mut pages = rds
                    .describe_db_snapshots()
                    .filters(rds_filter("db-snapshot-id", chunk))
                    .max_records(100)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| from_sdk(e, "DescribeDBSnapshots", "-", region))?;
                    for s in page.db_snapshots() {
                        states.insert(
                            s.db_snapshot_identifier().unwrap_or_default().to_owned(),
                            RecoveryPointState::from_aws(s.status().unwrap_or("creating")),
                        );
                    }
                }
            }
            push_fresh(of(RecoveryPointKind::RdsSnapshot), &states, &mut fresh);
        }

        let aurora_ids: Vec<String> = of(RecoveryPointKind::AuroraSnapshot)
            .map(|p| p.id.clone())
            .collect();
        if !aurora_ids.is_empty() {
            let rds = self.clients.rds(region);
            let mut states = HashMap::new();
            for chunk in aurora_ids.chunks(RDS_FILTER_CHUNK) {
                let mut pages = rds
                    .describe_db_cluster_snapshots()
                    .filters(rds_filter("db-cluster-snapshot-id", chunk))
                    .max_records(100)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page =
                        page.map_err(|e| from_sdk(e, "DescribeDBClusterSnapshots", "-", region))?;
                    for s in page.db_cluster_snapshots() {
                        states.insert(
                            s.db_cluster_snapshot_identifier()
                                .unwrap_or_default()
                                .to_owned(),
                            RecoveryPointState::from_aws(s.status().unwrap_or("creating")),
                        );
                    }
                }
            }
            push_fresh(of(RecoveryPointKind::AuroraSnapshot), &states, &mut fresh);
        }

        let redshift: Vec<&RecoveryPoint> = of(RecoveryPointKind::RedshiftSnapshot).collect();
        if !redshift.is_empty() {
            // Redshift has no snapshot-id filter; its tag filter narrows the
            // listing to this run's scheduled time(s), then we match by id.
            let mut times: Vec<String> = redshift.iter().map(|p| p.created_at.clone()).collect();
            times.sort();
            times.dedup();
            let mut pages = self
                .clients
                .redshift(region)
                .describe_cluster_snapshots()
                .snapshot_type("manual")
                .tag_keys(tags::CREATED_AT)
                .set_tag_values(Some(times))
                .max_records(100)
                .into_paginator()
                .send();
            let mut states = HashMap::new();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| from_sdk(e, "DescribeClusterSnapshots", "-", region))?;
                for s in page.snapshots() {
                    states.insert(
                        s.snapshot_identifier().unwrap_or_default().to_owned(),
                        RecoveryPointState::from_aws(s.status().unwrap_or("creating")),
                    );
                }
            }
            push_fresh(redshift.into_iter(), &states, &mut fresh);
        }
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ami_snapshots_are_recognised() {
        assert!(is_ami_snapshot(Some(
            "Created by CreateImage(i-1) for ami-1"
        )));
        assert!(!is_ami_snapshot(Some(
            "strongroom daily 2026-11-29T03:00:00Z"
        )));
        assert!(!is_ami_snapshot(None));
    }
}

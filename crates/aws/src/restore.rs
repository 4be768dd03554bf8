//! The [`Restores`] port: the catalog of a location's recovery points, the
//! checks before a restore, and making, watching and (on failure) removing
//! what a restore makes.
//!
//! Nothing here modifies or deletes a recovery point: the only deletions
//! are of resources this restore made, each checked first to carry
//! `strongroom:restore` = this execution (the IAM policy says the same).

use aws_sdk_ec2::types::{
    ArchitectureValues, BlockDeviceMapping, BootModeValues, EbsBlockDevice,
    IamInstanceProfileSpecification, InstanceType, ResourceType as Ec2ResourceType, VolumeType,
};
use futures::FutureExt;
use strongroom_core::kind::TagCharset;
use strongroom_core::listing::{assemble_managed, Listing, Scope};
use strongroom_core::model::{Location, RecoveryPointKind, Tags};
use strongroom_core::ports::Listed;
use strongroom_core::restore::run::{Health, Made, MadeKind, RestorePlan, RestoreState, Restores};
use strongroom_core::tags::{self, fnv1a};
use strongroom_core::{CloudError, ErrorKind};

use crate::clients::LocationClients;
use crate::error::{code_of, from_sdk};
use crate::kinds::with_adapter;
use crate::sdk::{ec2_filter, tag_filter, TagsExt, ToSdkTags};
use crate::AwsCloud;
use strongroom_core::backup::discover::partition_of;

/// An error naming the request's field.
fn field_error(
    kind: ErrorKind,
    op: &'static str,
    field: &str,
    id: &str,
    region: &str,
    msg: String,
) -> CloudError {
    CloudError::new(kind, op, id, region, format!("{field}: {msg}"))
}

/// A client token for a create of this execution (EC2 takes up to 64 ASCII
/// characters; the same token makes a retried create return the first one).
fn client_token(execution: &str, what: &str) -> String {
    format!("sr-{:016x}-{what}", fnv1a(execution.as_bytes()))
}

impl Restores for AwsCloud {
    async fn catalog(
        &self,
        location: &Location,
        kinds: &[RecoveryPointKind],
    ) -> Result<Listed, CloudError> {
        let cx = self.clients.for_location(location).await?;
        // The EBS listing holds the members of sets and the snapshots of AMIs.
        let mut list: Vec<RecoveryPointKind> = kinds.to_vec();
        if kinds
            .iter()
            .any(|k| k.facts().snapshots != strongroom_core::kind::Snapshots::None)
        {
            list.push(RecoveryPointKind::EbsSnapshot);
        }
        if kinds.contains(&RecoveryPointKind::Ec2SnapshotSet)
            || kinds.contains(&RecoveryPointKind::EbsSnapshot)
        {
            // Images use snapshots: listed so their snapshots are told apart.
            list.push(RecoveryPointKind::Ami);
        }
        list.sort();
        list.dedup();
        let listings = futures::future::join_all(
            list.iter()
                .map(|k| with_adapter!(*k, |a| a.list(&cx, Scope::AnyPolicy).boxed())),
        )
        .await;
        let mut listing = Listing::default();
        for l in listings {
            listing.merge(l?);
        }
        let mut listed = assemble_managed(location, listing);
        listed.points.retain(|p| kinds.contains(&p.point.kind));
        Ok(listed)
    }

    async fn shared_with(
        &self,
        point: &strongroom_core::model::RecoveryPoint,
    ) -> Result<Vec<String>, CloudError> {
        let cx = self.clients.for_location(&point.location).await?;
        with_adapter!(point.kind, |a| a.shared_with(&cx, point).boxed()).await
    }

    async fn preflight(&self, location: &Location, plan: &RestorePlan) -> Result<(), CloudError> {
        if matches!(plan, RestorePlan::Files { .. }) {
            return Box::pin(crate::file_restore::preflight(self, plan)).await;
        }
        let cx = self.clients.for_location(location).await?;
        Box::pin(preflight(&cx, plan)).await
    }

    async fn start(&self, state: &RestoreState) -> Result<Vec<Made>, CloudError> {
        if matches!(state.plan, RestorePlan::Files { .. }) {
            // A file restore makes nothing: CopyFiles writes to S3.
            return Ok(vec![]);
        }
        let cx = self.clients.for_location(&state.target).await?;
        Box::pin(start(&cx, state)).await
    }

    async fn check(&self, state: &RestoreState) -> Result<Health, CloudError> {
        if matches!(state.plan, RestorePlan::Files { .. }) {
            return Ok(Health {
                usable: state.files.as_ref().is_some_and(|f| f.done),
                ..Health::default()
            });
        }
        let cx = self.clients.for_location(&state.target).await?;
        Box::pin(check(&cx, state)).await
    }

    async fn find_made(&self, state: &RestoreState) -> Result<Vec<Made>, CloudError> {
        if matches!(state.plan, RestorePlan::Files { .. }) {
            return Ok(vec![]);
        }
        let cx = self.clients.for_location(&state.target).await?;
        Box::pin(find_made(&cx, state)).await
    }

    async fn copy_files(
        &self,
        state: &RestoreState,
    ) -> Result<strongroom_core::restore::files::FilesProgress, CloudError> {
        Box::pin(crate::file_restore::copy_files(self, state)).await
    }

    async fn remove(&self, state: &RestoreState, temporary_only: bool) -> Result<(), CloudError> {
        if matches!(state.plan, RestorePlan::Files { .. }) {
            return Box::pin(crate::file_restore::abort(self, state)).await;
        }
        let cx = self.clients.for_location(&state.target).await?;
        Box::pin(remove(&cx, state, temporary_only)).await
    }
}

// ---------------------------------------------------------------- preflight

async fn preflight(cx: &LocationClients, plan: &RestorePlan) -> Result<(), CloudError> {
    let region = cx.region_name();
    match plan {
        RestorePlan::Files { .. } => Ok(()),
        RestorePlan::EbsVolume {
            availability_zone, ..
        } => check_zone(cx, availability_zone).await,
        RestorePlan::Ec2Instance {
            subnet_id,
            security_group_ids,
            key_name,
            ..
        } => {
            let vpc = match subnet_id {
                Some(s) => Some(subnet_vpc(cx, s).await?),
                None => None,
            };
            check_groups(cx, security_group_ids, vpc.as_deref(), "restore.subnet_id").await?;
            if let Some(k) = key_name {
                let out = cx.ec2().describe_key_pairs().key_names(k).send().await;
                if let Err(e) = out {
                    let e = from_sdk(e, "DescribeKeyPairs", k, region);
                    return Err(if e.kind == ErrorKind::NotFound {
                        field_error(ErrorKind::NotFound, "DescribeKeyPairs", "restore.key_name", k, region,
                            format!("there is no key pair `{k}` in {region}; name one that exists, or import the key"))
                    } else {
                        e
                    });
                }
            }
            Ok(())
        }
        RestorePlan::RdsInstance {
            identifier,
            subnet_group,
            security_group_ids,
            ..
        } => {
            db_identifier_free(cx, identifier, false).await?;
            let vpc = match subnet_group {
                Some(g) => Some(db_subnet_group_vpc(cx, g).await?),
                None => None,
            };
            check_groups(
                cx,
                security_group_ids,
                vpc.as_deref(),
                "restore.subnet_group",
            )
            .await
        }
        RestorePlan::AuroraCluster {
            identifier,
            instances,
            subnet_group,
            security_group_ids,
            ..
        } => {
            db_identifier_free(cx, identifier, true).await?;
            // Its instances' names too: `<identifier>-1` … `-n`.
            for n in 1..=*instances {
                let name = format!("{identifier}-{n}");
                if describe_db(cx, &name).await?.is_some() {
                    return Err(field_error(ErrorKind::InvalidInput, "RestoreCheck", "restore.identifier", &name, region,
                        format!("a DB instance `{name}` already exists in {region}: the cluster's instances are named `{identifier}-<n>`; choose another identifier")));
                }
            }
            let vpc = match subnet_group {
                Some(g) => Some(db_subnet_group_vpc(cx, g).await?),
                None => None,
            };
            check_groups(
                cx,
                security_group_ids,
                vpc.as_deref(),
                "restore.subnet_group",
            )
            .await
        }
        RestorePlan::RedshiftCluster {
            identifier,
            subnet_group,
            security_group_ids,
            ..
        } => {
            let out = cx
                .redshift()
                .describe_clusters()
                .cluster_identifier(identifier)
                .send()
                .await;
            match out {
                Ok(o) if !o.clusters().is_empty() => {
                    return Err(field_error(ErrorKind::InvalidInput, "DescribeClusters", "restore.identifier", identifier, region,
                        format!("a Redshift cluster `{identifier}` already exists in {region}; choose another identifier")))
                }
                Ok(_) => {}
                Err(e) => {
                    let e = from_sdk(e, "DescribeClusters", identifier, region);
                    if e.kind != ErrorKind::NotFound {
                        return Err(e);
                    }
                }
            }
            let vpc = match subnet_group {
                Some(g) => {
                    let out = cx
                        .redshift()
                        .describe_cluster_subnet_groups()
                        .cluster_subnet_group_name(g)
                        .send()
                        .await
                        .map_err(|e| {
                            let e = from_sdk(e, "DescribeClusterSubnetGroups", g, region);
                            if e.kind == ErrorKind::NotFound {
                                field_error(
                                    ErrorKind::NotFound,
                                    "DescribeClusterSubnetGroups",
                                    "restore.subnet_group",
                                    g,
                                    region,
                                    format!("there is no Redshift subnet group `{g}` in {region}"),
                                )
                            } else {
                                e
                            }
                        })?;
                    out.cluster_subnet_groups()
                        .first()
                        .and_then(|s| s.vpc_id())
                        .map(str::to_owned)
                }
                None => None,
            };
            check_groups(
                cx,
                security_group_ids,
                vpc.as_deref(),
                "restore.subnet_group",
            )
            .await
        }
    }
}

async fn check_zone(cx: &LocationClients, zone: &str) -> Result<(), CloudError> {
    let region = cx.region_name();
    let out = cx
        .ec2()
        .describe_availability_zones()
        .all_availability_zones(true)
        .send()
        .await
        .map_err(|e| from_sdk(e, "DescribeAvailabilityZones", zone, region))?;
    let zones: Vec<&str> = out
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name())
        .collect();
    if zones.contains(&zone) {
        Ok(())
    } else {
        Err(field_error(
            ErrorKind::InvalidInput,
            "DescribeAvailabilityZones",
            "restore.availability_zone",
            zone,
            region,
            format!(
                "`{zone}` is not an Availability Zone of {region}; it has {}",
                zones.join(", ")
            ),
        ))
    }
}

async fn subnet_vpc(cx: &LocationClients, subnet: &str) -> Result<String, CloudError> {
    let region = cx.region_name();
    let out = cx
        .ec2()
        .describe_subnets()
        .subnet_ids(subnet)
        .send()
        .await
        .map_err(|e| {
            let e = from_sdk(e, "DescribeSubnets", subnet, region);
            if e.kind == ErrorKind::NotFound {
                field_error(
                    ErrorKind::NotFound,
                    "DescribeSubnets",
                    "restore.subnet_id",
                    subnet,
                    region,
                    format!("there is no subnet `{subnet}` in {region}"),
                )
            } else {
                e
            }
        })?;
    out.subnets()
        .first()
        .and_then(|s| s.vpc_id())
        .map(str::to_owned)
        .ok_or_else(|| {
            field_error(
                ErrorKind::NotFound,
                "DescribeSubnets",
                "restore.subnet_id",
                subnet,
                region,
                format!("there is no subnet `{subnet}` in {region}"),
            )
        })
}

/// Every group exists and, when the network's VPC is known, is in it.
async fn check_groups(
    cx: &LocationClients,
    groups: &[String],
    vpc: Option<&str>,
    network_field: &str,
) -> Result<(), CloudError> {
    if groups.is_empty() {
        return Ok(());
    }
    let region = cx.region_name();
    let out = cx
        .ec2()
        .describe_security_groups()
        .set_group_ids(Some(groups.to_vec()))
        .send()
        .await
        .map_err(|e| {
            let e = from_sdk(e, "DescribeSecurityGroups", &groups.join(","), region);
            if e.kind == ErrorKind::NotFound {
                field_error(
                    ErrorKind::NotFound,
                    "DescribeSecurityGroups",
                    "restore.security_group_ids",
                    &groups.join(","),
                    region,
                    format!(
                        "one of {} does not exist in {region}: {}",
                        groups.join(", "),
                        e.message
                    ),
                )
            } else {
                e
            }
        })?;
    for (i, g) in groups.iter().enumerate() {
        let found = out
            .security_groups()
            .iter()
            .find(|s| s.group_id() == Some(g));
        let Some(found) = found else {
            return Err(field_error(
                ErrorKind::NotFound,
                "DescribeSecurityGroups",
                &format!("restore.security_group_ids[{i}]"),
                g,
                region,
                format!("there is no security group `{g}` in {region}"),
            ));
        };
        if let (Some(want), Some(has)) = (vpc, found.vpc_id()) {
            if want != has {
                return Err(field_error(ErrorKind::InvalidInput, "DescribeSecurityGroups", &format!("restore.security_group_ids[{i}]"), g, region,
                    format!("`{g}` is in {has}, but {network_field} is in {want}: give groups of the network's VPC (or leave both out to use the recorded ones)")));
            }
        }
    }
    Ok(())
}

async fn db_subnet_group_vpc(cx: &LocationClients, group: &str) -> Result<String, CloudError> {
    let region = cx.region_name();
    let out = cx
        .rds()
        .describe_db_subnet_groups()
        .db_subnet_group_name(group)
        .send()
        .await
        .map_err(|e| {
            let e = from_sdk(e, "DescribeDBSubnetGroups", group, region);
            if e.kind == ErrorKind::NotFound {
                field_error(
                    ErrorKind::NotFound,
                    "DescribeDBSubnetGroups",
                    "restore.subnet_group",
                    group,
                    region,
                    format!("there is no DB subnet group `{group}` in {region}"),
                )
            } else {
                e
            }
        })?;
    Ok(out
        .db_subnet_groups()
        .first()
        .and_then(|g| g.vpc_id())
        .unwrap_or_default()
        .to_owned())
}

/// The identifier is not taken (by a DB instance, or a cluster).
async fn db_identifier_free(
    cx: &LocationClients,
    id: &str,
    cluster: bool,
) -> Result<(), CloudError> {
    let region = cx.region_name();
    let taken = if cluster {
        match cx
            .rds()
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
        {
            Ok(o) => !o.db_clusters().is_empty(),
            Err(e) => {
                let e = from_sdk(e, "DescribeDBClusters", id, region);
                if e.kind != ErrorKind::NotFound {
                    return Err(e);
                }
                false
            }
        }
    } else {
        match cx
            .rds()
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(o) => !o.db_instances().is_empty(),
            Err(e) => {
                let e = from_sdk(e, "DescribeDBInstances", id, region);
                if e.kind != ErrorKind::NotFound {
                    return Err(e);
                }
                false
            }
        }
    };
    if taken {
        Err(field_error(
            ErrorKind::InvalidInput,
            "RestoreCheck",
            "restore.identifier",
            id,
            region,
            format!(
                "a {} `{id}` already exists in {region}; choose another identifier",
                if cluster { "DB cluster" } else { "DB instance" }
            ),
        ))
    } else {
        Ok(())
    }
}

// ------------------------------------------------------------------- start

fn made(kind: MadeKind, id: impl Into<String>) -> Made {
    Made {
        kind,
        id: id.into(),
    }
}

async fn start(cx: &LocationClients, state: &RestoreState) -> Result<Vec<Made>, CloudError> {
    let region = cx.region_name();
    let mut out = Vec::new();
    // The isolating group first: everything made goes into it.
    let isolate = match (&state.plan, state.request.isolate) {
        (RestorePlan::EbsVolume { .. }, _) | (_, false) => None,
        (plan, true) => {
            let g = isolating_group(cx, state, plan).await?;
            out.push(made(MadeKind::SecurityGroup, g.clone()));
            Some(g)
        }
    };
    let groups = |recorded: &[String]| -> Vec<String> {
        isolate
            .clone()
            .map(|g| vec![g])
            .unwrap_or_else(|| recorded.to_vec())
    };
    match &state.plan {
        RestorePlan::Files { .. } => {}
        RestorePlan::EbsVolume {
            snapshot,
            availability_zone,
            volume_type,
            size_gib,
            iops,
            throughput,
        } => {
            let v = cx
                .ec2()
                .create_volume()
                .snapshot_id(snapshot)
                .availability_zone(availability_zone)
                .volume_type(VolumeType::from(volume_type.as_str()))
                .set_size(*size_gib)
                .set_iops(*iops)
                .set_throughput(*throughput)
                .client_token(client_token(&state.execution, "volume"))
                .tag_specifications(state.tags.ec2_spec(Ec2ResourceType::Volume))
                .send()
                .await
                .map_err(|e| from_sdk(e, "CreateVolume", snapshot, region))?;
            out.push(made(MadeKind::Volume, v.volume_id().unwrap_or_default()));
        }
        RestorePlan::Ec2Instance {
            image,
            volumes,
            root_device_name,
            architecture,
            ena_support,
            boot_mode,
            instance_type,
            subnet_id,
            security_group_ids,
            key_name,
            instance_profile_arn,
            private_ip,
        } => {
            let image = match image {
                Some(i) => i.clone(),
                None => {
                    let i = register_image(
                        cx,
                        state,
                        volumes,
                        root_device_name,
                        architecture,
                        *ena_support,
                        boot_mode.as_deref(),
                    )
                    .await?;
                    out.push(made(MadeKind::Image, i.clone()));
                    i
                }
            };
            let groups = groups(security_group_ids);
            let mut run = cx
                .ec2()
                .run_instances()
                .image_id(&image)
                .instance_type(InstanceType::from(instance_type.as_str()))
                .min_count(1)
                .max_count(1)
                .client_token(client_token(&state.execution, "instance"))
                .set_subnet_id(subnet_id.clone())
                .set_security_group_ids((!groups.is_empty()).then_some(groups))
                .set_key_name(key_name.clone())
                .set_private_ip_address(private_ip.clone())
                .tag_specifications(state.tags.ec2_spec(Ec2ResourceType::Instance))
                .tag_specifications(state.tags.ec2_spec(Ec2ResourceType::Volume));
            if let Some(arn) = instance_profile_arn {
                let spec = if arn.starts_with("arn:") {
                    IamInstanceProfileSpecification::builder().arn(arn).build()
                } else {
                    IamInstanceProfileSpecification::builder().name(arn).build()
                };
                run = run.iam_instance_profile(spec);
            }
            let r = run
                .send()
                .await
                .map_err(|e| from_sdk(e, "RunInstances", &image, region))?;
            for i in r.instances() {
                out.push(made(
                    MadeKind::Instance,
                    i.instance_id().unwrap_or_default(),
                ));
            }
        }
        RestorePlan::RdsInstance {
            identifier,
            snapshot,
            instance_class,
            subnet_group,
            parameter_group,
            option_group,
            security_group_ids,
            port,
            multi_az,
        } => {
            let groups = groups(security_group_ids);
            let sent = cx
                .rds()
                .restore_db_instance_from_db_snapshot()
                .db_instance_identifier(identifier)
                .db_snapshot_identifier(shared_ref(state, cx, "snapshot", snapshot))
                .set_db_instance_class(instance_class.clone())
                .set_db_subnet_group_name(subnet_group.clone())
                .set_db_parameter_group_name(parameter_group.clone())
                .set_option_group_name(option_group.clone())
                .set_vpc_security_group_ids((!groups.is_empty()).then_some(groups))
                .set_port(*port)
                .multi_az(*multi_az)
                .set_tags(Some(state.tags.rds_tags()))
                .send()
                .await;
            match sent {
                Ok(_) => {}
                Err(e) if code_of(&e) == Some("DBInstanceAlreadyExists") => {
                    ours_or_taken_db(cx, state, identifier).await?;
                }
                Err(e) => {
                    return Err(from_sdk(
                        e,
                        "RestoreDBInstanceFromDBSnapshot",
                        snapshot,
                        region,
                    ))
                }
            }
            out.push(made(MadeKind::DbInstance, identifier.clone()));
        }
        RestorePlan::AuroraCluster {
            identifier,
            snapshot,
            engine,
            engine_version,
            subnet_group,
            parameter_group,
            security_group_ids,
            port,
            ..
        } => {
            let groups = groups(security_group_ids);
            let engine = match engine {
                Some(e) => e.clone(),
                None => {
                    snapshot_engine(cx, &shared_ref(state, cx, "cluster-snapshot", snapshot))
                        .await?
                }
            };
            let sent = cx
                .rds()
                .restore_db_cluster_from_snapshot()
                .db_cluster_identifier(identifier)
                .snapshot_identifier(shared_ref(state, cx, "cluster-snapshot", snapshot))
                .engine(&engine)
                .set_engine_version(engine_version.clone())
                .set_db_subnet_group_name(subnet_group.clone())
                .set_db_cluster_parameter_group_name(parameter_group.clone())
                .set_vpc_security_group_ids((!groups.is_empty()).then_some(groups))
                .set_port(*port)
                .set_tags(Some(state.tags.rds_tags()))
                .send()
                .await;
            match sent {
                Ok(_) => {}
                Err(e) if code_of(&e) == Some("DBClusterAlreadyExistsFault") => {
                    ours_or_taken_cluster(cx, state, identifier).await?;
                }
                Err(e) => {
                    return Err(from_sdk(
                        e,
                        "RestoreDBClusterFromSnapshot",
                        snapshot,
                        region,
                    ))
                }
            }
            out.push(made(MadeKind::DbCluster, identifier.clone()));
        }
        RestorePlan::RedshiftCluster {
            identifier,
            snapshot,
            node_type,
            number_of_nodes,
            subnet_group,
            parameter_group,
            security_group_ids,
            port,
        } => {
            let groups = groups(security_group_ids);
            let owner = (state.point.location.account != cx.location.account)
                .then(|| state.point.location.account.clone());
            let sent = cx
                .redshift()
                .restore_from_cluster_snapshot()
                .cluster_identifier(identifier)
                .snapshot_identifier(snapshot)
                .set_owner_account(owner)
                .set_node_type(node_type.clone())
                .set_number_of_nodes(*number_of_nodes)
                .set_cluster_subnet_group_name(subnet_group.clone())
                .set_cluster_parameter_group_name(parameter_group.clone())
                .set_vpc_security_group_ids((!groups.is_empty()).then_some(groups))
                .set_port(*port)
                .publicly_accessible(false)
                .send()
                .await;
            match sent {
                Ok(_) => {}
                Err(e) if code_of(&e) == Some("ClusterAlreadyExists") => {
                    ours_or_taken_redshift(cx, state, identifier).await?;
                }
                Err(e) => return Err(from_sdk(e, "RestoreFromClusterSnapshot", snapshot, region)),
            }
            // RestoreFromClusterSnapshot takes no tags: they follow at once.
            let arn = redshift_cluster_arn(cx, identifier);
            cx.redshift()
                .create_tags()
                .resource_name(&arn)
                .set_tags(Some(state.tags.redshift_tags()))
                .send()
                .await
                .map_err(|e| from_sdk(e, "CreateTags", &arn, region))?;
            out.push(made(MadeKind::RedshiftCluster, identifier.clone()));
        }
    }
    Ok(out)
}

/// How the target account names a database snapshot: its identifier in its
/// own account, its ARN when another account shared it (RDS: "If you are
/// restoring from a shared manual DB snapshot, the DBSnapshotIdentifier
/// must be the ARN of the shared DB snapshot").
fn shared_ref(state: &RestoreState, cx: &LocationClients, resource: &str, id: &str) -> String {
    if state.point.location.account == cx.location.account {
        id.to_owned()
    } else {
        format!(
            "arn:{}:rds:{}:{}:{resource}:{id}",
            partition_of(&state.point.location.region),
            state.point.location.region,
            state.point.location.account
        )
    }
}

/// A Redshift cluster's ARN (what CreateTags and DeleteTags take).
fn redshift_cluster_arn(cx: &LocationClients, identifier: &str) -> String {
    format!(
        "arn:{}:redshift:{}:{}:cluster:{identifier}",
        partition_of(cx.region_name()),
        cx.region_name(),
        cx.location.account
    )
}

/// The engine of a DB cluster snapshot (RestoreDBClusterFromSnapshot needs it).
async fn snapshot_engine(cx: &LocationClients, snapshot: &str) -> Result<String, CloudError> {
    let region = cx.region_name();
    let out = cx
        .rds()
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier(snapshot)
        .include_shared(snapshot.starts_with("arn:"))
        .send()
        .await
        .map_err(|e| from_sdk(e, "DescribeDBClusterSnapshots", snapshot, region))?;
    out.db_cluster_snapshots()
        .first()
        .and_then(|s| s.engine())
        .map(str::to_owned)
        .ok_or_else(|| {
            CloudError::new(
                ErrorKind::NotFound,
                "DescribeDBClusterSnapshots",
                snapshot,
                region,
                "the cluster snapshot is gone",
            )
        })
}

/// A resource with the restore's identifier that existed already is this
/// execution's (a retried start), or the identifier was taken meanwhile:
/// `InvalidInput` naming `restore.identifier`.
fn ours_or_taken(
    mine: bool,
    op: &'static str,
    what: &str,
    id: &str,
    region: &str,
) -> Result<(), CloudError> {
    if mine {
        Ok(())
    } else {
        Err(field_error(
            ErrorKind::InvalidInput,
            op,
            "restore.identifier",
            id,
            region,
            format!(
                "a {what} `{id}` was made by someone else meanwhile; choose another identifier"
            ),
        ))
    }
}

fn tagged_by(t: &Tags, state: &RestoreState) -> bool {
    t.get(tags::RESTORE).map(String::as_str) == Some(state.restore_tag())
}

async fn ours_or_taken_db(
    cx: &LocationClients,
    state: &RestoreState,
    id: &str,
) -> Result<(), CloudError> {
    let mine = describe_db(cx, id)
        .await?
        .is_some_and(|d| tagged_by(&d.tag_list().to_tags(), state));
    ours_or_taken(
        mine,
        "RestoreDBInstanceFromDBSnapshot",
        "DB instance",
        id,
        cx.region_name(),
    )
}

async fn ours_or_taken_cluster(
    cx: &LocationClients,
    state: &RestoreState,
    id: &str,
) -> Result<(), CloudError> {
    let mine = describe_cluster(cx, id)
        .await?
        .is_some_and(|c| tagged_by(&c.tag_list().to_tags(), state));
    ours_or_taken(
        mine,
        "RestoreDBClusterFromSnapshot",
        "DB cluster",
        id,
        cx.region_name(),
    )
}

/// For Redshift, a cluster the first attempt made before its tags (they
/// follow the restore) is untagged: restored from a snapshot and created
/// since this restore began.
async fn ours_or_taken_redshift(
    cx: &LocationClients,
    state: &RestoreState,
    id: &str,
) -> Result<(), CloudError> {
    let mine = describe_redshift_cluster(cx, id).await?.is_some_and(|c| {
        let t = c.tags().to_tags();
        if t.contains_key(tags::RESTORE) {
            tagged_by(&t, state)
        } else {
            c.restore_status().is_some()
                && c.cluster_create_time()
                    .is_some_and(|at| at.secs() >= state.started_at.unix_timestamp() - 60)
        }
    });
    ours_or_taken(
        mine,
        "RestoreFromClusterSnapshot",
        "Redshift cluster",
        id,
        cx.region_name(),
    )
}

/// Registers an image of a snapshot set's members, each on its recorded
/// device (RegisterImage takes no client token: its name, fixed per
/// execution, finds the one a retried start made).
#[allow(clippy::too_many_arguments)]
async fn register_image(
    cx: &LocationClients,
    state: &RestoreState,
    volumes: &[strongroom_core::restore::run::PlannedVolume],
    root: &str,
    architecture: &str,
    ena: bool,
    boot_mode: Option<&str>,
) -> Result<String, CloudError> {
    let region = cx.region_name();
    let name = format!(
        "strongroom-restore-{:016x}",
        fnv1a(state.execution.as_bytes())
    );
    let existing = cx
        .ec2()
        .describe_images()
        .owners("self")
        .filters(ec2_filter("name", [name.clone()]))
        .send()
        .await
        .map_err(|e| from_sdk(e, "DescribeImages", &name, region))?;
    if let Some(id) = existing.images().first().and_then(|i| i.image_id()) {
        return Ok(id.to_owned());
    }
    let mappings: Vec<BlockDeviceMapping> = volumes
        .iter()
        .map(|v| {
            BlockDeviceMapping::builder()
                .device_name(&v.device)
                .ebs(
                    EbsBlockDevice::builder()
                        .snapshot_id(&v.snapshot)
                        .set_volume_type(v.volume_type.as_deref().map(VolumeType::from))
                        .set_volume_size(v.size_gib)
                        .set_iops(v.iops)
                        .set_throughput(v.throughput)
                        .delete_on_termination(v.delete_on_termination)
                        .build(),
                )
                .build()
        })
        .collect();
    let out = cx
        .ec2()
        .register_image()
        .name(&name)
        .description(format!(
            "strongroom restore {} of {}",
            state.execution, state.point.id
        ))
        .architecture(ArchitectureValues::from(architecture))
        .root_device_name(root)
        .set_block_device_mappings(Some(mappings))
        .virtualization_type("hvm")
        .ena_support(ena)
        .set_boot_mode(boot_mode.map(BootModeValues::from))
        .tag_specifications(state.tags.ec2_spec(Ec2ResourceType::Image))
        .send()
        .await;
    match out {
        Ok(out) => Ok(out.image_id().unwrap_or_default().to_owned()),
        // Registered by an attempt whose answer was lost, and not visible
        // to the lookup above yet: the step is retried and finds it.
        Err(e) if code_of(&e) == Some("InvalidAMIName.Duplicate") => Err(CloudError::new(
            ErrorKind::NotReady,
            "RegisterImage",
            &name,
            region,
            "the image a retried start registered is not visible yet",
        )),
        Err(e) => Err(from_sdk(e, "RegisterImage", &state.point.id, region)),
    }
}

/// A security group with no ingress and no egress in the VPC of what is
/// restored, tagged as the restore's.
async fn isolating_group(
    cx: &LocationClients,
    state: &RestoreState,
    plan: &RestorePlan,
) -> Result<String, CloudError> {
    let region = cx.region_name();
    let vpc = match plan {
        RestorePlan::Ec2Instance {
            subnet_id: Some(s), ..
        } => subnet_vpc(cx, s).await?,
        RestorePlan::RdsInstance {
            subnet_group: Some(g),
            ..
        }
        | RestorePlan::AuroraCluster {
            subnet_group: Some(g),
            ..
        } => db_subnet_group_vpc(cx, g).await?,
        RestorePlan::RedshiftCluster {
            subnet_group: Some(g),
            ..
        } => {
            let out = cx
                .redshift()
                .describe_cluster_subnet_groups()
                .cluster_subnet_group_name(g)
                .send()
                .await
                .map_err(|e| from_sdk(e, "DescribeClusterSubnetGroups", g, region))?;
            out.cluster_subnet_groups()
                .first()
                .and_then(|s| s.vpc_id())
                .unwrap_or_default()
                .to_owned()
        }
        _ => default_vpc(cx).await?,
    };
    let name = format!(
        "strongroom-isolated-{:016x}",
        fnv1a(state.execution.as_bytes())
    );
    let find = || async {
        let out = cx
            .ec2()
            .describe_security_groups()
            .filters(ec2_filter("group-name", [name.clone()]))
            .filters(ec2_filter("vpc-id", [vpc.clone()]))
            .send()
            .await
            .map_err(|e| from_sdk(e, "DescribeSecurityGroups", &name, region))?;
        Ok::<_, CloudError>(out.security_groups().first().cloned())
    };
    // A retried start finds the group its first attempt made (which may
    // still have the default egress rule: it is closed below all the same).
    let group = match find().await? {
        Some(g) => g,
        None => {
            let made = cx
                .ec2()
                .create_security_group()
                .group_name(&name)
                .description(format!(
                    "Strongroom: isolates the restore {} (no ingress, no egress)",
                    // A group description takes fewer characters than an execution name.
                    tags::fit_tag_value(&state.execution, TagCharset::Restricted)
                ))
                .vpc_id(&vpc)
                .tag_specifications(state.tags.ec2_spec(Ec2ResourceType::SecurityGroup))
                .send()
                .await;
            match made {
                Ok(_) => {}
                // Made by an attempt whose answer was lost.
                Err(e) if code_of(&e) == Some("InvalidGroup.Duplicate") => {}
                Err(e) => return Err(from_sdk(e, "CreateSecurityGroup", &vpc, region)),
            }
            // Not visible yet (EC2's eventual consistency): the step is retried.
            find().await?.ok_or_else(|| {
                CloudError::new(
                    ErrorKind::NotReady,
                    "DescribeSecurityGroups",
                    &name,
                    region,
                    "the isolating group is not visible yet",
                )
            })?
        }
    };
    let id = group.group_id().unwrap_or_default().to_owned();
    // Every egress rule goes (a new group allows all egress), and any ingress.
    if !group.ip_permissions_egress().is_empty() {
        cx.ec2()
            .revoke_security_group_egress()
            .group_id(&id)
            .set_ip_permissions(Some(group.ip_permissions_egress().to_vec()))
            .send()
            .await
            .map_err(|e| {
                not_ready_if_not_visible(from_sdk(e, "RevokeSecurityGroupEgress", &id, region))
            })?;
    }
    Ok(id)
}

/// A group or image just made that a call cannot see yet is worth a retry
/// of the step, not a failed restore.
fn not_ready_if_not_visible(mut e: CloudError) -> CloudError {
    if e.code.as_deref().is_some_and(|c| c.ends_with(".NotFound")) {
        e.kind = ErrorKind::NotReady;
    }
    e
}

async fn default_vpc(cx: &LocationClients) -> Result<String, CloudError> {
    let region = cx.region_name();
    let out = cx
        .ec2()
        .describe_vpcs()
        .filters(ec2_filter("is-default", ["true".to_owned()]))
        .send()
        .await
        .map_err(|e| from_sdk(e, "DescribeVpcs", "default", region))?;
    out.vpcs()
        .first()
        .and_then(|v| v.vpc_id())
        .map(str::to_owned)
        .ok_or_else(|| field_error(ErrorKind::InvalidInput, "DescribeVpcs", "isolate", "default", region,
            format!("{region} has no default VPC to isolate the restore in; give restore.subnet_id (or subnet_group)")))
}

// ------------------------------------------------------------------- check

fn ids_of(state: &RestoreState, kind: MadeKind) -> Vec<String> {
    state
        .made
        .iter()
        .filter(|m| m.kind == kind)
        .map(|m| m.id.clone())
        .collect()
}

async fn check(cx: &LocationClients, state: &RestoreState) -> Result<Health, CloudError> {
    let region = cx.region_name();
    let mut h = Health::default();
    match &state.plan {
        RestorePlan::Files { .. } => {}
        RestorePlan::EbsVolume { .. } => {
            let ids = ids_of(state, MadeKind::Volume);
            let out = match cx
                .ec2()
                .describe_volumes()
                .set_volume_ids(Some(ids.clone()))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    return missing_or(h, from_sdk(e, "DescribeVolumes", &ids.join(","), region))
                }
            };
            let v = out.volumes().first();
            h.missing = v.is_none();
            let st = v
                .and_then(|v| v.state())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            h.usable = st == "available";
            if st == "error" || st == "deleted" || st == "deleting" {
                h.failed = Some(format!("the volume is {st}"));
            }
            if let Some(v) = v {
                h.details.insert("volume_id".into(), v.volume_id().into());
                h.details.insert("state".into(), st.into());
                h.details.insert("size_gib".into(), v.size().into());
                h.details.insert(
                    "volume_type".into(),
                    v.volume_type().map(|t| t.as_str()).into(),
                );
                h.details
                    .insert("availability_zone".into(), v.availability_zone().into());
                h.details
                    .insert("snapshot_id".into(), v.snapshot_id().into());
            }
        }
        RestorePlan::Ec2Instance { .. } => {
            let ids = ids_of(state, MadeKind::Instance);
            let out = match cx
                .ec2()
                .describe_instances()
                .set_instance_ids(Some(ids.clone()))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    return missing_or(h, from_sdk(e, "DescribeInstances", &ids.join(","), region))
                }
            };
            let Some(i) = out.reservations().iter().flat_map(|r| r.instances()).next() else {
                h.missing = true;
                return Ok(h);
            };
            let st = i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default();
            if matches!(
                st.as_str(),
                "terminated" | "shutting-down" | "stopped" | "stopping"
            ) {
                h.failed = Some(format!(
                    "the instance is {st}: {}",
                    i.state_reason()
                        .and_then(|r| r.message())
                        .unwrap_or("no reason given")
                ));
            }
            let mut checks_ok = false;
            if st == "running" {
                let s = cx
                    .ec2()
                    .describe_instance_status()
                    .set_instance_ids(Some(ids.clone()))
                    .include_all_instances(true)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DescribeInstanceStatus", &ids.join(","), region))?;
                checks_ok = s.instance_statuses().first().is_some_and(|s| {
                    let ok = |x: Option<&aws_sdk_ec2::types::InstanceStatusSummary>| {
                        x.and_then(|x| x.status()).map(|v| v.as_str()) == Some("ok")
                    };
                    ok(s.instance_status()) && ok(s.system_status())
                });
                h.details.insert(
                    "status_checks".into(),
                    if checks_ok { "passed" } else { "initializing" }.into(),
                );
            }
            h.usable = st == "running" && checks_ok;
            h.details
                .insert("instance_id".into(), i.instance_id().into());
            h.details.insert("state".into(), st.into());
            h.details.insert(
                "instance_type".into(),
                i.instance_type().map(|t| t.as_str()).into(),
            );
            h.details.insert("subnet_id".into(), i.subnet_id().into());
            h.details
                .insert("private_ip".into(), i.private_ip_address().into());
            let devices: serde_json::Map<String, serde_json::Value> = i
                .block_device_mappings()
                .iter()
                .filter_map(|m| Some((m.device_name()?.to_owned(), m.ebs()?.volume_id()?.into())))
                .collect();
            h.details.insert("devices".into(), devices.into());
            h.details.insert(
                "security_group_ids".into(),
                i.security_groups()
                    .iter()
                    .filter_map(|g| g.group_id())
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        RestorePlan::RdsInstance { identifier, .. } => {
            let d = describe_db(cx, identifier).await?;
            h.missing = d.is_none();
            let st = d
                .as_ref()
                .and_then(|d| d.db_instance_status())
                .unwrap_or("")
                .to_owned();
            h.usable = st == "available";
            h.failed = db_failed(&st);
            if let Some(d) = d {
                h.details
                    .insert("identifier".into(), identifier.as_str().into());
                h.details.insert("status".into(), st.into());
                h.details
                    .insert("instance_class".into(), d.db_instance_class().into());
                h.details.insert("engine".into(), d.engine().into());
                h.details.insert(
                    "endpoint".into(),
                    d.endpoint().and_then(|e| e.address()).into(),
                );
                h.details.insert(
                    "subnet_group".into(),
                    d.db_subnet_group()
                        .and_then(|g| g.db_subnet_group_name())
                        .into(),
                );
            }
        }
        RestorePlan::AuroraCluster {
            identifier,
            instance_class,
            instances,
            instance_parameter_group,
            ..
        } => {
            let out = match cx
                .rds()
                .describe_db_clusters()
                .db_cluster_identifier(identifier)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    return missing_or(h, from_sdk(e, "DescribeDBClusters", identifier, region))
                }
            };
            let Some(c) = out.db_clusters().first() else {
                h.missing = true;
                return Ok(h);
            };
            let st = c.status().unwrap_or("").to_owned();
            h.failed = db_failed(&st);
            h.details
                .insert("identifier".into(), identifier.as_str().into());
            h.details.insert("status".into(), st.clone().into());
            h.details.insert("endpoint".into(), c.endpoint().into());
            h.details.insert("engine".into(), c.engine().into());
            if st != "available" {
                return Ok(h);
            }
            // The cluster is there: its instances next (deterministic names).
            let mut all = true;
            let mut members = Vec::new();
            for n in 1..=*instances {
                let name = format!("{identifier}-{n}");
                match describe_db(cx, &name).await? {
                    Some(d) => {
                        // Only this restore's member of this cluster counts.
                        let ours = d.db_cluster_identifier() == Some(identifier.as_str())
                            && d.tag_list()
                                .to_tags()
                                .get(tags::RESTORE)
                                .map(String::as_str)
                                == Some(state.restore_tag());
                        if !ours {
                            h.failed = Some(format!(
                                "a DB instance {name} exists that is not this restore's member of {identifier}"
                            ));
                            return Ok(h);
                        }
                        let s = d.db_instance_status().unwrap_or("").to_owned();
                        if let Some(f) = db_failed(&s) {
                            h.failed = Some(format!("instance {name}: {f}"));
                        }
                        all &= s == "available";
                        members.push(serde_json::json!({"identifier": name, "status": s, "instance_class": d.db_instance_class()}));
                    }
                    None => {
                        all = false;
                        let sent = cx
                            .rds()
                            .create_db_instance()
                            .db_instance_identifier(&name)
                            .db_cluster_identifier(identifier)
                            .engine(c.engine().unwrap_or("aurora-postgresql"))
                            .db_instance_class(instance_class)
                            .set_db_parameter_group_name(instance_parameter_group.clone())
                            .set_tags(Some(state.tags.rds_tags()))
                            .send()
                            .await;
                        match sent {
                            Ok(_) => {}
                            Err(e) if code_of(&e) == Some("DBInstanceAlreadyExists") => {}
                            Err(e) => return Err(from_sdk(e, "CreateDBInstance", &name, region)),
                        }
                        h.made.push(made(MadeKind::DbInstance, name.clone()));
                        members.push(serde_json::json!({"identifier": name, "status": "creating"}));
                    }
                }
            }
            h.details.insert("instances".into(), members.into());
            h.usable = all;
        }
        RestorePlan::RedshiftCluster { identifier, .. } => {
            let out = match cx
                .redshift()
                .describe_clusters()
                .cluster_identifier(identifier)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    return missing_or(h, from_sdk(e, "DescribeClusters", identifier, region))
                }
            };
            let Some(c) = out.clusters().first() else {
                h.missing = true;
                return Ok(h);
            };
            // Only the restore's own contract tags: whatever else of the
            // contract the cluster came back with (a snapshot's tags) would
            // make it look like a recovery point.
            let cluster_tags = c.tags().to_tags();
            if cluster_tags.get(tags::RESTORE).map(String::as_str) != Some(state.restore_tag()) {
                h.failed = Some(format!(
                    "the cluster {identifier} is not tagged as this restore's: it was not made by it"
                ));
                return Ok(h);
            }
            let stray: Vec<String> = cluster_tags
                .into_keys()
                .filter(|k| {
                    k.starts_with(tags::PREFIX) && k != tags::RESTORE && k != tags::RESTORED_FROM
                })
                .collect();
            if !stray.is_empty() {
                let arn = redshift_cluster_arn(cx, identifier);
                cx.redshift()
                    .delete_tags()
                    .resource_name(&arn)
                    .set_tag_keys(Some(stray))
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DeleteTags", &arn, region))?;
            }
            let st = c.cluster_status().unwrap_or("").to_owned();
            h.usable = st == "available";
            if st.starts_with("incompatible") || st == "hardware-failure" || st == "deleting" {
                h.failed = Some(format!("the cluster is {st}"));
            }
            h.details
                .insert("identifier".into(), identifier.as_str().into());
            h.details.insert("status".into(), st.into());
            h.details.insert("node_type".into(), c.node_type().into());
            h.details
                .insert("number_of_nodes".into(), c.number_of_nodes().into());
            h.details.insert(
                "endpoint".into(),
                c.endpoint().and_then(|e| e.address()).into(),
            );
        }
    }
    Ok(h)
}

/// A describe that did not find what was made: not visible yet, or gone
/// (the core waits, then fails); any other error is the step's.
fn missing_or(mut h: Health, e: CloudError) -> Result<Health, CloudError> {
    if gone(&e) {
        h.missing = true;
        Ok(h)
    } else {
        Err(e)
    }
}

fn db_failed(status: &str) -> Option<String> {
    (status.starts_with("incompatible")
        || matches!(
            status,
            "failed" | "deleting" | "inaccessible-encryption-credentials" | "storage-full"
        ))
    .then(|| format!("the status is {status}"))
}

async fn describe_db(
    cx: &LocationClients,
    id: &str,
) -> Result<Option<aws_sdk_rds::types::DbInstance>, CloudError> {
    match cx
        .rds()
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(o) => Ok(o.db_instances().first().cloned()),
        Err(e) => {
            let e = from_sdk(e, "DescribeDBInstances", id, cx.region_name());
            if e.kind == ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// `None` for what a describe did not find; any other error is the caller's.
fn found<T>(r: Result<T, CloudError>) -> Result<Option<T>, CloudError> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn describe_cluster(
    cx: &LocationClients,
    id: &str,
) -> Result<Option<aws_sdk_rds::types::DbCluster>, CloudError> {
    let out = cx
        .rds()
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
        .map_err(|e| from_sdk(e, "DescribeDBClusters", id, cx.region_name()));
    Ok(found(out)?.and_then(|o| o.db_clusters().first().cloned()))
}

async fn describe_redshift_cluster(
    cx: &LocationClients,
    id: &str,
) -> Result<Option<aws_sdk_redshift::types::Cluster>, CloudError> {
    let out = cx
        .redshift()
        .describe_clusters()
        .cluster_identifier(id)
        .send()
        .await
        .map_err(|e| from_sdk(e, "DescribeClusters", id, cx.region_name()));
    Ok(found(out)?.and_then(|o| o.clusters().first().cloned()))
}

/// Deletes a DB instance this restore made (tagged with its execution),
/// unless it is gone or going already.
async fn delete_db_instance_if_mine(
    cx: &LocationClients,
    state: &RestoreState,
    name: &str,
) -> Result<(), CloudError> {
    let Some(d) = describe_db(cx, name).await? else {
        return Ok(());
    };
    if d.tag_list()
        .to_tags()
        .get(tags::RESTORE)
        .map(String::as_str)
        != Some(state.restore_tag())
        || d.db_instance_status() == Some("deleting")
    {
        return Ok(());
    }
    let sent = cx
        .rds()
        .delete_db_instance()
        .db_instance_identifier(name)
        .skip_final_snapshot(true)
        .delete_automated_backups(true)
        .send()
        .await
        .map_err(|e| wait_if_busy(from_sdk(e, "DeleteDBInstance", name, cx.region_name())));
    found(sent).map(|_| ())
}

// ------------------------------------------------------------------ remove

/// Whether a describe's error says the resource is not there.
fn gone(e: &CloudError) -> bool {
    e.kind == ErrorKind::NotFound
}

/// An error of a removal that waits on another (a group still used by an
/// instance being terminated, a volume still attached, a cluster whose
/// instances are being deleted): the clean-up step is retried.
fn wait_if_busy(mut e: CloudError) -> CloudError {
    const BUSY: [&str; 6] = [
        "DependencyViolation",
        "VolumeInUse",
        "IncorrectState",
        "InvalidDBClusterStateFault",
        "InvalidDBInstanceState",
        "InvalidClusterState",
    ];
    if e.code.as_deref().is_some_and(|c| BUSY.contains(&c)) {
        e.kind = ErrorKind::NotReady;
    }
    e
}

/// What this restore made, found by its tag and its deterministic names.
async fn find_made(cx: &LocationClients, state: &RestoreState) -> Result<Vec<Made>, CloudError> {
    let region = cx.region_name();
    let mine = |t: &Tags| t.get(tags::RESTORE).map(String::as_str) == Some(state.restore_tag());
    let by_tag = || tag_filter(tags::RESTORE, state.restore_tag());
    let mut out = Vec::new();
    match &state.plan {
        RestorePlan::Files { .. } => {}
        RestorePlan::EbsVolume { .. } | RestorePlan::Ec2Instance { .. } => {
            let ec2 = cx.ec2();
            if matches!(state.plan, RestorePlan::EbsVolume { .. }) {
                let v = ec2
                    .describe_volumes()
                    .filters(by_tag())
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DescribeVolumes", &state.execution, region))?;
                out.extend(
                    v.volumes()
                        .iter()
                        .filter_map(|v| Some(made(MadeKind::Volume, v.volume_id()?))),
                );
            }
            let i = ec2
                .describe_instances()
                .filters(by_tag())
                .send()
                .await
                .map_err(|e| from_sdk(e, "DescribeInstances", &state.execution, region))?;
            out.extend(
                i.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter(|i| {
                        i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated")
                    })
                    .filter_map(|i| Some(made(MadeKind::Instance, i.instance_id()?))),
            );
            let images = ec2
                .describe_images()
                .owners("self")
                .filters(by_tag())
                .send()
                .await
                .map_err(|e| from_sdk(e, "DescribeImages", &state.execution, region))?;
            out.extend(
                images
                    .images()
                    .iter()
                    .filter_map(|i| Some(made(MadeKind::Image, i.image_id()?))),
            );
        }
        RestorePlan::RdsInstance { identifier, .. } => {
            if let Some(d) = describe_db(cx, identifier).await? {
                if mine(&d.tag_list().to_tags()) {
                    out.push(made(MadeKind::DbInstance, identifier.clone()));
                }
            }
        }
        RestorePlan::AuroraCluster {
            identifier,
            instances,
            ..
        } => {
            if describe_cluster(cx, identifier)
                .await?
                .is_some_and(|c| mine(&c.tag_list().to_tags()))
            {
                out.push(made(MadeKind::DbCluster, identifier.clone()));
            }
            for n in 1..=*instances {
                let name = format!("{identifier}-{n}");
                if let Some(d) = describe_db(cx, &name).await? {
                    if mine(&d.tag_list().to_tags()) {
                        out.push(made(MadeKind::DbInstance, name));
                    }
                }
            }
        }
        RestorePlan::RedshiftCluster { identifier, .. } => {
            if describe_redshift_cluster(cx, identifier)
                .await?
                .is_some_and(|c| mine(&c.tags().to_tags()))
            {
                out.push(made(MadeKind::RedshiftCluster, identifier.clone()));
            }
        }
    }
    if state.request.isolate {
        let g = cx
            .ec2()
            .describe_security_groups()
            .filters(by_tag())
            .send()
            .await
            .map_err(|e| from_sdk(e, "DescribeSecurityGroups", &state.execution, region))?;
        out.extend(
            g.security_groups()
                .iter()
                .filter_map(|g| Some(made(MadeKind::SecurityGroup, g.group_id()?))),
        );
    }
    Ok(out)
}

/// Removes what the restore made, instances and databases before the
/// group they are in, each after checking it carries this execution's
/// `strongroom:restore` tag; then the volumes an instance of it left
/// (those not deleted on termination). What is gone already is skipped;
/// what is still in use answers `NotReady`, and the step is retried.
async fn remove(
    cx: &LocationClients,
    state: &RestoreState,
    temporary_only: bool,
) -> Result<(), CloudError> {
    let region = cx.region_name();
    let mine = |t: &Tags| t.get(tags::RESTORE).map(String::as_str) == Some(state.restore_tag());
    let mut made = state.made.clone();
    made.sort_by_key(|m| m.kind == MadeKind::SecurityGroup);
    let ec2 = cx.ec2();
    for m in &made {
        if temporary_only && m.kind != MadeKind::Image {
            continue;
        }
        match m.kind {
            MadeKind::Image => {
                let out = match ec2.describe_images().image_ids(&m.id).send().await {
                    Ok(out) => out,
                    Err(e) => {
                        let e = from_sdk(e, "DescribeImages", &m.id, region);
                        if gone(&e) {
                            continue;
                        }
                        return Err(e);
                    }
                };
                let Some(i) = out.images().first() else {
                    continue;
                };
                if !mine(&i.tags().to_tags()) {
                    continue;
                }
                // Its snapshots are the recovery point's: never deleted.
                ec2.deregister_image()
                    .image_id(&m.id)
                    .delete_associated_snapshots(false)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DeregisterImage", &m.id, region))?;
            }
            MadeKind::Volume => delete_volume_if_mine(cx, state, &m.id).await?,
            MadeKind::Instance => {
                let out = match ec2.describe_instances().instance_ids(&m.id).send().await {
                    Ok(out) => out,
                    Err(e) => {
                        let e = from_sdk(e, "DescribeInstances", &m.id, region);
                        if gone(&e) {
                            continue;
                        }
                        return Err(e);
                    }
                };
                let Some(i) = out.reservations().iter().flat_map(|r| r.instances()).next() else {
                    continue;
                };
                if !mine(&i.tags().to_tags()) {
                    continue;
                }
                ec2.terminate_instances()
                    .instance_ids(&m.id)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "TerminateInstances", &m.id, region))?;
            }
            MadeKind::SecurityGroup => {
                let out = ec2
                    .describe_security_groups()
                    .filters(tag_filter(tags::RESTORE, state.restore_tag()))
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DescribeSecurityGroups", &m.id, region))?;
                if !out
                    .security_groups()
                    .iter()
                    .any(|g| g.group_id() == Some(&m.id))
                {
                    continue;
                }
                // Still used by an instance or a database being removed:
                // DependencyViolation, and the step is retried.
                ec2.delete_security_group()
                    .group_id(&m.id)
                    .send()
                    .await
                    .map_err(|e| wait_if_busy(from_sdk(e, "DeleteSecurityGroup", &m.id, region)))?;
            }
            MadeKind::DbInstance => delete_db_instance_if_mine(cx, state, &m.id).await?,
            MadeKind::DbCluster => {
                let Some(c) = describe_cluster(cx, &m.id).await? else {
                    continue;
                };
                if !mine(&c.tag_list().to_tags()) || c.status() == Some("deleting") {
                    continue;
                }
                // Its instances go first (a cluster with instances left
                // refuses: NotReady, retried).
                for member in c.db_cluster_members() {
                    if let Some(name) = member.db_instance_identifier() {
                        delete_db_instance_if_mine(cx, state, name).await?;
                    }
                }
                cx.rds()
                    .delete_db_cluster()
                    .db_cluster_identifier(&m.id)
                    .skip_final_snapshot(true)
                    .send()
                    .await
                    .map_err(|e| wait_if_busy(from_sdk(e, "DeleteDBCluster", &m.id, region)))?;
            }
            MadeKind::RedshiftCluster => {
                let Some(c) = describe_redshift_cluster(cx, &m.id).await? else {
                    continue;
                };
                if !mine(&c.tags().to_tags()) || c.cluster_status() == Some("deleting") {
                    continue;
                }
                cx.redshift()
                    .delete_cluster()
                    .cluster_identifier(&m.id)
                    .skip_final_cluster_snapshot(true)
                    .send()
                    .await
                    .map_err(|e| wait_if_busy(from_sdk(e, "DeleteCluster", &m.id, region)))?;
            }
        }
    }
    if !temporary_only && made.iter().any(|m| m.kind == MadeKind::Instance) {
        // The instance's volumes that are not deleted on termination: tagged
        // at launch as the restore's, found by that tag.
        let left = ec2
            .describe_volumes()
            .filters(tag_filter(tags::RESTORE, state.restore_tag()))
            .send()
            .await
            .map_err(|e| from_sdk(e, "DescribeVolumes", &state.execution, region))?;
        for v in left.volumes() {
            if let Some(id) = v.volume_id() {
                delete_volume_if_mine(cx, state, id).await?;
            }
        }
    }
    Ok(())
}

/// Deletes a volume this restore made (tagged with its execution); one
/// still attached to an instance being terminated answers `NotReady`.
async fn delete_volume_if_mine(
    cx: &LocationClients,
    state: &RestoreState,
    id: &str,
) -> Result<(), CloudError> {
    let region = cx.region_name();
    let out = match cx.ec2().describe_volumes().volume_ids(id).send().await {
        Ok(out) => out,
        Err(e) => {
            let e = from_sdk(e, "DescribeVolumes", id, region);
            return if gone(&e) { Ok(()) } else { Err(e) };
        }
    };
    let Some(v) = out.volumes().first() else {
        return Ok(());
    };
    if v.tags().to_tags().get(tags::RESTORE).map(String::as_str) != Some(state.restore_tag()) {
        return Ok(());
    }
    if v.state().map(|s| s.as_str()) == Some("in-use") {
        return Err(CloudError::new(
            ErrorKind::NotReady,
            "DeleteVolume",
            id,
            region,
            "still attached to an instance being terminated",
        ));
    }
    match cx.ec2().delete_volume().volume_id(id).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = wait_if_busy(from_sdk(e, "DeleteVolume", id, region));
            if gone(&e) {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

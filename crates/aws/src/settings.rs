//! What a restore needs of each source, described at backup time: one
//! paged describe per type of source in a batch (two for instances and
//! Aurora clusters: their volumes, their members), never one per source.

use std::collections::{BTreeMap, HashMap};

use strongroom_core::model::{ResourceType, Target};
use strongroom_core::restore::settings::{
    ClusterSettings, DbInstanceSettings, InstanceSettings, RedshiftSettings, SourceSettings,
    VolumeSettings,
};
use strongroom_core::CloudError;

use crate::clients::LocationClients;
use crate::sdk::{all_pages, ec2_filter, rds_filter};

/// A parameter or option group name, unless it is an engine's default
/// (`default.postgres16`, `default:postgres-16`): a restore then gets the
/// default of the engine version it restores, which AWS picks by itself,
/// rather than an older version's default.
fn custom(group: Option<&str>) -> Option<String> {
    group
        .filter(|g| !g.starts_with("default.") && !g.starts_with("default:"))
        .map(str::to_owned)
}

/// Values per EC2 describe filter (EC2 accepts 200).
const EC2_CHUNK: usize = 200;
/// Values per RDS describe filter (RDS accepts 100).
const RDS_CHUNK: usize = 100;

/// The settings of every target found, by `strongroom:source`.
pub(crate) async fn describe(
    cx: &LocationClients,
    targets: &[Target],
) -> Result<BTreeMap<String, SourceSettings>, CloudError> {
    let of = |t: ResourceType| -> Vec<&Target> {
        targets.iter().filter(|x| x.resource_type == t).collect()
    };
    let mut out = BTreeMap::new();
    let volumes = of(ResourceType::EbsVolume);
    if !volumes.is_empty() {
        let ids: Vec<String> = volumes.iter().map(|t| t.id.clone()).collect();
        let found = Box::pin(describe_volumes(cx, &ids)).await?;
        for t in volumes {
            if let Some((v, az)) = found.get(&t.id) {
                out.insert(
                    t.source_ref().to_owned(),
                    SourceSettings::EbsVolume {
                        volume: v.clone(),
                        availability_zone: az.clone(),
                    },
                );
            }
        }
    }
    let instances = of(ResourceType::Ec2Instance);
    if !instances.is_empty() {
        let ids: Vec<String> = instances.iter().map(|t| t.id.clone()).collect();
        out.extend(Box::pin(describe_instances(cx, &ids)).await?);
    }
    let dbs = of(ResourceType::RdsInstance);
    if !dbs.is_empty() {
        let ids: Vec<String> = dbs.iter().map(|t| t.id.clone()).collect();
        let found = Box::pin(describe_db_instances(cx, "db-instance-id", &ids)).await?;
        for t in dbs {
            if let Some(d) = found
                .iter()
                .find(|d| d.db_instance_identifier() == Some(&t.id))
            {
                out.insert(
                    t.source_ref().to_owned(),
                    SourceSettings::RdsInstance(db_settings(d)),
                );
            }
        }
    }
    let clusters = of(ResourceType::AuroraCluster);
    if !clusters.is_empty() {
        let ids: Vec<String> = clusters.iter().map(|t| t.id.clone()).collect();
        let found = Box::pin(describe_clusters(cx, &ids)).await?;
        for t in clusters {
            if let Some(s) = found.get(&t.id) {
                out.insert(
                    t.source_ref().to_owned(),
                    SourceSettings::AuroraCluster(s.clone()),
                );
            }
        }
    }
    let redshift = of(ResourceType::RedshiftCluster);
    if !redshift.is_empty() {
        let found = Box::pin(describe_redshift(cx)).await?;
        for t in redshift {
            if let Some(s) = found.get(&t.id) {
                out.insert(
                    t.source_ref().to_owned(),
                    SourceSettings::RedshiftCluster(s.clone()),
                );
            }
        }
    }
    Ok(out)
}

/// Volumes by id, with their Availability Zone.
async fn describe_volumes(
    cx: &LocationClients,
    ids: &[String],
) -> Result<HashMap<String, (VolumeSettings, Option<String>)>, CloudError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(EC2_CHUNK) {
        let pages = cx
            .ec2()
            .describe_volumes()
            .filters(ec2_filter("volume-id", chunk.iter().cloned()))
            .max_results(500)
            .into_paginator()
            .send();
        let found = all_pages(pages, "DescribeVolumes", cx.region_name(), |p| {
            p.volumes()
                .iter()
                .map(|v| {
                    (
                        v.volume_id().unwrap_or_default().to_owned(),
                        (
                            VolumeSettings {
                                device: String::new(),
                                volume_id: v.volume_id().map(str::to_owned),
                                volume_type: v.volume_type().map(|t| t.as_str().to_owned()),
                                size_gib: v.size(),
                                iops: v.iops(),
                                throughput: v.throughput(),
                                delete_on_termination: false,
                                encrypted: v.encrypted().unwrap_or(false),
                                kms_key_id: v.kms_key_id().map(str::to_owned),
                            },
                            v.availability_zone().map(str::to_owned),
                        ),
                    )
                })
                .collect::<Vec<_>>()
        })
        .await?;
        out.extend(found);
    }
    Ok(out)
}

/// Instances by id: their launch settings and every attached EBS volume's.
async fn describe_instances(
    cx: &LocationClients,
    ids: &[String],
) -> Result<BTreeMap<String, SourceSettings>, CloudError> {
    let mut instances = Vec::new();
    for chunk in ids.chunks(EC2_CHUNK) {
        let pages = cx
            .ec2()
            .describe_instances()
            .filters(ec2_filter("instance-id", chunk.iter().cloned()))
            .max_results(1000)
            .into_paginator()
            .send();
        instances.extend(
            all_pages(pages, "DescribeInstances", cx.region_name(), |p| {
                p.reservations()
                    .iter()
                    .flat_map(|r| r.instances().iter().cloned())
                    .collect::<Vec<_>>()
            })
            .await?,
        );
    }
    let volume_ids: Vec<String> = instances
        .iter()
        .flat_map(|i| i.block_device_mappings())
        .filter_map(|m| m.ebs()?.volume_id().map(str::to_owned))
        .collect();
    let volumes = if volume_ids.is_empty() {
        HashMap::new()
    } else {
        describe_volumes(cx, &volume_ids).await?
    };
    let mut out = BTreeMap::new();
    for i in instances {
        let Some(id) = i.instance_id() else { continue };
        let mut vols: Vec<VolumeSettings> =
            i.block_device_mappings()
                .iter()
                .filter_map(|m| {
                    let ebs = m.ebs()?;
                    let vid = ebs.volume_id()?;
                    let mut v = volumes.get(vid).map(|(v, _)| v.clone()).unwrap_or_else(|| {
                        VolumeSettings {
                            volume_id: Some(vid.to_owned()),
                            ..Default::default()
                        }
                    });
                    v.device = m.device_name().unwrap_or_default().to_owned();
                    v.delete_on_termination = ebs.delete_on_termination().unwrap_or(false);
                    Some(v)
                })
                .collect();
        vols.sort_by(|a, b| a.device.cmp(&b.device));
        let settings = InstanceSettings {
            instance_type: i
                .instance_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            architecture: i
                .architecture()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            root_device_name: i.root_device_name().unwrap_or_default().to_owned(),
            volumes: vols,
            availability_zone: i
                .placement()
                .and_then(|p| p.availability_zone())
                .map(str::to_owned),
            subnet_id: i.subnet_id().map(str::to_owned),
            vpc_id: i.vpc_id().map(str::to_owned),
            security_group_ids: i
                .security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_owned))
                .collect(),
            instance_profile_arn: i
                .iam_instance_profile()
                .and_then(|p| p.arn())
                .map(str::to_owned),
            key_name: i.key_name().map(str::to_owned),
            private_ip: i.private_ip_address().map(str::to_owned),
            ena_support: i.ena_support().unwrap_or(false),
            boot_mode: i.current_instance_boot_mode().map(|m| match m.as_str() {
                "uefi" => "uefi".to_owned(),
                _ => "legacy-bios".to_owned(),
            }),
            virtualization_type: i.virtualization_type().map(|v| v.as_str().to_owned()),
        };
        out.insert(id.to_owned(), SourceSettings::Ec2Instance(settings));
    }
    Ok(out)
}

/// DB instances whose `filter` is one of `values`.
async fn describe_db_instances(
    cx: &LocationClients,
    filter: &str,
    values: &[String],
) -> Result<Vec<aws_sdk_rds::types::DbInstance>, CloudError> {
    let mut out = Vec::new();
    for chunk in values.chunks(RDS_CHUNK) {
        let pages = cx
            .rds()
            .describe_db_instances()
            .filters(rds_filter(filter, chunk))
            .max_records(100)
            .into_paginator()
            .send();
        out.extend(
            all_pages(pages, "DescribeDBInstances", cx.region_name(), |p| {
                p.db_instances().to_vec()
            })
            .await?,
        );
    }
    Ok(out)
}

fn db_settings(d: &aws_sdk_rds::types::DbInstance) -> DbInstanceSettings {
    DbInstanceSettings {
        instance_class: d.db_instance_class().unwrap_or_default().to_owned(),
        subnet_group: d
            .db_subnet_group()
            .and_then(|g| g.db_subnet_group_name())
            .map(str::to_owned),
        parameter_group: custom(
            d.db_parameter_groups()
                .first()
                .and_then(|g| g.db_parameter_group_name()),
        ),
        option_group: custom(
            d.option_group_memberships()
                .first()
                .and_then(|g| g.option_group_name()),
        ),
        security_group_ids: d
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
            .collect(),
        port: d.endpoint().and_then(|e| e.port()).or(d.db_instance_port()),
        multi_az: d.multi_az().unwrap_or(false),
        publicly_accessible: d.publicly_accessible().unwrap_or(false),
        engine: d.engine().map(str::to_owned),
        engine_version: d.engine_version().map(str::to_owned),
    }
}

/// Aurora clusters by identifier, with their members' classes (writer first).
async fn describe_clusters(
    cx: &LocationClients,
    ids: &[String],
) -> Result<HashMap<String, ClusterSettings>, CloudError> {
    let mut clusters = Vec::new();
    for chunk in ids.chunks(RDS_CHUNK) {
        let pages = cx
            .rds()
            .describe_db_clusters()
            .filters(rds_filter("db-cluster-id", chunk))
            .max_records(100)
            .into_paginator()
            .send();
        clusters.extend(
            all_pages(pages, "DescribeDBClusters", cx.region_name(), |p| {
                p.db_clusters().to_vec()
            })
            .await?,
        );
    }
    let members = describe_db_instances(cx, "db-cluster-id", ids).await?;
    let mut out = HashMap::new();
    for c in clusters {
        let Some(id) = c.db_cluster_identifier() else {
            continue;
        };
        let mut order: Vec<(bool, String)> = c
            .db_cluster_members()
            .iter()
            .filter_map(|m| {
                Some((
                    !m.is_cluster_writer().unwrap_or(false),
                    m.db_instance_identifier()?.to_owned(),
                ))
            })
            .collect();
        order.sort();
        let of = |name: &str| {
            members
                .iter()
                .find(|d| d.db_instance_identifier() == Some(name))
        };
        let classes: Vec<String> = order
            .iter()
            .filter_map(|(_, n)| of(n)?.db_instance_class().map(str::to_owned))
            .collect();
        let instance_parameter_group = order.first().and_then(|(_, n)| {
            custom(
                of(n)?
                    .db_parameter_groups()
                    .first()?
                    .db_parameter_group_name(),
            )
        });
        out.insert(
            id.to_owned(),
            ClusterSettings {
                engine: c.engine().map(str::to_owned),
                engine_version: c.engine_version().map(str::to_owned),
                subnet_group: c.db_subnet_group().map(str::to_owned),
                parameter_group: custom(c.db_cluster_parameter_group()),
                security_group_ids: c
                    .vpc_security_groups()
                    .iter()
                    .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                    .collect(),
                port: c.port(),
                instance_classes: classes,
                instance_parameter_group,
            },
        );
    }
    Ok(out)
}

/// Every Redshift cluster of the location (DescribeClusters filters by one
/// identifier or by tags, not by a list of identifiers).
async fn describe_redshift(
    cx: &LocationClients,
) -> Result<HashMap<String, RedshiftSettings>, CloudError> {
    let pages = cx
        .redshift()
        .describe_clusters()
        .max_records(100)
        .into_paginator()
        .send();
    let clusters = all_pages(pages, "DescribeClusters", cx.region_name(), |p| {
        p.clusters().to_vec()
    })
    .await?;
    Ok(clusters
        .iter()
        .filter_map(|c| {
            Some((
                c.cluster_identifier()?.to_owned(),
                RedshiftSettings {
                    node_type: c.node_type().unwrap_or_default().to_owned(),
                    number_of_nodes: c.number_of_nodes().unwrap_or(1),
                    subnet_group: c.cluster_subnet_group_name().map(str::to_owned),
                    parameter_group: custom(
                        c.cluster_parameter_groups()
                            .first()
                            .and_then(|g| g.parameter_group_name()),
                    ),
                    security_group_ids: c
                        .vpc_security_groups()
                        .iter()
                        .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                        .collect(),
                    port: c.endpoint().and_then(|e| e.port()),
                    publicly_accessible: c.publicly_accessible().unwrap_or(false),
                },
            ))
        })
        .collect())
}

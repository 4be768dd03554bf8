//! What a restore needs that a recovery point does not carry, recorded at
//! backup time.
//!
//! An instance cannot be rebuilt from bare snapshots: its type, architecture,
//! root device, every volume's device and settings, its network placement,
//! profile and key live only on the instance. A DB snapshot does not carry
//! its instance's subnet group, parameter group or security groups; a
//! Redshift snapshot neither. The Snapshot function describes the sources of
//! a batch (one call per kind), tags every member of an instance set with
//! its device (`strongroom:device`), and writes a [`RecoveryPointRecord`] per
//! recovery point to the stack's bucket under [`record_key`]. A copy gets a
//! record of its own (the same settings, its own id and location), so a
//! restore from a copy finds it too.

use serde::{Deserialize, Serialize};

use crate::model::{Location, RecoveryPointKind, Tags};

/// Where the records are kept in the stack's bucket (never expired: a
/// recovery point may be restored years after it was made).
pub const RECORDS_PREFIX: &str = "recovery-points/";

/// The key of the record of recovery point `id` at `location`.
pub fn record_key(location: &Location, id: &str) -> String {
    // Ids are snapshot, AMI and DB identifiers, and `i-…@<time>` for sets:
    // nothing that needs escaping in a key, but a `/` would make a folder.
    let id = id.replace('/', "_");
    format!(
        "{RECORDS_PREFIX}{}/{}/{id}.json",
        location.account, location.region
    )
}

/// One volume of an instance, as it was attached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSettings {
    /// The device name it was attached at (`/dev/xvda`, `/dev/sdf`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gib: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<i32>,
    #[serde(default)]
    pub delete_on_termination: bool,
    #[serde(default)]
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// An instance's settings, as a launch needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSettings {
    pub instance_type: String,
    /// `x86_64`, `arm64`, …
    pub architecture: String,
    pub root_device_name: String,
    /// Every attached EBS volume, by device name.
    pub volumes: Vec<VolumeSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    /// The instance profile's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    #[serde(default)]
    pub ena_support: bool,
    /// `legacy-bios`, `uefi`, `uefi-preferred` (absent: the AMI's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_mode: Option<String>,
    /// The virtualization type (`hvm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualization_type: Option<String>,
}

impl InstanceSettings {
    /// The recorded volume at `device`.
    pub fn volume(&self, device: &str) -> Option<&VolumeSettings> {
        self.volumes.iter().find(|v| v.device == device)
    }
}

/// An RDS DB instance's settings a snapshot does not carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbInstanceSettings {
    pub instance_class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option_group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    #[serde(default)]
    pub multi_az: bool,
    #[serde(default)]
    pub publicly_accessible: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
}

/// An Aurora cluster's settings, with its instances (a restored cluster has
/// none until they are made).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// The instances' classes, writer first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_classes: Vec<String>,
    /// The instances' DB parameter group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_parameter_group: Option<String>,
}

/// A Redshift cluster's settings a snapshot does not carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedshiftSettings {
    pub node_type: String,
    pub number_of_nodes: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    #[serde(default)]
    pub publicly_accessible: bool,
}

/// A source's settings, by its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SourceSettings {
    EbsVolume {
        volume: VolumeSettings,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        availability_zone: Option<String>,
    },
    Ec2Instance(InstanceSettings),
    RdsInstance(DbInstanceSettings),
    AuroraCluster(ClusterSettings),
    RedshiftCluster(RedshiftSettings),
}

/// The record of one recovery point: what it was made of and how to
/// rebuild it. Written once by the Snapshot function (and by the Copy
/// function for a copy); read by restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPointRecord {
    /// The record format (1).
    pub format: u32,
    pub recovery_point: String,
    pub kind: RecoveryPointKind,
    pub location: Location,
    /// `strongroom:source`.
    pub source: String,
    /// The source's own tags when it was backed up (`aws:` keys left out):
    /// what a restore copies onto what it makes.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub source_tags: Tags,
    pub settings: SourceSettings,
    /// For a copy: the recovery point it was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_of: Option<String>,
}

/// The format [`RecoveryPointRecord::format`] has today.
pub const RECORD_FORMAT: u32 = 1;

impl RecoveryPointRecord {
    /// The record of a copy of this point: the same settings under the
    /// copy's id and location.
    pub fn for_copy(&self, id: &str, location: &Location) -> Self {
        Self {
            recovery_point: id.to_owned(),
            location: location.clone(),
            copy_of: Some(self.recovery_point.clone()),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_are_per_location_and_never_nest() {
        let l = Location {
            account: "111111111111".into(),
            region: "eu-west-1".into(),
        };
        assert_eq!(
            record_key(&l, "i-0abc@2026-11-29T03:00:00Z"),
            "recovery-points/111111111111/eu-west-1/i-0abc@2026-11-29T03:00:00Z.json"
        );
        assert_eq!(
            record_key(&l, "ami-1/remains"),
            "recovery-points/111111111111/eu-west-1/ami-1_remains.json"
        );
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let r = RecoveryPointRecord {
            format: RECORD_FORMAT,
            recovery_point: "snap-1".into(),
            kind: RecoveryPointKind::EbsSnapshot,
            location: Location {
                account: "111111111111".into(),
                region: "us-east-1".into(),
            },
            source: "vol-1".into(),
            source_tags: [("env".to_owned(), "prod".to_owned())].into(),
            settings: SourceSettings::EbsVolume {
                volume: VolumeSettings {
                    volume_type: Some("gp3".into()),
                    iops: Some(4000),
                    ..Default::default()
                },
                availability_zone: Some("us-east-1a".into()),
            },
            copy_of: None,
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["settings"]["type"], "ebs-volume");
        let back: RecoveryPointRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        let copy = r.for_copy(
            "snap-2",
            &Location {
                account: "222222222222".into(),
                region: "us-west-2".into(),
            },
        );
        assert_eq!(copy.copy_of.as_deref(), Some("snap-1"));
        assert_eq!(copy.settings, r.settings);
    }
}

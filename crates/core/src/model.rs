//! Sources, locations and recovery points.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Tags as a sorted map (deterministic output and tag sets).
pub type Tags = BTreeMap<String, String>;

/// The kinds of source Strongroom protects.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceType {
    /// A single EBS volume: one EBS snapshot.
    EbsVolume,
    /// An EC2 instance: crash-consistent snapshots of all its volumes, or an AMI.
    Ec2Instance,
    /// An RDS DB instance (not an Aurora cluster member): a DB snapshot.
    RdsInstance,
    /// An Aurora DB cluster: a DB cluster snapshot.
    AuroraCluster,
    /// A Redshift provisioned cluster: a manual cluster snapshot.
    RedshiftCluster,
}

impl ResourceType {
    pub const ALL: [ResourceType; 5] = [
        Self::EbsVolume,
        Self::Ec2Instance,
        Self::RdsInstance,
        Self::AuroraCluster,
        Self::RedshiftCluster,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EbsVolume => "ebs-volume",
            Self::Ec2Instance => "ec2-instance",
            Self::RdsInstance => "rds-instance",
            Self::AuroraCluster => "aurora-cluster",
            Self::RedshiftCluster => "redshift-cluster",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where something lives: an account and a region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Location {
    pub account: String,
    pub region: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account, self.region)
    }
}

/// A source resource selected for protection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub resource_type: ResourceType,
    /// The short id: `vol-…`, `i-…`, the DB instance / cluster identifier.
    pub id: String,
    pub arn: String,
    /// The source's own tags, used for selection and copied onto recovery points.
    #[serde(default)]
    pub tags: Tags,
}

impl Target {
    /// The value of `strongroom:source`: the ARN for RDS, Aurora and Redshift, the id for EC2.
    pub fn source_ref(&self) -> &str {
        match self.resource_type.facts().source_ref {
            crate::kind::SourceRef::Id => &self.id,
            crate::kind::SourceRef::Arn => &self.arn,
        }
    }
}

/// What kind of recovery point a snapshot call produced. Its facts (tag value,
/// idempotency, identifier rules) are in [`crate::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryPointKind {
    /// One EBS snapshot of one volume.
    EbsSnapshot,
    /// The crash-consistent set of EBS snapshots of one instance (one per volume).
    Ec2SnapshotSet,
    /// An AMI (and the EBS snapshots behind it).
    Ami,
    RdsSnapshot,
    AuroraSnapshot,
    RedshiftSnapshot,
}

/// Lifecycle of a recovery point, normalised across services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryPointState {
    Pending,
    Completed,
    Failed,
}

impl RecoveryPointState {
    /// The state of a recovery point made of several snapshots: the worst
    /// member's (failed > pending > completed).
    pub fn worst(states: impl IntoIterator<Item = RecoveryPointState>) -> Self {
        let mut out = Self::Completed;
        for s in states {
            match s {
                Self::Failed => return Self::Failed,
                Self::Pending => out = Self::Pending,
                Self::Completed => {}
            }
        }
        out
    }
}

/// A point from which a source can be restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPoint {
    /// Snapshot id, AMI id, or DB / cluster snapshot identifier. For an
    /// [`RecoveryPointKind::Ec2SnapshotSet`] it is `<instance-id>@<created-at>`.
    pub id: String,
    pub kind: RecoveryPointKind,
    /// The EBS snapshot ids that make up an instance snapshot set or an AMI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    pub resource_type: ResourceType,
    /// Same value as the `strongroom:source` tag.
    pub source: String,
    pub location: Location,
    /// The scheduled time of the run that made it (`strongroom:created-at`).
    #[serde(with = "utc_time")]
    pub created_at: OffsetDateTime,
    pub state: RecoveryPointState,
}

impl RecoveryPoint {
    /// The id of an instance's snapshot set from one run: `<instance-id>@<created-at>`.
    pub fn instance_set_id(instance: &str, created_at: OffsetDateTime) -> String {
        format!("{instance}@{}", format_time(created_at))
    }
}

/// Formats a time the way the tag contract wants it: RFC 3339, UTC, whole seconds.
pub fn format_time(t: OffsetDateTime) -> String {
    utc(t)
        .format(&Rfc3339)
        .expect("RFC 3339 formats every UTC time")
}

/// Parses an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339)
}

/// A time as the tag contract holds it: UTC, whole seconds.
pub fn utc(t: OffsetDateTime) -> OffsetDateTime {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
}

/// Serde for times in the JSON between states: RFC 3339 as the tag contract
/// writes it (UTC, whole seconds), read back into UTC.
pub mod utc_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse_time(&raw)
            .map(super::utc)
            .map_err(|e| serde::de::Error::custom(format!("`{raw}` is not an RFC 3339 time ({e})")))
    }

    /// The same for an optional time.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;

        pub fn serialize<S: Serializer>(
            t: &Option<OffsetDateTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] OffsetDateTime);
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_state_wins() {
        use RecoveryPointState::*;
        assert_eq!(RecoveryPointState::worst([Completed, Completed]), Completed);
        assert_eq!(RecoveryPointState::worst([Completed, Pending]), Pending);
        assert_eq!(
            RecoveryPointState::worst([Pending, Failed, Completed]),
            Failed
        );
        assert_eq!(RecoveryPointState::worst([]), Completed);
    }

    #[test]
    fn times_are_whole_seconds_utc() {
        let t = parse_time("2026-11-29T04:00:00.123+01:00").unwrap();
        assert_eq!(format_time(t), "2026-11-29T03:00:00Z");
        assert_eq!(utc(t), time::macros::datetime!(2026-11-29 03:00 UTC));
    }

    #[test]
    fn times_travel_as_contract_strings() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct T {
            #[serde(with = "utc_time")]
            at: OffsetDateTime,
            #[serde(with = "utc_time::option", default)]
            since: Option<OffsetDateTime>,
        }
        let v: T = serde_json::from_value(serde_json::json!({
            "at": "2026-11-29T04:00:00+01:00", "since": null
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"at": "2026-11-29T03:00:00Z", "since": null})
        );
        let e = serde_json::from_value::<T>(serde_json::json!({"at": "yesterday"})).unwrap_err();
        assert!(
            e.to_string()
                .contains("`yesterday` is not an RFC 3339 time"),
            "{e}"
        );
    }

    #[test]
    fn source_ref_is_arn_for_databases() {
        let t = Target {
            resource_type: ResourceType::RdsInstance,
            id: "db1".into(),
            arn: "arn:aws:rds:us-east-1:123456789012:db:db1".into(),
            tags: Tags::new(),
        };
        assert_eq!(t.source_ref(), "arn:aws:rds:us-east-1:123456789012:db:db1");
        let v = Target {
            resource_type: ResourceType::EbsVolume,
            id: "vol-1".into(),
            arn: "arn:aws:ec2:us-east-1:123456789012:volume/vol-1".into(),
            tags: Tags::new(),
        };
        assert_eq!(v.source_ref(), "vol-1");
    }
}

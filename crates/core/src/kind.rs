//! The facts of every kind of source and recovery point, one table row each.
//!
//! Everything that differs between an EBS volume and a Redshift cluster, or
//! between an AMI and an RDS snapshot, and that is not an AWS call, is read
//! from here: how a source is referred to, how its ARN is shaped, which
//! recovery point a source gets, how a re-run stays idempotent, the
//! identifier rules. The only `match` on a kind lives in [`ResourceType::facts`]
//! and [`RecoveryPointKind::facts`]; code elsewhere reads fields.

use crate::model::{RecoveryPointKind, ResourceType};
use crate::policy::Ec2Mode;

/// How a source is written in `strongroom:source` and in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRef {
    /// The short id (`vol-…`, `i-…`): EC2 ids are unique in their region.
    Id,
    /// The full ARN: database identifiers are names chosen by people.
    Arn,
}

/// What Strongroom knows about one type of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFacts {
    pub resource_type: ResourceType,
    /// The Resource Groups Tagging API `ResourceTypeFilters` value.
    pub tagging_type: &'static str,
    /// The ARN's service (`arn:aws:SERVICE:…`).
    pub arn_service: &'static str,
    /// The ARN's resource type word (`volume` in `…:volume/vol-1`).
    pub arn_resource: &'static str,
    /// What separates the resource type word from the id: `/` for EC2, `:` elsewhere.
    pub arn_separator: char,
    pub source_ref: SourceRef,
}

impl ResourceType {
    /// This type's row of the source table.
    pub const fn facts(self) -> &'static SourceFacts {
        const fn row(
            resource_type: ResourceType,
            tagging_type: &'static str,
            arn_service: &'static str,
            arn_resource: &'static str,
            arn_separator: char,
            source_ref: SourceRef,
        ) -> SourceFacts {
            SourceFacts {
                resource_type,
                tagging_type,
                arn_service,
                arn_resource,
                arn_separator,
                source_ref,
            }
        }
        use ResourceType::*;
        use SourceRef::*;
        const EBS: SourceFacts = row(EbsVolume, "ec2:volume", "ec2", "volume", '/', Id);
        const EC2: SourceFacts = row(Ec2Instance, "ec2:instance", "ec2", "instance", '/', Id);
        const RDS: SourceFacts = row(RdsInstance, "rds:db", "rds", "db", ':', Arn);
        const AURORA: SourceFacts = row(AuroraCluster, "rds:cluster", "rds", "cluster", ':', Arn);
        const REDSHIFT: SourceFacts = row(
            RedshiftCluster,
            "redshift:cluster",
            "redshift",
            "cluster",
            ':',
            Arn,
        );
        match self {
            EbsVolume => &EBS,
            Ec2Instance => &EC2,
            RdsInstance => &RDS,
            AuroraCluster => &AURORA,
            RedshiftCluster => &REDSHIFT,
        }
    }
}

/// How re-running the same scheduled run finds, instead of re-creating, what
/// the first run made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// The identifier (or AMI name) is derived from policy + source + time;
    /// a second create fails with "already exists" and the point is found by name.
    DeterministicName,
    /// AWS picks the ids and the API takes no client token: one tag-filtered
    /// listing per location finds what the run made before anything is created.
    RunLookup,
}

/// What an identifier of a kind may look like (the AWS API reference's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRules {
    /// The parameter that carries the name.
    pub parameter: &'static str,
    pub max_len: usize,
}

/// Which characters a service accepts in tag keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagCharset {
    /// EC2: any Unicode characters.
    Any,
    /// RDS and Redshift: Unicode letters, digits, white space and
    /// `_ . : / = + - @` (RDS: `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`). Strongroom
    /// keeps to the ASCII part of that (letters, digits, space and those
    /// symbols), which no Unicode subtlety can make AWS refuse.
    Restricted,
}

impl TagCharset {
    pub fn allows(self, c: char) -> bool {
        match self {
            Self::Any => true,
            Self::Restricted => c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c),
        }
    }
}

/// How a kind's recovery point relates to EBS snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshots {
    /// Not made of EBS snapshots.
    None,
    /// It is one EBS snapshot.
    Itself,
    /// Its `members` are EBS snapshots (an instance's set, an AMI's volumes).
    Members,
}

/// How a kind of recovery point is copied to another region or account, and
/// which AWS limit on copies in flight it counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMethod {
    /// Every EBS snapshot of it, one `CopySnapshot` each (an instance set's
    /// members as one recovery point): EBS's concurrent snapshot copies.
    EbsSnapshots,
    /// One `CopyDBSnapshot` / `CopyDBClusterSnapshot`: RDS's copies in progress.
    DbSnapshot,
    /// One `CopyImage`, which copies the AMI's snapshots with it: EC2's
    /// concurrent AMI copies.
    Image,
    /// Copied by the service itself once the source is configured for it
    /// (Redshift: `EnableSnapshotCopy` makes a cluster copy every new
    /// snapshot to one other region of its account); Strongroom configures
    /// it, finds each copy and tags it. Another account can only be given
    /// access: to a vault the snapshot is shared (`AuthorizeSnapshotAccess`),
    /// not copied, and stays shared until prune takes the access back and
    /// deletes it.
    ClusterConfigured,
}

/// What Strongroom knows about one kind of recovery point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindFacts {
    pub kind: RecoveryPointKind,
    /// The `strongroom:kind` tag value (also its JSON name).
    pub tag: &'static str,
    /// The source type it protects.
    pub resource_type: ResourceType,
    pub idempotency: Idempotency,
    /// The identifier rules of deterministic names; `None` where AWS picks the id.
    pub name_rules: Option<NameRules>,
    pub snapshots: Snapshots,
    /// The AWS resource that carries the tags (`snapshot`, `image`, `db-snapshot`, …).
    pub tagged_resource: &'static str,
    /// The characters its service accepts in tags.
    pub tag_charset: TagCharset,
    /// How it is copied.
    pub copy: CopyMethod,
}

impl RecoveryPointKind {
    pub const ALL: [RecoveryPointKind; 6] = [
        Self::EbsSnapshot,
        Self::Ec2SnapshotSet,
        Self::Ami,
        Self::RdsSnapshot,
        Self::AuroraSnapshot,
        Self::RedshiftSnapshot,
    ];

    /// This kind's row of the recovery-point table.
    pub const fn facts(self) -> &'static KindFacts {
        use Idempotency::*;
        use RecoveryPointKind::*;
        const fn named(parameter: &'static str, max_len: usize) -> Option<NameRules> {
            Some(NameRules { parameter, max_len })
        }
        const EBS: KindFacts = KindFacts {
            kind: EbsSnapshot,
            tag: "ebs-snapshot",
            resource_type: ResourceType::EbsVolume,
            idempotency: RunLookup,
            name_rules: None,
            snapshots: Snapshots::Itself,
            tagged_resource: "snapshot",
            tag_charset: TagCharset::Any,
            copy: CopyMethod::EbsSnapshots,
        };
        const SET: KindFacts = KindFacts {
            kind: Ec2SnapshotSet,
            tag: "ec2-snapshot-set",
            resource_type: ResourceType::Ec2Instance,
            idempotency: RunLookup,
            name_rules: None,
            snapshots: Snapshots::Members,
            tagged_resource: "snapshot",
            tag_charset: TagCharset::Any,
            copy: CopyMethod::EbsSnapshots,
        };
        const AMI: KindFacts = KindFacts {
            kind: Ami,
            tag: "ami",
            resource_type: ResourceType::Ec2Instance,
            idempotency: DeterministicName,
            // CreateImage Name: 3-128 characters.
            name_rules: named("Name", 128),
            snapshots: Snapshots::Members,
            tagged_resource: "image",
            tag_charset: TagCharset::Any,
            copy: CopyMethod::Image,
        };
        const RDS: KindFacts = KindFacts {
            kind: RdsSnapshot,
            tag: "rds-snapshot",
            resource_type: ResourceType::RdsInstance,
            idempotency: DeterministicName,
            // CreateDBSnapshot DBSnapshotIdentifier: 1-255 characters.
            name_rules: named("DBSnapshotIdentifier", 255),
            snapshots: Snapshots::None,
            tagged_resource: "db-snapshot",
            tag_charset: TagCharset::Restricted,
            copy: CopyMethod::DbSnapshot,
        };
        const AURORA: KindFacts = KindFacts {
            kind: AuroraSnapshot,
            tag: "aurora-snapshot",
            resource_type: ResourceType::AuroraCluster,
            idempotency: DeterministicName,
            // CreateDBClusterSnapshot DBClusterSnapshotIdentifier: 1-63 characters.
            name_rules: named("DBClusterSnapshotIdentifier", 63),
            snapshots: Snapshots::None,
            tagged_resource: "cluster-snapshot",
            tag_charset: TagCharset::Restricted,
            copy: CopyMethod::DbSnapshot,
        };
        const REDSHIFT: KindFacts = KindFacts {
            kind: RedshiftSnapshot,
            tag: "redshift-snapshot",
            resource_type: ResourceType::RedshiftCluster,
            idempotency: DeterministicName,
            // CreateClusterSnapshot SnapshotIdentifier: 1-255 characters.
            name_rules: named("SnapshotIdentifier", 255),
            snapshots: Snapshots::None,
            tagged_resource: "snapshot",
            tag_charset: TagCharset::Restricted,
            copy: CopyMethod::ClusterConfigured,
        };
        match self {
            EbsSnapshot => &EBS,
            Ec2SnapshotSet => &SET,
            Ami => &AMI,
            RdsSnapshot => &RDS,
            AuroraSnapshot => &AURORA,
            RedshiftSnapshot => &REDSHIFT,
        }
    }

    /// The recovery point a source of `resource_type` gets: the one place that
    /// decides it. EC2 instances get a snapshot set or an AMI by `mode`.
    pub fn for_source(resource_type: ResourceType, mode: Ec2Mode) -> Self {
        Self::ALL
            .into_iter()
            .find(|k| {
                let f = k.facts();
                f.resource_type == resource_type
                    && (resource_type != ResourceType::Ec2Instance
                        || (mode == Ec2Mode::Ami) == (*k == Self::Ami))
            })
            .expect("every resource type has a recovery point kind")
    }

    /// The kind a `strongroom:kind` tag value names.
    pub fn from_tag(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.facts().tag == value)
    }

    /// The kind of a Strongroom EBS snapshot that predates the `strongroom:kind`
    /// tag: a snapshot of a volume has that volume as its source, while a member
    /// of an instance's set has the instance. Read from AWS's `VolumeId`, not
    /// guessed from an id's prefix.
    pub fn of_untagged_snapshot(source: &str, volume_id: Option<&str>) -> Self {
        if volume_id == Some(source) {
            Self::EbsSnapshot
        } else {
            Self::Ec2SnapshotSet
        }
    }
}

/// A parsed source ARN: `arn:partition:service:region:account:type{/|:}id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceArn {
    pub resource_type: ResourceType,
    pub id: String,
    pub account: String,
    pub region: String,
}

/// Parses the ARN of any source type in the table; `None` for anything else
/// (Neptune or DocumentDB members that `rds:db` also lists, snapshots, …).
pub fn parse_source_arn(arn: &str) -> Option<SourceArn> {
    let mut parts = arn.splitn(6, ':');
    let (_, _, service, region, account, resource) = (
        parts.next().filter(|p| *p == "arn")?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if region.is_empty() || account.is_empty() {
        return None;
    }
    ResourceType::ALL.into_iter().find_map(|t| {
        let f = t.facts();
        let (word, id) = resource.split_once(f.arn_separator)?;
        (f.arn_service == service && f.arn_resource == word && !id.is_empty()).then(|| SourceArn {
            resource_type: t,
            id: id.to_owned(),
            account: account.to_owned(),
            region: region.to_owned(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_a_unique_tag() {
        let mut tags: Vec<&str> = RecoveryPointKind::ALL
            .iter()
            .map(|k| {
                assert_eq!(k.facts().kind, *k);
                k.facts().tag
            })
            .collect();
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), RecoveryPointKind::ALL.len());
        for k in RecoveryPointKind::ALL {
            assert_eq!(RecoveryPointKind::from_tag(k.facts().tag), Some(k));
            // The tag value is the kind's JSON name.
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.facts().tag)
            );
        }
        assert_eq!(RecoveryPointKind::from_tag("snapshot"), None);
    }

    #[test]
    fn idempotency_follows_who_picks_the_id() {
        for k in RecoveryPointKind::ALL {
            let f = k.facts();
            match f.idempotency {
                Idempotency::DeterministicName => assert!(f.name_rules.is_some(), "{k:?}"),
                Idempotency::RunLookup => assert!(f.name_rules.is_none(), "{k:?}"),
            }
        }
        assert_eq!(
            RecoveryPointKind::AuroraSnapshot
                .facts()
                .name_rules
                .unwrap()
                .max_len,
            63
        );
    }

    #[test]
    fn each_source_gets_its_kind() {
        use RecoveryPointKind as K;
        use ResourceType as R;
        let cases = [
            (R::EbsVolume, Ec2Mode::Snapshots, K::EbsSnapshot),
            (R::EbsVolume, Ec2Mode::Ami, K::EbsSnapshot),
            (R::Ec2Instance, Ec2Mode::Snapshots, K::Ec2SnapshotSet),
            (R::Ec2Instance, Ec2Mode::Ami, K::Ami),
            (R::RdsInstance, Ec2Mode::Ami, K::RdsSnapshot),
            (R::AuroraCluster, Ec2Mode::Snapshots, K::AuroraSnapshot),
            (R::RedshiftCluster, Ec2Mode::Snapshots, K::RedshiftSnapshot),
        ];
        for (t, mode, kind) in cases {
            assert_eq!(RecoveryPointKind::for_source(t, mode), kind, "{t} {mode:?}");
            assert_eq!(kind.facts().resource_type, t);
        }
    }

    #[test]
    fn untagged_snapshots_are_classified_by_their_volume() {
        assert_eq!(
            RecoveryPointKind::of_untagged_snapshot("vol-1", Some("vol-1")),
            RecoveryPointKind::EbsSnapshot
        );
        assert_eq!(
            RecoveryPointKind::of_untagged_snapshot("i-1", Some("vol-1")),
            RecoveryPointKind::Ec2SnapshotSet
        );
    }

    #[test]
    fn source_refs_and_tagging_types() {
        for t in ResourceType::ALL {
            let f = t.facts();
            assert_eq!(f.resource_type, t);
            assert!(f.tagging_type.starts_with(f.arn_service), "{t}");
        }
        assert_eq!(ResourceType::EbsVolume.facts().source_ref, SourceRef::Id);
        assert_eq!(ResourceType::RdsInstance.facts().source_ref, SourceRef::Arn);
    }

    #[test]
    fn parses_the_five_source_types() {
        let cases = [
            (
                "arn:aws:ec2:us-east-1:123456789012:volume/vol-0abc",
                ResourceType::EbsVolume,
                "vol-0abc",
            ),
            (
                "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
                ResourceType::Ec2Instance,
                "i-0abc",
            ),
            (
                "arn:aws:rds:us-east-1:123456789012:db:orders",
                ResourceType::RdsInstance,
                "orders",
            ),
            (
                "arn:aws:rds:us-east-1:123456789012:cluster:ledger",
                ResourceType::AuroraCluster,
                "ledger",
            ),
            (
                "arn:aws:redshift:us-east-1:123456789012:cluster:dwh",
                ResourceType::RedshiftCluster,
                "dwh",
            ),
            (
                "arn:aws-us-gov:ec2:us-gov-west-1:123456789012:volume/vol-1",
                ResourceType::EbsVolume,
                "vol-1",
            ),
        ];
        for (arn, t, id) in cases {
            let p = parse_source_arn(arn).unwrap_or_else(|| panic!("{arn}"));
            assert_eq!((p.resource_type, p.id.as_str()), (t, id));
            assert_eq!(p.account, "123456789012");
        }
        for bad in [
            "",
            "arn:aws:s3:::bucket",
            "arn:aws:ec2:us-east-1:1:snapshot/snap-1",
            "arn:aws:rds:us-east-1:1:snapshot:x",
            "arn:aws:rds:us-east-1:1:db:",
            "arn:aws:ec2:us-east-1:1:volume:vol-1",
            "nope:aws:ec2:r:a:volume/v",
        ] {
            assert_eq!(parse_source_arn(bad), None, "{bad}");
        }
    }
}

//! Restore requests: what a person pastes into the restore state machine's
//! "Start execution" in the AWS console, parsed and checked before anything
//! is created (issue 11; the restore functions and state machine build on
//! these types).
//!
//! A request names the recovery point (by id, or as the newest completed one
//! of a source at or before a time), where it is (the source's location, a
//! copy's region, a vault account), and what to make of it: one variant per
//! kind, each with only the settings a person may override (the rest comes
//! from what the backup recorded).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::model::parse_time;
use crate::policy::{is_region_name, parse_with_path, AccountRole};

/// The restore state machine's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Which recovery point to restore.
    pub from: PointSelector,
    /// Where the recovery point is: its region, and its account when that is
    /// not the one Strongroom runs in (a vault), with the role to assume.
    pub location: RestoreLocation,
    /// What to make of it.
    pub restore: RestoreTarget,
    /// Restore into another account than the recovery point's, in the same
    /// region: the point must be shared with it (and its key usable by it).
    /// Default: the location's account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<RestoreInto>,
    /// Keep what a failed restore created, for inspection (default: removed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_on_failure: bool,
    /// Put what is restored in a security group with no ingress or egress
    /// (forensics; drills).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub isolate: bool,
    /// Copy the source's tags onto what is restored (default true), never
    /// `strongroom:` ones.
    #[serde(default = "yes")]
    pub copy_source_tags: bool,
    /// Seconds between checks until the restored resource is usable (0-3600,
    /// default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_seconds: Option<u32>,
}

fn yes() -> bool {
    true
}

/// A recovery point, by id (`recovery_point`) or as the newest completed one
/// of a source (`source`, optionally `at_or_before`): one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointSelector {
    /// A snapshot, AMI, instance set (`i-…@<time>`), or DB, cluster or
    /// Redshift snapshot identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point: Option<String>,
    /// The source whose newest completed recovery point to restore: its id
    /// (`vol-…`, `i-…`), or its ARN for a database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// With `source`: made at or before this time (RFC 3339; default now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_or_before: Option<String>,
}

/// Where the recovery point is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreLocation {
    pub region: String,
    /// The account, when not the one Strongroom runs in (12 digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The role to assume in `account` (a vault's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// The account a restore makes its resources in, when not the recovery
/// point's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreInto {
    /// 12 digits.
    pub account: String,
    /// The role to assume there; leave it out for the account Strongroom
    /// runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// What to make, by kind, with the settings a request may override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RestoreTarget {
    /// Files, directories and globs read straight out of an EBS snapshot
    /// (a volume's, an instance set's member, or an AMI's volume) through
    /// the EBS direct APIs, written to S3: no volume, no instance.
    Files {
        /// Absolute paths on the filesystem, or globs (`*`, `?`, `[a-z]`,
        /// `**`); a directory brings everything under it. 1-100 of them.
        paths: Vec<String>,
        /// For an instance set or an AMI: the device of the volume to read
        /// (default: the AMI's root device; a set of one member needs none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        /// The partition to read (GPT entries from 1, MBR 1-4 and 5 on);
        /// default: the whole disk, or its one partition with a filesystem
        /// Strongroom reads.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partition: Option<u32>,
        /// Where the files go.
        destination: FilesDestination,
    },
    /// A volume from an EBS snapshot (or one member of an instance set).
    EbsVolume {
        /// The Availability Zone of the new volume, e.g. `us-east-1a`.
        availability_zone: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        volume_type: Option<String>,
        /// At least the snapshot's size (GiB).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_gib: Option<u32>,
        /// Provisioned IOPS (gp3, io1, io2; required for io1 and io2 unless
        /// the recorded volume had that type).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        iops: Option<u32>,
        /// Throughput in MiB/s (gp3 only, 125-2000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        throughput: Option<u32>,
        /// For an instance set: the device of the member to restore.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
    },
    /// An instance from an AMI or an instance snapshot set, with the
    /// recorded settings unless overridden here.
    Ec2Instance {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet_id: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        security_group_ids: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance_profile: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        private_ip: Option<String>,
    },
    /// A DB instance from a DB snapshot.
    RdsInstance {
        /// The new DB instance's identifier (it must not exist).
        identifier: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance_class: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet_group: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        security_group_ids: Vec<String>,
    },
    /// An Aurora cluster and its instances from a cluster snapshot.
    AuroraCluster {
        /// The new cluster's identifier (it must not exist).
        identifier: String,
        /// The instances' class, e.g. `db.r6g.large`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance_class: Option<String>,
        /// How many instances (1-16, default 1): a cluster without one
        /// cannot be connected to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instances: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet_group: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        security_group_ids: Vec<String>,
    },
    /// A Redshift cluster from a snapshot.
    RedshiftCluster {
        /// The new cluster's identifier (it must not exist).
        identifier: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet_group: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        security_group_ids: Vec<String>,
    },
}

impl RestoreRequest {
    /// Parses and checks a request: every error names its field. `now` is
    /// the clock (`at_or_before` may not be ahead of it).
    pub fn parse(value: serde_json::Value, now: time::OffsetDateTime) -> Result<Self, Error> {
        let req: Self = parse_with_path(value, "")?;
        req.validate(now)?;
        Ok(req)
    }

    pub fn validate(&self, now: time::OffsetDateTime) -> Result<(), Error> {
        let f = &self.from;
        match (&f.recovery_point, &f.source) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "from",
                    "names both a recovery_point and a source; give one of them",
                ))
            }
            (None, None) => {
                return Err(Error::invalid(
                    "from",
                    "names nothing; give a recovery_point (`strongroom recovery-points list` shows them) or a source",
                ))
            }
            (Some(id), None) => {
                if id.trim().is_empty() || id.len() > 255 {
                    return Err(Error::invalid(
                        "from.recovery_point",
                        "must name a recovery point: an id such as snap-0123456789abcdef0, ami-…, i-…@<time>, or a snapshot identifier",
                    ));
                }
                if f.at_or_before.is_some() {
                    return Err(Error::invalid(
                        "from.at_or_before",
                        "goes with `source`, not with `recovery_point`",
                    ));
                }
            }
            (None, Some(source)) => {
                if source.trim().is_empty() {
                    return Err(Error::invalid(
                        "from.source",
                        "is empty; name the source: a volume or instance id, or a database's ARN",
                    ));
                }
                if let Some(t) = &f.at_or_before {
                    let at = parse_time(t).map_err(|e| {
                        Error::invalid(
                            "from.at_or_before",
                            format!("`{t}` is not an RFC 3339 time ({e}); use e.g. 2026-11-29T03:00:00Z"),
                        )
                    })?;
                    crate::validate::not_in_future(at, now, "from.at_or_before")?;
                }
            }
        }
        let l = &self.location;
        if !is_region_name(&l.region) {
            return Err(Error::invalid(
                "location.region",
                format!(
                    "`{}` is not a region name; use a code such as us-east-1",
                    l.region
                ),
            ));
        }
        match &l.account {
            Some(account) => AccountRole {
                account: account.clone(),
                role_arn: l.role_arn.clone(),
                external_id: l.external_id.clone(),
            }
            .validate("location")?,
            None if l.role_arn.is_some() || l.external_id.is_some() => {
                return Err(Error::invalid(
                    "location.account",
                    "is missing; a role goes with the account it is in",
                ))
            }
            None => {}
        }
        if let Some(p) = self.poll_seconds {
            crate::validate::validate_poll_seconds(p)?;
        }
        if let Some(into) = &self.into {
            AccountRole {
                account: into.account.clone(),
                role_arn: into.role_arn.clone(),
                external_id: into.external_id.clone(),
            }
            .validate("into")?;
            if l.account.as_deref() == Some(into.account.as_str()) {
                return Err(Error::invalid(
                    "into.account",
                    "is the location's account already; leave `into` out",
                ));
            }
        }
        if let Self {
            restore: RestoreTarget::Files { .. },
            ..
        } = self
        {
            if self.into.is_some() {
                return Err(Error::invalid(
                    "into",
                    "goes with restores that make resources; a file restore writes to the destination bucket: leave `into` out",
                ));
            }
            if self.isolate {
                return Err(Error::invalid(
                    "isolate",
                    "goes with instances and databases; a file restore makes nothing to isolate: leave it out",
                ));
            }
        }
        self.restore.validate(&l.region)
    }
}

impl RestoreTarget {
    fn validate(&self, region: &str) -> Result<(), Error> {
        match self {
            Self::Files {
                paths,
                partition,
                destination,
                ..
            } => check_files(paths, *partition, destination),
            Self::EbsVolume {
                availability_zone,
                volume_type,
                size_gib,
                device,
                iops,
                throughput,
            } => {
                if let Some(i) = iops {
                    if !(100..=256_000).contains(i) {
                        return Err(Error::invalid(
                            "restore.iops",
                            format!("{i} is outside 100-256000"),
                        ));
                    }
                    if volume_type
                        .as_deref()
                        .is_some_and(|t| !matches!(t, "gp3" | "io1" | "io2"))
                    {
                        return Err(Error::invalid(
                            "restore.iops",
                            "goes with volume_type gp3, io1 or io2 only",
                        ));
                    }
                }
                if let Some(t) = throughput {
                    if !(125..=2000).contains(t) {
                        return Err(Error::invalid(
                            "restore.throughput",
                            format!("{t} MiB/s is outside 125-2000"),
                        ));
                    }
                    if volume_type.as_deref().is_some_and(|v| v != "gp3") {
                        return Err(Error::invalid(
                            "restore.throughput",
                            "goes with volume_type gp3 only",
                        ));
                    }
                }
                // An AZ is its region's name and one letter.
                let ok = availability_zone
                    .strip_prefix(region)
                    .is_some_and(|z| z.len() == 1 && z.chars().all(|c| c.is_ascii_lowercase()));
                if !ok {
                    return Err(Error::invalid(
                        "restore.availability_zone",
                        format!("`{availability_zone}` is not an Availability Zone of {region}; use e.g. {region}a"),
                    ));
                }
                if let Some(t) = volume_type {
                    const TYPES: [&str; 7] = ["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"];
                    if !TYPES.contains(&t.as_str()) {
                        return Err(Error::invalid(
                            "restore.volume_type",
                            format!(
                                "`{t}` is not an EBS volume type; use one of {}",
                                TYPES.join(", ")
                            ),
                        ));
                    }
                }
                if let Some(s) = size_gib {
                    if !(1..=65_536).contains(s) {
                        return Err(Error::invalid(
                            "restore.size_gib",
                            format!("{s} is outside 1-65536 GiB"),
                        ));
                    }
                }
                if let Some(d) = device {
                    if !d.starts_with("/dev/") && !d.starts_with("xvd") {
                        return Err(Error::invalid(
                            "restore.device",
                            format!("`{d}` is not a device name; use the one the instance set recorded, e.g. /dev/sdf"),
                        ));
                    }
                }
                Ok(())
            }
            Self::Ec2Instance {
                instance_type,
                subnet_id,
                security_group_ids,
                private_ip,
                ..
            } => {
                if let Some(t) = instance_type {
                    // family.size: letters, digits and hyphens, a dot, letters and digits.
                    let ok = t.split_once('.').is_some_and(|(f, s)| {
                        !f.is_empty()
                            && !s.is_empty()
                            && f.chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                            && s.chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    });
                    if !ok {
                        return Err(Error::invalid(
                            "restore.instance_type",
                            format!("`{t}` is not an instance type; use e.g. m7g.large"),
                        ));
                    }
                }
                check_id(subnet_id.as_deref(), "subnet-", "restore.subnet_id")?;
                for (i, g) in security_group_ids.iter().enumerate() {
                    check_id(Some(g), "sg-", &format!("restore.security_group_ids[{i}]"))?;
                }
                if let Some(ip) = private_ip {
                    if ip.parse::<std::net::Ipv4Addr>().is_err() {
                        return Err(Error::invalid(
                            "restore.private_ip",
                            format!("`{ip}` is not an IPv4 address"),
                        ));
                    }
                }
                Ok(())
            }
            Self::RdsInstance {
                identifier,
                instance_class,
                security_group_ids,
                ..
            }
            | Self::AuroraCluster {
                identifier,
                instance_class,
                security_group_ids,
                ..
            } => {
                check_db_identifier(identifier, 63)?;
                if let Some(c) = instance_class {
                    // `db.<family>.<size>`, or Aurora Serverless v2's `db.serverless`.
                    let ok = c == "db.serverless"
                        || c.strip_prefix("db.").is_some_and(|r| {
                            r.split_once('.')
                                .is_some_and(|(f, s)| !f.is_empty() && !s.is_empty())
                        });
                    if !ok {
                        return Err(Error::invalid(
                            "restore.instance_class",
                            format!("`{c}` is not a DB instance class; use e.g. db.r6g.large"),
                        ));
                    }
                }
                if let Self::AuroraCluster {
                    instances: Some(n), ..
                } = self
                {
                    if !(1..=16).contains(n) {
                        return Err(Error::invalid(
                            "restore.instances",
                            format!("{n} is outside 1-16 (an Aurora cluster has at most 15 replicas and its writer)"),
                        ));
                    }
                }
                for (i, g) in security_group_ids.iter().enumerate() {
                    check_id(Some(g), "sg-", &format!("restore.security_group_ids[{i}]"))?;
                }
                Ok(())
            }
            Self::RedshiftCluster {
                identifier,
                security_group_ids,
                ..
            } => {
                check_db_identifier(identifier, 63)?;
                if identifier.chars().any(|c| c.is_ascii_uppercase()) {
                    return Err(Error::invalid(
                        "restore.identifier",
                        format!("`{identifier}` has uppercase letters; a Redshift cluster identifier's letters must be lowercase"),
                    ));
                }
                for (i, g) in security_group_ids.iter().enumerate() {
                    check_id(Some(g), "sg-", &format!("restore.security_group_ids[{i}]"))?;
                }
                Ok(())
            }
        }
    }
}

/// Where a file restore writes: `s3://bucket/prefix<path on the filesystem>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesDestination {
    /// A bucket of the account Strongroom runs in (or one that lets it
    /// write), in the recovery point's region or any other.
    pub bucket: String,
    /// Prepended to each file's path (default `restores/<execution>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Encrypt the objects with this KMS key (SSE-KMS): a key id, alias or
    /// ARN; default: the bucket's default encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// The bucket's region (default: the recovery point's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// The most paths or globs one file restore names.
pub const MAX_FILE_PATHS: usize = 100;

fn check_files(
    paths: &[String],
    partition: Option<u32>,
    d: &FilesDestination,
) -> Result<(), Error> {
    if paths.is_empty() || paths.len() > MAX_FILE_PATHS {
        return Err(Error::invalid(
            "restore.paths",
            format!(
                "has {} paths; give 1-{MAX_FILE_PATHS} paths or globs, e.g. [\"/etc/nginx\", \"/var/log/*.log\"]",
                paths.len()
            ),
        ));
    }
    for (i, p) in paths.iter().enumerate() {
        if !p.starts_with('/') || p.len() > 4096 || p.contains('\0') {
            return Err(Error::invalid(
                format!("restore.paths[{i}]"),
                format!("`{p}` is not an absolute path of at most 4096 characters; start it at the filesystem's root, e.g. /etc/hosts"),
            ));
        }
    }
    if partition == Some(0) || partition.is_some_and(|n| n > 128) {
        return Err(Error::invalid(
            "restore.partition",
            "is outside 1-128; partitions are numbered from 1 (leave it out for a disk without a table)",
        ));
    }
    crate::runs::check_bucket(&d.bucket, "restore.destination.bucket")?;
    if let Some(prefix) = &d.prefix {
        if prefix.starts_with('/') || prefix.len() > 512 || prefix.chars().any(char::is_control) {
            return Err(Error::invalid(
                "restore.destination.prefix",
                format!("`{prefix}` must not start with `/`, and must be at most 512 printable characters"),
            ));
        }
    }
    if let Some(key) = &d.kms_key_id {
        let uuid = |k: &str| k.len() == 36 && k.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        let ok = uuid(key)
            || key
                .strip_prefix("mrk-")
                .is_some_and(|h| h.len() == 32 && h.chars().all(|c| c.is_ascii_hexdigit()))
            || key
                .strip_prefix("alias/")
                .is_some_and(|a| !a.is_empty() && !a.starts_with("aws/") && a.len() <= 250)
            || (key.starts_with("arn:")
                && key.contains(":kms:")
                && (key.contains(":key/") || key.contains(":alias/")));
        if !ok {
            return Err(Error::invalid(
                "restore.destination.kms_key_id",
                format!("`{key}` is not a KMS key id, alias or ARN (an AWS managed alias such as alias/aws/s3 is the bucket default: leave the key out)"),
            ));
        }
    }
    if let Some(r) = &d.region {
        if !is_region_name(r) {
            return Err(Error::invalid(
                "restore.destination.region",
                format!("`{r}` is not a region name; use a code such as us-east-1"),
            ));
        }
    }
    Ok(())
}

/// An EC2 id: `prefix` and 8 or 17 hexadecimal digits.
fn check_id(id: Option<&str>, prefix: &str, at: &str) -> Result<(), Error> {
    let Some(id) = id else { return Ok(()) };
    let ok = id.strip_prefix(prefix).is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.chars().all(|c| c.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            at,
            format!("`{id}` is not an id of the form {prefix}0123456789abcdef0"),
        ))
    }
}

/// RDS, Aurora and Redshift identifiers: 1-`max` letters, digits and
/// hyphens, starting with a letter, no two hyphens in a row, not ending
/// with one.
fn check_db_identifier(id: &str, max: usize) -> Result<(), Error> {
    let ok = (1..=max).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "restore.identifier",
            format!("`{id}` is not a valid identifier: 1-{max} letters, digits and single hyphens, starting with a letter"),
        ))
    }
}

/// The JSON Schema of a restore request, committed under `infra/schemas/`.
pub fn restore_request_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RestoreRequest)).expect("a schema serializes")
}

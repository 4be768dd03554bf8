//! The restore run: the steps of the restore state machine.
//!
//! - [`validate`]: parse the request, find the recovery point (by id, or the
//!   newest completed one of a source at or before a time), read what the
//!   backup recorded, work out every setting of what will be made, and check
//!   it against the account (identifier free, zone, subnet, groups, key) —
//!   all before anything is created.
//! - [`start`]: make it (idempotent: client tokens and deterministic names).
//! - [`check`]: one look at what was made; usable, failed, or wait.
//! - [`finalize`]: the restore report in the bucket; temporary images go.
//! - [`clean_up`]: a failed restore removes what it made, unless the
//!   request says `keep_on_failure`.
//!
//! A restore never modifies or deletes the recovery point it reads: the
//! port has no call that could.

use std::future::Future;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::request::{RestoreRequest, RestoreTarget};
use super::settings::{record_key, RecoveryPointRecord, SourceSettings};
use crate::error::{CloudError, Error, ErrorKind, ErrorReport};
use crate::model::{
    format_time, Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState, Tags,
};
use crate::policy::AccountRole;
use crate::ports::{Identity, Listed, ListedPoint, ObjectStore};
use crate::runs::{check_bucket, S3Object};
use crate::tags;

/// Default seconds between checks.
pub const DEFAULT_POLL_SECONDS: u32 = 60;
/// How long a restore may take to become usable before it is failed and
/// cleaned up: a large Redshift cluster restores for hours.
pub const MAX_RESTORE_SECONDS: i64 = 48 * 3600;
/// The prefix of restore reports in the stack's bucket.
pub const REPORTS_PREFIX: &str = "restores/";

/// One volume of an instance rebuilt from a snapshot set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedVolume {
    pub device: String,
    pub snapshot: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gib: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<i32>,
    pub delete_on_termination: bool,
}

/// Every setting of what a restore makes, settled by [`validate`]: the
/// request's overrides over the recorded settings over AWS's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RestorePlan {
    EbsVolume {
        snapshot: String,
        availability_zone: String,
        volume_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_gib: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        iops: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        throughput: Option<i32>,
    },
    Ec2Instance {
        /// The AMI to launch: the recovery point itself, or none for a
        /// snapshot set (an image of its snapshots is registered first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        /// For a snapshot set: every member, on its recorded device.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        volumes: Vec<PlannedVolume>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        root_device_name: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        architecture: String,
        #[serde(default)]
        ena_support: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        boot_mode: Option<String>,
        instance_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet_id: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        security_group_ids: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance_profile_arn: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        private_ip: Option<String>,
    },
    RdsInstance {
        identifier: String,
        snapshot: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance_class: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet_group: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_group: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        option_group: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        security_group_ids: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<i32>,
        #[serde(default)]
        multi_az: bool,
    },
    AuroraCluster {
        identifier: String,
        snapshot: String,
        /// The snapshot's engine (described at start when not recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine_version: Option<String>,
        instance_class: String,
        instances: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet_group: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_group: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance_parameter_group: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        security_group_ids: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<i32>,
    },
    /// Files out of one EBS snapshot, to S3.
    Files {
        /// The snapshot to read; for an AMI, found from `image` and
        /// `device` when the copy starts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partition: Option<u32>,
        paths: Vec<String>,
        bucket: String,
        /// Each file goes to `<prefix><path>`; ends with `/` unless empty.
        prefix: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kms_key_id: Option<String>,
        bucket_region: String,
    },
    RedshiftCluster {
        identifier: String,
        snapshot: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        number_of_nodes: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet_group: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_group: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        security_group_ids: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<i32>,
    },
}

impl RestorePlan {
    /// The name AWS lets a restore choose (databases), if any.
    pub fn identifier(&self) -> Option<&str> {
        match self {
            Self::RdsInstance { identifier, .. }
            | Self::AuroraCluster { identifier, .. }
            | Self::RedshiftCluster { identifier, .. } => Some(identifier),
            _ => None,
        }
    }
}

/// What a restore made, by AWS resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MadeKind {
    Volume,
    Instance,
    /// A temporary AMI of a snapshot set's members (deregistered once the
    /// instance runs; its snapshots, the recovery point, stay).
    Image,
    /// The isolating security group.
    SecurityGroup,
    DbInstance,
    DbCluster,
    RedshiftCluster,
}

/// One resource a restore made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Made {
    pub kind: MadeKind,
    pub id: String,
}

/// What one look at the made resources found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Everything is usable.
    pub usable: bool,
    /// Something failed for good: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Resources made by this look (Aurora instances once the cluster is available).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub made: Vec<Made>,
    /// What the restored resource looks like now, for the report (state,
    /// endpoint, size, devices…).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
    /// A describe did not find what was made: not visible yet (EC2's
    /// eventual consistency), or gone. Waited for up to
    /// [`VISIBILITY_GRACE_SECONDS`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
}

/// How long something a restore made may stay invisible to describes before
/// the restore fails: AWS, "Eventual consistency in the Amazon EC2 API": a
/// describe right after a create "might return ... NotFound", which "does
/// not mean the resource does not exist".
pub const VISIBILITY_GRACE_SECONDS: i64 = 10 * 60;

/// The most checks of one restore: each loop is about nine events of the
/// execution's history, which holds 25,000; with `poll_seconds` 0 the
/// loop would otherwise spin to that limit, which no Catch can handle.
pub const MAX_CHECKS: u32 = 500;

/// What the restore state machine carries from step to step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreState {
    pub request: RestoreRequest,
    /// The execution's name: the restore's idempotency key.
    pub execution: String,
    /// The stack's bucket (records, reports).
    pub bucket: String,
    /// Where the recovery point is.
    pub location: Location,
    /// Where the restore makes what it makes: the location, or with `into`
    /// another account of its region (the point shared with it).
    pub target: Location,
    pub point: RecoveryPoint,
    /// Whether the backup's record of the point was found.
    pub recorded: bool,
    pub plan: RestorePlan,
    /// Applied at creation to everything made.
    pub tags: Tags,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub made: Vec<Made>,
    #[serde(default)]
    pub usable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    #[serde(default)]
    pub polls: u32,
    pub poll_seconds: u32,
    /// The next Wait (doubling from `poll_seconds`).
    #[serde(default)]
    pub wait_seconds: u32,
    #[serde(with = "crate::model::utc_time")]
    pub started_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
    /// A file restore's progress, from one CopyFiles step to the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<super::files::FilesProgress>,
}

impl RestoreState {
    /// The value of `strongroom:restore` on everything this restore makes:
    /// its execution name, as the service's tags accept it.
    pub fn restore_tag(&self) -> &str {
        self.tags
            .get(tags::RESTORE)
            .map_or(self.execution.as_str(), String::as_str)
    }

    /// Checks a state handed to a later step: the state machine passes on
    /// what Validate returned, but the function trusts no input. A state
    /// that Validate could not have made is refused before any call.
    pub fn validate(&self, now: OffsetDateTime) -> Result<(), Error> {
        self.request.validate(now).map_err(|e| match e {
            Error::InvalidInput { field, message } => {
                Error::invalid(format!("state.request.{field}"), message)
            }
            other => other,
        })?;
        check_execution(&self.execution, "state.execution")?;
        check_bucket(&self.bucket, "state.bucket")?;
        let l = &self.request.location;
        let same_region = self.location.region == l.region && self.target.region == l.region;
        let account_ok = l
            .account
            .as_ref()
            .is_none_or(|a| *a == self.location.account)
            && match &self.request.into {
                Some(i) => i.account == self.target.account,
                None => self.target.account == self.location.account,
            };
        if !same_region || !account_ok || self.point.location != self.location {
            return Err(Error::invalid(
                "state.location",
                "does not agree with the request's location and into",
            ));
        }
        if !kinds_for(&self.request.restore).contains(&self.point.kind) {
            return Err(Error::invalid(
                "state.point.kind",
                format!(
                    "{} is not restored by restore.kind {}",
                    self.point.kind.facts().tag,
                    kind_name(&self.request.restore)
                ),
            ));
        }
        let plan_matches = match (&self.plan, &self.request.restore) {
            (RestorePlan::EbsVolume { .. }, RestoreTarget::EbsVolume { .. })
            | (RestorePlan::Ec2Instance { .. }, RestoreTarget::Ec2Instance { .. }) => true,
            (
                RestorePlan::Files {
                    paths: a,
                    bucket: b,
                    ..
                },
                RestoreTarget::Files {
                    paths: x,
                    destination,
                    ..
                },
            ) => a == x && *b == destination.bucket,
            (
                RestorePlan::RdsInstance { identifier: a, .. },
                RestoreTarget::RdsInstance { identifier: b, .. },
            )
            | (
                RestorePlan::AuroraCluster { identifier: a, .. },
                RestoreTarget::AuroraCluster { identifier: b, .. },
            )
            | (
                RestorePlan::RedshiftCluster { identifier: a, .. },
                RestoreTarget::RedshiftCluster { identifier: b, .. },
            ) => a == b,
            _ => false,
        };
        if !plan_matches {
            return Err(Error::invalid(
                "state.plan",
                "is not the plan of the request's restore",
            ));
        }
        match (&self.files, &self.plan) {
            (None, _) => {}
            (Some(f), RestorePlan::Files { prefix, .. }) => {
                f.validate(&self.execution, &self.bucket, prefix)?
            }
            (Some(_), _) => {
                return Err(Error::invalid(
                    "state.files",
                    "goes with a file restore's plan only",
                ))
            }
        }
        let charset = self.point.kind.facts().tag_charset;
        if self.tags.get(tags::RESTORE).map(String::as_str)
            != Some(tags::fit_tag_value(&self.execution, charset).as_str())
            || self.tags.contains_key(tags::MANAGED)
            || self.tags.len() > tags::MAX_TAGS
        {
            return Err(Error::invalid(
                "state.tags",
                "must name this execution in strongroom:restore and never carry strongroom:managed",
            ));
        }
        for (i, m) in self.made.iter().enumerate() {
            let prefix = match m.kind {
                MadeKind::Volume => Some("vol-"),
                MadeKind::Instance => Some("i-"),
                MadeKind::Image => Some("ami-"),
                MadeKind::SecurityGroup => Some("sg-"),
                _ => None,
            };
            let ok = match prefix {
                Some(p) => m.id.strip_prefix(p).is_some_and(|h| {
                    !h.is_empty() && h.len() <= 17 && h.chars().all(|c| c.is_ascii_hexdigit())
                }),
                // Databases: the plan's identifier, or an Aurora instance of it.
                None => self.plan.identifier().is_some_and(|id| {
                    m.id == id
                        || m.id
                            .strip_prefix(id)
                            .and_then(|n| n.strip_prefix('-'))
                            .and_then(|n| n.parse::<u8>().ok())
                            .is_some_and(|n| (1..=16).contains(&n))
                }),
            };
            if !ok {
                return Err(Error::invalid(
                    format!("state.made[{i}]"),
                    format!("`{}` is not a {:?} a restore makes", m.id, m.kind),
                ));
            }
        }
        if self.poll_seconds > 3600
            || self.wait_seconds
                > crate::backup::snapshot::MAX_WAIT_BETWEEN_CHECKS.max(self.poll_seconds)
        {
            return Err(Error::invalid(
                "state.wait_seconds",
                "is longer than a restore waits",
            ));
        }
        crate::validate::not_in_future(self.started_at, now, "state.started_at")
    }
}

/// An execution name as Step Functions makes them: 1-80 characters, none
/// of them white space or control characters.
fn check_execution(execution: &str, at: &str) -> Result<(), Error> {
    let ok = (1..=80).contains(&execution.chars().count())
        && !execution
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            at,
            "must be the execution's name (1-80 characters, no white space)",
        ))
    }
}

/// The restore's report: in the bucket and as the execution's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// `succeeded` or `failed`.
    pub outcome: String,
    pub execution: String,
    pub recovery_point: String,
    pub point_kind: RecoveryPointKind,
    pub source: String,
    #[serde(with = "crate::model::utc_time")]
    pub point_created_at: OffsetDateTime,
    /// Where the recovery point is.
    pub location: Location,
    /// Where what was restored is (`into`, else the same).
    pub restored_in: Location,
    pub restored: Vec<Made>,
    /// What a failed restore left for inspection (`keep_on_failure`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Made>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    pub plan: RestorePlan,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Seconds from the start of the restore to usable (or to its failure).
    pub seconds: i64,
    pub checks: u32,
    /// Where this report is kept.
    pub report: S3Object,
}

/// What a restore needs from a cloud.
pub trait Restores: Identity + ObjectStore {
    /// Every Strongroom recovery point of `kinds` at `location`, of any
    /// policy, complete (a listing cut short is an error).
    fn catalog(
        &self,
        location: &Location,
        kinds: &[RecoveryPointKind],
    ) -> impl Future<Output = Result<Listed, CloudError>> + Send;

    /// The accounts (or `all`) a recovery point is shared with.
    fn shared_with(
        &self,
        point: &RecoveryPoint,
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;

    /// Checks the plan against the account before anything is made:
    /// `InvalidInput` or `NotFound` naming the request's field (an
    /// identifier in use, a zone, subnet, group, subnet group or key pair
    /// that is not there, groups of another VPC than the subnet).
    fn preflight(
        &self,
        location: &Location,
        plan: &RestorePlan,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Makes what the plan says, tagged at creation with `state.tags`;
    /// idempotent for the same execution (client tokens, deterministic
    /// names). Returns everything made.
    fn start(
        &self,
        state: &RestoreState,
    ) -> impl Future<Output = Result<Vec<Made>, CloudError>> + Send;

    /// One look at what was made (and the next step of a restore in two
    /// steps: an Aurora cluster's instances once the cluster is available).
    fn check(
        &self,
        state: &RestoreState,
    ) -> impl Future<Output = Result<Health, CloudError>> + Send;

    /// What this restore made, found by its deterministic names and its
    /// `strongroom:restore` tag (for a step that failed after making it).
    fn find_made(
        &self,
        state: &RestoreState,
    ) -> impl Future<Output = Result<Vec<Made>, CloudError>> + Send;

    /// One CopyFiles step of a file restore: copies on from
    /// `state.files` for a bounded time, returns the progress.
    fn copy_files(
        &self,
        state: &RestoreState,
    ) -> impl Future<Output = Result<super::files::FilesProgress, CloudError>> + Send;

    /// Removes what a restore made (only resources it made and tagged
    /// `strongroom:restore` with its execution). `temporary_only`: only the
    /// temporary image, once the instance runs.
    fn remove(
        &self,
        state: &RestoreState,
        temporary_only: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// The restore function's input: one step of the state machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StepInput {
    Validate {
        request: serde_json::Value,
        execution: String,
    },
    Start {
        state: Box<RestoreState>,
    },
    Check {
        state: Box<RestoreState>,
    },
    CopyFiles {
        state: Box<RestoreState>,
    },
    Finalize {
        state: Box<RestoreState>,
    },
    CleanUp {
        state: Box<RestoreState>,
        /// The error that stopped the restore (`Error`, `Cause`).
        #[serde(default)]
        error: Option<serde_json::Value>,
    },
}

fn not_found(field: &str, resource: &str, region: &str, message: String) -> Error {
    CloudError::new(
        ErrorKind::NotFound,
        "FindRecoveryPoint",
        resource,
        region,
        format!("{field}: {message}"),
    )
    .into()
}

/// The kinds of recovery point a request's kind restores from.
pub fn kinds_for(target: &RestoreTarget) -> &'static [RecoveryPointKind] {
    use RecoveryPointKind::*;
    match target {
        RestoreTarget::EbsVolume { .. } => &[EbsSnapshot, Ec2SnapshotSet],
        RestoreTarget::Ec2Instance { .. } => &[Ami, Ec2SnapshotSet],
        RestoreTarget::RdsInstance { .. } => &[RdsSnapshot],
        RestoreTarget::AuroraCluster { .. } => &[AuroraSnapshot],
        RestoreTarget::RedshiftCluster { .. } => &[RedshiftSnapshot],
        RestoreTarget::Files { .. } => &[EbsSnapshot, Ec2SnapshotSet, Ami],
    }
}

fn kind_name(target: &RestoreTarget) -> &'static str {
    match target {
        RestoreTarget::EbsVolume { .. } => "ebs-volume",
        RestoreTarget::Ec2Instance { .. } => "ec2-instance",
        RestoreTarget::RdsInstance { .. } => "rds-instance",
        RestoreTarget::AuroraCluster { .. } => "aurora-cluster",
        RestoreTarget::RedshiftCluster { .. } => "redshift-cluster",
        RestoreTarget::Files { .. } => "files",
    }
}

/// Whether `source` (as a request writes it) names the point's source: the
/// same id or ARN, or a database's bare identifier.
fn same_source(point_source: &str, asked: &str) -> bool {
    point_source == asked
        || point_source
            .rsplit_once(':')
            .is_some_and(|(_, id)| id == asked && !asked.is_empty())
}

fn describe(p: &RecoveryPoint) -> String {
    let state = match p.state {
        RecoveryPointState::Pending => "pending",
        RecoveryPointState::Completed => "completed",
        RecoveryPointState::Failed => "failed",
    };
    format!(
        "{} ({}, {}, {state})",
        p.id,
        p.kind.facts().tag,
        format_time(p.created_at)
    )
}

/// The nearest candidates to name when a request matches nothing: up to
/// five, newest first.
fn candidates(points: &[&RecoveryPoint]) -> String {
    let mut ps: Vec<&&RecoveryPoint> = points.iter().collect();
    ps.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    let names: Vec<String> = ps.iter().take(5).map(|p| describe(p)).collect();
    if names.is_empty() {
        "there are none here".to_owned()
    } else {
        format!("the nearest: {}", names.join("; "))
    }
}

/// The recovery point a request names, from the catalog of its location.
/// `member`: for an `ebs-volume` from a snapshot set, the member snapshot.
pub fn resolve(
    request: &RestoreRequest,
    listed: &Listed,
    now: OffsetDateTime,
) -> Result<(ListedPoint, Option<String>), Error> {
    let region = &request.location.region;
    let wanted = kinds_for(&request.restore);
    let points: Vec<(&RecoveryPoint, &ListedPoint)> =
        listed.points.iter().map(|l| (&l.point, l)).collect();
    let f = &request.from;
    if let Some(id) = &f.recovery_point {
        // The point itself, or (for a volume) a member of an instance set.
        let found = points.iter().find(|(p, _)| &p.id == id).or_else(|| {
            points.iter().find(|(p, _)| {
                p.kind == RecoveryPointKind::Ec2SnapshotSet && p.members.contains(id)
            })
        });
        let Some((p, t)) = found else {
            let same: Vec<&RecoveryPoint> = points
                .iter()
                .filter(|(p, _)| wanted.contains(&p.kind))
                .map(|(p, _)| *p)
                .collect();
            return Err(not_found(
                "from.recovery_point",
                id,
                region,
                format!(
                    "no Strongroom recovery point `{id}` in {}; {} (`strongroom recovery-points list --location {}` lists them)",
                    request.location.region,
                    candidates(&same),
                    request.location.region,
                ),
            ));
        };
        if !wanted.contains(&p.kind) {
            return Err(Error::invalid(
                "from.recovery_point",
                format!(
                    "`{id}` is a {} recovery point: restore.kind {} restores from {}",
                    p.kind.facts().tag,
                    kind_name(&request.restore),
                    wanted
                        .iter()
                        .map(|k| k.facts().tag)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            ));
        }
        check_usable(p, "from.recovery_point")?;
        let member = (p.kind == RecoveryPointKind::Ec2SnapshotSet
            && matches!(
                request.restore,
                RestoreTarget::EbsVolume { .. } | RestoreTarget::Files { .. }
            )
            && &p.id != id)
            .then(|| id.clone());
        return Ok(((*t).clone(), member));
    }
    let source = f.source.as_deref().unwrap_or_default();
    let at = match &f.at_or_before {
        Some(t) => crate::model::parse_time(t)
            .map_err(|e| Error::invalid("from.at_or_before", e.to_string()))?,
        None => now,
    };
    let of_source: Vec<(&RecoveryPoint, &ListedPoint)> = points
        .iter()
        .filter(|(p, _)| wanted.contains(&p.kind) && same_source(&p.source, source))
        .copied()
        .collect();
    let best = of_source
        .iter()
        .filter(|(p, _)| p.state == RecoveryPointState::Completed && p.created_at <= at)
        .max_by_key(|(p, _)| (p.created_at, p.kind == RecoveryPointKind::Ami));
    match best {
        Some((_, t)) => Ok(((*t).clone(), None)),
        None => {
            let all: Vec<&RecoveryPoint> = of_source.iter().map(|(p, _)| *p).collect();
            let message = if all.is_empty() {
                let sources: std::collections::BTreeSet<&str> = points
                    .iter()
                    .filter(|(p, _)| wanted.contains(&p.kind))
                    .map(|(p, _)| p.source.as_str())
                    .collect();
                format!(
                    "no Strongroom recovery point of `{source}` that restore.kind {} restores from, in {}; sources with some: {}",
                    kind_name(&request.restore),
                    request.location.region,
                    if sources.is_empty() {
                        "none".to_owned()
                    } else {
                        sources.into_iter().take(10).collect::<Vec<_>>().join(", ")
                    }
                )
            } else {
                format!(
                    "no completed recovery point of `{source}` at or before {}; {}",
                    format_time(at),
                    candidates(&all)
                )
            };
            Err(not_found("from.source", source, region, message))
        }
    }
}

fn check_usable(p: &RecoveryPoint, field: &str) -> Result<(), Error> {
    match p.state {
        RecoveryPointState::Completed => Ok(()),
        RecoveryPointState::Pending => Err(Error::invalid(
            field,
            format!(
                "`{}` is not completed yet; wait for it, or pick an older one",
                p.id
            ),
        )),
        RecoveryPointState::Failed => Err(Error::invalid(
            field,
            format!(
                "`{}` failed (or is being deleted) and cannot be restored",
                p.id
            ),
        )),
    }
}

/// The plan: the request's settings over the record's over defaults.
pub fn plan(
    request: &RestoreRequest,
    listed: &ListedPoint,
    member: Option<&str>,
    record: Option<&RecoveryPointRecord>,
    target: &Location,
) -> Result<RestorePlan, Error> {
    let point = &listed.point;
    let settings = record.map(|r| &r.settings);
    // The recorded network (subnets, groups, subnet groups, key pairs,
    // profiles, parameter and option groups) names things of the source's
    // region and account: elsewhere (a copy in another region, a vault) it
    // is left to the request and AWS's defaults.
    let local = listed.tags.get(tags::SOURCE_REGION) == Some(&target.region)
        && listed.tags.get(tags::SOURCE_ACCOUNT) == Some(&target.account);
    let net = |v: Option<String>| v.filter(|_| local);
    let net_groups = |v: Vec<String>| if local { v } else { Vec::new() };
    match &request.restore {
        RestoreTarget::Files {
            paths,
            device,
            partition,
            destination,
        } => {
            let instance = match settings {
                Some(SourceSettings::Ec2Instance(i)) => Some(i),
                _ => None,
            };
            let (snapshot, image) = match (point.kind, member, device) {
                (RecoveryPointKind::EbsSnapshot, _, Some(_)) => {
                    return Err(Error::invalid(
                        "restore.device",
                        format!("`{}` is a volume's snapshot; `device` picks a volume of an instance set or an AMI", point.id),
                    ))
                }
                (RecoveryPointKind::EbsSnapshot, _, None) => (Some(point.id.clone()), None),
                (RecoveryPointKind::Ami, _, d) => (None, Some((point.id.clone(), d.clone()))),
                (_, Some(m), None) => (Some(m.to_owned()), None),
                (_, Some(m), Some(d)) => {
                    return Err(Error::invalid(
                        "restore.device",
                        format!("`{m}` is one snapshot already; leave out `device` ({d}) or name the set"),
                    ))
                }
                (_, None, Some(d)) => (Some(member_at(listed, instance, d)?), None),
                (_, None, None) if point.members.len() == 1 => (Some(point.members[0].clone()), None),
                (_, None, None) => {
                    return Err(Error::invalid(
                        "restore.device",
                        format!(
                            "`{}` is an instance's set of {} snapshots; say which volume to read with `device` (one of {})",
                            point.id,
                            point.members.len(),
                            listed.devices.values().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ))
                }
            };
            let prefix = destination.prefix.clone().unwrap_or_default();
            Ok(RestorePlan::Files {
                snapshot,
                device: image
                    .as_ref()
                    .and_then(|(_, d)| d.clone())
                    .or_else(|| device.clone()),
                image: image.map(|(i, _)| i),
                partition: *partition,
                paths: paths.clone(),
                bucket: destination.bucket.clone(),
                prefix: match prefix.as_str() {
                    "" => String::new(),
                    p if p.ends_with('/') => p.to_owned(),
                    p => format!("{p}/"),
                },
                kms_key_id: destination.kms_key_id.clone(),
                bucket_region: destination
                    .region
                    .clone()
                    .unwrap_or_else(|| target.region.clone()),
            })
        }
        RestoreTarget::EbsVolume {
            availability_zone,
            volume_type,
            size_gib,
            device,
            iops: asked_iops,
            throughput: asked_throughput,
        } => {
            let (snapshot, recorded) = match point.kind {
                RecoveryPointKind::EbsSnapshot => {
                    if device.is_some() {
                        return Err(Error::invalid(
                            "restore.device",
                            format!("`{}` is a volume's snapshot; `device` picks a member of an instance set", point.id),
                        ));
                    }
                    let v = match settings {
                        Some(SourceSettings::EbsVolume { volume, .. }) => Some(volume.clone()),
                        _ => None,
                    };
                    (point.id.clone(), v)
                }
                _ => {
                    let instance = match settings {
                        Some(SourceSettings::Ec2Instance(i)) => Some(i),
                        _ => None,
                    };
                    let snapshot = match (member, device) {
                        (Some(m), None) => m.to_owned(),
                        (Some(m), Some(d)) => {
                            return Err(Error::invalid(
                                "restore.device",
                                format!("`{m}` is one snapshot already; leave out `device` ({d}) or name the set"),
                            ))
                        }
                        (None, None) => {
                            return Err(Error::invalid(
                                "restore.device",
                                format!(
                                    "`{}` is an instance's set of {} snapshots; say which with `device`{}",
                                    point.id,
                                    point.members.len(),
                                    instance
                                        .map(|i| format!(
                                            " (one of {})",
                                            i.volumes.iter().map(|v| v.device.as_str()).collect::<Vec<_>>().join(", ")
                                        ))
                                        .unwrap_or_default()
                                ),
                            ))
                        }
                        (None, Some(d)) => member_at(listed, instance, d)?,
                    };
                    let at = device
                        .clone()
                        .or_else(|| listed.devices.get(&snapshot).cloned());
                    let v = instance.and_then(|i| at.as_deref().and_then(|d| i.volume(d)));
                    (snapshot, v.cloned())
                }
            };
            let volume_type = volume_type
                .clone()
                .or_else(|| recorded.as_ref().and_then(|v| v.volume_type.clone()))
                .unwrap_or_else(|| "gp3".to_owned());
            // IOPS and throughput go with the types that take them.
            let keeps =
                |t: &str| recorded.as_ref().and_then(|v| v.volume_type.as_deref()) == Some(t);
            let iops = asked_iops.map(|i| i as i32).or_else(|| {
                recorded.as_ref().and_then(|v| v.iops).filter(|_| {
                    matches!(volume_type.as_str(), "gp3" | "io1" | "io2") && keeps(&volume_type)
                })
            });
            let throughput = asked_throughput.map(|t| t as i32).or_else(|| {
                recorded
                    .as_ref()
                    .and_then(|v| v.throughput)
                    .filter(|_| volume_type == "gp3" && keeps("gp3"))
            });
            if asked_iops.is_some() && !matches!(volume_type.as_str(), "gp3" | "io1" | "io2") {
                return Err(Error::invalid(
                    "restore.iops",
                    format!("goes with volume_type gp3, io1 or io2, not {volume_type} (the recorded type); give volume_type too"),
                ));
            }
            if asked_throughput.is_some() && volume_type != "gp3" {
                return Err(Error::invalid(
                    "restore.throughput",
                    format!("goes with volume_type gp3, not {volume_type} (the recorded type); give volume_type too"),
                ));
            }
            // AWS: Iops "is required for io1 and io2 volumes".
            if matches!(volume_type.as_str(), "io1" | "io2") && iops.is_none() {
                return Err(Error::invalid(
                    "restore.iops",
                    format!("is required for an {volume_type} volume (AWS requires provisioned IOPS for io1 and io2)"),
                ));
            }
            if let (Some(asked), Some(had)) = (size_gib, recorded.as_ref().and_then(|v| v.size_gib))
            {
                if i64::from(*asked) < i64::from(had) {
                    return Err(Error::invalid(
                        "restore.size_gib",
                        format!("{asked} GiB is smaller than the snapshot's volume ({had} GiB); a volume can only be as large or larger"),
                    ));
                }
            }
            Ok(RestorePlan::EbsVolume {
                snapshot,
                availability_zone: availability_zone.clone(),
                volume_type,
                size_gib: size_gib.map(|s| s as i32),
                iops,
                throughput,
            })
        }
        RestoreTarget::Ec2Instance {
            instance_type,
            subnet_id,
            security_group_ids,
            key_name,
            instance_profile,
            private_ip,
        } => {
            let recorded = match settings {
                Some(SourceSettings::Ec2Instance(i)) => Some(i),
                _ => None,
            };
            let instance_type = instance_type
                .clone()
                .or_else(|| recorded.map(|r| r.instance_type.clone()))
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Error::invalid(
                        "restore.instance_type",
                        format!("is needed: nothing was recorded of the instance `{}` when it was backed up; give e.g. m7g.large", point.source),
                    )
                })?;
            let subnet = subnet_id
                .clone()
                .or_else(|| net(recorded.and_then(|r| r.subnet_id.clone())));
            let groups = if security_group_ids.is_empty() {
                net_groups(
                    recorded
                        .map(|r| r.security_group_ids.clone())
                        .unwrap_or_default(),
                )
            } else {
                security_group_ids.clone()
            };
            let (image, volumes, root, arch, ena, boot) = if point.kind == RecoveryPointKind::Ami {
                (
                    Some(point.id.clone()),
                    vec![],
                    String::new(),
                    String::new(),
                    false,
                    None,
                )
            } else {
                let r = recorded.ok_or_else(|| {
                    Error::invalid(
                        "from",
                        format!("`{}` is a snapshot set without a record of its instance (architecture, root device, devices): restore its volumes one by one with kind ebs-volume", point.id),
                    )
                })?;
                let mut volumes = Vec::new();
                for v in &r.volumes {
                    let snapshot = member_at(listed, Some(r), &v.device)?;
                    volumes.push(PlannedVolume {
                        device: v.device.clone(),
                        snapshot,
                        volume_type: v.volume_type.clone(),
                        size_gib: v.size_gib,
                        iops: v.iops.filter(|_| {
                            matches!(v.volume_type.as_deref(), Some("gp3" | "io1" | "io2"))
                        }),
                        throughput: v
                            .throughput
                            .filter(|_| v.volume_type.as_deref() == Some("gp3")),
                        delete_on_termination: v.delete_on_termination,
                    });
                }
                if !volumes.iter().any(|v| v.device == r.root_device_name) {
                    return Err(Error::invalid(
                        "from",
                        format!("`{}` has no snapshot of the root volume ({}): the policy excluded it; restore its volumes with kind ebs-volume", point.id, r.root_device_name),
                    ));
                }
                (
                    None,
                    volumes,
                    r.root_device_name.clone(),
                    r.architecture.clone(),
                    r.ena_support,
                    r.boot_mode.clone(),
                )
            };
            Ok(RestorePlan::Ec2Instance {
                image,
                volumes,
                root_device_name: root,
                architecture: arch,
                ena_support: ena,
                boot_mode: boot,
                instance_type,
                subnet_id: subnet,
                security_group_ids: groups,
                key_name: key_name
                    .clone()
                    .or_else(|| net(recorded.and_then(|r| r.key_name.clone()))),
                instance_profile_arn: instance_profile
                    .clone()
                    .or_else(|| net(recorded.and_then(|r| r.instance_profile_arn.clone()))),
                // The recorded address is the source's, likely still in use:
                // only an address the request asks for.
                private_ip: private_ip.clone(),
            })
        }
        RestoreTarget::RdsInstance {
            identifier,
            instance_class,
            subnet_group,
            security_group_ids,
        } => {
            let r = match settings {
                Some(SourceSettings::RdsInstance(d)) => Some(d),
                _ => None,
            };
            Ok(RestorePlan::RdsInstance {
                identifier: identifier.clone(),
                snapshot: point.id.clone(),
                instance_class: instance_class
                    .clone()
                    .or_else(|| r.map(|r| r.instance_class.clone()))
                    .filter(|c| !c.is_empty()),
                subnet_group: subnet_group
                    .clone()
                    .or_else(|| net(r.and_then(|r| r.subnet_group.clone()))),
                parameter_group: net(r.and_then(|r| r.parameter_group.clone())),
                option_group: net(r.and_then(|r| r.option_group.clone())),
                security_group_ids: if security_group_ids.is_empty() {
                    net_groups(r.map(|r| r.security_group_ids.clone()).unwrap_or_default())
                } else {
                    security_group_ids.clone()
                },
                port: r.and_then(|r| r.port),
                multi_az: r.is_some_and(|r| r.multi_az),
            })
        }
        RestoreTarget::AuroraCluster {
            identifier,
            instance_class,
            instances,
            subnet_group,
            security_group_ids,
        } => {
            let r = match settings {
                Some(SourceSettings::AuroraCluster(c)) => Some(c),
                _ => None,
            };
            let instance_class = instance_class
                .clone()
                .or_else(|| r.and_then(|r| r.instance_classes.first().cloned()))
                .ok_or_else(|| {
                    Error::invalid(
                        "restore.instance_class",
                        format!("is needed: nothing was recorded of the cluster `{}`'s instances; give e.g. db.r6g.large", point.source),
                    )
                })?;
            let engine = r.and_then(|r| r.engine.clone());
            // Its instances are named `<identifier>-<n>` (n up to 16).
            if identifier.len() > 60 {
                return Err(Error::invalid(
                    "restore.identifier",
                    format!("`{identifier}` is longer than 60 characters: the cluster's instances are named `<identifier>-<n>`, at most 63"),
                ));
            }
            Ok(RestorePlan::AuroraCluster {
                identifier: identifier.clone(),
                snapshot: point.id.clone(),
                engine,
                engine_version: r.and_then(|r| r.engine_version.clone()),
                instance_class,
                instances: instances.unwrap_or(1),
                subnet_group: subnet_group
                    .clone()
                    .or_else(|| net(r.and_then(|r| r.subnet_group.clone()))),
                parameter_group: net(r.and_then(|r| r.parameter_group.clone())),
                instance_parameter_group: net(r.and_then(|r| r.instance_parameter_group.clone())),
                security_group_ids: if security_group_ids.is_empty() {
                    net_groups(r.map(|r| r.security_group_ids.clone()).unwrap_or_default())
                } else {
                    security_group_ids.clone()
                },
                port: r.and_then(|r| r.port),
            })
        }
        RestoreTarget::RedshiftCluster {
            identifier,
            node_type,
            subnet_group,
            security_group_ids,
        } => {
            let r = match settings {
                Some(SourceSettings::RedshiftCluster(c)) => Some(c),
                _ => None,
            };
            Ok(RestorePlan::RedshiftCluster {
                identifier: identifier.clone(),
                snapshot: point.id.clone(),
                node_type: node_type
                    .clone()
                    .or_else(|| r.map(|r| r.node_type.clone()))
                    .filter(|n| !n.is_empty()),
                // A node type of its own may need another node count: AWS
                // then takes the snapshot's.
                number_of_nodes: if node_type.is_some() {
                    None
                } else {
                    r.map(|r| r.number_of_nodes)
                },
                subnet_group: subnet_group
                    .clone()
                    .or_else(|| net(r.and_then(|r| r.subnet_group.clone()))),
                parameter_group: net(r.and_then(|r| r.parameter_group.clone())),
                security_group_ids: if security_group_ids.is_empty() {
                    net_groups(r.map(|r| r.security_group_ids.clone()).unwrap_or_default())
                } else {
                    security_group_ids.clone()
                },
                port: r.and_then(|r| r.port),
            })
        }
    }
}

/// The member of a snapshot set at `device`, by its `strongroom:device` tag.
fn member_at(
    listed: &ListedPoint,
    instance: Option<&super::settings::InstanceSettings>,
    device: &str,
) -> Result<String, Error> {
    if let Some((m, _)) = listed.devices.iter().find(|(_, d)| d.as_str() == device) {
        return Ok(m.clone());
    }
    let mut devices: Vec<&str> = listed.devices.values().map(String::as_str).collect();
    if devices.is_empty() {
        devices = instance
            .map(|i| i.volumes.iter().map(|v| v.device.as_str()).collect())
            .unwrap_or_default();
    }
    Err(Error::invalid(
        "restore.device",
        format!(
            "`{}` has no snapshot tagged with device `{device}`; it has {}",
            listed.point.id,
            if devices.is_empty() {
                "no device tags (restore a member by its snapshot id)".to_owned()
            } else {
                devices.join(", ")
            }
        ),
    ))
}

/// The restore's tags: `strongroom:restored-from`, `strongroom:restore`, and
/// (by default) the source's own tags, never a `strongroom:` or `aws:` one.
pub fn restore_tags(
    request: &RestoreRequest,
    point: &RecoveryPoint,
    record: Option<&RecoveryPointRecord>,
    point_tags: &Tags,
    execution: &str,
) -> Tags {
    // What is restored is of the point's service: RDS and Redshift accept
    // fewer characters in tags than EC2 (an execution name may hold `'`).
    let charset = point.kind.facts().tag_charset;
    let mut t = Tags::new();
    if request.copy_source_tags {
        let source_tags = record
            .map(|r| r.source_tags.clone())
            .unwrap_or_else(|| point_tags.clone());
        for (k, v) in source_tags {
            let lower = k.to_ascii_lowercase();
            if lower.starts_with("aws:")
                || k.starts_with(tags::PREFIX)
                || !k.chars().all(|c| charset.allows(c))
            {
                continue;
            }
            t.insert(k, tags::fit_tag_value(&v, charset));
        }
    }
    // Leave room for ours within AWS's 50.
    while t.len() > tags::MAX_TAGS - 2 {
        let last = t.keys().next_back().cloned().expect("not empty");
        t.remove(&last);
    }
    t.insert(
        tags::RESTORED_FROM.into(),
        tags::fit_tag_value(&point.id, charset),
    );
    t.insert(
        tags::RESTORE.into(),
        tags::fit_tag_value(execution, charset),
    );
    t
}

/// Reads the record of `point`: its own, or for a copy made before copies
/// had records, its source's.
async fn read_record<S: ObjectStore>(
    store: &S,
    bucket: &str,
    point: &RecoveryPoint,
    point_tags: &Tags,
) -> Result<Option<RecoveryPointRecord>, Error> {
    let mut keys = vec![record_key(&point.location, &point.id)];
    if let (Some(of), Some(account), Some(region)) = (
        point_tags.get(tags::COPY_OF),
        point_tags.get(tags::SOURCE_ACCOUNT),
        point_tags.get(tags::SOURCE_REGION),
    ) {
        let original = Location {
            account: account.clone(),
            region: region.clone(),
        };
        // A set's copy has the set's id; its members name the member copied.
        let id = if point.kind == RecoveryPointKind::Ec2SnapshotSet {
            point.id.clone()
        } else {
            of.clone()
        };
        keys.push(record_key(&original, &id));
    }
    for key in keys {
        let object = S3Object {
            bucket: bucket.to_owned(),
            key,
        };
        match store.get_object(&object).await {
            Ok(body) => {
                return serde_json::from_slice(&body).map(Some).map_err(|e| {
                    Error::Internal(format!("{object} is not a record Strongroom wrote: {e}"))
                })
            }
            Err(e) if e.kind == ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Validate: from the pasted request to the state every later step reads.
/// Nothing is created; every refusal names the request's field.
pub async fn validate<C: Restores>(
    request: serde_json::Value,
    execution: &str,
    bucket: Option<&str>,
    cloud: &C,
    now: OffsetDateTime,
) -> Result<RestoreState, Error> {
    let request = RestoreRequest::parse(request, now)?;
    let bucket = bucket.ok_or_else(|| {
        Error::invalid(
            crate::runs::BUCKET_VARIABLE,
            "is not set; set it to the stack's bucket (the backup's records are there)",
        )
    })?;
    check_bucket(bucket, crate::runs::BUCKET_VARIABLE)?;
    check_execution(execution, "execution")?;
    let home = cloud.home_account().await?;
    let l = &request.location;
    let location = Location {
        account: l.account.clone().unwrap_or_else(|| home.clone()),
        region: l.region.clone(),
    };
    if location.account != home && l.role_arn.is_none() {
        return Err(Error::invalid(
            "location.role_arn",
            format!(
                "is needed to reach account {} (the vault's restore role)",
                location.account
            ),
        ));
    }
    let target = Location {
        account: request
            .into
            .as_ref()
            .map_or_else(|| location.account.clone(), |i| i.account.clone()),
        region: location.region.clone(),
    };
    if target.account != home
        && target.account != location.account
        && request.into.as_ref().is_some_and(|i| i.role_arn.is_none())
    {
        return Err(Error::invalid(
            "into.role_arn",
            format!("is needed to make anything in account {}", target.account),
        ));
    }
    cloud.use_roles(&roles_of(&request, &location, &target));
    let listed = cloud
        .catalog(&location, &all_kinds_if_by_id(&request))
        .await?;
    let (listed, member) = resolve(&request, &listed, now)?;
    if target.account != location.account {
        if listed.point.kind == RecoveryPointKind::Ec2SnapshotSet
            && matches!(request.restore, RestoreTarget::Ec2Instance { .. })
        {
            return Err(Error::invalid(
                "into",
                format!(
                    "`{}` is an instance's snapshot set: an instance is rebuilt in the set's own account; restore its volumes into {} with kind ebs-volume, or copy the set there first",
                    listed.point.id, target.account
                ),
            ));
        }
        let shared = cloud.shared_with(&listed.point).await?;
        if !shared.iter().any(|a| a == &target.account || a == "all") {
            return Err(Error::invalid(
                "into.account",
                format!(
                    "`{}` is not shared with {}; share it first ({}), and let that account use its KMS key",
                    listed.point.id,
                    target.account,
                    share_hint(listed.point.kind)
                ),
            ));
        }
    }
    let record = read_record(cloud, bucket, &listed.point, &listed.tags).await?;
    let plan = plan(
        &request,
        &listed,
        member.as_deref(),
        record.as_ref(),
        &target,
    )?;
    let mut plan = plan;
    if let RestorePlan::Files {
        prefix,
        bucket: destination,
        ..
    } = &mut plan
    {
        if prefix.is_empty() && request_prefix_absent(&request) {
            *prefix = format!("{REPORTS_PREFIX}{execution}/files/");
        }
        // The stack's own bucket keeps the backup's records and the runs'
        // files: a file restore writes there only under `restores/`, and
        // never over this restore's own lists and report.
        let own = format!("{REPORTS_PREFIX}{execution}/");
        let clashes = prefix.starts_with(&own) && !prefix.starts_with(&format!("{own}files/"));
        if destination == bucket && (!prefix.starts_with(REPORTS_PREFIX) || clashes) {
            return Err(Error::invalid(
                "restore.destination.prefix",
                format!(
                    "`{prefix}` is outside {REPORTS_PREFIX} of the stack's bucket {bucket}, or beside this restore's report in {own}; leave the prefix out, start it with {REPORTS_PREFIX} (not {own} unless {own}files/), or name another bucket"
                ),
            ));
        }
    }
    cloud.preflight(&target, &plan).await?;
    let tags = restore_tags(
        &request,
        &listed.point,
        record.as_ref(),
        &listed.tags,
        execution,
    );
    let poll_seconds = request.poll_seconds.unwrap_or(DEFAULT_POLL_SECONDS);
    Ok(RestoreState {
        recorded: record.is_some(),
        request,
        execution: execution.to_owned(),
        bucket: bucket.to_owned(),
        location,
        target,
        point: listed.point,
        plan,
        tags,
        made: vec![],
        usable: false,
        failed: None,
        polls: 0,
        poll_seconds,
        wait_seconds: poll_seconds,
        started_at: now,
        details: Default::default(),
        files: None,
    })
}

/// Whether a file restore's request leaves the prefix to the default.
fn request_prefix_absent(request: &RestoreRequest) -> bool {
    matches!(&request.restore, RestoreTarget::Files { destination, .. } if destination.prefix.is_none())
}

/// CopyFiles: one step of a file restore; `usable` once every file is in S3.
pub async fn copy_files<C: Restores>(
    mut state: RestoreState,
    cloud: &C,
    now: OffsetDateTime,
) -> Result<RestoreState, Error> {
    state.validate(now)?;
    if !matches!(state.plan, RestorePlan::Files { .. }) {
        return Err(Error::invalid(
            "state.plan",
            "is not a file restore's; copy-files goes with restore.kind files",
        ));
    }
    if state
        .files
        .as_ref()
        .is_some_and(|f| f.steps >= super::files::MAX_STEPS)
    {
        return Err(Error::Internal(format!(
            "the file restore did not finish in {} steps",
            super::files::MAX_STEPS
        )));
    }
    use_state_role(&state, cloud);
    let progress = cloud.copy_files(&state).await?;
    if progress.done {
        state.usable = true;
        state
            .details
            .insert("files".into(), progress.copied_files.into());
        state
            .details
            .insert("bytes".into(), progress.copied_bytes.into());
        state
            .details
            .insert("entries".into(), progress.total_entries.into());
        state
            .details
            .insert("blocks_fetched".into(), progress.blocks_fetched.into());
        state
            .details
            .insert("bytes_fetched".into(), progress.bytes_fetched.into());
        state.details.insert("steps".into(), progress.steps.into());
        state
            .details
            .insert("filesystem".into(), progress.filesystem.clone().into());
        if let Some(r) = &progress.results {
            state
                .details
                .insert("list".into(), format!("s3://{}/{}", r.bucket, r.key).into());
        }
    }
    state.files = Some(progress);
    Ok(state)
}

/// By id, every kind is listed (so that a point of the wrong kind is named
/// as such); by source, only the kinds the request restores.
fn all_kinds_if_by_id(request: &RestoreRequest) -> Vec<RecoveryPointKind> {
    if request.from.recovery_point.is_some() {
        RecoveryPointKind::ALL.to_vec()
    } else {
        kinds_for(&request.restore).to_vec()
    }
}

fn use_state_role<C: Restores>(state: &RestoreState, cloud: &C) {
    cloud.use_roles(&roles_of(&state.request, &state.location, &state.target));
}

/// The roles a restore assumes: the location's (to read the point) and the
/// target's (to make what it makes).
fn roles_of(request: &RestoreRequest, location: &Location, target: &Location) -> Vec<AccountRole> {
    let mut roles = Vec::new();
    if let Some(role) = &request.location.role_arn {
        roles.push(AccountRole {
            account: location.account.clone(),
            role_arn: Some(role.clone()),
            external_id: request.location.external_id.clone(),
        });
    }
    if let Some(into) = request.into.as_ref().filter(|i| i.role_arn.is_some()) {
        if target.account != location.account {
            roles.push(AccountRole {
                account: target.account.clone(),
                role_arn: into.role_arn.clone(),
                external_id: into.external_id.clone(),
            });
        }
    }
    roles
}

/// How a kind of recovery point is shared with another account.
fn share_hint(kind: RecoveryPointKind) -> &'static str {
    match kind {
        RecoveryPointKind::EbsSnapshot | RecoveryPointKind::Ec2SnapshotSet => {
            "EC2 ModifySnapshotAttribute, createVolumePermission"
        }
        RecoveryPointKind::Ami => {
            "EC2 ModifyImageAttribute, launchPermission, and its snapshots' createVolumePermission"
        }
        RecoveryPointKind::RdsSnapshot => "RDS ModifyDBSnapshotAttribute, restore",
        RecoveryPointKind::AuroraSnapshot => "RDS ModifyDBClusterSnapshotAttribute, restore",
        RecoveryPointKind::RedshiftSnapshot => "Redshift AuthorizeSnapshotAccess",
    }
}

/// Start: makes what the plan says.
pub async fn start<C: Restores>(
    mut state: RestoreState,
    cloud: &C,
    now: OffsetDateTime,
) -> Result<RestoreState, Error> {
    state.validate(now)?;
    use_state_role(&state, cloud);
    let made = cloud.start(&state).await?;
    for m in made {
        if !state.made.contains(&m) {
            state.made.push(m);
        }
    }
    Ok(state)
}

/// Check: one look; sets `usable`, `failed`, or the next wait.
pub async fn check<C: Restores>(
    mut state: RestoreState,
    cloud: &C,
    now: OffsetDateTime,
) -> Result<RestoreState, Error> {
    state.validate(now)?;
    use_state_role(&state, cloud);
    let health = cloud.check(&state).await?;
    for m in health.made {
        if !state.made.contains(&m) {
            state.made.push(m);
        }
    }
    state.polls += 1;
    state.details = health.details;
    state.usable = health.usable && health.failed.is_none() && !health.missing;
    state.failed = health.failed;
    if !state.usable && state.failed.is_none() {
        let waited = (now - state.started_at).whole_seconds();
        if health.missing && waited > VISIBILITY_GRACE_SECONDS {
            state.failed = Some(format!(
                "what it made ({}) is not found after {} minutes",
                state
                    .made
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                VISIBILITY_GRACE_SECONDS / 60
            ));
        } else if waited > MAX_RESTORE_SECONDS {
            state.failed = Some(format!(
                "not usable after {} hours",
                MAX_RESTORE_SECONDS / 3600
            ));
        } else if state.polls >= MAX_CHECKS {
            state.failed = Some(format!(
                "not usable after {MAX_CHECKS} checks (raise poll_seconds)"
            ));
        }
        if state.polls > 1 {
            state.wait_seconds =
                crate::backup::snapshot::next_wait(state.wait_seconds, state.poll_seconds);
        }
    }
    Ok(state)
}

fn report_object(state: &RestoreState) -> S3Object {
    S3Object {
        bucket: state.bucket.clone(),
        key: format!("{REPORTS_PREFIX}{}/report.json", state.execution),
    }
}

async fn write_report<C: Restores>(
    state: &RestoreState,
    cloud: &C,
    now: OffsetDateTime,
    error: Option<ErrorReport>,
    kept: bool,
) -> Result<RestoreReport, Error> {
    let report = RestoreReport {
        outcome: if error.is_none() {
            "succeeded"
        } else {
            "failed"
        }
        .to_owned(),
        execution: state.execution.clone(),
        recovery_point: state.point.id.clone(),
        point_kind: state.point.kind,
        source: state.point.source.clone(),
        point_created_at: state.point.created_at,
        location: state.location.clone(),
        restored_in: state.target.clone(),
        restored: if error.is_none() {
            state
                .made
                .iter()
                .filter(|m| m.kind != MadeKind::Image)
                .cloned()
                .collect()
        } else {
            vec![]
        },
        kept: if kept { state.made.clone() } else { vec![] },
        error,
        plan: state.plan.clone(),
        details: state.details.clone(),
        seconds: (now - state.started_at).whole_seconds(),
        checks: state.polls,
        report: report_object(state),
    };
    let body = serde_json::to_vec_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
    cloud.put_object(&report.report, body).await?;
    Ok(report)
}

/// Finalize: the temporary image goes, the report is written.
pub async fn finalize<C: Restores>(
    state: RestoreState,
    cloud: &C,
    now: OffsetDateTime,
) -> Result<RestoreReport, Error> {
    state.validate(now)?;
    use_state_role(&state, cloud);
    if state.made.iter().any(|m| m.kind == MadeKind::Image) {
        cloud.remove(&state, true).await?;
    }
    write_report(&state, cloud, now, None, false).await
}

/// Clean up: a failed restore removes what it made (unless
/// `keep_on_failure`) and writes its report; the state machine then fails.
pub async fn clean_up<C: Restores>(
    state: RestoreState,
    error: Option<serde_json::Value>,
    cloud: &C,
    now: OffsetDateTime,
) -> Result<RestoreReport, Error> {
    state.validate(now)?;
    use_state_role(&state, cloud);
    let error = match (&state.failed, error) {
        (Some(f), _) => ErrorReport::new(ErrorKind::Internal, f.clone()),
        (None, Some(e)) => {
            let kind = e
                .get("Error")
                .and_then(|v| v.as_str())
                .and_then(|n| ErrorKind::ALL.into_iter().find(|k| k.error_type() == n))
                .unwrap_or(ErrorKind::Internal);
            let cause = e.get("Cause").and_then(|v| v.as_str()).unwrap_or_default();
            // A Lambda error's cause is its JSON diagnostic.
            let message = serde_json::from_str::<serde_json::Value>(cause)
                .ok()
                .and_then(|c| {
                    c.get("errorMessage")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| cause.to_owned());
            ErrorReport::new(kind, message)
        }
        (None, None) => ErrorReport::new(ErrorKind::Internal, "the restore stopped"),
    };
    let keep = state.request.keep_on_failure;
    // A step that failed after it made something returns no state: what it
    // made is found by its names and its `strongroom:restore` tag.
    let mut state = state;
    for m in cloud.find_made(&state).await? {
        if !state.made.contains(&m) {
            state.made.push(m);
        }
    }
    // A file restore makes no resource, but may leave a multipart upload
    // in flight: that goes whatever `keep_on_failure` says (it is no object
    // to inspect, and S3 bills its parts).
    let uploading = matches!(state.plan, RestorePlan::Files { .. })
        && state.files.as_ref().is_some_and(|f| f.upload.is_some());
    if (!keep && !state.made.is_empty()) || uploading {
        cloud.remove(&state, false).await?;
    }
    write_report(&state, cloud, now, Some(error), keep).await
}

/// One line of `strongroom recovery-points list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub id: String,
    pub kind: RecoveryPointKind,
    pub state: RecoveryPointState,
    #[serde(with = "crate::model::utc_time")]
    pub created_at: OffsetDateTime,
    pub source: String,
    pub policy: String,
    pub location: Location,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gib: Option<u64>,
    /// For a copy: what it was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_of: Option<String>,
    /// Held (`strongroom:hold`): never pruned.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// For an instance set: member snapshot -> device.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub devices: std::collections::BTreeMap<String, String>,
}

/// The catalog's points, of `source` (an id, an ARN or a database's bare
/// identifier) and `policy` when given: by source, newest first.
pub fn catalog_entries(
    listed: &Listed,
    source: Option<&str>,
    policy: Option<&str>,
) -> Vec<CatalogEntry> {
    let mut out: Vec<CatalogEntry> = listed
        .points
        .iter()
        .filter(|l| source.is_none_or(|s| same_source(&l.point.source, s)))
        .filter(|l| policy.is_none_or(|p| l.tags.get(tags::POLICY).map(String::as_str) == Some(p)))
        .map(|l| CatalogEntry {
            id: l.point.id.clone(),
            kind: l.point.kind,
            state: l.point.state,
            created_at: l.point.created_at,
            source: l.point.source.clone(),
            policy: l.tags.get(tags::POLICY).cloned().unwrap_or_default(),
            location: l.point.location.clone(),
            size_gib: l.size_gib,
            copy_of: l.tags.get(tags::COPY_OF).cloned(),
            held: crate::prune::is_held(&l.tags),
            devices: l.devices.clone(),
        })
        .collect();
    out.sort_by(|a, b| {
        a.source
            .cmp(&b.source)
            .then(b.created_at.cmp(&a.created_at))
            .then(a.id.cmp(&b.id))
    });
    out
}

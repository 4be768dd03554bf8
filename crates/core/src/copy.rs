//! Copies: every completed recovery point of a run, to every destination of
//! its policy (another region, or a vault account), re-encrypted with the
//! destination's key, never more in flight per destination region than AWS
//! allows.
//!
//! The copy stage runs one loop per destination: each pass ([`copy_pass`])
//! reads the destination's state file from the run's bucket (built from the
//! snapshot stage's results on the first pass), finds what earlier passes or
//! runs already copied (idempotency), refreshes the copies in flight, locks
//! and unshares what finished, and starts as many waiting copies as the
//! [`plan`]ner allows. The state machine waits and passes again until
//! nothing is waiting or in flight.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{CloudError, Error, ErrorKind, ErrorReport};
use crate::kind::CopyMethod;
use crate::model::{
    format_time, Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState, Tags,
};
use crate::policy::{is_account_id, is_region_name, AccountRole, Policy};
use crate::ports::{ObjectStore, RecoveryPoints};
use crate::retention::Retention;
use crate::runs::{RunFiles, S3Object};
use crate::tags::{self, RunKey};

/// A place a policy's recovery points are copied to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyDestination {
    /// The region the copies are made in, e.g. `eu-west-1`.
    pub region: String,
    /// The vault account, when the copies go to another account (12 digits);
    /// without it, the account Strongroom runs in (then the policy may cover
    /// only that account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The role Strongroom assumes in `account` to copy there
    /// (`infra/vault-account.yaml` makes it): it may copy and tag, never delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The external id that role's trust policy requires, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The customer-managed KMS key (ARN, of a key or an alias, in `region`
    /// and the destination's account) the copies are encrypted with.
    pub kms_key: String,
    /// How long the destination keeps its copies (restic's rules plus
    /// `max_age`); without it, the policy's retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Lock every EBS snapshot copied here (EBS Snapshot Lock): nobody can
    /// delete it before the lock expires, in compliance mode not even the
    /// account's root user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<SnapshotLock>,
    /// The role in `account` that may delete Strongroom's copies there, for
    /// the Prune stage; without it the source account does not prune the
    /// vault (a vault-side prune, or locks and the vault's own lifecycle, do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_role_arn: Option<String>,
}

/// An EBS Snapshot Lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotLock {
    /// `governance`: users with `ec2:UnlockSnapshot` may unlock it;
    /// `compliance`: nobody can once the cool-off period is over.
    pub mode: LockMode,
    /// Days the lock lasts from the copy's completion (1-36500).
    pub duration_days: u32,
    /// Compliance mode only: hours (1-72) during which the lock can still be
    /// removed, to catch a mistake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cool_off_hours: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Governance => "governance",
            Self::Compliance => "compliance",
        }
    }
}

/// LockSnapshot's `LockDuration` range, days.
pub const LOCK_DAYS: std::ops::RangeInclusive<u32> = 1..=36_500;
/// LockSnapshot's `CoolOffPeriod` range, hours (compliance mode only).
pub const COOL_OFF_HOURS: std::ops::RangeInclusive<u32> = 1..=72;

/// A KMS key or alias ARN: `arn:<partition>:kms:<region>:<account>:key/<id>`
/// or `…:alias/<name>`. Returns (region, account, `key`|`alias`, rest).
fn parse_kms_arn(arn: &str) -> Option<(&str, &str, &str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let partition = parts.next()?;
    let service = parts.next()?;
    let region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?;
    if !partition.starts_with("aws") || service != "kms" {
        return None;
    }
    let (kind, id) = resource.split_once('/')?;
    let id_ok = match kind {
        // A key id: a UUID, or `mrk-` and 32 hex digits (multi-Region keys).
        "key" => {
            let uuid = id.len() == 36
                && id.chars().enumerate().all(|(i, c)| {
                    if [8, 13, 18, 23].contains(&i) {
                        c == '-'
                    } else {
                        c.is_ascii_hexdigit()
                    }
                });
            let mrk = id
                .strip_prefix("mrk-")
                .is_some_and(|h| h.len() == 32 && h.chars().all(|c| c.is_ascii_hexdigit()));
            uuid || mrk
        }
        // KMS: 1-256 characters of letters, digits, `/`, `_` and `-`.
        "alias" => {
            (1..=256).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
        }
        _ => false,
    };
    (id_ok && is_region_name(region) && is_account_id(account))
        .then_some((region, account, kind, id))
}

/// Where a KMS key (or alias) lives, from its ARN: the account and region a
/// grant on it is made in.
pub fn kms_key_location(arn: &str) -> Option<Location> {
    parse_kms_arn(arn).map(|(region, account, _, _)| Location {
        account: account.to_owned(),
        region: region.to_owned(),
    })
}

impl CopyDestination {
    /// The role that reaches the destination's account for copying.
    pub fn copy_role(&self) -> Option<AccountRole> {
        Some(AccountRole {
            account: self.account.clone()?,
            role_arn: self.role_arn.clone(),
            external_id: self.external_id.clone(),
        })
    }

    /// The role Prune uses in the destination's account, when it has one.
    pub fn prune_role(&self) -> Option<AccountRole> {
        Some(AccountRole {
            account: self.account.clone()?,
            role_arn: Some(self.prune_role_arn.clone()?),
            external_id: self.external_id.clone(),
        })
    }

    /// The destination's location, its account defaulting to `home`.
    pub fn location(&self, home: &str) -> Location {
        Location {
            account: self.account.clone().unwrap_or_else(|| home.to_owned()),
            region: self.region.clone(),
        }
    }

    /// Checks one destination against AWS's rules; `at` is its path.
    pub fn validate(&self, at: &str) -> Result<(), Error> {
        if !is_region_name(&self.region) {
            return Err(Error::invalid(
                format!("{at}.region"),
                format!(
                    "`{}` is not a region name; use a code such as eu-west-1",
                    self.region
                ),
            ));
        }
        match &self.account {
            Some(account) => {
                let role = self.copy_role().expect("account is set");
                role.validate(at)?;
                if self.role_arn.is_none() {
                    return Err(Error::invalid(
                        format!("{at}.role_arn"),
                        format!("is missing; a copy to account {account} goes through a role there (the vault stack's CopyRoleArn output)"),
                    ));
                }
                if let Some(prune) = &self.prune_role_arn {
                    AccountRole {
                        account: account.clone(),
                        role_arn: Some(prune.clone()),
                        external_id: self.external_id.clone(),
                    }
                    .validate(at)
                    .map_err(|e| match e {
                        Error::InvalidInput { message, .. } => {
                            Error::invalid(format!("{at}.prune_role_arn"), message)
                        }
                        other => other,
                    })?;
                    if Some(prune) == self.role_arn.as_ref() {
                        return Err(Error::invalid(
                            format!("{at}.prune_role_arn"),
                            "is the copy role; pruning needs the vault's separate prune role, so that the copy role can never delete",
                        ));
                    }
                }
            }
            None => {
                for (field, given) in [
                    ("role_arn", self.role_arn.is_some()),
                    ("external_id", self.external_id.is_some()),
                    ("prune_role_arn", self.prune_role_arn.is_some()),
                ] {
                    if given {
                        return Err(Error::invalid(
                            format!("{at}.{field}"),
                            "is given without an account; name the vault account it belongs to, or leave it out for a copy within the same account",
                        ));
                    }
                }
            }
        }
        let key_at = format!("{at}.kms_key");
        let Some((key_region, key_account, key_kind, key_id)) = parse_kms_arn(&self.kms_key) else {
            return Err(Error::invalid(
                key_at,
                format!(
                    "`{}` is not a KMS key ARN; use arn:aws:kms:{}:<account>:key/<key id> (or an alias ARN)",
                    self.kms_key, self.region
                ),
            ));
        };
        if key_region != self.region {
            return Err(Error::invalid(
                key_at,
                format!(
                    "is in {key_region}, not {}; a copy is encrypted with a key of its own region",
                    self.region
                ),
            ));
        }
        if let Some(account) = &self.account {
            if key_account != account {
                return Err(Error::invalid(
                    key_at,
                    format!("belongs to account {key_account}, not the vault account {account}; use the vault's own key (the vault stack's KeyArn output)"),
                ));
            }
        }
        if key_kind == "alias" && key_id.starts_with("aws/") {
            return Err(Error::invalid(
                key_at,
                format!("`alias/{key_id}` is an AWS managed key; copies need a customer-managed key, which can be shared to restore them elsewhere"),
            ));
        }
        if let Some(r) = &self.retention {
            r.rules(&format!("{at}.retention"))?;
        }
        if let Some(lock) = &self.lock {
            let lat = format!("{at}.lock");
            if !LOCK_DAYS.contains(&lock.duration_days) {
                return Err(Error::invalid(
                    format!("{lat}.duration_days"),
                    format!(
                        "{} is outside 1-36500, the lock durations EBS accepts",
                        lock.duration_days
                    ),
                ));
            }
            match (lock.mode, lock.cool_off_hours) {
                (LockMode::Governance, Some(_)) => {
                    return Err(Error::invalid(
                        format!("{lat}.cool_off_hours"),
                        "applies to compliance mode only; leave it out for governance",
                    ))
                }
                (LockMode::Compliance, Some(h)) if !COOL_OFF_HOURS.contains(&h) => {
                    return Err(Error::invalid(
                        format!("{lat}.cool_off_hours"),
                        format!("{h} is outside 1-72, the cool-off periods EBS accepts"),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Checks the policy's `copies`: each destination, no two alike, none at a
/// location the policy protects, and no kind Strongroom cannot copy yet.
pub fn validate_destinations(policy: &Policy, at: &str) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    for (i, d) in policy.copies.iter().enumerate() {
        let dat = format!("{at}.copies[{i}]");
        d.validate(&dat)?;
        let key = (d.account.clone(), d.region.clone());
        if !seen.insert(key) {
            return Err(Error::invalid(
                dat,
                format!(
                    "copies to {} in {} twice; list each destination once",
                    d.account.as_deref().unwrap_or("the same account"),
                    d.region
                ),
            ));
        }
        // A destination at a protected location would mix copies with the
        // source's own recovery points under one retention.
        let protects_account = match &d.account {
            None => true,
            Some(a) => policy.accounts.iter().any(|r| &r.account == a),
        };
        if protects_account && policy.selector.regions.contains(&d.region) {
            return Err(Error::invalid(
                format!("{dat}.region"),
                format!(
                    "{} is a region the policy protects in {}; a copy must go to another region or account",
                    d.region,
                    d.account.as_deref().unwrap_or("the same account")
                ),
            ));
        }
    }
    // A kind whose copies the service makes (Redshift): one region of the
    // same account, never another account.
    for t in &policy.selector.resource_types {
        let kind = RecoveryPointKind::for_source(*t, policy.ec2.mode);
        if kind.facts().copy != CopyMethod::ClusterConfigured {
            continue;
        }
        let mut regions = 0;
        for (i, d) in policy.copies.iter().enumerate() {
            // A vault destination is a share (see `CopyMethod::ClusterConfigured`).
            if d.account.is_some() {
                continue;
            }
            regions += 1;
            if regions > 1 {
                return Err(Error::invalid(
                    format!("{at}.copies[{i}]"),
                    format!(
                        "the policy selects {t}, and a Redshift cluster copies its snapshots to one other region only; keep one destination, or copy Redshift with a policy of its own"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Which AWS limit on copies in flight a copy counts against, per
/// destination region and account.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum CopyLimit {
    /// EBS: "Concurrent snapshot copies per destination Region": 20, not
    /// adjustable (Amazon EBS quotas); one more is `ResourceLimitExceeded`.
    EbsSnapshots,
    /// RDS: "up to 20 snapshot copy requests in progress to a single
    /// destination Region per account" (Copying a DB snapshot, RDS User
    /// Guide); Aurora's cluster snapshot copies are counted in the same pool.
    DbSnapshots,
    /// EC2 `CopyImage`: "Destination Regions are limited to 50 concurrent AMI
    /// copies at a time, with no more than 25 of those coming from a single
    /// source Region" (Copy an AMI, EC2 User Guide): 25, as a destination's
    /// copies may all come from one source region.
    Images,
    /// Redshift: AWS copies each new snapshot of a configured cluster on its
    /// own, with no limit to keep; Strongroom only finds and tags the copies,
    /// at most this many per pass.
    ClusterCopies,
}

impl CopyLimit {
    /// Copies in flight AWS allows per destination region and account.
    pub const fn max_in_flight(self) -> usize {
        match self {
            Self::EbsSnapshots => 20,
            Self::DbSnapshots => 20,
            Self::Images => 25,
            Self::ClusterCopies => 100,
        }
    }

    /// The limit a kind's copies count against (`None`: not copied).
    pub fn of(kind: RecoveryPointKind) -> Option<Self> {
        match kind.facts().copy {
            CopyMethod::EbsSnapshots => Some(Self::EbsSnapshots),
            CopyMethod::DbSnapshot => Some(Self::DbSnapshots),
            CopyMethod::Image => Some(Self::Images),
            CopyMethod::ClusterConfigured => Some(Self::ClusterCopies),
        }
    }
}

/// Where one copy (of one EBS snapshot, or one DB snapshot) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitState {
    /// Not started: waits for room under the limit.
    Waiting,
    /// Started, not complete.
    InFlight,
    Completed,
    Failed,
}

/// One copy call's worth: an EBS snapshot (an instance set has one per
/// volume) or a DB / cluster snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyUnit {
    /// The snapshot copied: EBS snapshot id, or DB / cluster snapshot identifier.
    pub source: String,
    /// The copy's id at the destination, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<String>,
    pub state: UnitState,
    /// Found at the destination, made by an earlier execution (a re-run).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
    /// Locked as the destination asks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
    /// An AMI copy's own EBS snapshots, once AWS tells them (what a lock locks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_snapshots: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

/// A KMS grant that lets the vault's copy role use a source key: made once
/// per key for a destination's copies, revoked when they are all done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGrant {
    /// The source key's ARN.
    pub key: String,
    pub grant_id: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

/// One recovery point's copy to the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyJob {
    /// The recovery point copied (at its own location).
    pub point: RecoveryPoint,
    pub units: Vec<CopyUnit>,
    /// Cross-account: its snapshots are shared with the vault account, until unshared.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// Cross-account: sharing was undone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unshared: bool,
    /// The source's KMS keys, once described (what its grants are for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    /// Why the whole recovery point was not copied (before any unit
    /// started), or why it could not be unshared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    /// The copy's restore record was written (or there was none to copy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recorded: bool,
}

impl CopyJob {
    fn new(point: RecoveryPoint) -> Self {
        let sources = if point.kind.facts().copy == CopyMethod::EbsSnapshots
            && point.kind.facts().snapshots == crate::kind::Snapshots::Members
        {
            point.members.clone()
        } else {
            vec![point.id.clone()]
        };
        Self {
            units: sources
                .into_iter()
                .map(|source| CopyUnit {
                    source,
                    copy: None,
                    state: UnitState::Waiting,
                    reused: false,
                    locked: false,
                    copy_snapshots: Vec::new(),
                    error: None,
                })
                .collect(),
            point,
            shared: false,
            unshared: false,
            keys: None,
            error: None,
            recorded: false,
        }
    }

    /// The job's state: failed if any unit failed, else the least advanced.
    pub fn state(&self) -> UnitState {
        let states: Vec<UnitState> = self.units.iter().map(|u| u.state).collect();
        if states.contains(&UnitState::Failed) {
            UnitState::Failed
        } else if states.contains(&UnitState::Waiting) {
            if states.contains(&UnitState::InFlight) || states.contains(&UnitState::Completed) {
                UnitState::InFlight
            } else {
                UnitState::Waiting
            }
        } else if states.contains(&UnitState::InFlight) {
            UnitState::InFlight
        } else {
            UnitState::Completed
        }
    }

    fn finished(&self) -> bool {
        self.units
            .iter()
            .all(|u| matches!(u.state, UnitState::Completed | UnitState::Failed))
    }

    /// The kind each unit's copy is (an instance set's members: EBS snapshots).
    pub fn unit_kind(&self) -> RecoveryPointKind {
        match self.point.kind.facts().copy {
            CopyMethod::EbsSnapshots => RecoveryPointKind::EbsSnapshot,
            _ => self.point.kind,
        }
    }

    fn limit(&self) -> Option<CopyLimit> {
        CopyLimit::of(self.point.kind)
    }

    /// Whether this job shares the recovery point with `destination`'s
    /// account instead of copying it (Redshift to a vault): the share is the
    /// result, and stays.
    pub fn is_share(&self, destination: &Location) -> bool {
        self.point.kind.facts().copy == CopyMethod::ClusterConfigured
            && self.point.location.account != destination.account
    }

    fn fail_waiting(&mut self, error: ErrorReport) {
        for u in &mut self.units {
            if u.state == UnitState::Waiting {
                u.state = UnitState::Failed;
                u.error = Some(error.clone());
            }
        }
        self.error = Some(error);
    }
}

/// One pass's numbers, kept for the run report and the figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassRecord {
    /// Copies in flight at the destination once the pass had started what it could.
    pub in_flight: usize,
    /// Copies still waiting after the pass.
    pub waiting: usize,
    /// Copies this pass started.
    pub started: usize,
}

/// A destination's copy state: the file each pass reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyState {
    pub run: RunKey,
    /// The destination's index in the policy's `copies`.
    pub destination: usize,
    pub location: Location,
    pub jobs: Vec<CopyJob>,
    /// Grants on source keys to the vault's copy role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<KeyGrant>,
    /// When the first pass ran (the clock of [`CLUSTER_COPY_DEADLINE`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::model::utc_time::option"
    )]
    pub started_at: Option<OffsetDateTime>,
    /// Per pass, per limit: what was in flight and waiting.
    #[serde(default)]
    pub passes: Vec<BTreeMap<CopyLimit, PassRecord>>,
}

/// Copies allowed to start now: for each waiting unit, in order, as long as
/// the units in flight at the destination (ours and any other Strongroom
/// copies there) stay within the limit of its kind. Units of a job already
/// started come first, so a started instance set is finished before another
/// begins; otherwise the order is the jobs' (oldest recovery point first).
/// Returns (job, unit) indexes.
pub fn plan(jobs: &[CopyJob], in_flight: &BTreeMap<CopyLimit, usize>) -> Vec<(usize, usize)> {
    let mut room: BTreeMap<CopyLimit, usize> = BTreeMap::new();
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    // Jobs partly started first (stable, so otherwise in the given order).
    order.sort_by_key(|&j| jobs[j].state() != UnitState::InFlight);
    let mut out = Vec::new();
    for j in order {
        let job = &jobs[j];
        let Some(limit) = job.limit() else { continue };
        if job.error.is_some() {
            continue;
        }
        let left = room.entry(limit).or_insert_with(|| {
            limit
                .max_in_flight()
                .saturating_sub(in_flight.get(&limit).copied().unwrap_or(0))
        });
        for (u, unit) in job.units.iter().enumerate() {
            if unit.state != UnitState::Waiting {
                continue;
            }
            if *left == 0 {
                break;
            }
            *left -= 1;
            out.push((j, u));
        }
    }
    out
}

/// What the Copy function is handed each pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    pub run: RunKey,
    /// Discover's resolved policy.
    pub policy: Policy,
    /// Discover's `files`.
    pub files: RunFiles,
    /// The destination's index in `policy.copies`.
    pub destination: usize,
    /// The snapshot stage's output (the Map Run's result files).
    pub snapshots: crate::report::SnapshotsOutcome,
    /// Seconds between passes at first (the run's `poll_seconds`).
    #[serde(default)]
    pub poll_seconds: u32,
    /// The last wait; doubles each pass up to 15 minutes.
    #[serde(default)]
    pub wait_seconds: u32,
}

impl CopyRequest {
    /// Checks a pass's input before any call: the policy, the run's files,
    /// the destination's index, and a run time not in the future.
    pub fn validate(&self, now: OffsetDateTime) -> Result<(), Error> {
        self.policy.validate("policy")?;
        self.files.validate(&self.run, "files")?;
        if self.run.policy != self.policy.name {
            return Err(Error::invalid(
                "run.policy",
                format!(
                    "names policy {}, not {}; pass Discover's run and policy unchanged",
                    self.run.policy, self.policy.name
                ),
            ));
        }
        crate::validate::not_in_future(self.run.scheduled_time, now, "run.scheduled_time")?;
        crate::validate::validate_waits(self.poll_seconds, self.wait_seconds)?;
        if self.destination >= self.policy.copies.len() {
            return Err(Error::invalid(
                "destination",
                format!(
                    "is {}, but the policy has {} copy destinations; pass an index of policy.copies",
                    self.destination,
                    self.policy.copies.len()
                ),
            ));
        }
        Ok(())
    }
}

/// Counts of a destination's copies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyCounts {
    /// Recovery points whose copy this execution started.
    pub started: usize,
    /// Recovery points whose copy an earlier execution had made (re-run).
    pub reused: usize,
    /// Recovery points shared with the destination's account instead of
    /// copied (Redshift to a vault: AWS copies no Redshift snapshot across
    /// accounts); counted in `completed` too.
    #[serde(default)]
    pub shared: usize,
    pub completed: usize,
    pub failed: usize,
    pub in_flight: usize,
    pub waiting: usize,
}

/// One pass's answer: the state machine loops while `remaining` > 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyPassOutput {
    pub destination: usize,
    pub location: Location,
    pub counts: CopyCounts,
    /// Copy units still in flight or waiting.
    pub remaining: usize,
    /// Passes so far.
    pub passes: usize,
    pub poll_seconds: u32,
    pub wait_seconds: u32,
    /// The destination's state file (every job, unit and error).
    pub state: S3Object,
}

/// A copy found at the destination, by its `strongroom:copy-of` tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundCopy {
    /// The snapshot it copies (the tag's value).
    pub copy_of: String,
    pub id: String,
    pub state: RecoveryPointState,
    /// Its `strongroom:run`.
    pub execution: String,
}

/// What the destination holds: this run's copies, and every Strongroom copy
/// in flight there (any policy, any run) per limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyLookup {
    pub found: Vec<FoundCopy>,
    pub in_flight: BTreeMap<CopyLimit, usize>,
}

/// A source snapshot, as the copy needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSnapshot {
    pub id: String,
    /// Its name where the kind has one (DB snapshot identifier, AMI name):
    /// the copy gets the same.
    pub name: String,
    /// The ARN (DB snapshots: what the destination's copy call names).
    pub arn: String,
    pub tags: Tags,
    /// The KMS keys it is encrypted with (ARNs): none when unencrypted, an
    /// AMI's the keys of its snapshots.
    pub kms_keys: Vec<String>,
    /// That key is AWS managed (`aws/ebs`, `aws/rds`): it cannot be shared.
    pub aws_managed_key: bool,
}

/// One copy to start at the destination.
#[derive(Debug, Clone)]
pub struct StartCopy<'a> {
    /// The unit's kind (EBS snapshot for instance set members).
    pub kind: RecoveryPointKind,
    pub source: &'a SourceSnapshot,
    pub source_location: &'a Location,
    pub destination: &'a Location,
    /// Deterministic name where the kind has one (DB snapshot identifier).
    pub name: String,
    pub kms_key: &'a str,
    /// The full tag set, applied at creation.
    pub tags: Tags,
}

/// What copies need from a cloud besides creating and refreshing points.
pub trait Copies: Send + Sync {
    /// The destination's copies of `run` and the copies in flight there.
    fn find_copies(
        &self,
        destination: &Location,
        run: &RunKey,
        kinds: &[RecoveryPointKind],
    ) -> impl std::future::Future<Output = Result<CopyLookup, CloudError>> + Send;

    /// The snapshots `ids` (all of `kind`) at `location`, with their tags
    /// and keys; with `key_managers`, whether each key is AWS managed (one
    /// question per key). One left out is gone.
    fn describe_sources(
        &self,
        location: &Location,
        kind: RecoveryPointKind,
        ids: &[String],
        key_managers: bool,
    ) -> impl std::future::Future<Output = Result<Vec<SourceSnapshot>, CloudError>> + Send;

    /// Shares `ids` (of `kind`, at `location`) with `account`, or (`add`
    /// false) stops sharing them.
    fn set_shared(
        &self,
        location: &Location,
        kind: RecoveryPointKind,
        ids: &[String],
        account: &str,
        add: bool,
    ) -> impl std::future::Future<Output = Result<(), CloudError>> + Send;

    /// Lets `grantee` (the vault's copy role, in `account`) use the key
    /// `key` (an ARN, in its own account and region) to copy what it
    /// encrypts; returns the grant's id.
    fn grant(
        &self,
        key: &str,
        grantee: &str,
        account: &str,
    ) -> impl std::future::Future<Output = Result<String, CloudError>> + Send;

    /// Revokes a grant [`Copies::grant`] made.
    fn revoke(
        &self,
        key: &str,
        grant_id: &str,
    ) -> impl std::future::Future<Output = Result<(), CloudError>> + Send;

    /// Starts a copy; returns its id and state. A destination at its limit
    /// of copies in flight answers `NotReady` (wait); `QuotaExceeded` is a
    /// quota that waiting does not lift (the manual snapshot count).
    fn start_copy(
        &self,
        request: &StartCopy<'_>,
    ) -> impl std::future::Future<Output = Result<(String, RecoveryPointState), CloudError>> + Send;

    /// Locks EBS snapshots at `location`.
    fn lock(
        &self,
        location: &Location,
        ids: &[String],
        lock: &SnapshotLock,
    ) -> impl std::future::Future<Output = Result<(), CloudError>> + Send;
}

/// Writes, for every copy that has all its ids, the record of its source
/// under the copy's id and location, so that a restore from the copy finds
/// what the backup recorded. A source without a record has none to copy; a
/// failed read or write is tried again on the next pass.
async fn record_copies<C: ObjectStore>(state: &mut CopyState, cloud: &C, bucket: &str) {
    use crate::restore::settings::{record_key, RecoveryPointRecord};
    let location = state.location.clone();
    for job in &mut state.jobs {
        if job.recorded || job.is_share(&location) {
            continue;
        }
        let copy_id = if job.point.kind.facts().snapshots == crate::kind::Snapshots::Members
            && job.point.kind.facts().copy == CopyMethod::EbsSnapshots
        {
            // A set's copy is a set of the same instance and time.
            job.units
                .iter()
                .all(|u| u.copy.is_some())
                .then(|| job.point.id.clone())
        } else {
            job.units.first().and_then(|u| u.copy.clone())
        };
        let Some(copy_id) = copy_id else { continue };
        let source = S3Object {
            bucket: bucket.to_owned(),
            key: record_key(&job.point.location, &job.point.id),
        };
        let record = match cloud.get_object(&source).await {
            Ok(body) => match serde_json::from_slice::<RecoveryPointRecord>(&body) {
                Ok(r) => r,
                Err(_) => {
                    job.recorded = true;
                    continue;
                }
            },
            Err(e) if e.kind == ErrorKind::NotFound => {
                job.recorded = true;
                continue;
            }
            Err(_) => continue,
        };
        let copy = record.for_copy(&copy_id, &location);
        let object = S3Object {
            bucket: bucket.to_owned(),
            key: record_key(&location, &copy_id),
        };
        let body = serde_json::to_vec_pretty(&copy).expect("a record serializes");
        if cloud.put_object(&object, body).await.is_ok() {
            job.recorded = true;
        }
    }
}

/// The key of a destination's state file.
pub fn state_key(files: &RunFiles, destination: usize) -> String {
    format!("{}copies/{destination}.json", files.prefix)
}

/// The tags of a copy: the source snapshot's own (contract and customer
/// tags alike, `aws:` keys left out), with this execution as `strongroom:run`
/// and `strongroom:copy-of` naming the snapshot copied.
pub fn copy_tags(source: &SourceSnapshot, job: &CopyJob, run: &RunKey) -> Tags {
    let charset = job.unit_kind().facts().tag_charset;
    let mut t: Tags = source
        .tags
        .iter()
        .filter(|(k, _)| !k.to_ascii_lowercase().starts_with("aws:"))
        .filter(|(k, _)| k.as_str() != tags::DELETING && k.as_str() != tags::HOLD)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // The contract's tags come from the recovery point, whatever the
    // snapshot's say.
    let p = &job.point;
    t.insert(tags::MANAGED.into(), "true".into());
    t.insert(tags::POLICY.into(), run.policy.clone());
    t.insert(tags::SOURCE.into(), p.source.clone());
    t.insert(tags::SOURCE_REGION.into(), p.location.region.clone());
    t.insert(tags::SOURCE_ACCOUNT.into(), p.location.account.clone());
    t.insert(tags::CREATED_AT.into(), format_time(p.created_at));
    t.insert(tags::KIND.into(), p.kind.facts().tag.into());
    t.insert(
        tags::RUN.into(),
        tags::fit_tag_value(&run.execution, charset),
    );
    t.insert(
        tags::COPY_OF.into(),
        tags::fit_tag_value(&copy_of(job, &source.id), charset),
    );
    // AWS's 50-tag limit: drop customer tags (never the contract's) beyond it.
    while t.len() > tags::MAX_TAGS {
        let extra = t
            .keys()
            .rev()
            .find(|k| !k.starts_with(tags::PREFIX))
            .cloned();
        match extra {
            Some(k) => t.remove(&k),
            None => break,
        };
    }
    t
}

/// What `strongroom:copy-of` names for the snapshot `source` of `job`:
/// the ARN of a DB or cluster snapshot (their identifiers are names, unique
/// only per account and region), the id of an EBS snapshot or AMI.
pub fn copy_of(job: &CopyJob, source: &str) -> String {
    match job.point.kind.facts().copy {
        CopyMethod::DbSnapshot => db_snapshot_arn(&job.point, source),
        CopyMethod::ClusterConfigured => cluster_snapshot_arn(&job.point, source),
        _ => source.to_owned(),
    }
}

/// The ARN of the Redshift snapshot `id` of the point's cluster:
/// `arn:<partition>:redshift:<region>:<account>:snapshot:<cluster>/<id>`.
pub fn cluster_snapshot_arn(point: &RecoveryPoint, id: &str) -> String {
    let cluster = point.source.rsplit(':').next().unwrap_or_default();
    format!(
        "arn:{}:redshift:{}:{}:snapshot:{cluster}/{id}",
        crate::backup::discover::partition_of(&point.location.region),
        point.location.region,
        point.location.account
    )
}

/// How long a copy the service makes itself may take to appear at the
/// destination before it is reported failed.
pub const CLUSTER_COPY_DEADLINE: time::Duration = time::Duration::hours(24);

/// Where a cluster (Redshift) copies its new snapshots, as the snapshot stage
/// configures it before creating one: the policy's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCopy {
    pub region: String,
    /// The destination key, for the snapshot copy grant of an encrypted cluster.
    pub kms_key: String,
}

impl ClusterCopy {
    /// The destination a policy's kind `kind` is copied to by its service:
    /// its one same-account destination, if the kind is copied that way.
    pub fn for_kind(policy: &Policy, kind: RecoveryPointKind) -> Option<Self> {
        if kind.facts().copy != CopyMethod::ClusterConfigured {
            return None;
        }
        policy
            .copies
            .iter()
            .find(|d| d.account.is_none())
            .map(|d| Self {
                region: d.region.clone(),
                kms_key: d.kms_key.clone(),
            })
    }
}

/// A copy's deterministic name: the source's, cut to leave room, and a
/// stable hash of what it copies (its ARN), so that sources of the same name
/// in two regions or accounts do not meet at one destination.
pub fn copy_name(source_name: &str, source_key: &str, max_len: usize) -> String {
    let hash = format!("{:016x}", tags::fnv1a(source_key.as_bytes()));
    let head: String = source_name
        .chars()
        .take(max_len.saturating_sub(11))
        .collect();
    format!("{}-{}", head.trim_end_matches('-'), &hash[..10])
}

/// Reads the completed recovery points of the snapshot stage, oldest first,
/// as copy jobs (those at `destination` itself left out).
async fn first_state<S: ObjectStore>(
    req: &CopyRequest,
    destination: &Location,
    store: &S,
) -> Result<CopyState, Error> {
    let batches = crate::report::read_batches(store, &req.files, &req.snapshots).await?;
    let mut points: Vec<RecoveryPoint> = batches
        .into_iter()
        .filter_map(|b| match b {
            crate::report::BatchOutcome::Done(r) => Some(r.results),
            crate::report::BatchOutcome::Failed(_) => None,
        })
        .flatten()
        .filter_map(|t| t.recovery_point)
        .filter(|p| p.state == RecoveryPointState::Completed && p.location != *destination)
        .filter(|p| CopyLimit::of(p.kind).is_some())
        .collect();
    points.sort_by(|a, b| {
        (a.created_at, &a.location, &a.id).cmp(&(b.created_at, &b.location, &b.id))
    });
    points.dedup_by(|a, b| a.id == b.id && a.location == b.location);
    Ok(CopyState {
        run: req.run.clone(),
        destination: req.destination,
        location: destination.clone(),
        jobs: points.into_iter().map(CopyJob::new).collect(),
        grants: Vec::new(),
        started_at: None,
        passes: Vec::new(),
    })
}

/// One pass of a destination's copy loop (see the module's documentation).
/// Nothing is shared or copied before the request and the destination
/// validate; a recovery point whose key cannot be shared fails alone, before
/// anything of it is shared.
pub async fn copy_pass<C>(
    req: CopyRequest,
    cloud: &C,
    now: OffsetDateTime,
) -> Result<CopyPassOutput, Error>
where
    C: Copies + RecoveryPoints + ObjectStore + crate::ports::Identity,
{
    req.validate(now)?;
    let dest = &req.policy.copies[req.destination];
    let home = cloud.home_account().await?;
    let location = dest.location(&home);
    let mut roles = req.policy.accounts.clone();
    if let Some(r) = dest.copy_role() {
        roles.retain(|a| a.account != r.account);
        roles.push(r);
    }
    crate::ports::Identity::use_roles(cloud, &roles);

    let object = req.files.object(&state_key(&req.files, req.destination));
    let mut state = match cloud.get_object(&object).await {
        Ok(body) => serde_json::from_slice::<CopyState>(&body).map_err(|e| {
            Error::Internal(format!("{object} is not what Strongroom wrote there: {e}"))
        })?,
        Err(e) if e.kind == ErrorKind::NotFound => first_state(&req, &location, cloud).await?,
        Err(e) => return Err(e.into()),
    };
    if state.run != req.run || state.location != location {
        return Err(Error::invalid(
            "destination",
            format!("{object} holds the copies of another run or destination"),
        ));
    }

    let kinds: Vec<RecoveryPointKind> = state
        .jobs
        .iter()
        .filter(|j| !j.is_share(&state.location))
        .map(CopyJob::unit_kind)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !state.jobs.is_empty() {
        // The destination's first call: a vault role that cannot be assumed
        // fails the pass here, before anything is shared or copied.
        let lookup = cloud
            .find_copies(&location, &req.run, &kinds)
            .await
            .map_err(|mut e| {
                e.message = format!(
                    "policy.copies[{}] ({location}): {}",
                    req.destination, e.message
                );
                e
            })?;
        let mut in_flight = lookup.in_flight.clone();
        adopt_found(&mut state, &lookup, &req.run);
        refresh_in_flight(&mut state, cloud, &location, dest.lock.is_some()).await?;
        // Ours in flight that the listing did not show yet count too.
        let listed: BTreeSet<&str> = lookup.found.iter().map(|f| f.id.as_str()).collect();
        for job in &state.jobs {
            let Some(limit) = job.limit() else { continue };
            for u in &job.units {
                if u.state == UnitState::InFlight
                    && !u.copy.as_deref().is_some_and(|c| listed.contains(c))
                {
                    *in_flight.entry(limit).or_insert(0) += 1;
                }
            }
        }
        // Listed copies that the refresh found complete no longer count.
        for job in &state.jobs {
            let Some(limit) = job.limit() else { continue };
            for u in &job.units {
                let was_listed_pending = u.copy.as_deref().is_some_and(|c| {
                    lookup
                        .found
                        .iter()
                        .any(|f| f.id == c && f.state == RecoveryPointState::Pending)
                });
                if was_listed_pending && u.state != UnitState::InFlight {
                    if let Some(n) = in_flight.get_mut(&limit) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
        }
        finish_jobs(&mut state, cloud, dest).await;
        let started = start_planned(&mut state, cloud, &req, dest, &mut in_flight).await?;
        record_copies(&mut state, cloud, &req.files.bucket).await;
        // A copy the service makes itself that never appeared.
        let since = *state.started_at.get_or_insert(now);
        if now - since > CLUSTER_COPY_DEADLINE {
            for job in &mut state.jobs {
                if job.point.kind.facts().copy == CopyMethod::ClusterConfigured
                    && job.units.iter().any(|u| u.state == UnitState::Waiting)
                {
                    job.fail_waiting(ErrorReport::new(
                        ErrorKind::NotFound,
                        format!(
                            "no copy of {} appeared in {} within 24 hours: check the cluster's cross-region snapshot copy",
                            job.point.id, state.location
                        ),
                    ));
                }
            }
        }
        let mut record: BTreeMap<CopyLimit, PassRecord> = BTreeMap::new();
        for job in &state.jobs {
            let Some(limit) = job.limit() else { continue };
            let r = record.entry(limit).or_default();
            r.waiting += job
                .units
                .iter()
                .filter(|u| u.state == UnitState::Waiting)
                .count();
        }
        for (limit, n) in &in_flight {
            record.entry(*limit).or_default().in_flight = *n;
        }
        for (limit, n) in started {
            record.entry(limit).or_default().started = n;
        }
        state.passes.push(record);
    }

    let counts = counts(&state);
    let remaining = state
        .jobs
        .iter()
        .flat_map(|j| &j.units)
        .filter(|u| matches!(u.state, UnitState::Waiting | UnitState::InFlight))
        .count()
        + state
            .jobs
            .iter()
            .filter(|j| {
                j.shared
                    && !j.unshared
                    && j.finished()
                    && j.error.is_none()
                    && !j.is_share(&state.location)
            })
            .count()
        + state.grants.iter().filter(|g| !g.revoked).count()
        // Completed copies still to lock (a lock that failed for good has
        // its error and is not waited for).
        + if dest.lock.is_some() {
            state
                .jobs
                .iter()
                .filter(|j| {
                    matches!(
                        j.point.kind.facts().copy,
                        CopyMethod::EbsSnapshots | CopyMethod::Image
                    )
                })
                .flat_map(|j| &j.units)
                .filter(|u| u.state == UnitState::Completed && !u.locked && u.error.is_none())
                .count()
        } else {
            0
        };
    let body = serde_json::to_vec(&state).map_err(|e| Error::Internal(e.to_string()))?;
    let started_now = state
        .passes
        .last()
        .is_some_and(|p| p.values().any(|r| r.started > 0));
    match cloud.put_object(&object, body).await {
        Ok(()) => {}
        // Copies were started: a retry of this pass could not see them yet
        // (copies without a client token) and start them again. The loop
        // fails instead, naming what happened; a re-run of the schedule
        // finds the copies by their tags.
        Err(e) if started_now => {
            return Err(Error::Internal(format!(
                "policy.copies[{}] ({location}): copies were started but their state could not be written to {object}: {e}; the copies go on, and a re-run of this scheduled time finds them",
                req.destination
            )))
        }
        Err(e) => return Err(e.into()),
    }
    let wait_seconds = crate::backup::snapshot::next_wait(req.wait_seconds, req.poll_seconds);
    Ok(CopyPassOutput {
        destination: req.destination,
        location,
        counts,
        remaining,
        passes: state.passes.len(),
        poll_seconds: req.poll_seconds,
        wait_seconds,
        state: object,
    })
}

/// Copies the destination already holds for waiting units: made by an
/// earlier pass whose answer was lost, or by an earlier execution.
fn adopt_found(state: &mut CopyState, lookup: &CopyLookup, run: &RunKey) {
    // Of several copies of one snapshot, the most advanced: completed, then
    // pending, then failed.
    let rank = |s: RecoveryPointState| match s {
        RecoveryPointState::Completed => 0,
        RecoveryPointState::Pending => 1,
        RecoveryPointState::Failed => 2,
    };
    let mut by_source: BTreeMap<&str, &FoundCopy> = BTreeMap::new();
    for f in &lookup.found {
        let better = by_source
            .get(f.copy_of.as_str())
            .is_none_or(|g| rank(f.state) < rank(g.state));
        if better {
            by_source.insert(f.copy_of.as_str(), f);
        }
    }
    let cross_account = |job: &CopyJob| job.point.location.account != state.location.account;
    let crosses: Vec<bool> = state.jobs.iter().map(cross_account).collect();
    for (job, crosses) in state.jobs.iter_mut().zip(crosses) {
        let charset = job.unit_kind().facts().tag_charset;
        let mine = tags::fit_tag_value(&run.execution, charset);
        let keys: Vec<String> = job.units.iter().map(|u| copy_of(job, &u.source)).collect();
        let ebs = job.point.kind.facts().copy == CopyMethod::EbsSnapshots;
        let mut adopted = false;
        for (u, key) in job.units.iter_mut().zip(keys) {
            if u.state != UnitState::Waiting {
                continue;
            }
            if let Some(f) = by_source.get(tags::fit_tag_value(&key, charset).as_str()) {
                // A failed EBS copy is made again (a new id); the named
                // kinds' failed copy holds its name, so it is reported.
                if f.state == RecoveryPointState::Failed && ebs {
                    continue;
                }
                adopted = true;
                u.copy = Some(f.id.clone());
                u.reused = f.execution != mine;
                u.state = match f.state {
                    RecoveryPointState::Pending => UnitState::InFlight,
                    RecoveryPointState::Completed => UnitState::Completed,
                    RecoveryPointState::Failed => UnitState::Failed,
                };
                if u.state == UnitState::Failed {
                    u.error = Some(ErrorReport::new(
                        ErrorKind::Internal,
                        format!("the copy {} at the destination failed", f.id),
                    ));
                }
            }
        }
        // Its source was shared for it (by an earlier pass whose state was
        // lost, say): unshared once the job is done.
        if adopted && crosses {
            job.shared = true;
        }
    }
}

/// The ARN of a DB or cluster snapshot named `id` at the point's location.
pub fn db_snapshot_arn(point: &RecoveryPoint, id: &str) -> String {
    let resource = if point.kind == RecoveryPointKind::AuroraSnapshot {
        "cluster-snapshot"
    } else {
        "snapshot"
    };
    format!(
        "arn:{}:rds:{}:{}:{resource}:{id}",
        crate::backup::discover::partition_of(&point.location.region),
        point.location.region,
        point.location.account
    )
}

/// The fresh state of every unit in flight (one refresh per kind).
async fn refresh_in_flight<C: RecoveryPoints>(
    state: &mut CopyState,
    cloud: &C,
    location: &Location,
    locking: bool,
) -> Result<(), Error> {
    let mut probes = Vec::new();
    for job in &state.jobs {
        for u in &job.units {
            // Also a completed AMI copy to lock whose snapshots are not known yet.
            let unlocked_image = locking
                && u.state == UnitState::Completed
                && !u.locked
                && u.copy_snapshots.is_empty()
                && job.point.kind.facts().copy == CopyMethod::Image;
            if u.state != UnitState::InFlight && !unlocked_image {
                continue;
            }
            if let Some(copy) = &u.copy {
                probes.push(RecoveryPoint {
                    id: copy.clone(),
                    kind: job.unit_kind(),
                    members: vec![],
                    ..job.point.clone()
                });
            }
        }
    }
    if probes.is_empty() {
        return Ok(());
    }
    let probes: Vec<RecoveryPoint> = probes
        .into_iter()
        .map(|p| RecoveryPoint {
            location: location.clone(),
            ..p
        })
        .collect();
    let fresh = cloud
        .refresh(location, &probes)
        .await
        .map_err(Error::from)?;
    let by_id: BTreeMap<&str, RecoveryPointState> =
        fresh.iter().map(|p| (p.id.as_str(), p.state)).collect();
    for job in &mut state.jobs {
        for u in &mut job.units {
            let Some(copy) = &u.copy else { continue };
            if let Some(p) = fresh.iter().find(|p| &p.id == copy) {
                if !p.members.is_empty() {
                    u.copy_snapshots = p.members.clone();
                }
            }
            if u.state != UnitState::InFlight {
                continue;
            }
            match by_id.get(copy.as_str()) {
                Some(RecoveryPointState::Completed) => u.state = UnitState::Completed,
                Some(RecoveryPointState::Failed) => {
                    u.state = UnitState::Failed;
                    u.error = Some(ErrorReport::new(
                        ErrorKind::Internal,
                        format!(
                            "the copy {copy} failed at the destination (see its state message)"
                        ),
                    ));
                }
                Some(RecoveryPointState::Pending) => {}
                None => {
                    u.state = UnitState::Failed;
                    u.error = Some(ErrorReport::new(
                        ErrorKind::NotFound,
                        format!("the copy {copy} is gone from the destination"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Locks completed EBS copies (when asked) and unshares the sources of
/// finished cross-account jobs. A failure is recorded on the job; a
/// retryable one is tried again next pass.
async fn finish_jobs<C: Copies>(state: &mut CopyState, cloud: &C, dest: &CopyDestination) {
    let location = state.location.clone();
    let grantee = dest.role_arn.as_deref().unwrap_or_default();
    if let Some(lock) = &dest.lock {
        // EBS copies themselves; an AMI copy's snapshots.
        let ids: Vec<String> = state
            .jobs
            .iter()
            .flat_map(|j| j.units.iter().map(move |u| (j, u)))
            .filter(|(_, u)| u.state == UnitState::Completed && !u.locked)
            .flat_map(|(j, u)| match j.point.kind.facts().copy {
                CopyMethod::EbsSnapshots => u.copy.clone().into_iter().collect(),
                CopyMethod::Image => u.copy_snapshots.clone(),
                _ => Vec::new(),
            })
            .collect();
        if !ids.is_empty() {
            match cloud.lock(&location, &ids, lock).await {
                Ok(()) => {
                    for u in state.jobs.iter_mut().flat_map(|j| &mut j.units) {
                        if u.copy.as_ref().is_some_and(|c| ids.contains(c))
                            || (!u.copy_snapshots.is_empty()
                                && u.copy_snapshots.iter().all(|c| ids.contains(c)))
                        {
                            u.locked = true;
                        }
                    }
                }
                // Throttled: the next pass locks them (the loop waits for it).
                Err(e) if e.kind.is_retryable() => {}
                Err(e) => {
                    for u in state.jobs.iter_mut().flat_map(|j| &mut j.units) {
                        if u.copy.as_ref().is_some_and(|c| ids.contains(c))
                            || u.copy_snapshots.iter().any(|c| ids.contains(c))
                        {
                            u.error = Some(ErrorReport::from(&e));
                        }
                    }
                }
            }
        }
    }
    for job in &mut state.jobs {
        if !job.shared || job.unshared || !job.finished() || job.is_share(&location) {
            continue;
        }
        let ids: Vec<String> = job.units.iter().map(|u| u.source.clone()).collect();
        match cloud
            .set_shared(
                &job.point.location,
                job.unit_kind(),
                &ids,
                &location.account,
                false,
            )
            .await
        {
            Ok(()) => job.unshared = true,
            Err(e) if e.kind.is_retryable() => {}
            Err(e) => job.error = Some(ErrorReport::from(&e)),
        }
    }
    // Grants last while any copy may still need them, the waiting ones too.
    let needed = state
        .jobs
        .iter()
        .flat_map(|j| &j.units)
        .any(|u| matches!(u.state, UnitState::Waiting | UnitState::InFlight));
    if !needed {
        // A job shared by a pass whose state was lost has its grant made but
        // not recorded: learn its keys, and ask KMS for the grant again
        // (CreateGrant with the same name and parameters answers the
        // existing grant), so that it is revoked too.
        let unknown: BTreeSet<usize> = state
            .jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.shared && j.keys.is_none())
            .map(|(i, _)| i)
            .collect();
        if !unknown.is_empty() {
            if let Ok(described) = describe_planned(state, cloud, &unknown).await {
                for (j, sources) in described {
                    if let Ok(sources) = sources {
                        state.jobs[j].keys =
                            Some(sources.iter().flat_map(|s| s.kms_keys.clone()).collect());
                    }
                }
            }
        }
        let keys: BTreeSet<String> = state
            .jobs
            .iter()
            .filter(|j| j.shared && !j.is_share(&location))
            .filter_map(|j| j.keys.clone())
            .flatten()
            .collect();
        for key in keys {
            if state.grants.iter().any(|g| g.key == key) {
                continue;
            }
            if let Ok(id) = cloud.grant(&key, grantee, &location.account).await {
                state.grants.push(KeyGrant {
                    key,
                    grant_id: id,
                    revoked: false,
                });
            }
        }
        for g in state.grants.iter_mut().filter(|g| !g.revoked) {
            match cloud.revoke(&g.key, &g.grant_id).await {
                Ok(()) => g.revoked = true,
                Err(e) if e.kind.is_retryable() => {}
                Err(e) => {
                    // Left for a person to revoke: said in every job it served.
                    g.revoked = true;
                    for job in state.jobs.iter_mut().filter(|j| j.shared) {
                        job.error.get_or_insert(ErrorReport::new(
                            e.kind,
                            format!(
                                "the grant {} on {} could not be revoked: {e}",
                                g.grant_id, g.key
                            ),
                        ));
                    }
                }
            }
        }
    }
}

/// What a pass learnt of the sources it is about to copy: by job, each
/// snapshot's tags and key, or why the job cannot go on.
type Described = BTreeMap<usize, Result<Vec<SourceSnapshot>, ErrorReport>>;

/// One `describe_sources` per source location and kind for every job the
/// pass starts (KMS is asked whether keys are AWS managed only for copies to
/// another account, the only ones it matters for).
async fn describe_planned<C: Copies>(
    state: &CopyState,
    cloud: &C,
    jobs: &BTreeSet<usize>,
) -> Result<Described, Error> {
    let mut groups: BTreeMap<(Location, RecoveryPointKind), Vec<usize>> = BTreeMap::new();
    for &j in jobs {
        let job = &state.jobs[j];
        groups
            .entry((job.point.location.clone(), job.unit_kind()))
            .or_default()
            .push(j);
    }
    let mut out = Described::new();
    for ((location, kind), members) in groups {
        let ids: Vec<String> = members
            .iter()
            .flat_map(|&j| state.jobs[j].units.iter().map(|u| u.source.clone()))
            .collect();
        let cross_account = location.account != state.location.account;
        let found = match cloud
            .describe_sources(&location, kind, &ids, cross_account)
            .await
        {
            Ok(f) => f,
            Err(e) if e.kind.is_retryable() => continue,
            Err(e) => {
                for j in members {
                    out.insert(j, Err(ErrorReport::from(&e)));
                }
                continue;
            }
        };
        let by_id: BTreeMap<&str, &SourceSnapshot> =
            found.iter().map(|s| (s.id.as_str(), s)).collect();
        for j in members {
            let job = &state.jobs[j];
            let mut sources = Vec::new();
            let mut missing = None;
            for u in &job.units {
                match by_id.get(u.source.as_str()) {
                    Some(s) => sources.push((*s).clone()),
                    None => missing = Some(u.source.clone()),
                }
            }
            out.insert(
                j,
                match missing {
                    None => Ok(sources),
                    Some(m) => Err(ErrorReport::new(
                        ErrorKind::NotFound,
                        format!(
                            "snapshot {m} of recovery point {} is gone from {}",
                            job.point.id, job.point.location
                        ),
                    )),
                },
            );
        }
    }
    Ok(out)
}

/// Why a copy to another account cannot be made from `sources`, if it cannot.
fn cross_account_refusal(
    req: &CopyRequest,
    job: &CopyJob,
    sources: &[SourceSnapshot],
    destination: &Location,
) -> Option<ErrorReport> {
    if let Some(s) = sources.iter().find(|s| s.aws_managed_key) {
        return Some(ErrorReport::new(
            ErrorKind::InvalidInput,
            format!(
                "policy.copies[{}]: {} is encrypted with the AWS managed key {}, which AWS does not let another account use; encrypt the source with a customer-managed key (a volume's or database's key is chosen at its creation, or copy it once with one) so it can be copied to the vault account {}",
                req.destination,
                s.id,
                s.kms_keys.join(", "),
                destination.account
            ),
        ));
    }
    if job.unit_kind() == RecoveryPointKind::AuroraSnapshot
        && destination.region != job.point.location.region
        && sources.iter().any(|s| !s.kms_keys.is_empty())
    {
        return Some(ErrorReport::new(
            ErrorKind::InvalidInput,
            format!(
                "policy.copies[{}]: Aurora cannot copy an encrypted cluster snapshot shared by another account to another region in one step; copy to the vault in {} (the source's region), or to {} within the source account",
                req.destination, job.point.location.region, destination.region
            ),
        ));
    }
    None
}

/// Starts what the planner allows; returns how many per limit.
async fn start_planned<C: Copies>(
    state: &mut CopyState,
    cloud: &C,
    req: &CopyRequest,
    dest: &CopyDestination,
    in_flight: &mut BTreeMap<CopyLimit, usize>,
) -> Result<BTreeMap<CopyLimit, usize>, Error> {
    let planned = plan(&state.jobs, in_flight);
    let mut started: BTreeMap<CopyLimit, usize> = BTreeMap::new();
    let mut by_job: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (j, u) in planned {
        by_job.entry(j).or_default().push(u);
    }
    let location = state.location.clone();
    let jobs: BTreeSet<usize> = by_job.keys().copied().collect();
    let mut described = describe_planned(state, cloud, &jobs).await?;
    let grantee = dest.role_arn.clone().unwrap_or_default();
    let mut full: BTreeSet<CopyLimit> = BTreeSet::new();
    for (j, units) in by_job {
        let Some(limit) = state.jobs[j].limit() else {
            continue;
        };
        if full.contains(&limit) {
            continue;
        }
        let sources = match described.remove(&j) {
            // Throttled: the next pass tries again.
            None => continue,
            Some(Err(e)) => {
                state.jobs[j].fail_waiting(e);
                continue;
            }
            Some(Ok(s)) => s,
        };
        let kind = state.jobs[j].unit_kind();
        state.jobs[j].keys = Some(sources.iter().flat_map(|s| s.kms_keys.clone()).collect());
        let cross_account = location.account != state.jobs[j].point.location.account;
        if cross_account && !state.jobs[j].shared {
            if let Some(e) = cross_account_refusal(req, &state.jobs[j], &sources, &location) {
                state.jobs[j].fail_waiting(e);
                continue;
            }
            // Redshift to a vault: the share is the result (no copy call,
            // no grant: restoring in the vault needs the key's own policy).
            if state.jobs[j].is_share(&location) {
                let ids: Vec<String> = sources.iter().map(|s| s.id.clone()).collect();
                let point_location = state.jobs[j].point.location.clone();
                match cloud
                    .set_shared(&point_location, kind, &ids, &location.account, true)
                    .await
                {
                    Ok(()) => {
                        let job = &mut state.jobs[j];
                        job.shared = true;
                        for u in &mut job.units {
                            u.copy = Some(u.source.clone());
                            u.state = UnitState::Completed;
                        }
                    }
                    Err(e) if e.kind.is_retryable() => {}
                    Err(e) => state.jobs[j].fail_waiting(ErrorReport::from(&e)),
                }
                continue;
            }
            // The vault's copy role may use each source key, by one grant per key.
            let mut refused = None;
            for key in sources
                .iter()
                .flat_map(|s| s.kms_keys.iter().map(String::as_str))
            {
                if state.grants.iter().any(|g| g.key == key && !g.revoked) {
                    continue;
                }
                match cloud.grant(key, &grantee, &location.account).await {
                    Ok(id) => state.grants.push(KeyGrant {
                        key: key.to_owned(),
                        grant_id: id,
                        revoked: false,
                    }),
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            match refused {
                Some(e) if e.kind.is_retryable() => continue,
                Some(e) => {
                    state.jobs[j].fail_waiting(ErrorReport::from(&e));
                    continue;
                }
                None => {}
            }
            let ids: Vec<String> = sources.iter().map(|s| s.id.clone()).collect();
            let point_location = state.jobs[j].point.location.clone();
            match cloud
                .set_shared(&point_location, kind, &ids, &location.account, true)
                .await
            {
                Ok(()) => state.jobs[j].shared = true,
                Err(e) => {
                    // Whatever was shared is unshared before the job fails.
                    let _ = cloud
                        .set_shared(&point_location, kind, &ids, &location.account, false)
                        .await;
                    if !e.kind.is_retryable() {
                        state.jobs[j].fail_waiting(ErrorReport::from(&e));
                    }
                    continue;
                }
            }
        }
        let by_id: BTreeMap<&str, &SourceSnapshot> =
            sources.iter().map(|s| (s.id.as_str(), s)).collect();
        let job = &mut state.jobs[j];
        for u in units {
            let source = by_id[job.units[u].source.as_str()];
            let name = match (kind.facts().name_rules, kind.facts().copy) {
                // Database identifiers are names: one source's may equal
                // another region's or account's at a shared destination.
                (Some(rules), CopyMethod::DbSnapshot) => {
                    copy_name(&source.name, &copy_of(job, &source.id), rules.max_len)
                }
                (Some(_), _) => source.name.clone(),
                (None, _) => String::new(),
            };
            let request = StartCopy {
                kind,
                source,
                source_location: &job.point.location,
                destination: &location,
                name,
                kms_key: &dest.kms_key,
                tags: copy_tags(source, job, &req.run),
            };
            match cloud.start_copy(&request).await {
                Ok((id, s)) => {
                    let unit = &mut job.units[u];
                    unit.copy = Some(id);
                    unit.state = match s {
                        RecoveryPointState::Completed => UnitState::Completed,
                        RecoveryPointState::Pending => UnitState::InFlight,
                        RecoveryPointState::Failed => UnitState::Failed,
                    };
                    *started.entry(limit).or_insert(0) += 1;
                    if unit.state == UnitState::InFlight {
                        *in_flight.entry(limit).or_insert(0) += 1;
                    }
                }
                // A copy the service has not made yet: this one waits, the
                // others go on.
                Err(e)
                    if e.kind == ErrorKind::NotReady
                        && kind.facts().copy == CopyMethod::ClusterConfigured =>
                {
                    break;
                }
                // The destination is at its limit (copies Strongroom could
                // not see), or throttled: the rest waits for the next pass.
                Err(e) if e.kind == ErrorKind::NotReady || e.kind.is_retryable() => {
                    full.insert(limit);
                    break;
                }
                // An answer lost: the next pass's lookup finds the copy by its tags.
                Err(e) if e.unconfirmed => {
                    full.insert(limit);
                    break;
                }
                Err(e) => {
                    let unit = &mut job.units[u];
                    unit.state = UnitState::Failed;
                    unit.error = Some(ErrorReport::from(&e));
                }
            }
        }
    }
    Ok(started)
}

fn counts(state: &CopyState) -> CopyCounts {
    let mut c = CopyCounts::default();
    for job in &state.jobs {
        let reused = job.units.iter().all(|u| u.reused) && !job.units.is_empty();
        let started = job.units.iter().any(|u| u.copy.is_some() && !u.reused);
        if job.is_share(&state.location) {
            if job.shared {
                c.shared += 1;
            }
        } else if reused {
            c.reused += 1;
        } else if started {
            c.started += 1;
        }
        match job.state() {
            UnitState::Completed => c.completed += 1,
            UnitState::Failed => c.failed += 1,
            UnitState::InFlight => c.in_flight += 1,
            UnitState::Waiting => c.waiting += 1,
        }
    }
    c
}

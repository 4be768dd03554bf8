//! Ports: what the use cases need from a cloud, shaped like the domain.
//! `strongroom-aws` implements them over the AWS SDK; `crate::fake` in memory
//! (feature `test-support`).

use std::future::Future;

use crate::error::CloudError;
use crate::model::{
    Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState, ResourceType, Tags, Target,
};
use crate::policy::{AccountRole, Ec2Options};
use crate::prune::DeletionPermit;
use crate::quota::{Quota, QuotaLimits, QuotaUsage};
use crate::runs::S3Object;
use crate::tags::RunKey;

/// A source found in a region, with the location (account) it lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundSource {
    pub location: Location,
    pub target: Target,
}

/// Whose credentials the functions run with.
pub trait Identity: Send + Sync {
    /// The account of the function's own credentials: the policy's home
    /// account, whose regions it protects (other accounts are reached by role).
    fn home_account(&self) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// The platform knows the home account without a call (on Lambda, the
    /// invoked function's ARN names it: an execution role lives in its
    /// function's account) and tells it here, so that `home_account` need not
    /// ask. Ignored by default.
    fn learn_home_account(&self, _account: &str) {}

    /// The roles to assume in other accounts (the policy's `accounts`).
    /// Ignored by default.
    fn use_roles(&self, _accounts: &[AccountRole]) {}

    /// The active accounts under an AWS Organizations unit or root, those of
    /// every unit below it included, in the order listed. A listing cut short
    /// is an error. By default there is no organization to ask: an error.
    fn accounts_under(
        &self,
        unit: &str,
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send {
        let e = CloudError::new(
            crate::ErrorKind::Internal,
            "ListAccountsForParent",
            unit,
            "-",
            "this cloud has no AWS Organizations to list",
        );
        async move { Err(e) }
    }
}

/// Finds sources by type and tags.
pub trait Inventory: Identity {
    /// Every resource of one of `types` at `location` that carries all of `tags`
    /// (server-side filtered), with all of its tags. A listing cut short is an error.
    fn find_sources(
        &self,
        location: &Location,
        types: &[ResourceType],
        tags: &Tags,
    ) -> impl Future<Output = Result<Vec<FoundSource>, CloudError>> + Send;

    /// How much of each of `quotas` is used at `location`, and its size:
    /// from the service where it reports both (RDS), otherwise by counting
    /// and with `limits` or AWS's default as the size.
    fn quota_usage(
        &self,
        location: &Location,
        quotas: &[Quota],
        limits: &QuotaLimits,
    ) -> impl Future<Output = Result<Vec<QuotaUsage>, CloudError>> + Send;
}

/// What one snapshot call should make.
#[derive(Debug, Clone)]
pub struct CreateRequest<'a> {
    /// The kind of recovery point to make ([`RecoveryPointKind::for_source`]).
    pub kind: RecoveryPointKind,
    pub location: &'a Location,
    pub target: &'a Target,
    pub run: &'a RunKey,
    /// Deterministic name (RDS / Aurora / Redshift identifier, AMI name).
    pub name: String,
    /// The full tag set, applied at creation.
    pub tags: Tags,
    pub ec2: &'a Ec2Options,
    /// A kind its service copies (Redshift): the destination to configure
    /// before the snapshot, so that it is copied.
    pub cluster_copy: Option<crate::copy::ClusterCopy>,
    /// The source's settings, when the batch's describe found them: an
    /// instance set tags each member with its device from here.
    pub settings: Option<&'a crate::restore::settings::SourceSettings>,
}

impl CreateRequest<'_> {
    /// The recovery point this request makes, once it has an id and a state.
    pub fn point(
        &self,
        id: String,
        members: Vec<String>,
        state: RecoveryPointState,
    ) -> RecoveryPoint {
        RecoveryPoint {
            id,
            kind: self.kind,
            members,
            resource_type: self.target.resource_type,
            source: self.target.source_ref().to_owned(),
            location: self.location.clone(),
            created_at: self.run.scheduled_time,
            state,
        }
    }
}

/// The result of a create: the recovery point, and whether it was there already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub recovery_point: RecoveryPoint,
    /// True when the deterministic name already existed, made for this
    /// policy, source and time by another execution (a re-run). One that this
    /// execution's earlier attempt made counts as created.
    pub existed: bool,
}

/// A recovery point the run lookup found, with the execution that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPoint {
    pub point: RecoveryPoint,
    /// Its `strongroom:run` tag (empty when missing).
    pub execution: String,
}

/// Creates and inspects recovery points.
pub trait RecoveryPoints: Send + Sync {
    /// The roles to assume in other accounts. Ignored by default.
    fn use_roles(&self, _accounts: &[AccountRole]) {}

    /// The EBS snapshots and instance snapshot sets that `run`'s policy already
    /// made for `run.scheduled_time` at `location` (the idempotency lookup for
    /// the kinds whose identifiers AWS chooses), one per source. One listing
    /// for the whole location.
    fn find_run_snapshots(
        &self,
        location: &Location,
        run: &RunKey,
    ) -> impl Future<Output = Result<Vec<RunPoint>, CloudError>> + Send;

    /// The AMIs that `run`'s policy made for `run.scheduled_time` at
    /// `location`, one per source: how the completion checks find an AMI
    /// whose create answer was lost (AWS picks AMI ids).
    fn find_run_amis(
        &self,
        location: &Location,
        run: &RunKey,
    ) -> impl Future<Output = Result<Vec<RunPoint>, CloudError>> + Send;

    /// What a restore of each of `targets` (all at `location`) needs that
    /// its recovery point will not carry, by `strongroom:source`: at most one
    /// describe per type. Sources not found are left out. By default, nothing.
    fn describe_settings(
        &self,
        _location: &Location,
        _targets: &[Target],
    ) -> impl Future<
        Output = Result<
            std::collections::BTreeMap<String, crate::restore::settings::SourceSettings>,
            CloudError,
        >,
    > + Send {
        async { Ok(std::collections::BTreeMap::new()) }
    }

    /// Creates the recovery point, tagged at creation. Where the identifier is
    /// deterministic and exists already, returns it (`existed`) after checking
    /// that it belongs to the same policy and source; otherwise an error.
    fn create(
        &self,
        request: &CreateRequest<'_>,
    ) -> impl Future<Output = Result<Created, CloudError>> + Send;

    /// The current state of `points`, all at `location`: at most one describe
    /// per kind. Points that no longer exist are left out of the answer.
    fn refresh(
        &self,
        location: &Location,
        points: &[RecoveryPoint],
    ) -> impl Future<Output = Result<Vec<RecoveryPoint>, CloudError>> + Send;
}

/// A recovery point as a location's listing found it, with the facts the
/// safety invariants of [`crate::prune`] need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPoint {
    pub point: RecoveryPoint,
    pub tags: Tags,
    /// The account that owns it.
    pub owner: String,
    /// EBS Snapshot Lock on it (or on any of its snapshots).
    pub locked: bool,
    /// AMIs, other than the recovery point itself, that use any of its snapshots.
    pub used_by_amis: Vec<String>,
    /// Its deletion began and stopped half way (a snapshot carries
    /// `strongroom:deleting`): prune finishes it.
    pub deleting: bool,
    /// The accounts (or `all`) that may restore it; `None` until asked
    /// ([`Pruning::shared_with`]), except where the listing tells (Redshift).
    pub shared_with: Option<Vec<String>>,
    /// Accounts the policy itself shares it with (a Redshift snapshot shared
    /// with a vault destination): not a reason to keep it; prune takes their
    /// access back before deleting it. Set by prune, never by a listing.
    pub revocable_shares: Vec<String>,
    /// For an instance snapshot set: each member's `strongroom:device`.
    pub devices: std::collections::BTreeMap<String, String>,
    /// Its size (GiB): a volume's, the sum of a set's or an AMI's volumes,
    /// a database's allocated storage; `None` where AWS does not say.
    pub size_gib: Option<u64>,
}

/// A recovery point of the policy whose `strongroom:created-at` is missing or
/// not a time: it is never planned nor deleted, and prune reports it as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadablePoint {
    pub id: String,
    pub kind: RecoveryPointKind,
    pub source: String,
    /// The `strongroom:created-at` value as found (empty when missing).
    pub created_at: String,
}

/// What a location's listing returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    pub points: Vec<ListedPoint>,
    pub unreadable: Vec<UnreadablePoint>,
}

/// Lists and deletes recovery points at a location.
pub trait Pruning: Identity {
    /// Every recovery point tagged with `policy` at `location`, of every kind,
    /// complete: a listing that cannot be completed is an error.
    fn list(
        &self,
        location: &Location,
        policy: &str,
    ) -> impl Future<Output = Result<Listed, CloudError>> + Send;

    /// Who besides the owner may restore `point` (account ids, `all` when
    /// public): asked only of points about to be deleted.
    fn shared_with(
        &self,
        point: &RecoveryPoint,
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;

    /// Deletes a recovery point (an AMI: deregistered with its snapshots in
    /// one call; what a deregistered AMI left: snapshot by snapshot).
    fn delete(
        &self,
        permit: &DeletionPermit,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// Reads and writes the run's files in S3 (the stack's bucket).
pub trait ObjectStore: Send + Sync {
    /// Writes `body` as `object` (replacing it).
    fn put_object(
        &self,
        object: &S3Object,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The contents of `object`; `NotFound` when there is none.
    fn get_object(
        &self,
        object: &S3Object,
    ) -> impl Future<Output = Result<Vec<u8>, CloudError>> + Send;
}

//! One module per kind of recovery point, each implementing [`KindAdapter`]:
//! everything Strongroom does to a kind through the SDK lives in its module,
//! and [`with_adapter`] is the only place that chooses a module by kind.
//!
//! Adding a kind means a module here, a row in `strongroom_core::kind`, and
//! an arm in [`with_adapter`].

pub(crate) mod ami;
pub(crate) mod aurora;
mod db;
pub(crate) mod ebs;
pub(crate) mod instance_set;
pub(crate) mod rds;
pub(crate) mod redshift;

use std::collections::HashMap;

use strongroom_core::copy::{FoundCopy, SourceSnapshot, StartCopy};
use strongroom_core::listing::Listing;
use strongroom_core::listing::Scope;
use strongroom_core::model::{RecoveryPoint, RecoveryPointState};
use strongroom_core::ports::{CreateRequest, Created};
use strongroom_core::tags::RunKey;
use strongroom_core::CloudError;

use crate::clients::LocationClients;

pub(crate) use ami::run_images;
pub(crate) use ebs::{lock_snapshots, locked_snapshots, run_lookup, snapshot_states};

/// EBS snapshot id -> state at one location, fetched once per completion
/// check for every kind whose points are EBS snapshots or sets of them.
pub(crate) type SnapshotStates = HashMap<String, RecoveryPointState>;

/// The error of a copy call on a kind that is not copied (the policy's
/// validation refuses such policies first).
pub(crate) fn not_copied(kind: &str, op: &'static str, cx: &LocationClients) -> CloudError {
    CloudError::new(
        strongroom_core::ErrorKind::Internal,
        op,
        kind,
        cx.region_name(),
        format!("Strongroom does not copy {kind} recovery points"),
    )
}

/// This run's copies at a destination, and how many Strongroom copies
/// (any policy, any run) are in flight there.
pub(crate) type DestinationCopies = (Vec<FoundCopy>, usize);

/// What Strongroom does to one kind of recovery point at one location.
/// (Restore joins with its stage.)
pub(crate) trait KindAdapter {
    /// Makes this run's recovery point of `req.target`, tagged at creation;
    /// for deterministic names, finds the one a previous attempt made.
    async fn create(
        &self,
        cx: &LocationClients,
        req: &CreateRequest<'_>,
    ) -> Result<Created, CloudError>;

    /// The EBS snapshots whose states [`KindAdapter::refresh`] reads from
    /// `snapshots` (described once for all kinds at the location).
    fn snapshot_ids(&self, _point: &RecoveryPoint) -> Vec<String> {
        Vec::new()
    }

    /// The fresh state of `points` (all of this kind): one describe per
    /// chunk of ids, or the prefetched `snapshots`. Points AWS no longer
    /// knows are left out.
    async fn refresh(
        &self,
        cx: &LocationClients,
        points: &[&RecoveryPoint],
        snapshots: &SnapshotStates,
    ) -> Result<Vec<RecoveryPoint>, CloudError>;

    /// What this kind's listing for prune returns, complete or an error.
    async fn list(&self, cx: &LocationClients, scope: Scope<'_>) -> Result<Listing, CloudError>;

    /// Who besides the owner may restore the point: account ids, `all` when
    /// public (asked only of points about to be deleted).
    async fn shared_with(
        &self,
        cx: &LocationClients,
        point: &RecoveryPoint,
    ) -> Result<Vec<String>, CloudError>;

    /// Deletes the recovery point (only ever called with a deletion permit).
    async fn delete(&self, cx: &LocationClients, point: &RecoveryPoint) -> Result<(), CloudError>;

    /// At a copy destination: `run`'s copies of this kind, and the count of
    /// Strongroom copies of this kind in flight there.
    async fn find_copies(
        &self,
        cx: &LocationClients,
        _run: &RunKey,
    ) -> Result<DestinationCopies, CloudError> {
        Err(not_copied("this kind of", "FindCopies", cx))
    }

    /// The snapshots `ids` with their tags and keys (`aws_managed_key` is
    /// left false: KMS answers that).
    async fn describe_sources(
        &self,
        cx: &LocationClients,
        _ids: &[String],
    ) -> Result<Vec<SourceSnapshot>, CloudError> {
        Err(not_copied("this kind of", "DescribeSources", cx))
    }

    /// Shares `ids` with `account` (`add`), or stops sharing them.
    async fn set_shared(
        &self,
        cx: &LocationClients,
        _ids: &[String],
        _account: &str,
        _add: bool,
    ) -> Result<(), CloudError> {
        Err(not_copied("this kind of", "Share", cx))
    }

    /// Starts a copy at the destination `cx`; a destination at its limit of
    /// copies in flight is `NotReady`.
    async fn start_copy(
        &self,
        cx: &LocationClients,
        _req: &StartCopy<'_>,
    ) -> Result<(String, RecoveryPointState), CloudError> {
        Err(not_copied("this kind of", "Copy", cx))
    }
}

/// Evaluates `$body` with `$a` bound to the module of `$kind`: the only
/// place that chooses a module by kind. Async bodies end in `.boxed()`: the
/// arms' futures differ in type, and each kind's SDK futures are deep types
/// that callers need not carry.
macro_rules! with_adapter {
    ($kind:expr, |$a:ident| $body:expr) => {{
        use strongroom_core::model::RecoveryPointKind as K;
        use $crate::kinds::KindAdapter as _;
        match $kind {
            K::EbsSnapshot => {
                let $a = &$crate::kinds::ebs::Ebs;
                $body
            }
            K::Ec2SnapshotSet => {
                let $a = &$crate::kinds::instance_set::InstanceSet;
                $body
            }
            K::Ami => {
                let $a = &$crate::kinds::ami::Ami;
                $body
            }
            K::RdsSnapshot => {
                let $a = &$crate::kinds::rds::Rds;
                $body
            }
            K::AuroraSnapshot => {
                let $a = &$crate::kinds::aurora::Aurora;
                $body
            }
            K::RedshiftSnapshot => {
                let $a = &$crate::kinds::redshift::Redshift;
                $body
            }
        }
    }};
}
pub(crate) use with_adapter;

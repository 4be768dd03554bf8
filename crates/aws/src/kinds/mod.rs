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

use strongroom_core::listing::Listing;
use strongroom_core::model::{RecoveryPoint, RecoveryPointState};
use strongroom_core::ports::{CreateRequest, Created};
use strongroom_core::CloudError;

use crate::clients::LocationClients;

pub(crate) use ami::run_images;
pub(crate) use ebs::{locked_snapshots, run_lookup, snapshot_states};

/// EBS snapshot id -> state at one location, fetched once per completion
/// check for every kind whose points are EBS snapshots or sets of them.
pub(crate) type SnapshotStates = HashMap<String, RecoveryPointState>;

/// What Strongroom does to one kind of recovery point at one location.
/// (Copy and restore join with their stages.)
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
    async fn list(&self, cx: &LocationClients, policy: &str) -> Result<Listing, CloudError>;

    /// Who besides the owner may restore the point: account ids, `all` when
    /// public (asked only of points about to be deleted).
    async fn shared_with(
        &self,
        cx: &LocationClients,
        point: &RecoveryPoint,
    ) -> Result<Vec<String>, CloudError>;

    /// Deletes the recovery point (only ever called with a deletion permit).
    async fn delete(&self, cx: &LocationClients, point: &RecoveryPoint) -> Result<(), CloudError>;
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

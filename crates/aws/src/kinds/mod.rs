//! One module per kind of recovery point, each implementing [`KindAdapter`]:
//! everything Strongroom does to a kind through the SDK lives in its module,
//! and [`adapter`] is the only place that chooses a module by kind.
//!
//! Adding a kind means a module here, a row in `strongroom_core::kind`, and
//! an arm in [`adapter`].

mod ami;
mod aurora;
mod ebs;
mod instance_set;
mod rds;
mod redshift;

use futures::future::BoxFuture;
use strongroom_core::listing::Listing;
use strongroom_core::model::{RecoveryPoint, RecoveryPointKind};
use strongroom_core::ports::{CreateRequest, Created};
use strongroom_core::CloudError;

use crate::clients::LocationClients;

pub(crate) use ebs::{locked_snapshots, run_lookup};

/// What Strongroom does to one kind of recovery point at one location.
/// (Copy and restore join with their stages.)
pub(crate) trait KindAdapter: Sync {
    /// Makes this run's recovery point of `req.target`, tagged at creation;
    /// for deterministic names, finds the one a previous attempt made.
    fn create<'a>(
        &'a self,
        cx: &'a LocationClients,
        req: &'a CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<Created, CloudError>>;

    /// The fresh state of `points` (all of this kind): one describe per
    /// chunk of ids. Points AWS no longer knows are left out.
    fn refresh<'a>(
        &'a self,
        cx: &'a LocationClients,
        points: &'a [&'a RecoveryPoint],
    ) -> BoxFuture<'a, Result<Vec<RecoveryPoint>, CloudError>>;

    /// What this kind's listing for prune returns, complete or an error.
    fn list<'a>(
        &'a self,
        cx: &'a LocationClients,
        policy: &'a str,
    ) -> BoxFuture<'a, Result<Listing, CloudError>>;

    /// Deletes the recovery point (only ever called with a deletion permit).
    fn delete<'a>(
        &'a self,
        cx: &'a LocationClients,
        point: &'a RecoveryPoint,
    ) -> BoxFuture<'a, Result<(), CloudError>>;
}

/// The module of a kind.
pub(crate) fn adapter(kind: RecoveryPointKind) -> &'static dyn KindAdapter {
    match kind {
        RecoveryPointKind::EbsSnapshot => &ebs::Ebs,
        RecoveryPointKind::Ec2SnapshotSet => &instance_set::InstanceSet,
        RecoveryPointKind::Ami => &ami::Ami,
        RecoveryPointKind::RdsSnapshot => &rds::Rds,
        RecoveryPointKind::AuroraSnapshot => &aurora::Aurora,
        RecoveryPointKind::RedshiftSnapshot => &redshift::Redshift,
    }
}

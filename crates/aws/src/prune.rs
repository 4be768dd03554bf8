//! The [`Pruning`] port: every kind's listing at a location, assembled into
//! recovery points by the core, and deletion by the module of each kind.
//!
//! Listings are paged at the largest page each API serves; any page that
//! fails fails the whole location: nothing is pruned from a partial view.

use futures::FutureExt;
use strongroom_core::listing::{assemble, Listing, Scope};
use strongroom_core::model::{Location, RecoveryPoint, RecoveryPointKind};
use strongroom_core::ports::{Listed, Pruning};
use strongroom_core::prune::DeletionPermit;
use strongroom_core::CloudError;

use crate::kinds::{locked_snapshots, with_adapter};
use crate::AwsCloud;

impl Pruning for AwsCloud {
    async fn list(&self, location: &Location, policy: &str) -> Result<Listed, CloudError> {
        let cx = self.clients.for_location(location).await?;
        let listings = futures::future::join_all(
            RecoveryPointKind::ALL
                .map(|k| with_adapter!(k, |a| a.list(&cx, Scope::Policy(policy)).boxed())),
        )
        .await;
        let mut listing = Listing::default();
        for l in listings {
            listing.merge(l?);
        }
        let ids = listing.snapshot_ids(policy);
        if !ids.is_empty() {
            listing.locked = Box::pin(locked_snapshots(&cx, &ids)).await?;
        }
        Ok(assemble(location, policy, listing))
    }

    async fn shared_with(&self, point: &RecoveryPoint) -> Result<Vec<String>, CloudError> {
        let cx = self.clients.for_location(&point.location).await?;
        with_adapter!(point.kind, |a| a.shared_with(&cx, point).boxed()).await
    }

    async fn delete(&self, permit: &DeletionPermit) -> Result<(), CloudError> {
        let p = permit.point();
        let cx = self.clients.for_location(&p.location).await?;
        // The policy's own shares first (a Redshift snapshot shared with a
        // vault): AWS refuses to delete what others may restore.
        for account in permit.unshare() {
            let ids = std::slice::from_ref(&p.id);
            with_adapter!(p.kind, |a| a.set_shared(&cx, ids, account, false).boxed()).await?;
        }
        with_adapter!(p.kind, |a| a.delete(&cx, p).boxed()).await
    }
}

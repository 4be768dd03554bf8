//! The [`RecoveryPoints`] port: each call goes to the module of the kind it
//! is about (`crate::kinds`).

use std::collections::BTreeMap;

use futures::FutureExt;
use strongroom_core::model::{Location, RecoveryPoint, RecoveryPointKind};
use strongroom_core::policy::AccountRole;
use strongroom_core::ports::{CreateRequest, Created, RecoveryPoints, RunPoint};
use strongroom_core::tags::RunKey;
use strongroom_core::CloudError;

use crate::kinds::{run_images, run_lookup, snapshot_states, with_adapter};
use crate::AwsCloud;

impl RecoveryPoints for AwsCloud {
    fn use_roles(&self, accounts: &[AccountRole]) {
        self.set_roles(accounts);
    }

    async fn find_run_snapshots(
        &self,
        location: &Location,
        run: &RunKey,
    ) -> Result<Vec<RunPoint>, CloudError> {
        Box::pin(run_lookup(&self.clients.for_location(location).await?, run)).await
    }

    async fn find_run_amis(
        &self,
        location: &Location,
        run: &RunKey,
    ) -> Result<Vec<RunPoint>, CloudError> {
        Box::pin(run_images(&self.clients.for_location(location).await?, run)).await
    }

    async fn describe_settings(
        &self,
        location: &Location,
        targets: &[strongroom_core::model::Target],
    ) -> Result<BTreeMap<String, strongroom_core::restore::settings::SourceSettings>, CloudError>
    {
        let cx = self.clients.for_location(location).await?;
        Box::pin(crate::settings::describe(&cx, targets)).await
    }

    async fn create(&self, req: &CreateRequest<'_>) -> Result<Created, CloudError> {
        let cx = self.clients.for_location(req.location).await?;
        with_adapter!(req.kind, |a| a.create(&cx, req).boxed()).await
    }

    async fn refresh(
        &self,
        location: &Location,
        points: &[RecoveryPoint],
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        let cx = self.clients.for_location(location).await?;
        let mut by_kind: BTreeMap<RecoveryPointKind, Vec<&RecoveryPoint>> = BTreeMap::new();
        for p in points {
            by_kind.entry(p.kind).or_default().push(p);
        }
        // One describe of the EBS snapshots every kind needs, not one per kind.
        let ids: Vec<String> = by_kind
            .iter()
            .flat_map(|(kind, points)| {
                points
                    .iter()
                    .flat_map(move |p| with_adapter!(*kind, |a| a.snapshot_ids(p)))
            })
            .collect();
        let snapshots = if ids.is_empty() {
            Default::default()
        } else {
            Box::pin(snapshot_states(&cx, &ids)).await?
        };
        let mut fresh = Vec::new();
        for (kind, points) in by_kind {
            fresh.extend(
                with_adapter!(kind, |a| a.refresh(&cx, &points, &snapshots).boxed()).await?,
            );
        }
        Ok(fresh)
    }
}

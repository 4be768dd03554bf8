//! The [`RecoveryPoints`] port: each call goes to the module of the kind it
//! is about (`crate::kinds`).

use std::collections::BTreeMap;

use strongroom_core::model::{Location, RecoveryPoint, RecoveryPointKind};
use strongroom_core::ports::{CreateRequest, Created, RecoveryPoints};
use strongroom_core::tags::RunKey;
use strongroom_core::CloudError;

use crate::kinds::{adapter, run_lookup};
use crate::AwsCloud;

impl RecoveryPoints for AwsCloud {
    async fn find_run_snapshots(
        &self,
        location: &Location,
        run: &RunKey,
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        run_lookup(&self.clients.for_location(location).await?, run).await
    }

    async fn create(&self, req: &CreateRequest<'_>) -> Result<Created, CloudError> {
        let cx = self.clients.for_location(req.location).await?;
        adapter(req.kind).create(&cx, req).await
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
        let mut fresh = Vec::new();
        for (kind, points) in by_kind {
            fresh.extend(adapter(kind).refresh(&cx, &points).await?);
        }
        Ok(fresh)
    }
}

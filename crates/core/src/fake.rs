//! In-memory implementations of the ports, used by the core's tests and by
//! anyone who wants to exercise the use cases without a cloud.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use crate::error::{CloudError, ErrorKind};
use crate::kind::{Idempotency, Snapshots};
use crate::model::{
    format_time, Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState, ResourceType, Tags,
};
use crate::policy::AccountRole;
use crate::ports::{
    CreateRequest, Created, FoundSource, Identity, Inventory, Listed, ListedPoint, ObjectStore,
    Pruning, RecoveryPoints, RunPoint,
};
use crate::prune::DeletionPermit;
use crate::quota::{Quota, QuotaLimits, QuotaUsage};
use crate::runs::S3Object;
use crate::tags::{RunKey, CREATED_AT, MANAGED, POLICY, RUN, SOURCE};

/// A recovery point as the fake cloud stores it.
#[derive(Debug, Clone)]
pub struct StoredPoint {
    pub point: RecoveryPoint,
    pub name: String,
    pub tags: Tags,
    /// Owning account (the fake's own account unless a test says otherwise).
    pub owner: String,
    pub locked: bool,
    pub used_by_amis: Vec<String>,
    /// Its deletion began (`strongroom:deleting`).
    pub deleting: bool,
    /// Accounts it is shared with.
    pub shared_with: Vec<String>,
}

/// The account the fake cloud's credentials belong to.
pub const FAKE_ACCOUNT: &str = "123456789012";

/// A whole fake cloud: sources, recovery points, injected failures, call counts.
#[derive(Debug, Default)]
pub struct MemoryCloud {
    pub sources: RwLock<Vec<FoundSource>>,
    pub points: RwLock<Vec<StoredPoint>>,
    /// Target id -> error kind that `create` fails with.
    pub fail_create: RwLock<BTreeMap<String, ErrorKind>>,
    /// Target id -> error kind and the resource the error is about, for
    /// failures of a call about something other than the source.
    pub fail_create_as: RwLock<BTreeMap<String, (ErrorKind, String)>>,
    /// Region -> error kind that `find_sources` fails with.
    pub fail_region: RwLock<BTreeMap<String, ErrorKind>>,
    /// Account -> error kind every call about it fails with (an account
    /// whose role cannot be assumed).
    pub fail_account: RwLock<BTreeMap<String, ErrorKind>>,
    /// The roles the use cases asked for.
    pub roles_used: RwLock<Vec<AccountRole>>,
    /// State new recovery points start in.
    pub initial_state: RwLock<Option<RecoveryPointState>>,
    /// Regions whose prune listing fails.
    pub fail_list: RwLock<BTreeMap<String, ErrorKind>>,
    /// Make `list` return every point at the location, not just the policy's
    /// (a careless listing: the invariants must still hold).
    pub list_everything: std::sync::atomic::AtomicBool,
    pub deleted: RwLock<Vec<String>>,
    /// Target ids whose create makes the point but loses the answer (an
    /// unconfirmed error, as after a timeout or a server error).
    pub lose_answer: RwLock<BTreeSet<String>>,
    /// The run lookup fails (throttled).
    pub fail_lookup: std::sync::atomic::AtomicBool,
    /// New recovery points are invisible to lookups and refreshes until
    /// [`MemoryCloud::reveal`] (EC2's eventual consistency).
    pub hide_new: std::sync::atomic::AtomicBool,
    hidden: RwLock<BTreeSet<String>>,
    /// What `quota_usage` answers: used and max per quota (default 0 of AWS's default).
    pub quota_usage: RwLock<BTreeMap<Quota, (u64, u64)>>,
    pub lookups: AtomicUsize,
    pub sharing_checks: AtomicUsize,
    pub creates: AtomicUsize,
    pub refreshes: AtomicUsize,
    /// AWS Organizations: unit or root -> the accounts under it (an absent
    /// unit is not found).
    pub organization: RwLock<BTreeMap<String, Vec<String>>>,
    /// The bucket's objects, by bucket and key.
    pub objects: RwLock<BTreeMap<S3Object, Vec<u8>>>,
    /// Writes to the bucket fail with this kind.
    pub fail_put: RwLock<Option<ErrorKind>>,
    /// Snapshot or point id -> the KMS key it is encrypted with, and
    /// whether that key is AWS managed.
    pub keys: RwLock<BTreeMap<String, (String, bool)>>,
    /// KMS grants made: (key, grant id, grantee).
    pub grants: RwLock<Vec<(String, String, String)>>,
    /// Copies started, and the most in flight at once per destination.
    pub copy_starts: AtomicUsize,
    pub peak_copies: RwLock<BTreeMap<Location, usize>>,
    /// The id of every snapshot ever shared with another account.
    pub ever_shared: RwLock<BTreeSet<String>>,
    /// Calls of `describe_sources`, and grants made.
    pub source_describes: AtomicUsize,
    pub grants_made: AtomicUsize,
    next_id: AtomicUsize,
}

impl MemoryCloud {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_source(&self, found: FoundSource) {
        self.sources.write().unwrap().push(found);
    }

    /// Moves every pending recovery point to `state`.
    pub fn settle(&self, state: RecoveryPointState) {
        for p in self.points.write().unwrap().iter_mut() {
            if p.point.state == RecoveryPointState::Pending {
                p.point.state = state;
            }
        }
    }

    /// Makes every hidden recovery point visible.
    pub fn reveal(&self) {
        self.hidden.write().unwrap().clear();
    }

    fn visible(&self, id: &str) -> bool {
        !self.hidden.read().unwrap().contains(id)
    }

    /// The object `key` of `bucket`, parsed as JSON.
    pub fn object_json(&self, bucket: &str, key: &str) -> Option<serde_json::Value> {
        let objects = self.objects.read().unwrap();
        let body = objects.get(&S3Object {
            bucket: bucket.into(),
            key: key.into(),
        })?;
        Some(serde_json::from_slice(body).expect("a JSON object"))
    }

    pub fn stored(&self) -> Vec<StoredPoint> {
        self.points.read().unwrap().clone()
    }

    fn err(kind: ErrorKind, op: &'static str, res: &str, region: &str) -> CloudError {
        CloudError::new(kind, op, res, region, "injected failure").with_code("Injected")
    }
}

impl Identity for MemoryCloud {
    async fn home_account(&self) -> Result<String, CloudError> {
        Ok(FAKE_ACCOUNT.to_owned())
    }

    fn use_roles(&self, accounts: &[AccountRole]) {
        self.roles_used
            .write()
            .unwrap()
            .extend(accounts.iter().cloned());
    }

    async fn accounts_under(&self, unit: &str) -> Result<Vec<String>, CloudError> {
        self.organization
            .read()
            .unwrap()
            .get(unit)
            .cloned()
            .ok_or_else(|| {
                CloudError::new(
                    ErrorKind::NotFound,
                    "ListAccountsForParent",
                    unit,
                    "-",
                    "You specified a container that doesn't exist.",
                )
                .with_code("ParentNotFoundException")
            })
    }
}

impl Inventory for MemoryCloud {
    async fn find_sources(
        &self,
        location: &Location,
        types: &[ResourceType],
        tags: &Tags,
    ) -> Result<Vec<FoundSource>, CloudError> {
        let region = location.region.as_str();
        if let Some(kind) = self.fail_region.read().unwrap().get(region) {
            return Err(Self::err(*kind, "GetResources", "-", region));
        }
        if let Some(kind) = self.fail_account.read().unwrap().get(&location.account) {
            return Err(Self::err(*kind, "AssumeRole", &location.account, region));
        }
        Ok(self
            .sources
            .read()
            .unwrap()
            .iter()
            .filter(|s| s.location == *location)
            .filter(|s| types.contains(&s.target.resource_type))
            .filter(|s| tags.iter().all(|(k, v)| s.target.tags.get(k) == Some(v)))
            .cloned()
            .collect())
    }

    async fn quota_usage(
        &self,
        _location: &Location,
        quotas: &[Quota],
        limits: &QuotaLimits,
    ) -> Result<Vec<QuotaUsage>, CloudError> {
        Ok(self.usage(quotas, limits))
    }
}

impl MemoryCloud {
    fn usage(&self, quotas: &[Quota], limits: &QuotaLimits) -> Vec<QuotaUsage> {
        let set = self.quota_usage.read().unwrap();
        quotas
            .iter()
            .map(|q| {
                let (used, max) = set.get(q).copied().unwrap_or((0, q.aws_default()));
                let max = match q {
                    Quota::EbsSnapshots => limits.ebs_snapshots.unwrap_or(max),
                    Quota::RedshiftManualSnapshots => {
                        limits.redshift_manual_snapshots.unwrap_or(max)
                    }
                    _ => max,
                };
                QuotaUsage {
                    quota: *q,
                    used,
                    max,
                }
            })
            .collect()
    }
}

impl RecoveryPoints for MemoryCloud {
    async fn find_run_snapshots(
        &self,
        location: &Location,
        run: &RunKey,
    ) -> Result<Vec<RunPoint>, CloudError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.fail_lookup.load(Ordering::SeqCst) {
            return Err(Self::err(
                ErrorKind::Throttled,
                "DescribeSnapshots",
                "-",
                &location.region,
            ));
        }
        Ok(self
            .points
            .read()
            .unwrap()
            .iter()
            .filter(|p| &p.point.location == location)
            .filter(|p| self.visible(&p.point.id))
            .filter(|p| p.point.kind.facts().idempotency == Idempotency::RunLookup)
            .filter(|p| p.tags.get(POLICY) == Some(&run.policy))
            .filter(|p| p.tags.get(CREATED_AT) == Some(&format_time(run.scheduled_time)))
            .filter(|p| p.tags.get(MANAGED).map(String::as_str) == Some("true"))
            .map(|p| RunPoint {
                point: p.point.clone(),
                execution: p.tags.get(RUN).cloned().unwrap_or_default(),
            })
            .collect())
    }

    async fn find_run_amis(
        &self,
        location: &Location,
        run: &RunKey,
    ) -> Result<Vec<RunPoint>, CloudError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .points
            .read()
            .unwrap()
            .iter()
            .filter(|p| &p.point.location == location && p.point.kind == RecoveryPointKind::Ami)
            .filter(|p| self.visible(&p.point.id))
            .filter(|p| p.tags.get(POLICY) == Some(&run.policy))
            .filter(|p| p.tags.get(CREATED_AT) == Some(&format_time(run.scheduled_time)))
            .map(|p| RunPoint {
                point: p.point.clone(),
                execution: p.tags.get(RUN).cloned().unwrap_or_default(),
            })
            .collect())
    }

    async fn create(&self, req: &CreateRequest<'_>) -> Result<Created, CloudError> {
        self.creates.fetch_add(1, Ordering::SeqCst);
        let t = req.target;
        if let Some(kind) = self.fail_create.read().unwrap().get(&t.id) {
            return Err(Self::err(*kind, "Create", &t.id, &req.location.region));
        }
        if let Some((kind, resource)) = self.fail_create_as.read().unwrap().get(&t.id) {
            return Err(Self::err(*kind, "Create", resource, &req.location.region));
        }
        let facts = req.kind.facts();
        let deterministic = facts.idempotency == Idempotency::DeterministicName;
        let mut points = self.points.write().unwrap();
        if deterministic {
            if let Some(p) = points
                .iter()
                .find(|p| p.name == req.name && p.point.location == *req.location)
            {
                if p.tags.get(SOURCE) != req.tags.get(SOURCE)
                    || p.tags.get(POLICY) != req.tags.get(POLICY)
                {
                    return Err(CloudError::new(
                        ErrorKind::Internal,
                        "Create",
                        &req.name,
                        &req.location.region,
                        "name taken by a recovery point of another source or policy",
                    ));
                }
                let ours = req
                    .run
                    .made_by_this_execution(p.tags.get(RUN).map_or("", String::as_str), req.kind);
                return Ok(Created {
                    recovery_point: p.point.clone(),
                    existed: !ours,
                });
            }
        }
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        // Ids the way AWS picks them: snapshot ids, AMI ids, or our names.
        let (id, members) = match (facts.idempotency, facts.snapshots) {
            (Idempotency::RunLookup, Snapshots::Members) => (
                RecoveryPoint::instance_set_id(&t.id, req.run.scheduled_time),
                vec![format!("snap-{n:08x}a"), format!("snap-{n:08x}b")],
            ),
            (Idempotency::RunLookup, _) => (format!("snap-{n:08x}"), vec![]),
            (Idempotency::DeterministicName, Snapshots::Members) => {
                (format!("ami-{n:08x}"), vec![])
            }
            (Idempotency::DeterministicName, _) => (req.name.clone(), vec![]),
        };
        let state = self
            .initial_state
            .read()
            .unwrap()
            .unwrap_or(RecoveryPointState::Pending);
        let point = req.point(id, members, state);
        if self.hide_new.load(Ordering::SeqCst) {
            self.hidden.write().unwrap().insert(point.id.clone());
        }
        points.push(StoredPoint {
            point: point.clone(),
            name: req.name.clone(),
            tags: req.tags.clone(),
            owner: FAKE_ACCOUNT.to_owned(),
            locked: false,
            used_by_amis: vec![],
            deleting: false,
            shared_with: vec![],
        });
        if self.lose_answer.read().unwrap().contains(&t.id) {
            return Err(
                Self::err(ErrorKind::Throttled, "Create", &t.id, &req.location.region)
                    .with_code("InternalError")
                    .unconfirmed(),
            );
        }
        Ok(Created {
            recovery_point: point,
            existed: false,
        })
    }

    async fn refresh(
        &self,
        location: &Location,
        points: &[RecoveryPoint],
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let stored = self.points.read().unwrap();
        Ok(points
            .iter()
            .filter_map(|p| {
                stored
                    .iter()
                    .filter(|s| self.visible(&s.point.id))
                    .find(|s| s.point.id == p.id && &s.point.location == location)
                    .map(|s| s.point.clone())
            })
            .collect())
    }
}

impl Pruning for MemoryCloud {
    async fn list(&self, location: &Location, policy: &str) -> Result<Listed, CloudError> {
        if let Some(kind) = self.fail_list.read().unwrap().get(&location.region) {
            return Err(Self::err(*kind, "DescribeSnapshots", "-", &location.region));
        }
        let everything = self.list_everything.load(Ordering::SeqCst);
        let points = self
            .points
            .read()
            .unwrap()
            .iter()
            .filter(|p| p.point.location == *location)
            .filter(|p| {
                everything
                    || (p.tags.get(POLICY).map(String::as_str) == Some(policy)
                        && p.tags.get(MANAGED).map(String::as_str) == Some("true"))
            })
            .map(|p| ListedPoint {
                point: p.point.clone(),
                tags: p.tags.clone(),
                owner: p.owner.clone(),
                locked: p.locked,
                used_by_amis: p.used_by_amis.clone(),
                deleting: p.deleting,
                shared_with: None,
                revocable_shares: Vec::new(),
                devices: Default::default(),
                size_gib: None,
            })
            .collect();
        Ok(Listed {
            points,
            unreadable: vec![],
        })
    }

    async fn shared_with(&self, point: &RecoveryPoint) -> Result<Vec<String>, CloudError> {
        self.sharing_checks.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .points
            .read()
            .unwrap()
            .iter()
            .find(|p| p.point.id == point.id)
            .map(|p| p.shared_with.clone())
            .unwrap_or_default())
    }

    async fn delete(&self, permit: &DeletionPermit) -> Result<(), CloudError> {
        let id = permit.point().id.clone();
        let mut points = self.points.write().unwrap();
        let before = points.len();
        points.retain(|p| p.point.id != id);
        if points.len() == before {
            return Err(Self::err(
                ErrorKind::NotFound,
                "Delete",
                &id,
                &permit.point().location.region,
            ));
        }
        self.deleted.write().unwrap().push(id);
        Ok(())
    }
}

/// What the tests share: the regions and selector of their estates, and the
/// policy document they start from.
pub mod fixtures {
    use crate::model::{ResourceType, Tags};

    /// The regions every test estate spans.
    pub const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

    /// `name`, every resource type, both [`REGIONS`], sources tagged
    /// `backup=daily` except those tagged `backup-skip=true`.
    pub fn policy(name: &str) -> serde_json::Value {
        let types: Vec<&str> = ResourceType::ALL.iter().map(|t| t.as_str()).collect();
        serde_json::json!({
            "name": name,
            "selector": {
                "resource_types": types,
                "regions": REGIONS,
                "tags": {"backup": "daily"},
                "exclude_tags": {"backup-skip": "true"}
            }
        })
    }

    /// Discover's input for [`policy`] `daily` over `types`, with `ec2`
    /// options, scheduled 2026-11-29T03:00:00Z, completion checks at once.
    pub fn discover_request(
        execution: &str,
        types: &[&str],
        ec2: serde_json::Value,
    ) -> crate::backup::discover::DiscoverRequest {
        let mut policy = policy("daily");
        policy["selector"]["resource_types"] = serde_json::json!(types);
        policy["ec2"] = ec2;
        crate::backup::discover::DiscoverRequest {
            input: serde_json::json!({
                "policy": policy,
                "scheduled_time": "2026-11-29T03:00:00Z",
                "poll_seconds": 0
            }),
            execution: execution.into(),
            started_at: "2026-11-29T03:00:02Z".into(),
        }
    }

    /// Tags from pairs.
    pub fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl ObjectStore for MemoryCloud {
    async fn put_object(&self, object: &S3Object, body: Vec<u8>) -> Result<(), CloudError> {
        if let Some(kind) = *self.fail_put.read().unwrap() {
            return Err(Self::err(kind, "PutObject", &object.key, "-"));
        }
        self.objects.write().unwrap().insert(object.clone(), body);
        Ok(())
    }

    async fn get_object(&self, object: &S3Object) -> Result<Vec<u8>, CloudError> {
        self.objects
            .read()
            .unwrap()
            .get(object)
            .cloned()
            .ok_or_else(|| {
                CloudError::new(
                    ErrorKind::NotFound,
                    "GetObject",
                    object.to_string(),
                    "-",
                    "The specified key does not exist.",
                )
                .with_code("NoSuchKey")
            })
    }
}

impl MemoryCloud {
    /// The stored point `id` is, or is a member of, at `location`.
    fn holder(&self, location: &Location, id: &str) -> Option<StoredPoint> {
        self.points
            .read()
            .unwrap()
            .iter()
            .find(|p| {
                p.point.location == *location
                    && (p.point.id == id || p.point.members.iter().any(|m| m == id))
            })
            .cloned()
    }

    fn copies_in_flight(&self, location: &Location, limit: crate::copy::CopyLimit) -> usize {
        self.points
            .read()
            .unwrap()
            .iter()
            .filter(|p| p.point.location == *location && p.tags.contains_key(crate::tags::COPY_OF))
            .filter(|p| p.point.state == RecoveryPointState::Pending)
            .filter(|p| crate::copy::CopyLimit::of(p.point.kind) == Some(limit))
            .count()
    }
}

impl crate::copy::Copies for MemoryCloud {
    async fn find_copies(
        &self,
        destination: &Location,
        run: &RunKey,
        _kinds: &[RecoveryPointKind],
    ) -> Result<crate::copy::CopyLookup, CloudError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let created = format_time(run.scheduled_time);
        let points = self.points.read().unwrap();
        let mut out = crate::copy::CopyLookup::default();
        for p in points.iter().filter(|p| p.point.location == *destination) {
            let Some(of) = p.tags.get(crate::tags::COPY_OF) else {
                continue;
            };
            if !self.visible(&p.point.id) {
                continue;
            }
            if p.point.state == RecoveryPointState::Pending {
                if let Some(l) = crate::copy::CopyLimit::of(p.point.kind) {
                    *out.in_flight.entry(l).or_insert(0) += 1;
                }
            }
            if p.tags.get(POLICY) == Some(&run.policy) && p.tags.get(CREATED_AT) == Some(&created) {
                out.found.push(crate::copy::FoundCopy {
                    copy_of: of.clone(),
                    id: p.point.id.clone(),
                    state: p.point.state,
                    execution: p.tags.get(RUN).cloned().unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    async fn describe_sources(
        &self,
        location: &Location,
        _kind: RecoveryPointKind,
        ids: &[String],
        key_managers: bool,
    ) -> Result<Vec<crate::copy::SourceSnapshot>, CloudError> {
        self.source_describes.fetch_add(1, Ordering::SeqCst);
        let keys = self.keys.read().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| {
                let p = self.holder(location, id)?;
                let key = keys.get(id).or_else(|| keys.get(&p.point.id));
                let arn = if id.starts_with("snap-") {
                    format!("arn:aws:ec2:{}::snapshot/{id}", location.region)
                } else if id.starts_with("ami-") {
                    format!("arn:aws:ec2:{}::image/{id}", location.region)
                } else {
                    crate::copy::db_snapshot_arn(&p.point, id)
                };
                Some(crate::copy::SourceSnapshot {
                    id: id.clone(),
                    name: if id.starts_with("snap-") {
                        String::new()
                    } else {
                        p.name.clone()
                    },
                    arn,
                    tags: p.tags.clone(),
                    kms_keys: key.map(|k| vec![k.0.clone()]).unwrap_or_default(),
                    aws_managed_key: key_managers && key.is_some_and(|k| k.1),
                })
            })
            .collect())
    }

    async fn set_shared(
        &self,
        location: &Location,
        _kind: RecoveryPointKind,
        ids: &[String],
        account: &str,
        add: bool,
    ) -> Result<(), CloudError> {
        let keys = self.keys.read().unwrap();
        for id in ids {
            let p = self.holder(location, id);
            let managed = keys
                .get(id)
                .or_else(|| p.as_ref().and_then(|p| keys.get(&p.point.id)))
                .is_some_and(|k| k.1);
            if add && managed {
                return Err(CloudError::new(
                    ErrorKind::InvalidInput,
                    "ModifySnapshotAttribute",
                    id,
                    &location.region,
                    "Snapshots encrypted with the AWS Managed CMK can't be shared.",
                )
                .with_code("UnsupportedOperation"));
            }
            if add {
                self.ever_shared.write().unwrap().insert(id.clone());
            }
        }
        for p in self.points.write().unwrap().iter_mut() {
            if p.point.location == *location
                && ids
                    .iter()
                    .any(|id| p.point.id == *id || p.point.members.contains(id))
            {
                if add {
                    if !p.shared_with.iter().any(|a| a == account) {
                        p.shared_with.push(account.to_owned());
                    }
                } else {
                    p.shared_with.retain(|a| a != account);
                }
            }
        }
        Ok(())
    }

    async fn grant(&self, key: &str, grantee: &str, _account: &str) -> Result<String, CloudError> {
        // KMS: the same name and parameters answer the existing grant.
        if let Some((_, id, _)) = self
            .grants
            .read()
            .unwrap()
            .iter()
            .find(|(k, _, g)| k == key && g == grantee)
        {
            return Ok(id.clone());
        }
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let id = format!("grant-{n}");
        self.grants
            .write()
            .unwrap()
            .push((key.to_owned(), id.clone(), grantee.to_owned()));
        self.grants_made.fetch_add(1, Ordering::SeqCst);
        Ok(id)
    }

    async fn revoke(&self, key: &str, grant_id: &str) -> Result<(), CloudError> {
        self.grants
            .write()
            .unwrap()
            .retain(|(k, g, _)| !(k == key && g == grant_id));
        Ok(())
    }

    async fn start_copy(
        &self,
        req: &crate::copy::StartCopy<'_>,
    ) -> Result<(String, RecoveryPointState), CloudError> {
        let limit = crate::copy::CopyLimit::of(req.kind).expect("a copyable kind");
        if self.copies_in_flight(req.destination, limit) >= limit.max_in_flight() {
            return Err(CloudError::new(
                ErrorKind::NotReady,
                "CopySnapshot",
                &req.source.id,
                &req.destination.region,
                "Too many snapshot copies in progress.",
            )
            .with_code("ResourceLimitExceeded"));
        }
        if req.destination.account != req.source_location.account {
            let src = self.holder(req.source_location, &req.source.id);
            if !src.is_some_and(|p| p.shared_with.contains(&req.destination.account)) {
                return Err(CloudError::new(
                    ErrorKind::NotFound,
                    "CopySnapshot",
                    &req.source.id,
                    &req.destination.region,
                    "The snapshot does not exist or is not shared with this account.",
                )
                .with_code("InvalidSnapshot.NotFound"));
            }
        }
        self.copy_starts.fetch_add(1, Ordering::SeqCst);
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (id, members) = if req.kind == RecoveryPointKind::Ami {
            (format!("ami-{n:08x}c"), vec![format!("snap-{n:08x}m")])
        } else if req.name.is_empty() {
            (format!("snap-{n:08x}c"), vec![])
        } else {
            (req.name.clone(), vec![])
        };
        let state = self
            .initial_state
            .read()
            .unwrap()
            .unwrap_or(RecoveryPointState::Pending);
        let src = self
            .holder(req.source_location, &req.source.id)
            .expect("a described source");
        let point = RecoveryPoint {
            id: id.clone(),
            kind: req.kind,
            members,
            location: req.destination.clone(),
            state,
            ..src.point
        };
        self.points.write().unwrap().push(StoredPoint {
            point,
            name: req.name.clone(),
            tags: req.tags.clone(),
            owner: req.destination.account.clone(),
            locked: false,
            used_by_amis: vec![],
            deleting: false,
            shared_with: vec![],
        });
        let now = self.copies_in_flight(req.destination, limit);
        let mut peak = self.peak_copies.write().unwrap();
        let e = peak.entry(req.destination.clone()).or_insert(0);
        *e = (*e).max(now);
        Ok((id, state))
    }

    async fn lock(
        &self,
        location: &Location,
        ids: &[String],
        _lock: &crate::copy::SnapshotLock,
    ) -> Result<(), CloudError> {
        for p in self.points.write().unwrap().iter_mut() {
            if p.point.location == *location && ids.contains(&p.point.id) {
                p.locked = true;
            }
        }
        Ok(())
    }
}

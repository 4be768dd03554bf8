//! Pruning: delete what a policy's retention no longer keeps, and nothing else.
//!
//! Every deletion goes through [`authorize`], the one place that enforces the
//! safety invariants, and the port's `delete` only accepts the
//! [`DeletionPermit`] it returns. The invariants:
//!
//! 1. only recovery points tagged `strongroom:managed=true`, owned by the
//!    account of the location being pruned, whose `strongroom:policy` is the
//!    policy being pruned;
//! 2. never one that is held (`strongroom:hold`), locked, referenced by any AMI,
//!    shared with another account (or not yet checked for sharing), pending,
//!    failed less than [`FAILED_GRACE_DAYS`] ago (unless its deletion had
//!    begun), or the newest completed recovery point of its source;
//! 3. a listing that failed aborts the location: nothing is pruned from a partial view;
//! 4. a dry run computes the same plan and deletes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, ErrorReport};
use crate::model::{
    format_time, parse_time, Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState, Tags,
};
use crate::policy::{parse_with_path, Policy};
use crate::ports::{ListedPoint, ObjectStore, Pruning};
use crate::reason::Reason;
use crate::retention::{plan, PlanPoint, Rules};
use crate::runs::S3Object;
use crate::tags;

/// Proof that a recovery point passed every invariant. Only [`authorize`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionPermit {
    point: RecoveryPoint,
    reasons: Vec<Reason>,
    unshare: Vec<String>,
}

impl DeletionPermit {
    pub fn point(&self) -> &RecoveryPoint {
        &self.point
    }
    /// Accounts whose access the policy gave and takes back first (AWS
    /// refuses to delete a Redshift snapshot others may restore).
    pub fn unshare(&self) -> &[String] {
        &self.unshare
    }
    pub fn reasons(&self) -> &[Reason] {
        &self.reasons
    }
}

/// A failed recovery point (an AWS error state, what a deregistered AMI
/// left) is kept this many days for inspection, then deleted: it restores
/// nothing and counts against the service's snapshot quota.
pub const FAILED_GRACE_DAYS: i64 = 7;
// The reasons' text says "7 days".
const _: () = assert!(FAILED_GRACE_DAYS == 7);

/// Whether a failed point is past its grace period at `now`.
pub fn failed_past_grace(p: &RecoveryPoint, now: OffsetDateTime) -> bool {
    p.state == RecoveryPointState::Failed
        && now - p.created_at > time::Duration::days(FAILED_GRACE_DAYS)
}

/// Whether prune deletes `p` outside the retention rules (still only through
/// [`authorize`]): a deletion to finish, or a failed point past its grace.
fn outside_rules(p: &ListedPoint, now: OffsetDateTime) -> Option<Reason> {
    if p.deleting {
        Some(Reason::FinishesDeletion)
    } else if failed_past_grace(&p.point, now) {
        Some(Reason::FailedPastGrace)
    } else {
        None
    }
}

/// Whether `tags` put a legal hold on a recovery point: any value but `false`.
pub fn is_held(tags: &Tags) -> bool {
    tags.get(tags::HOLD)
        .is_some_and(|v| !v.eq_ignore_ascii_case("false"))
}

/// Why `listed` may not be deleted by `policy` in `account` at `now`,
/// whatever the plan says: an empty list means it may. `source_points` are
/// all listed points of the same source at the same location (for the
/// newest-completed rule).
pub fn refusals(
    listed: &ListedPoint,
    source_points: &[&ListedPoint],
    account: &str,
    policy: &str,
    now: OffsetDateTime,
) -> Vec<Reason> {
    let mut why = Vec::new();
    if listed.tags.get(tags::MANAGED).map(String::as_str) != Some("true") {
        why.push(Reason::NotManaged);
    }
    if listed.owner != account {
        why.push(Reason::OwnedByOther {
            owner: listed.owner.clone(),
            account: account.to_owned(),
        });
    }
    match listed.tags.get(tags::POLICY) {
        Some(p) if p == policy => {}
        Some(p) => why.push(Reason::OtherPolicy(p.clone())),
        None => why.push(Reason::NoPolicyTag),
    }
    if is_held(&listed.tags) {
        why.push(Reason::Hold);
    }
    if listed.locked {
        why.push(Reason::Locked);
    }
    for ami in &listed.used_by_amis {
        why.push(Reason::InUseBy(ami.clone()));
    }
    match &listed.shared_with {
        None => why.push(Reason::SharingNotChecked),
        Some(accounts) => {
            // Shares the policy made itself (a vault's) do not hold it.
            let others: Vec<String> = accounts
                .iter()
                .filter(|a| !listed.revocable_shares.contains(a))
                .cloned()
                .collect();
            if !others.is_empty() {
                why.push(Reason::SharedWith(others));
            }
        }
    }
    match listed.point.state {
        RecoveryPointState::Pending => why.push(Reason::NotCompleted),
        RecoveryPointState::Failed => {
            if outside_rules(listed, now).is_none() {
                why.push(Reason::FailedInGrace);
            }
        }
        RecoveryPointState::Completed => {
            let newer_completed = source_points.iter().any(|p| {
                p.point.id != listed.point.id
                    && p.point.state == RecoveryPointState::Completed
                    && p.point.created_at > listed.point.created_at
            });
            if !newer_completed {
                why.push(Reason::NewestCompleted);
            }
        }
    }
    why
}

/// The gate of every destructive path: a permit, or the reasons for refusing.
pub fn authorize(
    listed: &ListedPoint,
    source_points: &[&ListedPoint],
    account: &str,
    policy: &str,
    now: OffsetDateTime,
    reasons: Vec<Reason>,
) -> Result<DeletionPermit, Vec<Reason>> {
    let why = refusals(listed, source_points, account, policy, now);
    if why.is_empty() {
        Ok(DeletionPermit {
            point: listed.point.clone(),
            reasons,
            unshare: listed
                .shared_with
                .iter()
                .flatten()
                .filter(|a| listed.revocable_shares.contains(a))
                .cloned()
                .collect(),
        })
    } else {
        Err(why)
    }
}

/// The prune function's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    pub policy: Policy,
    /// Compute and report the plan, delete nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The time retention is evaluated at (RFC 3339); default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
    /// Where to write the full report (the run's `files.prune`): the output
    /// then carries the counts and this location instead of every decision,
    /// which for a large estate would not fit in Step Functions state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_to: Option<S3Object>,
}

/// One decision in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointDecision {
    pub id: String,
    pub kind: RecoveryPointKind,
    pub source: String,
    /// RFC 3339; for a point whose `strongroom:created-at` is not a time,
    /// the tag's value as it is (empty when missing).
    pub created_at: String,
    pub reasons: Vec<Reason>,
}

/// What happened at one location.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationReport {
    pub location: Option<Location>,
    pub listed: usize,
    /// Deleted (or, in a dry run, to be deleted), with the retention's reasons.
    pub deleted: Vec<PointDecision>,
    pub kept: Vec<PointDecision>,
    /// Planned for deletion but refused by the safety invariants.
    pub refused: Vec<PointDecision>,
    pub failures: Vec<PointFailure>,
    pub deleted_by_kind: BTreeMap<RecoveryPointKind, usize>,
    /// Set when the listing failed: nothing was pruned here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<ErrorReport>,
}

/// A delete that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointFailure {
    pub id: String,
    pub error: ErrorReport,
}

/// The prune report (joins the run summary).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    pub policy: String,
    pub dry_run: bool,
    pub now: String,
    pub locations: Vec<LocationReport>,
    pub deleted: usize,
    pub kept: usize,
    pub refused: usize,
    pub failed: usize,
    /// Plain words on anything unusual (no retention, nothing found).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Where the full report is, when the request named `report_to`
    /// (`locations` is then left out here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_report: Option<S3Object>,
}

/// Writes the full `report` to `to` and returns it without its locations,
/// pointing at `to`. The deletions are done by then: a write that fails
/// leaves a note and keeps only the locations that aborted or failed a
/// delete, without their decisions, so the run still reports them.
pub async fn store_report<S: ObjectStore>(
    mut report: PruneReport,
    store: &S,
    to: &S3Object,
) -> PruneReport {
    let body = match serde_json::to_vec_pretty(&report) {
        Ok(b) => b,
        Err(e) => {
            report
                .notes
                .push(format!("the full report could not be written: {e}"));
            return report;
        }
    };
    match store.put_object(to, body).await {
        Ok(()) => {
            report.locations.clear();
            report.full_report = Some(to.clone());
        }
        Err(e) => {
            report
                .notes
                .push(format!("the full report could not be written to {to}: {e}"));
            report
                .locations
                .retain(|l| l.aborted.is_some() || !l.failures.is_empty());
            for l in &mut report.locations {
                l.deleted.clear();
                l.kept.clear();
                l.refused.clear();
            }
        }
    }
    report
}

fn decision(p: &ListedPoint, reasons: Vec<Reason>) -> PointDecision {
    PointDecision {
        id: p.point.id.clone(),
        kind: p.point.kind,
        source: p.point.source.clone(),
        created_at: format_time(p.point.created_at),
        reasons,
    }
}

/// Validates a prune request: policy, retention and `now`, before any call.
/// `clock` is the current time: a `now` ahead of it would make `max_age`
/// delete what the retention keeps, so it is refused.
pub fn parse_request(
    value: serde_json::Value,
    clock: OffsetDateTime,
) -> Result<(PruneRequest, Option<Rules>, OffsetDateTime), Error> {
    let req: PruneRequest = parse_with_path(value, "")?;
    req.policy.validate("policy")?;
    let rules = req
        .policy
        .retention
        .as_ref()
        .map(|r| r.rules("policy.retention"))
        .transpose()?;
    let now = match &req.now {
        Some(t) => parse_time(t)
            .map_err(|e| Error::invalid("now", format!("`{t}` is not an RFC 3339 time ({e})")))?,
        None => clock,
    };
    crate::validate::not_in_future(now, clock, "now")?;
    if let Some(to) = &req.report_to {
        to.validate("report_to")?;
    }
    Ok((req, rules, now))
}

/// Plans and prunes one location.
pub async fn prune_location<P: Pruning>(
    cloud: &P,
    location: &Location,
    policy: &str,
    rules: &Rules,
    now: OffsetDateTime,
    dry_run: bool,
    revocable: &[String],
) -> LocationReport {
    // Ownership is checked against the location's own account.
    let account = location.account.as_str();
    let mut report = LocationReport {
        location: Some(location.clone()),
        ..Default::default()
    };
    let mut listed = match cloud.list(location, policy).await {
        Ok(l) => l,
        Err(e) => {
            report.aborted = Some(ErrorReport::from(&e));
            return report;
        }
    };
    report.listed = listed.points.len() + listed.unreadable.len();
    // What the policy shares itself (a Redshift snapshot with a vault) does
    // not hold a point: prune takes that access back before deleting.
    for p in &mut listed.points {
        if p.point.kind.facts().copy == crate::kind::CopyMethod::ClusterConfigured {
            p.revocable_shares = revocable.to_vec();
        }
    }
    // Points whose time cannot be read never reach the planner: kept.
    for u in &listed.unreadable {
        report.kept.push(PointDecision {
            id: u.id.clone(),
            kind: u.kind,
            source: u.source.clone(),
            created_at: u.created_at.clone(),
            reasons: vec![Reason::NoValidCreatedAt],
        });
    }
    let mut by_source: BTreeMap<&str, Vec<&ListedPoint>> = BTreeMap::new();
    for p in &listed.points {
        by_source
            .entry(p.point.source.as_str())
            .or_default()
            .push(p);
    }
    for (_, mut points) in by_source {
        points.sort_by(|a, b| a.point.id.cmp(&b.point.id));
        // Deletions to finish and failed points past their grace are decided
        // outside the rules; the planner sees the rest.
        let mut candidates: Vec<(&ListedPoint, Vec<Reason>)> = Vec::new();
        let mut plan_points = Vec::new();
        for p in &points {
            if let Some(why) = outside_rules(p, now) {
                candidates.push((p, vec![why]));
                continue;
            }
            plan_points.push(PlanPoint {
                id: p.point.id.clone(),
                time: p.point.created_at,
                completed: p.point.state == RecoveryPointState::Completed,
                // The planner decides the newest itself, from the points it
                // is given; sharing is asked only of what it would delete.
                protected: refusals(p, &points, account, policy, now)
                    .into_iter()
                    .filter(|r| *r != Reason::NewestCompleted && *r != Reason::SharingNotChecked)
                    .collect(),
            });
        }
        let planned = plan(&plan_points, rules, now);
        let find = |id: &str| points.iter().find(|p| p.point.id == id).copied();
        for k in planned.keep {
            if let Some(p) = find(&k.id) {
                report.kept.push(decision(p, k.reasons));
            }
        }
        for d in planned.delete {
            if let Some(p) = find(&d.id) {
                candidates.push((p, d.reasons));
            }
        }
        for (p, reasons) in candidates {
            // Every other invariant first: sharing costs a call per point.
            let early: Vec<Reason> = refusals(p, &points, account, policy, now)
                .into_iter()
                .filter(|r| *r != Reason::SharingNotChecked)
                .collect();
            if !early.is_empty() {
                report.refused.push(decision(p, early));
                continue;
            }
            let mut checked = p.clone();
            if checked.shared_with.is_none() {
                match cloud.shared_with(&p.point).await {
                    Ok(accounts) => checked.shared_with = Some(accounts),
                    Err(e) => {
                        report.failures.push(PointFailure {
                            id: p.point.id.clone(),
                            error: ErrorReport::from(&e),
                        });
                        continue;
                    }
                }
            }
            match authorize(&checked, &points, account, policy, now, reasons.clone()) {
                Err(why) => report.refused.push(decision(p, why)),
                Ok(permit) => {
                    if !dry_run {
                        if let Err(e) = cloud.delete(&permit).await {
                            report.failures.push(PointFailure {
                                id: p.point.id.clone(),
                                error: ErrorReport::from(&e),
                            });
                            continue;
                        }
                    }
                    *report.deleted_by_kind.entry(p.point.kind).or_insert(0) += 1;
                    report.deleted.push(decision(p, reasons));
                }
            }
        }
    }
    report
}

/// Prunes every location the policy writes to: its accounts in its regions
/// under the policy's retention, and each copy destination under its own
/// (a vault account only through its prune role).
pub async fn prune<P: Pruning>(
    req: PruneRequest,
    rules: Option<Rules>,
    now: OffsetDateTime,
    cloud: &P,
) -> Result<PruneReport, Error> {
    let mut report = PruneReport {
        policy: req.policy.name.clone(),
        dry_run: req.dry_run,
        now: format_time(now),
        ..Default::default()
    };
    // Each copy destination keeps its copies under its own retention, else
    // the policy's.
    let destinations: Vec<(usize, Option<Rules>)> = req
        .policy
        .copies
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let own = d
                .retention
                .as_ref()
                .map(|r| r.rules(&format!("policy.copies[{i}].retention")))
                .transpose()?;
            Ok((i, own.or_else(|| rules.clone())))
        })
        .collect::<Result<_, Error>>()?;
    if rules.is_none() && destinations.iter().all(|(_, r)| r.is_none()) {
        report.notes.push(format!(
            "policy {} has no retention: nothing is pruned",
            req.policy.name
        ));
        return Ok(report);
    }
    let home = cloud.home_account().await?;
    // Units Discover resolved are in `accounts` already; any left (a prune
    // run on its own, or a unit Discover could not list) are listed here.
    let (policy, unit_errors) =
        crate::backup::discover::resolve_units(&req.policy, &home, cloud).await?;
    for (unit, e) in unit_errors {
        for region in &policy.selector.regions {
            report.locations.push(LocationReport {
                location: Some(Location {
                    account: unit.clone(),
                    region: region.clone(),
                }),
                aborted: Some(ErrorReport::from(&e)),
                ..Default::default()
            });
        }
    }
    // A vault is reached through its prune role only, never the copy role.
    let mut roles = policy.accounts.clone();
    roles.extend(policy.copies.iter().filter_map(|d| d.prune_role()));
    cloud.use_roles(&roles);
    // The vaults the policy shares Redshift snapshots with.
    let vault_accounts: Vec<String> = policy
        .copies
        .iter()
        .filter_map(|d| d.account.clone())
        .collect();
    let mut work: Vec<(Location, Rules)> = Vec::new();
    match &rules {
        Some(rules) => {
            for l in crate::backup::discover::policy_locations(&policy, &home, "policy")? {
                work.push((l, rules.clone()));
            }
        }
        None => report.notes.push(format!(
            "policy {} has no retention: its sources' own recovery points are not pruned",
            req.policy.name
        )),
    }
    for (i, r) in destinations {
        let d = &policy.copies[i];
        let location = d.location(&home);
        match r {
            None => report.notes.push(format!(
                "copies at {location} are not pruned: neither policy.copies[{i}] nor the policy has a retention"
            )),
            Some(_) if d.account.is_some() && d.prune_role_arn.is_none() => {
                report.notes.push(format!(
                    "copies at {location} are not pruned from here: policy.copies[{i}] has no prune_role_arn (the vault prunes itself)"
                ))
            }
            Some(r) => work.push((location, r)),
        }
    }
    for (location, rules) in &work {
        let l = prune_location(
            cloud,
            location,
            &req.policy.name,
            rules,
            now,
            req.dry_run,
            &vault_accounts,
        )
        .await;
        if l.aborted.is_none() && l.listed == 0 {
            report.notes.push(format!(
                "no recovery points of policy {} at {location}: nothing to prune",
                req.policy.name
            ));
        }
        report.locations.push(l);
    }
    report.deleted = report.locations.iter().map(|l| l.deleted.len()).sum();
    report.kept = report.locations.iter().map(|l| l.kept.len()).sum();
    report.refused = report.locations.iter().map(|l| l.refused.len()).sum();
    report.failed = report
        .locations
        .iter()
        .map(|l| l.failures.len() + usize::from(l.aborted.is_some()))
        .sum();
    Ok(report)
}

//! Discover: validates the run input, lists every region, and cuts the
//! selection into self-contained [`Batch`]es, one Map item each.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorReport};
use crate::model::{Location, RecoveryPointKind, ResourceType, Target};
use crate::policy::{Policy, RunInput, DEFAULT_POLL_SECONDS};
use crate::ports::Inventory;
use crate::quota::{check, kept_per_source, Demand, QuotaWarning};
use crate::tags::RunKey;

/// Targets per Map item. Small enough for one Lambda invocation to finish well
/// inside its timeout, large enough that the per-location lookup and
/// completion checks are shared by many targets.
pub const BATCH_SIZE: usize = 50;

/// Locations (account × region) listed at once.
pub const LOCATIONS_AT_ONCE: usize = 16;

/// What the state machine passes to Discover.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// The execution's input (a [`RunInput`]); validated here.
    pub input: serde_json::Value,
    /// `$$.Execution.Name`.
    pub execution: String,
    /// `$$.Execution.StartTime`, used when the input has no `scheduled_time`.
    pub started_at: String,
}

/// A source left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub resource_type: ResourceType,
    pub id: String,
    pub region: String,
    pub reason: String,
}

/// A region (of an account) whose listing failed, or that could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionError {
    /// The account, when the policy names accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub region: String,
    pub error: ErrorReport,
}

/// One Map item: targets at one location, self-contained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub run: RunKey,
    pub policy: Policy,
    pub location: Location,
    pub poll_seconds: u32,
    pub targets: Vec<Target>,
}

/// Discover's output: the run's identity, what was found, and the batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverOutput {
    pub run: RunKey,
    /// The validated policy, for the stages after the snapshots (Prune).
    pub policy: Policy,
    /// Prune computes and reports its plan but deletes nothing.
    pub prune_dry_run: bool,
    pub poll_seconds: u32,
    /// Selected sources per type.
    pub found: BTreeMap<ResourceType, usize>,
    pub skipped: Vec<Skipped>,
    pub region_errors: Vec<RegionError>,
    /// The quota preflight's findings (always present: Report reads it).
    pub quota_warnings: Vec<QuotaWarning>,
    pub batches: Vec<Batch>,
}

/// Validates the input, lists every region, and cuts the selection into batches.
/// Fails before any call on bad input; fails (to be retried) when a region is
/// throttled; records other region failures and goes on with the rest.
pub async fn discover<I: Inventory>(
    req: DiscoverRequest,
    inventory: &I,
) -> Result<DiscoverOutput, Error> {
    let input = RunInput::parse(req.input)?;
    if req.execution.is_empty() {
        return Err(Error::invalid(
            "execution",
            "is empty; pass $$.Execution.Name",
        ));
    }
    let run = RunKey {
        policy: input.policy.name.clone(),
        scheduled_time: input.scheduled_time_or(&req.started_at)?,
        execution: req.execution,
    };
    let policy = input.policy;
    let sel = &policy.selector;
    inventory.use_roles(&policy.accounts);
    let home = inventory.home_account().await?;
    let locations = policy_locations(&policy, &home, "policy")?;
    let named_accounts = !policy.accounts.is_empty();
    // A few locations at a time: many accounts must not mean a burst of
    // AssumeRole and Tagging API calls.
    let mut listings: Vec<_> = stream::iter(locations)
        .map(|location| async move {
            let found = inventory
                .find_sources(&location, &sel.resource_types, &sel.tags)
                .await;
            (location, found)
        })
        .buffer_unordered(LOCATIONS_AT_ONCE)
        .collect()
        .await;
    listings.sort_by(|a, b| a.0.cmp(&b.0));

    let mut found = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut region_errors = Vec::new();
    let mut by_location: BTreeMap<Location, Vec<Target>> = BTreeMap::new();
    for (location, listing) in listings {
        let sources = match listing {
            Ok(s) => s,
            Err(e) if e.kind.is_retryable() => return Err(e.into()),
            Err(e) => {
                region_errors.push(RegionError {
                    account: named_accounts.then(|| location.account.clone()),
                    region: location.region,
                    error: ErrorReport::from(&e),
                });
                continue;
            }
        };
        for s in sources {
            if !policy.selects_type(s.target.resource_type) {
                continue;
            }
            if let Some(reason) = sel.rejection(&s.target.tags) {
                skipped.push(Skipped {
                    resource_type: s.target.resource_type,
                    id: s.target.id.clone(),
                    region: s.location.region.clone(),
                    reason,
                });
                continue;
            }
            *found.entry(s.target.resource_type).or_insert(0) += 1;
            by_location.entry(s.location).or_default().push(s.target);
        }
    }
    let quota_warnings = preflight(inventory, &policy, &by_location).await;
    let poll_seconds = input.poll_seconds.unwrap_or(DEFAULT_POLL_SECONDS);
    let mut batches = Vec::new();
    for (location, mut targets) in by_location {
        targets.sort_by(|a, b| (a.resource_type, &a.id).cmp(&(b.resource_type, &b.id)));
        // A batch carries only its own account's role: the state stays the
        // same size whatever the number of accounts.
        let mut batch_policy = policy.clone();
        batch_policy
            .accounts
            .retain(|a| a.account == location.account);
        for chunk in targets.chunks(BATCH_SIZE) {
            batches.push(Batch {
                run: run.clone(),
                policy: batch_policy.clone(),
                location: location.clone(),
                poll_seconds,
                targets: chunk.to_vec(),
            });
        }
    }
    Ok(DiscoverOutput {
        run,
        prune_dry_run: input.prune_dry_run,
        policy: policy.clone(),
        poll_seconds,
        found,
        skipped,
        region_errors,
        quota_warnings,
        batches,
    })
}

/// Every location a policy covers: each of its accounts (the home account
/// when it names none) in each of its regions. An account named without a
/// role must be the home account: any other could not be reached.
pub fn policy_locations(policy: &Policy, home: &str, at: &str) -> Result<Vec<Location>, Error> {
    let accounts: Vec<String> = if policy.accounts.is_empty() {
        vec![home.to_owned()]
    } else {
        let mut out = Vec::new();
        for (i, a) in policy.accounts.iter().enumerate() {
            if a.role_arn.is_none() && a.account != home {
                return Err(Error::invalid(
                    format!("{at}.accounts[{i}].role_arn"),
                    format!(
                        "is missing, and account {} is not the account Strongroom runs in ({home}); \
                         name the role to assume there, e.g. arn:aws:iam::{}:role/strongroom",
                        a.account, a.account
                    ),
                ));
            }
            out.push(a.account.clone());
        }
        out
    };
    Ok(accounts
        .iter()
        .flat_map(|account| {
            policy.selector.regions.iter().map(move |r| Location {
                account: account.clone(),
                region: r.clone(),
            })
        })
        .collect())
}

/// The quota preflight: at each location with targets, the room each quota
/// has left against what this run makes, and the policy's steady state
/// against the quota. A preflight that cannot ask is a warning too: it
/// never stops a run.
async fn preflight<I: Inventory>(
    inventory: &I,
    policy: &Policy,
    by_location: &BTreeMap<Location, Vec<Target>>,
) -> Vec<QuotaWarning> {
    let rules = policy
        .retention
        .as_ref()
        .and_then(|r| r.rules("policy.retention").ok());
    let kept = kept_per_source(rules.as_ref());
    let limits = policy.quotas.clone().unwrap_or_default();
    let checks = by_location.iter().map(|(location, targets)| {
        let mut demand = Demand::default();
        for t in targets {
            demand.add(RecoveryPointKind::for_source(
                t.resource_type,
                policy.ec2.mode,
            ));
        }
        let limits = &limits;
        async move {
            match inventory
                .quota_usage(location, &demand.quotas(), limits)
                .await
            {
                Ok(usage) => check(&location.region, &usage, &demand, kept),
                Err(e) => vec![QuotaWarning {
                    region: location.region.clone(),
                    quota: None,
                    message: format!("the quota preflight could not run: {e}"),
                }],
            }
        }
    });
    let mut warnings: Vec<(usize, Vec<QuotaWarning>)> = stream::iter(checks.enumerate())
        .map(|(i, check)| async move { (i, check.await) })
        .buffer_unordered(LOCATIONS_AT_ONCE)
        .collect()
        .await;
    warnings.sort_by_key(|(i, _)| *i);
    warnings.into_iter().flat_map(|(_, w)| w).collect()
}

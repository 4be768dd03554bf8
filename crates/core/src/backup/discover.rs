//! Discover: validates the run input, lists every region, and cuts the
//! selection into self-contained [`Batch`]es, one Map item each.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::error::CloudError;
use crate::error::{Error, ErrorReport};
use crate::model::{Location, RecoveryPointKind, ResourceType, Target};
use crate::policy::AccountRole;
use crate::policy::{Policy, RunInput, DEFAULT_POLL_SECONDS};
use crate::ports::{Identity, Inventory, ObjectStore};
use crate::quota::{check, kept_per_source, Demand, QuotaWarning};
use crate::runs::{check_bucket, RunFiles, BUCKET_VARIABLE};
use crate::tags::RunKey;

/// Targets per Map item (one child execution). Every batch costs an
/// idempotency lookup, a describe per kind per completion check and its
/// child's state transitions, so batches are as large as is comfortable:
/// 100 creates at 8 at a time finish in well under a minute of the Lambda's
/// timeout, and a batch's result stays near 45 KiB, far below Step
/// Functions' 256 KiB per state.
pub const BATCH_SIZE: usize = 100;

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

/// Everything Discover finds: the run's identity, what was found, and the batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
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
) -> Result<Discovery, Error> {
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
    let home = inventory.home_account().await?;
    let (policy, unit_errors) = resolve_units(&input.policy, &home, inventory).await?;
    let sel = &policy.selector;
    inventory.use_roles(&policy.accounts);
    let locations = policy_locations(&policy, &home, "policy")?;
    // With accounts resolved (units included), no copy may land where the
    // policy protects: its copies would mix with the sources' own points.
    let other_accounts = locations.iter().any(|l| l.account != home);
    for (i, d) in policy.copies.iter().enumerate() {
        // Without an account a destination is the home account's: with
        // several accounts, copies from the others would cross into it.
        if d.account.is_none() && other_accounts {
            return Err(Error::invalid(
                format!("policy.copies[{i}].account"),
                format!("is missing, and the policy covers accounts other than {home}; name the destination's account (and its role), or copy each account's recovery points with a policy of its own"),
            ));
        }
        let at = d.location(&home);
        if locations.contains(&at) {
            return Err(Error::invalid(
                format!("policy.copies[{i}]"),
                format!("{at} is a location the policy protects; a copy must go to another region or account"),
            ));
        }
    }
    let named_accounts =
        !input.policy.accounts.is_empty() || !input.policy.organizational_units.is_empty();
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
    for (unit, e) in unit_errors {
        for region in &sel.regions {
            region_errors.push(RegionError {
                account: Some(unit.clone()),
                region: region.clone(),
                error: ErrorReport::from(&e),
            });
        }
    }
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
        batch_policy.organizational_units.clear();
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
    Ok(Discovery {
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

/// What Discover found besides the batches: the file Report reads back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Findings {
    pub run: RunKey,
    pub found: BTreeMap<ResourceType, usize>,
    pub skipped: Vec<Skipped>,
    pub region_errors: Vec<RegionError>,
    pub quota_warnings: Vec<QuotaWarning>,
}

/// Discover's output, the state of the rest of the run: counts, and where
/// the batches and findings are (its size does not grow with the estate).
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
    pub skipped: usize,
    pub region_errors: usize,
    pub quota_warnings: usize,
    /// Map items in `files.batches`.
    pub batches: usize,
    pub files: RunFiles,
    /// The indexes of `policy.copies`: the copy stage's Map items.
    pub copy_destinations: Vec<usize>,
}

/// [`discover`], then the batches and findings written to `bucket` (the
/// stack's, from [`crate::runs::BUCKET_VARIABLE`]): the Distributed Map reads
/// its items from there. A missing or malformed bucket fails before any call.
pub async fn discover_run<C: Inventory + ObjectStore>(
    req: DiscoverRequest,
    cloud: &C,
    bucket: Option<&str>,
) -> Result<DiscoverOutput, Error> {
    let bucket = bucket.ok_or_else(|| {
        Error::invalid(
            BUCKET_VARIABLE,
            "is not set; set it to the bucket the run's files go to (the stack's bucket)",
        )
    })?;
    check_bucket(bucket, BUCKET_VARIABLE)?;
    let d = discover(req, cloud).await?;
    let files = RunFiles::new(bucket, &d.run, BUCKET_VARIABLE)?;
    let mut lines = Vec::new();
    for b in &d.batches {
        serde_json::to_writer(&mut lines, b).map_err(|e| Error::Internal(e.to_string()))?;
        lines.push(b'\n');
    }
    cloud
        .put_object(&files.object(&files.batches), lines)
        .await?;
    let findings = Findings {
        run: d.run.clone(),
        found: d.found.clone(),
        skipped: d.skipped,
        region_errors: d.region_errors,
        quota_warnings: d.quota_warnings,
    };
    let copy_destinations = (0..d.policy.copies.len()).collect();
    let out = DiscoverOutput {
        run: d.run,
        policy: d.policy,
        prune_dry_run: d.prune_dry_run,
        poll_seconds: d.poll_seconds,
        found: d.found,
        skipped: findings.skipped.len(),
        region_errors: findings.region_errors.len(),
        quota_warnings: findings.quota_warnings.len(),
        batches: d.batches.len(),
        files,
        copy_destinations,
    };
    let body = serde_json::to_vec(&findings).map_err(|e| Error::Internal(e.to_string()))?;
    cloud
        .put_object(&out.files.object(&out.files.discovery), body)
        .await?;
    Ok(out)
}

/// Units of AWS Organizations listed at once.
const UNITS_AT_ONCE: usize = 4;

/// The policy with the active accounts of its organizational units added to
/// `accounts` (each with its unit's role; the home account with none, as it
/// is reached with the function's own credentials), and the units that could
/// not be listed, which stay in `organizational_units` (so that a later stage
/// tries them again, and never falls back to the home account alone). An
/// account the policy lists itself keeps its own entry. Throttling is an
/// error (the stage is retried); any other failure is the unit's.
pub async fn resolve_units<I: Identity>(
    policy: &Policy,
    home: &str,
    cloud: &I,
) -> Result<(Policy, Vec<(String, CloudError)>), Error> {
    let mut out = policy.clone();
    if policy.organizational_units.is_empty() {
        return Ok((out, vec![]));
    }
    let partition = partition_of(policy.selector.regions.first().map_or("", String::as_str));
    let listed: Vec<_> = stream::iter(policy.organizational_units.iter())
        .map(|u| async move { (u, cloud.accounts_under(&u.id).await) })
        .buffered(UNITS_AT_ONCE)
        .collect()
        .await;
    let mut failed = Vec::new();
    let mut errors = Vec::new();
    let mut added = BTreeMap::new();
    for (unit, accounts) in listed {
        match accounts {
            Ok(accounts) => {
                for account in accounts {
                    if unit.exclude_accounts.contains(&account)
                        || policy.accounts.iter().any(|a| a.account == account)
                    {
                        continue;
                    }
                    let own = account == home;
                    added.entry(account.clone()).or_insert_with(|| AccountRole {
                        role_arn: (!own).then(|| unit.role_arn(partition, &account)),
                        external_id: if own { None } else { unit.external_id.clone() },
                        account,
                    });
                }
            }
            Err(e) if e.kind.is_retryable() => return Err(e.into()),
            Err(e) => {
                failed.push(unit.clone());
                errors.push((unit.id.clone(), e));
            }
        }
    }
    out.accounts.extend(added.into_values());
    out.organizational_units = failed;
    Ok((out, errors))
}

/// The partition of a region: `aws-cn` for `cn-*`, `aws-us-gov` for
/// `us-gov-*`, `aws-iso(-b)` for `us-iso(b)-*`, `aws` otherwise.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else {
        "aws"
    }
}

/// Every location a policy covers: each of its accounts in each of its
/// regions; the home account when it names neither accounts nor
/// organizational units. An account named without a role must be the home
/// account: any other could not be reached.
pub fn policy_locations(policy: &Policy, home: &str, at: &str) -> Result<Vec<Location>, Error> {
    let accounts: Vec<String> = if policy.accounts.is_empty()
        && policy.organizational_units.is_empty()
    {
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

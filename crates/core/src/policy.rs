//! The policy document: what to protect and how, one per schedule.
//!
//! Parsing is strict (`deny_unknown_fields`) and every error names the field
//! as a dotted path from the top of the input, e.g. `policy.selector.regions[1]`.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::model::{parse_time, utc, ResourceType, Tags};
use crate::retention::Retention;
use time::OffsetDateTime;

/// A backup policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Policy name: 1-40 characters, lowercase letters, digits and single hyphens,
    /// starting with a letter. It is part of every recovery point's identity
    /// (`strongroom:policy`), so renaming a policy starts a new history.
    pub name: String,
    /// Which sources the policy protects.
    pub selector: Selector,
    /// How EC2 instances are protected.
    #[serde(default)]
    pub ec2: Ec2Options,
    /// Copy the source's tags onto its recovery points (minus `aws:` and `strongroom:` keys).
    #[serde(default = "default_true")]
    pub copy_source_tags: bool,
    /// How long recovery points are kept (restic's `forget` rules plus `max_age`).
    /// Without it nothing is ever pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// The account's own values of quotas no AWS API reports (increases AWS
    /// granted), for the quota preflight; AWS's defaults otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<crate::quota::QuotaLimits>,
    /// The accounts the policy covers, each with the role Strongroom assumes
    /// there; without it, only the account Strongroom runs in. Every account
    /// is covered in every region of the selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountRole>,
    /// AWS Organizations units (or the root) whose accounts the policy also
    /// covers, every OU below them included: Discover lists them (the
    /// functions' role needs `organizations:ListAccountsForParent` and
    /// `organizations:ListOrganizationalUnitsForParent`, i.e. the management
    /// account or a delegated administrator) and adds each active account,
    /// with the role named here, to `accounts`. An account listed in
    /// `accounts` keeps its own role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizational_units: Vec<OrganizationalUnit>,
    /// Where every completed recovery point is also copied: other regions of
    /// the same account, or a vault account. Each destination keeps its
    /// copies under its own retention (the policy's when it has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<crate::copy::CopyDestination>,
}

/// An AWS Organizations unit (or root) whose accounts a policy covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganizationalUnit {
    /// The OU's id (`ou-` followed by the root's 4-32 and the OU's 8-32
    /// lowercase letters or digits, e.g. `ou-ab12-cd34ef56`), or the root's
    /// (`r-ab12`).
    pub id: String,
    /// The role to assume in each of its accounts, by name (with its path if
    /// it has one, e.g. `strongroom` or `backup/strongroom`): the same role
    /// in every account, as StackSets deploy it.
    pub role_name: String,
    /// The external id the roles' trust policies require, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Accounts of the unit to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_accounts: Vec<String>,
}

impl OrganizationalUnit {
    /// Checks the id against Organizations' rules and the role name and
    /// external id against IAM's and STS's.
    pub fn validate(&self, at: &str) -> Result<(), Error> {
        let lower = |s: &str, range: std::ops::RangeInclusive<usize>| {
            range.contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        let id_ok = match self.id.strip_prefix("ou-") {
            Some(rest) => rest
                .split_once('-')
                .is_some_and(|(root, ou)| lower(root, 4..=32) && lower(ou, 8..=32)),
            None => self.id.strip_prefix("r-").is_some_and(|r| lower(r, 4..=32)),
        };
        if !id_ok {
            return Err(Error::invalid(
                format!("{at}.id"),
                format!(
                    "`{}` is not an OU or root id; use e.g. ou-ab12-cd34ef56 or r-ab12 (Organizations console, or ListOrganizationalUnitsForParent)",
                    self.id
                ),
            ));
        }
        // The role as any of the unit's accounts would name it.
        AccountRole {
            account: "000000000000".into(),
            role_arn: Some(self.role_arn("aws", "000000000000")),
            external_id: self.external_id.clone(),
        }
        .validate(at)
        .map_err(|e| match e {
            Error::InvalidInput { field, message } if field.ends_with(".role_arn") => {
                Error::invalid(
                    format!("{at}.role_name"),
                    format!(
                        "`{}` is not an IAM role name (with an optional path); {message}",
                        self.role_name
                    ),
                )
            }
            other => other,
        })?;
        for (i, a) in self.exclude_accounts.iter().enumerate() {
            if !is_account_id(a) {
                return Err(Error::invalid(
                    format!("{at}.exclude_accounts[{i}]"),
                    format!("`{a}` is not an account id; use the 12 digits"),
                ));
            }
        }
        Ok(())
    }

    /// The role to assume in `account` of `partition`.
    pub fn role_arn(&self, partition: &str, account: &str) -> String {
        format!(
            "arn:{partition}:iam::{account}:role/{}",
            self.role_name.trim_start_matches('/')
        )
    }
}

/// An account a policy covers, and how Strongroom reaches it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountRole {
    /// The 12-digit account id.
    pub account: String,
    /// The IAM role to assume in it (`arn:aws:iam::<account>:role/<name>`);
    /// leave it out only for the account Strongroom runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The external id the role's trust policy requires, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl AccountRole {
    /// Checks the account id, the role ARN (its account must be this one)
    /// and the external id against IAM's rules.
    pub fn validate(&self, at: &str) -> Result<(), Error> {
        if !is_account_id(&self.account) {
            return Err(Error::invalid(
                format!("{at}.account"),
                format!(
                    "`{}` is not an account id; use the 12 digits, e.g. 123456789012",
                    self.account
                ),
            ));
        }
        if let Some(arn) = &self.role_arn {
            let bad = || {
                Error::invalid(
                    format!("{at}.role_arn"),
                    format!(
                        "`{arn}` is not an IAM role ARN; use arn:aws:iam::{}:role/<name>",
                        self.account
                    ),
                )
            };
            // arn:<partition>:iam::<account>:role/<path/><name>
            let (partition, rest) = arn
                .strip_prefix("arn:")
                .and_then(|r| r.split_once(":iam::"))
                .ok_or_else(bad)?;
            if !PARTITIONS.contains(&partition) {
                return Err(bad());
            }
            let (account, path_and_name) = rest.split_once(":role/").ok_or_else(bad)?;
            if !is_account_id(account) {
                return Err(bad());
            }
            let (path, name) = path_and_name
                .rsplit_once('/')
                .unwrap_or(("", path_and_name));
            // IAM: a name of 1-64 of letters, digits and +=,.@_-; a path of
            // printable ASCII, at most 512 with its slashes, no empty segment.
            let name_ok = (1..=64).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
            let path_ok = path.len() < 511
                && (path.is_empty() || path.split('/').all(|seg| !seg.is_empty()))
                && path.chars().all(|c| ('\x21'..='\x7e').contains(&c));
            if !name_ok || !path_ok {
                return Err(bad());
            }
            if account != self.account {
                return Err(Error::invalid(
                    format!("{at}.role_arn"),
                    format!("the role is in account {account}, not {}; name a role of the account it reaches", self.account),
                ));
            }
        }
        if let Some(id) = &self.external_id {
            let ok = (2..=1224).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c));
            if !ok {
                return Err(Error::invalid(
                    format!("{at}.external_id"),
                    "must be 2-1224 characters of letters, digits and +=,.@:/-_ (STS's rule)",
                ));
            }
            if self.role_arn.is_none() {
                return Err(Error::invalid(
                    format!("{at}.external_id"),
                    "is given without a role_arn; an external id goes with the role it is for",
                ));
            }
        }
        Ok(())
    }
}

/// The AWS partitions a role ARN may name.
const PARTITIONS: [&str; 5] = ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"];

/// Twelve digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn default_true() -> bool {
    true
}

/// Sources are chosen by type, region and their own tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Resource types to protect (at least one).
    pub resource_types: Vec<ResourceType>,
    /// Regions to look in (at least one), e.g. `us-east-1`.
    pub regions: Vec<String>,
    /// A source is selected when it has every one of these tags with exactly this value.
    /// At least one tag is required: an empty selector would protect everything.
    pub tags: BTreeMap<String, String>,
    /// A source that has any one of these tags with exactly this value is left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exclude_tags: BTreeMap<String, String>,
}

/// How EC2 instances are protected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ec2Options {
    /// `snapshots`: crash-consistent EBS snapshots of every volume (CreateSnapshots);
    /// `ami`: an AMI without reboot (CreateImage, NoReboot).
    #[serde(default)]
    pub mode: Ec2Mode,
    /// Leave the root volume out of instance snapshots (mode `snapshots` only).
    #[serde(default)]
    pub exclude_boot_volume: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Ec2Mode {
    #[default]
    Snapshots,
    Ami,
}

/// The input of the backup state machine: what EventBridge Scheduler sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    pub policy: Policy,
    /// The run's scheduled time (RFC 3339). Schedules pass
    /// `<aws.scheduler.scheduled-time>`; when absent, the execution's start time is used.
    /// It is the run's idempotency key together with the policy and the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<String>,
    /// Seconds between completion checks (default 60, at most 3600). Tests use 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_seconds: Option<u32>,
    /// Run the Prune stage as a dry run: report what retention would delete, delete nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prune_dry_run: bool,
}

pub const DEFAULT_POLL_SECONDS: u32 = 60;
/// The longest wait between completion checks.
pub const MAX_POLL_SECONDS: u32 = 3600;
pub const MAX_POLICY_NAME: usize = 40;

/// Parses JSON into `T`, naming the failing field as a dotted path.
pub fn parse_with_path<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    root: &str,
) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = match (root.is_empty(), path.as_str()) {
            (true, p) => p.to_owned(),
            (false, ".") => root.to_owned(),
            (false, p) => format!("{root}.{p}"),
        };
        Error::invalid(field, e.into_inner().to_string())
    })
}

impl RunInput {
    /// Parses and validates a run input. Nothing is called before this succeeds.
    pub fn parse(value: serde_json::Value) -> Result<Self, Error> {
        let input: RunInput = parse_with_path(value, "")?;
        input.validate()?;
        Ok(input)
    }

    pub fn validate(&self) -> Result<(), Error> {
        self.policy.validate("policy")?;
        if let Some(t) = &self.scheduled_time {
            parse_time(t).map_err(|e| {
                Error::invalid(
                    "scheduled_time",
                    format!("`{t}` is not an RFC 3339 time ({e}); use e.g. 2026-11-29T03:00:00Z"),
                )
            })?;
        }
        if let Some(p) = self.poll_seconds {
            if p > MAX_POLL_SECONDS {
                return Err(Error::invalid(
                    "poll_seconds",
                    format!("{p} is more than 3600; use a value from 0 to 3600"),
                ));
            }
        }
        Ok(())
    }

    /// The scheduled time in contract form (UTC, whole seconds), falling back
    /// to the execution's start.
    pub fn scheduled_time_or(&self, started_at: &str) -> Result<OffsetDateTime, Error> {
        let raw = self.scheduled_time.as_deref().unwrap_or(started_at);
        let field = if self.scheduled_time.is_some() {
            "scheduled_time"
        } else {
            "started_at"
        };
        let t = parse_time(raw)
            .map_err(|e| Error::invalid(field, format!("`{raw}` is not an RFC 3339 time ({e})")))?;
        // A scheduled time in the future would become every later run's "newest"
        // recovery point and shift retention: refuse it.
        if let (Some(_), Ok(started)) = (&self.scheduled_time, parse_time(started_at)) {
            if t > started + time::Duration::hours(1) {
                return Err(Error::invalid(
                    "scheduled_time",
                    format!("`{raw}` is after the execution started ({started_at}); pass the schedule's time, <aws.scheduler.scheduled-time>"),
                ));
            }
        }
        Ok(utc(t))
    }
}

impl Policy {
    /// Checks everything serde cannot: names, regions, tags, combinations.
    /// `at` is the path of the policy inside the input, for error messages.
    pub fn validate(&self, at: &str) -> Result<(), Error> {
        validate_policy_name(&self.name).map_err(|m| Error::invalid(format!("{at}.name"), m))?;
        let sel = &self.selector;
        let at_sel = format!("{at}.selector");
        if sel.resource_types.is_empty() {
            return Err(Error::invalid(
                format!("{at_sel}.resource_types"),
                "is empty; list at least one of ebs-volume, ec2-instance, rds-instance, aurora-cluster, redshift-cluster",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, t) in sel.resource_types.iter().enumerate() {
            if !seen.insert(*t) {
                return Err(Error::invalid(
                    format!("{at_sel}.resource_types[{i}]"),
                    format!("`{t}` is listed twice; list each type once"),
                ));
            }
        }
        if sel.regions.is_empty() {
            return Err(Error::invalid(
                format!("{at_sel}.regions"),
                "is empty; list at least one region, e.g. us-east-1",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, r) in sel.regions.iter().enumerate() {
            if !is_region_name(r) {
                return Err(Error::invalid(
                    format!("{at_sel}.regions[{i}]"),
                    format!(
                        "`{r}` is not a region name; use a code such as us-east-1 or eu-west-2"
                    ),
                ));
            }
            if !seen.insert(r) {
                return Err(Error::invalid(
                    format!("{at_sel}.regions[{i}]"),
                    format!("`{r}` is listed twice; list each region once"),
                ));
            }
        }
        if sel.tags.is_empty() {
            return Err(Error::invalid(
                format!("{at_sel}.tags"),
                "is empty, which would select every resource; give at least one tag, e.g. {\"backup\": \"daily\"}",
            ));
        }
        validate_tags(&sel.tags, &format!("{at_sel}.tags"))?;
        validate_tags(&sel.exclude_tags, &format!("{at_sel}.exclude_tags"))?;
        for (k, v) in &sel.exclude_tags {
            if sel.tags.get(k) == Some(v) {
                return Err(Error::invalid(
                    format!("{at_sel}.exclude_tags.{k}"),
                    format!("`{k}={v}` is also required by selector.tags, so nothing could ever be selected; remove one of them"),
                ));
            }
        }
        if let Some(r) = &self.retention {
            r.rules(&format!("{at}.retention"))?;
        }
        let mut seen = BTreeSet::new();
        for (i, a) in self.accounts.iter().enumerate() {
            a.validate(&format!("{at}.accounts[{i}]"))?;
            if !seen.insert(&a.account) {
                return Err(Error::invalid(
                    format!("{at}.accounts[{i}].account"),
                    format!("`{}` is listed twice; list each account once", a.account),
                ));
            }
        }
        let mut units = BTreeSet::new();
        for (i, u) in self.organizational_units.iter().enumerate() {
            u.validate(&format!("{at}.organizational_units[{i}]"))?;
            if !units.insert(&u.id) {
                return Err(Error::invalid(
                    format!("{at}.organizational_units[{i}].id"),
                    format!("`{}` is listed twice; list each unit once", u.id),
                ));
            }
        }
        crate::copy::validate_destinations(self, at)?;
        if self.ec2.exclude_boot_volume && self.ec2.mode == Ec2Mode::Ami {
            return Err(Error::invalid(
                format!("{at}.ec2.exclude_boot_volume"),
                "applies to mode `snapshots` only; an AMI always includes the root volume",
            ));
        }
        Ok(())
    }

    pub fn selects_type(&self, t: ResourceType) -> bool {
        self.selector.resource_types.contains(&t)
    }
}

impl Selector {
    /// Why a source with these tags is left out, or `None` when it is selected.
    pub fn rejection(&self, tags: &Tags) -> Option<String> {
        for (k, v) in &self.tags {
            if tags.get(k) != Some(v) {
                return Some(format!("lacks tag {k}={v}"));
            }
        }
        for (k, v) in &self.exclude_tags {
            if tags.get(k) == Some(v) {
                return Some(format!("excluded by tag {k}={v}"));
            }
        }
        None
    }
}

/// Policy names become part of RDS, Redshift and AMI identifiers, so they follow
/// the strictest of those rules.
pub fn validate_policy_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if name.is_empty()
        || name.len() > MAX_POLICY_NAME
        || !ok_chars
        || !starts
        || name.ends_with('-')
        || name.contains("--")
    {
        return Err(format!(
            "`{name}` is not a valid policy name; use 1-{MAX_POLICY_NAME} lowercase letters, digits and single hyphens, starting with a letter (e.g. `daily-prod`)"
        ));
    }
    Ok(())
}

/// `us-east-1`, `ap-southeast-2`, `us-gov-west-1`, `cn-north-1`, `eusc-de-east-1`:
/// a known geography prefix, a compass word, a number. Catches typos such as
/// `us-est-1` without a list of regions that would go stale.
pub fn is_region_name(r: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx", "cn", "eusc",
    ];
    const COMPASS: &[&str] = &[
        "east",
        "west",
        "north",
        "south",
        "central",
        "northeast",
        "northwest",
        "southeast",
        "southwest",
    ];
    let parts: Vec<&str> = r.split('-').collect();
    if !(3..=4).contains(&parts.len()) {
        return false;
    }
    let last = parts[parts.len() - 1];
    let compass = parts[parts.len() - 2];
    let letters = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase());
    (1..=2).contains(&last.len())
        && last.chars().all(|c| c.is_ascii_digit())
        && PREFIXES.contains(&parts[0])
        && COMPASS.contains(&compass)
        && parts[1..parts.len() - 1].iter().all(|p| letters(p))
}

fn validate_tags(tags: &BTreeMap<String, String>, at: &str) -> Result<(), Error> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(Error::invalid(
                at,
                format!("tag key `{k}` must be 1-128 characters"),
            ));
        }
        if v.chars().count() > 256 {
            return Err(Error::invalid(
                format!("{at}.{k}"),
                "tag value is longer than 256 characters",
            ));
        }
    }
    Ok(())
}

/// The JSON Schema of the backup state machine's input, committed under `infra/schemas/`.
pub fn run_input_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(RunInput);
    serde_json::to_value(schema).expect("a schema serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> serde_json::Value {
        json!({
            "policy": {
                "name": "daily",
                "selector": {
                    "resource_types": ["ebs-volume", "ec2-instance"],
                    "regions": ["us-east-1", "eu-west-1"],
                    "tags": {"backup": "daily"}
                }
            },
            "scheduled_time": "2026-11-29T03:00:00Z"
        })
    }

    fn err_field(v: serde_json::Value) -> (String, String) {
        match RunInput::parse(v) {
            Err(Error::InvalidInput { field, message }) => (field, message),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_good_policy_with_defaults() {
        let r = RunInput::parse(good()).unwrap();
        assert_eq!(r.policy.ec2.mode, Ec2Mode::Snapshots);
        assert!(r.policy.copy_source_tags);
        assert_eq!(
            r.scheduled_time_or("x").unwrap(),
            time::macros::datetime!(2026-11-29 03:00 UTC)
        );
    }

    #[test]
    fn unknown_field_is_named() {
        let mut v = good();
        v["policy"]["selector"]["colour"] = json!("blue");
        let (field, msg) = err_field(v);
        assert!(field.starts_with("policy.selector"), "{field}");
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn unknown_resource_type_is_named() {
        let mut v = good();
        v["policy"]["selector"]["resource_types"] = json!(["ebs-volume", "dynamodb-table"]);
        let (field, msg) = err_field(v);
        assert_eq!(field, "policy.selector.resource_types[1]");
        assert!(msg.contains("dynamodb-table"), "{msg}");
        assert!(msg.contains("ebs-volume"), "lists the valid values: {msg}");
    }

    #[test]
    fn empty_selector_tags_are_rejected() {
        let mut v = good();
        v["policy"]["selector"]["tags"] = json!({});
        let (field, msg) = err_field(v);
        assert_eq!(field, "policy.selector.tags");
        assert!(msg.contains("every resource"), "{msg}");
    }

    #[test]
    fn empty_types_and_regions_are_rejected() {
        let mut v = good();
        v["policy"]["selector"]["resource_types"] = json!([]);
        assert_eq!(err_field(v).0, "policy.selector.resource_types");
        let mut v = good();
        v["policy"]["selector"]["regions"] = json!([]);
        assert_eq!(err_field(v).0, "policy.selector.regions");
    }

    #[test]
    fn invalid_region_is_named() {
        let mut v = good();
        v["policy"]["selector"]["regions"] = json!(["us-east-1", "mars-1"]);
        let (field, msg) = err_field(v);
        assert_eq!(field, "policy.selector.regions[1]");
        assert!(msg.contains("mars-1"));
        for bad in [
            "US-EAST-1",
            "us-east",
            "useast1",
            "us-east-1a",
            "",
            "us--east-1",
            "moon-base-1",
            "us-est-1",
        ] {
            assert!(!is_region_name(bad), "{bad}");
        }
        for good in [
            "us-east-1",
            "ap-southeast-2",
            "us-gov-west-1",
            "cn-north-1",
            "eusc-de-east-1",
            "il-central-1",
        ] {
            assert!(is_region_name(good), "{good}");
        }
    }

    #[test]
    fn bad_names_and_times_are_named() {
        for bad in [
            "",
            "Daily",
            "1daily",
            "daily-",
            "a--b",
            "x y",
            &"a".repeat(41),
        ] {
            let mut v = good();
            v["policy"]["name"] = json!(bad);
            assert_eq!(err_field(v).0, "policy.name", "{bad}");
        }
        let future = RunInput::parse({
            let mut v = good();
            v["scheduled_time"] = json!("2062-11-29T03:00:00Z");
            v
        })
        .unwrap();
        match future.scheduled_time_or("2026-11-29T03:00:01Z") {
            Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "scheduled_time"),
            other => panic!("{other:?}"),
        }
        let mut v = good();
        v["scheduled_time"] = json!("yesterday");
        assert_eq!(err_field(v).0, "scheduled_time");
        let mut v = good();
        v["poll_seconds"] = json!(4000);
        assert_eq!(err_field(v).0, "poll_seconds");
        let mut v = good();
        v["policy"]["ec2"] = json!({"mode": "ami", "exclude_boot_volume": true});
        assert_eq!(err_field(v).0, "policy.ec2.exclude_boot_volume");
        let mut v = good();
        v["policy"]["selector"]["exclude_tags"] = json!({"backup": "daily"});
        assert_eq!(err_field(v).0, "policy.selector.exclude_tags.backup");
        let mut v = good();
        v["policy"]["retention"] = json!({"keep_weekly": -3});
        assert_eq!(err_field(v).0, "policy.retention.keep_weekly");
        let mut v = good();
        v["policy"]["retention"] = json!({"keep_within": "2 days"});
        assert_eq!(err_field(v).0, "policy.retention.keep_within");
        let mut v = good();
        v["policy"]["retention"] = json!({"keep_daily": 0});
        assert_eq!(err_field(v).0, "policy.retention");
    }

    #[test]
    fn selector_rejection_explains() {
        let r = RunInput::parse({
            let mut v = good();
            v["policy"]["selector"]["exclude_tags"] = json!({"backup-skip": "true"});
            v
        })
        .unwrap();
        let sel = &r.policy.selector;
        let tags = |pairs: &[(&str, &str)]| -> Tags {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(sel.rejection(&tags(&[("backup", "daily")])), None);
        assert_eq!(
            sel.rejection(&tags(&[("backup", "weekly")])).unwrap(),
            "lacks tag backup=daily"
        );
        assert_eq!(
            sel.rejection(&tags(&[("backup", "daily"), ("backup-skip", "true")]))
                .unwrap(),
            "excluded by tag backup-skip=true"
        );
    }
}

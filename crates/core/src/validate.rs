//! What every function checks of its input before any call, whoever sent it.
//!
//! Discover validates the run input; the later states receive what Discover
//! made, but a function can be invoked directly and a redrive can carry an
//! edited state. A batch whose run names another policy than its policy
//! document, whose scheduled time lies in the future (its recovery points
//! would become every source's newest and shift retention), or whose targets
//! are not where the batch says fails here, naming the field, and nothing is
//! called.

use time::{Duration, OffsetDateTime};

use crate::backup::discover::Batch;
use crate::backup::snapshot::BatchResult;
use crate::error::Error;
use crate::kind::parse_source_arn;
use crate::model::{format_time, Location};
use crate::policy::{is_region_name, validate_policy_name, MAX_POLL_SECONDS};
use crate::tags::RunKey;

/// How far ahead of the clock a time may be: clock skew, and a schedule's
/// time a moment ahead of the execution it starts.
pub const CLOCK_TOLERANCE: Duration = Duration::hours(1);

/// `t`, unless it lies further in the future than [`CLOCK_TOLERANCE`].
pub fn not_in_future(t: OffsetDateTime, now: OffsetDateTime, field: &str) -> Result<(), Error> {
    if t > now + CLOCK_TOLERANCE {
        return Err(Error::invalid(
            field,
            format!(
                "`{}` is in the future (now {}); a recovery point's time must not be ahead of the clock",
                format_time(t),
                format_time(now)
            ),
        ));
    }
    Ok(())
}

impl RunKey {
    /// The run's identity as Discover makes it; `policy` is the policy
    /// document's name when the input carries one.
    pub fn validate(
        &self,
        policy: Option<&str>,
        now: OffsetDateTime,
        at: &str,
    ) -> Result<(), Error> {
        validate_policy_name(&self.policy)
            .map_err(|m| Error::invalid(format!("{at}.policy"), m))?;
        if let Some(name) = policy.filter(|n| *n != self.policy) {
            return Err(Error::invalid(
                format!("{at}.policy"),
                format!(
                    "`{}` is not the policy document's name `{name}`; a batch belongs to one policy",
                    self.policy
                ),
            ));
        }
        if self.execution.is_empty() {
            return Err(Error::invalid(
                format!("{at}.execution"),
                "is empty; pass $$.Execution.Name",
            ));
        }
        not_in_future(self.scheduled_time, now, &format!("{at}.scheduled_time"))
    }
}

fn validate_location(l: &Location, at: &str) -> Result<(), Error> {
    if l.account.len() != 12 || !l.account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(
            format!("{at}.account"),
            format!("`{}` is not an AWS account id (12 digits)", l.account),
        ));
    }
    if !is_region_name(&l.region) {
        return Err(Error::invalid(
            format!("{at}.region"),
            format!("`{}` is not a region name, e.g. us-east-1", l.region),
        ));
    }
    Ok(())
}

/// `poll_seconds` within 0-3600, and a `wait_seconds` that the doubling
/// waits could have reached (at most 15 minutes, or `poll_seconds`).
pub(crate) fn validate_waits(poll_seconds: u32, wait_seconds: u32) -> Result<(), Error> {
    validate_poll_seconds(poll_seconds)?;
    let cap = crate::backup::snapshot::MAX_WAIT_BETWEEN_CHECKS.max(poll_seconds);
    if wait_seconds > cap {
        return Err(Error::invalid(
            "wait_seconds",
            format!("{wait_seconds} is more than {cap}; use a value from 0 to {cap}"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_poll_seconds(p: u32) -> Result<(), Error> {
    if p > MAX_POLL_SECONDS {
        return Err(Error::invalid(
            "poll_seconds",
            format!(
                "{p} is more than {MAX_POLL_SECONDS}; use a value from 0 to {MAX_POLL_SECONDS}"
            ),
        ));
    }
    Ok(())
}

impl Batch {
    /// Everything Discover would have checked, and that the targets are
    /// sources of the batch's location and of the policy's types.
    pub fn validate(&self, now: OffsetDateTime) -> Result<(), Error> {
        self.policy.validate("policy")?;
        self.run.validate(Some(&self.policy.name), now, "run")?;
        validate_location(&self.location, "location")?;
        validate_poll_seconds(self.poll_seconds)?;
        if !self.policy.accounts.is_empty()
            && !self
                .policy
                .accounts
                .iter()
                .any(|a| a.account == self.location.account)
        {
            return Err(Error::invalid(
                "location.account",
                format!(
                    "{} is not one of the policy's accounts; a batch protects sources of the policy's own accounts",
                    self.location.account
                ),
            ));
        }
        for (i, t) in self.targets.iter().enumerate() {
            let at = format!("targets[{i}]");
            if !self.policy.selects_type(t.resource_type) {
                return Err(Error::invalid(
                    format!("{at}.resource_type"),
                    format!("`{}` is not a type the policy selects", t.resource_type),
                ));
            }
            let fits = parse_source_arn(&t.arn).is_some_and(|a| {
                a.resource_type == t.resource_type
                    && a.id == t.id
                    && a.account == self.location.account
                    && a.region == self.location.region
            });
            if !fits {
                return Err(Error::invalid(
                    format!("{at}.arn"),
                    format!(
                        "`{}` is not the ARN of {} `{}` at {}",
                        t.arn, t.resource_type, t.id, self.location
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl BatchResult {
    /// A batch after Snapshot: its run, location, and recovery points all of
    /// that location and that run.
    pub fn validate(&self, now: OffsetDateTime) -> Result<(), Error> {
        self.run.validate(None, now, "run")?;
        validate_location(&self.location, "location")?;
        validate_waits(self.poll_seconds, self.wait_seconds)?;
        if let Some(t) = self.waiting_since {
            not_in_future(t, now, "waiting_since")?;
        }
        if let Some(role) = &self.role {
            role.validate("role")?;
            if role.account != self.location.account {
                return Err(Error::invalid(
                    "role.account",
                    format!(
                        "is {}, not the batch's account {}",
                        role.account, self.location.account
                    ),
                ));
            }
        }
        for (i, r) in self.results.iter().enumerate() {
            let Some(p) = &r.recovery_point else { continue };
            let at = format!("results[{i}].recovery_point");
            if p.location != self.location {
                return Err(Error::invalid(
                    format!("{at}.location"),
                    format!(
                        "{} is not the batch's location {}",
                        p.location, self.location
                    ),
                ));
            }
            if p.created_at != self.run.scheduled_time {
                return Err(Error::invalid(
                    format!("{at}.created_at"),
                    "is not the run's scheduled time: a batch checks its own run's recovery points",
                ));
            }
        }
        Ok(())
    }
}

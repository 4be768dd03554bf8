//! Retention: which recovery points of one source to keep, with reasons.
//!
//! The rules are restic's `forget` policy, exactly (restic's
//! `ApplyPolicy`): recovery points newest first; `keep_last` keeps the N
//! newest; `keep_hourly` … `keep_yearly` keep the newest point of each of the
//! last N periods *that have points* (`-1`: every period), and a bucket that
//! still has counts left when it reaches the oldest point keeps that one too;
//! `keep_within` keeps everything within the duration of the newest point;
//! `keep_within_hourly` … `keep_within_yearly` keep the newest point of every
//! period within the duration of the newest point. Periods are UTC; weeks are
//! ISO weeks. Strongroom adds `max_age`: nothing older than it (relative to
//! now) is kept by the rules above.
//!
//! The planner is pure. What must never be deleted whatever the rules say
//! (holds, locks, AMI references, unfinished points, the newest completed
//! point of a source) is applied on top by [`plan`] from the facts the
//! caller passes in; ownership checks live in [`crate::prune`].

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, UtcOffset};

use crate::error::Error;
pub use crate::period::{PerPeriod, Period};
use crate::reason::Reason;

/// A retention policy (the `retention` object of a policy document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Keep the N newest recovery points (-1: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<i64>,
    /// Keep the newest recovery point of each of the last N hours that have one (-1: every hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<i64>,
    /// … of each of the last N days that have one (UTC days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<i64>,
    /// … of each of the last N ISO weeks that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<i64>,
    /// … of each of the last N months that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<i64>,
    /// … of each of the last N years that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<i64>,
    /// Keep every recovery point within this duration of the newest one, e.g. `2d`, `1y6m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
    /// Keep the newest recovery point of every hour within this duration of the newest one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within_hourly: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within_daily: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within_weekly: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within_monthly: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within_yearly: Option<String>,
    /// Strongroom's own limit: nothing older than this (relative to now) is kept by
    /// the rules above, e.g. `400d`. Holds, locks and the newest point still win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

/// A restic duration: years, months, days and hours, e.g. `1y2m3d4h`, `3m1y`.
/// Any count restic accepts (a 64-bit integer) is accepted, e.g. restic's own
/// "forever", `9999y`; a span reaching before the earliest representable time
/// reaches that time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub years: i64,
    pub months: i64,
    pub days: i64,
    pub hours: i64,
}

impl Span {
    /// Parses restic's duration syntax: numbers each followed by `y`, `m`, `d`
    /// or `h`, in any order (a repeated unit overrides, as in restic).
    pub fn parse(s: &str) -> Result<Span, String> {
        if s.is_empty() {
            return Err("is empty; write a duration such as 2d, 12h or 1y6m".into());
        }
        let mut span = Span::default();
        let mut num = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            if num.is_empty() {
                return Err(format!("`{s}`: expected a number before `{c}`; write a duration such as 2d, 12h or 1y6m"));
            }
            // restic reads each number as a Go int (64 bits).
            let n: i64 = num.parse().map_err(|_| {
                format!(
                    "`{s}`: the number {num} is too large; the largest is {}",
                    i64::MAX
                )
            })?;
            match c {
                'y' => span.years = n,
                'm' => span.months = n,
                'd' => span.days = n,
                'h' => span.hours = n,
                other => {
                    return Err(format!(
                        "`{s}`: invalid unit `{other}` after {num}; units are y (years), m (months), d (days), h (hours)"
                    ))
                }
            }
            num.clear();
        }
        if !num.is_empty() {
            return Err(format!(
                "`{s}`: no unit after {num}; units are y, m, d, h (e.g. {num}d)"
            ));
        }
        Ok(span)
    }

    pub fn is_zero(&self) -> bool {
        *self == Span::default()
    }

    /// `t` minus this span, with Go's `AddDate` normalisation (Mar 31 - 1m = Mar 3),
    /// saturating at the earliest representable time.
    pub fn before(&self, t: OffsetDateTime) -> OffsetDateTime {
        let earliest = time::PrimitiveDateTime::MIN.assume_utc();
        // Beyond these, the answer is before any representable date anyway
        // (and `Duration::days`/`hours` would overflow).
        const MAX_DAYS: i64 = 10_000_000;
        const MAX_HOURS: i64 = MAX_DAYS * 24;
        if self.days > MAX_DAYS || self.hours > MAX_HOURS {
            return earliest;
        }
        let t = t.to_offset(UtcOffset::UTC);
        let months = (t.year() as i64 * 12 + (t.month() as i64 - 1))
            .checked_sub(self.years.saturating_mul(12))
            .and_then(|m| m.checked_sub(self.months));
        let Some(months) = months else {
            return earliest;
        };
        let (year, month0) = (months.div_euclid(12), months.rem_euclid(12));
        let month = Month::try_from(month0 as u8 + 1).expect("0..12 + 1 is a month");
        let Some(first) = i32::try_from(year)
            .ok()
            .and_then(|y| Date::from_calendar_date(y, month, 1).ok())
        else {
            return earliest;
        };
        first
            .checked_add(time::Duration::days(t.day() as i64 - 1 - self.days))
            .map(|d| d.with_time(t.time()).assume_utc())
            .and_then(|d| d.checked_sub(time::Duration::hours(self.hours)))
            .unwrap_or(earliest)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.years != 0 {
            write!(f, "{}y", self.years)?;
        }
        if self.months != 0 {
            write!(f, "{}m", self.months)?;
        }
        if self.days != 0 {
            write!(f, "{}d", self.days)?;
        }
        if self.hours != 0 {
            write!(f, "{}h", self.hours)?;
        }
        Ok(())
    }
}

/// A validated [`Retention`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub last: i64,
    /// keep_hourly … keep_yearly.
    pub buckets: PerPeriod<i64>,
    pub within: Option<Span>,
    /// keep_within_hourly … keep_within_yearly.
    pub within_buckets: PerPeriod<Option<Span>>,
    pub max_age: Option<Span>,
}

impl Retention {
    /// Validates counts and durations; `at` is the path for error messages.
    pub fn rules(&self, at: &str) -> Result<Rules, Error> {
        let count = |v: Option<i64>, name: &str| -> Result<i64, Error> {
            match v {
                None => Ok(0),
                Some(n) if n >= -1 => Ok(n),
                Some(n) => Err(Error::invalid(
                    format!("{at}.{name}"),
                    format!("{n} is not allowed; use a count of 0 or more, or -1 for all"),
                )),
            }
        };
        let span = |v: &Option<String>, name: &str| -> Result<Option<Span>, Error> {
            match v {
                None => Ok(None),
                Some(s) => Span::parse(s)
                    .map(|d| if d.is_zero() { None } else { Some(d) })
                    .map_err(|m| Error::invalid(format!("{at}.{name}"), m)),
            }
        };
        let rules = Rules {
            last: count(self.keep_last, "keep_last")?,
            buckets: PerPeriod([
                count(self.keep_hourly, "keep_hourly")?,
                count(self.keep_daily, "keep_daily")?,
                count(self.keep_weekly, "keep_weekly")?,
                count(self.keep_monthly, "keep_monthly")?,
                count(self.keep_yearly, "keep_yearly")?,
            ]),
            within: span(&self.keep_within, "keep_within")?,
            within_buckets: PerPeriod([
                span(&self.keep_within_hourly, "keep_within_hourly")?,
                span(&self.keep_within_daily, "keep_within_daily")?,
                span(&self.keep_within_weekly, "keep_within_weekly")?,
                span(&self.keep_within_monthly, "keep_within_monthly")?,
                span(&self.keep_within_yearly, "keep_within_yearly")?,
            ]),
            max_age: span(&self.max_age, "max_age")?,
        };
        if rules.keeps_nothing() && rules.max_age.is_none() {
            return Err(Error::invalid(
                at,
                "keeps nothing: every count is 0 and no duration or max_age is set, so every recovery point \
                 would be deleted; set e.g. keep_daily 7 (or leave retention out to keep everything)",
            ));
        }
        Ok(rules)
    }
}

impl Rules {
    /// restic's `ExpirePolicy.Empty()`: no count and no duration.
    pub fn keeps_nothing(&self) -> bool {
        self.last == 0
            && self.buckets.values().all(|b| *b == 0)
            && self.within.is_none()
            && self.within_buckets.values().all(Option::is_none)
    }
}

/// One recovery point as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPoint {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Only completed points count towards the rules and may be deleted.
    #[serde(default = "yes")]
    pub completed: bool,
    /// Reasons this point must be kept whatever the rules say
    /// (`hold`, `locked`, `in use by ami-…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected: Vec<Reason>,
}

fn yes() -> bool {
    true
}

/// A decision with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub id: String,
    pub reasons: Vec<Reason>,
}

/// The plan for one source: every input point is in exactly one list,
/// newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub keep: Vec<Decision>,
    pub delete: Vec<Decision>,
}

/// restic's `latest`: the newest point that is not in the future.
fn latest_not_after(points: &[(OffsetDateTime, &str)], now: OffsetDateTime) -> OffsetDateTime {
    points
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t < now)
        .max()
        .unwrap_or_else(|| {
            Date::from_calendar_date(1, Month::January, 1)
                .expect("year 1")
                .midnight()
                .assume_utc()
        })
}

/// restic's `ApplyPolicy` over `points` (completed, sorted newest first, ties
/// in input order): `Some(reasons)` to keep, `None` to remove, per point.
pub fn apply_restic(
    points: &[(OffsetDateTime, &str)],
    rules: &Rules,
    now: OffsetDateTime,
) -> Vec<Option<Vec<Reason>>> {
    if rules.keeps_nothing() {
        return points
            .iter()
            .map(|_| Some(vec![Reason::PolicyIsEmpty]))
            .collect();
    }
    if points.is_empty() {
        return Vec::new();
    }
    let latest = latest_not_after(points, now);
    // restic's buckets: keep_last (every point its own bucket), then hourly..yearly.
    let mut last_count = rules.last;
    let mut counts = rules.buckets;
    let mut last: PerPeriod<Option<i64>> = PerPeriod::default();
    let mut within_last: PerPeriod<Option<i64>> = PerPeriod::default();
    let within_cut = rules.within.map(|w| w.before(latest));
    let within_bucket_cut = PerPeriod(rules.within_buckets.0.map(|w| w.map(|w| w.before(latest))));
    let n = points.len();
    let mut out = Vec::with_capacity(n);
    for (nr, &(t, _)) in points.iter().enumerate() {
        let mut reasons = Vec::new();
        if let (Some(cut), Some(w)) = (within_cut, rules.within) {
            if t > cut {
                reasons.push(Reason::Within(w));
            }
        }
        // keep_last: each point is a new bucket value.
        if last_count > 0 || last_count == -1 {
            if last_count > 0 {
                last_count -= 1;
            }
            reasons.push(Reason::Last);
        }
        for p in Period::ALL {
            if counts[p] > 0 || counts[p] == -1 {
                let val = p.bucket(t);
                // Also keep the oldest point while the bucket has counts left.
                if last[p] != Some(val) || nr == n - 1 {
                    last[p] = Some(val);
                    if counts[p] > 0 {
                        counts[p] -= 1;
                    }
                    reasons.push(Reason::Periodic(p));
                }
            }
        }
        for p in Period::ALL {
            if let (Some(cut), Some(w)) = (within_bucket_cut[p], rules.within_buckets[p]) {
                if t > cut {
                    let val = p.bucket(t);
                    if within_last[p] != Some(val) {
                        within_last[p] = Some(val);
                        reasons.push(Reason::WithinPeriod(p, w));
                    }
                }
            }
        }
        out.push(if reasons.is_empty() {
            None
        } else {
            Some(reasons)
        });
    }
    out
}

/// Plans one source's recovery points: restic's rules over the completed
/// points, then `max_age`, then the protections, which always win:
/// unfinished points, `protected` reasons, and the newest completed point.
/// Points are ordered newest first; equal times keep their input order.
pub fn plan(points: &[PlanPoint], rules: &Rules, now: OffsetDateTime) -> Plan {
    let mut sorted: Vec<&PlanPoint> = points.iter().collect();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.time));
    let completed: Vec<(OffsetDateTime, &str)> = sorted
        .iter()
        .filter(|p| p.completed)
        .map(|p| (p.time, p.id.as_str()))
        .collect();
    let decided = apply_restic(&completed, rules, now);
    let newest_completed = completed.first().map(|(_, id)| *id);
    let max_age_cut = rules.max_age.map(|m| m.before(now));

    let mut plan = Plan::default();
    let mut restic = decided.into_iter();
    for p in sorted {
        let mut reasons = Vec::new();
        let mut delete_reason = Reason::MatchesNoKeepRule;
        if p.completed {
            if let Some(r) = restic.next().flatten() {
                reasons = r;
            }
            if let (Some(cut), Some(m)) = (max_age_cut, rules.max_age) {
                if p.time < cut {
                    reasons.clear();
                    delete_reason = Reason::OlderThanMaxAge(m);
                }
            }
        } else {
            reasons.push(Reason::NotCompleted);
        }
        // Protections win over every rule.
        let newest = (Some(p.id.as_str()) == newest_completed).then_some(Reason::NewestCompleted);
        for r in p.protected.iter().cloned().chain(newest) {
            if !reasons.contains(&r) {
                reasons.push(r);
            }
        }
        if reasons.is_empty() {
            plan.delete.push(Decision {
                id: p.id.clone(),
                reasons: vec![delete_reason],
            });
        } else {
            plan.keep.push(Decision {
                id: p.id.clone(),
                reasons,
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_are_named_and_indexed_in_order() {
        let names = Period::ALL.map(Period::name);
        assert_eq!(names, ["hourly", "daily", "weekly", "monthly", "yearly"]);
        let r = Retention {
            keep_hourly: Some(1),
            keep_daily: Some(2),
            keep_weekly: Some(3),
            keep_monthly: Some(4),
            keep_yearly: Some(5),
            keep_within_weekly: Some("3d".into()),
            ..Default::default()
        }
        .rules("r")
        .unwrap();
        assert_eq!(Period::ALL.map(|p| r.buckets[p]), [1, 2, 3, 4, 5]);
        assert_eq!(
            Period::ALL.map(|p| r.within_buckets[p].is_some()),
            [false, false, true, false, false]
        );
    }

    #[test]
    fn durations_parse_like_restic() {
        assert_eq!(
            Span::parse("2d").unwrap(),
            Span {
                days: 2,
                ..Default::default()
            }
        );
        assert_eq!(
            Span::parse("3m1y").unwrap(),
            Span {
                years: 1,
                months: 3,
                ..Default::default()
            }
        );
        assert_eq!(
            Span::parse("1y2m3d4h").unwrap(),
            Span {
                years: 1,
                months: 2,
                days: 3,
                hours: 4
            }
        );
        assert_eq!(Span::parse("1y2m3d4h").unwrap().to_string(), "1y2m3d4h");
        for bad in [
            "",
            "d",
            "2",
            "2w",
            "-1d",
            "1.5d",
            "2 d",
            "99999999999999999999d",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
        // Whatever restic accepts: its own "forever" and more.
        for good in ["9999y", "20000y", "99999999d", "9223372036854775807h"] {
            assert!(Span::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn subtraction_normalises_like_go_add_date() {
        // Go: time.Date(2026, 3, 31).AddDate(0, -1, 0) = 2026-03-03 (Feb 31 -> Mar 3).
        let t = datetime!(2026-03-31 12:00 UTC);
        assert_eq!(
            Span {
                months: 1,
                ..Default::default()
            }
            .before(t),
            datetime!(2026-03-03 12:00 UTC)
        );
        assert_eq!(
            Span {
                years: 1,
                ..Default::default()
            }
            .before(datetime!(2024-02-29 00:00 UTC)),
            datetime!(2023-03-01 00:00 UTC)
        );
        assert_eq!(
            Span {
                days: 2,
                hours: 3,
                ..Default::default()
            }
            .before(t),
            datetime!(2026-03-29 09:00 UTC)
        );
        assert_eq!(
            Span {
                months: 13,
                ..Default::default()
            }
            .before(datetime!(2026-01-15 00:00 UTC)),
            datetime!(2024-12-15 00:00 UTC)
        );
    }

    #[test]
    fn spans_beyond_the_calendar_saturate_at_its_start() {
        let t = datetime!(2026-11-29 03:00 UTC);
        let earliest = time::PrimitiveDateTime::MIN.assume_utc();
        for s in [
            "20000y",
            "99999999d",
            "9223372036854775807h",
            "9223372036854775807m",
        ] {
            assert_eq!(Span::parse(s).unwrap().before(t), earliest, "{s}");
        }
        // Within the calendar (back to year -9999), nothing changes.
        assert_eq!(
            Span::parse("2000y").unwrap().before(t),
            datetime!(0026-11-29 03:00 UTC)
        );
        assert_eq!(Span::parse("9999y").unwrap().before(t).year(), -7973);
    }

    #[test]
    fn invalid_retention_names_the_field() {
        let r = Retention {
            keep_daily: Some(-2),
            ..Default::default()
        };
        match r.rules("policy.retention") {
            Err(Error::InvalidInput { field, .. }) => {
                assert_eq!(field, "policy.retention.keep_daily")
            }
            other => panic!("{other:?}"),
        }
        let r = Retention {
            keep_within: Some("2w".into()),
            ..Default::default()
        };
        match r.rules("retention") {
            Err(Error::InvalidInput { field, message }) => {
                assert_eq!(field, "retention.keep_within");
                assert!(message.contains("invalid unit"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let r = Retention {
            keep_last: Some(0),
            keep_daily: Some(0),
            ..Default::default()
        };
        match r.rules("retention") {
            Err(Error::InvalidInput { field, message }) => {
                assert_eq!(field, "retention");
                assert!(message.contains("keeps nothing"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(Retention {
            max_age: Some("30d".into()),
            ..Default::default()
        }
        .rules("r")
        .is_ok());
        assert!(Retention {
            keep_last: Some(-1),
            ..Default::default()
        }
        .rules("r")
        .is_ok());
    }
}

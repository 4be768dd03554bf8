//! Quota preflight: before a run creates anything, how much room each
//! service's snapshot quota has left at each location, and whether the
//! policy's retention will outgrow it. Findings are warnings in the run
//! report; a create that still runs into a quota fails alone with
//! `Strongroom.QuotaExceeded` naming the quota and the fix.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::RecoveryPointKind;
use crate::period::Period;
use crate::retention::{Rules, Span};

/// A per-region quota that recovery points count against.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    /// EBS snapshots per region (Service Quotas `L-309BACF6`), counting
    /// volume snapshots, instance set members and AMI snapshots alike.
    EbsSnapshots,
    /// RDS manual DB snapshots per region (`ManualSnapshots`).
    RdsManualSnapshots,
    /// RDS manual DB cluster snapshots per region (`ManualClusterSnapshots`).
    RdsManualClusterSnapshots,
    /// Redshift manual snapshots per region.
    RedshiftManualSnapshots,
}

impl Quota {
    /// The quota a kind of recovery point counts against.
    pub const fn of(kind: RecoveryPointKind) -> Self {
        match kind {
            RecoveryPointKind::EbsSnapshot
            | RecoveryPointKind::Ec2SnapshotSet
            | RecoveryPointKind::Ami => Self::EbsSnapshots,
            RecoveryPointKind::RdsSnapshot => Self::RdsManualSnapshots,
            RecoveryPointKind::AuroraSnapshot => Self::RdsManualClusterSnapshots,
            RecoveryPointKind::RedshiftSnapshot => Self::RedshiftManualSnapshots,
        }
    }

    /// AWS's default value, used where no API tells the account's own.
    pub const fn aws_default(self) -> u64 {
        match self {
            Self::EbsSnapshots => 100_000,
            Self::RdsManualSnapshots | Self::RdsManualClusterSnapshots => 100,
            Self::RedshiftManualSnapshots => 20,
        }
    }

    fn fix(self) -> &'static str {
        match self {
            Self::EbsSnapshots => "request more in Service Quotas (Amazon EBS, L-309BACF6)",
            Self::RdsManualSnapshots | Self::RdsManualClusterSnapshots => {
                "request more in Service Quotas (Amazon RDS)"
            }
            Self::RedshiftManualSnapshots => {
                "request more from AWS (Redshift limit increase), then set policy.quotas.redshift_manual_snapshots"
            }
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EbsSnapshots => "EBS snapshots",
            Self::RdsManualSnapshots => "RDS manual DB snapshots (ManualSnapshots)",
            Self::RdsManualClusterSnapshots => {
                "RDS manual DB cluster snapshots (ManualClusterSnapshots)"
            }
            Self::RedshiftManualSnapshots => "Redshift manual snapshots",
        })
    }
}

/// The account's own values of the quotas that no API tells (an increase
/// AWS granted). Without them Strongroom assumes AWS's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaLimits {
    /// EBS snapshots per region (AWS default 100,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs_snapshots: Option<u64>,
    /// Redshift manual snapshots per region (AWS default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redshift_manual_snapshots: Option<u64>,
}

/// A quota's use at one location, as the services report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUsage {
    pub quota: Quota,
    pub used: u64,
    pub max: u64,
}

/// A finding of the preflight, for the run report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaWarning {
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    pub message: String,
}

/// Recovery points of one source that the retention keeps at most, with one
/// run a day (the schedule is not part of the run input); `None` when it has
/// no bound (no retention, or a count of -1 without `max_age`). An upper
/// bound: one point may satisfy several rules, as the example
/// counts ("keep_daily 7, keep_weekly 4, keep_monthly 12" → 23).
pub fn kept_per_source(rules: Option<&Rules>) -> Option<u64> {
    let rules = rules?;
    let days = |s: &Span| -> u64 {
        let d = s.years * 365 + s.months * 30 + s.days + (s.hours + 23) / 24;
        u64::try_from(d.max(1)).unwrap_or(u64::MAX)
    };
    let mut total: Option<u64> = Some(0);
    let mut add = |n: Option<u64>| {
        total = match (total, n) {
            (Some(t), Some(n)) => Some(t.saturating_add(n)),
            _ => None,
        };
    };
    let count = |n: i64| u64::try_from(n).ok(); // -1 (all) has no bound
    add(count(rules.last));
    for n in rules.buckets.values() {
        add(count(*n));
    }
    if let Some(w) = &rules.within {
        add(Some(days(w)));
    }
    for (p, w) in Period::ALL.iter().zip(rules.within_buckets.values()) {
        if let Some(w) = w {
            let per = match p {
                Period::Hourly | Period::Daily => 1,
                Period::Weekly => 7,
                Period::Monthly => 30,
                Period::Yearly => 365,
            };
            add(Some(days(w).div_ceil(per)));
        }
    }
    // Only max_age: every point younger than it.
    if rules.keeps_nothing() {
        total = None;
    }
    match (total, &rules.max_age) {
        (Some(t), Some(m)) => Some(t.min(days(m))),
        (None, Some(m)) => Some(days(m)),
        (t, None) => t,
    }
}

/// What a run makes and keeps against each quota at one location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demand {
    /// Snapshots this run creates (an instance set counts one per instance:
    /// its volumes are not known before the create, so this is a floor).
    pub this_run: BTreeMap<Quota, u64>,
    /// Sources whose recovery points count against each quota.
    pub sources: BTreeMap<Quota, u64>,
}

impl Demand {
    /// Adds one selected source.
    pub fn add(&mut self, kind: RecoveryPointKind) {
        let q = Quota::of(kind);
        *self.this_run.entry(q).or_insert(0) += 1;
        *self.sources.entry(q).or_insert(0) += 1;
    }

    /// The quotas this demand counts against.
    pub fn quotas(&self) -> Vec<Quota> {
        self.sources.keys().copied().collect()
    }
}

/// The preflight's findings at one region: a run that needs more than the
/// room left, and a retention whose steady state exceeds the quota.
pub fn check(
    region: &str,
    usage: &[QuotaUsage],
    demand: &Demand,
    kept: Option<u64>,
) -> Vec<QuotaWarning> {
    let mut out = Vec::new();
    for u in usage {
        let warn = |message: String| QuotaWarning {
            region: region.to_owned(),
            quota: Some(u.quota),
            message,
        };
        let room = u.max.saturating_sub(u.used);
        let making = demand.this_run.get(&u.quota).copied().unwrap_or(0);
        if making > room {
            out.push(warn(format!(
                "quota {q} in {region}: this run makes {making} but only {room} are left \
                 ({used} of {max} used), so {short} will fail with Strongroom.QuotaExceeded; \
                 delete manual snapshots that no policy keeps, or {fix}",
                q = u.quota,
                used = u.used,
                max = u.max,
                short = making - room,
                fix = u.quota.fix(),
            )));
        }
        let sources = demand.sources.get(&u.quota).copied().unwrap_or(0);
        if sources == 0 {
            continue;
        }
        match kept {
            Some(k) if sources.saturating_mul(k) > u.max => out.push(warn(format!(
                "quota {q} in {region}: {sources} sources × {k} kept points = {total} > quota {max}: \
                 the policy will hit the quota as its history fills; keep fewer points \
                 (a shorter retention) or {fix}",
                q = u.quota,
                total = sources.saturating_mul(k),
                max = u.max,
                fix = u.quota.fix(),
            ))),
            None => out.push(warn(format!(
                "quota {q} in {region}: the retention keeps {sources} sources' recovery points \
                 without bound, so the policy will reach the quota of {max}; add a retention \
                 (e.g. keep_daily 7 and max_age) or {fix}",
                q = u.quota,
                max = u.max,
                fix = u.quota.fix(),
            ))),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceType;
    use crate::retention::Retention;

    fn rules(r: Retention) -> Rules {
        r.rules("retention").unwrap()
    }

    #[test]
    fn kept_points_per_source_follow_the_retention() {
        let gfs = rules(Retention {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            ..Default::default()
        });
        assert_eq!(kept_per_source(Some(&gfs)), Some(23));
        let capped = rules(Retention {
            keep_daily: Some(7),
            keep_monthly: Some(12),
            max_age: Some("30d".into()),
            ..Default::default()
        });
        assert_eq!(kept_per_source(Some(&capped)), Some(19));
        let capped_hard = rules(Retention {
            keep_monthly: Some(12),
            max_age: Some("10d".into()),
            ..Default::default()
        });
        assert_eq!(kept_per_source(Some(&capped_hard)), Some(10));
        let within = rules(Retention {
            keep_within: Some("2d".into()),
            keep_within_weekly: Some("1m".into()),
            ..Default::default()
        });
        // 2 days + 30 days of weeks (5).
        assert_eq!(kept_per_source(Some(&within)), Some(2 + 5));
        let all = rules(Retention {
            keep_last: Some(-1),
            ..Default::default()
        });
        assert_eq!(kept_per_source(Some(&all)), None);
        let all_but_aged = rules(Retention {
            keep_last: Some(-1),
            max_age: Some("1y".into()),
            ..Default::default()
        });
        assert_eq!(kept_per_source(Some(&all_but_aged)), Some(365));
        let only_age = rules(Retention {
            max_age: Some("90d".into()),
            ..Default::default()
        });
        assert_eq!(kept_per_source(Some(&only_age)), Some(90));
        assert_eq!(kept_per_source(None), None, "no retention: no bound");
    }

    #[test]
    fn warnings_name_the_quota_the_numbers_and_the_fix() {
        let mut demand = Demand::default();
        for _ in 0..14 {
            demand.add(RecoveryPointKind::RdsSnapshot);
        }
        demand.add(RecoveryPointKind::EbsSnapshot);
        let usage = [
            QuotaUsage {
                quota: Quota::RdsManualSnapshots,
                used: 90,
                max: 100,
            },
            QuotaUsage {
                quota: Quota::EbsSnapshots,
                used: 10,
                max: 100_000,
            },
        ];
        let w = check("eu-west-1", &usage, &demand, Some(23));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().all(|w| w.quota == Some(Quota::RdsManualSnapshots)));
        assert!(
            w[0].message
                .contains("this run makes 14 but only 10 are left")
                && w[0].message.contains("4 will fail"),
            "{}",
            w[0].message
        );
        assert!(
            w[1].message
                .contains("14 sources × 23 kept points = 322 > quota 100"),
            "{}",
            w[1].message
        );
        assert!(w[1].message.contains("Service Quotas"), "{}", w[1].message);
        // Room enough, bounded retention: nothing to say.
        assert!(check("eu-west-1", &usage[1..], &demand, Some(23)).is_empty());
        // Unbounded retention always reaches a quota.
        let w = check("eu-west-1", &usage[1..], &demand, None);
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("without bound"), "{}", w[0].message);
    }

    #[test]
    fn kinds_count_against_their_service_quota() {
        use crate::policy::Ec2Mode;
        let of = |types: &[ResourceType], mode| -> Vec<Quota> {
            let mut q: Vec<Quota> = types
                .iter()
                .map(|t| Quota::of(RecoveryPointKind::for_source(*t, mode)))
                .collect();
            q.sort();
            q.dedup();
            q
        };
        assert_eq!(
            of(
                &[ResourceType::EbsVolume, ResourceType::Ec2Instance],
                Ec2Mode::Ami
            ),
            [Quota::EbsSnapshots]
        );
        assert_eq!(
            of(&ResourceType::ALL, Ec2Mode::Snapshots),
            [
                Quota::EbsSnapshots,
                Quota::RdsManualSnapshots,
                Quota::RdsManualClusterSnapshots,
                Quota::RedshiftManualSnapshots
            ]
        );
    }
}

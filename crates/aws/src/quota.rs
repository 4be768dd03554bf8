//! The quota preflight's facts: how much of each snapshot quota a location
//! uses, and how big it is. RDS reports both (`DescribeAccountAttributes`);
//! for EBS and Redshift no API reports the account's own value, so they are
//! counted and sized by the policy's `quotas` or AWS's default.

use strongroom_core::quota::{Quota, QuotaLimits, QuotaUsage};
use strongroom_core::CloudError;

use crate::clients::LocationClients;
use crate::error::from_sdk;
use crate::sdk::all_pages;

/// The largest DescribeSnapshots page.
const EBS_PAGE: i32 = 1000;
/// The largest DescribeClusterSnapshots page.
const REDSHIFT_PAGE: i32 = 100;

/// One answer per quota asked: one call for both RDS quotas, a paged
/// count for EBS and for Redshift.
pub(crate) async fn usage(
    cx: &LocationClients,
    quotas: &[Quota],
    limits: &QuotaLimits,
) -> Result<Vec<QuotaUsage>, CloudError> {
    let region = cx.region_name();
    let mut out = Vec::new();
    let rds: Vec<Quota> = quotas
        .iter()
        .copied()
        .filter(|q| {
            matches!(
                q,
                Quota::RdsManualSnapshots | Quota::RdsManualClusterSnapshots
            )
        })
        .collect();
    if !rds.is_empty() {
        let attrs = cx
            .rds()
            .describe_account_attributes()
            .send()
            .await
            .map_err(|e| from_sdk(e, "DescribeAccountAttributes", "-", region))?;
        for q in rds {
            let name = match q {
                Quota::RdsManualSnapshots => "ManualSnapshots",
                _ => "ManualClusterSnapshots",
            };
            let found = attrs
                .account_quotas()
                .iter()
                .find(|a| a.account_quota_name() == Some(name));
            out.push(QuotaUsage {
                quota: q,
                used: found.and_then(|a| a.used()).map_or(0, |u| u.max(0) as u64),
                max: found
                    .and_then(|a| a.max())
                    .map_or(q.aws_default(), |m| m.max(0) as u64),
            });
        }
    }
    if quotas.contains(&Quota::EbsSnapshots) {
        let pages = cx
            .ec2()
            .describe_snapshots()
            .owner_ids("self")
            .max_results(EBS_PAGE)
            .into_paginator()
            .send();
        let used = all_pages(pages, "DescribeSnapshots", region, |p| {
            [p.snapshots().len()]
        })
        .await?
        .into_iter()
        .sum::<usize>();
        out.push(QuotaUsage {
            quota: Quota::EbsSnapshots,
            used: used as u64,
            max: limits
                .ebs_snapshots
                .unwrap_or(Quota::EbsSnapshots.aws_default()),
        });
    }
    if quotas.contains(&Quota::RedshiftManualSnapshots) {
        let pages = cx
            .redshift()
            .describe_cluster_snapshots()
            .snapshot_type("manual")
            .max_records(REDSHIFT_PAGE)
            .into_paginator()
            .send();
        let used = all_pages(pages, "DescribeClusterSnapshots", region, |p| {
            [p.snapshots()
                .iter()
                .filter(|s| s.snapshot_type() == Some("manual"))
                .count()]
        })
        .await?
        .into_iter()
        .sum::<usize>();
        out.push(QuotaUsage {
            quota: Quota::RedshiftManualSnapshots,
            used: used as u64,
            max: limits
                .redshift_manual_snapshots
                .unwrap_or(Quota::RedshiftManualSnapshots.aws_default()),
        });
    }
    Ok(out)
}

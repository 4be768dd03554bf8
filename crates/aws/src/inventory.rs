//! Discovery through the Resource Groups Tagging API: one paged call per
//! location finds every source type at once, filtered by tags on the server.

use aws_sdk_resourcegroupstagging::types::TagFilter;
use strongroom_core::kind::parse_source_arn;
use strongroom_core::model::{Location, ResourceType, Tags, Target};
use strongroom_core::policy::AccountRole;
use strongroom_core::ports::{FoundSource, Identity, Inventory};
use strongroom_core::quota::{Quota, QuotaLimits, QuotaUsage};
use strongroom_core::CloudError;

use crate::error::from_sdk;
use crate::AwsCloud;

/// The largest page GetResources serves.
pub const RESOURCES_PER_PAGE: i32 = 100;

impl Identity for AwsCloud {
    async fn home_account(&self) -> Result<String, CloudError> {
        self.clients.home_account().await
    }

    fn learn_home_account(&self, account: &str) {
        self.clients.set_home_account(account);
    }

    fn use_roles(&self, accounts: &[AccountRole]) {
        self.set_roles(accounts);
    }

    async fn accounts_under(&self, unit: &str) -> Result<Vec<String>, CloudError> {
        self.list_accounts_under(unit).await
    }
}

impl Inventory for AwsCloud {
    async fn find_sources(
        &self,
        location: &Location,
        types: &[ResourceType],
        tags: &Tags,
    ) -> Result<Vec<FoundSource>, CloudError> {
        let cx = self.clients.for_location(location).await?;
        let mut req = cx
            .tagging()
            .get_resources()
            .resources_per_page(RESOURCES_PER_PAGE);
        for t in types {
            req = req.resource_type_filters(t.facts().tagging_type);
        }
        for (k, v) in tags {
            req = req.tag_filters(TagFilter::builder().key(k).values(v).build());
        }
        let mut pages = req.into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(e, "GetResources", "-", &location.region))?;
            for mapping in page.resource_tag_mapping_list() {
                let Some(arn) = mapping.resource_arn() else {
                    continue;
                };
                // `rds:db` and `rds:cluster` also list Neptune/DocumentDB members
                // etc.; anything we cannot name is not a source.
                let Some(parsed) = parse_source_arn(arn) else {
                    continue;
                };
                if !types.contains(&parsed.resource_type) {
                    continue;
                }
                let tags = mapping
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect();
                found.push(FoundSource {
                    location: Location {
                        account: parsed.account,
                        region: parsed.region,
                    },
                    target: Target {
                        resource_type: parsed.resource_type,
                        id: parsed.id,
                        arn: arn.to_owned(),
                        tags,
                    },
                });
            }
        }
        Ok(found)
    }

    async fn quota_usage(
        &self,
        location: &Location,
        quotas: &[Quota],
        limits: &QuotaLimits,
    ) -> Result<Vec<QuotaUsage>, CloudError> {
        let cx = self.clients.for_location(location).await?;
        Box::pin(crate::quota::usage(&cx, quotas, limits)).await
    }
}

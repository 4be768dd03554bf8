//! Discovery through the Resource Groups Tagging API: one paged call per region
//! finds every source type at once, filtered by tags on the server.

use aws_sdk_resourcegroupstagging::types::TagFilter;
use strongroom_core::model::{ResourceType, Tags, Target};
use strongroom_core::ports::{FoundSource, Inventory};
use strongroom_core::CloudError;

use crate::arn::{parse_source_arn, tagging_type};
use crate::error::from_sdk;
use crate::AwsCloud;

/// The largest page GetResources serves.
pub const RESOURCES_PER_PAGE: i32 = 100;

impl Inventory for AwsCloud {
    async fn find_sources(
        &self,
        region: &str,
        types: &[ResourceType],
        tags: &Tags,
    ) -> Result<Vec<FoundSource>, CloudError> {
        let client = self.clients.tagging(region);
        let mut req = client
            .get_resources()
            .resources_per_page(RESOURCES_PER_PAGE);
        for t in types {
            req = req.resource_type_filters(tagging_type(*t));
        }
        for (k, v) in tags {
            req = req.tag_filters(TagFilter::builder().key(k).values(v).build());
        }
        let mut pages = req.into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(e, "GetResources", "-", region))?;
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
                    location: parsed.location,
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
}

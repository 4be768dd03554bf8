//! One place that builds SDK clients. Every client comes from the same
//! [`SdkConfig`] (so `AWS_ENDPOINT_URL`, credentials, retries and the HTTP
//! client are shared) with the region of the location it talks to.
//!
//! Cross-account locations (the vault account of a later stage) will add an
//! STS assume-role credentials provider per role here; nothing else changes.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Builds clients per region from one shared configuration.
#[derive(Debug, Clone)]
pub struct Clients {
    base: SdkConfig,
}

/// Attempts per call, including the first (standard retry mode, jittered backoff).
pub const MAX_ATTEMPTS: u32 = 5;

impl Clients {
    /// Loads the configuration once (environment, profile, container or Lambda
    /// credentials; `AWS_ENDPOINT_URL` when set).
    pub async fn from_env() -> Self {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .load()
            .await;
        Self { base }
    }

    pub fn from_config(base: SdkConfig) -> Self {
        Self { base }
    }

    pub fn config(&self) -> &SdkConfig {
        &self.base
    }

    fn region(region: &str) -> Region {
        Region::new(region.to_owned())
    }

    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&self.base)
                .region(Self::region(region))
                .build(),
        )
    }

    pub fn rds(&self, region: &str) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::from_conf(
            aws_sdk_rds::config::Builder::from(&self.base)
                .region(Self::region(region))
                .build(),
        )
    }

    pub fn redshift(&self, region: &str) -> aws_sdk_redshift::Client {
        aws_sdk_redshift::Client::from_conf(
            aws_sdk_redshift::config::Builder::from(&self.base)
                .region(Self::region(region))
                .build(),
        )
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.base)
    }

    pub fn tagging(&self, region: &str) -> aws_sdk_resourcegroupstagging::Client {
        aws_sdk_resourcegroupstagging::Client::from_conf(
            aws_sdk_resourcegroupstagging::config::Builder::from(&self.base)
                .region(Self::region(region))
                .build(),
        )
    }
}

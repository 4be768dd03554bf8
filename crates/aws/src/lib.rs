//! Strongroom's AWS adapters: the core's ports over the AWS SDK.
//!
//! - [`clients`]: one shared configuration, a client per region.
//! - [`inventory`]: sources via the Resource Groups Tagging API.
//! - [`recovery_points`]: create / look up / refresh recovery points.
//! - [`prune`]: list a policy's recovery points with the facts the safety
//!   invariants need, and delete them.
//! - [`error`]: SDK errors -> classified [`strongroom_core::CloudError`].

pub mod arn;
pub mod clients;
pub mod error;
pub mod inventory;
pub mod prune;
pub mod recovery_points;

pub use clients::Clients;

/// The AWS implementation of every port.
#[derive(Debug, Clone)]
pub struct AwsCloud {
    pub clients: Clients,
}

impl AwsCloud {
    pub fn new(clients: Clients) -> Self {
        Self { clients }
    }

    /// Loads the shared configuration from the environment.
    pub async fn from_env() -> Self {
        Self::new(Clients::from_env().await)
    }
}

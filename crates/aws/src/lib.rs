//! Strongroom's AWS adapters: the core's ports over the AWS SDK.
//!
//! - [`clients`]: one shared configuration, clients per location (account +
//!   region), an assume-role provider per configured role.
//! - [`inventory`]: sources via the Resource Groups Tagging API, and the
//!   quota preflight's facts (`quota`).
//! - `kinds`: one module per kind of recovery point (create, states, listing,
//!   delete), behind one trait; `sdk`: the plumbing they share.
//! - [`recovery_points`], [`prune`], [`copies`]: the ports, dispatching to
//!   the kinds (copies: with KMS grants and EBS Snapshot Lock).
//! - `organizations`: the accounts under an AWS Organizations unit.
//! - `store`: the run's files in S3 (the `ObjectStore` port).
//! - [`ebs_direct`]: an EBS snapshot as a read-only disk (the EBS direct APIs).
//! - [`error`]: SDK errors -> classified [`strongroom_core::CloudError`].

pub mod clients;
pub mod copies;
pub mod ebs_direct;
pub mod error;
mod file_restore;
pub mod inventory;
mod kinds;
mod organizations;
pub mod prune;
mod quota;
pub mod recovery_points;
pub mod restore;
mod sdk;
mod settings;
mod store;

pub use clients::{Clients, LocationClients, Role};

/// The AWS implementation of every port.
#[derive(Debug, Clone)]
pub struct AwsCloud {
    pub clients: Clients,
    /// The S3 client of the stack's bucket (home account and region), built
    /// on first use.
    s3: std::sync::OnceLock<aws_sdk_s3::Client>,
    /// The Organizations client (home account), built on first use.
    organizations: std::sync::OnceLock<aws_sdk_organizations::Client>,
}

impl AwsCloud {
    pub fn new(clients: Clients) -> Self {
        Self {
            clients,
            s3: std::sync::OnceLock::new(),
            organizations: std::sync::OnceLock::new(),
        }
    }

    /// Loads the shared configuration from the environment.
    pub async fn from_env() -> Self {
        Self::new(Clients::from_env().await)
    }

    /// Exactly the roles `accounts` name, from now on (a warm process keeps
    /// none of an earlier policy's).
    pub fn set_roles(&self, accounts: &[strongroom_core::policy::AccountRole]) {
        self.clients.replace_roles(
            accounts
                .iter()
                .filter_map(|a| {
                    let arn = a.role_arn.clone()?;
                    Some((
                        a.account.clone(),
                        Role {
                            arn,
                            external_id: a.external_id.clone(),
                        },
                    ))
                })
                .collect(),
        );
    }
}

//! One place that builds SDK clients, per location (account + region).
//!
//! Every client comes from the same [`SdkConfig`] (so `AWS_ENDPOINT_URL`,
//! retries and the HTTP client are shared) with the region of its location
//! and the credentials of its account: the function's own in its own account,
//! an STS `AssumeRole` provider for every other account that has a role
//! configured. Each provider is built once per role and kept for the life of
//! the process; it refreshes its credentials itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use strongroom_core::model::Location;
use strongroom_core::{CloudError, ErrorKind};
use tokio::sync::OnceCell;

use crate::error::from_sdk;

/// Attempts per call, including the first (standard retry mode: jittered
/// exponential backoff from 1 s, at most 20 s apart, about a minute in all).
/// Throttling on a busy account comes in bursts: with 8 attempts a call that
/// a fifth of requests are refused to still fails only once in ~400,000.
pub const MAX_ATTEMPTS: u32 = 8;
/// The session name on every assumed role: CloudTrail shows who acted.
pub const SESSION_NAME: &str = "strongroom";

/// The role to assume to act in another account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Role {
    pub arn: String,
    pub external_id: Option<String>,
}

/// Builds clients per location from one shared configuration.
#[derive(Debug, Clone)]
pub struct Clients {
    base: SdkConfig,
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Account -> the role to assume there.
    roles: Mutex<BTreeMap<String, Role>>,
    /// Role -> the configuration with its credentials provider, built once
    /// (concurrent first uses wait for the one AssumeRole in flight).
    assumed: Mutex<BTreeMap<Role, Arc<OnceCell<SdkConfig>>>>,
    /// The account of the function's own credentials (STS, asked once).
    home: OnceCell<String>,
}

impl Clients {
    /// Loads the configuration once (environment, profile, container or Lambda
    /// credentials; `AWS_ENDPOINT_URL` when set).
    pub async fn from_env() -> Self {
        // Boxed, like every deep SDK future here, so callers' futures stay shallow.
        let base = Box::pin(
            aws_config::defaults(BehaviorVersion::latest())
                .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
                .load(),
        )
        .await;
        Self::from_config(base)
    }

    pub fn from_config(base: SdkConfig) -> Self {
        Self {
            base,
            inner: Arc::default(),
        }
    }

    pub fn config(&self) -> &SdkConfig {
        &self.base
    }

    /// The EBS direct APIs in `region`, with the process's own credentials
    /// (no account lookup: the CLI reading a snapshot of its own account).
    pub fn own_ebs(&self, region: &str) -> aws_sdk_ebs::Client {
        aws_sdk_ebs::Client::from_conf(
            aws_sdk_ebs::config::Builder::from(&self.base)
                .region(Region::new(region.to_owned()))
                .build(),
        )
    }

    /// Exactly these roles from now on (account -> role): a warm process
    /// keeps no role of an earlier policy.
    pub fn replace_roles(&self, roles: BTreeMap<String, Role>) {
        *self.inner.roles.lock().expect("roles lock") = roles;
    }

    /// Acts in `account` through `role` from now on.
    pub fn set_role(&self, account: impl Into<String>, role: Role) {
        self.inner
            .roles
            .lock()
            .expect("roles lock")
            .insert(account.into(), role);
    }

    /// Records the account of the function's own credentials when the
    /// platform names it (the first one told wins), sparing the STS call.
    pub fn set_home_account(&self, account: &str) {
        let _ = self.inner.home.set(account.to_owned());
    }

    /// The account the function's own credentials belong to: as told by
    /// [`Clients::set_home_account`], else one STS call per process.
    pub async fn home_account(&self) -> Result<String, CloudError> {
        let get = self.inner.home.get_or_try_init(|| async {
            let out = Box::pin(
                aws_sdk_sts::Client::new(&self.base)
                    .get_caller_identity()
                    .send(),
            )
            .await
            .map_err(|e| from_sdk(e, "GetCallerIdentity", "-", "global"))?;
            Ok(out.account().unwrap_or_default().to_owned())
        });
        Box::pin(get).await.cloned()
    }

    /// The clients of one location: its region, and its account's credentials.
    /// An account other than the function's own needs a role ([`Clients::set_role`]).
    pub async fn for_location(&self, location: &Location) -> Result<LocationClients, CloudError> {
        let role = self
            .inner
            .roles
            .lock()
            .expect("roles lock")
            .get(&location.account)
            .cloned();
        let config = match role {
            // Boxed: the SDK's futures are deep types, and every caller's would nest them.
            Some(role) => Box::pin(self.assumed(role, location)).await?,
            None => {
                // Without any role the function can only ever reach its own
                // account; with roles, a location must be the home account or have one.
                let any_roles = !self.inner.roles.lock().expect("roles lock").is_empty();
                if any_roles && self.home_account().await? != location.account {
                    return Err(CloudError::new(
                        ErrorKind::AccessDenied,
                        "AssumeRole",
                        &location.account,
                        &location.region,
                        format!(
                            "no role is configured for account {}; name the role to assume there",
                            location.account
                        ),
                    ));
                }
                self.base.clone()
            }
        };
        Ok(LocationClients {
            location: location.clone(),
            config,
        })
    }

    /// The configuration with the role's credentials, assumed once per
    /// process. The role is assumed here, not at the first call: an account
    /// that cannot be reached is `Strongroom.AccessDenied` naming the role,
    /// not a failure of whatever call came first.
    async fn assumed(&self, role: Role, location: &Location) -> Result<SdkConfig, CloudError> {
        let cell = self
            .inner
            .assumed
            .lock()
            .expect("assumed lock")
            .entry(role.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.assume(role, location))
            .await
            .cloned()
    }

    async fn assume(&self, role: Role, location: &Location) -> Result<SdkConfig, CloudError> {
        let mut builder = AssumeRoleProvider::builder(&role.arn)
            .session_name(SESSION_NAME)
            .configure(&self.base);
        if let Some(id) = &role.external_id {
            builder = builder.external_id(id);
        }
        let provider = builder.build().await;
        let first = match provider.provide_credentials().await {
            Ok(c) => c,
            Err(e) => return Err(assume_role_error(&e, &role, location)),
        };
        let provider = Primed {
            first: Mutex::new(Some(first)),
            inner: provider,
        };
        Ok(self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build())
    }
}

/// Why a role could not be assumed: a transient failure (STS throttled, timed
/// out) is `Throttled`, to be retried; anything else is `AccessDenied`
/// naming the role and the account.
pub(crate) fn assume_role_error(
    e: &CredentialsError,
    role: &Role,
    location: &Location,
) -> CloudError {
    let why = causes(e);
    let transient = matches!(e, CredentialsError::ProviderTimedOut(_))
        || [
            "Throttling",
            "RequestLimitExceeded",
            "timed out",
            "dispatch failure",
            "IDPCommunicationError",
        ]
        .iter()
        .any(|t| why.contains(t));
    let with_id = if role.external_id.is_some() {
        " with this external id"
    } else {
        ""
    };
    let (kind, message) = if transient {
        (
            ErrorKind::Throttled,
            format!(
                "assuming role {} for account {} failed for now: {why}",
                role.arn, location.account
            ),
        )
    } else {
        (
            ErrorKind::AccessDenied,
            format!(
                "cannot reach account {} through role {}: {why}; check that the role exists, \
                 trusts this function's role{with_id} and allows what Strongroom needs",
                location.account, role.arn,
            ),
        )
    };
    CloudError::new(kind, "AssumeRole", &role.arn, &location.region, message)
}

/// An error and its causes in a line, each in its own words (no debug dumps).
pub(crate) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out.chars().take(600).collect()
}

/// A role's provider whose first credentials were fetched already (to find
/// an unreachable account before any call): the SDK's credentials cache gets
/// those, and later refreshes assume the role again.
#[derive(Debug)]
struct Primed {
    first: Mutex<Option<Credentials>>,
    inner: AssumeRoleProvider,
}

impl ProvideCredentials for Primed {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        // Credentials that expire within 5 minutes are not worth handing out.
        let first = self.first.lock().expect("primed lock").take().filter(|c| {
            c.expiry().is_none_or(|t| {
                t > std::time::SystemTime::now() + std::time::Duration::from_secs(300)
            })
        });
        match first {
            Some(c) => future::ProvideCredentials::ready(Ok(c)),
            None => self.inner.provide_credentials(),
        }
    }
}

/// The clients of one location.
#[derive(Debug, Clone)]
pub struct LocationClients {
    pub location: Location,
    config: SdkConfig,
}

impl LocationClients {
    fn region(&self) -> Region {
        Region::new(self.location.region.clone())
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&self.config)
                .region(self.region())
                .build(),
        )
    }

    /// The EBS direct APIs (snapshot blocks).
    pub fn ebs(&self) -> aws_sdk_ebs::Client {
        aws_sdk_ebs::Client::from_conf(
            aws_sdk_ebs::config::Builder::from(&self.config)
                .region(self.region())
                .build(),
        )
    }

    pub fn rds(&self) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::from_conf(
            aws_sdk_rds::config::Builder::from(&self.config)
                .region(self.region())
                .build(),
        )
    }

    pub fn redshift(&self) -> aws_sdk_redshift::Client {
        aws_sdk_redshift::Client::from_conf(
            aws_sdk_redshift::config::Builder::from(&self.config)
                .region(self.region())
                .build(),
        )
    }

    /// The Redshift client of this location's account in another region.
    pub fn redshift_in(&self, region: &str) -> aws_sdk_redshift::Client {
        aws_sdk_redshift::Client::from_conf(
            aws_sdk_redshift::config::Builder::from(&self.config)
                .region(Region::new(region.to_owned()))
                .build(),
        )
    }

    pub fn kms(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&self.config)
                .region(self.region())
                .build(),
        )
    }

    pub fn tagging(&self) -> aws_sdk_resourcegroupstagging::Client {
        aws_sdk_resourcegroupstagging::Client::from_conf(
            aws_sdk_resourcegroupstagging::config::Builder::from(&self.config)
                .region(self.region())
                .build(),
        )
    }

    /// The region, for error context.
    pub fn region_name(&self) -> &str {
        &self.location.region
    }
}

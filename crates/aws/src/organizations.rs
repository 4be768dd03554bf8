//! AWS Organizations: the accounts under a unit, for policies that name
//! organizational units. Organizations has one endpoint per partition; the
//! client uses the functions' own configuration (their role must be allowed
//! to list: the management account's, or a delegated administrator's).

use std::collections::VecDeque;

use aws_sdk_organizations::types::{Account, AccountState, AccountStatus};
use strongroom_core::CloudError;

use crate::error::from_sdk;
use crate::AwsCloud;

impl AwsCloud {
    fn organizations(&self) -> &aws_sdk_organizations::Client {
        self.organizations
            .get_or_init(|| aws_sdk_organizations::Client::new(self.clients.config()))
    }

    /// Every `ACTIVE` account under `unit` and the units below it (breadth
    /// first, each listing paged to its end).
    pub(crate) async fn list_accounts_under(&self, unit: &str) -> Result<Vec<String>, CloudError> {
        let client = self.organizations();
        let region = self.home_region();
        let mut accounts = Vec::new();
        let mut parents = VecDeque::from([unit.to_owned()]);
        while let Some(parent) = parents.pop_front() {
            let mut token = None;
            loop {
                let page = Box::pin(
                    client
                        .list_accounts_for_parent()
                        .parent_id(&parent)
                        .set_next_token(token)
                        .send(),
                )
                .await
                .map_err(|e| from_sdk(e, "ListAccountsForParent", &parent, &region))?;
                accounts.extend(
                    page.accounts()
                        .iter()
                        .filter(|a| active(a))
                        .filter_map(|a| a.id().map(str::to_owned)),
                );
                token = page.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            let mut token = None;
            loop {
                let page = Box::pin(
                    client
                        .list_organizational_units_for_parent()
                        .parent_id(&parent)
                        .set_next_token(token)
                        .send(),
                )
                .await
                .map_err(|e| from_sdk(e, "ListOrganizationalUnitsForParent", &parent, &region))?;
                parents.extend(
                    page.organizational_units()
                        .iter()
                        .filter_map(|u| u.id().map(str::to_owned)),
                );
                token = page.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(accounts)
    }
}

/// Whether an account is active: its `State` (AWS's field since 2025), or,
/// where an answer has only the older `Status`, that. An account with
/// neither is left out.
#[allow(deprecated)] // `status` is deprecated in favour of `state`, which older answers lack
fn active(a: &Account) -> bool {
    match a.state() {
        Some(state) => *state == AccountState::Active,
        None => a.status() == Some(&AccountStatus::Active),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn an_account_is_active_by_its_state_or_else_its_status() {
        let by_state = Account::builder().state(AccountState::Active).build();
        let suspended = Account::builder()
            .state(AccountState::Suspended)
            .status(AccountStatus::Active)
            .build();
        let by_status = Account::builder().status(AccountStatus::Active).build();
        let neither = Account::builder().build();
        assert!(active(&by_state));
        assert!(!active(&suspended), "State wins over the older Status");
        assert!(active(&by_status));
        assert!(!active(&neither));
    }
}

//! AWS Organizations: the accounts under a unit, for policies that name
//! organizational units. Organizations has one endpoint per partition; the
//! client uses the functions' own configuration (their role must be allowed
//! to list: the management account's, or a delegated administrator's).

use std::collections::VecDeque;

use aws_sdk_organizations::types::AccountState;
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
                        .filter(|a| a.state() == Some(&AccountState::Active))
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

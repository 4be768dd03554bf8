//! Clients per location against the emulator: the function's own account
//! with its own credentials, another account through an assumed role (moto
//! keeps a separate estate per account, as AWS does), and a location nobody
//! configured a role for refused before any call.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{ResourceType as Ec2ResourceType, Tag, TagSpecification};
use strongroom_aws::{AwsCloud, Clients, Role};
use strongroom_core::model::{Location, ResourceType};
use strongroom_core::ports::{Identity, Inventory};
use strongroom_core::ErrorKind;
use strongroom_tests::{Emulator, ACCOUNT};

const VAULT: &str = "210987654321";
const REGION: &str = "eu-west-1";

fn at(account: &str) -> Location {
    Location {
        account: account.into(),
        region: REGION.into(),
    }
}

#[tokio::test]
async fn each_location_uses_its_own_accounts_credentials() {
    let emu = Emulator::start();
    // AWS (and the emulator) let a role be assumed only if it exists.
    let vault_role = emu
        .seed_in("empty", VAULT, Some("strongroom"))
        .role_arn
        .unwrap();
    let clients = Clients::from_config(emu.sdk_config().await);
    clients.set_role(
        VAULT,
        Role {
            arn: vault_role,
            external_id: Some("strongroom-test".into()),
        },
    );
    let cloud = AwsCloud::new(clients.clone());
    assert_eq!(cloud.home_account().await.unwrap(), ACCOUNT);

    // A volume in the other account, made through that account's clients.
    let vault = clients.for_location(&at(VAULT)).await.unwrap();
    let made = vault
        .ec2()
        .create_volume()
        .availability_zone(format!("{REGION}a"))
        .size(8)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(Ec2ResourceType::Volume)
                .tags(Tag::builder().key("backup").value("vault").build())
                .build(),
        )
        .send()
        .await
        .expect("create a volume in the other account");
    let volume = made.volume_id().unwrap().to_owned();

    // The home account does not see it; the other account does, and its
    // discovery names the account it lives in.
    let tags: BTreeMap<String, String> = [("backup".to_owned(), "vault".to_owned())].into();
    let home = cloud
        .find_sources(&at(ACCOUNT), &[ResourceType::EbsVolume], &tags)
        .await
        .unwrap();
    assert!(home.is_empty(), "{home:?}");
    let found = cloud
        .find_sources(&at(VAULT), &[ResourceType::EbsVolume], &tags)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].target.id, volume);
    assert_eq!(found[0].location, at(VAULT));

    // The role is assumed once for the process, not per call.
    let assumed = emu
        .calls()
        .into_iter()
        .filter(|c| c.client == "strongroom" && c.action == "AssumeRole")
        .count();
    assert_eq!(assumed, 1);

    // An account with no role is refused, naming the account, with no call to it.
    emu.reset_calls();
    let err = cloud
        .find_sources(&at("333333333333"), &[ResourceType::EbsVolume], &tags)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied);
    assert!(err.message.contains("333333333333"), "{err}");
    assert!(
        emu.strongroom_calls().is_empty(),
        "{:?}",
        emu.strongroom_calls()
    );
}

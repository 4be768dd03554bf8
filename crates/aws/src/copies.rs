//! The [`Copies`] port: each call goes to the module of the kind it is
//! about (`crate::kinds`); KMS (is a key AWS managed, grants to the vault)
//! and EBS Snapshot Lock are here.

use std::collections::BTreeMap;

use futures::FutureExt;
use strongroom_core::copy::{
    Copies, CopyLimit, CopyLookup, SnapshotLock, SourceSnapshot, StartCopy,
};
use strongroom_core::model::{Location, RecoveryPointKind, RecoveryPointState};
use strongroom_core::tags::RunKey;
use strongroom_core::{CloudError, ErrorKind};

use crate::clients::LocationClients;
use crate::error::{code_of, from_sdk};
use crate::kinds::{lock_snapshots, with_adapter};
use crate::AwsCloud;

/// What the vault's copy role may do with a source key, by grant: what
/// copying a shared encrypted snapshot needs ("Share the KMS key", EBS
/// User Guide; "Sharing encrypted snapshots", RDS User Guide).
const GRANT_OPERATIONS: [aws_sdk_kms::types::GrantOperation; 5] = [
    aws_sdk_kms::types::GrantOperation::Decrypt,
    aws_sdk_kms::types::GrantOperation::DescribeKey,
    aws_sdk_kms::types::GrantOperation::CreateGrant,
    aws_sdk_kms::types::GrantOperation::ReEncryptFrom,
    aws_sdk_kms::types::GrantOperation::GenerateDataKeyWithoutPlaintext,
];

impl Copies for AwsCloud {
    async fn find_copies(
        &self,
        destination: &Location,
        run: &RunKey,
        kinds: &[RecoveryPointKind],
    ) -> Result<CopyLookup, CloudError> {
        let cx = self.clients.for_location(destination).await?;
        let mut out = CopyLookup::default();
        for kind in kinds {
            let (found, pending) =
                with_adapter!(*kind, |a| a.find_copies(&cx, run).boxed()).await?;
            out.found.extend(found);
            if let Some(limit) = CopyLimit::of(*kind) {
                *out.in_flight.entry(limit).or_insert(0) += pending;
            }
        }
        Ok(out)
    }

    async fn describe_sources(
        &self,
        location: &Location,
        kind: RecoveryPointKind,
        ids: &[String],
        key_managers: bool,
    ) -> Result<Vec<SourceSnapshot>, CloudError> {
        let cx = self.clients.for_location(location).await?;
        let mut sources = with_adapter!(kind, |a| a.describe_sources(&cx, ids).boxed()).await?;
        if !key_managers {
            return Ok(sources);
        }
        // One DescribeKey per key.
        let mut managed: BTreeMap<String, bool> = BTreeMap::new();
        for s in &mut sources {
            for key in s.kms_keys.clone() {
                let aws = match managed.get(&key) {
                    Some(m) => *m,
                    None => {
                        let m = Box::pin(aws_managed(&cx, &key)).await?;
                        managed.insert(key, m);
                        m
                    }
                };
                s.aws_managed_key |= aws;
            }
        }
        Ok(sources)
    }

    async fn set_shared(
        &self,
        location: &Location,
        kind: RecoveryPointKind,
        ids: &[String],
        account: &str,
        add: bool,
    ) -> Result<(), CloudError> {
        let cx = self.clients.for_location(location).await?;
        with_adapter!(kind, |a| a.set_shared(&cx, ids, account, add).boxed()).await
    }

    async fn grant(&self, key: &str, grantee: &str, account: &str) -> Result<String, CloudError> {
        let cx = self.clients.for_location(&key_location(key)?).await?;
        Box::pin(grant(&cx, key, grantee, account)).await
    }

    async fn revoke(&self, key: &str, grant_id: &str) -> Result<(), CloudError> {
        let cx = self.clients.for_location(&key_location(key)?).await?;
        Box::pin(revoke(&cx, key, grant_id)).await
    }

    async fn start_copy(
        &self,
        req: &StartCopy<'_>,
    ) -> Result<(String, RecoveryPointState), CloudError> {
        let cx = self.clients.for_location(req.destination).await?;
        with_adapter!(req.kind, |a| a.start_copy(&cx, req).boxed()).await
    }

    async fn lock(
        &self,
        location: &Location,
        ids: &[String],
        lock: &SnapshotLock,
    ) -> Result<(), CloudError> {
        let cx = self.clients.for_location(location).await?;
        Box::pin(lock_snapshots(&cx, ids, lock)).await
    }
}

/// Whether `key` is AWS managed (`KeyManager` = `AWS`): such a key cannot
/// be used by another account, so what it encrypts cannot be shared.
async fn aws_managed(cx: &LocationClients, key: &str) -> Result<bool, CloudError> {
    let out = cx
        .kms()
        .describe_key()
        .key_id(key)
        .send()
        .await
        .map_err(|e| from_sdk(e, "DescribeKey", key, cx.region_name()))?;
    Ok(out
        .key_metadata()
        .and_then(|m| m.key_manager())
        .is_some_and(|m| *m == aws_sdk_kms::types::KeyManagerType::Aws))
}

/// Lets `grantee` (the vault's copy role) use `key` for the copy. A key
/// policy that does not let this account's role create grants is
/// `AccessDenied` naming the statement to add.
async fn grant(
    cx: &LocationClients,
    key: &str,
    grantee: &str,
    vault: &str,
) -> Result<String, CloudError> {
    let sent = cx
        .kms()
        .create_grant()
        .key_id(key)
        .grantee_principal(grantee)
        .set_operations(Some(GRANT_OPERATIONS.to_vec()))
        .name("strongroom-vault-copy")
        .send()
        .await;
    match sent {
        Ok(out) => Ok(out.grant_id().unwrap_or_default().to_owned()),
        Err(e) => {
            let mut err = from_sdk(e, "CreateGrant", key, cx.region_name());
            if err.kind == ErrorKind::AccessDenied {
                err.message.push_str(&format!(
                    ". The copy function's role may not create grants on {key}: add to its key policy a statement allowing that role kms:CreateGrant (or allow the vault account {vault} kms:Decrypt, kms:DescribeKey, kms:CreateGrant, kms:ReEncryptFrom and kms:GenerateDataKeyWithoutPlaintext directly)"
                ));
            }
            Err(err)
        }
    }
}

/// Revokes a grant made by [`grant`]; one gone already counts as revoked.
async fn revoke(cx: &LocationClients, key: &str, grant_id: &str) -> Result<(), CloudError> {
    match cx
        .kms()
        .revoke_grant()
        .key_id(key)
        .grant_id(grant_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if code_of(&e).is_some_and(|c| c.contains("NotFound")) => Ok(()),
        Err(e) => Err(from_sdk(e, "RevokeGrant", key, cx.region_name())),
    }
}

/// The account and region of a snapshot's key (its `KmsKeyId`, an ARN).
fn key_location(key: &str) -> Result<Location, CloudError> {
    strongroom_core::copy::kms_key_location(key).ok_or_else(|| {
        CloudError::new(
            ErrorKind::Internal,
            "CreateGrant",
            key,
            "-",
            "the snapshot's KmsKeyId is not a key ARN",
        )
    })
}

// The vault account's stack: the same template as infra/vault-account.yaml
// (its key, copy role, optional prune and restore roles, parameters and outputs),
// written with the CloudFormation-level constructs so that the two stay
// statement-for-statement comparable (infra/check_template.py compares them).
// Deployed in the vault account, once per destination region; see the
// comment at the top of infra/vault-account.yaml.
import { Aws, BootstraplessSynthesizer, CfnCondition, CfnDeletionPolicy, CfnOutput, CfnParameter, Fn, Stack, StackProps } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import { Construct } from "constructs";
import { RESTORE_DENIED, restoreStatements } from "./restore";

export const VAULT_DESCRIPTION =
  "Strongroom vault: the KMS key and the roles through which a source account's Strongroom copies " +
  "recovery points into this account (and, optionally, prunes them and restores from them); the " +
  "copy and restore roles can never delete, unlock or share a copy.";

/** The IAM role ARN pattern of the source's roles (the vault template's). */
const ROLE_ARN = "arn:aws[a-z-]*:iam::\\d{12}:role/[\\w+=,.@/-]{1,512}";

export class VaultStack extends Stack {
  readonly copyRole: iam.CfnRole;

  constructor(scope: Construct, id: string, props: StackProps = {}) {
    // No assets and no bootstrap version rule: the vault account deploys it
    // without `cdk bootstrap` there (cdk deploy, which falls back to the
    // caller's credentials when the bootstrap's deploy role is absent, or the
    // synthesized template with aws cloudformation deploy).
    super(scope, id, { description: VAULT_DESCRIPTION, synthesizer: new BootstraplessSynthesizer(), ...props });
    const p = this.parameters();
    const hasExternalId = new CfnCondition(this, "HasExternalId", {
      expression: Fn.conditionNot(Fn.conditionEquals(p.externalId.valueAsString, "")),
    });
    const hasPruneRole = new CfnCondition(this, "HasPruneRole", {
      expression: Fn.conditionNot(Fn.conditionEquals(p.sourcePruneRole.valueAsString, "")),
    });
    const hasRestoreRole = new CfnCondition(this, "HasRestoreRole", {
      expression: Fn.conditionNot(Fn.conditionEquals(p.sourceRestoreRole.valueAsString, "")),
    });
    const partition = Aws.PARTITION;
    const account = Aws.ACCOUNT_ID;
    const source = p.sourceAccount.valueAsString;
    const snapshots = `arn:${partition}:ec2:*::snapshot/*`;
    const images = `arn:${partition}:ec2:*::image/*`;
    const managed = { StringEquals: { "aws:ResourceTag/strongroom:managed": "true" } };
    /** Only `principal` may assume the role, with the external id when one is set. */
    const trust = (sid: string, principal: string) => ({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: sid,
          Effect: "Allow",
          Principal: { AWS: principal },
          Action: "sts:AssumeRole",
          // A role of another account than SourceAccountId cannot assume it, whatever ARN was given.
          Condition: {
            StringEquals: {
              "aws:PrincipalAccount": p.sourceAccount.valueAsString,
              "sts:ExternalId": Fn.conditionIf(hasExternalId.logicalId, p.externalId.valueAsString, Aws.NO_VALUE),
            },
          },
        },
      ],
    });

    // -- Copying into the vault -------------------------------------------------------------
    this.copyRole = new iam.CfnRole(this, "VaultCopyRole", {
      description: "Strongroom's copy function in the source account copies recovery points here; it can never delete them.",
      assumeRolePolicyDocument: trust("SourceCopyFunction", p.sourceCopyRole.valueAsString),
      policies: [
        {
          policyName: "copy-into-vault",
          policyDocument: {
            Version: "2012-10-17",
            Statement: [
              {
                Sid: "Inspect",
                Effect: "Allow",
                Action: [
                  "ec2:DescribeSnapshots",
                  "ec2:DescribeImages",
                  "ec2:DescribeLockedSnapshots",
                  "rds:DescribeDBSnapshots",
                  "rds:DescribeDBClusterSnapshots",
                ],
                Resource: "*",
              },
              { Sid: "CopyEbsSnapshots", Effect: "Allow", Action: "ec2:CopySnapshot", Resource: snapshots },
              // The source's AMI (shared with this account with its snapshots), the copy and its snapshots.
              { Sid: "CopyAmis", Effect: "Allow", Action: "ec2:CopyImage", Resource: [images, snapshots] },
              // Tags only as CopySnapshot or CopyImage creates a copy: never on a copy already made.
              {
                Sid: "TagCopiesAtCreation",
                Effect: "Allow",
                Action: "ec2:CreateTags",
                Resource: [snapshots, images],
                Condition: { StringEquals: { "ec2:CreateAction": ["CopySnapshot", "CopyImage"] } },
              },
              { Sid: "LockCopies", Effect: "Allow", Action: "ec2:LockSnapshot", Resource: snapshots, Condition: managed },
              {
                Sid: "CopyDbSnapshots",
                Effect: "Allow",
                Action: ["rds:CopyDBSnapshot", "rds:CopyDBClusterSnapshot"],
                Resource: [
                  `arn:${partition}:rds:*:${account}:snapshot:strongroom-*`,
                  `arn:${partition}:rds:*:${account}:cluster-snapshot:strongroom-*`,
                  `arn:${partition}:rds:*:${source}:snapshot:strongroom-*`,
                  `arn:${partition}:rds:*:${source}:cluster-snapshot:strongroom-*`,
                ],
              },
              // RDS has no condition key that tells tags at creation from later ones.
              {
                Sid: "TagDbCopies",
                Effect: "Allow",
                Action: "rds:AddTagsToResource",
                Resource: [
                  `arn:${partition}:rds:*:${account}:snapshot:strongroom-*`,
                  `arn:${partition}:rds:*:${account}:cluster-snapshot:strongroom-*`,
                ],
              },
              // The source's key, through the grant the source makes for one copy.
              {
                Sid: "UseSourceKeysThroughEbsAndRds",
                Effect: "Allow",
                Action: [
                  "kms:Decrypt",
                  "kms:DescribeKey",
                  "kms:CreateGrant",
                  "kms:ReEncryptFrom",
                  "kms:GenerateDataKeyWithoutPlaintext",
                ],
                Resource: `arn:${partition}:kms:*:${source}:key/*`,
                Condition: { StringLike: { "kms:ViaService": ["ec2.*.amazonaws.com", "rds.*.amazonaws.com"] } },
              },
              // Whatever else is ever attached to this role: a compromised source can create and
              // tag copies, never delete, deregister, unlock, share, disable or archive them, nor end the key.
              {
                Sid: "DenyDeletingOrUnlocking",
                Effect: "Deny",
                Action: [
                  "ec2:DeleteSnapshot",
                  "ec2:DeregisterImage",
                  "ec2:UnlockSnapshot",
                  "ec2:ModifySnapshotAttribute",
                  "ec2:ModifyImageAttribute",
                  "ec2:DisableImage",
                  "ec2:ModifySnapshotTier",
                  "rds:DeleteDBSnapshot",
                  "rds:DeleteDBClusterSnapshot",
                  "rds:ModifyDBSnapshotAttribute",
                  "rds:ModifyDBClusterSnapshotAttribute",
                  "kms:ScheduleKeyDeletion",
                  "kms:DisableKey",
                  "kms:PutKeyPolicy",
                  "kms:RevokeGrant",
                ],
                Resource: "*",
              },
            ],
          },
        },
      ],
    });

    // -- The copies' key (retained: deleting it would make every copy unreadable) -------------
    const viaEbsAndRds = [`ec2.${Aws.REGION}.amazonaws.com`, `rds.${Aws.REGION}.amazonaws.com`];
    const key = new kms.CfnKey(this, "VaultKey", {
      description: "Strongroom vault copies (EBS and RDS snapshots copied from the source account).",
      enableKeyRotation: true,
      pendingWindowInDays: 30,
      keyPolicy: {
        Version: "2012-10-17",
        Statement: [
          // The standard statement: this account's IAM policies decide who administers and uses the key.
          {
            Sid: "VaultAccountAdministers",
            Effect: "Allow",
            Principal: { AWS: `arn:${partition}:iam::${account}:root` },
            Action: "kms:*",
            Resource: "*",
          },
          // The copy role uses the key through EBS and RDS only (same account: the key policy is enough).
          {
            Sid: "CopyRoleThroughEbsAndRds",
            Effect: "Allow",
            Principal: { AWS: this.copyRole.attrArn },
            Action: ["kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:DescribeKey"],
            Resource: "*",
            Condition: { StringEquals: { "kms:ViaService": viaEbsAndRds } },
          },
          {
            Sid: "CopyRoleGrantsForEbsAndRds",
            Effect: "Allow",
            Principal: { AWS: this.copyRole.attrArn },
            Action: "kms:CreateGrant",
            Resource: "*",
            Condition: {
              StringEquals: { "kms:ViaService": viaEbsAndRds },
              Bool: { "kms:GrantIsForAWSResource": "true" },
            },
          },
        ],
      },
    });
    key.cfnOptions.deletionPolicy = CfnDeletionPolicy.RETAIN;
    key.cfnOptions.updateReplacePolicy = CfnDeletionPolicy.RETAIN;
    new kms.CfnAlias(this, "VaultKeyAlias", { aliasName: "alias/strongroom-vault", targetKeyId: key.ref });

    // -- Pruning the vault (optional) ---------------------------------------------------------
    // Locked copies (EBS Snapshot Lock, compliance mode) cannot be deleted by anyone until the
    // lock expires, so even this role cannot remove them early.
    const pruneRole = new iam.CfnRole(this, "VaultPruneRole", {
      description: "Strongroom's prune function in the source account deletes expired Strongroom copies here.",
      assumeRolePolicyDocument: trust("SourcePruneFunction", p.sourcePruneRole.valueAsString),
      policies: [
        {
          policyName: "prune-vault",
          policyDocument: {
            Version: "2012-10-17",
            Statement: [
              {
                Sid: "Listings",
                Effect: "Allow",
                Action: [
                  "ec2:DescribeSnapshots",
                  "ec2:DescribeImages",
                  "ec2:DescribeLockedSnapshots",
                  "ec2:DescribeSnapshotAttribute",
                  "ec2:DescribeImageAttribute",
                  "rds:DescribeDBSnapshots",
                  "rds:DescribeDBClusterSnapshots",
                  "rds:DescribeDBSnapshotAttributes",
                  "rds:DescribeDBClusterSnapshotAttributes",
                  "redshift:DescribeClusterSnapshots",
                ],
                Resource: "*",
              },
              { Sid: "DeleteManagedEbsSnapshots", Effect: "Allow", Action: "ec2:DeleteSnapshot", Resource: snapshots, Condition: managed },
              // An expired AMI copy; its snapshots, deleted with it or after it, are the statement above's.
              { Sid: "DeregisterManagedAmis", Effect: "Allow", Action: "ec2:DeregisterImage", Resource: images, Condition: managed },
              {
                Sid: "MarkManagedSnapshotsDeleting",
                Effect: "Allow",
                Action: "ec2:CreateTags",
                Resource: snapshots,
                Condition: {
                  StringEquals: { "aws:ResourceTag/strongroom:managed": "true" },
                  "ForAllValues:StringEquals": { "aws:TagKeys": ["strongroom:deleting"] },
                },
              },
              {
                Sid: "DeleteManagedDbSnapshots",
                Effect: "Allow",
                Action: "rds:DeleteDBSnapshot",
                Resource: `arn:${partition}:rds:*:${account}:snapshot:strongroom-*`,
                Condition: { StringEquals: { "rds:snapshot-tag/strongroom:managed": "true" } },
              },
              {
                Sid: "DeleteManagedDbClusterSnapshots",
                Effect: "Allow",
                Action: "rds:DeleteDBClusterSnapshot",
                Resource: `arn:${partition}:rds:*:${account}:cluster-snapshot:strongroom-*`,
                Condition: { StringEquals: { "rds:cluster-snapshot-tag/strongroom:managed": "true" } },
              },
              {
                Sid: "DenyUnlockingOrSharing",
                Effect: "Deny",
                Action: [
                  "ec2:UnlockSnapshot",
                  "ec2:ModifySnapshotAttribute",
                  "ec2:ModifyImageAttribute",
                  "kms:ScheduleKeyDeletion",
                  "kms:DisableKey",
                  "kms:PutKeyPolicy",
                ],
                Resource: "*",
              },
            ],
          },
        },
      ],
    });
    pruneRole.cfnOptions.condition = hasPruneRole;

    // -- Restoring from the vault (optional) ----------------------------------------------------
    // Creates (tagged at creation), removes only what a restore made, and may never delete, unlock or
    // share a copy, nor end the key, whatever else is ever attached to it.
    const restoreRole = new iam.CfnRole(this, "VaultRestoreRole", {
      description: "Strongroom's restore function in the source account restores copies here; it can never delete them.",
      assumeRolePolicyDocument: trust("SourceRestoreFunction", p.sourceRestoreRole.valueAsString),
      policies: [
        {
          policyName: "restore-in-vault",
          policyDocument: {
            Version: "2012-10-17",
            Statement: [
              ...restoreStatements({
                partition,
                account,
                // The copies' key, through EBS, RDS and Redshift of this region (its policy leaves its use to IAM).
                keys: key.attrArn,
                via: {
                  operator: "StringEquals",
                  services: ["ec2", "rds", "redshift"].map((s) => `${s}.${Aws.REGION}.amazonaws.com`),
                },
              }),
              {
                Sid: "DenyDeletingOrUnsharingRecoveryPoints",
                Effect: "Deny",
                Action: [...RESTORE_DENIED, "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:PutKeyPolicy", "kms:RevokeGrant"],
                Resource: "*",
              },
            ],
          },
        },
      ],
    });
    restoreRole.cfnOptions.condition = hasRestoreRole;
    // As infra/vault-account.yaml's (infra/checkov.yaml says why).
    restoreRole.addMetadata("checkov", {
      skip: [
        {
          id: "CKV_AWS_111",
          comment:
            "The creates of a restore (ec2:CreateVolume, RunInstances, RegisterImage, CreateSecurityGroup; " +
            "the RDS and Redshift restores from a snapshot) take many resource types whose ids AWS or the " +
            "restore request choose: on * like the source stack's RestoreRole (the same statements). Their " +
            "EC2 tags only at creation (ec2:CreateAction), every removal only of what a restore made, and " +
            "the explicit Deny (infra/checkov.yaml).",
        },
      ],
    });

    new CfnOutput(this, "CopyRoleArn", {
      value: this.copyRole.attrArn,
      description: "The policy's copies[].role_arn (and one of the source stack's AssumableRoleArns).",
    });
    new CfnOutput(this, "PruneRoleArn", {
      value: pruneRole.attrArn,
      condition: hasPruneRole,
      description: "The policy's copies[].prune_role_arn (and one of the source stack's AssumableRoleArns).",
    });
    new CfnOutput(this, "RestoreRoleArn", {
      value: restoreRole.attrArn,
      condition: hasRestoreRole,
      description:
        "A restore request's location.role_arn for the copies here (and one of the source stack's AssumableRoleArns).",
    });
    new CfnOutput(this, "KeyArn", {
      value: key.attrArn,
      description: "The policy's copies[].kms_key, the key the copies are encrypted with.",
    });
  }

  private parameters() {
    return {
      sourceAccount: new CfnParameter(this, "SourceAccountId", {
        type: "String",
        allowedPattern: "^\\d{12}$",
        constraintDescription: "a 12-digit AWS account id",
        description: "The account whose Strongroom stack copies recovery points into this one.",
      }),
      sourceCopyRole: new CfnParameter(this, "SourceCopyRoleArn", {
        type: "String",
        allowedPattern: `^${ROLE_ARN}$`,
        constraintDescription: "an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
        description:
          "The source stack's copy function role (its CopyRoleArn output), a role of SourceAccountId " +
          "(which no pattern can say: the role's trust also requires that account).",
      }),
      sourcePruneRole: new CfnParameter(this, "SourcePruneRoleArn", {
        type: "String",
        default: "",
        allowedPattern: `^$|^${ROLE_ARN}$`,
        constraintDescription: "an IAM role ARN, or empty",
        description:
          "The source stack's prune function role (its PruneRoleArn output), a role of " +
          "SourceAccountId; when set, a prune role lets the source apply the retention here. " +
          "Empty: the source never deletes here.",
      }),
      sourceRestoreRole: new CfnParameter(this, "SourceRestoreRoleArn", {
        type: "String",
        default: "",
        allowedPattern: `^$|^${ROLE_ARN}$`,
        constraintDescription: "an IAM role ARN, or empty",
        description:
          "The source stack's restore function role (its RestoreRoleArn output), a role of " +
          "SourceAccountId; when set, a restore role lets the source restore the copies here. " +
          "Empty: the source restores nothing here.",
      }),
      externalId: new CfnParameter(this, "ExternalId", {
        type: "String",
        default: "",
        allowedPattern: "^$|^[\\w+=,.@:/-]{2,1224}$",
        constraintDescription: "2-1224 letters, digits or +=,.@:/-_, or empty",
        description: "The external id the roles' trust requires (the copies[] entry's external_id); empty for none.",
      }),
    };
  }
}

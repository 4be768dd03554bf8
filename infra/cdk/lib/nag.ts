import { Stack, Validations } from "aws-cdk-lib";

/** cdk-nag AwsSolutions findings that are deliberate, each with its reason. */
export function suppress(stack: Stack): void {
  for (const a of ACKNOWLEDGED) Validations.of(stack).acknowledge(a);
}

/** The same for the vault account's stack (lib/vault-stack.ts). */
export function suppressVault(stack: Stack): void {
  for (const a of VAULT_ACKNOWLEDGED) Validations.of(stack).acknowledge(a);
}

const IAM5 = "AwsSolutions::AwsSolutions-IAM5";
// cdk-nag does not look into the statements under an Fn::If: the restore
// role's OtherAccounts (AssumableRoleArns) and its FileRestoreBuckets and
// FileRestoreObjects (the FileRestoreBuckets parameter's buckets and their
// objects, `/*`) raise no finding here; infra/check_template.py guards them
// (exactly the parameter's buckets, whose pattern refuses wildcards; only
// ListBucket, PutObject, AbortMultipartUpload and ListMultipartUploadParts).

/** The restore roles' (RestoreRole, VaultRestoreRole; lib/restore.ts) ARN patterns, the same in both stacks. */
const RESTORE_ACKNOWLEDGED: { id: string; reason: string }[] = [
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:ec2:*:<AWS::AccountId>:volume/*]`,
    reason:
      "A restore's volumes, whose ids AWS chooses: tags only at creation (ec2:CreateAction), deletes only of volumes " +
      "tagged strongroom:restore and not strongroom:managed=true.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:ec2:*:<AWS::AccountId>:instance/*]`,
    reason:
      "A restore's instances, whose ids AWS chooses: tags only at creation (ec2:CreateAction), terminations only of " +
      "instances tagged strongroom:restore and not strongroom:managed=true.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:ec2:*:<AWS::AccountId>:security-group/*]`,
    reason:
      "A restore's security group, whose id AWS chooses: tags only at creation (ec2:CreateAction); its egress " +
      "revoked and the group deleted only when tagged strongroom:restore and not strongroom:managed=true.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/*]`,
    reason:
      "iam:PassRole of the instance profile's role a restored instance gets (its source's, any of the account's), " +
      "only to EC2 (iam:PassedToService ec2.amazonaws.com).",
  },
];

export const ACKNOWLEDGED: { id: string; reason: string }[] = [
  {
    id: `${IAM5}[Resource::*]`,
    reason:
      "Only for actions that take no resource ARN: tag:GetResources, the EC2/RDS/Redshift Describe* calls, " +
      "rds:DescribeAccountAttributes, the Organizations lists, ec2:Create{Snapshot,Snapshots,Image} (their tags are " +
      "limited by ec2:CreateAction), X-Ray and vended log delivery; the copy function's kms:DescribeKey (is a " +
      "source key AWS managed) and its key use only through EBS and RDS (kms:ViaService); and the restore function's " +
      "creates (ec2:CreateVolume, RunInstances, RegisterImage, CreateSecurityGroup: their tags only at creation, by " +
      "ec2:CreateAction; RDS and Redshift restores from a snapshot, which take many resource types).",
  },
  {
    id: `${IAM5}[Resource::<RunsBucket.Arn>/runs/*]`,
    reason: "Every run writes its own keys under runs/<policy>/<execution>/ of the stack's bucket; nothing else.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:ec2:*::snapshot/*]`,
    reason:
      "Deletes, the deleting and device marks, sharing with a vault and locks are conditioned on " +
      "aws:ResourceTag/strongroom:managed=true (the marks to their one tag key, aws:TagKeys); " +
      "tags at creation on ec2:CreateAction; CopySnapshot and CopyImage copy the run's own recovery points (their ids come " +
      "from the run). A file restore's reads of a recovery point's blocks (ebs:ListSnapshotBlocks, ebs:GetSnapshotBlock; " +
      "the snapshot ARN has no account) are conditioned on aws:ResourceTag/strongroom:managed=true; no EBS direct write.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:ec2:*:<AWS::AccountId>:snapshot/*]`,
    reason: "Tags at creation only (ec2:CreateAction is CreateSnapshot, CreateSnapshots or CreateImage).",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:ec2:*::image/*]`,
    reason:
      "Deregistration and sharing with a vault are conditioned on aws:ResourceTag/strongroom:managed=true (the restore " +
      "function's deregistration of its temporary image: tagged strongroom:restore and not managed); tags at creation " +
      "on ec2:CreateAction; CopyImage copies the run's own AMIs (their ids come from the run).",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<AWS::AccountId>:snapshot:strongroom-*]`,
    reason:
      "Only snapshots named by Strongroom (copies keep their name); deletes and sharing with a vault also need " +
      "rds:snapshot-tag/strongroom:managed=true.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<AWS::AccountId>:cluster-snapshot:strongroom-*]`,
    reason:
      "Only cluster snapshots named by Strongroom (copies keep their name); deletes and sharing with a vault also need " +
      "rds:cluster-snapshot-tag/strongroom:managed=true.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:redshift:*:<AWS::AccountId>:snapshot:*/strongroom-*]`,
    reason:
      "Only Redshift snapshots named by Strongroom (any cluster; a cluster's copies keep the name): tags at creation, " +
      "tags of the copies a cluster makes, their share with a vault account (a Redshift vault copy) and its revocation, " +
      "and prune deletes only its policy's managed points.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:redshift:*:<AWS::AccountId>:snapshotcopygrant:strongroom-*]`,
    reason: "Only the snapshot copy grants Strongroom names (strongroom-<hash of the destination key>), in a policy's destination region.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:kms:*:<AWS::AccountId>:key/*]`,
    reason:
      "The copy function grants the vault's copy role the use of a source's key for one copy, and revokes it: the keys " +
      "are the policy's sources' (any of this account's); a grant may give only the operations a copy needs (kms:GrantOperations). " +
      "The snapshot function's snapshot copy grant for a destination's key: only through Redshift (kms:ViaService). " +
      "The restore function's use of a recovery point's key: only through EBS, RDS and Redshift (kms:ViaService), " +
      "its grants only for AWS resources (kms:GrantIsForAWSResource); a file restore's SSE-KMS objects (the request's " +
      "key or the destination bucket's default, any of this account's): GenerateDataKey and Decrypt only through S3.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<AWS::AccountId>:db:*]`,
    reason:
      "CreateDBSnapshot of any selected instance: the policy's tags choose them at run time. The restore function's " +
      "instances, named by the restore request: tags (never of a snapshot), deletes only when tagged strongroom:restore.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<AWS::AccountId>:cluster:*]`,
    reason:
      "CreateDBClusterSnapshot of any selected cluster: the policy's tags choose them at run time. The restore " +
      "function's clusters, named by the restore request: tags (never of a snapshot), deletes only when tagged " +
      "strongroom:restore.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:redshift:*:<AWS::AccountId>:cluster:*]`,
    reason:
      "CreateClusterSnapshot of any selected cluster, and its cross-region snapshot copy (described, enabled when it " +
      "copies nowhere): the policy's tags choose them at run time. The restore function's clusters, named by the " +
      "restore request: tags (never of a snapshot), deletes only when tagged strongroom:restore, and removes only " +
      "the snapshot's strongroom:* contract tags (never strongroom:restore or strongroom:restored-from) from them.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<AWS::StackName>-backup/*]`,
    reason: "The Distributed Map's child executions of this state machine, whose names Step Functions chooses.",
  },
  {
    id: "AwsSolutions::AwsSolutions-SF1",
    reason:
      "Logs errors only, without execution data: a run's states carry the estate's resource ids and tags, and " +
      "ALL-level logging of every child execution's transitions would cost more than the run; the run report is in S3.",
  },
  {
    id: "AwsSolutions::AwsSolutions-S1",
    reason: "The bucket holds only the stack's own run files, written and read by its own roles; CloudTrail data events are the audit path.",
  },
  {
    id: "AwsSolutions::AwsSolutions-SQS3",
    reason: "This queue is the schedules' dead-letter queue.",
  },
  {
    id: `${IAM5}[Resource::<RunsBucket.Arn>/recovery-points/*]`,
    reason:
      "One record per recovery point (recovery-points/<account>/<region>/<id>.json), whose ids AWS chooses: the " +
      "snapshot function writes them, the copy function reads the original's and writes the copy's, the restore " +
      "function reads them.",
  },
  {
    id: `${IAM5}[Resource::<RunsBucket.Arn>/restores/*]`,
    reason:
      "Each restore writes its own report under restores/<execution>/ of the stack's bucket; a file restore its lists " +
      "of files there (read back at each step) and, by default, the files, in parts (ListParts, AbortMultipartUpload " +
      "of its own uploads); nothing else of the bucket, and no delete.",
  },
  ...RESTORE_ACKNOWLEDGED,
];

/** The vault stack's deliberate findings. */
export const VAULT_ACKNOWLEDGED: { id: string; reason: string }[] = [
  {
    id: `${IAM5}[Resource::*]`,
    reason:
      "Only for the EC2, RDS and Redshift Describe* calls, which take no resource ARN; the restore role's creates " +
      "(ec2:CreateVolume, RunInstances, RegisterImage, CreateSecurityGroup: their tags only at creation, by " +
      "ec2:CreateAction; RDS and Redshift restores from a snapshot, which take many resource types); the Deny " +
      "statements on * are not grants.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:ec2:*::snapshot/*]`,
    reason:
      "CopySnapshot and CopyImage of the source's shared snapshots and AMIs, whose ids come from the run; tags only at " +
      "creation (ec2:CreateAction CopySnapshot or CopyImage); locks and deletes only on aws:ResourceTag/strongroom:managed=true; " +
      "deleting, unlocking and sharing the copy role may not do at all (explicit Deny). The restore role's reads of a " +
      "copy's blocks for a file restore (ebs:ListSnapshotBlocks, ebs:GetSnapshotBlock) only on " +
      "aws:ResourceTag/strongroom:managed=true; no EBS direct write.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:ec2:*::image/*]`,
    reason:
      "CopyImage of the source's shared AMIs, whose ids come from the run; tags only at creation (ec2:CreateAction " +
      "CopyImage, or the restore role's CreateAction RegisterImage); deregistration (prune role) only on " +
      "aws:ResourceTag/strongroom:managed=true, (restore role) only of its temporary images, tagged strongroom:restore " +
      "and not managed; deregistering, sharing and disabling the copy role may not do at all (explicit Deny).",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<AWS::AccountId>:snapshot:strongroom-*]`,
    reason: "Only the copies, named like their Strongroom sources; deletes (prune role) also need rds:snapshot-tag/strongroom:managed=true.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<AWS::AccountId>:cluster-snapshot:strongroom-*]`,
    reason:
      "Only the copies, named like their Strongroom sources; deletes (prune role) also need " +
      "rds:cluster-snapshot-tag/strongroom:managed=true.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<SourceAccountId>:snapshot:strongroom-*]`,
    reason: "The source account's Strongroom snapshots, shared with this account for one copy (CopyDBSnapshot only).",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<SourceAccountId>:cluster-snapshot:strongroom-*]`,
    reason: "The source account's Strongroom cluster snapshots, shared with this account for one copy (CopyDBClusterSnapshot only).",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:kms:*:<SourceAccountId>:key/*]`,
    reason:
      "The source's keys, used only through EBS and RDS (kms:ViaService) and only as far as the grant the source makes " +
      "for one copy allows.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<AWS::AccountId>:db:*]`,
    reason:
      "The restore role's DB instances, named by the restore request: tags (never of a snapshot), and deletes only of " +
      "instances tagged strongroom:restore.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:rds:*:<AWS::AccountId>:cluster:*]`,
    reason:
      "The restore role's Aurora clusters, named by the restore request: tags (never of a snapshot), and deletes only " +
      "of clusters tagged strongroom:restore.",
  },
  {
    id: `${IAM5}[Resource::arn:<AWS::Partition>:redshift:*:<AWS::AccountId>:cluster:*]`,
    reason:
      "The restore role's Redshift clusters, named by the restore request: tags (never of a snapshot), and deletes " +
      "only of clusters tagged strongroom:restore, and removes only the snapshot's strongroom:* contract tags (never " +
      "strongroom:restore or strongroom:restored-from) from them.",
  },
  ...RESTORE_ACKNOWLEDGED,
];

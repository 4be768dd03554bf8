// The restore role's statements, shared by the home stack's RestoreRole
// (lib/stack.ts) and the vault's VaultRestoreRole (lib/vault-stack.ts), as
// infra/template.yaml and infra/vault-account.yaml write them: a restore
// creates; it removes only what a restore made (tagged strongroom:restore at
// creation, never a managed recovery point); a file restore reads a managed
// recovery point's snapshot blocks (EBS direct APIs, read only); and an
// explicit Deny keeps it from deleting or unsharing a recovery point (guards in
// infra/check_template.py).

type Statement = Record<string, unknown>;

/** What a restore may never do to a recovery point (the explicit Deny, on "*"). */
export const RESTORE_DENIED = [
  "ec2:DeleteSnapshot",
  "ec2:ModifySnapshotAttribute",
  "ec2:ModifyImageAttribute",
  "ec2:DisableImage",
  "ec2:LockSnapshot",
  "ec2:UnlockSnapshot",
  "rds:DeleteDBSnapshot",
  "rds:DeleteDBClusterSnapshot",
  "rds:ModifyDBSnapshotAttribute",
  "rds:ModifyDBClusterSnapshotAttribute",
  "redshift:DeleteClusterSnapshot",
  "redshift:RevokeSnapshotAccess",
  "redshift:AuthorizeSnapshotAccess",
];

/** A file restore's reads of a recovery point's snapshot (EBS direct APIs): never a write (StartSnapshot, PutSnapshotBlock, CompleteSnapshot). */
export const EBS_READS = ["ebs:ListSnapshotBlocks", "ebs:GetSnapshotBlock"];

/** A file restore's multipart uploads, besides s3:PutObject: listed before they complete, aborted on failure. */
export const FILE_UPLOADS = ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"];

/** Only what a restore made: tagged strongroom:restore, and not a managed recovery point. */
export const RESTORE_MADE = {
  StringLike: { "aws:ResourceTag/strongroom:restore": "*" },
  StringNotEquals: { "aws:ResourceTag/strongroom:managed": "true" },
};

/** The contract tags a restored cluster may carry: its strongroom: keys but the restore's own, only on what a restore made. */
export const RESTORE_UNTAG = {
  StringLike: { "aws:ResourceTag/strongroom:restore": "*" },
  "ForAllValues:StringLike": { "aws:TagKeys": "strongroom:*" },
  "ForAllValues:StringNotEquals": { "aws:TagKeys": ["strongroom:restore", "strongroom:restored-from"] },
};

export interface RestoreScope {
  partition: string;
  account: string;
  /** The keys EBS, RDS and Redshift may use on the role's behalf. */
  keys: unknown;
  /** `kms:ViaService`: its operator and the services' endpoints. */
  via: { operator: "StringLike" | "StringEquals"; services: unknown[] };
}

/** From the describes to a file restore's snapshot reads (after Logs/Tracing; before S3, the Deny, AssumeRole). */
export function restoreStatements(s: RestoreScope): Statement[] {
  const { partition, account } = s;
  const volumes = `arn:${partition}:ec2:*:${account}:volume/*`;
  const instances = `arn:${partition}:ec2:*:${account}:instance/*`;
  const groups = `arn:${partition}:ec2:*:${account}:security-group/*`;
  const images = `arn:${partition}:ec2:*::image/*`;
  const databases = [`arn:${partition}:rds:*:${account}:db:*`, `arn:${partition}:rds:*:${account}:cluster:*`];
  const clusters = `arn:${partition}:redshift:*:${account}:cluster:*`;
  const via = { [s.via.operator]: { "kms:ViaService": s.via.services } };
  return [
    // The recovery point (and whom it is shared with), the checks of a restore's settings against the account, and what it made.
    {
      Sid: "Inspect",
      Effect: "Allow",
      Action: [
        "ec2:DescribeSnapshots",
        "ec2:DescribeImages",
        "ec2:DescribeSnapshotAttribute",
        "ec2:DescribeImageAttribute",
        "ec2:DescribeVolumes",
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceStatus",
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeKeyPairs",
        "ec2:DescribeVpcs",
        "rds:DescribeDBSnapshots",
        "rds:DescribeDBClusterSnapshots",
        "rds:DescribeDBSnapshotAttributes",
        "rds:DescribeDBClusterSnapshotAttributes",
        "rds:DescribeDBInstances",
        "rds:DescribeDBClusters",
        "rds:DescribeDBSubnetGroups",
        "redshift:DescribeClusterSnapshots",
        "redshift:DescribeClusters",
        "redshift:DescribeClusterSubnetGroups",
      ],
      Resource: "*",
    },
    // A volume, an instance (from an AMI, or a snapshot set's image registered for it) and its group, tagged at creation.
    {
      Sid: "Ec2Create",
      Effect: "Allow",
      Action: ["ec2:CreateVolume", "ec2:RunInstances", "ec2:RegisterImage", "ec2:CreateSecurityGroup"],
      Resource: "*",
    },
    {
      Sid: "Ec2TagOnCreateOnly",
      Effect: "Allow",
      Action: "ec2:CreateTags",
      Resource: [volumes, instances, groups, images],
      Condition: {
        StringEquals: { "ec2:CreateAction": ["CreateVolume", "RunInstances", "RegisterImage", "CreateSecurityGroup"] },
      },
    },
    { Sid: "CloseRestoredGroups", Effect: "Allow", Action: "ec2:RevokeSecurityGroupEgress", Resource: groups, Condition: RESTORE_MADE },
    // A failed restore's remains and a snapshot set's temporary image: never a recovery point.
    {
      Sid: "RemoveWhatRestoresMade",
      Effect: "Allow",
      Action: ["ec2:TerminateInstances", "ec2:DeleteVolume", "ec2:DeleteSecurityGroup"],
      Resource: [instances, volumes, groups],
      Condition: RESTORE_MADE,
    },
    { Sid: "DeregisterRestoreImages", Effect: "Allow", Action: "ec2:DeregisterImage", Resource: images, Condition: RESTORE_MADE },
    // The instance profile a restored instance gets (the source's).
    {
      Sid: "PassInstanceProfileRoles",
      Effect: "Allow",
      Action: "iam:PassRole",
      Resource: `arn:${partition}:iam::${account}:role/*`,
      Condition: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } },
    },
    // An encrypted recovery point is restored by EBS, RDS or Redshift with its key, on the role's behalf; a file
    // restore's snapshot blocks are decrypted by EBS (GetSnapshotBlock) with kms:Decrypt through EC2 too.
    {
      Sid: "UseKeysThroughServices",
      Effect: "Allow",
      Action: [
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
      ],
      Resource: s.keys,
      Condition: via,
    },
    {
      Sid: "GrantsForServices",
      Effect: "Allow",
      Action: "kms:CreateGrant",
      Resource: s.keys,
      Condition: { ...via, Bool: { "kms:GrantIsForAWSResource": "true" } },
    },
    // Many resource types (parameter, option and subnet groups too); the new instance or cluster is the request's.
    {
      Sid: "RestoreDatabases",
      Effect: "Allow",
      Action: ["rds:RestoreDBInstanceFromDBSnapshot", "rds:RestoreDBClusterFromSnapshot", "rds:CreateDBInstance"],
      Resource: "*",
    },
    // RDS cannot tell tags at creation from later ones: instances and clusters only, never a snapshot.
    { Sid: "TagRestoredDatabases", Effect: "Allow", Action: "rds:AddTagsToResource", Resource: databases },
    {
      Sid: "RemoveRestoredDatabases",
      Effect: "Allow",
      Action: ["rds:DeleteDBInstance", "rds:DeleteDBCluster"],
      Resource: databases,
      Condition: RESTORE_MADE,
    },
    { Sid: "RestoreClusters", Effect: "Allow", Action: "redshift:RestoreFromClusterSnapshot", Resource: "*" },
    // RestoreFromClusterSnapshot takes no tags: they follow at once, on clusters only, never a snapshot.
    { Sid: "TagRestoredClusters", Effect: "Allow", Action: "redshift:CreateTags", Resource: clusters },
    { Sid: "RemoveRestoredClusters", Effect: "Allow", Action: "redshift:DeleteCluster", Resource: clusters, Condition: RESTORE_MADE },
    // A restored cluster may carry its snapshot's contract tags: only strongroom: keys of a cluster a restore made
    // (managed at that moment, so no managed condition), never the restore's own two keys, never a customer's tag.
    { Sid: "UntagRestoredClusters", Effect: "Allow", Action: "redshift:DeleteTags", Resource: clusters, Condition: RESTORE_UNTAG },
    // A file restore reads the files straight out of a recovery point's snapshot through the EBS direct APIs: read
    // only (never StartSnapshot, PutSnapshotBlock or CompleteSnapshot), only Strongroom's, tagged managed at creation.
    {
      Sid: "ReadRecoveryPointBlocks",
      Effect: "Allow",
      Action: EBS_READS,
      Resource: `arn:${partition}:ec2:*::snapshot/*`,
      Condition: { StringEquals: { "aws:ResourceTag/strongroom:managed": "true" } },
    },
  ];
}

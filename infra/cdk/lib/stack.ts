// Strongroom as a CDK stack: the same architecture as infra/template.yaml
// (same functions, state machine definition files, schedules, bucket, alerts
// and IAM statements), written with the CloudFormation-level constructs so
// that the two stay statement-for-statement comparable (the SAM/CDK
// equivalence check in infra/check_template.py compares them).
import * as fs from "fs";
import * as path from "path";
import { Aws, CfnCondition, CfnDeletionPolicy, CfnOutput, CfnParameter, Fn, Stack, StackProps } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as events from "aws-cdk-lib/aws-events";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as s3assets from "aws-cdk-lib/aws-s3-assets";
import * as scheduler from "aws-cdk-lib/aws-scheduler";
import * as sns from "aws-cdk-lib/aws-sns";
import * as sqs from "aws-cdk-lib/aws-sqs";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { Config, ROOT } from "./config";
import { FILE_UPLOADS, RESTORE_DENIED, restoreStatements } from "./restore";

export interface StrongroomProps extends StackProps {
  /** cargo-lambda's output: `<artifacts>/<function>/bootstrap`. */
  artifacts: string;
  config: Config;
}

type Statement = Record<string, unknown>;

export const FUNCTIONS = ["discover", "snapshot", "status", "copy", "prune", "report", "restore"] as const;
type FunctionName = (typeof FUNCTIONS)[number];
/** The functions the backup state machine runs (the restore state machine runs `restore` only). */
export const BACKUP_FUNCTIONS: readonly FunctionName[] = ["discover", "snapshot", "status", "copy", "prune", "report"];

export class StrongroomStack extends Stack {
  readonly stateMachine: sfn.CfnStateMachine;
  readonly restoreStateMachine: sfn.CfnStateMachine;

  constructor(scope: Construct, id: string, props: StrongroomProps) {
    super(scope, id, props);
    const p = this.parameters();
    const hasRoles = new CfnCondition(this, "HasAssumableRoles", {
      expression: Fn.conditionNot(Fn.conditionEquals(Fn.join("", p.assumableRoleArns.valueAsList), "")),
    });
    const resolvesUnits = new CfnCondition(this, "ResolvesUnits", {
      expression: Fn.conditionEquals(p.resolveUnits.valueAsString, "true"),
    });
    const hasFileRestoreBuckets = new CfnCondition(this, "HasFileRestoreBuckets", {
      expression: Fn.conditionNot(Fn.conditionEquals(Fn.join("", p.fileRestoreBuckets.valueAsList), "")),
    });
    const hasEmail = new CfnCondition(this, "HasEmail", {
      expression: Fn.conditionNot(Fn.conditionEquals(p.email.valueAsString, "")),
    });
    const when = (condition: CfnCondition, statement: Statement): unknown =>
      Fn.conditionIf(condition.logicalId, statement, Aws.NO_VALUE);
    const otherAccounts = when(hasRoles, {
      Sid: "OtherAccounts",
      Effect: "Allow",
      Action: "sts:AssumeRole",
      Resource: p.assumableRoleArns.valueAsList,
    });
    const units = when(resolvesUnits, {
      Sid: "OrganizationalUnits",
      Effect: "Allow",
      Action: ["organizations:ListAccountsForParent", "organizations:ListOrganizationalUnitsForParent"],
      Resource: "*",
    });

    // -- The run's files ---------------------------------------------------------------
    const bucket = new s3.CfnBucket(this, "RunsBucket", {
      bucketEncryption: {
        serverSideEncryptionConfiguration: [
          { serverSideEncryptionByDefault: { sseAlgorithm: "AES256" }, bucketKeyEnabled: true },
        ],
      },
      versioningConfiguration: { status: "Enabled" },
      publicAccessBlockConfiguration: {
        blockPublicAcls: true,
        blockPublicPolicy: true,
        ignorePublicAcls: true,
        restrictPublicBuckets: true,
      },
      ownershipControls: { rules: [{ objectOwnership: "BucketOwnerEnforced" }] },
      lifecycleConfiguration: {
        rules: [
          {
            id: "expire-runs",
            status: "Enabled",
            prefix: "runs/",
            expirationInDays: p.runRetention.valueAsNumber,
            noncurrentVersionExpiration: { noncurrentDays: 30 },
            abortIncompleteMultipartUpload: { daysAfterInitiation: 7 },
          },
          // Restore reports go like runs; recovery-points/ has no rule: it never expires.
          {
            id: "expire-restores",
            status: "Enabled",
            prefix: "restores/",
            expirationInDays: p.runRetention.valueAsNumber,
            noncurrentVersionExpiration: { noncurrentDays: 30 },
            abortIncompleteMultipartUpload: { daysAfterInitiation: 7 },
          },
        ],
      },
    });
    bucket.cfnOptions.deletionPolicy = CfnDeletionPolicy.RETAIN;
    bucket.cfnOptions.updateReplacePolicy = CfnDeletionPolicy.RETAIN;
    new s3.CfnBucketPolicy(this, "RunsBucketPolicy", {
      bucket: bucket.ref,
      policyDocument: {
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "TlsOnly",
            Effect: "Deny",
            Principal: "*",
            Action: "s3:*",
            Resource: [bucket.attrArn, `${bucket.attrArn}/*`],
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          },
        ],
      },
    });
    const runFiles = `${bucket.attrArn}/runs/*`;
    const records = `${bucket.attrArn}/recovery-points/*`;
    const restores = `${bucket.attrArn}/restores/*`;

    // -- Functions ------------------------------------------------------------------
    const partition = Aws.PARTITION;
    const account = Aws.ACCOUNT_ID;
    const tracing: Statement = {
      Sid: "Tracing",
      Effect: "Allow",
      Action: ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
      Resource: "*",
    };
    const statements: Record<FunctionName, unknown[]> = {
      discover: [
        tracing,
        { Sid: "FindSources", Effect: "Allow", Action: "tag:GetResources", Resource: "*" },
        {
          Sid: "QuotaPreflight",
          Effect: "Allow",
          Action: ["rds:DescribeAccountAttributes", "redshift:DescribeClusterSnapshots", "ec2:DescribeSnapshots"],
          Resource: "*",
        },
        { Sid: "RunFiles", Effect: "Allow", Action: "s3:PutObject", Resource: runFiles },
        otherAccounts,
        units,
      ],
      snapshot: [
        tracing,
        {
          Sid: "Ec2Create",
          Effect: "Allow",
          Action: ["ec2:CreateSnapshot", "ec2:CreateSnapshots", "ec2:CreateImage"],
          Resource: "*",
        },
        {
          Sid: "Ec2TagOnCreateOnly",
          Effect: "Allow",
          Action: "ec2:CreateTags",
          Resource: [
            `arn:${partition}:ec2:*:${account}:snapshot/*`,
            `arn:${partition}:ec2:*::snapshot/*`,
            `arn:${partition}:ec2:*::image/*`,
          ],
          Condition: { StringEquals: { "ec2:CreateAction": ["CreateSnapshot", "CreateSnapshots", "CreateImage"] } },
        },
        // An instance set's members are tagged with their device after CreateSnapshots (a value per member): only
        // Strongroom's snapshots (tagged managed at creation), only that tag.
        {
          Sid: "TagSetMemberDevices",
          Effect: "Allow",
          Action: "ec2:CreateTags",
          Resource: `arn:${partition}:ec2:*::snapshot/*`,
          Condition: {
            StringEquals: { "aws:ResourceTag/strongroom:managed": "true" },
            "ForAllValues:StringEquals": { "aws:TagKeys": ["strongroom:device"] },
          },
        },
        // The recovery points, and the sources' settings a restore needs.
        {
          Sid: "Ec2Lookups",
          Effect: "Allow",
          Action: ["ec2:DescribeSnapshots", "ec2:DescribeImages", "ec2:DescribeVolumes", "ec2:DescribeInstances"],
          Resource: "*",
        },
        {
          Sid: "RdsCreate",
          Effect: "Allow",
          Action: ["rds:CreateDBSnapshot", "rds:CreateDBClusterSnapshot"],
          Resource: [
            `arn:${partition}:rds:*:${account}:db:*`,
            `arn:${partition}:rds:*:${account}:cluster:*`,
            `arn:${partition}:rds:*:${account}:snapshot:strongroom-*`,
            `arn:${partition}:rds:*:${account}:cluster-snapshot:strongroom-*`,
          ],
        },
        {
          Sid: "RdsTagOnCreate",
          Effect: "Allow",
          Action: "rds:AddTagsToResource",
          Resource: [
            `arn:${partition}:rds:*:${account}:snapshot:strongroom-*`,
            `arn:${partition}:rds:*:${account}:cluster-snapshot:strongroom-*`,
          ],
        },
        {
          Sid: "RdsLookups",
          Effect: "Allow",
          Action: [
            "rds:DescribeDBSnapshots",
            "rds:DescribeDBClusterSnapshots",
            "rds:DescribeDBInstances",
            "rds:DescribeDBClusters",
          ],
          Resource: "*",
        },
        {
          Sid: "RedshiftCreate",
          Effect: "Allow",
          Action: "redshift:CreateClusterSnapshot",
          Resource: [
            `arn:${partition}:redshift:*:${account}:cluster:*`,
            `arn:${partition}:redshift:*:${account}:snapshot:*/strongroom-*`,
          ],
        },
        {
          Sid: "RedshiftTagOnCreate",
          Effect: "Allow",
          Action: "redshift:CreateTags",
          Resource: `arn:${partition}:redshift:*:${account}:snapshot:*/strongroom-*`,
        },
        { Sid: "RedshiftLookups", Effect: "Allow", Action: "redshift:DescribeClusterSnapshots", Resource: "*" },
        // A copy destination in this account: a cluster copies its own new snapshots to one other region once
        // configured (no snapshot copy call); configured only if it copies nowhere yet.
        {
          Sid: "ConfigureClusterCopies",
          Effect: "Allow",
          Action: ["redshift:DescribeClusters", "redshift:EnableSnapshotCopy"],
          Resource: `arn:${partition}:redshift:*:${account}:cluster:*`,
        },
        // A KMS-encrypted cluster's snapshot copy grant in the destination region: only Strongroom's names.
        {
          Sid: "CreateClusterCopyGrants",
          Effect: "Allow",
          Action: "redshift:CreateSnapshotCopyGrant",
          Resource: `arn:${partition}:redshift:*:${account}:snapshotcopygrant:strongroom-*`,
        },
        // CreateSnapshotCopyGrant's KMS calls, made by Redshift with the caller's permissions (kms:ViaService is
        // Redshift's: without a key it uses aws/redshift, whose policy allows CreateGrant only via Redshift).
        {
          Sid: "CopyGrantKeysThroughRedshift",
          Effect: "Allow",
          Action: ["kms:CreateGrant", "kms:DescribeKey"],
          Resource: `arn:${partition}:kms:*:${account}:key/*`,
          Condition: { StringLike: { "kms:ViaService": "redshift.*.amazonaws.com" } },
        },
        // What each recovery point needs to be restored, written as it is made; never expires.
        { Sid: "RecoveryPointRecords", Effect: "Allow", Action: "s3:PutObject", Resource: records },
        otherAccounts,
      ],
      status: [
        tracing,
        {
          Sid: "CompletionChecks",
          Effect: "Allow",
          Action: [
            "ec2:DescribeSnapshots",
            "ec2:DescribeImages",
            "rds:DescribeDBSnapshots",
            "rds:DescribeDBClusterSnapshots",
            "redshift:DescribeClusterSnapshots",
          ],
          Resource: "*",
        },
        otherAccounts,
      ],
      // Copies never delete (a guard in infra/check_template.py).
      copy: [
        tracing,
        // The sources (an AMI's name, tags and block device mappings too) and the copies made or pending.
        {
          Sid: "Inspect",
          Effect: "Allow",
          Action: [
            "ec2:DescribeSnapshots",
            "ec2:DescribeImages",
            "rds:DescribeDBSnapshots",
            "rds:DescribeDBClusterSnapshots",
            "redshift:DescribeClusterSnapshots",
          ],
          Resource: "*",
        },
        // A Redshift copy not there yet: does its cluster copy to this destination?
        {
          Sid: "WhereClustersCopy",
          Effect: "Allow",
          Action: "redshift:DescribeClusters",
          Resource: `arn:${partition}:redshift:*:${account}:cluster:*`,
        },
        // Whether a source's key is AWS managed: what it encrypts cannot be shared.
        { Sid: "KeyFacts", Effect: "Allow", Action: "kms:DescribeKey", Resource: "*" },
        { Sid: "CopyEbsSnapshots", Effect: "Allow", Action: "ec2:CopySnapshot", Resource: `arn:${partition}:ec2:*::snapshot/*` },
        // CopyImage is authorized on the source AMI, the new AMI and the snapshots it copies with it.
        {
          Sid: "CopyAmis",
          Effect: "Allow",
          Action: "ec2:CopyImage",
          Resource: [`arn:${partition}:ec2:*::image/*`, `arn:${partition}:ec2:*::snapshot/*`],
        },
        // A copied AMI and its snapshots are tagged by CopyImage's TagSpecifications, at creation.
        {
          Sid: "TagCopiesAtCreation",
          Effect: "Allow",
          Action: "ec2:CreateTags",
          Resource: [`arn:${partition}:ec2:*::snapshot/*`, `arn:${partition}:ec2:*::image/*`],
          Condition: { StringEquals: { "ec2:CreateAction": ["CopySnapshot", "CopyImage"] } },
        },
        {
          Sid: "CopyDbSnapshots",
          Effect: "Allow",
          Action: ["rds:CopyDBSnapshot", "rds:CopyDBClusterSnapshot", "rds:AddTagsToResource"],
          Resource: [
            `arn:${partition}:rds:*:${account}:snapshot:strongroom-*`,
            `arn:${partition}:rds:*:${account}:cluster-snapshot:strongroom-*`,
          ],
        },
        // A Redshift copy is made by its cluster, so it is tagged once found: only Strongroom's names.
        {
          Sid: "TagRedshiftCopies",
          Effect: "Allow",
          Action: "redshift:CreateTags",
          Resource: `arn:${partition}:redshift:*:${account}:snapshot:*/strongroom-*`,
        },
        // A copy to a vault account: shared with the vault for the copy, unshared after it.
        {
          Sid: "ShareManagedEbsSnapshots",
          Effect: "Allow",
          Action: "ec2:ModifySnapshotAttribute",
          Resource: `arn:${partition}:ec2:*::snapshot/*`,
          Condition: { StringEquals: { "aws:ResourceTag/strongroom:managed": "true" } },
        },
        // An AMI's launch permission (its snapshots' by the statement above), added for the copy, removed after it.
        {
          Sid: "ShareManagedAmis",
          Effect: "Allow",
          Action: "ec2:ModifyImageAttribute",
          Resource: `arn:${partition}:ec2:*::image/*`,
          Condition: { StringEquals: { "aws:ResourceTag/strongroom:managed": "true" } },
        },
        {
          Sid: "ShareManagedDbSnapshots",
          Effect: "Allow",
          Action: "rds:ModifyDBSnapshotAttribute",
          Resource: `arn:${partition}:rds:*:${account}:snapshot:strongroom-*`,
          Condition: { StringEquals: { "rds:snapshot-tag/strongroom:managed": "true" } },
        },
        {
          Sid: "ShareManagedDbClusterSnapshots",
          Effect: "Allow",
          Action: "rds:ModifyDBClusterSnapshotAttribute",
          Resource: `arn:${partition}:rds:*:${account}:cluster-snapshot:strongroom-*`,
          Condition: { StringEquals: { "rds:cluster-snapshot-tag/strongroom:managed": "true" } },
        },
        // No Redshift snapshot is copied to another account: a vault copy is a share with the vault, kept (Prune takes
        // it back before deleting). No resource-tag condition to rely on in Redshift: only Strongroom's names.
        {
          Sid: "ShareStrongroomRedshiftSnapshots",
          Effect: "Allow",
          Action: "redshift:AuthorizeSnapshotAccess",
          Resource: `arn:${partition}:redshift:*:${account}:snapshot:*/strongroom-*`,
        },
        {
          Sid: "LockCopies",
          Effect: "Allow",
          Action: "ec2:LockSnapshot",
          Resource: `arn:${partition}:ec2:*::snapshot/*`,
          Condition: { StringEquals: { "aws:ResourceTag/strongroom:managed": "true" } },
        },
        // The vault's copy role may use a source's key for one copy (only what a copy needs), revoked after it.
        {
          Sid: "GrantsOnSourceKeys",
          Effect: "Allow",
          Action: ["kms:CreateGrant", "kms:RevokeGrant"],
          Resource: `arn:${partition}:kms:*:${account}:key/*`,
          Condition: {
            "ForAllValues:StringEquals": {
              "kms:GrantOperations": [
                "Decrypt",
                "DescribeKey",
                "CreateGrant",
                "ReEncryptFrom",
                "GenerateDataKeyWithoutPlaintext",
              ],
            },
          },
        },
        // CopySnapshot / CopyImage / CopyDBSnapshot in this account: EBS and RDS use the keys on the function's behalf.
        {
          Sid: "UseKeysThroughEbsAndRds",
          Effect: "Allow",
          Action: [
            "kms:Decrypt",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:ReEncryptFrom",
            "kms:ReEncryptTo",
            "kms:CreateGrant",
            "kms:DescribeKey",
          ],
          Resource: "*",
          Condition: { StringLike: { "kms:ViaService": ["ec2.*.amazonaws.com", "rds.*.amazonaws.com"] } },
        },
        // The snapshot stage's result files and each destination's state file.
        { Sid: "RunFiles", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject"], Resource: runFiles },
        // A copy's record (what a restore of the copy needs): the original's, read, and the copy's, written.
        { Sid: "RecoveryPointRecords", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject"], Resource: records },
        otherAccounts,
      ],
      prune: [
        tracing,
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
        {
          Sid: "DeleteManagedEbsSnapshots",
          Effect: "Allow",
          Action: "ec2:DeleteSnapshot",
          Resource: `arn:${partition}:ec2:*::snapshot/*`,
          Condition: { StringEquals: { "aws:ResourceTag/strongroom:managed": "true" } },
        },
        {
          Sid: "DeregisterManagedAmis",
          Effect: "Allow",
          Action: "ec2:DeregisterImage",
          Resource: `arn:${partition}:ec2:*::image/*`,
          Condition: { StringEquals: { "aws:ResourceTag/strongroom:managed": "true" } },
        },
        {
          Sid: "MarkManagedSnapshotsDeleting",
          Effect: "Allow",
          Action: "ec2:CreateTags",
          Resource: `arn:${partition}:ec2:*::snapshot/*`,
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
        // A Redshift snapshot shared with a vault cannot be deleted while shared: the vault's access is taken back first.
        {
          Sid: "UnshareStrongroomRedshiftSnapshots",
          Effect: "Allow",
          Action: "redshift:RevokeSnapshotAccess",
          Resource: `arn:${partition}:redshift:*:${account}:snapshot:*/strongroom-*`,
        },
        {
          Sid: "DeleteStrongroomRedshiftSnapshots",
          Effect: "Allow",
          Action: "redshift:DeleteClusterSnapshot",
          Resource: `arn:${partition}:redshift:*:${account}:snapshot:*/strongroom-*`,
        },
        { Sid: "RunFiles", Effect: "Allow", Action: "s3:PutObject", Resource: runFiles },
        otherAccounts,
        units,
      ],
      report: [tracing, { Sid: "RunFiles", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject"], Resource: runFiles }],
      // Creates; removes only what a restore made; never deletes or unshares a recovery point (explicit Deny).
      restore: [
        tracing,
        ...restoreStatements({
          partition,
          account,
          keys: `arn:${partition}:kms:*:${account}:key/*`,
          via: { operator: "StringLike", services: ["ec2.*.amazonaws.com", "rds.*.amazonaws.com", "redshift.*.amazonaws.com"] },
        }),
        // What the backup recorded of each recovery point.
        { Sid: "RecoveryPointRecords", Effect: "Allow", Action: "s3:GetObject", Resource: records },
        // The restore reports; a file restore's lists (written at its first step, read and written at each next one);
        // its files when they go to this bucket (by default under restores/<execution>/files/).
        { Sid: "RestoreReports", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject"], Resource: restores },
        // A file restore's destination, checked first (HeadBucket is s3:ListBucket); a large file in parts
        // (Create/Complete MultipartUpload and UploadPart are s3:PutObject), listed (ListParts) before it completes,
        // aborted when a step fails or CleanUp runs. In this bucket: under restores/ only.
        { Sid: "FileRestoreOwnBucket", Effect: "Allow", Action: "s3:ListBucket", Resource: bucket.attrArn },
        { Sid: "FileRestoreOwnUploads", Effect: "Allow", Action: FILE_UPLOADS, Resource: restores },
        // The FileRestoreBuckets: the same calls, never a read or a delete of an object. CloudFormation cannot map a
        // list: the ARNs are the names joined, a Join's delimiter is a literal, so their partition is `*`.
        when(hasFileRestoreBuckets, {
          Sid: "FileRestoreBuckets",
          Effect: "Allow",
          Action: "s3:ListBucket",
          Resource: Fn.split(",", Fn.join("", ["arn:*:s3:::", Fn.join(",arn:*:s3:::", p.fileRestoreBuckets.valueAsList)])),
        }),
        when(hasFileRestoreBuckets, {
          Sid: "FileRestoreObjects",
          Effect: "Allow",
          Action: ["s3:PutObject", ...FILE_UPLOADS],
          Resource: Fn.split(
            ",",
            Fn.join("", ["arn:*:s3:::", Fn.join("/*,arn:*:s3:::", p.fileRestoreBuckets.valueAsList), "/*"]),
          ),
        }),
        // SSE-KMS objects (the request's key or the bucket's default): S3 generates each data key, and decrypts it
        // for each part of a multipart upload, with the role's permissions: through S3 only, in any bucket's region.
        {
          Sid: "FileRestoreKeysThroughS3",
          Effect: "Allow",
          Action: ["kms:GenerateDataKey", "kms:Decrypt"],
          Resource: `arn:${partition}:kms:*:${account}:key/*`,
          Condition: { StringLike: { "kms:ViaService": "s3.*.amazonaws.com" } },
        },
        { Sid: "DenyDeletingOrUnsharingRecoveryPoints", Effect: "Deny", Action: RESTORE_DENIED, Resource: "*" },
        // A recovery point in another account (a vault's restore role).
        otherAccounts,
      ],
    };
    const settings: Record<FunctionName, { description: string; timeout: number; memory?: number; reserved?: number; bucket?: boolean }> = {
      discover: {
        description: "Validates a run input, lists the policy's sources, writes the batches to the bucket.",
        timeout: 300,
        bucket: true,
      },
      snapshot: {
        description: "Creates one batch's recovery points, tagged at creation.",
        timeout: 300,
        reserved: 10,
        bucket: true,
      },
      status: { description: "The completion check of one batch.", timeout: 120, reserved: 10 },
      // Reserved like Snapshot's: the copy APIs are rate-limited per account and region.
      copy: {
        description:
          "Copies a run's completed recovery points to one destination (region or vault account), a pass at a time.",
        timeout: 900,
        reserved: 10,
        bucket: true,
      },
      prune: {
        description: "Applies the policy's retention at every location, guarded by the safety invariants.",
        timeout: 900,
        reserved: 2,
        bucket: true,
      },
      report: {
        description: "Folds the run's files into the run report and returns its summary.",
        timeout: 300,
        memory: 512,
      },
      // A file restore's CopyFiles step copies for up to 10 minutes, holding a 32 MiB block cache and one upload part
      // (8 MiB, more for a file over 78 GiB: up to 525 MiB for S3's largest, 5 TiB).
      restore: {
        description: "Every step of a restore of one recovery point (validate, start, check, copy files, finalize, clean up).",
        timeout: 900,
        memory: 1024,
        bucket: true,
      },
    };
    const functions = {} as Record<FunctionName, lambda.CfnFunction>;
    const roles = {} as Record<FunctionName, iam.CfnRole>;
    for (const fn of FUNCTIONS) {
      const title = fn[0].toUpperCase() + fn.slice(1);
      const s = settings[fn];
      const logGroup = new logs.CfnLogGroup(this, `${title}Logs`, {
        logGroupName: `/aws/lambda/${Aws.STACK_NAME}-${fn}`,
        retentionInDays: p.logRetention.valueAsNumber,
      });
      const role = (roles[fn] = new iam.CfnRole(this, `${title}Role`, {
        assumeRolePolicyDocument: {
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" }],
        },
        policies: [
          {
            policyName: fn,
            policyDocument: {
              Version: "2012-10-17",
              Statement: [
                {
                  Sid: "Logs",
                  Effect: "Allow",
                  Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
                  Resource: logGroup.attrArn,
                },
                ...statements[fn],
              ],
            },
          },
        ],
      }));
      const artifact = path.join(props.artifacts, fn);
      if (!fs.existsSync(path.join(artifact, "bootstrap"))) {
        throw new Error(
          `${artifact}/bootstrap is missing: build the functions first (make build), or pass -c artifacts=<dir>`,
        );
      }
      const code = new s3assets.Asset(this, `${title}Code`, { path: artifact });
      functions[fn] = new lambda.CfnFunction(this, `${title}Function`, {
        functionName: `${Aws.STACK_NAME}-${fn}`,
        description: s.description,
        runtime: "provided.al2023",
        handler: "bootstrap",
        architectures: [p.architecture.valueAsString],
        memorySize: s.memory ?? 256,
        timeout: s.timeout,
        role: role.attrArn,
        code: { s3Bucket: code.s3BucketName, s3Key: code.s3ObjectKey },
        tracingConfig: { mode: "Active" },
        loggingConfig: {
          logFormat: "JSON",
          applicationLogLevel: "INFO",
          systemLogLevel: "WARN",
          logGroup: logGroup.ref,
        },
        reservedConcurrentExecutions: s.reserved,
        environment: s.bucket ? { variables: { STRONGROOM_BUCKET: bucket.ref } } : undefined,
      });
    }

    // -- The backup state machine -----------------------------------------------------
    const backupLogs = new logs.CfnLogGroup(this, "BackupLogs", {
      logGroupName: `/aws/vendedlogs/states/${Aws.STACK_NAME}-backup`,
      retentionInDays: p.logRetention.valueAsNumber,
    });
    const machineName = `${Aws.STACK_NAME}-backup`;
    // Vended log delivery: these actions take no resource but "*".
    const machineLogging: Statement = {
      Sid: "Logging",
      Effect: "Allow",
      Action: [
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
      ],
      Resource: "*",
    };
    const machineTracing: Statement = {
      Sid: "Tracing",
      Effect: "Allow",
      Action: ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"],
      Resource: "*",
    };
    const statesTrust = {
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { Service: "states.amazonaws.com" },
          Action: "sts:AssumeRole",
          Condition: { StringEquals: { "aws:SourceAccount": account } },
        },
      ],
    };
    const backupRole = new iam.CfnRole(this, "BackupRole", {
      assumeRolePolicyDocument: statesTrust,
      policies: [
        {
          policyName: "backup",
          policyDocument: {
            Version: "2012-10-17",
            Statement: [
              {
                Sid: "Functions",
                Effect: "Allow",
                Action: "lambda:InvokeFunction",
                Resource: BACKUP_FUNCTIONS.map((fn) => functions[fn].attrArn),
              },
              { Sid: "MapItemsAndResults", Effect: "Allow", Action: ["s3:GetObject", "s3:PutObject"], Resource: runFiles },
              {
                Sid: "ChildExecutions",
                Effect: "Allow",
                Action: "states:StartExecution",
                Resource: `arn:${partition}:states:${Aws.REGION}:${account}:stateMachine:${machineName}`,
              },
              {
                Sid: "ChildExecutionsState",
                Effect: "Allow",
                Action: ["states:DescribeExecution", "states:StopExecution"],
                Resource: `arn:${partition}:states:${Aws.REGION}:${account}:execution:${machineName}/*`,
              },
              machineLogging,
              machineTracing,
            ],
          },
        },
      ],
    });
    const definition = fs.readFileSync(path.join(ROOT, "infra", "statemachines", "backup.asl.json"), "utf8");
    this.stateMachine = new sfn.CfnStateMachine(this, "BackupStateMachine", {
      stateMachineName: machineName,
      stateMachineType: "STANDARD",
      definitionString: definition,
      definitionSubstitutions: {
        DiscoverFunctionArn: functions.discover.attrArn,
        SnapshotFunctionArn: functions.snapshot.attrArn,
        StatusFunctionArn: functions.status.attrArn,
        CopyFunctionArn: functions.copy.attrArn,
        PruneFunctionArn: functions.prune.attrArn,
        ReportFunctionArn: functions.report.attrArn,
      },
      roleArn: backupRole.attrArn,
      loggingConfiguration: {
        level: "ERROR",
        includeExecutionData: false,
        destinations: [{ cloudWatchLogsLogGroup: { logGroupArn: backupLogs.attrArn } }],
      },
      tracingConfiguration: { enabled: true },
    });

    // -- The restore state machine: a restore request in, the restore report out -------------
    const restoreMachineLogs = new logs.CfnLogGroup(this, "RestoreStateMachineLogs", {
      logGroupName: `/aws/vendedlogs/states/${Aws.STACK_NAME}-restore`,
      retentionInDays: p.logRetention.valueAsNumber,
    });
    const restoreMachineRole = new iam.CfnRole(this, "RestoreStateMachineRole", {
      assumeRolePolicyDocument: statesTrust,
      policies: [
        {
          policyName: "restore",
          policyDocument: {
            Version: "2012-10-17",
            Statement: [
              { Sid: "Functions", Effect: "Allow", Action: "lambda:InvokeFunction", Resource: functions.restore.attrArn },
              machineLogging,
              machineTracing,
            ],
          },
        },
      ],
    });
    this.restoreStateMachine = new sfn.CfnStateMachine(this, "RestoreStateMachine", {
      stateMachineName: `${Aws.STACK_NAME}-restore`,
      stateMachineType: "STANDARD",
      definitionString: fs.readFileSync(path.join(ROOT, "infra", "statemachines", "restore.asl.json"), "utf8"),
      definitionSubstitutions: { RestoreFunctionArn: functions.restore.attrArn },
      roleArn: restoreMachineRole.attrArn,
      loggingConfiguration: {
        level: "ERROR",
        includeExecutionData: false,
        destinations: [{ cloudWatchLogsLogGroup: { logGroupArn: restoreMachineLogs.attrArn } }],
      },
      tracingConfiguration: { enabled: true },
    });

    // -- Schedules ----------------------------------------------------------------------
    const deadLetters = new sqs.CfnQueue(this, "ScheduleDeadLetters", {
      messageRetentionPeriod: 1209600,
      sqsManagedSseEnabled: true,
    });
    new sqs.CfnQueuePolicy(this, "ScheduleDeadLettersPolicy", {
      queues: [deadLetters.ref],
      policyDocument: {
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "TlsOnly",
            Effect: "Deny",
            Principal: "*",
            Action: "sqs:*",
            Resource: deadLetters.attrArn,
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          },
        ],
      },
    });
    const schedulerRole = new iam.CfnRole(this, "SchedulerRole", {
      assumeRolePolicyDocument: {
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Principal: { Service: "scheduler.amazonaws.com" },
            Action: "sts:AssumeRole",
            Condition: { StringEquals: { "aws:SourceAccount": account } },
          },
        ],
      },
      policies: [
        {
          policyName: "start-backups",
          policyDocument: {
            Version: "2012-10-17",
            Statement: [
              { Sid: "StartBackup", Effect: "Allow", Action: "states:StartExecution", Resource: this.stateMachine.ref },
              { Sid: "DeadLetters", Effect: "Allow", Action: "sqs:SendMessage", Resource: deadLetters.attrArn },
            ],
          },
        },
      ],
    });
    for (const s of props.config.schedules) {
      new scheduler.CfnSchedule(this, `${s.id}Schedule`, {
        name: `${Aws.STACK_NAME}-${s.name}`,
        description: s.description,
        scheduleExpression: s.expression,
        scheduleExpressionTimezone: s.timezone,
        state: s.enabled ? "ENABLED" : "DISABLED",
        flexibleTimeWindow: { mode: "OFF" },
        target: {
          arn: this.stateMachine.ref,
          roleArn: schedulerRole.attrArn,
          retryPolicy: { maximumRetryAttempts: 3, maximumEventAgeInSeconds: 3600 },
          deadLetterConfig: { arn: deadLetters.attrArn },
          input: Fn.sub(JSON.stringify(s.input, null, 2)),
        },
      });
    }

    // -- Failed and partial runs ------------------------------------------------------------
    const alerts = new sns.CfnTopic(this, "RunAlerts", { kmsMasterKeyId: "alias/aws/sns" });
    const rule = new events.CfnRule(this, "RunNotFullyProtected", {
      description: "A backup run that did not protect every selected source.",
      eventPattern: {
        source: ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        detail: {
          stateMachineArn: [this.stateMachine.ref],
          $or: [
            { status: ["FAILED", "TIMED_OUT", "ABORTED"] },
            {
              status: ["SUCCEEDED"],
              output: [{ wildcard: '*"outcome":"partial"*' }, { wildcard: '*"outcome":"failed"*' }],
            },
          ],
        },
      },
      targets: [{ id: "alerts", arn: alerts.ref }],
    });
    // A restore that failed (cleaned up, or not), timed out or was aborted.
    const restoreRule = new events.CfnRule(this, "RestoreNotCompleted", {
      description: "A restore that failed, timed out or was aborted.",
      eventPattern: {
        source: ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        detail: {
          stateMachineArn: [this.restoreStateMachine.ref],
          status: ["FAILED", "TIMED_OUT", "ABORTED"],
        },
      },
      targets: [{ id: "alerts", arn: alerts.ref }],
    });
    new sns.CfnTopicPolicy(this, "RunAlertsPolicy", {
      topics: [alerts.ref],
      policyDocument: {
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "EventsPublish",
            Effect: "Allow",
            Principal: { Service: "events.amazonaws.com" },
            Action: "sns:Publish",
            Resource: alerts.ref,
            Condition: { ArnEquals: { "aws:SourceArn": [rule.attrArn, restoreRule.attrArn] } },
          },
          {
            Sid: "AlarmsPublish",
            Effect: "Allow",
            Principal: { Service: "cloudwatch.amazonaws.com" },
            Action: "sns:Publish",
            Resource: alerts.ref,
            Condition: { StringEquals: { "aws:SourceAccount": account } },
          },
          {
            Sid: "TlsOnly",
            Effect: "Deny",
            Principal: "*",
            Action: "sns:Publish",
            Resource: alerts.ref,
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          },
        ],
      },
    });
    const email = new sns.CfnSubscription(this, "RunAlertsEmail", {
      topicArn: alerts.ref,
      protocol: "email",
      endpoint: p.email.valueAsString,
    });
    email.cfnOptions.condition = hasEmail;
    new cloudwatch.CfnAlarm(this, "ExecutionsFailedAlarm", {
      alarmDescription: "A backup execution failed, timed out or was aborted.",
      namespace: "AWS/States",
      metricName: "ExecutionsFailed",
      dimensions: [{ name: "StateMachineArn", value: this.stateMachine.ref }],
      statistic: "Sum",
      period: 3600,
      evaluationPeriods: 1,
      threshold: 1,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      treatMissingData: "notBreaching",
      alarmActions: [alerts.ref],
    });
    this.outputs(bucket, roles, schedulerRole, deadLetters, alerts);
  }

  private parameters() {
    return {
      architecture: new CfnParameter(this, "Architecture", {
        type: "String",
        default: "x86_64",
        allowedValues: ["x86_64", "arm64"],
        description: "Lambda architecture of the functions (arm64 needs the aarch64 Rust target at build time).",
      }),
      logRetention: new CfnParameter(this, "LogRetentionDays", {
        type: "Number",
        default: "90",
        allowedValues: ["7", "14", "30", "60", "90", "180", "365", "731", "1827", "3653"],
        description: "Days the functions' and the state machine's logs are kept.",
      }),
      runRetention: new CfnParameter(this, "RunRetentionDays", {
        type: "Number",
        default: 400,
        minValue: 1,
        maxValue: 3650,
        description: "Days a run's files (batches, results, reports) and restore reports stay in the bucket.",
      }),
      assumableRoleArns: new CfnParameter(this, "AssumableRoleArns", {
        type: "CommaDelimitedList",
        default: "",
        description:
          "The roles, in other accounts, that the policies name, and the vault accounts' copy and prune roles " +
          "(the CopyRoleArn and PruneRoleArn outputs of infra/vault-account.yaml), and their restore roles (a restore " +
          "request's location.role_arn: the RestoreRoleArn output). Empty: only this account.",
      }),
      fileRestoreBuckets: new CfnParameter(this, "FileRestoreBuckets", {
        type: "CommaDelimitedList",
        default: "",
        allowedPattern: "^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        constraintDescription:
          "S3 bucket names (3-63 lowercase letters, digits, dots and hyphens), comma separated, or empty",
        description:
          "The buckets, besides the stack's own, that a file restore (restore kind `files`: restore.destination.bucket) " +
          "may write to: bucket names, comma separated, no wildcards. The restore function may check them (HeadBucket), " +
          "put objects in them and list and abort its multipart uploads; it never reads or deletes an object there. " +
          "Empty: only the stack's bucket, under restores/.",
      }),
      resolveUnits: new CfnParameter(this, "ResolveOrganizationalUnits", {
        type: "String",
        default: "false",
        allowedValues: ["true", "false"],
        description: "Let Discover and Prune list AWS Organizations units (policy.organizational_units).",
      }),
      email: new CfnParameter(this, "NotificationEmail", {
        type: "String",
        default: "",
        allowedPattern: "^$|^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$",
        constraintDescription: "an e-mail address, or empty",
        description: "Where failed and partial runs, and restores that did not complete, are reported; empty for none.",
      }),
    };
  }

  private outputs(
    bucket: s3.CfnBucket,
    roles: Record<FunctionName, iam.CfnRole>,
    schedulerRole: iam.CfnRole,
    deadLetters: sqs.CfnQueue,
    alerts: sns.CfnTopic,
  ) {
    const out = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    out("BackupStateMachineArn", this.stateMachine.ref, "Start a run by hand here (Step Functions console, Start execution, a run input).");
    out("RestoreStateMachineArn", this.restoreStateMachine.ref, "Start a restore here (Step Functions console, Start execution, a restore request).");
    out("RunsBucketName", bucket.ref, "Where every run's batches, results and reports are.");
    out("CopyRoleArn", roles.copy.attrArn, "The copy function's role, the SourceCopyRoleArn of a vault account's stack (infra/vault-account.yaml).");
    out("PruneRoleArn", roles.prune.attrArn, "The prune function's role, the SourcePruneRoleArn of a vault account's stack (infra/vault-account.yaml).");
    out("RestoreRoleArn", roles.restore.attrArn, "The restore function's role, the SourceRestoreRoleArn of a vault account's stack (infra/vault-account.yaml).");
    out("SchedulerRoleArn", schedulerRole.attrArn, "The role a policy's schedule uses to start the backup state machine.");
    out("ScheduleDeadLettersArn", deadLetters.attrArn, "Dead-letter queue for schedules whose start failed.");
    out("RunAlertsTopicArn", alerts.ref, "Failed and partial runs, and restores that did not complete, are published here.");
  }
}

// The CDK app's tests (node:test, aws-cdk-lib/assertions): resources, IAM
// conditions, schedules, the policy config checked at synth, cdk-nag.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { App, Validations } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { loadConfig, validateConfig, ROOT } from "../lib/config";
import { suppress } from "../lib/nag";
import { EBS_READS, RESTORE_DENIED, RESTORE_UNTAG } from "../lib/restore";
import { FUNCTIONS, StrongroomStack } from "../lib/stack";

/** Placeholder artifacts: synth must never build the functions. */
function artifacts(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "strongroom-cdk-"));
  for (const fn of FUNCTIONS) {
    fs.mkdirSync(path.join(dir, fn));
    fs.writeFileSync(path.join(dir, fn, "bootstrap"), "placeholder");
  }
  return dir;
}

const config = loadConfig(path.join(ROOT, "infra", "cdk", "policies.json"));

function synth(withNag: boolean, acknowledged = true): { app: App; stack: StrongroomStack } {
  const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), "strongroom-cdk-out-")) });
  const stack = new StrongroomStack(app, "strongroom", { artifacts: artifacts(), config });
  if (acknowledged) suppress(stack);
  if (withNag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}

test("seven functions on provided.al2023 with JSON logs, the bucket where it is needed", () => {
  const t = Template.fromStack(synth(false).stack);
  t.resourceCountIs("AWS::Lambda::Function", 7);
  t.allResourcesProperties("AWS::Lambda::Function", {
    Runtime: "provided.al2023",
    Handler: "bootstrap",
    LoggingConfig: Match.objectLike({ LogFormat: "JSON" }),
    TracingConfig: { Mode: "Active" },
  });
  for (const fn of ["discover", "snapshot", "copy", "prune", "restore"]) {
    t.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: { "Fn::Join": ["", [{ Ref: "AWS::StackName" }, `-${fn}`]] },
      Environment: { Variables: { STRONGROOM_BUCKET: Match.anyValue() } },
    });
  }
  // Seven functions' and two state machines' log groups; seven functions', two state machines' and the scheduler's roles.
  t.resourceCountIs("AWS::Logs::LogGroup", 9);
  t.resourceCountIs("AWS::IAM::Role", 10);
});

test("each state machine runs its ASL file, every placeholder substituted, logged and traced", () => {
  const t = Template.fromStack(synth(false).stack);
  const machines = t.findResources("AWS::StepFunctions::StateMachine");
  assert.deepEqual(Object.keys(machines).sort(), ["BackupStateMachine", "RestoreStateMachine"]);
  for (const [id, file] of [
    ["BackupStateMachine", "backup.asl.json"],
    ["RestoreStateMachine", "restore.asl.json"],
  ]) {
    const machine = machines[id] as { Properties: Record<string, unknown> };
    const text = fs.readFileSync(path.join(ROOT, "infra", "statemachines", file), "utf8");
    assert.equal(machine.Properties.DefinitionString, text);
    const used = new Set([...text.matchAll(/\$\{([A-Za-z]+)\}/g)].map((m) => m[1]));
    assert.deepEqual(new Set(Object.keys(machine.Properties.DefinitionSubstitutions as object)), used);
    assert.deepEqual(machine.Properties.TracingConfiguration, { Enabled: true });
    assert.equal((machine.Properties.LoggingConfiguration as Record<string, unknown>).Level, "ERROR");
  }
  assert.deepEqual(machines.RestoreStateMachine.Properties.DefinitionSubstitutions, {
    RestoreFunctionArn: { "Fn::GetAtt": ["RestoreFunction", "Arn"] },
  });
  assert.deepEqual(machines.RestoreStateMachine.Properties.StateMachineName, {
    "Fn::Join": ["", [{ Ref: "AWS::StackName" }, "-restore"]],
  });
});

test("destructive actions carry their guards", () => {
  const t = Template.fromStack(synth(false).stack);
  const guarded: Record<string, [string, string]> = {
    "ec2:DeleteSnapshot": ["StringEquals", "aws:ResourceTag/strongroom:managed"],
    "ec2:DeregisterImage": ["StringEquals", "aws:ResourceTag/strongroom:managed"],
    "rds:DeleteDBSnapshot": ["StringEquals", "rds:snapshot-tag/strongroom:managed"],
    "rds:DeleteDBClusterSnapshot": ["StringEquals", "rds:cluster-snapshot-tag/strongroom:managed"],
  };
  // The restore role's removals (its temporary images too) are guarded by strongroom:restore: its own test.
  const statements = Object.entries(t.findResources("AWS::IAM::Role"))
    .filter(([id]) => id !== "RestoreRole")
    .flatMap(([, r]) =>
      ((r.Properties.Policies ?? []) as { PolicyDocument: { Statement: Record<string, unknown>[] } }[]).flatMap(
        (p) => p.PolicyDocument.Statement,
      ),
    );
  for (const [action, [operator, key]] of Object.entries(guarded)) {
    const granting = statements.filter((s) => [s.Action].flat().includes(action));
    assert.ok(granting.length > 0, `${action} is granted`);
    for (const s of granting) {
      const condition = (s.Condition as Record<string, Record<string, string>>)?.[operator];
      assert.equal(condition?.[key], "true", `${action} needs ${key}=true`);
    }
  }
  for (const s of statements.filter((s) => s.Effect === "Allow")) {
    for (const a of [s.Action].flat() as string[]) assert.ok(!a.includes("*"), `wildcard action ${a}`);
  }
});

type Statement = Record<string, unknown>;

function roleStatements(t: Template, role: string): Statement[] {
  const r = t.findResources("AWS::IAM::Role")[role];
  return ((r.Properties.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[]).flatMap(
    (p) => p.PolicyDocument.Statement,
  );
}

/** `<prefix>` of the run bucket, as synthesized. */
const recordsOf = (prefix = "recovery-points/*") => ({
  "Fn::Join": ["", [{ "Fn::GetAtt": ["RunsBucket", "Arn"] }, `/${prefix}`]],
});

/** Strongroom's Redshift snapshots (`strongroom-*`, any cluster) in this account, as synthesized. */
const redshiftSnapshots = {
  "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":redshift:*:", { Ref: "AWS::AccountId" }, ":snapshot:*/strongroom-*"]],
};

test("the copy role copies (snapshots and AMIs), shares, locks and grants, and never deletes", () => {
  const t = Template.fromStack(synth(false).stack);
  const statements = roleStatements(t, "CopyRole");
  const sids = statements.map((s) => s.Sid).filter(Boolean);
  assert.deepEqual(sids, [
    "Logs",
    "Tracing",
    "Inspect",
    "WhereClustersCopy",
    "KeyFacts",
    "CopyEbsSnapshots",
    "CopyAmis",
    "TagCopiesAtCreation",
    "CopyDbSnapshots",
    "TagRedshiftCopies",
    "ShareManagedEbsSnapshots",
    "ShareManagedAmis",
    "ShareManagedDbSnapshots",
    "ShareManagedDbClusterSnapshots",
    "ShareStrongroomRedshiftSnapshots",
    "LockCopies",
    "GrantsOnSourceKeys",
    "UseKeysThroughEbsAndRds",
    "RunFiles",
    "RecoveryPointRecords",
  ]);
  const actions = statements.flatMap((s) => [s.Action ?? []].flat() as string[]);
  for (const a of actions) {
    assert.ok(!/^(ec2:Delete|ec2:DeregisterImage|rds:Delete|redshift:Delete)/i.test(a), `the copy role may ${a}`);
  }
  const bySid = (sid: string) => statements.find((s) => s.Sid === sid) as Statement;
  assert.deepEqual(bySid("TagCopiesAtCreation").Condition, {
    StringEquals: { "ec2:CreateAction": ["CopySnapshot", "CopyImage"] },
  });
  // CopyImage is authorized on the source AMI, the new AMI and its snapshots; never conditioned away to "*".
  assert.deepEqual(bySid("CopyAmis").Resource, [
    { "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":ec2:*::image/*"]] },
    { "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":ec2:*::snapshot/*"]] },
  ]);
  assert.ok(actions.includes("ec2:DescribeImages"), "the copy role looks up AMIs");
  assert.deepEqual(bySid("UseKeysThroughEbsAndRds").Condition, {
    StringLike: { "kms:ViaService": ["ec2.*.amazonaws.com", "rds.*.amazonaws.com"] },
  });
  for (const sid of ["ShareManagedEbsSnapshots", "ShareManagedAmis", "LockCopies"]) {
    assert.deepEqual(bySid(sid).Condition, { StringEquals: { "aws:ResourceTag/strongroom:managed": "true" } });
  }
  // A Redshift copy is made by its cluster: tagged once found, Strongroom's names only.
  assert.deepEqual(bySid("TagRedshiftCopies").Resource, redshiftSnapshots);
  assert.ok(actions.includes("redshift:DescribeClusterSnapshots") && actions.includes("redshift:DescribeClusters"));
  // A Redshift vault copy is a share, kept: Strongroom's names only, never taken back by the copy role.
  assert.deepEqual(bySid("ShareStrongroomRedshiftSnapshots").Action, "redshift:AuthorizeSnapshotAccess");
  assert.deepEqual(bySid("ShareStrongroomRedshiftSnapshots").Resource, redshiftSnapshots);
  assert.ok(!actions.includes("redshift:RevokeSnapshotAccess"), "the copy role takes no share back");
  // The state machine may invoke it.
  const backup = roleStatements(t, "BackupRole").find((s) => s.Sid === "Functions") as Statement;
  assert.ok((backup.Resource as unknown[]).some((r) => JSON.stringify(r).includes("CopyFunction")));
  // The records of recovery points: the original's read, the copy's written.
  assert.deepEqual(bySid("RecoveryPointRecords").Action, ["s3:GetObject", "s3:PutObject"]);
  assert.deepEqual(bySid("RecoveryPointRecords").Resource, recordsOf());
});

test("the prune role takes a Redshift snapshot's share back, then deletes it: Strongroom's names only", () => {
  const t = Template.fromStack(synth(false).stack);
  const statements = roleStatements(t, "PruneRole");
  const sids = statements.map((s) => s.Sid).filter(Boolean);
  assert.deepEqual(sids, [
    "Logs",
    "Tracing",
    "Listings",
    "DeleteManagedEbsSnapshots",
    "DeregisterManagedAmis",
    "MarkManagedSnapshotsDeleting",
    "DeleteManagedDbSnapshots",
    "DeleteManagedDbClusterSnapshots",
    "UnshareStrongroomRedshiftSnapshots",
    "DeleteStrongroomRedshiftSnapshots",
    "RunFiles",
  ]);
  const bySid = (sid: string) => statements.find((s) => s.Sid === sid) as Statement;
  assert.deepEqual(bySid("UnshareStrongroomRedshiftSnapshots").Action, "redshift:RevokeSnapshotAccess");
  assert.deepEqual(bySid("DeleteStrongroomRedshiftSnapshots").Action, "redshift:DeleteClusterSnapshot");
  for (const sid of ["UnshareStrongroomRedshiftSnapshots", "DeleteStrongroomRedshiftSnapshots"]) {
    assert.deepEqual(bySid(sid).Resource, redshiftSnapshots);
  }
  // Prune shares nothing.
  const actions = statements.flatMap((s) => [s.Action ?? []].flat() as string[]);
  assert.ok(!actions.includes("redshift:AuthorizeSnapshotAccess"), "the prune role shares no snapshot");
});

test("the snapshot role configures a cluster's copies, its copy grant only through Redshift", () => {
  const t = Template.fromStack(synth(false).stack);
  const statements = roleStatements(t, "SnapshotRole");
  const bySid = (sid: string) => statements.find((s) => s.Sid === sid) as Statement;
  const redshift = (resource: string) => ({
    "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":redshift:*:", { Ref: "AWS::AccountId" }, `:${resource}`]],
  });
  assert.deepEqual(bySid("ConfigureClusterCopies").Action, ["redshift:DescribeClusters", "redshift:EnableSnapshotCopy"]);
  assert.deepEqual(bySid("ConfigureClusterCopies").Resource, redshift("cluster:*"));
  assert.deepEqual(bySid("CreateClusterCopyGrants").Resource, redshift("snapshotcopygrant:strongroom-*"));
  assert.deepEqual(bySid("CopyGrantKeysThroughRedshift").Action, ["kms:CreateGrant", "kms:DescribeKey"]);
  assert.deepEqual(bySid("CopyGrantKeysThroughRedshift").Condition, {
    StringLike: { "kms:ViaService": "redshift.*.amazonaws.com" },
  });
  // Nothing else of the snapshot role grants on KMS keys.
  const kms = statements.filter((s) => ([s.Action ?? []].flat() as string[]).some((a) => a.startsWith("kms:")));
  assert.deepEqual(kms.map((s) => s.Sid), ["CopyGrantKeysThroughRedshift"]);
});

test("the snapshot role records what a restore needs: the sources' settings, members' devices, records", () => {
  const t = Template.fromStack(synth(false).stack);
  const statements = roleStatements(t, "SnapshotRole");
  const bySid = (sid: string) => statements.find((s) => s.Sid === sid) as Statement;
  const actions = statements.flatMap((s) => [s.Action ?? []].flat() as string[]);
  for (const a of ["ec2:DescribeVolumes", "ec2:DescribeInstances", "rds:DescribeDBInstances", "rds:DescribeDBClusters", "redshift:DescribeClusters"]) {
    assert.ok(actions.includes(a), `the snapshot role may ${a}`);
  }
  // The device tag after CreateSnapshots: managed snapshots only, that one tag key only.
  assert.deepEqual(bySid("TagSetMemberDevices").Condition, {
    StringEquals: { "aws:ResourceTag/strongroom:managed": "true" },
    "ForAllValues:StringEquals": { "aws:TagKeys": ["strongroom:device"] },
  });
  assert.deepEqual(bySid("RecoveryPointRecords").Action, "s3:PutObject");
  assert.deepEqual(bySid("RecoveryPointRecords").Resource, recordsOf());
});

test("the restore role creates, removes only what a restore made, and denies deleting or unsharing recovery points", () => {
  const t = Template.fromStack(synth(false).stack);
  const statements = roleStatements(t, "RestoreRole");
  const bySid = (sid: string) => statements.find((s) => s.Sid === sid) as Statement;
  const deny = bySid("DenyDeletingOrUnsharingRecoveryPoints");
  assert.equal(deny.Effect, "Deny");
  assert.equal(deny.Resource, "*");
  assert.equal(deny.Condition, undefined);
  assert.deepEqual(deny.Action, RESTORE_DENIED);
  const allows = statements.filter((s) => s.Effect === "Allow");
  const allowed = allows.flatMap((s) => [s.Action ?? []].flat() as string[]);
  for (const a of RESTORE_DENIED) assert.ok(!allowed.includes(a), `the restore role may ${a}`);
  // Every removal but of a restored cluster's contract tags: tagged strongroom:restore, and not a managed recovery point.
  const removals = allows.filter((s) =>
    ([s.Action ?? []].flat() as string[]).some(
      (a) => /^[a-z0-9]+:(Delete|Terminate|Deregister|Revoke)/.test(a) && a !== "redshift:DeleteTags",
    ),
  );
  assert.deepEqual(
    removals.map((s) => s.Sid),
    ["CloseRestoredGroups", "RemoveWhatRestoresMade", "DeregisterRestoreImages", "RemoveRestoredDatabases", "RemoveRestoredClusters"],
  );
  for (const s of removals) {
    assert.deepEqual(s.Condition, {
      StringLike: { "aws:ResourceTag/strongroom:restore": "*" },
      StringNotEquals: { "aws:ResourceTag/strongroom:managed": "true" },
    }, `${s.Sid}`);
  }
  // A restored cluster's contract tags: strongroom: keys but the restore's own, of clusters a restore made only.
  const untags = allows.filter((s) => ([s.Action ?? []].flat() as string[]).includes("redshift:DeleteTags"));
  assert.deepEqual(untags.map((s) => s.Sid), ["UntagRestoredClusters"]);
  assert.deepEqual(untags[0].Action, "redshift:DeleteTags");
  assert.deepEqual(untags[0].Condition, {
    StringLike: { "aws:ResourceTag/strongroom:restore": "*" },
    "ForAllValues:StringLike": { "aws:TagKeys": "strongroom:*" },
    "ForAllValues:StringNotEquals": { "aws:TagKeys": ["strongroom:restore", "strongroom:restored-from"] },
  });
  assert.deepEqual(untags[0].Condition, RESTORE_UNTAG);
  assert.deepEqual(untags[0].Resource, {
    "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":redshift:*:", { Ref: "AWS::AccountId" }, ":cluster:*"]],
  });
  // Whom a recovery point is shared with, before a restore in another account.
  const inspect = [bySid("Inspect").Action].flat() as string[];
  for (const a of [
    "ec2:DescribeSnapshotAttribute",
    "ec2:DescribeImageAttribute",
    "rds:DescribeDBSnapshotAttributes",
    "rds:DescribeDBClusterSnapshotAttributes",
  ]) {
    assert.ok(inspect.includes(a), `the restore role may ${a}`);
  }
  assert.deepEqual(bySid("Ec2TagOnCreateOnly").Condition, {
    StringEquals: { "ec2:CreateAction": ["CreateVolume", "RunInstances", "RegisterImage", "CreateSecurityGroup"] },
  });
  assert.deepEqual(bySid("PassInstanceProfileRoles").Condition, {
    StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" },
  });
  const via = { "kms:ViaService": ["ec2.*.amazonaws.com", "rds.*.amazonaws.com", "redshift.*.amazonaws.com"] };
  assert.deepEqual(bySid("UseKeysThroughServices").Condition, { StringLike: via });
  assert.deepEqual(bySid("GrantsForServices").Condition, {
    StringLike: via,
    Bool: { "kms:GrantIsForAWSResource": "true" },
  });
  // Tags after creation (RDS, Redshift) on instances and clusters only, never a snapshot.
  for (const sid of ["TagRestoredDatabases", "TagRestoredClusters"]) {
    assert.ok(!JSON.stringify(bySid(sid).Resource).includes("snapshot"), `${sid} tags a snapshot`);
  }
  assert.deepEqual(bySid("RecoveryPointRecords").Action, "s3:GetObject");
  assert.deepEqual(bySid("RecoveryPointRecords").Resource, recordsOf());
  // The reports, and a file restore's lists (read back at each step).
  assert.deepEqual(bySid("RestoreReports").Action, ["s3:GetObject", "s3:PutObject"]);
  assert.deepEqual(bySid("RestoreReports").Resource, recordsOf("restores/*"));
  // Its vault's restore roles, as the copy role's vault roles: the AssumableRoleArns parameter only.
  const conditional = statements.filter((s) => !s.Sid) as { "Fn::If": [string, Statement, unknown] }[];
  const assume = conditional.filter((s) => s["Fn::If"][0] === "HasAssumableRoles");
  assert.equal(assume.length, 1);
  assert.deepEqual(assume[0]["Fn::If"][1].Resource, { Ref: "AssumableRoleArns" });
  assert.deepEqual(
    conditional.map((s) => s["Fn::If"][0]),
    ["HasFileRestoreBuckets", "HasFileRestoreBuckets", "HasAssumableRoles"],
  );
  t.hasResourceProperties("AWS::Lambda::Function", {
    FunctionName: { "Fn::Join": ["", [{ Ref: "AWS::StackName" }, "-restore"]] },
    Role: { "Fn::GetAtt": ["RestoreRole", "Arn"] },
  });
  assert.deepEqual(t.findOutputs("RestoreRoleArn").RestoreRoleArn.Value, { "Fn::GetAtt": ["RestoreRole", "Arn"] });
});

/** The FileRestoreBuckets parameter's buckets (`suffix` ""), or their objects ("/*"), as synthesized. */
const fileRestoreBuckets = (suffix: string) => ({
  "Fn::Split": [
    ",",
    {
      "Fn::Join": [
        "",
        ["arn:*:s3:::", { "Fn::Join": [`${suffix},arn:*:s3:::`, { Ref: "FileRestoreBuckets" }] }, ...(suffix ? [suffix] : [])],
      ],
    },
  ],
});

test("a file restore reads managed snapshots (EBS direct, read only) and writes only to its buckets, deleting nothing", () => {
  const t = Template.fromStack(synth(false).stack);
  const statements = roleStatements(t, "RestoreRole");
  const concrete = statements.map((s) => ((s as { "Fn::If"?: [string, Statement, unknown] })["Fn::If"]?.[1] ?? s) as Statement);
  const bySid = (sid: string) => concrete.find((s) => s.Sid === sid) as Statement;
  // The recovery point's blocks: the two read calls, snapshots only, Strongroom's recovery points only.
  const reads = bySid("ReadRecoveryPointBlocks");
  assert.deepEqual(reads.Action, ["ebs:ListSnapshotBlocks", "ebs:GetSnapshotBlock"]);
  assert.deepEqual(reads.Action, EBS_READS);
  assert.deepEqual(reads.Resource, { "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":ec2:*::snapshot/*"]] });
  assert.deepEqual(reads.Condition, { StringEquals: { "aws:ResourceTag/strongroom:managed": "true" } });
  // No role of the stack writes a snapshot through the EBS direct APIs, nor reads one but the restore role.
  for (const [id, r] of Object.entries(t.findResources("AWS::IAM::Role"))) {
    const all = ((r.Properties.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[])
      .flatMap((p) => p.PolicyDocument.Statement)
      .map((s) => ((s as { "Fn::If"?: [string, Statement, unknown] })["Fn::If"]?.[1] ?? s) as Statement);
    for (const s of all) {
      for (const a of [s.Action ?? []].flat() as string[]) {
        assert.ok(!/^ebs:(StartSnapshot|PutSnapshotBlock|CompleteSnapshot)$/.test(a), `${id} ${s.Sid} may ${a}`);
        if (a.startsWith("ebs:")) assert.equal(id, "RestoreRole", `${id} ${s.Sid} reads snapshot blocks`);
      }
    }
  }
  // The encrypted ones' keys: kms:Decrypt through EC2 (EBS decrypts the blocks with the role's permissions).
  const keys = bySid("UseKeysThroughServices");
  assert.ok(([keys.Action].flat() as string[]).includes("kms:Decrypt"));
  assert.ok(JSON.stringify(keys.Condition).includes("ec2.*.amazonaws.com"));
  // The stack's bucket: HeadBucket, and uploads under restores/ only.
  assert.deepEqual(bySid("FileRestoreOwnBucket").Action, "s3:ListBucket");
  assert.deepEqual(bySid("FileRestoreOwnBucket").Resource, { "Fn::GetAtt": ["RunsBucket", "Arn"] });
  assert.deepEqual(bySid("FileRestoreOwnUploads").Action, ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]);
  assert.deepEqual(bySid("FileRestoreOwnUploads").Resource, recordsOf("restores/*"));
  // The FileRestoreBuckets, only when some are given: the buckets and their objects, never a read or a delete.
  t.hasParameter("FileRestoreBuckets", { Type: "CommaDelimitedList", Default: "" });
  const pattern = new RegExp(t.toJSON().Parameters.FileRestoreBuckets.AllowedPattern);
  for (const ok of ["", "restored-files", "files.example.com"]) assert.ok(pattern.test(ok), `${ok} is refused`);
  for (const bad of ["*", "restored-*", "a/b", "arn:aws:s3:::x", "Restored"]) assert.ok(!pattern.test(bad), `${bad} is accepted`);
  t.hasCondition("HasFileRestoreBuckets", {
    "Fn::Not": [{ "Fn::Equals": [{ "Fn::Join": ["", { Ref: "FileRestoreBuckets" }] }, ""] }],
  });
  assert.deepEqual(bySid("FileRestoreBuckets").Action, "s3:ListBucket");
  assert.deepEqual(bySid("FileRestoreBuckets").Resource, fileRestoreBuckets(""));
  assert.deepEqual(bySid("FileRestoreObjects").Action, ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]);
  assert.deepEqual(bySid("FileRestoreObjects").Resource, fileRestoreBuckets("/*"));
  // SSE-KMS destinations: the data keys through S3 only.
  assert.deepEqual(bySid("FileRestoreKeysThroughS3").Action, ["kms:GenerateDataKey", "kms:Decrypt"]);
  assert.deepEqual(bySid("FileRestoreKeysThroughS3").Condition, { StringLike: { "kms:ViaService": "s3.*.amazonaws.com" } });
  // No role deletes an S3 object; S3 writes only under the stack's prefixes or to the FileRestoreBuckets' objects.
  for (const [id, r] of Object.entries(t.findResources("AWS::IAM::Role"))) {
    const all = ((r.Properties.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[])
      .flatMap((p) => p.PolicyDocument.Statement)
      .map((s) => ((s as { "Fn::If"?: [string, Statement, unknown] })["Fn::If"]?.[1] ?? s) as Statement);
    for (const s of all.filter((s) => s.Effect === "Allow")) {
      const actions = [s.Action ?? []].flat() as string[];
      for (const a of actions.filter((a) => a.startsWith("s3:"))) {
        assert.ok(!/^s3:Delete/.test(a), `${id} ${s.Sid} may ${a}`);
        if (/^s3:(Get|List)/.test(a)) continue;
        const text = JSON.stringify(s.Resource);
        assert.ok(
          /\/(runs|recovery-points|restores)\/\*"\]\]\}$/.test(text) || text === JSON.stringify(fileRestoreBuckets("/*")),
          `${id} ${s.Sid} ${a} on ${text}`,
        );
      }
      if (JSON.stringify(s.Resource ?? "").includes("FileRestoreBuckets")) assert.equal(id, "RestoreRole");
    }
  }
  // A CopyFiles step copies for up to 10 minutes, with a 32 MiB block cache and one upload part (up to 525 MiB).
  t.hasResourceProperties("AWS::Lambda::Function", {
    FunctionName: { "Fn::Join": ["", [{ Ref: "AWS::StackName" }, "-restore"]] },
    Timeout: 900,
    MemorySize: 1024,
  });
});

test("the restore state machine invokes only the restore function; failed restores are alerted", () => {
  const t = Template.fromStack(synth(false).stack);
  const statements = roleStatements(t, "RestoreStateMachineRole");
  assert.deepEqual(statements.map((s) => s.Sid), ["Functions", "Logging", "Tracing"]);
  assert.deepEqual(statements[0].Resource, { "Fn::GetAtt": ["RestoreFunction", "Arn"] });
  // The backup state machine does not invoke it.
  const backup = roleStatements(t, "BackupRole").find((s) => s.Sid === "Functions") as Statement;
  assert.ok(!JSON.stringify(backup.Resource).includes("RestoreFunction"));
  t.hasResourceProperties("AWS::Events::Rule", {
    EventPattern: {
      source: ["aws.states"],
      "detail-type": ["Step Functions Execution Status Change"],
      detail: { stateMachineArn: [{ Ref: "RestoreStateMachine" }], status: ["FAILED", "TIMED_OUT", "ABORTED"] },
    },
    Targets: [{ Id: "alerts", Arn: { Ref: "RunAlerts" } }],
  });
  // The topic takes both rules' events.
  t.hasResourceProperties("AWS::SNS::TopicPolicy", {
    PolicyDocument: Match.objectLike({
      Statement: Match.arrayWith([
        Match.objectLike({
          Sid: "EventsPublish",
          Condition: {
            ArnEquals: {
              "aws:SourceArn": [{ "Fn::GetAtt": ["RunNotFullyProtected", "Arn"] }, { "Fn::GetAtt": ["RestoreNotCompleted", "Arn"] }],
            },
          },
        }),
      ]),
    }),
  });
  assert.deepEqual(t.findOutputs("RestoreStateMachineArn").RestoreStateMachineArn.Value, { Ref: "RestoreStateMachine" });
});

test("the bucket keeps recovery-points/, and expires runs/ and restores/", () => {
  const t = Template.fromStack(synth(false).stack);
  const [bucket] = Object.values(t.findResources("AWS::S3::Bucket"));
  const rules = bucket.Properties.LifecycleConfiguration.Rules as { Prefix: string; ExpirationInDays: unknown }[];
  assert.deepEqual(rules.map((r) => r.Prefix), ["runs/", "restores/"]);
  for (const r of rules) assert.deepEqual(r.ExpirationInDays, { Ref: "RunRetentionDays" });
});

test("each schedule starts the backup with a valid run input, retries and a dead-letter queue", () => {
  const t = Template.fromStack(synth(false).stack);
  t.resourceCountIs("AWS::Scheduler::Schedule", config.schedules.length);
  t.hasResourceProperties("AWS::Scheduler::Schedule", {
    FlexibleTimeWindow: { Mode: "OFF" },
    State: "DISABLED",
    Target: Match.objectLike({
      RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 3600 },
      DeadLetterConfig: { Arn: Match.anyValue() },
      Input: { "Fn::Sub": Match.stringLikeRegexp("<aws.scheduler.scheduled-time>") },
    }),
  });
});

test("a malformed policy fails at synth, naming the field", () => {
  const bad = JSON.parse(JSON.stringify(config));
  bad.schedules[0].input.policy.retention.keep_daily = "seven";
  assert.throws(() => validateConfig(bad, "policies.json"), /schedules\[0\]\.input\.policy\.retention\.keep_daily/);
  const noSelector = JSON.parse(JSON.stringify(config));
  delete noSelector.schedules[0].input.policy.selector;
  assert.throws(() => validateConfig(noSelector, "policies.json"), /schedules\[0\]\.input\.policy/);
  const badExpression = JSON.parse(JSON.stringify(config));
  badExpression.schedules[0].expression = "every day";
  assert.throws(() => validateConfig(badExpression, "policies.json"), /schedules\[0\]\.expression/);
});

test("missing function artifacts fail synth with the fix, never a build", () => {
  const app = new App();
  assert.throws(
    () => new StrongroomStack(app, "strongroom", { artifacts: "/nonexistent/lambda", config }),
    /bootstrap is missing: build the functions first/,
  );
});

test("cdk-nag AwsSolutions passes only with every acknowledgement", () => {
  assert.doesNotThrow(() => synth(true).app.synth());
  assert.throws(() => synth(true, false).app.synth());
});

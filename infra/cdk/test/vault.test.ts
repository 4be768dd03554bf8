// The vault stack's tests (node:test, aws-cdk-lib/assertions): the copy role's
// trust, its explicit Deny, no Allow that deletes or unlocks, the optional
// prune and restore roles, the key, cdk-nag.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { App, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { suppressVault } from "../lib/nag";
import { EBS_READS, RESTORE_DENIED, RESTORE_UNTAG } from "../lib/restore";
import { VaultStack } from "../lib/vault-stack";

type Statement = Record<string, unknown>;

function synth(withNag: boolean, acknowledged = true): { app: App; stack: VaultStack } {
  const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), "strongroom-vault-out-")) });
  const stack = new VaultStack(app, "strongroom-vault");
  if (acknowledged) suppressVault(stack);
  if (withNag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}

function role(t: Template, name: string): { trust: Statement[]; statements: Statement[]; condition?: string } {
  const r = t.findResources("AWS::IAM::Role")[name];
  assert.ok(r, `${name} exists`);
  return {
    trust: r.Properties.AssumeRolePolicyDocument.Statement,
    statements: (r.Properties.Policies as { PolicyDocument: { Statement: Statement[] } }[]).flatMap(
      (p) => p.PolicyDocument.Statement,
    ),
    condition: r.Condition,
  };
}

const actions = (s: Statement): string[] => [s.Action ?? []].flat() as string[];
const FORBIDDEN = /^(ec2:Delete|ec2:DeregisterImage|ec2:UnlockSnapshot|rds:Delete|redshift:Delete|kms:ScheduleKeyDeletion)/i;

test("the copy role's trust names only the source's copy role, of the source account, with the external id", () => {
  const copy = role(Template.fromStack(synth(false).stack), "VaultCopyRole");
  assert.equal(copy.trust.length, 1);
  const [s] = copy.trust;
  assert.deepEqual(s.Principal, { AWS: { Ref: "SourceCopyRoleArn" } });
  assert.equal(s.Action, "sts:AssumeRole");
  assert.deepEqual(s.Condition, {
    StringEquals: {
      "aws:PrincipalAccount": { Ref: "SourceAccountId" },
      "sts:ExternalId": { "Fn::If": ["HasExternalId", { Ref: "ExternalId" }, { Ref: "AWS::NoValue" }] },
    },
  });
});

test("the copy role has the explicit Deny, and no Allow that deletes, unlocks or is a wildcard", () => {
  const copy = role(Template.fromStack(synth(false).stack), "VaultCopyRole");
  const deny = copy.statements.find((s) => s.Sid === "DenyDeletingOrUnlocking") as Statement;
  assert.equal(deny.Effect, "Deny");
  assert.equal(deny.Resource, "*");
  assert.equal(deny.Condition, undefined);
  for (const a of [
    "ec2:DeleteSnapshot",
    "ec2:DeregisterImage",
    "ec2:UnlockSnapshot",
    "ec2:ModifyImageAttribute",
    "rds:DeleteDBSnapshot",
    "rds:DeleteDBClusterSnapshot",
  ]) {
    assert.ok(actions(deny).includes(a), `the Deny names ${a}`);
  }
  // Tags (snapshot and AMI copies) only at creation.
  const tags = copy.statements.filter((s) => s.Effect === "Allow" && actions(s).includes("ec2:CreateTags"));
  assert.deepEqual(
    tags.map((s) => s.Condition),
    [{ StringEquals: { "ec2:CreateAction": ["CopySnapshot", "CopyImage"] } }],
  );
  assert.ok(copy.statements.some((s) => s.Sid === "CopyAmis" && actions(s).includes("ec2:CopyImage")));
  for (const s of copy.statements.filter((s) => s.Effect === "Allow")) {
    assert.equal(s.NotAction, undefined);
    for (const a of actions(s)) {
      assert.ok(!FORBIDDEN.test(a), `${s.Sid} allows ${a}`);
      assert.ok(!a.includes("*"), `${s.Sid} allows the wildcard ${a}`);
    }
  }
});

test("the prune role exists only with SourcePruneRoleArn, deletes only managed copies, never unlocks or shares", () => {
  const t = Template.fromStack(synth(false).stack);
  t.hasCondition("HasPruneRole", { "Fn::Not": [{ "Fn::Equals": [{ Ref: "SourcePruneRoleArn" }, ""] }] });
  const prune = role(t, "VaultPruneRole");
  assert.equal(prune.condition, "HasPruneRole");
  assert.deepEqual(prune.trust[0].Principal, { AWS: { Ref: "SourcePruneRoleArn" } });
  const deletes = prune.statements.filter((s) => s.Effect === "Allow" && actions(s).some((a) => /:(Delete|Deregister)/.test(a)));
  assert.equal(deletes.length, 4);
  for (const s of deletes) {
    const equals = (s.Condition as Record<string, Record<string, string>>).StringEquals;
    assert.ok(Object.entries(equals).some(([k, v]) => k.endsWith("strongroom:managed") && v === "true"), `${s.Sid}`);
  }
  const deny = prune.statements.find((s) => s.Effect === "Deny") as Statement;
  assert.ok(actions(deny).includes("ec2:UnlockSnapshot"));
  assert.ok(actions(deny).includes("ec2:ModifyImageAttribute"));
  const outputs = t.findOutputs("PruneRoleArn");
  assert.equal(outputs.PruneRoleArn.Condition, "HasPruneRole");
});

test("the restore role exists only with SourceRestoreRoleArn, removes only what a restore made, never a copy", () => {
  const t = Template.fromStack(synth(false).stack);
  t.hasCondition("HasRestoreRole", { "Fn::Not": [{ "Fn::Equals": [{ Ref: "SourceRestoreRoleArn" }, ""] }] });
  const restore = role(t, "VaultRestoreRole");
  assert.equal(restore.condition, "HasRestoreRole");
  assert.equal(restore.trust.length, 1);
  assert.deepEqual(restore.trust[0].Principal, { AWS: { Ref: "SourceRestoreRoleArn" } });
  assert.deepEqual(restore.trust[0].Condition, {
    StringEquals: {
      "aws:PrincipalAccount": { Ref: "SourceAccountId" },
      "sts:ExternalId": { "Fn::If": ["HasExternalId", { Ref: "ExternalId" }, { Ref: "AWS::NoValue" }] },
    },
  });
  const deny = restore.statements.find((s) => s.Effect === "Deny") as Statement;
  assert.equal(deny.Resource, "*");
  assert.equal(deny.Condition, undefined);
  for (const a of [...RESTORE_DENIED, "kms:ScheduleKeyDeletion", "kms:DisableKey"]) {
    assert.ok(actions(deny).includes(a), `the Deny names ${a}`);
  }
  const allows = restore.statements.filter((s) => s.Effect === "Allow");
  for (const s of allows) {
    for (const a of actions(s)) {
      assert.ok(!RESTORE_DENIED.includes(a) && !a.includes("*"), `${s.Sid} allows ${a}`);
      if (a === "redshift:DeleteTags") {
        // A restored cluster's contract tags: strongroom: keys but the restore's own, of clusters a restore made only.
        assert.equal(s.Sid, "UntagRestoredClusters");
        assert.deepEqual(s.Condition, {
          StringLike: { "aws:ResourceTag/strongroom:restore": "*" },
          "ForAllValues:StringLike": { "aws:TagKeys": "strongroom:*" },
          "ForAllValues:StringNotEquals": { "aws:TagKeys": ["strongroom:restore", "strongroom:restored-from"] },
        });
        assert.deepEqual(s.Condition, RESTORE_UNTAG);
        assert.ok(JSON.stringify(s.Resource).includes(":cluster:*") && !JSON.stringify(s.Resource).includes("snapshot"));
      } else if (/^[a-z0-9]+:(Delete|Terminate|Deregister|Revoke)/.test(a)) {
        assert.deepEqual(s.Condition, {
          StringLike: { "aws:ResourceTag/strongroom:restore": "*" },
          StringNotEquals: { "aws:ResourceTag/strongroom:managed": "true" },
        }, `${s.Sid} ${a}`);
      }
    }
  }
  assert.ok(allows.some((s) => s.Sid === "UntagRestoredClusters"), "the restore role removes a restored cluster's contract tags");
  const inspect = actions(allows.find((s) => s.Sid === "Inspect") as Statement);
  for (const a of [
    "ec2:DescribeSnapshotAttribute",
    "ec2:DescribeImageAttribute",
    "rds:DescribeDBSnapshotAttributes",
    "rds:DescribeDBClusterSnapshotAttributes",
  ]) {
    assert.ok(inspect.includes(a), `the restore role may ${a}`);
  }
  // The vault's key only, through EBS, RDS and Redshift of this region.
  const keyUse = allows.filter((s) => actions(s).some((a) => a.startsWith("kms:")));
  assert.deepEqual(keyUse.map((s) => s.Sid), ["UseKeysThroughServices", "GrantsForServices"]);
  for (const s of keyUse) {
    assert.deepEqual(s.Resource, { "Fn::GetAtt": ["VaultKey", "Arn"] });
    const via = (s.Condition as Record<string, Record<string, unknown[]>>).StringEquals["kms:ViaService"];
    assert.equal(via.length, 3);
  }
  assert.deepEqual((keyUse[1].Condition as Record<string, unknown>).Bool, { "kms:GrantIsForAWSResource": "true" });
  // A file restore reads a copy's blocks (EBS direct, read only): managed copies only; EBS decrypts them with the
  // role's kms:Decrypt through EC2 (the key use above).
  const reads = allows.filter((s) => actions(s).some((a) => a.startsWith("ebs:")));
  assert.deepEqual(reads.map((s) => s.Sid), ["ReadRecoveryPointBlocks"]);
  assert.deepEqual(reads[0].Action, EBS_READS);
  assert.deepEqual(reads[0].Resource, { "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":ec2:*::snapshot/*"]] });
  assert.deepEqual(reads[0].Condition, { StringEquals: { "aws:ResourceTag/strongroom:managed": "true" } });
  assert.ok(actions(keyUse[0]).includes("kms:Decrypt"));
  assert.ok(JSON.stringify(keyUse[0].Condition).includes("ec2."));
  // No role of the vault writes a snapshot through the EBS direct APIs, nor reads one but the restore role, nor
  // touches S3.
  for (const name of ["VaultCopyRole", "VaultPruneRole", "VaultRestoreRole"]) {
    for (const s of role(t, name).statements) {
      for (const a of actions(s)) {
        assert.ok(!/^ebs:(StartSnapshot|PutSnapshotBlock|CompleteSnapshot)$/.test(a), `${name} ${s.Sid} may ${a}`);
        if (a.startsWith("ebs:")) assert.equal(name, "VaultRestoreRole", `${name} ${s.Sid} reads snapshot blocks`);
        assert.ok(!a.startsWith("s3:"), `${name} ${s.Sid} may ${a}`);
      }
    }
  }
  assert.equal(t.findOutputs("RestoreRoleArn").RestoreRoleArn.Condition, "HasRestoreRole");
});

test("the key rotates, is retained, and lets the copy role in only through EBS and RDS", () => {
  const t = Template.fromStack(synth(false).stack);
  const keys = t.findResources("AWS::KMS::Key");
  const [key] = Object.values(keys);
  assert.equal(key.Properties.EnableKeyRotation, true);
  assert.equal(key.DeletionPolicy, "Retain");
  const statements = key.Properties.KeyPolicy.Statement as Statement[];
  assert.deepEqual(
    statements.map((s) => s.Sid),
    ["VaultAccountAdministers", "CopyRoleThroughEbsAndRds", "CopyRoleGrantsForEbsAndRds"],
  );
  for (const s of statements.slice(1)) {
    assert.deepEqual(s.Principal, { AWS: { "Fn::GetAtt": ["VaultCopyRole", "Arn"] } });
    const via = (s.Condition as Record<string, Record<string, unknown>>).StringEquals["kms:ViaService"];
    assert.equal((via as unknown[]).length, 2);
  }
  t.hasResourceProperties("AWS::KMS::Alias", { AliasName: "alias/strongroom-vault" });
  assert.deepEqual(Object.keys(t.findOutputs("*")).sort(), ["CopyRoleArn", "KeyArn", "PruneRoleArn", "RestoreRoleArn"]);
});

test("the vault template needs no bootstrap (no BootstrapVersion parameter)", () => {
  const t = Template.fromStack(synth(false).stack).toJSON();
  assert.equal(t.Parameters.BootstrapVersion, undefined);
  assert.deepEqual(Object.keys(t.Parameters).sort(), [
    "ExternalId",
    "SourceAccountId",
    "SourceCopyRoleArn",
    "SourcePruneRoleArn",
    "SourceRestoreRoleArn",
  ]);
});

test("cdk-nag AwsSolutions passes the vault only with every acknowledgement", () => {
  assert.doesNotThrow(() => synth(true).app.synth());
  assert.throws(() => synth(true, false).app.synth());
});

// The vault stack's tests (node:test, aws-cdk-lib/assertions): the copy role's
// trust, its explicit Deny, no Allow that deletes or unlocks, the optional
// prune role, the key, cdk-nag.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { App, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { suppressVault } from "../lib/nag";
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
  assert.deepEqual(Object.keys(t.findOutputs("*")).sort(), ["CopyRoleArn", "KeyArn", "PruneRoleArn"]);
});

test("the vault template needs no bootstrap (no BootstrapVersion parameter)", () => {
  const t = Template.fromStack(synth(false).stack).toJSON();
  assert.equal(t.Parameters.BootstrapVersion, undefined);
  assert.deepEqual(Object.keys(t.Parameters).sort(), ["ExternalId", "SourceAccountId", "SourceCopyRoleArn", "SourcePruneRoleArn"]);
});

test("cdk-nag AwsSolutions passes the vault only with every acknowledgement", () => {
  assert.doesNotThrow(() => synth(true).app.synth());
  assert.throws(() => synth(true, false).app.synth());
});

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

test("six functions on provided.al2023 with JSON logs, the bucket where it is needed", () => {
  const t = Template.fromStack(synth(false).stack);
  t.resourceCountIs("AWS::Lambda::Function", 6);
  t.allResourcesProperties("AWS::Lambda::Function", {
    Runtime: "provided.al2023",
    Handler: "bootstrap",
    LoggingConfig: Match.objectLike({ LogFormat: "JSON" }),
    TracingConfig: { Mode: "Active" },
  });
  for (const fn of ["discover", "copy", "prune"]) {
    t.hasResourceProperties("AWS::Lambda::Function", {
      FunctionName: { "Fn::Join": ["", [{ Ref: "AWS::StackName" }, `-${fn}`]] },
      Environment: { Variables: { STRONGROOM_BUCKET: Match.anyValue() } },
    });
  }
  t.resourceCountIs("AWS::Logs::LogGroup", 7);
  t.resourceCountIs("AWS::IAM::Role", 8);
});

test("the state machine runs the ASL file, every placeholder substituted", () => {
  const t = Template.fromStack(synth(false).stack);
  const machines = t.findResources("AWS::StepFunctions::StateMachine");
  const [machine] = Object.values(machines) as { Properties: Record<string, unknown> }[];
  const file = fs.readFileSync(path.join(ROOT, "infra", "statemachines", "backup.asl.json"), "utf8");
  assert.equal(machine.Properties.DefinitionString, file);
  const used = new Set([...file.matchAll(/\$\{([A-Za-z]+)\}/g)].map((m) => m[1]));
  assert.deepEqual(new Set(Object.keys(machine.Properties.DefinitionSubstitutions as object)), used);
  assert.deepEqual(machine.Properties.TracingConfiguration, { Enabled: true });
});

test("destructive actions carry their guards", () => {
  const t = Template.fromStack(synth(false).stack);
  const guarded: Record<string, [string, string]> = {
    "ec2:DeleteSnapshot": ["StringEquals", "aws:ResourceTag/strongroom:managed"],
    "ec2:DeregisterImage": ["StringEquals", "aws:ResourceTag/strongroom:managed"],
    "rds:DeleteDBSnapshot": ["StringEquals", "rds:snapshot-tag/strongroom:managed"],
    "rds:DeleteDBClusterSnapshot": ["StringEquals", "rds:cluster-snapshot-tag/strongroom:managed"],
  };
  const statements = Object.values(t.findResources("AWS::IAM::Role")).flatMap((r) =>
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

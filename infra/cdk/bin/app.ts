// The CDK app: `cdk synth` (or `node dist/bin/app.js`). Context:
//   artifacts  cargo-lambda's output dir (default $CARGO_TARGET_DIR/lambda, or
//              target/lambda): <artifacts>/<function>/bootstrap
//   policies   the policies file (default infra/cdk/policies.json)
//   stackName  (default strongroom)
//   vaultStackName  the vault account's stack (default strongroom-vault)
//   vaultOnly  true: only the vault stack (a vault account deploys it without
//              the functions' artifacts)
import * as path from "path";
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { loadConfig, ROOT } from "../lib/config";
import { suppress, suppressVault } from "../lib/nag";
import { StrongroomStack } from "../lib/stack";
import { VaultStack } from "../lib/vault-stack";

const app = new App();
const artifacts =
  app.node.tryGetContext("artifacts") ??
  path.join(process.env.CARGO_TARGET_DIR ?? path.join(ROOT, "target"), "lambda");
const policies = app.node.tryGetContext("policies") ?? path.join(ROOT, "infra", "cdk", "policies.json");
if (String(app.node.tryGetContext("vaultOnly") ?? "false") !== "true") {
  const stack = new StrongroomStack(app, app.node.tryGetContext("stackName") ?? "strongroom", {
    artifacts,
    config: loadConfig(policies),
  });
  suppress(stack);
}
// Deployed in the vault account (infra/vault-account.yaml says how), synthesized with the main one.
suppressVault(new VaultStack(app, app.node.tryGetContext("vaultStackName") ?? "strongroom-vault"));
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
app.synth();

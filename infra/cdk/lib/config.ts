// The policies of a deployment, as typed config: each schedule's run input is
// checked at synth against the JSON Schema the functions generate
// (infra/schemas/run-input.schema.json), so a malformed policy fails
// `cdk synth`, naming the field, not the 2 a.m. run.
import * as fs from "fs";
import * as path from "path";
import Ajv2020 from "ajv/dist/2020";

export interface Schedule {
  /** Construct id (letters and digits). */
  id: string;
  /** Schedule name suffix: `<stack>-<name>`. */
  name: string;
  description: string;
  /** EventBridge Scheduler expression: cron(...), rate(...) or at(...). */
  expression: string;
  timezone: string;
  enabled: boolean;
  /** The run input; `${AWS::Region}` and `${AWS::AccountId}` are filled in at deploy. */
  input: Record<string, unknown>;
}

export interface Config {
  schedules: Schedule[];
}

export const ROOT = path.resolve(__dirname, "..", "..", "..", "..");
const SCHEMA = path.join(ROOT, "infra", "schemas", "run-input.schema.json");

/** Loads and validates `file`; throws an Error naming the schedule and field. */
export function loadConfig(file: string): Config {
  const raw: unknown = JSON.parse(fs.readFileSync(file, "utf8"));
  return validateConfig(raw, file);
}

export function validateConfig(raw: unknown, where: string): Config {
  const fail = (field: string, why: string): never => {
    throw new Error(`${where}: ${field} ${why}`);
  };
  if (typeof raw !== "object" || raw === null || !Array.isArray((raw as Config).schedules)) {
    fail("schedules", "must be a list of schedules");
  }
  const config = raw as Config;
  if (config.schedules.length === 0) fail("schedules", "is empty: nothing would start a run");
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false });
  const validate = ajv.compile(JSON.parse(fs.readFileSync(SCHEMA, "utf8")));
  const ids = new Set<string>();
  config.schedules.forEach((s, i) => {
    const at = `schedules[${i}]`;
    if (!/^[A-Za-z][A-Za-z0-9]{0,63}$/.test(s.id ?? "")) fail(`${at}.id`, "must be letters and digits, starting with a letter");
    if (ids.has(s.id)) fail(`${at}.id`, `\`${s.id}\` is used twice`);
    ids.add(s.id);
    if (!/^[a-z0-9-]{1,40}$/.test(s.name ?? "")) fail(`${at}.name`, "must be 1-40 lowercase letters, digits or hyphens");
    if (!/^(cron|rate|at)\(.+\)$/.test(s.expression ?? "")) {
      fail(`${at}.expression`, "must be an EventBridge Scheduler expression, e.g. cron(0 3 * * ? *)");
    }
    if (typeof s.enabled !== "boolean") fail(`${at}.enabled`, "must be true or false");
    const input = JSON.parse(fillPseudo(JSON.stringify(s.input ?? null)));
    if (!validate(input)) {
      const deepest = [...(validate.errors ?? [])].sort(
        (a, b) => b.instancePath.split("/").length - a.instancePath.split("/").length,
      )[0];
      const field = deepest.instancePath.replace(/^\//, "").replace(/\//g, ".") || "(the input)";
      fail(`${at}.input.${field}`, deepest.message ?? "is invalid");
    }
    if (input.scheduled_time !== "<aws.scheduler.scheduled-time>") {
      fail(`${at}.input.scheduled_time`, "must be <aws.scheduler.scheduled-time> (the idempotency key of each run)");
    }
  });
  return config;
}

/** The input with example values for the pseudo parameters, to validate it. */
function fillPseudo(text: string): string {
  return text.replace(/\$\{AWS::Region\}/g, "us-east-1").replace(/\$\{AWS::AccountId\}/g, "123456789012");
}

//! `strongroom`: the operator CLI. Runs the same core code as the functions.
//!
//! ```text
//! strongroom retention plan --retention retention.json --recovery-points points.json [--now T]
//! strongroom retention plan --policy policy.json --recovery-points points.json [--now T]
//! strongroom prune --policy policy.json [--dry-run] [--now T]
//! strongroom recovery-points list --location REGION|ACCOUNT/REGION [--role-arn ARN]
//!            [--external-id ID] [--source X] [--policy P] [--kind K]
//! strongroom files ls (--snapshot ID [--region R] | --image FILE) [--partition N]
//!            [--recursive] [--json] [PATH]
//! strongroom files get (--snapshot ID [--region R] | --image FILE) [--partition N]
//!            --out DIR [--json] PATH_OR_GLOB...
//! ```

mod files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use strongroom_core::model::{parse_time, Tags};
use strongroom_core::policy::{parse_with_path, Policy};
use strongroom_core::prune::{is_held, parse_request, prune};
use strongroom_core::retention::{plan, Decision, PlanPoint, Retention};
use strongroom_core::{tags, Error, Reason};

#[derive(Parser)]
#[command(name = "strongroom", version, about = "Strongroom operator CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Retention rules.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Prune a policy's recovery points in the account and regions the
    /// environment points at (AWS credentials, AWS_ENDPOINT_URL).
    Prune(PruneArgs),
    /// Recovery points.
    #[command(subcommand, name = "recovery-points")]
    RecoveryPoints(PointsCommand),
    /// Files straight out of a disk image: list them, restore them.
    #[command(subcommand)]
    Files(files::FilesCommand),
}

#[derive(Subcommand)]
enum PointsCommand {
    /// List every Strongroom recovery point at a location (any policy), with
    /// its state, time, kind, size and source: what a restore can name.
    List(ListArgs),
}

#[derive(Args)]
struct ListArgs {
    /// Where: a region (the account of the credentials) or ACCOUNT/REGION.
    #[arg(long)]
    location: String,
    /// The role to assume in ACCOUNT (a vault's).
    #[arg(long)]
    role_arn: Option<String>,
    #[arg(long)]
    external_id: Option<String>,
    /// Only this source's: a volume or instance id, a database's ARN or identifier.
    #[arg(long)]
    source: Option<String>,
    /// Only this policy's.
    #[arg(long)]
    policy: Option<String>,
    /// Only points of this kind (ebs-snapshot, ec2-snapshot-set, ami,
    /// rds-snapshot, aurora-snapshot, redshift-snapshot).
    #[arg(long)]
    kind: Option<String>,
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Print which recovery points a retention keeps and deletes, with reasons.
    Plan(PlanArgs),
}

#[derive(Args)]
struct PlanArgs {
    /// A retention object, e.g. {"keep_daily": 7, "keep_weekly": 4}.
    #[arg(long, conflicts_with = "policy", required_unless_present = "policy")]
    retention: Option<PathBuf>,
    /// A whole policy document: its `retention` object is used.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Recovery points: [{"id": "...", "time": "RFC 3339", "tags": {"k": "v"}}].
    #[arg(long)]
    recovery_points: PathBuf,
    /// Evaluate at this time (RFC 3339; default: now).
    #[arg(long)]
    now: Option<String>,
}

#[derive(Args)]
struct PruneArgs {
    /// The policy document.
    #[arg(long)]
    policy: PathBuf,
    /// Compute and print the plan, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Evaluate retention at this time (RFC 3339; default: now).
    #[arg(long)]
    now: Option<String>,
}

/// One input recovery point of `retention plan`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputPoint {
    id: String,
    time: String,
    #[serde(default)]
    tags: Tags,
}

#[derive(Debug, Serialize)]
struct PlanOutput {
    keep: Vec<Decision>,
    delete: Vec<Decision>,
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

fn at(file: &Path) -> impl Fn(Error) -> String + '_ {
    move |e| format!("{}: {e}", file.display())
}

fn now_from(now: &Option<String>) -> Result<time::OffsetDateTime, String> {
    match now {
        Some(t) => parse_time(t).map_err(|e| format!("--now `{t}` is not an RFC 3339 time ({e})")),
        None => Ok(time::OffsetDateTime::now_utc()),
    }
}

fn retention_plan(args: &PlanArgs) -> Result<PlanOutput, String> {
    let (retention, file, field): (Retention, &Path, &str) = match (&args.retention, &args.policy) {
        (Some(r), _) => (
            parse_with_path(read_json(r)?, "").map_err(at(r))?,
            r.as_path(),
            "retention",
        ),
        (None, Some(p)) => {
            let policy: Policy = parse_with_path(read_json(p)?, "").map_err(at(p))?;
            let r = policy
                .retention
                .ok_or_else(|| format!("{}: the policy has no `retention` object", p.display()))?;
            (r, p.as_path(), "retention")
        }
        (None, None) => return Err("give --retention or --policy".into()),
    };
    let rules = retention.rules(field).map_err(at(file))?;
    let now = now_from(&args.now)?;
    let rp = &args.recovery_points;
    let points: Vec<InputPoint> = parse_with_path(read_json(rp)?, "").map_err(at(rp))?;
    // One plan per source (the `strongroom:source` tag; untagged points are one source).
    let mut by_source: BTreeMap<String, Vec<PlanPoint>> = BTreeMap::new();
    for (i, p) in points.iter().enumerate() {
        let time = parse_time(&p.time).map_err(|e| {
            format!(
                "{}: [{i}].time `{}` is not an RFC 3339 time ({e})",
                rp.display(),
                p.time
            )
        })?;
        let mut protected = Vec::new();
        if is_held(&p.tags) {
            protected.push(Reason::Hold);
        }
        by_source
            .entry(p.tags.get(tags::SOURCE).cloned().unwrap_or_default())
            .or_default()
            .push(PlanPoint {
                id: p.id.clone(),
                time,
                completed: true,
                protected,
            });
    }
    let mut out = PlanOutput {
        keep: vec![],
        delete: vec![],
    };
    for points in by_source.values() {
        let p = plan(points, &rules, now);
        out.keep.extend(p.keep);
        out.delete.extend(p.delete);
    }
    Ok(out)
}

async fn run_prune(args: &PruneArgs) -> Result<serde_json::Value, String> {
    let policy = read_json(&args.policy)?;
    let mut request = serde_json::json!({"policy": policy, "dry_run": args.dry_run});
    if let Some(now) = &args.now {
        request["now"] = serde_json::json!(now);
    }
    let (req, rules, now) =
        parse_request(request, time::OffsetDateTime::now_utc()).map_err(at(&args.policy))?;
    let cloud = strongroom_aws::AwsCloud::from_env().await;
    let report = prune(req, rules, now, &cloud)
        .await
        .map_err(|e| format!("{} ({})", e, e.error_type()))?;
    serde_json::to_value(report).map_err(|e| e.to_string())
}

async fn list_points(args: &ListArgs) -> Result<serde_json::Value, String> {
    use strongroom_core::model::{Location, RecoveryPointKind};
    use strongroom_core::policy::{is_account_id, is_region_name, AccountRole};
    use strongroom_core::ports::Identity;
    use strongroom_core::restore::run::{catalog_entries, Restores};
    let (account, region) = match args.location.split_once('/') {
        Some((a, r)) => (Some(a.to_owned()), r.to_owned()),
        None => (None, args.location.clone()),
    };
    if !is_region_name(&region) {
        return Err(format!(
            "--location `{}`: `{region}` is not a region name; use e.g. us-east-1 or 123456789012/us-east-1",
            args.location
        ));
    }
    if let Some(a) = &account {
        if !is_account_id(a) {
            return Err(format!(
                "--location `{}`: `{a}` is not a 12-digit account id",
                args.location
            ));
        }
    }
    let kinds: Vec<RecoveryPointKind> = match &args.kind {
        Some(k) => vec![RecoveryPointKind::from_tag(k).ok_or_else(|| {
            format!("--kind `{k}` is not a kind: ebs-snapshot, ec2-snapshot-set, ami, rds-snapshot, aurora-snapshot or redshift-snapshot")
        })?],
        None => RecoveryPointKind::ALL.to_vec(),
    };
    let cloud = strongroom_aws::AwsCloud::from_env().await;
    let home = cloud
        .home_account()
        .await
        .map_err(|e| format!("{e} ({})", e.kind))?;
    let account = account.unwrap_or(home.clone());
    if account != home {
        let role = AccountRole {
            account: account.clone(),
            role_arn: args.role_arn.clone(),
            external_id: args.external_id.clone(),
        };
        if role.role_arn.is_none() {
            return Err(format!(
                "--location names account {account}: give --role-arn, a role to assume there"
            ));
        }
        role.validate("--role-arn").map_err(|e| e.to_string())?;
        cloud.use_roles(&[role]);
    }
    let location = Location { account, region };
    let listed = cloud
        .catalog(&location, &kinds)
        .await
        .map_err(|e| format!("{e} ({})", e.kind))?;
    let entries = catalog_entries(&listed, args.source.as_deref(), args.policy.as_deref());
    serde_json::to_value(entries).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Files(cmd) = &cli.command {
        // These print as they go (a listing, each restored file).
        return match files::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("strongroom: {e}");
                ExitCode::from(2)
            }
        };
    }
    let result = match &cli.command {
        Command::Retention(RetentionCommand::Plan(args)) => {
            retention_plan(args).map(|p| serde_json::to_value(p).expect("a plan serializes"))
        }
        Command::Prune(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(run_prune(args))),
        Command::RecoveryPoints(PointsCommand::List(args)) => {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(list_points(args)))
        }
        Command::Files(_) => unreachable!("handled above"),
    };
    match result {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("strongroom: {e}");
            ExitCode::from(2)
        }
    }
}

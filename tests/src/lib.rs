//! The emulator harness for Strongroom's integration tests.
//!
//! [`Emulator::start`] runs `tests/emulator/emulator.py` (moto_server with
//! Strongroom's patches, Step Functions execution on, Lambda tasks routed to
//! the real function binaries) on a free loopback port, one per test, and
//! stops it on drop. Nothing here talks to anything but 127.0.0.1.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};

pub mod executions;
use serde::Deserialize;
use strongroom_core::model::ResourceType;

/// The account moto uses.
pub const ACCOUNT: &str = "123456789012";
/// The stack's bucket the emulator makes (`STRONGROOM_BUCKET` of the functions).
pub const RUNS_BUCKET: &str = "strongroom-runs-123456789012";

/// The workspace root: of this checkout, from the `CARGO_MANIFEST_DIR`
/// cargo sets when it runs a test (the compile-time value may name another
/// checkout that shared the target directory).
pub fn workspace() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf())
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The Python of the venv that `make setup` made (override: `STRONGROOM_PYTHON`).
pub fn python() -> PathBuf {
    let p = std::env::var_os("STRONGROOM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/strongroom/venv/bin/python")
        });
    assert!(
        p.exists(),
        "the emulator's Python ({}) is missing: run `make setup` (or set STRONGROOM_PYTHON)",
        p.display()
    );
    p
}

/// Where the function binaries are (override: `STRONGROOM_FUNCTIONS_DIR`):
/// by default the profile directory this test binary was built into.
pub fn functions_dir() -> PathBuf {
    let dir = std::env::var_os("STRONGROOM_FUNCTIONS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("current exe");
            exe.parent()
                .and_then(Path::parent)
                .expect("target/<profile>/deps/<test>")
                .to_path_buf()
        });
    for f in ["discover", "snapshot", "status", "report", "prune"] {
        assert!(
            dir.join(f).exists(),
            "function binary {} is missing: build the functions first (`make test` does, or `cargo build --workspace --bins`)",
            dir.join(f).display()
        );
    }
    dir
}

/// One running emulator.
pub struct Emulator {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    pub endpoint: String,
    pub log_dir: PathBuf,
}

/// One resource of a seeded estate.
#[derive(Debug, Clone, Deserialize)]
pub struct SeededResource {
    pub resource_type: ResourceType,
    pub id: String,
    pub arn: String,
    pub region: String,
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub volumes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub estate: String,
    /// The account seeded.
    #[serde(default)]
    pub account: String,
    /// The role made there (`seed_in` with a role).
    #[serde(default)]
    pub role_arn: Option<String>,
    pub resources: Vec<SeededResource>,
    /// KMS keys the estate made, by name -> key ARN.
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
    /// IAM roles the estate made, by name -> role ARN.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
}

/// An AWS Organizations tree `seed.py --organization` made: ids by name.
#[derive(Debug, Clone, Deserialize)]
pub struct Organization {
    pub root: String,
    /// `prod`, `prod/eu`, `sandbox` -> OU id.
    pub units: BTreeMap<String, String>,
    /// `prod-a` (in `prod`), `prod-eu` (in `prod/eu`), `sandbox` -> account id.
    pub accounts: BTreeMap<String, String>,
}

/// One AWS API call that reached the emulator.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Call {
    pub service: String,
    pub region: String,
    pub action: String,
    pub client: String,
    /// The fault the emulator answered with instead (`throttled`,
    /// `lost-response`, `quota`), if any.
    #[serde(default)]
    pub fault: Option<String>,
    /// The function that made the call (Strongroom's calls).
    #[serde(default)]
    pub function: Option<String>,
}

impl Emulator {
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Starts an emulator with extra environment (e.g. moto's `MOTO_RDS_SNAPSHOT_LIMIT`).
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let script = workspace().join("tests/emulator/emulator.py");
        let mut cmd = Command::new(python());
        cmd.arg(&script)
            .arg("--functions-dir")
            .arg(functions_dir())
            .arg("--exit-with-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the emulator");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the emulator's READY line");
        let mut parts = line.split_whitespace();
        assert_eq!(
            parts.next(),
            Some("READY"),
            "the emulator did not start: {line:?}"
        );
        let port: u16 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port after READY");
        let log_dir = PathBuf::from(parts.next().expect("a log dir after the port"));
        Self {
            child,
            _stdin: stdin,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            log_dir,
        }
    }

    /// SDK configuration for Strongroom's own code under test: this emulator, dummy credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.config(None).await
    }

    /// SDK configuration for the test's own calls (set-up, reading back, Step
    /// Functions): marked `app/strongroom-tests` so the call log tells them apart.
    pub async fn harness_config(&self) -> SdkConfig {
        self.config(Some("strongroom-tests")).await
    }

    async fn config(&self, app: Option<&str>) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ));
        if let Some(app) = app {
            loader = loader
                .app_name(aws_config::AppName::new(app.to_owned()).expect("a valid app name"));
        }
        loader.load().await
    }

    /// Seeds one of the estates of `tests/emulator/seed.py`.
    pub fn seed(&self, estate: &str) -> Manifest {
        self.seed_in(estate, ACCOUNT, None)
    }

    /// Seeds an estate in `account`, and there an IAM role named `role`
    /// that the home account may assume.
    pub fn seed_in(&self, estate: &str, account: &str, role: Option<&str>) -> Manifest {
        let mut cmd = Command::new(python());
        cmd.arg(workspace().join("tests/emulator/seed.py"))
            .args(["--endpoint", &self.endpoint, "--estate", estate])
            .args(["--account", account]);
        if let Some(r) = role {
            cmd.args(["--role", r]);
        }
        let out = cmd.output().expect("run seed.py");
        assert!(
            out.status.success(),
            "seed.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("seed.py prints a manifest")
    }

    /// Makes the home account the management account of a small AWS
    /// Organizations tree (see `seed.py --organization`).
    pub fn organization(&self) -> Organization {
        let out = Command::new(python())
            .arg(workspace().join("tests/emulator/seed.py"))
            .args(["--endpoint", &self.endpoint, "--organization"])
            .output()
            .expect("run seed.py");
        assert!(
            out.status.success(),
            "seed.py --organization failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("seed.py prints the tree")
    }

    fn http(&self, method: &str, path: &str) -> String {
        self.http_with(method, path, "")
    }

    fn http_with(&self, method: &str, path: &str, body: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the emulator");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        resp.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    /// Invokes one of the real function binaries as Lambda would (the
    /// emulator's Invoke endpoint): its answer, an error being
    /// `{"errorType": …, "errorMessage": …}`.
    pub fn invoke(&self, function: &str, payload: &serde_json::Value) -> serde_json::Value {
        let answer = self.http_with(
            "POST",
            &format!("/2015-03-31/functions/{function}/invocations"),
            &payload.to_string(),
        );
        serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("{function} answered no JSON ({e}): {answer}"))
    }

    /// The object `at` in the emulator's S3, parsed as JSON.
    pub async fn object_json<T: serde::de::DeserializeOwned>(
        &self,
        at: &strongroom_core::runs::S3Object,
    ) -> T {
        use strongroom_core::ports::ObjectStore;
        let store = strongroom_aws::AwsCloud::new(strongroom_aws::Clients::from_config(
            self.harness_config().await,
        ));
        let body = store
            .get_object(at)
            .await
            .unwrap_or_else(|e| panic!("read {at}: {e}"));
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{at} is not the JSON expected: {e}"))
    }

    /// The whole run report a run summary points at.
    pub async fn run_report(
        &self,
        summary: &strongroom_core::report::RunSummary,
    ) -> strongroom_core::report::RunReport {
        self.object_json(&summary.report).await
    }

    /// The RDS `ManualSnapshots` quota's use in the home account's us-east-1,
    /// as `DescribeAccountAttributes` reports it.
    pub async fn rds_manual_snapshots_used(&self) -> i64 {
        aws_sdk_rds::Client::new(&self.harness_config().await)
            .describe_account_attributes()
            .send()
            .await
            .expect("DescribeAccountAttributes")
            .account_quotas()
            .iter()
            .find(|q| q.account_quota_name() == Some("ManualSnapshots"))
            .and_then(|q| q.used())
            .expect("the ManualSnapshots quota")
    }

    /// Replaces the emulator's faults (see `tests/emulator/faults.py`).
    pub fn set_faults(&self, faults: &serde_json::Value) {
        let answer = self.http_with("POST", "/_strongroom/faults", &faults.to_string());
        let v: serde_json::Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("the faults answer is JSON ({e}): {answer}"));
        assert!(v.get("error").is_none(), "faults refused: {v}");
    }

    /// Every AWS API call since the last [`Emulator::reset_calls`].
    pub fn calls(&self) -> Vec<Call> {
        serde_json::from_str(&self.http("GET", "/_strongroom/calls")).expect("call log is JSON")
    }

    /// Makes the raw disk image at `image` the content of the volume (patch
    /// 20): its snapshots, and their copies, hold those blocks.
    pub fn set_volume_content(&self, region: &str, volume_id: &str, image: &std::path::Path) {
        let body = serde_json::json!({"region": region, "volume_id": volume_id, "image": image});
        let answer = self.http_with("POST", "/_strongroom/volume-content", &body.to_string());
        let v: serde_json::Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("the volume-content answer is JSON ({e}): {answer}"));
        assert_eq!(v["volume_id"], volume_id, "volume content refused: {v}");
    }

    pub fn reset_calls(&self) {
        self.http("DELETE", "/_strongroom/calls");
    }

    /// The calls Strongroom's own code made (the Rust SDK), by `service:Action`.
    pub fn strongroom_calls(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for c in self
            .calls()
            .into_iter()
            .filter(|c| c.client == "strongroom")
        {
            *m.entry(format!("{}:{}", c.service, c.action)).or_insert(0) += 1;
        }
        m
    }

    /// A function's log (JSON lines), for failure messages.
    pub fn function_log(&self, function: &str) -> String {
        std::fs::read_to_string(self.log_dir.join(format!("{function}.log"))).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

/// What AWS holds a recovery point as: read straight from the emulator, not
/// through Strongroom's own kind table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FoundKind {
    /// An EBS snapshot (of a volume, an instance's set, or an AMI).
    Ebs,
    Ami,
    /// A manual RDS DB snapshot.
    Rds,
    /// A manual DB cluster snapshot.
    Aurora,
    /// A manual Redshift cluster snapshot.
    Redshift,
}

/// Everything in the emulator that looks like a recovery point: (kind, id, volume, tags).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub kind: FoundKind,
    pub id: String,
    pub volume: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl Emulator {
    /// Every snapshot, AMI and manual DB / cluster snapshot in the emulator's three regions.
    pub async fn recovery_points(&self) -> Vec<Found> {
        let conf = self.harness_config().await;
        Self::recovery_points_with(conf).await
    }

    /// The same in another account, read through `role_arn` there.
    pub async fn recovery_points_in(&self, role_arn: &str) -> Vec<Found> {
        Self::recovery_points_with(self.harness_config_as(role_arn).await).await
    }

    /// The harness's configuration acting through `role_arn` (another account).
    pub async fn harness_config_as(&self, role_arn: &str) -> SdkConfig {
        let base = self.harness_config().await;
        let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name("strongroom-tests")
            .configure(&base)
            .build()
            .await;
        base.to_builder()
            .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(
                provider,
            ))
            .build()
    }

    /// The emulator's copy settings and the most copies it saw in flight per
    /// `<account>/<region>/<ebs|db>` (patch 17, `/_strongroom/copies`).
    pub fn copies(&self) -> serde_json::Value {
        serde_json::from_str(&self.http("GET", "/_strongroom/copies"))
            .expect("/_strongroom/copies answers JSON")
    }

    /// Replaces the emulator's copy settings (patch 17).
    pub fn set_copies(&self, config: &serde_json::Value) {
        let answer = self.http_with("POST", "/_strongroom/copies", &config.to_string());
        assert!(
            answer.contains("\"config\""),
            "POST /_strongroom/copies refused {config}: {answer}"
        );
    }

    async fn recovery_points_with(conf: SdkConfig) -> Vec<Found> {
        let mut out = Vec::new();
        for region in ["us-east-1", "eu-west-1", "ap-southeast-2"] {
            let ec2 = aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(&conf)
                    .region(aws_config::Region::new(region))
                    .build(),
            );
            for s in ec2
                .describe_snapshots()
                .owner_ids("self")
                .send()
                .await
                .unwrap()
                .snapshots()
            {
                out.push(Found {
                    kind: FoundKind::Ebs,
                    id: s.snapshot_id().unwrap().into(),
                    volume: s.volume_id().map(Into::into),
                    tags: s
                        .tags()
                        .iter()
                        .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
                        .collect(),
                });
            }
            for i in ec2
                .describe_images()
                .owners("self")
                .send()
                .await
                .unwrap()
                .images()
            {
                out.push(Found {
                    kind: FoundKind::Ami,
                    id: i.image_id().unwrap().into(),
                    volume: None,
                    tags: i
                        .tags()
                        .iter()
                        .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
                        .collect(),
                });
            }
            let rds = aws_sdk_rds::Client::from_conf(
                aws_sdk_rds::config::Builder::from(&conf)
                    .region(aws_config::Region::new(region))
                    .build(),
            );
            for s in rds
                .describe_db_snapshots()
                .snapshot_type("manual")
                .send()
                .await
                .unwrap()
                .db_snapshots()
            {
                out.push(Found {
                    kind: FoundKind::Rds,
                    id: s.db_snapshot_identifier().unwrap().into(),
                    volume: None,
                    tags: s
                        .tag_list()
                        .iter()
                        .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
                        .collect(),
                });
            }
            for s in rds
                .describe_db_cluster_snapshots()
                .snapshot_type("manual")
                .send()
                .await
                .unwrap()
                .db_cluster_snapshots()
            {
                out.push(Found {
                    kind: FoundKind::Aurora,
                    id: s.db_cluster_snapshot_identifier().unwrap().into(),
                    volume: None,
                    tags: s
                        .tag_list()
                        .iter()
                        .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
                        .collect(),
                });
            }
            let rs = aws_sdk_redshift::Client::from_conf(
                aws_sdk_redshift::config::Builder::from(&conf)
                    .region(aws_config::Region::new(region))
                    .build(),
            );
            // moto ignores SnapshotType here; its automated snapshots are not ours.
            for s in rs
                .describe_cluster_snapshots()
                .snapshot_type("manual")
                .send()
                .await
                .unwrap()
                .snapshots()
                .iter()
                .filter(|s| s.snapshot_type() == Some("manual"))
            {
                out.push(Found {
                    kind: FoundKind::Redshift,
                    id: s.snapshot_identifier().unwrap().into(),
                    volume: None,
                    tags: s
                        .tags()
                        .iter()
                        .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
                        .collect(),
                });
            }
        }
        out.sort();
        out
    }
}

/// The backup state machine with its Lambda ARNs substituted, as SAM would.
pub fn backup_definition() -> String {
    let asl = std::fs::read_to_string(workspace().join("infra/statemachines/backup.asl.json"))
        .expect("read the ASL");
    substitute(&asl)
}

/// The restore state machine with its Lambda ARN substituted, as SAM would.
pub fn restore_definition() -> String {
    let asl = std::fs::read_to_string(workspace().join("infra/statemachines/restore.asl.json"))
        .expect("read the ASL");
    substitute(&asl)
}

/// The backup state machine as the SAM stack deploys it: the definition
/// `infra/check_template.py` takes from the converted template, its
/// `DefinitionSubstitutions` resolved to the emulator's functions (written by
/// `make check-infra`, which `make test` runs first, to the file
/// `STRONGROOM_DEPLOYED_BACKUP` names).
pub fn deployed_backup_definition() -> String {
    let path = std::env::var_os("STRONGROOM_DEPLOYED_BACKUP").unwrap_or_else(|| {
        panic!(
            "STRONGROOM_DEPLOYED_BACKUP is not set: run `make check-infra` (make test does) first"
        )
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the deployed backup definition {} is missing ({e}): run `make check-infra` first",
            PathBuf::from(&path).display()
        )
    })
}

/// The restore state machine as the SAM stack deploys it (written by `make
/// check-infra` to the file `STRONGROOM_DEPLOYED_RESTORE` names, like the
/// backup's).
pub fn deployed_restore_definition() -> String {
    let path = std::env::var_os("STRONGROOM_DEPLOYED_RESTORE").unwrap_or_else(|| {
        panic!(
            "STRONGROOM_DEPLOYED_RESTORE is not set: run `make check-infra` (make test does) first"
        )
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the deployed restore definition {} is missing ({e}): run `make check-infra` first",
            PathBuf::from(&path).display()
        )
    })
}

/// Replaces `${XFunctionArn}` with the emulator's function ARNs.
pub fn substitute(asl: &str) -> String {
    let mut out = asl.to_owned();
    for (var, name) in [
        ("DiscoverFunctionArn", "discover"),
        ("SnapshotFunctionArn", "snapshot"),
        ("StatusFunctionArn", "status"),
        ("ReportFunctionArn", "report"),
        ("PruneFunctionArn", "prune"),
        ("CopyFunctionArn", "copy"),
        ("RestoreFunctionArn", "restore"),
    ] {
        out = out.replace(
            &format!("${{{var}}}"),
            &format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"),
        );
    }
    assert!(!out.contains("${"), "an ASL substitution is missing");
    out
}

/// The SDK clients of one region, for the tests' own read-backs.
pub mod clients {
    use aws_config::SdkConfig;

    pub fn ec2(conf: &SdkConfig, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(conf)
                .region(aws_config::Region::new(region.to_owned()))
                .build(),
        )
    }

    pub fn rds(conf: &SdkConfig, region: &str) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::from_conf(
            aws_sdk_rds::config::Builder::from(conf)
                .region(aws_config::Region::new(region.to_owned()))
                .build(),
        )
    }

    pub fn redshift(conf: &SdkConfig, region: &str) -> aws_sdk_redshift::Client {
        aws_sdk_redshift::Client::from_conf(
            aws_sdk_redshift::config::Builder::from(conf)
                .region(aws_config::Region::new(region.to_owned()))
                .build(),
        )
    }
}

/// Filesystem images built at test time from the standard tree
/// (`tests/fsimages/build.py`, with the filesystems' own tools).
pub mod fsimages {
    use std::path::PathBuf;
    use std::process::Command;

    use serde_json::Value;

    use super::workspace;

    pub fn build(args: &[&str]) -> String {
        let script = workspace().join("tests/fsimages/build.py");
        let out = Command::new("python3")
            .arg(&script)
            .args(args)
            .output()
            .expect("run tests/fsimages/build.py (python3)");
        assert!(
            out.status.success(),
            "build.py {args:?} failed (make setup installs mkfs.xfs, mkntfs, ntfs-3g, sgdisk): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    pub struct Tree {
        pub dir: PathBuf,
        pub manifest: Value,
        _tmp: TempDir,
    }

    pub struct TempDir(pub PathBuf);

    impl TempDir {
        pub fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("strongroom-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub fn tree(name: &str) -> Tree {
        tree_with(name, &[])
    }

    /// The standard tree with `build.py tree` options (`--big`: a sparse
    /// file over 4 GiB).
    pub fn tree_with(name: &str, options: &[&str]) -> Tree {
        let tmp = TempDir::new(name);
        let dir = tmp.0.join("tree");
        let manifest = tmp.0.join("manifest.json");
        let mut args = vec![
            "tree",
            "--out",
            dir.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ];
        args.extend_from_slice(options);
        build(&args);
        let manifest =
            serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("JSON");
        Tree {
            dir,
            manifest,
            _tmp: tmp,
        }
    }

    pub fn image(tree: &Tree, fs: &str, layout: &str, extra: &[&str]) -> (PathBuf, Value) {
        let out = tree
            .dir
            .parent()
            .unwrap()
            .join(format!("{fs}-{layout}.img"));
        let mut args = vec![
            "image",
            "--fs",
            fs,
            "--tree",
            tree.dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--layout",
            layout,
        ];
        args.extend_from_slice(extra);
        let line = build(&args);
        let described: Value =
            serde_json::from_str(line.lines().last().expect("a JSON line")).expect("JSON");
        (out, described)
    }
}

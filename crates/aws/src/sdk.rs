//! The SDK plumbing every kind shares: tags and filters to the SDK's types,
//! SDK objects to the domain's (extension traits, tested below), the paged
//! "ids -> states" helper, and the create-or-find of named recovery points.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_ec2::types::{ImageState, ResourceType as Ec2ResourceType, SnapshotState};
use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use strongroom_core::model::{format_time, RecoveryPoint, RecoveryPointState, Tags};
use strongroom_core::ports::{CreateRequest, Created};
use strongroom_core::{tags, CloudError, ErrorKind};

use crate::error::from_sdk;

/// Tags in each service's SDK shape.
pub(crate) trait ToSdkTags {
    fn ec2_tags(&self) -> Vec<aws_sdk_ec2::types::Tag>;
    fn ec2_spec(&self, resource: Ec2ResourceType) -> aws_sdk_ec2::types::TagSpecification;
    fn rds_tags(&self) -> Vec<aws_sdk_rds::types::Tag>;
    fn redshift_tags(&self) -> Vec<aws_sdk_redshift::types::Tag>;
}

impl ToSdkTags for Tags {
    fn ec2_tags(&self) -> Vec<aws_sdk_ec2::types::Tag> {
        self.iter()
            .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
            .collect()
    }

    fn ec2_spec(&self, resource: Ec2ResourceType) -> aws_sdk_ec2::types::TagSpecification {
        aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(resource)
            .set_tags(Some(self.ec2_tags()))
            .build()
    }

    fn rds_tags(&self) -> Vec<aws_sdk_rds::types::Tag> {
        self.iter()
            .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
            .collect()
    }

    fn redshift_tags(&self) -> Vec<aws_sdk_redshift::types::Tag> {
        self.iter()
            .map(|(k, v)| {
                aws_sdk_redshift::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
            })
            .collect()
    }
}

/// An SDK tag list as the domain's [`Tags`]. Tags without a key are dropped.
pub(crate) trait TagsExt {
    fn to_tags(&self) -> Tags;
}

macro_rules! tags_ext {
    ($($t:ty),*) => {$(
        impl TagsExt for [$t] {
            fn to_tags(&self) -> Tags {
                self.iter()
                    .filter_map(|t| {
                        Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))
                    })
                    .collect()
            }
        }
    )*};
}
tags_ext!(
    aws_sdk_ec2::types::Tag,
    aws_sdk_rds::types::Tag,
    aws_sdk_redshift::types::Tag
);

pub(crate) fn ec2_filter(
    name: impl Into<String>,
    values: impl IntoIterator<Item = String>,
) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().collect()))
        .build()
}

pub(crate) fn rds_filter(name: &str, values: &[String]) -> aws_sdk_rds::types::Filter {
    aws_sdk_rds::types::Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

/// The EC2 filter on one of our tags.
pub(crate) fn tag_filter(key: &str, value: impl Into<String>) -> aws_sdk_ec2::types::Filter {
    ec2_filter(format!("tag:{key}"), [value.into()])
}

/// The domain state of an SDK object. An absent state is a point AWS has not
/// finished describing: pending.
pub(crate) trait PointState {
    fn point_state(&self) -> RecoveryPointState;
}

// Every state AWS documents is mapped here by name. A state this version
// does not know (a newer API) is pending: waited on by the completion check,
// never counted as a restorable point, never deleted by prune.

/// EBS snapshot states (`pending | completed | error | recoverable |
/// recovering`). An archived snapshot is `completed` (its storage tier says
/// `archive`): restorable after a restore from the archive tier.
fn ebs_state(s: Option<&SnapshotState>) -> RecoveryPointState {
    match s {
        Some(SnapshotState::Completed) => RecoveryPointState::Completed,
        Some(SnapshotState::Pending) => RecoveryPointState::Pending,
        // Coming back from the Recycle Bin.
        Some(SnapshotState::Recovering) => RecoveryPointState::Pending,
        // In the Recycle Bin: deleted, not a point to restore from.
        Some(SnapshotState::Recoverable) => RecoveryPointState::Failed,
        Some(SnapshotState::Error) => RecoveryPointState::Failed,
        None => RecoveryPointState::Pending,
        Some(_) => RecoveryPointState::Pending,
    }
}

/// AMI states (`pending | available | invalid | deregistered | transient |
/// failed | error | disabled`).
fn image_state(s: Option<&ImageState>) -> RecoveryPointState {
    match s {
        Some(ImageState::Available) => RecoveryPointState::Completed,
        // Disabled by someone: launches are refused until `EnableImage`, and
        // AWS keeps its snapshots (it refuses to delete them): still restorable.
        Some(ImageState::Disabled) => RecoveryPointState::Completed,
        Some(ImageState::Pending | ImageState::Transient) => RecoveryPointState::Pending,
        Some(
            ImageState::Deregistered | ImageState::Error | ImageState::Failed | ImageState::Invalid,
        ) => RecoveryPointState::Failed,
        None => RecoveryPointState::Pending,
        Some(_) => RecoveryPointState::Pending,
    }
}

/// RDS and Aurora snapshot statuses (`available`, `creating`, `copying`,
/// and the failures `failed`, `incompatible-restore`,
/// `incompatible-parameters`) and Redshift's (`creating`, `available`,
/// `final snapshot`, `failed`, `cancelled`, `deleted`). The services report
/// them as free words.
pub(crate) fn status_state(s: Option<&str>) -> RecoveryPointState {
    match s.map(str::to_ascii_lowercase).as_deref() {
        Some("available" | "completed" | "final snapshot") => RecoveryPointState::Completed,
        Some("creating" | "copying" | "pending") => RecoveryPointState::Pending,
        // Going away already: neither restorable nor to be deleted again.
        Some("deleting") => RecoveryPointState::Pending,
        Some(
            "failed"
            | "error"
            | "invalid"
            | "cancelled"
            | "deleted"
            | "incompatible-restore"
            | "incompatible-parameters",
        ) => RecoveryPointState::Failed,
        None => RecoveryPointState::Pending,
        Some(_) => RecoveryPointState::Pending,
    }
}

macro_rules! point_state {
    ($f:ident, $field:ident: $($t:ty),*) => {$(
        impl PointState for $t {
            fn point_state(&self) -> RecoveryPointState {
                $f(self.$field())
            }
        }
    )*};
}
point_state!(ebs_state, state: aws_sdk_ec2::types::Snapshot, aws_sdk_ec2::types::SnapshotInfo,
    aws_sdk_ec2::operation::create_snapshot::CreateSnapshotOutput);
point_state!(image_state, state: aws_sdk_ec2::types::Image);
point_state!(status_state, status: aws_sdk_rds::types::DbSnapshot,
    aws_sdk_rds::types::DbClusterSnapshot, aws_sdk_redshift::types::Snapshot);

/// The EBS snapshots behind an AMI's block device mappings.
pub(crate) fn image_snapshots(image: &aws_sdk_ec2::types::Image) -> Vec<String> {
    image
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_owned))
        .collect()
}

/// The account in an ARN (`arn:aws:rds:region:ACCOUNT:...`).
pub(crate) fn arn_account(arn: Option<&str>) -> String {
    arn.and_then(|a| a.split(':').nth(4))
        .unwrap_or_default()
        .to_owned()
}

/// Snapshots made by CreateImage carry this description; they belong to an AMI.
pub(crate) fn is_image_snapshot(description: Option<&str>) -> bool {
    description.is_some_and(|d| d.starts_with("Created by CreateImage"))
}

/// The AMI a `CreateImage` snapshot was made for: its description reads
/// "Created by CreateImage(i-…) for ami-…".
pub(crate) fn image_of(description: Option<&str>) -> Option<String> {
    let rest = description?.split(" for ").nth(1)?;
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    id.starts_with("ami-").then_some(id)
}

/// Every page of a listing, each turned into items by `items`. A page that
/// fails fails the whole listing: nothing is decided from a partial view.
pub(crate) async fn all_pages<O, E, R, T, I>(
    mut pages: PaginationStream<Result<O, SdkError<E, R>>>,
    operation: &'static str,
    region: &str,
    mut items: impl FnMut(&O) -> I,
) -> Result<Vec<T>, CloudError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
    I: IntoIterator<Item = T>,
{
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| from_sdk(e, operation, "-", region))?;
        out.extend(items(&page));
    }
    Ok(out)
}

/// `states` for `ids`, fetched `chunk` ids per describe (each fetch pages itself).
pub(crate) async fn states_by_id<T, F, Fut>(
    ids: &[String],
    chunk: usize,
    fetch: F,
) -> Result<HashMap<String, T>, CloudError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<(String, T)>, CloudError>>,
{
    let mut out = HashMap::new();
    for c in ids.chunks(chunk) {
        out.extend(fetch(c.to_vec()).await?);
    }
    Ok(out)
}

/// Each of `points` that has a fresh state, with it; the others are left out.
pub(crate) fn with_states(
    points: &[&RecoveryPoint],
    states: &HashMap<String, RecoveryPointState>,
) -> Vec<RecoveryPoint> {
    points
        .iter()
        .filter_map(|p| {
            states.get(&p.id).map(|s| RecoveryPoint {
                state: *s,
                ..(*p).clone()
            })
        })
        .collect()
}

/// What creating (or finding) a named recovery point saw.
pub(crate) struct Seen {
    pub state: RecoveryPointState,
    /// Set when the name existed already: its tags, to check it is ours.
    pub existing_tags: Option<Tags>,
}

impl Seen {
    pub fn made(p: &impl PointState) -> Self {
        Self {
            state: p.point_state(),
            existing_tags: None,
        }
    }

    pub fn existing(p: &impl PointState, tags: Tags) -> Self {
        Self {
            state: p.point_state(),
            existing_tags: Some(tags),
        }
    }
}

/// The create-or-find of every kind with deterministic names: `create` makes
/// it; when AWS answers with one of `exists_codes`, `find` describes it by
/// name, and it must belong to this policy, source and time.
pub(crate) async fn create_or_find<C, F, Fut>(
    req: &CreateRequest<'_>,
    operation: &'static str,
    exists_codes: &[&str],
    create: C,
    find: F,
) -> Result<Created, CloudError>
where
    C: Future<Output = Result<Option<Seen>, CloudError>>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Option<Seen>, CloudError>>,
{
    let seen = match create.await {
        Ok(seen) => seen,
        Err(e) if e.code.as_deref().is_some_and(|c| exists_codes.contains(&c)) => find().await?,
        Err(e) => return Err(e),
    };
    let seen = seen.ok_or_else(|| {
        CloudError::new(
            ErrorKind::Internal,
            operation,
            &req.name,
            &req.location.region,
            "no recovery point in the response",
        )
    })?;
    if let Some(tags) = &seen.existing_tags {
        check_same_owner(tags, req, operation)?;
    }
    Ok(Created {
        recovery_point: req.point(req.name.clone(), vec![], seen.state),
        existed: seen
            .existing_tags
            .as_ref()
            .is_some_and(|t| !req.run.made_by_this_execution(run_tag(t), req.kind)),
    })
}

/// The `strongroom:run` tag of a recovery point ("" when missing).
pub(crate) fn run_tag(t: &Tags) -> &str {
    t.get(tags::RUN).map_or("", String::as_str)
}

/// An existing recovery point found under our deterministic name must be ours.
pub(crate) fn check_same_owner(
    existing: &Tags,
    req: &CreateRequest<'_>,
    operation: &'static str,
) -> Result<(), CloudError> {
    let same = existing.get(tags::MANAGED).map(String::as_str) == Some("true")
        && [tags::POLICY, tags::SOURCE, tags::CREATED_AT]
            .iter()
            .all(|k| existing.get(*k) == req.tags.get(*k));
    if same {
        return Ok(());
    }
    Err(CloudError::new(
        ErrorKind::Internal,
        operation,
        &req.name,
        &req.location.region,
        format!(
            "a recovery point named {} exists but was not made by policy {} for {} at {}; rename or remove it",
            req.name,
            req.run.policy,
            req.target.source_ref(),
            format_time(req.run.scheduled_time)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_ebs_and_image_state_maps() {
        use RecoveryPointState::*;
        let snap = |s: SnapshotState| aws_sdk_ec2::types::Snapshot::builder().state(s).build();
        let expected = [
            ("pending", Pending),
            ("completed", Completed),
            ("error", Failed),
            ("recoverable", Failed),
            ("recovering", Pending),
        ];
        assert_eq!(
            SnapshotState::values().len(),
            expected.len(),
            "a new EBS state"
        );
        for (word, state) in expected {
            assert_eq!(
                snap(SnapshotState::from(word)).point_state(),
                state,
                "{word}"
            );
        }
        let image = |s: ImageState| aws_sdk_ec2::types::Image::builder().state(s).build();
        let expected = [
            ("pending", Pending),
            ("available", Completed),
            ("invalid", Failed),
            ("deregistered", Failed),
            ("transient", Pending),
            ("failed", Failed),
            ("error", Failed),
            ("disabled", Completed),
        ];
        assert_eq!(
            ImageState::values().len(),
            expected.len(),
            "a new AMI state"
        );
        for (word, state) in expected {
            assert_eq!(image(ImageState::from(word)).point_state(), state, "{word}");
        }
        // Unknown words and missing states are waited on, never deleted.
        assert_eq!(snap(SnapshotState::from("frozen")).point_state(), Pending);
        assert_eq!(image(ImageState::from("frozen")).point_state(), Pending);
        assert_eq!(
            aws_sdk_ec2::types::Snapshot::builder()
                .build()
                .point_state(),
            Pending
        );
    }

    #[test]
    fn every_documented_database_status_maps() {
        use RecoveryPointState::*;
        let db = |s: &str| aws_sdk_rds::types::DbSnapshot::builder().status(s).build();
        let cluster = |s: &str| {
            aws_sdk_rds::types::DbClusterSnapshot::builder()
                .status(s)
                .build()
        };
        let rs = |s: &str| {
            aws_sdk_redshift::types::Snapshot::builder()
                .status(s)
                .build()
        };
        for (word, state) in [
            ("available", Completed),
            ("creating", Pending),
            ("copying", Pending),
            ("deleting", Pending),
            ("failed", Failed),
            ("incompatible-restore", Failed),
            ("incompatible-parameters", Failed),
        ] {
            assert_eq!(db(word).point_state(), state, "RDS {word}");
            assert_eq!(cluster(word).point_state(), state, "Aurora {word}");
        }
        for (word, state) in [
            ("creating", Pending),
            ("available", Completed),
            ("final snapshot", Completed),
            ("failed", Failed),
            ("cancelled", Failed),
            ("deleted", Failed),
        ] {
            assert_eq!(rs(word).point_state(), state, "Redshift {word}");
        }
        assert_eq!(status_state(None), Pending);
        assert_eq!(status_state(Some("something-new")), Pending);
    }

    #[test]
    fn sdk_tags_round_trip_and_keyless_tags_drop() {
        let t: Tags = [
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), String::new()),
        ]
        .into();
        assert_eq!(t.ec2_tags().to_tags(), t);
        assert_eq!(t.rds_tags().to_tags(), t);
        assert_eq!(t.redshift_tags().to_tags(), t);
        let keyless = [aws_sdk_ec2::types::Tag::builder().value("x").build()];
        assert!(keyless.to_tags().is_empty());
        let spec = t.ec2_spec(Ec2ResourceType::Snapshot);
        assert_eq!(spec.resource_type(), Some(&Ec2ResourceType::Snapshot));
        assert_eq!(spec.tags().len(), 2);
    }

    #[test]
    fn arn_accounts() {
        assert_eq!(
            arn_account(Some("arn:aws:rds:eu-west-1:210987654321:snapshot:x")),
            "210987654321"
        );
        assert_eq!(arn_account(Some("nonsense")), "");
        assert_eq!(arn_account(None), "");
    }

    #[test]
    fn image_snapshots_are_recognised() {
        assert!(is_image_snapshot(Some(
            "Created by CreateImage(i-1) for ami-1"
        )));
        assert!(!is_image_snapshot(Some(
            "strongroom daily 2026-11-29T03:00:00Z"
        )));
        assert!(!is_image_snapshot(None));
        assert_eq!(
            image_of(Some(
                "Created by CreateImage(i-1) for ami-0abc123 from vol-9"
            )),
            Some("ami-0abc123".into())
        );
        assert_eq!(image_of(Some("strongroom daily 2026")), None);
        assert_eq!(image_of(None), None);
    }
}

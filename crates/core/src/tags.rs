//! The tag contract: every recovery point is tagged at creation with who made
//! it, from what, where and when, and what kind of recovery point it is.
//! Prune may only ever touch what carries `strongroom:managed=true` and its
//! own policy's name.

use time::OffsetDateTime;

use crate::kind::TagCharset;
use crate::model::{format_time, Location, RecoveryPointKind, Tags, Target};
use crate::policy::Policy;

pub const MANAGED: &str = "strongroom:managed";
pub const POLICY: &str = "strongroom:policy";
pub const SOURCE: &str = "strongroom:source";
pub const SOURCE_REGION: &str = "strongroom:source-region";
pub const SOURCE_ACCOUNT: &str = "strongroom:source-account";
pub const CREATED_AT: &str = "strongroom:created-at";
pub const RUN: &str = "strongroom:run";
/// The recovery point's kind ([`crate::kind::KindFacts::tag`]), so that no
/// listing has to guess what it holds.
pub const KIND: &str = "strongroom:kind";
pub const COPY_OF: &str = "strongroom:copy-of";
pub const HOLD: &str = "strongroom:hold";
/// On each snapshot of an instance snapshot set: the device name its volume
/// was attached at, where a restore attaches it again.
pub const DEVICE: &str = "strongroom:device";
/// On everything a restore makes (never `strongroom:managed`: prune never
/// touches it): the recovery point it was restored from.
pub const RESTORED_FROM: &str = "strongroom:restored-from";
/// On everything a restore makes: the restore's execution name, by which a
/// retried or failed restore finds what it made.
pub const RESTORE: &str = "strongroom:restore";
/// Written by prune, with the time, on every snapshot of an instance snapshot
/// set before deleting them, and on the snapshots AWS kept when it
/// deregistered an AMI: a deletion that stops half way is finished by the
/// next prune instead of the rest being listed as a smaller set. Strongroom's
/// own: set by hand, it asks prune to delete the point (holds, locks and
/// sharing still protect it).
pub const DELETING: &str = "strongroom:deleting";

/// Prefix of every key Strongroom owns; never copied from a source.
pub const PREFIX: &str = "strongroom:";
/// The most tags AWS accepts on one EC2, RDS or Redshift resource.
pub const MAX_TAGS: usize = 50;

/// Identity of one scheduled run. `policy + source + scheduled_time` is the
/// idempotency key: re-running it must find, not re-create, its recovery points.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunKey {
    pub policy: String,
    /// The run's scheduled time, UTC, whole seconds (`strongroom:created-at`).
    #[serde(with = "crate::model::utc_time")]
    pub scheduled_time: OffsetDateTime,
    /// The Step Functions execution name (`strongroom:run`).
    pub execution: String,
}

impl RunKey {
    /// The deterministic name of the `kind` recovery point this run makes of
    /// `target` (RDS / Aurora / Redshift snapshot identifier, AMI name):
    /// `strongroom-<policy>-<yyyymmddthhmmssz>-<source id>`, lowercase letters,
    /// digits and single hyphens, starting with a letter. When that is longer
    /// than the kind's identifier may be (an Aurora cluster snapshot: 63), it
    /// is cut and ends with a stable hash of the whole name instead, so it
    /// stays deterministic and differs per policy, time and source.
    pub fn recovery_point_name(&self, target: &Target, kind: RecoveryPointKind) -> String {
        let stamp: String = format_time(self.scheduled_time)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let id = target.id.to_ascii_lowercase();
        let plain = format!("strongroom-{}-{}-{}", self.policy, stamp, id);
        let max = kind.facts().name_rules.map_or(usize::MAX, |r| r.max_len);
        if plain.chars().count() <= max {
            return plain;
        }
        let hash = format!("{:016x}", fnv1a(plain.as_bytes()));
        let hash = &hash[..NAME_HASH_LEN];
        let head: String = plain.chars().take(max - NAME_HASH_LEN - 1).collect();
        format!("{}-{hash}", head.trim_end_matches('-'))
    }
}

impl RunKey {
    /// Whether a recovery point of `kind` tagged `strongroom:run` = `tagged`
    /// was made by this execution (an earlier attempt of it), as opposed to
    /// another execution of the same scheduled time (a re-run).
    pub fn made_by_this_execution(&self, tagged: &str, kind: RecoveryPointKind) -> bool {
        tagged == fit_tag_value(&self.execution, kind.facts().tag_charset)
    }
}

/// Hex digits of the hash that ends a shortened name: 40 bits, enough that
/// two sources whose names share the kept prefix never meet in practice.
const NAME_HASH_LEN: usize = 10;

/// FNV-1a, 64 bits: stable across versions and platforms, as names (and
/// client tokens and grant names) made from it must be.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The most characters a tag value may have (EC2, RDS and Redshift alike).
pub const MAX_TAG_VALUE: usize = 256;

/// `value` as a tag value `charset` accepts: each other character becomes
/// `_`, and it is cut to [`MAX_TAG_VALUE`] characters.
pub fn fit_tag_value(value: &str, charset: TagCharset) -> String {
    value
        .chars()
        .map(|c| if charset.allows(c) { c } else { '_' })
        .take(MAX_TAG_VALUE)
        .collect()
}

/// The full tag set for a new recovery point of `target`: the contract's tags
/// plus (when the policy says so) the source's own tags, minus `aws:` and
/// `strongroom:` keys, capped at AWS's 50-tag limit (contract tags win).
pub fn recovery_point_tags(
    policy: &Policy,
    run: &RunKey,
    target: &Target,
    location: &Location,
) -> Tags {
    let mut tags = Tags::new();
    tags.insert(MANAGED.into(), "true".into());
    tags.insert(POLICY.into(), policy.name.clone());
    tags.insert(SOURCE.into(), target.source_ref().to_owned());
    tags.insert(SOURCE_REGION.into(), location.region.clone());
    tags.insert(SOURCE_ACCOUNT.into(), location.account.clone());
    tags.insert(CREATED_AT.into(), format_time(run.scheduled_time));
    tags.insert(RUN.into(), run.execution.clone());
    let kind = RecoveryPointKind::for_source(target.resource_type, policy.ec2.mode);
    tags.insert(KIND.into(), kind.facts().tag.into());
    // A hand-started execution's name may hold characters RDS and Redshift
    // refuse in tags ("retry (2)!"); it is informational, so it is made fit.
    let charset = kind.facts().tag_charset;
    if let Some(run) = tags.get_mut(RUN) {
        *run = fit_tag_value(run, charset);
    }
    if policy.copy_source_tags {
        for (k, v) in &target.tags {
            if tags.len() >= MAX_TAGS {
                break;
            }
            let lower = k.to_ascii_lowercase();
            if lower.starts_with("aws:") || lower.starts_with(PREFIX) {
                continue;
            }
            tags.insert(k.clone(), v.clone());
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourceType;
    use crate::policy::{Ec2Options, Selector};

    fn policy(copy: bool) -> Policy {
        Policy {
            name: "daily".into(),
            selector: Selector {
                resource_types: vec![ResourceType::EbsVolume],
                regions: vec!["us-east-1".into()],
                tags: [("backup".to_string(), "daily".to_string())].into(),
                exclude_tags: Default::default(),
            },
            ec2: Ec2Options::default(),
            copy_source_tags: copy,
            retention: None,
            quotas: None,
            accounts: vec![],
            organizational_units: vec![],
            copies: vec![],
        }
    }

    fn run() -> RunKey {
        RunKey {
            policy: "daily".into(),
            scheduled_time: time::macros::datetime!(2026-11-29 03:00 UTC),
            execution: "daily-20261129T0300".into(),
        }
    }

    fn target(extra: &[(&str, &str)]) -> Target {
        let mut tags: Tags = [("backup".to_string(), "daily".to_string())].into();
        for (k, v) in extra {
            tags.insert(k.to_string(), v.to_string());
        }
        Target {
            resource_type: ResourceType::RdsInstance,
            id: "Orders-DB".into(),
            arn: "arn:aws:rds:us-east-1:123456789012:db:orders-db".into(),
            tags,
        }
    }

    fn loc() -> Location {
        Location {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn contract_tags_are_complete_and_source_tags_filtered() {
        let t = target(&[
            ("aws:cloudformation:stack-name", "x"),
            ("strongroom:hold", "true"),
            ("team", "payments"),
        ]);
        let tags = recovery_point_tags(&policy(true), &run(), &t, &loc());
        assert_eq!(tags[MANAGED], "true");
        assert_eq!(tags[POLICY], "daily");
        assert_eq!(
            tags[SOURCE],
            "arn:aws:rds:us-east-1:123456789012:db:orders-db"
        );
        assert_eq!(tags[SOURCE_REGION], "us-east-1");
        assert_eq!(tags[SOURCE_ACCOUNT], "123456789012");
        assert_eq!(tags[CREATED_AT], "2026-11-29T03:00:00Z");
        assert_eq!(tags[RUN], "daily-20261129T0300");
        assert_eq!(tags[KIND], "rds-snapshot");
        assert_eq!(tags["team"], "payments");
        assert_eq!(tags["backup"], "daily");
        assert!(!tags.contains_key("aws:cloudformation:stack-name"));
        assert!(
            !tags.contains_key(HOLD),
            "a source's hold must not be inherited"
        );
        assert_eq!(tags.len(), 10);
    }

    #[test]
    fn source_tags_are_optional_and_capped() {
        let t = target(&[("team", "payments")]);
        let tags = recovery_point_tags(&policy(false), &run(), &t, &loc());
        assert_eq!(tags.len(), 8);
        let many: Vec<(String, String)> =
            (0..80).map(|i| (format!("k{i:02}"), "v".into())).collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let tags = recovery_point_tags(&policy(true), &run(), &target(&refs), &loc());
        assert_eq!(tags.len(), MAX_TAGS);
        assert_eq!(tags[MANAGED], "true");
    }

    #[test]
    fn deterministic_names_are_valid_identifiers() {
        let name = run().recovery_point_name(&target(&[]), RecoveryPointKind::RdsSnapshot);
        assert_eq!(name, "strongroom-daily-20261129t030000z-orders-db");
        assert!(name.len() <= 255);
        assert!(!name.contains("--"));
        assert!(name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    fn valid_identifier(name: &str, max: usize) -> bool {
        name.len() <= max
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.contains("--")
            && !name.ends_with('-')
    }

    fn named(id: &str) -> Target {
        Target {
            resource_type: ResourceType::AuroraCluster,
            id: id.into(),
            arn: format!("arn:aws:rds:us-east-1:123456789012:cluster:{id}"),
            tags: Tags::new(),
        }
    }

    #[test]
    fn names_too_long_for_their_kind_are_cut_with_a_stable_hash() {
        // The example: 70 characters, over the 63 of a cluster snapshot.
        let mut r = run();
        r.policy = "prod-daily".into();
        let t = named("payments-aurora-postgresql-prod");
        let name = r.recovery_point_name(&t, RecoveryPointKind::AuroraSnapshot);
        assert!(valid_identifier(&name, 63), "{name}");
        assert!(
            name.starts_with("strongroom-prod-daily-20261129t030000z-payments-"),
            "{name}"
        );
        assert_eq!(
            name,
            r.recovery_point_name(&t, RecoveryPointKind::AuroraSnapshot)
        );
        // The same source fits in a DB snapshot identifier (255): the plain name.
        assert_eq!(
            r.recovery_point_name(&t, RecoveryPointKind::RdsSnapshot),
            "strongroom-prod-daily-20261129t030000z-payments-aurora-postgresql-prod"
        );
        // The longest policy and source: every kind's limit, and two sources
        // alike in their first 60 characters still get different names.
        r.policy = format!("p{}abc", "ab-".repeat(12));
        assert!(crate::policy::validate_policy_name(&r.policy).is_ok());
        assert_eq!(r.policy.len(), crate::policy::MAX_POLICY_NAME);
        let long = |end: &str| format!("c{}{end}", "x".repeat(61));
        for kind in RecoveryPointKind::ALL {
            let Some(rules) = kind.facts().name_rules else {
                continue;
            };
            let a = r.recovery_point_name(&named(&long("a")), kind);
            let b = r.recovery_point_name(&named(&long("b")), kind);
            assert!(valid_identifier(&a, rules.max_len), "{kind:?}: {a}");
            assert!(valid_identifier(&b, rules.max_len), "{kind:?}: {b}");
            assert_ne!(a, b, "{kind:?}");
        }
        // A cut that lands on a hyphen never leaves two in a row.
        for n in 40..63 {
            let id = format!("a{}", "-b".repeat(n / 2));
            let name = r.recovery_point_name(&named(&id), RecoveryPointKind::AuroraSnapshot);
            assert!(valid_identifier(&name, 63), "{name}");
        }
    }

    proptest::proptest! {
        /// For every valid policy name and source id, every kind's name fits
        /// its rules, is deterministic, and is the plain name when that fits.
        #[test]
        fn every_name_fits_its_kind(
            policy in "[a-z]([a-z0-9]|-[a-z0-9]){0,19}",
            id in "[a-z]([a-z0-9]|-[a-z0-9]){0,31}",
        ) {
            let mut r = run();
            r.policy = policy;
            let t = named(&id);
            let plain = format!("strongroom-{}-20261129t030000z-{id}", r.policy);
            for kind in RecoveryPointKind::ALL {
                let Some(rules) = kind.facts().name_rules else { continue };
                let name = r.recovery_point_name(&t, kind);
                proptest::prop_assert!(valid_identifier(&name, rules.max_len), "{:?}: {}", kind, name);
                proptest::prop_assert_eq!(&name, &r.recovery_point_name(&t, kind));
                if plain.len() <= rules.max_len {
                    proptest::prop_assert_eq!(&name, &plain);
                }
            }
        }
    }

    #[test]
    fn every_contract_tag_fits_every_service() {
        // Step Functions execution names may hold ! ' ( ) and more.
        let mut r = run();
        r.execution = "hand-run (retry 2)! it's #3".into();
        for t in ResourceType::ALL {
            for mode in [
                crate::policy::Ec2Mode::Snapshots,
                crate::policy::Ec2Mode::Ami,
            ] {
                let mut p = policy(false);
                p.ec2.mode = mode;
                let mut target = target(&[]);
                target.resource_type = t;
                let kind = RecoveryPointKind::for_source(t, mode);
                let charset = kind.facts().tag_charset;
                let tags = recovery_point_tags(&p, &r, &target, &loc());
                for (k, v) in &tags {
                    assert!(k.chars().count() <= 128 && !k.is_empty(), "{kind:?} {k}");
                    assert!(v.chars().count() <= MAX_TAG_VALUE, "{kind:?} {k}={v}");
                    assert!(
                        k.chars().chain(v.chars()).all(|c| charset.allows(c)),
                        "{kind:?} {k}={v}"
                    );
                    assert!(
                        !v.starts_with("aws:") && !v.starts_with("rds:"),
                        "{kind:?} {k}={v}"
                    );
                }
                let want = match charset {
                    TagCharset::Any => "hand-run (retry 2)! it's #3",
                    TagCharset::Restricted => "hand-run _retry 2__ it_s _3",
                };
                assert_eq!(tags[RUN], want, "{kind:?}");
            }
        }
        assert_eq!(
            fit_tag_value(&"x".repeat(300), TagCharset::Any).len(),
            MAX_TAG_VALUE
        );
        // Only the ASCII part of RDS's rule: nothing AWS could still refuse.
        assert_eq!(fit_tag_value("café\tx", TagCharset::Restricted), "caf__x");
    }
}

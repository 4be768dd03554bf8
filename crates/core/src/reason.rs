//! Why a recovery point is kept, deleted or refused deletion.
//!
//! A [`Reason`] displays and serializes as the plain words the reports, the
//! CLI and the README show (`daily snapshot`, `within 2d`, `hold`, …), and
//! parses back from them, so prune reports read back into the run report.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::period::Period;
use crate::retention::Span;

/// One reason for a decision about a recovery point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    // Kept by the retention rules.
    /// `last snapshot`: one of the `keep_last` newest.
    Last,
    /// `daily snapshot`: the newest of its period (`keep_daily`, …).
    Periodic(Period),
    /// `within 2d`: within `keep_within` of the newest point.
    Within(Span),
    /// `daily within 1y`: the newest of its period within `keep_within_daily`, ….
    WithinPeriod(Period, Span),
    /// `policy is empty`: a retention with no rule keeps everything (restic).
    PolicyIsEmpty,

    // Deleted by the retention rules.
    /// `matches no keep rule`.
    MatchesNoKeepRule,
    /// `older than max_age 400d`.
    OlderThanMaxAge(Span),

    // Protections: never deleted, whatever the rules say.
    /// `not completed`.
    NotCompleted,
    /// `newest completed recovery point of the source`.
    NewestCompleted,
    /// `hold`: a `strongroom:hold` tag.
    Hold,
    /// `locked`: EBS Snapshot Lock.
    Locked,
    /// `in use by ami-…`.
    InUseBy(String),
    /// `has no valid strongroom:created-at`.
    NoValidCreatedAt,
    /// `not managed by Strongroom`: no `strongroom:managed=true` tag.
    NotManaged,
    /// `owned by account X, not Y`.
    OwnedByOther { owner: String, account: String },
    /// `made by policy P`: another policy's `strongroom:policy` tag.
    OtherPolicy(String),
    /// `has no strongroom:policy tag`.
    NoPolicyTag,
    /// `failed, kept 7 days for inspection`: a failed point younger than
    /// [`FAILED_GRACE_DAYS`](crate::prune::FAILED_GRACE_DAYS).
    FailedInGrace,
    /// `shared with 111122223333, all`: other accounts may restore it
    /// (EBS create-volume permission, AMI launch permission, RDS `restore`
    /// attribute, Redshift restore access).
    SharedWith(Vec<String>),
    /// `sharing not checked`: who may restore it is not known yet.
    SharingNotChecked,

    // Deleted outside the retention rules.
    /// `failed more than 7 days ago`: a failed point past the grace period
    /// (it still counts against the service's quota).
    FailedPastGrace,
    /// `finishes an earlier deletion`: a deletion that stopped half way.
    FinishesDeletion,
}

const LAST: &str = "last snapshot";
const POLICY_IS_EMPTY: &str = "policy is empty";
const MATCHES_NO_KEEP_RULE: &str = "matches no keep rule";
const NOT_COMPLETED: &str = "not completed";
const NEWEST_COMPLETED: &str = "newest completed recovery point of the source";
const HOLD: &str = "hold";
const LOCKED: &str = "locked";
const NO_VALID_CREATED_AT: &str = "has no valid strongroom:created-at";
const NOT_MANAGED: &str = "not managed by Strongroom";
const NO_POLICY_TAG: &str = "has no strongroom:policy tag";
const FAILED_IN_GRACE: &str = "failed, kept 7 days for inspection";
const SHARED_WITH: &str = "shared with ";
const SHARING_NOT_CHECKED: &str = "sharing not checked";
const FAILED_PAST_GRACE: &str = "failed more than 7 days ago";
const FINISHES_DELETION: &str = "finishes an earlier deletion";
const WITHIN: &str = "within ";
const OLDER_THAN_MAX_AGE: &str = "older than max_age ";
const IN_USE_BY: &str = "in use by ";
const OWNED_BY: &str = "owned by account ";
const NOT_ACCOUNT: &str = ", not ";
const OTHER_POLICY: &str = "made by policy ";

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Last => f.write_str(LAST),
            Reason::Periodic(p) => write!(f, "{p} snapshot"),
            Reason::Within(w) => write!(f, "{WITHIN}{w}"),
            Reason::WithinPeriod(p, w) => write!(f, "{p} {WITHIN}{w}"),
            Reason::PolicyIsEmpty => f.write_str(POLICY_IS_EMPTY),
            Reason::MatchesNoKeepRule => f.write_str(MATCHES_NO_KEEP_RULE),
            Reason::OlderThanMaxAge(m) => write!(f, "{OLDER_THAN_MAX_AGE}{m}"),
            Reason::NotCompleted => f.write_str(NOT_COMPLETED),
            Reason::NewestCompleted => f.write_str(NEWEST_COMPLETED),
            Reason::Hold => f.write_str(HOLD),
            Reason::Locked => f.write_str(LOCKED),
            Reason::InUseBy(ami) => write!(f, "{IN_USE_BY}{ami}"),
            Reason::NoValidCreatedAt => f.write_str(NO_VALID_CREATED_AT),
            Reason::NotManaged => f.write_str(NOT_MANAGED),
            Reason::OwnedByOther { owner, account } => {
                write!(f, "{OWNED_BY}{owner}{NOT_ACCOUNT}{account}")
            }
            Reason::OtherPolicy(p) => write!(f, "{OTHER_POLICY}{p}"),
            Reason::NoPolicyTag => f.write_str(NO_POLICY_TAG),
            Reason::FailedInGrace => f.write_str(FAILED_IN_GRACE),
            Reason::SharedWith(accounts) => write!(f, "{SHARED_WITH}{}", accounts.join(", ")),
            Reason::SharingNotChecked => f.write_str(SHARING_NOT_CHECKED),
            Reason::FailedPastGrace => f.write_str(FAILED_PAST_GRACE),
            Reason::FinishesDeletion => f.write_str(FINISHES_DELETION),
        }
    }
}

/// A string that is not the text of any [`Reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a known reason")]
pub struct UnknownReason(pub String);

fn period(name: &str) -> Option<Period> {
    Period::ALL.into_iter().find(|p| p.name() == name)
}

impl FromStr for Reason {
    type Err = UnknownReason;

    /// The inverse of [`Display`](fmt::Display).
    fn from_str(s: &str) -> Result<Reason, UnknownReason> {
        let span = |d: &str| Span::parse(d).ok();
        let fixed = match s {
            LAST => Some(Reason::Last),
            POLICY_IS_EMPTY => Some(Reason::PolicyIsEmpty),
            MATCHES_NO_KEEP_RULE => Some(Reason::MatchesNoKeepRule),
            NOT_COMPLETED => Some(Reason::NotCompleted),
            NEWEST_COMPLETED => Some(Reason::NewestCompleted),
            HOLD => Some(Reason::Hold),
            LOCKED => Some(Reason::Locked),
            NO_VALID_CREATED_AT => Some(Reason::NoValidCreatedAt),
            NOT_MANAGED => Some(Reason::NotManaged),
            NO_POLICY_TAG => Some(Reason::NoPolicyTag),
            FAILED_IN_GRACE => Some(Reason::FailedInGrace),
            SHARING_NOT_CHECKED => Some(Reason::SharingNotChecked),
            FAILED_PAST_GRACE => Some(Reason::FailedPastGrace),
            FINISHES_DELETION => Some(Reason::FinishesDeletion),
            _ => None,
        };
        let parsed = fixed
            .or_else(|| {
                let p = s.strip_suffix(" snapshot").and_then(period)?;
                Some(Reason::Periodic(p))
            })
            .or_else(|| s.strip_prefix(WITHIN).and_then(span).map(Reason::Within))
            .or_else(|| {
                let (p, w) = s.split_once(" within ")?;
                Some(Reason::WithinPeriod(period(p)?, span(w)?))
            })
            .or_else(|| {
                let m = s.strip_prefix(OLDER_THAN_MAX_AGE).and_then(span)?;
                Some(Reason::OlderThanMaxAge(m))
            })
            .or_else(|| Some(Reason::InUseBy(s.strip_prefix(IN_USE_BY)?.to_owned())))
            .or_else(|| {
                let accounts = s.strip_prefix(SHARED_WITH)?;
                Some(Reason::SharedWith(
                    accounts.split(", ").map(str::to_owned).collect(),
                ))
            })
            .or_else(|| {
                Some(Reason::OtherPolicy(
                    s.strip_prefix(OTHER_POLICY)?.to_owned(),
                ))
            })
            .or_else(|| {
                // The account is ours (digits), so the last ", not " separates it.
                let (owner, account) = s.strip_prefix(OWNED_BY)?.rsplit_once(NOT_ACCOUNT)?;
                Some(Reason::OwnedByOther {
                    owner: owner.to_owned(),
                    account: account.to_owned(),
                })
            });
        parsed.ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Reason, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Compares the text, as the reports show it: `reason == "hold"`.
impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        // Matches the text piece by piece as it is written, without allocating.
        struct Rest<'a>(&'a str);
        impl fmt::Write for Rest<'_> {
            fn write_str(&mut self, piece: &str) -> fmt::Result {
                self.0 = self.0.strip_prefix(piece).ok_or(fmt::Error)?;
                Ok(())
            }
        }
        let mut rest = Rest(other);
        fmt::write(&mut rest, format_args!("{self}")).is_ok() && rest.0.is_empty()
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl PartialEq<String> for Reason {
    fn eq(&self, other: &String) -> bool {
        *self == *other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(s: &str) -> Span {
        Span::parse(s).unwrap()
    }

    /// Every variant with the exact text it had as a string before the enum.
    fn every_reason() -> Vec<(Reason, String)> {
        let (owner, account, policy, ami) = ("210987654321", "123456789012", "weekly", "ami-0123");
        let mut all = vec![
            (Reason::Last, "last snapshot".to_owned()),
            (Reason::Within(span("2d")), "within 2d".to_owned()),
            (
                Reason::Within(span("1y2m3d4h")),
                "within 1y2m3d4h".to_owned(),
            ),
            (Reason::PolicyIsEmpty, "policy is empty".to_owned()),
            (Reason::MatchesNoKeepRule, "matches no keep rule".to_owned()),
            (
                Reason::OlderThanMaxAge(span("400d")),
                "older than max_age 400d".to_owned(),
            ),
            (Reason::NotCompleted, "not completed".to_owned()),
            (
                Reason::NewestCompleted,
                "newest completed recovery point of the source".to_owned(),
            ),
            (Reason::Hold, "hold".to_owned()),
            (Reason::Locked, "locked".to_owned()),
            (Reason::InUseBy(ami.into()), format!("in use by {ami}")),
            (
                Reason::NoValidCreatedAt,
                "has no valid strongroom:created-at".to_owned(),
            ),
            (Reason::NotManaged, "not managed by Strongroom".to_owned()),
            (
                Reason::OwnedByOther {
                    owner: owner.into(),
                    account: account.into(),
                },
                format!("owned by account {owner}, not {account}"),
            ),
            (
                Reason::OwnedByOther {
                    owner: String::new(),
                    account: account.into(),
                },
                format!("owned by account , not {account}"),
            ),
            (
                Reason::OtherPolicy(policy.into()),
                format!("made by policy {policy}"),
            ),
            (
                Reason::OtherPolicy("hold".into()),
                "made by policy hold".to_owned(),
            ),
            (
                Reason::NoPolicyTag,
                "has no strongroom:policy tag".to_owned(),
            ),
            (
                Reason::FailedInGrace,
                "failed, kept 7 days for inspection".to_owned(),
            ),
            (
                Reason::SharedWith(vec![owner.into(), "all".into()]),
                format!("shared with {owner}, all"),
            ),
            (Reason::SharingNotChecked, "sharing not checked".to_owned()),
            (
                Reason::FailedPastGrace,
                "failed more than 7 days ago".to_owned(),
            ),
            (
                Reason::FinishesDeletion,
                "finishes an earlier deletion".to_owned(),
            ),
        ];
        for (p, name) in Period::ALL
            .into_iter()
            .zip(["hourly", "daily", "weekly", "monthly", "yearly"])
        {
            all.push((Reason::Periodic(p), format!("{name} snapshot")));
            all.push((
                Reason::WithinPeriod(p, span("1y")),
                format!("{name} within 1y"),
            ));
        }
        all
    }

    /// Exhaustive: a new variant does not compile until it is listed above.
    fn variant(r: &Reason) -> usize {
        match r {
            Reason::Last => 0,
            Reason::Periodic(_) => 1,
            Reason::Within(_) => 2,
            Reason::WithinPeriod(..) => 3,
            Reason::PolicyIsEmpty => 4,
            Reason::MatchesNoKeepRule => 5,
            Reason::OlderThanMaxAge(_) => 6,
            Reason::NotCompleted => 7,
            Reason::NewestCompleted => 8,
            Reason::Hold => 9,
            Reason::Locked => 10,
            Reason::InUseBy(_) => 11,
            Reason::NoValidCreatedAt => 12,
            Reason::NotManaged => 13,
            Reason::OwnedByOther { .. } => 14,
            Reason::OtherPolicy(_) => 15,
            Reason::NoPolicyTag => 16,
            Reason::FailedInGrace => 17,
            Reason::SharedWith(_) => 18,
            Reason::SharingNotChecked => 19,
            Reason::FailedPastGrace => 20,
            Reason::FinishesDeletion => 21,
        }
    }

    #[test]
    fn every_reason_has_its_old_text_and_round_trips() {
        let all = every_reason();
        let mut seen: Vec<usize> = all.iter().map(|(r, _)| variant(r)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen,
            (0..=21).collect::<Vec<_>>(),
            "every variant is listed"
        );
        for (reason, text) in all {
            assert_eq!(reason.to_string(), text);
            assert_eq!(text.parse::<Reason>(), Ok(reason.clone()), "{text}");
            assert_eq!(reason, text.as_str());
            assert_ne!(reason, format!("{text} "));
            assert_ne!(reason, text[..text.len() - 1]);
            let json = serde_json::to_value(&reason).unwrap();
            assert_eq!(json, serde_json::Value::String(text.clone()));
            assert_eq!(serde_json::from_value::<Reason>(json).unwrap(), reason);
        }
    }

    #[test]
    fn unknown_text_is_refused() {
        for bad in [
            "",
            "Hold",
            "fortnightly snapshot",
            "within",
            "within 2w",
            "daily within ",
            "older than max_age",
            "owned by account 123",
            "kept because",
        ] {
            assert_eq!(bad.parse::<Reason>(), Err(UnknownReason(bad.into())));
            assert!(serde_json::from_value::<Reason>(serde_json::json!(bad)).is_err());
        }
    }

    #[test]
    fn vectors_serialize_as_the_plain_strings() {
        let reasons = vec![Reason::Periodic(Period::Daily), Reason::NewestCompleted];
        let json = serde_json::to_string(&reasons).unwrap();
        assert_eq!(
            json,
            r#"["daily snapshot","newest completed recovery point of the source"]"#
        );
        assert_eq!(serde_json::from_str::<Vec<Reason>>(&json).unwrap(), reasons);
    }
}

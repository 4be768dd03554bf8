//! Strongroom's domain: pure and synchronous where possible, no AWS SDK.
//!
//! - [`policy`]: the policy document and its validation.
//! - [`model`]: sources, locations, recovery points.
//! - [`kind`]: the table of facts per source type and recovery-point kind.
//! - [`tags`]: the tag contract and the run's idempotency key.
//! - [`ports`]: what the use cases need from a cloud (inventory, recovery
//!   points, pruning); `fake`: in memory, for tests (feature `test-support`).
//! - [`backup`]: the backup run's use cases (discover, snapshot, status).
//! - [`retention`]: restic's `forget` rules plus `max_age`, pure, with reasons.
//! - [`period`]: the calendar periods of the retention rules.
//! - [`reason`]: why a recovery point is kept, deleted or refused deletion.
//! - [`listing`]: a location's listings -> the recovery points prune decides on (pure).
//! - [`copy`]: copy destinations, the copy planner and the copy pass.
//! - [`prune`]: the safety invariants and the prune use case.
//! - [`restore`]: restore requests and their validation (issue 11).
//! - [`report`]: the run report, folding backup and prune into the run's output.
//! - [`runs`]: the files a run keeps in S3 instead of in state.
//! - [`sfn`]: Step Functions payload types shared by several states.
//! - [`validate`]: what every function checks of its input before any call.
//! - [`error`]: errors and their stable `Strongroom.*` names.

pub mod backup;
pub mod copy;
pub mod error;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
pub mod kind;
pub mod listing;
pub mod model;
pub mod period;
pub mod policy;
pub mod ports;
pub mod prune;
pub mod quota;
pub mod reason;
pub mod report;
pub mod restore;
pub mod retention;
pub mod runs;
pub mod sfn;
pub mod tags;
pub mod validate;

pub use error::{CloudError, Error, ErrorKind, ErrorReport};
pub use reason::Reason;

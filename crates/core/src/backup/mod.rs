//! The backup run's use cases, one per state of the backup state machine
//! before the run report:
//!
//! - [`discover`]: policy -> batches of targets;
//! - [`snapshot`]: batch -> recovery points, exactly once per target;
//! - [`status`]: the completion check, repeated while points are pending.
//!
//! The types are the JSON that flows between the states. The run report,
//! which folds backup and prune together, is [`crate::report`].

pub mod discover;
pub mod snapshot;
pub mod status;

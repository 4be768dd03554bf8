//! Restores: the requests a person pastes into the restore state machine,
//! what the backup records for them ([`settings`]), and the restore run.

pub mod files;
mod request;
pub mod run;
pub mod settings;

pub use request::*;

//! Step Functions payload types shared by several states (not specific to one
//! use case).

use serde::{Deserialize, Serialize};

/// Error and cause as Step Functions hands them to a `Catch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatesError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

//! Errors of the scheduling core: every one names the bad value and, where
//! there is a closed set, the valid choices.

use thiserror::Error;

/// Why a policy could not be named, parameterised or built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PolicyError {
    #[error("unknown policy `{name}` (valid: {valid})")]
    UnknownPolicy { name: String, valid: String },
    #[error("empty server list: a policy needs at least one server")]
    EmptyMembership,
    #[error("duplicate server name `{0}`")]
    DuplicateServer(String),
    #[error("bad server `{name}`: {reason}")]
    BadServer { name: String, reason: String },
    #[error("unknown parameter `{param}` for policy `{policy}` (valid: {valid})")]
    UnknownParam { policy: String, param: String, valid: String },
    #[error("bad value `{value}` for parameter `{param}` of policy `{policy}`: {expected}")]
    BadParam { policy: String, param: String, value: String, expected: String },
    #[error("bad parameter `{0}`: expected key=value")]
    MalformedParam(String),
}

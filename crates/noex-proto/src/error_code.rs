//! The server's error codes.

use std::fmt;

/// An error code sent by noex-server in an `error` frame.
///
/// Codes this crate does not know are kept verbatim in [`ErrorCode::Other`].
///
/// ```
/// use noex_proto::ErrorCode;
/// assert_eq!(ErrorCode::parse("NOT_FOUND"), ErrorCode::NotFound);
/// assert_eq!(ErrorCode::parse("SOMETHING_NEW"), ErrorCode::Other("SOMETHING_NEW".into()));
/// assert_eq!(ErrorCode::RateLimited.as_str(), "RATE_LIMITED");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame was not valid JSON or not an object.
    ParseError,
    /// The frame lacked a valid `id` or `type`.
    InvalidRequest,
    /// The operation does not exist (or its subsystem is not configured).
    UnknownOperation,
    /// The request's fields failed validation.
    ValidationError,
    /// The addressed entity does not exist.
    NotFound,
    /// The entity to create exists already.
    AlreadyExists,
    /// A version or state conflict.
    Conflict,
    /// Authentication is required or failed.
    Unauthorized,
    /// The caller lacks the permission.
    Forbidden,
    /// A rate or subscription limit was hit; see `retryAfterMs` in the details.
    RateLimited,
    /// The server is overloaded for this connection.
    Backpressure,
    /// The server failed internally.
    InternalError,
    /// The bucket is not defined.
    BucketNotDefined,
    /// The query is not defined.
    QueryNotDefined,
    /// The server runs without a rules engine.
    RulesNotAvailable,
    /// The session was revoked.
    SessionRevoked,
    /// A code this crate does not know, kept verbatim.
    Other(String),
}

impl ErrorCode {
    /// Parses a code as the server spells it.
    pub fn parse(code: &str) -> ErrorCode {
        match code {
            "PARSE_ERROR" => ErrorCode::ParseError,
            "INVALID_REQUEST" => ErrorCode::InvalidRequest,
            "UNKNOWN_OPERATION" => ErrorCode::UnknownOperation,
            "VALIDATION_ERROR" => ErrorCode::ValidationError,
            "NOT_FOUND" => ErrorCode::NotFound,
            "ALREADY_EXISTS" => ErrorCode::AlreadyExists,
            "CONFLICT" => ErrorCode::Conflict,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "FORBIDDEN" => ErrorCode::Forbidden,
            "RATE_LIMITED" => ErrorCode::RateLimited,
            "BACKPRESSURE" => ErrorCode::Backpressure,
            "INTERNAL_ERROR" => ErrorCode::InternalError,
            "BUCKET_NOT_DEFINED" => ErrorCode::BucketNotDefined,
            "QUERY_NOT_DEFINED" => ErrorCode::QueryNotDefined,
            "RULES_NOT_AVAILABLE" => ErrorCode::RulesNotAvailable,
            "SESSION_REVOKED" => ErrorCode::SessionRevoked,
            other => ErrorCode::Other(other.to_owned()),
        }
    }

    /// The code as the server spells it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::UnknownOperation => "UNKNOWN_OPERATION",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Backpressure => "BACKPRESSURE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::BucketNotDefined => "BUCKET_NOT_DEFINED",
            ErrorCode::QueryNotDefined => "QUERY_NOT_DEFINED",
            ErrorCode::RulesNotAvailable => "RULES_NOT_AVAILABLE",
            ErrorCode::SessionRevoked => "SESSION_REVOKED",
            ErrorCode::Other(code) => code,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

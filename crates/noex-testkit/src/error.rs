//! Errors: the ones answered to clients (`OpError`) and the ones returned to test code.

use serde_json::Value;

/// An error answer to a client request: `{"type":"error","code","message","details?"}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) details: Option<Value>,
}

impl OpError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        OpError {
            code,
            message: message.into(),
            details: None,
        }
    }
    pub(crate) fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new("VALIDATION_ERROR", message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new("NOT_FOUND", message)
    }
    pub(crate) fn unknown(message: impl Into<String>) -> Self {
        Self::new("UNKNOWN_OPERATION", message)
    }
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new("INTERNAL_ERROR", message)
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new("FORBIDDEN", message)
    }
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new("UNAUTHORIZED", message)
    }
    pub(crate) fn already_exists(message: impl Into<String>) -> Self {
        Self::new("ALREADY_EXISTS", message)
    }
    pub(crate) fn bucket_not_defined(name: &str) -> Self {
        Self::new(
            "BUCKET_NOT_DEFINED",
            format!("Bucket \"{name}\" is not defined"),
        )
    }
}

/// Result type of operation handlers.
pub(crate) type OpResult = Result<Value, OpError>;

/// Errors returned to test code by [`crate::TestServer`] and its builder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// The listening socket could not be bound or the server thread could not start.
    #[error("could not start the test server: {0}")]
    Start(String),
    /// A bucket or query definition given to the builder is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A direct store operation (e.g. [`crate::TestServer::insert`]) was refused; the fields
    /// are the error code and message a client would have received.
    #[error("{code}: {message}")]
    Store {
        /// The error code, e.g. `VALIDATION_ERROR`.
        code: String,
        /// The message, exactly as a client would see it.
        message: String,
    },
    /// The server has been stopped.
    #[error("the test server is stopped")]
    Stopped,
}

impl From<OpError> for TestkitError {
    fn from(e: OpError) -> Self {
        TestkitError::Store {
            code: e.code.to_string(),
            message: e.message,
        }
    }
}

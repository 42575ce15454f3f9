//! The crate's error type: problems found decoding or validating a message.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    #[error("failed to parse the body: {0}")]
    Json(String),
    #[error("{0}")]
    Invalid(String),
    #[error("invalid recordio: {0}")]
    RecordIo(&'static str),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::Invalid(message.into())
    }
}

//! How the Chronos and Metronome APIs answer an error: a status and a JSON body —
//! `{"message"}`, Chronos' field errors, or Metronome's 422 `details` — as [`ChronosError`],
//! which every handler of the two APIs may return.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use agora_api::chronos::FieldError;

use crate::core::JobsError;

/// What a handler answers: a response, or an error in its API's shape.
pub(crate) type Answer = Result<Response, ChronosError>;

/// An error as Chronos or Metronome answers one.
#[derive(Debug)]
pub(crate) struct ChronosError {
    status: StatusCode,
    body: Value,
}

impl ChronosError {
    /// `{"message": message}`.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ChronosError {
        ChronosError {
            status,
            body: json!({"message": message.into()}),
        }
    }

    /// A jobs error as Chronos words it (a field error is 400 with the field named).
    pub(crate) fn chronos(error: JobsError) -> ChronosError {
        match error {
            JobsError::Invalid(error) => ChronosError {
                status: StatusCode::BAD_REQUEST,
                body: error.to_json(),
            },
            JobsError::NotFound(name) => {
                ChronosError::new(StatusCode::NOT_FOUND, format!("job {name:?} not found"))
            }
            JobsError::Store(error) => {
                ChronosError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
        }
    }

    /// A jobs error as Metronome words it (a field error is 422 with its path).
    pub(crate) fn metronome(error: JobsError) -> ChronosError {
        match error {
            JobsError::Invalid(error) => ChronosError::invalid(&error),
            JobsError::NotFound(id) => ChronosError::not_found(&format!("Job {id}")),
            JobsError::Store(error) => {
                ChronosError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
        }
    }

    /// Metronome's 422 for one field.
    pub(crate) fn invalid(error: &FieldError) -> ChronosError {
        let path = format!("/{}", error.field.replace('.', "/"));
        ChronosError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({
                "message": "Object is not valid",
                "details": [{"path": path, "errors": [error.message]}],
            }),
        }
    }

    /// Metronome's 404: `{what} not found`.
    pub(crate) fn not_found(what: &str) -> ChronosError {
        ChronosError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
}

impl IntoResponse for ChronosError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

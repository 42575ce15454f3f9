//! How the `/v2` API answers: JSON bodies as Marathon writes them, and [`MarathonError`], the
//! error every handler may return — `{"message"}`, the 422 `details` of invalid fields, or the
//! 409 of an app locked by deployments — with the status Marathon gives it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use agora_api::marathon::errors::{Violation, Violations, invalid_body, message_body};

use crate::deploy::ChangeError;

/// What a handler answers: a response, or an error in Marathon's shape.
pub(super) type Answer = Result<Response, MarathonError>;

/// An error as Marathon answers one.
#[derive(Debug)]
pub(crate) struct MarathonError {
    status: StatusCode,
    body: Value,
}

impl MarathonError {
    /// `{"message": message}`.
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> MarathonError {
        MarathonError {
            status,
            body: message_body(message),
        }
    }

    pub(super) fn not_found(message: impl Into<String>) -> MarathonError {
        MarathonError::new(StatusCode::NOT_FOUND, message)
    }

    pub(super) fn app_not_found(app_id: &str) -> MarathonError {
        MarathonError::not_found(format!("App '{app_id}' does not exist"))
    }

    /// 422 with each invalid field's problems.
    pub(super) fn invalid(violations: Violations) -> MarathonError {
        MarathonError::invalid_fields(violations.into_vec())
    }

    pub(super) fn invalid_fields(violations: Vec<Violation>) -> MarathonError {
        MarathonError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: invalid_body(&violations),
        }
    }

    /// 422 for one field.
    pub(super) fn invalid_at(path: &str, message: impl Into<String>) -> MarathonError {
        let mut violations = Violations::default();
        violations.add(path, message);
        MarathonError::invalid(violations)
    }

    /// A body that is not JSON.
    pub(super) fn bad_json(error: &serde_json::Error) -> MarathonError {
        MarathonError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"message": "Invalid JSON", "details": error.to_string()}),
        }
    }

    /// Why a change to `app_id` (an app, or a group's apps) was refused.
    pub(super) fn change(error: ChangeError, app_id: &str) -> MarathonError {
        match error {
            ChangeError::NotFound => MarathonError::app_not_found(app_id),
            ChangeError::Cycle(message) => MarathonError::invalid_fields(vec![Violation {
                path: "/".into(),
                errors: vec![message],
            }]),
            ChangeError::Locked(ids) => {
                let first = ids.first().cloned().unwrap_or_default();
                let deployments: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
                MarathonError {
                    status: StatusCode::CONFLICT,
                    body: json!({
                        "message": format!("App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/{first}'."),
                        "deployments": deployments,
                    }),
                }
            }
        }
    }
}

impl IntoResponse for MarathonError {
    fn into_response(self) -> Response {
        reply(self.status, &self.body)
    }
}

/// A JSON answer, non-ASCII escaped as Marathon's Jackson writes it.
pub(super) fn reply(status: StatusCode, value: &Value) -> Response {
    let body = agora_api::scheduler::ascii_json(value);
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// `{deploymentId, version}`, with the deployment in `Marathon-Deployment-Id`.
pub(super) fn deployment_result(deployment_id: &str, version: &str) -> Response {
    let mut response = reply(
        StatusCode::OK,
        &json!({"deploymentId": deployment_id, "version": version}),
    );
    if let Ok(value) = HeaderValue::from_str(deployment_id) {
        response
            .headers_mut()
            .insert("Marathon-Deployment-Id", value);
    }
    response
}

/// The answer to a change: `{deploymentId, version}`, or why it was refused.
pub(super) fn answer(result: Result<(String, String), ChangeError>, app_id: &str) -> Answer {
    result
        .map(|(deployment, version)| deployment_result(&deployment, &version))
        .map_err(|e| MarathonError::change(e, app_id))
}

/// A request body as JSON.
pub(super) fn parse_body(body: &[u8]) -> Result<Value, MarathonError> {
    serde_json::from_slice(body).map_err(|e| MarathonError::bad_json(&e))
}

/// The query parameters of the calls that change apps, groups, tasks and deployments.
#[derive(Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Changing {
    /// Override a deployment in progress.
    #[serde(deserialize_with = "agora_http::flag")]
    pub force: bool,
    /// Killed tasks shrink their apps rather than being replaced.
    #[serde(deserialize_with = "agora_http::flag")]
    pub scale: bool,
    /// Only the steps a group change would deploy.
    #[serde(deserialize_with = "agora_http::flag")]
    pub dry_run: bool,
    /// An update merges into the app's definition (Marathon's default) unless `false`.
    #[serde(deserialize_with = "unless_false")]
    pub partial_update: bool,
    /// Only the tasks on this host.
    pub host: Option<String>,
}

impl Default for Changing {
    fn default() -> Changing {
        Changing {
            force: false,
            scale: false,
            dry_run: false,
            partial_update: true,
            host: None,
        }
    }
}

fn unless_false<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.is_none_or(|v| !v.eq_ignore_ascii_case("false")))
}

/// `?callbackUrl=` of the event subscriptions.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Callback {
    pub callback_url: Option<String>,
}

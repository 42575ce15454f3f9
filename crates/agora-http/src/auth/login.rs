//! Signing in: `POST /acs/api/v1/auth/login` (DC/OS's path and shape, so its tooling works)
//! trades a principal and its secret — `{"uid": …, "password": …}`, `{"principal": …,
//! "secret": …}`, or HTTP Basic (not a token: a token cannot renew itself) — for a bearer token
//! the master signs. The web UI signs
//! people in through it too.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::{Authenticator, Caller, TOKEN_LIFETIME_SECS};
use crate::ApiFamily;

/// The sign-in route, for a server that signs tokens.
pub fn routes(auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/acs/api/v1/auth/login", post(login))
        .with_state(auth)
}

#[derive(Deserialize)]
struct Login {
    #[serde(alias = "principal")]
    uid: String,
    #[serde(alias = "secret")]
    password: String,
}

async fn login(
    State(auth): State<Arc<Authenticator>>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Response {
    let principal = if body.is_empty() {
        // Only a secret buys a token: a token cannot renew itself past its lifetime.
        caller
            .filter(|Extension(caller)| caller.by_secret())
            .and_then(|Extension(caller)| caller.principal)
    } else {
        match serde_json::from_slice::<Login>(&body) {
            Ok(login) if auth.credentials.verify(&login.uid, &login.password) => Some(login.uid),
            Ok(_) => None,
            Err(error) => {
                return ApiFamily::Marathon.error(
                    StatusCode::BAD_REQUEST,
                    &format!("expected {{\"uid\": …, \"password\": …}}: {error}"),
                );
            }
        }
    };
    let Some(principal) = principal else {
        super::after_failure().await;
        return ApiFamily::Marathon.error(
            StatusCode::UNAUTHORIZED,
            "the principal or its secret is wrong",
        );
    };
    match auth.sign(&principal, TOKEN_LIFETIME_SECS) {
        Some(token) => {
            tracing::info!(%principal, "signed in");
            axum::Json(serde_json::json!({ "token": token })).into_response()
        }
        None => ApiFamily::Marathon.error(
            StatusCode::NOT_IMPLEMENTED,
            "this server signs no tokens (it has no --jwt-secret-key)",
        ),
    }
}

//! What a handler answers with when it does not succeed, and its typed query string, in the
//! words of the API it serves: [`MesosError`] is the Mesos APIs' plain text; [`Query`] refuses
//! a query that does not fit in the shape of the path's API family. Marathon's and Chronos'
//! JSON error bodies are their crates' (`agora-services`, `agora-jobs`), built on the same
//! [`ApiFamily`] rules.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::ApiFamily;

/// An error as a Mesos API answers one: its status and a plain-text message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MesosError {
    pub status: StatusCode,
    pub message: String,
    /// `WWW-Authenticate` of a 401: the scheme the caller should use.
    challenge: Option<&'static str>,
}

impl MesosError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> MesosError {
        MesosError {
            status,
            message: message.into(),
            challenge: None,
        }
    }

    /// The same error telling the caller how to authenticate (`WWW-Authenticate`).
    pub fn with_challenge(self, challenge: &'static str) -> MesosError {
        MesosError {
            challenge: Some(challenge),
            ..self
        }
    }

    pub fn bad_request(message: impl Into<String>) -> MesosError {
        MesosError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> MesosError {
        MesosError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> MesosError {
        MesosError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for MesosError {
    fn into_response(self) -> Response {
        let mut response = ApiFamily::Mesos.error(self.status, &self.message);
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// The query string as `T`. One that does not fit is a 400 as the path's API answers errors
/// (plain text for Mesos, `{"message"}` for Marathon, Chronos and Metronome).
#[derive(Clone, Debug, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::try_from_uri(&parts.uri) {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(ApiFamily::of(parts.uri.path())
                .error(StatusCode::BAD_REQUEST, &rejection.body_text())),
        }
    }
}

/// A flag of a query string as the clients send one: `?force`, `?force=true` and the Python
/// client's `?force=True` set it; any other value, or none, does not.
/// Mesos' content-type rule for its v1 APIs: missing → 400, anything but exactly
/// `application/json` → 415 (protobuf named as what agora does not take).
pub fn mesos_content_type(headers: &axum::http::HeaderMap) -> Result<(), MesosError> {
    match headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => Err(MesosError::bad_request(
            "Expecting 'Content-Type' to be present",
        )),
        Some("application/json") => Ok(()),
        Some("application/x-protobuf") => Err(MesosError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type application/x-protobuf is not supported by agora; use application/json",
        )),
        Some(other) => Err(MesosError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Expecting 'Content-Type' of application/json, got '{other}'"),
        )),
    }
}

pub fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.is_some_and(|v| v.is_empty() || v.eq_ignore_ascii_case("true")))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;

    use super::*;

    #[derive(Deserialize, Debug, Default)]
    #[serde(default)]
    struct Flags {
        #[serde(deserialize_with = "flag")]
        force: bool,
        limit: Option<usize>,
    }

    async fn extract(uri: &str) -> Result<Flags, Response> {
        let (mut parts, _) = Request::get(uri).body(Body::empty()).unwrap().into_parts();
        Query::<Flags>::from_request_parts(&mut parts, &())
            .await
            .map(|Query(q)| q)
    }

    #[tokio::test]
    async fn flags_are_read_as_the_clients_send_them() {
        for (uri, force) in [
            ("/v2/apps", false),
            ("/v2/apps?force", true),
            ("/v2/apps?force=", true),
            ("/v2/apps?force=True", true),
            ("/v2/apps?force=true", true),
            ("/v2/apps?force=false", false),
            ("/v2/apps?force=1", false),
        ] {
            assert_eq!(
                extract(uri).await.map(|q| q.force).ok(),
                Some(force),
                "{uri}"
            );
        }
    }

    #[tokio::test]
    async fn a_query_that_does_not_fit_is_refused_in_the_api_s_words() {
        let mesos = extract("/master/tasks?limit=x").await.unwrap_err();
        assert_eq!(mesos.status(), StatusCode::BAD_REQUEST);
        assert!(
            mesos.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let marathon = extract("/v2/apps?limit=x").await.unwrap_err();
        assert_eq!(marathon.status(), StatusCode::BAD_REQUEST);
        assert_eq!(marathon.headers()["content-type"], "application/json");
    }
}

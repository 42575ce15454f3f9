//! Who may speak for an executor on the executor API. Each executor gets a secret of its own
//! in `MESOS_EXECUTOR_AUTHENTICATION_TOKEN` (Mesos' variable) and sends it back as a bearer
//! token. The built-in executors always do, so nothing else can pose as them; a framework's
//! own executor must when the agent runs with `--authenticate-http-executors` (pymesos'
//! executor does not send one, as it does not under Mesos). Without that flag a framework's
//! executor that sends no token is taken at its word, but never while another connection
//! holds its subscription.

use axum::http::{HeaderMap, header};

use crate::core::{Executor, ExecutorKind};

/// The variable an executor finds its secret in.
pub(crate) const TOKEN_ENV: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

/// The bearer token of a request, if it has one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Why a call may not speak for an executor.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No token, or not the executor's: 401.
    Unauthenticated,
    /// Another connection holds the executor's subscription: 403.
    Subscribed,
}

impl Refusal {
    /// The status and words the executor API answers it with.
    pub(crate) fn answer(self) -> (u16, &'static str) {
        match self {
            Refusal::Unauthenticated => (
                401,
                "The executor's authentication token is missing or wrong",
            ),
            Refusal::Subscribed => (403, "The executor is subscribed on another connection"),
        }
    }
}

/// Whether a call carrying `token` may speak for `executor`.
pub(crate) fn admit(
    executor: &Executor,
    token: Option<&str>,
    subscribing: bool,
    required_for_all: bool,
) -> Result<(), Refusal> {
    let Some(secret) = &executor.token else {
        // Started by an agent that gave executors no secret: nothing to check against.
        return Ok(());
    };
    match token {
        Some(token) if agora_http::auth::same_secret(token, secret) => Ok(()),
        Some(_) => Err(Refusal::Unauthenticated),
        None if executor.kind != ExecutorKind::Custom || required_for_all => {
            Err(Refusal::Unauthenticated)
        }
        None if subscribing && executor.stream.as_ref().is_some_and(|s| !s.is_closed()) => {
            Err(Refusal::Subscribed)
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::*;

    #[test]
    fn bearer_tokens_are_read_whatever_the_scheme_case() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert("authorization", HeaderValue::from_static("bearer  xyz "));
        assert_eq!(bearer(&headers), Some("xyz"));
        headers.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }
}

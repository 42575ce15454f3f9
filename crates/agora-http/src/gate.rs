//! The gate every request passes before a handler sees it. It closes what a web page could
//! otherwise do through a visitor's browser, which carries the visitor's network position (and,
//! once signed in, their credentials) to any address the page names:
//! - a request that changes state is refused when a browser says it comes from another site
//!   (`Sec-Fetch-Site`, else `Origin`): browsers send such "simple" cross-site posts without
//!   asking first;
//! - a request body must be JSON (a page can post `text/plain` or a form anywhere), except the
//!   UI's own forms, which are same-site by the rule above;
//! - a browser must name this server by a name it serves: a page whose own name was made to
//!   resolve to this server (DNS rebinding) is "same-site" to itself, but not one of those names.
//!
//! Requests without any browser header (curl, client libraries, agents) are not a browser's
//! and meet only the body rule.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiFamily;
use crate::auth::acl::{Acls, Action};
use crate::auth::{self, Authenticator, Caller, Realm};

/// What the gate needs to know about the server it guards.
#[derive(Clone, Debug)]
pub struct GateConfig {
    /// The names browsers may reach this server by (IP addresses and `localhost` always may).
    pub hosts: HostNames,
    /// Time a request's body has to arrive, whole.
    pub body_read_timeout: std::time::Duration,
    /// Who callers are, and where one is required.
    pub auth: Arc<Authenticator>,
    /// Who may read the endpoints Mesos guards with `get_endpoints` (metrics, statistics).
    pub acls: Arc<Acls>,
}

impl Default for GateConfig {
    fn default() -> GateConfig {
        GateConfig {
            hosts: HostNames::default(),
            body_read_timeout: std::time::Duration::from_secs(30),
            auth: Arc::default(),
            acls: Arc::default(),
        }
    }
}

/// Host names a browser may use for this server: any IP address, `localhost` (and names
/// under it), and the names listed.
#[derive(Clone, Debug, Default)]
pub struct HostNames {
    names: Vec<String>,
}

impl HostNames {
    pub fn new<I, S>(names: I) -> HostNames
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut names: Vec<String> = names
            .into_iter()
            .map(|name| normalise(name.as_ref()))
            .filter(|name| !name.is_empty())
            .collect();
        names.sort();
        names.dedup();
        HostNames { names }
    }

    /// Whether a `Host` header (a name or address, with or without a port) is one of ours.
    pub fn allows(&self, host: &str) -> bool {
        let name = normalise(agora_types::host_of(host));
        if name.is_empty() {
            return false;
        }
        if name.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        self.names.contains(&name)
    }
}

fn normalise(name: &str) -> String {
    let name = name.trim().trim_end_matches('.');
    let name = name
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(name);
    name.to_ascii_lowercase()
}

/// Wraps every route of `router` in the gate. Bodies are limited here, by API
/// (`body::limit`), in place of axum's one default.
pub fn protect(router: Router, config: GateConfig) -> Router {
    router
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(config),
            check,
        ))
}

async fn check(State(config): State<Arc<GateConfig>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let limit = crate::body::limit(&path);
    let refused = admit(&config, request.method(), &path, request.headers()).and_then(|()| {
        match declared_length(request.headers()) {
            Some(length) if length > limit as u64 => refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than the {limit} bytes {path} takes"),
            ),
            _ => Ok(()),
        }
    });
    if let Err(refusal) = refused {
        tracing::info!(
            method = %request.method(),
            path,
            status = refusal.status.as_u16(),
            reason = %refusal.message,
            "request refused at the gate"
        );
        if refusal.status != StatusCode::PAYLOAD_TOO_LARGE {
            drain(request, config.body_read_timeout).await;
        }
        return ApiFamily::of(&path).error(refusal.status, &refusal.message);
    }
    let caller = match identify(&config.auth, request.method(), &path, request.headers()) {
        Ok(caller) => caller,
        Err(refused) => {
            if refused.wrong_secret {
                auth::after_failure().await;
            }
            drain(request, config.body_read_timeout).await;
            return refused.response;
        }
    };
    if matches!(*request.method(), Method::GET | Method::HEAD)
        && GUARDED_ENDPOINTS.contains(&path.as_str())
        && !config.acls.permits(
            Action::GetEndpoints,
            caller.principal.as_deref(),
            Some(&path),
        )
    {
        return ApiFamily::of(&path).error(
            StatusCode::FORBIDDEN,
            &format!("Not authorized to read {path} ('get_endpoints' in the ACLs)"),
        );
    }
    let mut request = if has_body(request.headers()) {
        request.map(|body| crate::body::bounded(body, limit, config.body_read_timeout))
    } else {
        request
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The endpoints whose GET the ACLs' `get_endpoints` decides, as Mesos guards them.
const GUARDED_ENDPOINTS: [&str; 7] = [
    "/metrics",
    "/metrics/snapshot",
    "/monitor/statistics",
    "/slave(1)/monitor/statistics",
    "/containers",
    "/slave(1)/containers",
    "/files/debug",
];

/// Reads (and drops) a small body a refused request still carries. Answered before its body
/// was read, a client still writing it would meet a closed connection and never see why it
/// was refused (Python's `http.client` reports a broken pipe; httplib2 then retries without
/// the credentials a 401 asks for).
async fn drain(request: Request, deadline: std::time::Duration) {
    const SMALL: usize = 1 << 20;
    if !has_body(request.headers()) {
        return;
    }
    let body = http_body_util::Limited::new(request.into_body(), SMALL);
    let _ = tokio::time::timeout(deadline, http_body_util::BodyExt::collect(body)).await;
}

/// A request the gate does not let through for want of a caller.
struct Unidentified {
    response: Response,
    /// It named a caller with a wrong secret or token: answered after a pause, so guessing
    /// is slow whichever endpoint it is tried on.
    wrong_secret: bool,
}

/// The request's caller, or the answer that asks for one: 401 in the API's shape with
/// `WWW-Authenticate`, or — for a person on the UI's pages — the sign-in page. On the open
/// paths (health, sign-in, sign-out, assets) credentials that are not good are ignored: a stale
/// session cookie must not keep anyone from signing in again.
fn identify(
    auth: &Authenticator,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Caller, Unidentified> {
    let family = ApiFamily::of(path);
    let realm = auth::realm::realm(method, path);
    // An executor's bearer token is its own secret, which its agent checks.
    if realm == Realm::Executors {
        return Ok(Caller::default());
    }
    let unauthorized = |message: String, wrong_secret: bool| {
        let mut response = family.error(StatusCode::UNAUTHORIZED, &message);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"agora\""),
        );
        Unidentified {
            response,
            wrong_secret,
        }
    };
    let sign_in = |path: &str| Unidentified {
        response: sign_in(path),
        wrong_secret: false,
    };
    let ui = family == ApiFamily::Ui;
    match auth.identify(headers, ui, auth::now_secs()) {
        Ok(Some(caller)) => Ok(caller),
        Ok(None) if !auth.required.of(realm) => Ok(Caller::default()),
        Ok(None) if ui && *method == Method::GET => Err(sign_in(path)),
        Ok(None) => Err(unauthorized(
            format!(
                "{path} needs an authenticated caller: HTTP Basic with a principal and its \
                 secret, or a bearer token"
            ),
            false,
        )),
        Err(_) if realm == Realm::Open => Ok(Caller::default()),
        Err(error) if ui && *method == Method::GET => {
            tracing::info!(path, %error, "UI session refused");
            Err(sign_in(path))
        }
        Err(error) => Err(unauthorized(error.to_string(), true)),
    }
}

/// The UI's sign-in page, coming back to `path` after.
fn sign_in(path: &str) -> Response {
    let next: String = path
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"/-_.".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    axum::response::Redirect::to(&format!("/ui/login?next={next}")).into_response()
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    status: StatusCode,
    message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Result<(), Refusal> {
    Err(Refusal {
        status,
        message: message.into(),
    })
}

/// The gate's decision for one request.
fn admit(
    config: &GateConfig,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if from_browser(headers) {
        let host = value(header::HOST.as_str()).unwrap_or("");
        if !config.hosts.allows(host) {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "a browser reached this server as '{host}', which is not a name it serves \
                     (use its address, or list the name with --allowed-hosts)"
                ),
            );
        }
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if !same_origin(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("{method} {path} from a page of another site is refused"),
        );
    }
    if !has_body(headers) || checks_own_content_type(path) {
        return Ok(());
    }
    let content_type = value(header::CONTENT_TYPE.as_str());
    match content_type.map(media_type) {
        Some(media) if is_json(&media) => Ok(()),
        Some(media) if ApiFamily::of(path) == ApiFamily::Ui && is_form(&media) => Ok(()),
        Some(_) => refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Expecting 'Content-Type' of application/json, got '{}'",
                content_type.unwrap_or_default()
            ),
        ),
        None => refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expecting 'Content-Type' of application/json",
        ),
    }
}

/// Whether a browser sent the request: browsers add `Origin` to every request that may change
/// something and `Sec-Fetch-*` to every request; other clients send neither.
fn from_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN)
        || headers.contains_key("sec-fetch-site")
        || headers.contains_key("sec-fetch-mode")
}

/// Whether a request comes from a page of this very server (or from no page at all).
fn same_origin(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (value(header::ORIGIN.as_str()), value(header::HOST.as_str())) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|length| length.trim() != "0")
}

/// The Mesos v1 APIs check their content type themselves, with Mesos' own answers (400 when
/// it is missing, 415 naming protobuf).
fn checks_own_content_type(path: &str) -> bool {
    crate::family::MesosV1::of(path).is_some()
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(media: &str) -> bool {
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

fn is_form(media: &str) -> bool {
    media == "application/x-www-form-urlencoded" || media == "multipart/form-data"
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};

    use super::{GateConfig, HostNames, admit};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn config() -> GateConfig {
        GateConfig {
            hosts: HostNames::new(["master-1", "Agora.Example.COM."]),
            ..GateConfig::default()
        }
    }

    fn status(method: Method, path: &str, pairs: &[(&'static str, &'static str)]) -> u16 {
        match admit(&config(), &method, path, &headers(pairs)) {
            Ok(()) => 200,
            Err(refusal) => refusal.status.as_u16(),
        }
    }

    #[test]
    fn scripts_and_clients_pass_with_json_or_no_body() {
        let json = [
            ("content-type", "application/json; charset=utf-8"),
            ("content-length", "12"),
        ];
        assert_eq!(status(Method::POST, "/v2/apps", &json), 200);
        assert_eq!(
            status(Method::POST, "/v2/apps/x/restart", &[("host", "m:5050")]),
            200
        );
        assert_eq!(
            status(
                Method::POST,
                "/v2/apps/x/restart",
                &[("content-length", "0")]
            ),
            200
        );
        assert_eq!(status(Method::GET, "/master/state", &[]), 200);
    }

    #[test]
    fn bodies_other_than_json_are_refused() {
        let plain = [("content-type", "text/plain"), ("content-length", "40")];
        assert_eq!(status(Method::POST, "/v2/apps", &plain), 415);
        assert_eq!(status(Method::POST, "/scheduler/iso8601", &plain), 415);
        assert_eq!(status(Method::POST, "/v1/jobs", &plain), 415);
        assert_eq!(status(Method::POST, "/slave(1)/tasks/t/exec", &plain), 415);
        let form = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", "20"),
        ];
        assert_eq!(status(Method::POST, "/master/teardown", &form), 415);
        assert_eq!(
            status(
                Method::POST,
                "/v2/apps",
                &[("transfer-encoding", "chunked")]
            ),
            415,
            "a body without a type"
        );
        // The UI's own forms, same-origin.
        let ui_form = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", "20"),
            ("sec-fetch-site", "same-origin"),
            ("host", "127.0.0.1:5050"),
        ];
        assert_eq!(status(Method::POST, "/ui/apps", &ui_form), 200);
        // Mesos' v1 APIs answer their own content-type errors.
        assert_eq!(status(Method::POST, "/api/v1/scheduler", &plain), 200);
        assert_eq!(status(Method::POST, "/api/v1", &plain), 200);
        // ... and only they: an app id ending like one is Marathon's.
        assert_eq!(
            status(Method::PUT, "/v2/apps/x/api/v1/executor", &plain),
            415
        );
    }

    #[test]
    fn nothing_changes_from_another_site() {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert_eq!(
                status(
                    method.clone(),
                    "/v2/eventSubscriptions",
                    &[("sec-fetch-site", "cross-site"), ("host", "127.0.0.1:5050")]
                ),
                403
            );
            assert_eq!(
                status(
                    method,
                    "/master/teardown",
                    &[
                        ("origin", "http://evil.example"),
                        ("host", "127.0.0.1:5050")
                    ]
                ),
                403
            );
        }
        assert_eq!(
            status(
                Method::POST,
                "/v2/apps/x/restart",
                &[("sec-fetch-site", "same-site"), ("host", "127.0.0.1:5050")]
            ),
            403,
            "another port of the same host is another site's page"
        );
        assert_eq!(
            status(
                Method::POST,
                "/v2/apps/x/restart",
                &[("origin", "null"), ("host", "127.0.0.1:5050")]
            ),
            403
        );
        assert_eq!(
            status(
                Method::POST,
                "/ui/apps",
                &[
                    ("origin", "http://127.0.0.1:5050"),
                    ("host", "127.0.0.1:5050")
                ]
            ),
            200
        );
        assert_eq!(
            status(
                Method::GET,
                "/master/state",
                &[("sec-fetch-site", "cross-site"), ("host", "127.0.0.1:5050")]
            ),
            200,
            "reading is the browser's business: no CORS header lets a page see the answer"
        );
    }

    #[test]
    fn browsers_must_name_a_host_this_server_serves() {
        let rebound = [
            ("sec-fetch-site", "same-origin"),
            ("host", "evil.example:5050"),
        ];
        assert_eq!(status(Method::GET, "/master/state", &rebound), 403);
        assert_eq!(status(Method::POST, "/v2/apps", &rebound), 403);
        for host in [
            "127.0.0.1:5050",
            "[::1]:5050",
            "localhost:5050",
            "app.localhost",
            "master-1:5050",
            "agora.example.com",
            "AGORA.example.com.:443",
            "10.1.2.3",
        ] {
            let mut map = headers(&[("sec-fetch-mode", "navigate")]);
            map.insert(
                "host",
                HeaderValue::from_str(host).unwrap_or(HeaderValue::from_static("")),
            );
            assert!(
                admit(&config(), &Method::GET, "/", &map).is_ok(),
                "{host} is served"
            );
        }
        assert_eq!(
            status(Method::GET, "/", &[("sec-fetch-mode", "navigate")]),
            403,
            "no Host at all"
        );
        assert_eq!(
            status(Method::GET, "/master/state", &[("host", "evil.example")]),
            200,
            "not a browser: any name"
        );
        assert_eq!(
            admit(
                &config(),
                &Method::GET,
                "/",
                &headers(&[("origin", "http://x"), ("host", "evil.example")])
            )
            .map_err(|r| r.status),
            Err(StatusCode::FORBIDDEN)
        );
    }
}

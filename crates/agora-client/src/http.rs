//! JSON over HTTP, shared by the API clients: one request, its status checked, its body
//! decoded; failures named after the URL they concern.

use serde_json::Value;

use crate::ClientError;

/// What an API answered: the decoded body (`Null` when empty) and the headers an operation
/// may need (Marathon names the deployment it started in `Marathon-Deployment-Id`).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub deployment_id: Option<String>,
}

#[derive(Clone)]
pub(crate) struct JsonHttp {
    base: String,
    http: reqwest::Client,
    /// Sent instead of the client's own `Authorization` (see `acting_as`).
    authorization: Option<reqwest::header::HeaderValue>,
}

impl JsonHttp {
    pub fn new(address: &str, access: &crate::Access) -> JsonHttp {
        // An address that answers nothing (a firewall dropping packets) fails in seconds rather
        // than leaving an operator's command hanging.
        let http = access
            .client_builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_else(|error| {
                // Only a broken TLS setup does this; say so rather than fail every call.
                tracing::error!(%error, "cannot build the HTTP client; using reqwest's default");
                reqwest::Client::default()
            });
        JsonHttp {
            base: access.base_url(address),
            http,
            authorization: None,
        }
    }

    /// The same client (its connections shared), sending `authorization` with every request:
    /// a server that reads the cluster on someone's behalf (the UI) acts as them.
    pub fn acting_as(&self, authorization: Option<reqwest::header::HeaderValue>) -> JsonHttp {
        JsonHttp {
            authorization,
            ..self.clone()
        }
    }

    /// A request with this client's identity.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.authorization {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value.clone()),
            None => request,
        }
    }

    /// The same client for another server, reached the way this one is (http or https).
    pub fn at(&self, address: &str) -> JsonHttp {
        JsonHttp {
            base: crate::base_url(address, self.base.starts_with("https:")),
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        Ok(self.send(reqwest::Method::GET, path, None).await?.body)
    }

    /// One request with an optional JSON body; any status outside 2xx is an error carrying
    /// the body the server gave.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let url = self.url(path);
        let mut request = self
            .request(method, &url)
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| connect_error(&url, &e))?;
        decode(url, response).await
    }
}

pub(crate) fn connect_error(url: &str, error: &reqwest::Error) -> ClientError {
    // reqwest's own message ("error sending request") hides the cause one level down.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    ClientError::Connect {
        url: url.to_owned(),
        message,
    }
}

pub(crate) async fn decode(
    url: String,
    response: reqwest::Response,
) -> Result<Answer, ClientError> {
    let status = response.status();
    let deployment_id = response
        .headers()
        .get("Marathon-Deployment-Id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .bytes()
        .await
        .map_err(|e| connect_error(&url, &e))?;
    if !status.is_success() {
        return Err(ClientError::Status {
            url,
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|e| ClientError::Invalid {
            url,
            message: e.to_string(),
        })?
    };
    Ok(Answer {
        status: status.as_u16(),
        body,
        deployment_id,
    })
}

/// A path segment or query value with everything but unreserved characters escaped
/// (exported as `escape_segment`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A Marathon path id as it goes in a URL: its segments escaped, slashes kept, no leading one.
pub(crate) fn escape_path_id(id: &str) -> String {
    id.trim_matches('/')
        .split('/')
        .map(escape)
        .collect::<Vec<_>>()
        .join("/")
}

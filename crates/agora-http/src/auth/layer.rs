//! What the authorization layers in front of an API's handlers share (the services' and the
//! jobs'): who calls, the path as the handlers will read it, the body read once and handed
//! on, and a JSON list answer cut to what the caller may see.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::Value;

use super::Caller;

/// The principal the gate found for the request.
pub fn principal(request: &Request) -> Option<String> {
    request
        .extensions()
        .get::<Caller>()
        .and_then(|caller| caller.principal.clone())
}

/// The request's path percent-decoded, as axum's `Path` hands it to handlers (an id checked
/// here must be the id a handler acts on); none when it does not decode to UTF-8.
pub fn decoded_path(request: &Request) -> Option<String> {
    percent_encoding::percent_decode_str(request.uri().path())
        .decode_utf8()
        .ok()
        .map(|path| path.into_owned())
}

/// The request's head and whole body (the gate has bounded its size and time already); none
/// when the body could not be read.
pub async fn buffered(request: Request) -> Option<(Parts, Bytes)> {
    let (parts, body) = request.into_parts();
    let bytes = body.collect().await.ok()?.to_bytes();
    Some((parts, bytes))
}

/// The request again, from what [`buffered`] read.
pub fn rebuilt(parts: Parts, bytes: Bytes) -> Request {
    Request::from_parts(parts, Body::from(bytes))
}

/// A successful JSON answer with `edit` applied to its body (its other headers kept); any
/// other answer as it is.
pub async fn edit_json(response: Response, edit: impl FnOnce(&mut Value)) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(collected) = body.collect().await else {
        return (parts.status, "cannot read the answer").into_response();
    };
    let bytes = collected.to_bytes();
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    edit(&mut value);
    let mut response = (parts.status, axum::Json(value)).into_response();
    response.headers_mut().extend(
        parts
            .headers
            .into_iter()
            .filter_map(|(name, value)| name.map(|n| (n, value)))
            .filter(|(name, _)| *name != header::CONTENT_LENGTH && *name != header::CONTENT_TYPE),
    );
    response
}

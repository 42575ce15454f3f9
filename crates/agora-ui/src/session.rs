//! Signing in and out of the UI. The sign-in form trades a principal and its secret for a
//! token at the master's sign-in API, like any client, and keeps it in a session cookie:
//! `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it). The
//! gate reads the cookie on the UI's own pages only; the APIs want it in `Authorization`.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use agora_http::auth::{SESSION_COOKIE, TOKEN_LIFETIME_SECS};

use crate::Shared;
use crate::layout::{self, Flash};

#[derive(Deserialize, Default)]
pub struct SignInQuery {
    #[serde(default)]
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct SignIn {
    principal: String,
    secret: String,
    #[serde(default)]
    next: String,
}

/// Only back to one of the UI's own pages: a path on this server, with no characters a
/// browser would drop or bend (a tab makes `/\t/evil.example` another site's address).
fn back_to(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if local { next } else { "/" }
}

pub async fn form(Query(query): Query<SignInQuery>) -> Response {
    let flash = Flash {
        notice: None,
        error: query.error.clone(),
    };
    layout::page(
        "login",
        "Sign in",
        &flash,
        html! {
            h1 { "Sign in" }
            form.card.signin method="post" action="/ui/login" {
                label { "Principal" input name="principal" autocomplete="username" required; }
                label { "Secret" input name="secret" type="password" autocomplete="current-password" required; }
                input type="hidden" name="next" value=(back_to(&query.next));
                button type="submit" { "Sign in" }
            }
        },
    )
    .into_response()
}

pub async fn sign_in(State(ui): State<Shared>, Form(form): Form<SignIn>) -> Response {
    let next = back_to(&form.next).to_owned();
    match ui
        .anonymous_master()
        .login(&form.principal, &form.secret)
        .await
    {
        Ok(token) => {
            let cookie = format!(
                "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={TOKEN_LIFETIME_SECS}{}",
                if ui.secure_cookies { "; Secure" } else { "" }
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(error) => {
            let why = error
                .server_message()
                .unwrap_or_else(|| "the master cannot be reached".into());
            Redirect::to(&format!(
                "/ui/login?next={}&error={}",
                agora_client::escape_segment(&next),
                agora_client::escape_segment(&why)
            ))
            .into_response()
        }
    }
}

pub async fn sign_out() -> Response {
    let mut response = Redirect::to("/ui/login").into_response();
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::back_to;

    #[test]
    fn signing_in_leads_back_to_the_uis_own_pages_only() {
        assert_eq!(back_to("/ui/apps"), "/ui/apps");
        assert_eq!(back_to("//evil.example/x"), "/");
        assert_eq!(back_to("https://evil.example"), "/");
        assert_eq!(back_to("/\\evil.example"), "/");
        assert_eq!(back_to("/\t/evil.example"), "/");
        assert_eq!(back_to("/ui/apps?x=a b"), "/");
        assert_eq!(back_to(""), "/");
    }
}

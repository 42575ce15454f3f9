//! The page shell every page shares: head, navigation, a notice or error from the last action,
//! and the embedded stylesheet and script.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

/// What the last action said, carried in the query string of the page it redirected to.
#[derive(Deserialize, Default)]
pub struct Flash {
    pub notice: Option<String>,
    pub error: Option<String>,
}

const SECTIONS: [(&str, &str, &str); 6] = [
    ("dashboard", "/", "Dashboard"),
    ("agents", "/ui/agents", "Agents"),
    ("frameworks", "/ui/frameworks", "Frameworks"),
    ("apps", "/ui/apps", "Apps"),
    ("jobs", "/ui/jobs", "Jobs"),
    ("tasks", "/ui/tasks", "Tasks"),
];

/// A whole page: `section` marks the navigation's current entry.
pub fn page(section: &str, title: &str, flash: &Flash, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · agora" }
                link rel="stylesheet" href="/ui/assets/ui.css";
                link rel="icon" href="/ui/assets/favicon.svg" type="image/svg+xml";
            }
            body data-section=(section) {
                header.top {
                    a.brand href="/" { span.logo { "◆" } " agora" }
                    nav {
                        @for (key, href, label) in SECTIONS {
                            a href=(href) class=[(key == section).then_some("current")] { (label) }
                        }
                        form.signout method="post" action="/ui/logout" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    @if let Some(notice) = &flash.notice {
                        p.flash.notice role="status" { (notice) }
                    }
                    @if let Some(error) = &flash.error {
                        p.flash.error role="alert" { (error) }
                    }
                    (body)
                }
                script src="/ui/assets/ui.js" {}
            }
        }
    }
}

/// A page for a failure to read what a page shows (the API unreachable, an unknown id).
pub fn failure(section: &str, status: StatusCode, message: &str) -> Response {
    let body = html! {
        h1 { "Cannot show this page" }
        p.flash.error role="alert" { (message) }
    };
    (status, page(section, "Error", &Flash::default(), body)).into_response()
}

/// A failure of the client as a page: 404 for what the API does not know.
pub fn client_failure(section: &str, error: &agora_client::ClientError) -> Response {
    let status = match error.status() {
        Some(404) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_GATEWAY,
    };
    let message = error.server_message().unwrap_or_else(|| error.to_string());
    failure(section, status, &message)
}

/// After an action: back to `to`, saying what happened.
pub fn redirect(to: &str, result: Result<String, String>) -> Response {
    let (key, text) = match result {
        Ok(notice) => ("notice", notice),
        Err(error) => ("error", error),
    };
    let separator = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!(
        "{to}{separator}{key}={}",
        agora_client::escape_segment(&text)
    ))
    .into_response()
}

/// A table that scrolls sideways on a narrow screen rather than squeezing its columns.
pub fn table(head: &[&str], rows: Markup) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr { @for h in head { th { (h) } } } }
                tbody { (rows) }
            }
        }
    }
}

/// A labelled value, as the detail pages list them.
pub fn fields(rows: &[(&str, Markup)]) -> Markup {
    html! {
        dl.fields {
            @for (name, value) in rows {
                dt { (name) }
                dd { (value) }
            }
        }
    }
}

/// A horizontal gauge: `used` of `total`, with its figures.
pub fn gauge(label: &str, used: f64, total: f64, unit: &str) -> Markup {
    let fraction = if total > 0.0 {
        (used / total).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let percent = fraction * 100.0;
    let level = if fraction > 0.9 {
        "high"
    } else if fraction > 0.7 {
        "mid"
    } else {
        "low"
    };
    html! {
        div.gauge data-gauge=(label.to_lowercase()) {
            div.gauge-label {
                span { (label) }
                span.gauge-figures {
                    (crate::format::number(used)) " / " (crate::format::number(total)) " " (unit)
                    " (" (format!("{percent:.0}")) "%)"
                }
            }
            div.gauge-track role="meter" aria-valuemin="0" aria-valuemax="100" aria-valuenow=(format!("{percent:.0}")) aria-label=(label) {
                div class={"gauge-fill " (level)} style=(PreEscaped(format!("width:{percent:.1}%"))) {}
            }
        }
    }
}

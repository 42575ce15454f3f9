//! Frameworks: their roles, allocation (used, offered, dominant share) and tasks.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use crate::cluster::{self, Paging};
use crate::format::{
    dominant_share, items, resources, segment, state as state_name, state_class, text,
};
use crate::layout::{self, Flash, fields, table};

fn roles(framework: &Value) -> String {
    items(framework, "roles")
        .map(text)
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn list(api: crate::Api, Query(flash): Query<Flash>) -> Result<Markup, Response> {
    let (frameworks, metrics) = tokio::join!(
        cluster::frameworks(&api, "frameworks"),
        api.master.metrics_snapshot()
    );
    let frameworks = frameworks?;
    let totals = metrics
        .ok()
        .as_ref()
        .map(cluster::totals)
        .unwrap_or_default();
    Ok(layout::page(
        "frameworks",
        "Frameworks",
        &flash,
        html! {
            h1 { "Frameworks" }
            (table(&["Name", "ID", "Roles", "Active", "Used", "Share"], html! {
                @for framework in frameworks.iter().filter(|f| f["completed"] != true) {
                    @let id = framework["id"].as_str().unwrap_or_default();
                    @let share = dominant_share(&framework["used_resources"], &totals);
                    tr {
                        td { a href={"/ui/frameworks/" (segment(id))} { (text(&framework["name"])) } }
                        td.id { (id) }
                        td { (roles(framework)) }
                        td { (if framework["active"] == true { "yes" } else { "no" }) }
                        td { (resources(&framework["used_resources"])) }
                        td { div.share { div.share-fill style=(format!("width:{:.1}%", share * 100.0)) {} span { (format!("{:.1}%", share * 100.0)) } } }
                    }
                }
            }))
        },
    ))
}

pub async fn show(
    api: crate::Api,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
    Query(flash): Query<Flash>,
) -> Result<Markup, Response> {
    let filter = format!("&framework_id={}&ended=false", segment(&id));
    let (frameworks, metrics, tasks) = tokio::join!(
        cluster::frameworks(&api, "frameworks"),
        api.master.metrics_snapshot(),
        cluster::tasks(&api, "frameworks", &filter, paging.offset)
    );
    let frameworks = frameworks?;
    let Some(framework) = frameworks.iter().find(|f| f["id"] == id.as_str()) else {
        return Err(layout::failure(
            "frameworks",
            StatusCode::NOT_FOUND,
            &format!("No framework {id} is registered."),
        ));
    };
    let tasks = tasks?;
    let totals = metrics
        .ok()
        .as_ref()
        .map(cluster::totals)
        .unwrap_or_default();
    let share = dominant_share(&framework["used_resources"], &totals);
    Ok(layout::page(
        "frameworks",
        &format!("Framework {}", text(&framework["name"])),
        &flash,
        html! {
            h1 { "Framework " (text(&framework["name"])) }
            (fields(&[
                ("ID", html! { (id) }),
                ("Roles", html! { (roles(framework)) }),
                ("User", html! { (text(&framework["user"])) }),
                ("Principal", html! { (text(&framework["principal"])) }),
                ("Active", html! { (if framework["active"] == true { "yes" } else { "no" }) }),
                ("Web UI", html! {
                    // Any framework sets this: only a web address becomes a link (a
                    // `javascript:` one would run in the UI's origin, which is the API's).
                    @match framework["webui_url"].as_str().filter(|u| !u.is_empty()) {
                        Some(url) if url.starts_with("http://") || url.starts_with("https://") => a href=(url) rel="noreferrer" { (url) },
                        Some(url) => (url),
                        None => "—",
                    }
                }),
                ("Used", html! { (resources(&framework["used_resources"])) }),
                ("Offered", html! { (resources(&framework["offered_resources"])) }),
                ("Dominant share", html! { (format!("{:.1}%", share * 100.0)) }),
            ]))
            h2 { "Tasks" }
            @if tasks.rows.is_empty() {
                p.muted { "No tasks." }
            } @else {
                (table(&["Task", "Name", "State", "Agent", "Resources"], html! {
                    @for task in &tasks.rows {
                        @let state = task["state"].as_str().unwrap_or_default();
                        tr {
                            td { a href={"/ui/tasks/" (segment(task["id"].as_str().unwrap_or_default()))} { (text(&task["id"])) } }
                            td { (text(&task["name"])) }
                            td { span class=(state_class(state)) { (state_name(state)) } }
                            td { a href={"/ui/agents/" (segment(task["slave_id"].as_str().unwrap_or_default()))} { (text(&task["slave_id"])) } }
                            td { (resources(&task["resources"])) }
                        }
                    }
                }))
                (cluster::pager(&format!("/ui/frameworks/{}", segment(&id)), paging.offset, &tasks))
            }
        },
    ))
}

//! The dashboard: allocation gauges, agents, frameworks, tasks by state, the leader, recent
//! events and the allocation chart — rendered once with the page and again, whenever it
//! changes, down `/ui/live` (Server-Sent Events) for the script to swap in without a reload.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use maud::{Markup, html};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use agora_client::ClientError;

use crate::format::{state as state_name, state_class, text};
use crate::layout::{self, Flash, gauge};
use crate::{Api, Shared, lock};

pub async fn page(State(ui): State<Shared>, api: Api, Query(flash): Query<Flash>) -> Response {
    let rendered = if api.sees_all {
        live(&ui).await
    } else {
        viewers(&api).await
    };
    match rendered {
        Ok(live) => layout::page(
            "dashboard",
            "Dashboard",
            &flash,
            html! {
                h1 { "Cluster" }
                div #live data-live="/ui/live" { (live) }
            },
        )
        .into_response(),
        Err(error) => layout::client_failure("dashboard", &error),
    }
}

/// The dashboard's live part, as Server-Sent Events: a `dashboard` event with the fragment's
/// HTML on connecting, then whenever it changes — the shared render of [`render_loop`] for a
/// viewer who may see all of it, else the viewer's own, rendered each second.
pub async fn live_events(State(ui): State<Shared>, api: Api) -> Response {
    if api.sees_all {
        shared_events(ui).await.into_response()
    } else {
        own_events(api).into_response()
    }
}

/// A viewer's own dashboard, re-rendered each second and sent when it changes.
fn own_events(api: Api) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ticks = tokio::time::interval(Duration::from_secs(1));
    let stream = futures_util::stream::unfold(
        (api, ticks, String::new()),
        |(api, mut ticks, last)| async move {
            loop {
                ticks.tick().await;
                let Ok(markup) = viewers(&api).await else {
                    continue;
                };
                let fragment = markup.into_string();
                if fragment != last {
                    let event = Event::default()
                        .event("dashboard")
                        .data(fragment.replace('\r', ""));
                    return Some((Ok(event), (api, ticks, fragment)));
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn shared_events(ui: Shared) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut receiver = ui.live.subscribe();
    // The one render may not have run yet for the first viewer: render now rather than wait.
    // (The borrow ends here: it must not be held across the render's awaits.)
    let current = receiver.borrow_and_update().clone();
    let first = match current {
        fragment if !fragment.is_empty() => Some(fragment),
        _ => match live(&ui).await {
            Ok(markup) => {
                // Shared, so the loop's next render is compared with this one.
                let fragment = Arc::new(markup.into_string());
                ui.live.send_replace(fragment.clone());
                receiver.borrow_and_update();
                Some(fragment)
            }
            Err(_) => None,
        },
    };
    let stream =
        futures_util::stream::unfold((receiver, first), |(mut receiver, first)| async move {
            let fragment = match first {
                Some(fragment) => fragment,
                None => {
                    receiver.changed().await.ok()?;
                    receiver.borrow_and_update().clone()
                }
            };
            let event = Event::default()
                .event("dashboard")
                .data(fragment.replace('\r', ""));
            Some((Ok(event), (receiver, None)))
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Renders the live part once a second while anyone watches, for all of them: many open
/// dashboards cost one read of the master's state, not one each.
pub async fn render_loop(ui: Shared, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if ui.live.receiver_count() == 0 {
            // Nobody watches: what was rendered goes stale, so the next viewer renders anew.
            ui.live.send_if_modified(|current| {
                let stale = !current.is_empty();
                *current = Arc::new(String::new());
                stale
            });
            continue;
        }
        let Ok(markup) = live(&ui).await else {
            continue;
        };
        let fragment = markup.into_string();
        ui.live.send_if_modified(|current| {
            if **current == fragment {
                return false;
            }
            *current = Arc::new(fragment);
            true
        });
    }
}

/// Everything the dashboard shows that changes, read as the UI itself: for viewers who may
/// see all of it.
async fn live(ui: &Shared) -> Result<Markup, ClientError> {
    let (read, metrics) = tokio::join!(read(&ui.master), ui.master.metrics_snapshot());
    let ((leader, frameworks), metrics) = (read?, metrics?);
    let events = lock(&ui.events).latest(12);
    let samples = lock(&ui.history).samples();
    Ok(render(
        &leader,
        &frameworks,
        Some((&metrics, &samples[..])),
        Some(&events),
    ))
}

/// The leading master (`GET_MASTER`) and the frameworks the viewer may see
/// (`GET_FRAMEWORKS`): what the dashboard reads besides the metrics, none of it per task or
/// per agent.
async fn read(master: &agora_client::MasterClient) -> Result<(Value, Vec<Value>), ClientError> {
    let get_master = serde_json::json!({"type": "GET_MASTER"});
    let get_frameworks = serde_json::json!({"type": "GET_FRAMEWORKS"});
    let (leader, frameworks) = tokio::join!(
        master.operator(&get_master),
        master.operator(&get_frameworks)
    );
    let (leader, frameworks) = (leader?, frameworks?);
    let listed = frameworks["get_frameworks"]["frameworks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok((leader["get_master"].clone(), listed))
}

/// The dashboard as a viewer the ACLs restrict sees it: the state as the master shows them,
/// the cluster's allocation only if they may read the metrics, and not the recent events of
/// every app.
async fn viewers(api: &Api) -> Result<Markup, ClientError> {
    let (read, metrics) = tokio::join!(read(&api.master), api.master.metrics_snapshot());
    let (leader, frameworks) = read?;
    let metrics = metrics.ok();
    let no_history: &[crate::history::Sample] = &[];
    Ok(render(
        &leader,
        &frameworks,
        metrics.as_ref().map(|m| (m, no_history)),
        None,
    ))
}

/// Frameworks named on the dashboard; the rest are on the frameworks page.
const NAMED_FRAMEWORKS: usize = 20;

/// Task states counted on the dashboard (from the metrics: tasks that have not ended).
const LIVE_STATES: [(&str, &str); 4] = [
    ("staging", "TASK_STAGING"),
    ("starting", "TASK_STARTING"),
    ("killing", "TASK_KILLING"),
    ("unreachable", "TASK_UNREACHABLE"),
];

/// `leader` is `GET_MASTER`'s answer, `frameworks` are v1 frameworks; without the metrics (a
/// viewer who may not read them) agents and tasks are not counted.
fn render(
    leader: &Value,
    frameworks: &[Value],
    metrics: Option<(&Value, &[crate::history::Sample])>,
    events: Option<&[crate::events::RecentEvent]>,
) -> Markup {
    let count = |name: &str| -> Option<u64> {
        metrics
            .and_then(|(m, _)| m[name].as_f64())
            .map(|v| v as u64)
    };
    let shown = |name: &str| {
        count(name)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "—".into())
    };
    let active = frameworks.iter().filter(|f| f["active"] == true).count();
    let info = &leader["master_info"];
    html! {
        section.cards {
            div.card {
                h2 { a href="/ui/agents" { "Agents" } }
                p.big #agents-active { (shown("master/slaves_active")) }
                p { "active · "
                    span #agents-unreachable class=[(count("master/slaves_unreachable").unwrap_or(0) > 0).then_some("bad")] {
                        (shown("master/slaves_unreachable")) " unreachable"
                    }
                    " · " (shown("master/slaves_inactive")) " deactivated"
                }
            }
            div.card {
                h2 { a href="/ui/frameworks" { "Frameworks" } }
                p.big #frameworks-active { (active) }
                p { "active of " (frameworks.len()) ": "
                    @for (i, f) in frameworks.iter().take(NAMED_FRAMEWORKS).enumerate() {
                        @if i > 0 { ", " }
                        a href={"/ui/frameworks/" (crate::format::segment(f["framework_info"]["id"]["value"].as_str().unwrap_or_default()))} { (text(&f["framework_info"]["name"])) }
                    }
                    @if frameworks.len() > NAMED_FRAMEWORKS { ", …" }
                }
            }
            div.card {
                h2 { a href="/ui/tasks" { "Tasks" } }
                p.big #tasks-running { (shown("master/tasks_running")) }
                p #tasks-by-state { "running"
                    @for (name, state) in LIVE_STATES {
                        @if let Some(n) = count(&format!("master/tasks_{name}")).filter(|n| *n > 0) {
                            " · " span class=(state_class(state)) { (n) " " (state_name(state)) }
                        }
                    }
                }
            }
            div.card {
                h2 { "Leader" }
                p #leader { (text(&info["pid"])) }
                p.muted { "version " (text(&info["version"])) " · up since "
                    (leader["start_time"].as_f64().map(since).unwrap_or_default()) }
            }
        }
        @if let Some((metrics, samples)) = metrics {
            @let metric = |name: &str| metrics[name].as_f64().unwrap_or(0.0);
            section.cards {
                div.card.wide {
                    h2 { "Allocation" }
                    (gauge("CPU", metric("master/cpus_used"), metric("master/cpus_total"), "cpus"))
                    (gauge("Memory", metric("master/mem_used"), metric("master/mem_total"), "MB"))
                    (gauge("Disk", metric("master/disk_used"), metric("master/disk_total"), "MB"))
                }
                @if !samples.is_empty() {
                    div.card.wide {
                        h2 { "Allocation over time" }
                        (crate::chart::allocation(samples))
                    }
                }
            }
        }
        @if let Some(events) = events {
            section.cards {
                div.card.full {
                    h2 { "Recent events" }
                    @if events.is_empty() {
                        p.muted { "No events yet." }
                    } @else {
                        ul.events #events {
                            @for event in events {
                                li {
                                    time { (event.at.get(11..19).unwrap_or(&event.at)) }
                                    " " span.kind { (event.kind) } " " (event.text)
                                }
                            }
                        }
                    }
                }
            }
        }
        p.muted.updated { "Updates live." }
    }
}

/// A Mesos timestamp (seconds since the epoch) as a UTC time.
fn since(seconds: f64) -> String {
    jiff::Timestamp::from_millisecond((seconds * 1000.0) as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

//! Apps (the services API): a list with a form to deploy one, and each app's instances, health,
//! deployments and versions with scale, restart and destroy actions. Actions are plain form
//! posts, answered with a redirect that says what happened.

use axum::Form;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use agora_client::readings::{app_health, app_is_checked, app_runs, app_service_ports};

use crate::format::{app_path, items, segment, text};
use crate::layout::{self, Flash, fields, redirect, table};

fn runs(app: &Value) -> String {
    app_runs(app).unwrap_or_else(|| "—".into())
}

/// `healthy/running`, or "—" without health checks.
fn health(app: &Value) -> String {
    app_health(app).map_or("—".into(), |(healthy, running)| {
        format!("{healthy}/{running}")
    })
}

fn service_ports(app: &Value) -> String {
    let ports: Vec<String> = app_service_ports(app).iter().map(u64::to_string).collect();
    if ports.is_empty() {
        "—".into()
    } else {
        ports.join(", ")
    }
}

/// The status people look for first: deploying, or how many run of how many wanted.
fn status(app: &Value) -> (&'static str, String) {
    let running = app["tasksRunning"].as_u64().unwrap_or(0);
    let wanted = app["instances"].as_u64().unwrap_or(0);
    if app["deployments"].as_array().is_some_and(|d| !d.is_empty()) {
        ("pending", "deploying".into())
    } else if wanted == 0 {
        ("muted", "suspended".into())
    } else if running >= wanted
        && (!app_is_checked(app) || app["tasksHealthy"].as_u64() >= Some(wanted))
    {
        ("good", "running".into())
    } else {
        ("bad", "waiting".into())
    }
}

pub async fn list(api: crate::Api, Query(flash): Query<Flash>) -> Response {
    let apps = match api
        .services
        .apps(&["apps.counts", "apps.deployments"])
        .await
    {
        Ok(apps) => apps,
        Err(error) => return layout::client_failure("apps", &error),
    };
    let apps: Vec<&Value> = items(&apps, "apps").collect();
    layout::page(
        "apps",
        "Apps",
        &flash,
        html! {
            h1 { "Apps" }
            @if apps.is_empty() {
                p.muted #no-apps { "No apps yet." }
            } @else {
                (table(&["App", "Status", "Instances", "Healthy", "CPUs", "Memory", "Service ports", "Runs"], html! {
                    @for app in &apps {
                        @let id = app["id"].as_str().unwrap_or_default();
                        @let (class, label) = status(app);
                        tr data-app=(id) {
                            td { a href={"/ui/apps/" (app_path(id))} { (id) } }
                            td { span class=(class) { (label) } }
                            td.instances { (app["tasksRunning"].as_u64().unwrap_or(0)) " / " (text(&app["instances"])) }
                            td { (health(app)) }
                            td { (text(&app["cpus"])) }
                            td { (text(&app["mem"])) " MB" }
                            td { (service_ports(app)) }
                            td.cmd { code { (runs(app)) } }
                        }
                    }
                }))
            }
            (new_app_form())
        },
    )
    .into_response()
}

fn new_app_form() -> Markup {
    html! {
        details.card #new-app open {
            summary { h2 { "Deploy an app" } }
            form method="post" action="/ui/apps" {
                div.form-grid {
                    label { "ID" input name="id" placeholder="/web" required; }
                    label.span2 { "Command" input name="cmd" placeholder="python3 -m http.server $PORT0"; }
                    label { "CPUs" input name="cpus" type="number" step="0.01" min="0.01" value="0.1"; }
                    label { "Memory (MB)" input name="mem" type="number" step="1" min="1" value="32"; }
                    label { "Instances" input name="instances" type="number" min="0" value="1"; }
                }
                label.block { "…or a whole Marathon app definition (JSON; used instead of the fields above when given)"
                    textarea name="definition" rows="4" placeholder=r#"{"id": "/web", "cmd": "…", "instances": 2}"# {}
                }
                button type="submit" { "Deploy" }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct NewApp {
    #[serde(default)]
    id: String,
    #[serde(default)]
    cmd: String,
    #[serde(default)]
    cpus: String,
    #[serde(default)]
    mem: String,
    #[serde(default)]
    instances: String,
    #[serde(default)]
    definition: String,
}

impl NewApp {
    /// The app definition the form describes, or what is wrong with it.
    fn definition(&self) -> Result<Value, String> {
        if !self.definition.trim().is_empty() {
            let value: Value = serde_json::from_str(&self.definition)
                .map_err(|e| format!("The definition is not valid JSON: {e}"))?;
            return if value.is_object() {
                Ok(value)
            } else {
                Err("The definition must be a JSON object.".into())
            };
        }
        let number = |name: &str, text: &str| -> Result<Value, String> {
            text.trim()
                .parse::<f64>()
                .map(|n| json!(n))
                .map_err(|_| format!("{name} must be a number"))
        };
        let mut app = json!({
            "id": self.id.trim(),
            "cpus": number("CPUs", &self.cpus)?,
            "mem": number("Memory", &self.mem)?,
            "instances": self.instances.trim().parse::<u64>().map_err(|_| "Instances must be a whole number".to_owned())?,
        });
        if !self.cmd.trim().is_empty() {
            app["cmd"] = json!(self.cmd.trim());
        }
        Ok(app)
    }
}

/// What the API said was wrong, as one line.
fn refusal(error: &agora_client::ClientError) -> String {
    error
        .server_message()
        // Marathon's words are for its URL; here it is the checkbox.
        .map(|m| {
            m.replace('\n', " ")
                .replace("the option '?force=true'", "force")
        })
        .unwrap_or_else(|| error.to_string())
}

pub async fn create(api: crate::Api, Form(form): Form<NewApp>) -> Response {
    let definition = match form.definition() {
        Ok(definition) => definition,
        Err(problem) => return redirect("/ui/apps", Err(problem)),
    };
    match api.services.create_app(&definition, false).await {
        Ok(answer) => {
            let id = answer.body["id"].as_str().unwrap_or_default().to_owned();
            redirect(
                &format!("/ui/apps/{}", app_path(&id)),
                Ok(format!("Deploying {id}.")),
            )
        }
        Err(error) => redirect(
            "/ui/apps",
            Err(format!("Cannot deploy: {}", refusal(&error))),
        ),
    }
}

#[derive(Deserialize)]
pub struct Action {
    action: String,
    #[serde(default)]
    instances: Option<String>,
    /// A checkbox: present when ticked.
    #[serde(default)]
    force: Option<String>,
}

pub async fn act(api: crate::Api, Path(id): Path<String>, Form(action): Form<Action>) -> Response {
    let id = format!("/{}", id.trim_matches('/'));
    let page = format!("/ui/apps/{}", app_path(&id));
    let force = action.force.is_some();
    let result = match action.action.as_str() {
        "scale" => {
            let Some(instances) = action
                .instances
                .as_deref()
                .and_then(|n| n.trim().parse::<u32>().ok())
            else {
                return redirect(&page, Err("Instances must be a whole number.".into()));
            };
            api.services
                .scale_app(&id, instances, force)
                .await
                .map(|_| format!("Scaling {id} to {instances}."))
        }
        "restart" => api
            .services
            .restart_app(&id, force)
            .await
            .map(|_| format!("Restarting {id}.")),
        "destroy" => {
            return match api.services.remove_app(&id, force).await {
                Ok(_) => redirect("/ui/apps", Ok(format!("Destroying {id}."))),
                Err(error) => redirect(
                    &page,
                    Err(format!("Cannot destroy {id}: {}", refusal(&error))),
                ),
            };
        }
        other => return redirect(&page, Err(format!("Unknown action {other}."))),
    };
    redirect(
        &page,
        result.map_err(|e| format!("Cannot change {id}: {}", refusal(&e))),
    )
}

pub async fn show(api: crate::Api, Path(id): Path<String>, Query(flash): Query<Flash>) -> Response {
    let id = format!("/{}", id.trim_matches('/'));
    let answer = match api.services.app(&id, &[]).await {
        Ok(answer) => answer,
        Err(error) => return layout::client_failure("apps", &error),
    };
    let app = &answer["app"];
    let versions = api.services.app_versions(&id).await.unwrap_or_default();
    let deployments = api.services.deployments().await.unwrap_or_default();
    let deployments: Vec<&Value> = deployments
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| items(d, "affectedApps").any(|a| a == id.as_str()))
        .collect();
    let tasks: Vec<&Value> = items(app, "tasks").collect();
    let (class, label) = status(app);
    layout::page(
        "apps",
        &format!("App {id}"),
        &flash,
        html! {
            h1 { "App " (id) " " span class={"badge " (class)} #app-status { (label) } }
            (fields(&[
                ("Runs", html! { code { (runs(app)) } }),
                ("Instances", html! { span #instances { (app["tasksRunning"].as_u64().unwrap_or(0)) " running, " (app["tasksStaged"].as_u64().unwrap_or(0)) " staged, " (text(&app["instances"])) " wanted" } }),
                ("Healthy", html! { (health(app)) }),
                ("Resources", html! { (text(&app["cpus"])) " cpus · " (text(&app["mem"])) " MB · " (text(&app["disk"])) " MB disk" }),
                ("Service ports", html! { (service_ports(app)) }),
                ("Version", html! { (text(&app["version"])) }),
                ("Last failure", html! {
                    @match app["lastTaskFailure"].as_object() {
                        Some(failure) => { (text(&failure["taskId"].clone())) ": " (text(&failure["state"].clone())) " — " (text(&failure["message"].clone())) },
                        None => "—",
                    }
                }),
            ]))
            section.actions.card {
                // One form, one button per action: "force" goes with whichever is pressed.
                form method="post" action={"/ui/apps/" (app_path(&id))} .inline #scale-form {
                    label { "Instances " input name="instances" type="number" min="0" value=(text(&app["instances"])); }
                    button type="submit" name="action" value="scale" { "Scale" }
                    // Only Scale reads the number: the others go whatever it holds.
                    button type="submit" name="action" value="restart" formnovalidate { "Restart" }
                    button.danger type="submit" name="action" value="destroy" formnovalidate data-confirm={"Destroy " (id) " and kill its tasks?"} { "Destroy" }
                    label.force title="Override a deployment in progress on this app" {
                        input type="checkbox" name="force" value="true"; " force"
                    }
                }
            }
            h2 { "Instances" }
            @if tasks.is_empty() {
                p.muted { "No instances." }
            } @else {
                (table(&["Task", "State", "Host", "Ports", "Health", "Started"], html! {
                    @for task in &tasks {
                        @let results: Vec<&Value> = items(task, "healthCheckResults").collect();
                        tr {
                            td { a href={"/ui/tasks/" (segment(task["id"].as_str().unwrap_or_default()))} { (text(&task["id"])) } }
                            td { (crate::format::state(task["state"].as_str().unwrap_or_default())) }
                            td { (text(&task["host"])) }
                            td { (items(task, "ports").map(text).collect::<Vec<_>>().join(", ")) }
                            td {
                                @if results.is_empty() { "—" }
                                @else if results.iter().all(|r| r["alive"] == true) { span.good { "healthy" } }
                                @else { span.bad { "unhealthy" } }
                            }
                            td { (text(&task["startedAt"])) }
                        }
                    }
                }))
            }
            h2 { "Deployments" }
            @if deployments.is_empty() {
                p.muted { "None in progress." }
            } @else {
                (table(&["Deployment", "Step", "Actions", ""], html! {
                    @for deployment in &deployments {
                        @let deployment_id = deployment["id"].as_str().unwrap_or_default();
                        tr {
                            td { (deployment_id) }
                            td { (text(&deployment["currentStep"])) " / " (text(&deployment["totalSteps"])) }
                            td { (items(deployment, "currentActions").map(|a| format!("{} {}", text(&a["action"]), text(&a["app"]))).collect::<Vec<_>>().join(", ")) }
                            td {
                                form.inline method="post" action={"/ui/deployments/" (segment(deployment_id))} {
                                    input type="hidden" name="back" value={"/ui/apps/" (app_path(&id))};
                                    button type="submit" name="action" value="rollback" title="Cancel it; a new deployment takes its apps back" { "Roll back" }
                                    button.danger type="submit" name="action" value="stop" title="Cancel it; its apps stay as they are" data-confirm="Stop this deployment where it stands?" { "Stop" }
                                }
                            }
                        }
                    }
                }))
            }
            h2 { "Versions" }
            ol.versions {
                @for (index, version) in items(&versions, "versions").enumerate() {
                    li { (text(version)) @if index == 0 { " " span.muted { "(current)" } } }
                }
            }
        },
    )
    .into_response()
}

#[derive(Deserialize)]
pub struct DeploymentAction {
    action: String,
    #[serde(default)]
    back: String,
}

/// Rolls a deployment back (a new deployment undoes it) or stops it where it stands.
pub async fn deployment(
    api: crate::Api,
    Path(id): Path<String>,
    Form(form): Form<DeploymentAction>,
) -> Response {
    // Only back to one of the UI's pages.
    let back = if form.back.starts_with("/ui/") && !form.back.starts_with("//") {
        form.back.clone()
    } else {
        "/ui/apps".to_owned()
    };
    let result = match form.action.as_str() {
        "rollback" => api
            .services
            .cancel_deployment(&id, false)
            .await
            .map(|_| format!("Deployment {id} is cancelled and rolled back.")),
        "stop" => api
            .services
            .cancel_deployment(&id, true)
            .await
            .map(|_| format!("Deployment {id} is stopped.")),
        other => return redirect(&back, Err(format!("Unknown action {other}."))),
    };
    redirect(
        &back,
        result.map_err(|e| format!("Cannot change deployment {id}: {}", refusal(&e))),
    )
}

//! Metronome's job JSON (`/v1/jobs`): a job with a `run` spec, its cron `schedules`, and how it
//! maps onto the Chronos model the jobs scheduler keeps. Errors name the field at fault.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::chronos::{EnvironmentVariable, Fetch, FieldError, Job};

mod defaults {
    pub fn cpus() -> f64 {
        1.0
    }
    pub fn mem() -> f64 {
        128.0
    }
    pub fn utc() -> String {
        "UTC".into()
    }
    pub fn deadline() -> i64 {
        900
    }
    pub fn allow() -> String {
        "ALLOW".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn never() -> String {
        "NEVER".into()
    }
    pub fn max_launch_delay() -> i64 {
        3600
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub uri: String,
    #[serde(default)]
    pub extract: bool,
    #[serde(default)]
    pub executable: bool,
    #[serde(default)]
    pub cache: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementConstraint {
    pub attribute: String,
    pub operator: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    #[serde(default)]
    pub constraints: Vec<PlacementConstraint>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Restart {
    #[serde(default = "defaults::never")]
    pub policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
}

impl Default for Restart {
    fn default() -> Restart {
        Restart {
            policy: defaults::never(),
            active_deadline_seconds: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default = "defaults::cpus")]
    pub cpus: f64,
    #[serde(default = "defaults::mem")]
    pub mem: f64,
    #[serde(default)]
    pub disk: f64,
    #[serde(default)]
    pub gpus: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default)]
    pub env: Map<String, Value>,
    /// What `{"secret": name}` env values name: `{"source": "team-a/db-password"}`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub secrets: Map<String, Value>,
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    #[serde(default)]
    pub placement: Placement,
    #[serde(default = "defaults::max_launch_delay")]
    pub max_launch_delay: i64,
    #[serde(default)]
    pub restart: Restart,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_kill_grace_period_seconds: Option<f64>,
}

/// A Metronome job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: Map<String, Value>,
    pub run: RunSpec,
}

/// A cron schedule of a Metronome job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    pub id: String,
    pub cron: String,
    #[serde(default = "defaults::utc")]
    pub timezone: String,
    #[serde(default = "defaults::deadline")]
    pub starting_deadline_seconds: i64,
    #[serde(default = "defaults::allow")]
    pub concurrency_policy: String,
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
}

fn read<T: serde::de::DeserializeOwned>(body: &Value, what: &str) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(body.clone()).map_err(|e| {
        let path = e.path().to_string();
        FieldError {
            field: if path == "." { what.to_owned() } else { path },
            message: e.inner().to_string(),
        }
    })
}

impl JobSpec {
    /// Reads a job (a `schedules` array in it, as `/v0/scheduled-jobs` had, is the caller's).
    pub fn parse(body: &Value) -> Result<JobSpec, FieldError> {
        let mut body = body.clone();
        if let Value::Object(fields) = &mut body {
            fields.remove("schedules");
            fields.remove("activeRuns");
            fields.remove("history");
            fields.remove("historySummary");
        }
        let spec: JobSpec = read(&body, "job")?;
        let id_ok = !spec.id.is_empty()
            && spec.id.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            });
        if !id_ok {
            return Err(FieldError::new(
                "id",
                "lower-case letters, digits and '-', in parts joined by '.'",
            ));
        }
        if spec.run.cmd.as_deref().is_none_or(|c| c.trim().is_empty())
            && spec.run.args.as_ref().is_none_or(Vec::is_empty)
            && spec.run.docker.is_none()
        {
            return Err(FieldError::new("run", "needs cmd, args or docker"));
        }
        for (field, value) in [
            ("run.cpus", spec.run.cpus),
            ("run.mem", spec.run.mem),
            ("run.disk", spec.run.disk),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(FieldError::new(field, "must be a number of at least 0"));
            }
        }
        for (name, value) in &spec.run.env {
            match value.get("secret") {
                _ if value.is_string() => {}
                Some(Value::String(secret)) if spec.run.secrets.contains_key(secret) => {}
                Some(Value::String(secret)) => {
                    return Err(FieldError::new(
                        &format!("run.env.{name}"),
                        format!("references an undefined secret named '{secret}'"),
                    ));
                }
                _ => {
                    return Err(FieldError::new(
                        &format!("run.env.{name}"),
                        "must be a string or {\"secret\": name}",
                    ));
                }
            }
        }
        for (name, secret) in &spec.run.secrets {
            if !secret.get("source").is_some_and(Value::is_string) {
                return Err(FieldError::new(
                    &format!("run.secrets.{name}.source"),
                    "must be a string",
                ));
            }
        }
        if !matches!(spec.run.restart.policy.as_str(), "NEVER" | "ON_FAILURE") {
            return Err(FieldError::new("run.restart.policy", "NEVER or ON_FAILURE"));
        }
        for (index, constraint) in spec.run.placement.constraints.iter().enumerate() {
            if !matches!(
                constraint.operator.as_str(),
                "EQ" | "IS" | "LIKE" | "UNLIKE"
            ) {
                return Err(FieldError::new(
                    &format!("run.placement.constraints[{index}].operator"),
                    "EQ, IS, LIKE or UNLIKE",
                ));
            }
        }
        Ok(spec)
    }

    /// The Chronos-model job the scheduler runs: `retries` from the restart policy, resources,
    /// environment, artifacts and constraints carried over. The schedule is the caller's.
    pub fn to_job(&self, concurrent: bool) -> Job {
        let run = &self.run;
        let (command, shell, arguments) = match (&run.cmd, &run.args) {
            (Some(cmd), _) => (cmd.clone(), true, Vec::new()),
            (None, Some(args)) if !args.is_empty() => (args[0].clone(), false, args[1..].to_vec()),
            _ => ("true".to_owned(), true, Vec::new()),
        };
        let environment_variables = run
            .env
            .iter()
            .filter_map(|(name, value)| match value {
                Value::String(v) => Some(EnvironmentVariable {
                    name: name.clone(),
                    value: v.clone(),
                    secret: None,
                }),
                // Checked by `parse`: a declared secret with a source.
                _ => {
                    let secret = value.get("secret")?.as_str()?;
                    let source = run.secrets.get(secret)?.get("source")?.as_str()?;
                    Some(EnvironmentVariable {
                        name: name.clone(),
                        value: String::new(),
                        secret: Some(source.to_owned()),
                    })
                }
            })
            .collect();
        Job {
            name: self.id.clone(),
            command,
            shell,
            arguments,
            schedule: None,
            schedule_time_zone: String::new(),
            parents: Vec::new(),
            epsilon: "PT15M".into(),
            // Metronome retries a failed run while the policy says so; a bound keeps a broken
            // job from retrying forever.
            retries: if run.restart.policy == "ON_FAILURE" {
                3
            } else {
                0
            },
            is_async: false,
            disabled: false,
            concurrent,
            soft_error: false,
            high_priority: false,
            data_processing_job_type: false,
            owner: String::new(),
            owner_name: String::new(),
            description: self.description.clone(),
            cpus: run.cpus,
            mem: run.mem,
            disk: run.disk,
            uris: Vec::new(),
            fetch: run
                .artifacts
                .iter()
                .map(|a| Fetch {
                    uri: a.uri.clone(),
                    executable: a.executable,
                    extract: a.extract,
                    cache: a.cache,
                })
                .collect(),
            environment_variables,
            run_as_user: run.user.clone().unwrap_or_default(),
            executor: String::new(),
            executor_flags: String::new(),
            task_info_data: String::new(),
            max_completion_time: run.restart.active_deadline_seconds.unwrap_or(0),
            constraints: run
                .placement
                .constraints
                .iter()
                .map(|c| {
                    let operator = match c.operator.as_str() {
                        "EQ" | "IS" => "EQUALS",
                        other => other,
                    };
                    vec![c.attribute.clone(), operator.to_owned(), c.value.clone()]
                })
                .collect(),
            // Chronos' flat container shape, from Metronome's `docker`.
            container: run.docker.as_ref().map(|docker| {
                let mut container = docker.clone();
                if let Value::Object(fields) = &mut container {
                    fields.insert("type".into(), Value::String("DOCKER".into()));
                }
                container
            }),
        }
    }
}

impl ScheduleSpec {
    /// Reads a schedule; the cron expression and zone are checked by the scheduler.
    pub fn parse(body: &Value) -> Result<ScheduleSpec, FieldError> {
        let spec: ScheduleSpec = read(body, "schedule")?;
        if spec.id.trim().is_empty() {
            return Err(FieldError::new("id", "is required"));
        }
        if !matches!(spec.concurrency_policy.as_str(), "ALLOW" | "FORBID") {
            return Err(FieldError::new("concurrencyPolicy", "ALLOW or FORBID"));
        }
        if spec.starting_deadline_seconds < 1 {
            return Err(FieldError::new(
                "startingDeadlineSeconds",
                "must be at least 1",
            ));
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_secrets_name_declared_secrets_and_nothing_is_dropped() {
        let spec = JobSpec::parse(&json!({"id": "team.backup", "run": {"cmd": "x",
            "env": {"A": "plain", "B": {"secret": "db"}},
            "secrets": {"db": {"source": "team/db"}}}}))
        .expect("spec");
        let job = spec.to_job(false);
        let b = job.environment_variables.iter().find(|v| v.name == "B");
        assert_eq!(b.and_then(|v| v.secret.as_deref()), Some("team/db"));
        let field = |run: Value| {
            JobSpec::parse(&json!({"id": "j", "run": run}))
                .map(drop)
                .unwrap_err()
                .field
        };
        assert_eq!(
            field(json!({"cmd": "x", "env": {"B": {"secret": "none"}}})),
            "run.env.B"
        );
        assert_eq!(field(json!({"cmd": "x", "env": {"B": 3}})), "run.env.B");
        assert_eq!(
            field(json!({"cmd": "x", "env": {"B": {"secret": "s"}}, "secrets": {"s": {}}})),
            "run.secrets.s.source"
        );
    }

    #[test]
    fn a_job_maps_onto_the_chronos_model() {
        let spec = JobSpec::parse(&json!({
            "id": "prod.backup",
            "run": {"cmd": "backup.sh", "cpus": 0.5, "mem": 64, "env": {"MODE": "full"},
                    "restart": {"policy": "ON_FAILURE"},
                    "placement": {"constraints": [{"attribute": "rack", "operator": "EQ", "value": "a"}]}},
            "schedules": [{"id": "nightly", "cron": "0 2 * * *"}]
        }))
        .expect("spec");
        let job = spec.to_job(false);
        assert_eq!(
            (job.name.as_str(), job.command.as_str(), job.shell),
            ("prod.backup", "backup.sh", true)
        );
        assert_eq!(job.retries, 3);
        assert_eq!(
            job.constraints,
            vec![vec!["rack".to_owned(), "EQUALS".into(), "a".into()]]
        );
        assert_eq!(job.environment_variables[0].name, "MODE");
        let schedule =
            ScheduleSpec::parse(&json!({"id": "nightly", "cron": "0 2 * * *"})).expect("schedule");
        assert_eq!(schedule.timezone, "UTC");
        assert_eq!(schedule.starting_deadline_seconds, 900);
        assert_eq!(schedule.concurrency_policy, "ALLOW");
    }

    #[test]
    fn problems_name_their_field() {
        let field = |body: Value| JobSpec::parse(&body).expect_err("refused").field;
        assert_eq!(field(json!({"run": {"cmd": "x"}})), "id");
        assert_eq!(field(json!({"id": "Bad_Id", "run": {"cmd": "x"}})), "id");
        assert_eq!(field(json!({"id": "a", "run": {}})), "run");
        assert_eq!(
            field(json!({"id": "a", "run": {"cmd": "x", "mem": -1}})),
            "run.mem"
        );
        assert_eq!(
            field(json!({"id": "a", "run": {"cmd": "x", "restart": {"policy": "ALWAYS"}}})),
            "run.restart.policy"
        );
        let schedule = |body: Value| ScheduleSpec::parse(&body).expect_err("refused").field;
        assert_eq!(schedule(json!({"id": "s"})), "schedule");
        assert_eq!(
            schedule(json!({"id": "s", "cron": "* * * * *", "concurrencyPolicy": "MAYBE"})),
            "concurrencyPolicy"
        );
    }
}

//! The Chronos job JSON: parsing with Chronos' defaults, shape validation that names the field
//! at fault (Chronos answers 400 with a `message`), and the JSON Chronos answers with, status
//! fields included. Schedules and parents are checked by the jobs scheduler, which knows the
//! other jobs and the time.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod defaults {
    pub fn yes() -> bool {
        true
    }
    pub fn epsilon() -> String {
        "PT60S".into()
    }
    pub fn retries() -> i64 {
        2
    }
}

/// What a task of this job asks for when the job says 0 (Chronos' flag defaults).
pub const DEFAULT_CPUS: f64 = 0.1;
pub const DEFAULT_MEM: f64 = 128.0;
pub const DEFAULT_DISK: f64 = 256.0;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fetch {
    pub uri: String,
    #[serde(default)]
    pub executable: bool,
    #[serde(default = "defaults::yes")]
    pub extract: bool,
    #[serde(default)]
    pub cache: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentVariable {
    pub name: String,
    #[serde(default)]
    pub value: String,
    /// agora's own: the value is the secret of this name in `--secrets-dir`, read by the
    /// agent that runs the task (Metronome's `{"secret": …}` env values become this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A Chronos job definition (what clients send; the status fields are kept apart).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub command: String,
    #[serde(default = "defaults::yes")]
    pub shell: bool,
    #[serde(default)]
    pub arguments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schedule_time_zone: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    #[serde(default = "defaults::epsilon")]
    pub epsilon: String,
    #[serde(default = "defaults::retries")]
    pub retries: i64,
    #[serde(default, rename = "async")]
    pub is_async: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub concurrent: bool,
    #[serde(default)]
    pub soft_error: bool,
    #[serde(default)]
    pub high_priority: bool,
    #[serde(default)]
    pub data_processing_job_type: bool,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub owner_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub cpus: f64,
    #[serde(default)]
    pub mem: f64,
    #[serde(default)]
    pub disk: f64,
    #[serde(default)]
    pub uris: Vec<String>,
    #[serde(default)]
    pub fetch: Vec<Fetch>,
    #[serde(default)]
    pub environment_variables: Vec<EnvironmentVariable>,
    #[serde(default)]
    pub run_as_user: String,
    #[serde(default)]
    pub executor: String,
    #[serde(default)]
    pub executor_flags: String,
    #[serde(default)]
    pub task_info_data: String,
    /// Seconds a run may take before it is killed (0: no limit).
    #[serde(default)]
    pub max_completion_time: i64,
    /// `[attribute, EQUALS | LIKE | UNLIKE, value]` each.
    #[serde(default)]
    pub constraints: Vec<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
}

/// The counts and times Chronos reports with each job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub success_count: u64,
    pub error_count: u64,
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, or empty before the first.
    pub last_success: String,
    pub last_error: String,
    pub errors_since_last_success: u64,
}

/// A field and what is wrong with it; Chronos' 400 body is `{"message": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// Chronos' error body.
    pub fn to_json(&self) -> Value {
        json!({"message": self.to_string()})
    }
}

/// Read-only fields a client may send back (chronos-python updates with a job it read).
const READ_ONLY: [&str; 5] = [
    "successCount",
    "errorCount",
    "lastSuccess",
    "lastError",
    "errorsSinceLastSuccess",
];

impl Job {
    /// Reads a job with Chronos' defaults and checks its shape: the name, the command, numbers,
    /// fetch entries, constraints and the container. Read-only status fields are ignored.
    pub fn parse(body: &Value) -> Result<Job, FieldError> {
        let Value::Object(fields) = body else {
            return Err(FieldError::new("job", "expected a JSON object"));
        };
        let mut fields = fields.clone();
        for name in READ_ONLY {
            fields.remove(name);
        }
        let job: Job = serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "job".into() } else { path };
            FieldError {
                field,
                message: e.inner().to_string(),
            }
        })?;
        job.check()?;
        Ok(job)
    }

    fn check(&self) -> Result<(), FieldError> {
        if self.name.trim().is_empty() {
            return Err(FieldError::new("name", "is required"));
        }
        if !self
            .name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(FieldError::new(
                "name",
                format!(
                    "{:?} may hold only letters, digits, '_', '.' and '-'",
                    self.name
                ),
            ));
        }
        if self.command.trim().is_empty() && self.container.is_none() {
            return Err(FieldError::new("command", "is required"));
        }
        if self.retries < 0 {
            return Err(FieldError::new("retries", "must not be negative"));
        }
        if self.max_completion_time < 0 {
            return Err(FieldError::new("maxCompletionTime", "must not be negative"));
        }
        for (field, value) in [("cpus", self.cpus), ("mem", self.mem), ("disk", self.disk)] {
            if !value.is_finite() || value < 0.0 {
                return Err(FieldError::new(field, "must be a number of at least 0"));
            }
        }
        if self.schedule.is_some() && !self.parents.is_empty() {
            return Err(FieldError::new(
                "parents",
                "a job has a schedule or parents, not both",
            ));
        }
        if self.parents.iter().any(|p| p == &self.name) {
            return Err(FieldError::new("parents", "a job cannot be its own parent"));
        }
        for (index, variable) in self.environment_variables.iter().enumerate() {
            if variable.secret.is_some() && !variable.value.is_empty() {
                return Err(FieldError::new(
                    &format!("environmentVariables[{index}]"),
                    "has a value or a secret, not both",
                ));
            }
        }
        for (index, fetch) in self.fetch.iter().enumerate() {
            if fetch.uri.trim().is_empty() {
                return Err(FieldError::new(
                    &format!("fetch[{index}].uri"),
                    "is required",
                ));
            }
        }
        for (index, constraint) in self.constraints.iter().enumerate() {
            let field = format!("constraints[{index}]");
            match constraint.as_slice() {
                [attribute, operator, _]
                    if !attribute.is_empty()
                        && matches!(operator.as_str(), "EQUALS" | "LIKE" | "UNLIKE") => {}
                [_, operator, _] => {
                    return Err(FieldError::new(
                        &field,
                        format!("unknown operator {operator:?}: EQUALS, LIKE or UNLIKE"),
                    ));
                }
                _ => {
                    return Err(FieldError::new(
                        &field,
                        "expected [attribute, operator, value]",
                    ));
                }
            }
        }
        if let Some(container) = &self.container {
            match container.get("type").and_then(Value::as_str) {
                Some("DOCKER" | "MESOS") => {}
                Some(other) => {
                    return Err(FieldError::new(
                        "container.type",
                        format!("unknown type {other:?}: DOCKER or MESOS"),
                    ));
                }
                None => return Err(FieldError::new("container.type", "is required")),
            }
            if container
                .get("image")
                .and_then(Value::as_str)
                .is_none_or(|image| image.trim().is_empty())
            {
                return Err(FieldError::new("container.image", "is required"));
            }
        }
        Ok(())
    }

    /// The resources a run asks for: the job's, or Chronos' defaults where it says 0.
    pub fn resources(&self) -> (f64, f64, f64) {
        let or = |value: f64, default: f64| if value > 0.0 { value } else { default };
        (
            or(self.cpus, DEFAULT_CPUS),
            or(self.mem, DEFAULT_MEM),
            or(self.disk, DEFAULT_DISK),
        )
    }

    /// Every URI to fetch: `fetch` entries, then the deprecated `uris` (extracted, as Chronos
    /// did).
    pub fn all_fetches(&self) -> Vec<Fetch> {
        let mut all = self.fetch.clone();
        all.extend(self.uris.iter().map(|uri| Fetch {
            uri: uri.clone(),
            executable: false,
            extract: true,
            cache: false,
        }));
        all
    }

    /// The job's container as Mesos' `ContainerInfo` (Chronos' flat container shape, read
    /// through Marathon's conversion): the agent receives it as it receives an app's.
    pub fn mesos_container(&self) -> Option<Value> {
        let container = self.container.as_ref()?;
        let field = |key: &str| container.get(key).cloned().unwrap_or(Value::Null);
        let marathon = json!({
            "type": field("type"),
            "docker": {
                "image": field("image"),
                "network": container.get("network").cloned().unwrap_or(json!("HOST")),
                "forcePullImage": container.get("forcePullImage").cloned().unwrap_or(json!(false)),
                "parameters": container.get("parameters").cloned().unwrap_or(json!([])),
                // Metronome's `docker.privileged` (Chronos has none).
                "privileged": container.get("privileged").cloned().unwrap_or(json!(false)),
            },
            "volumes": container.get("volumes").cloned().unwrap_or(json!([])),
        });
        Some(crate::marathon::container::to_mesos(&marathon, &[]))
    }

    /// The JSON Chronos answers with: the definition and its status fields.
    pub fn to_json(&self, status: &JobStatus) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Value::Object(fields) = &mut value {
            fields.insert("successCount".into(), json!(status.success_count));
            fields.insert("errorCount".into(), json!(status.error_count));
            fields.insert("lastSuccess".into(), json!(status.last_success));
            fields.insert("lastError".into(), json!(status.last_error));
            fields.insert(
                "errorsSinceLastSuccess".into(),
                json!(status.errors_since_last_success),
            );
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: Value) -> String {
        match Job::parse(&body) {
            Err(error) => error.field,
            Ok(job) => panic!("accepted: {job:?}"),
        }
    }

    #[test]
    fn defaults_are_chronos_own() {
        let job = Job::parse(&json!({
            "name": "backup", "command": "tar czf /tmp/b.tgz /etc",
            "schedule": "R/2014-03-08T20:00:00.000Z/PT2M", "owner": "ops@example.com"
        }))
        .expect("job");
        assert!(job.shell);
        assert_eq!(job.retries, 2);
        assert_eq!(job.epsilon, "PT60S");
        assert_eq!(job.resources(), (0.1, 128.0, 256.0));
        assert!(!job.disabled && !job.is_async && !job.concurrent);
    }

    #[test]
    fn status_fields_sent_back_are_ignored_and_answered() {
        let sent = json!({
            "name": "report", "command": "make report", "parents": ["etl"],
            "successCount": 99, "lastError": "2020-01-01T00:00:00.000Z", "async": false,
        });
        let job = Job::parse(&sent).expect("job");
        let status = JobStatus {
            success_count: 3,
            ..JobStatus::default()
        };
        let answered = job.to_json(&status);
        assert_eq!(answered["successCount"], 3);
        assert_eq!(answered["lastError"], "");
        assert_eq!(answered["parents"], json!(["etl"]));
        assert!(answered.get("schedule").is_none());
        assert_eq!(Job::parse(&answered).expect("round trip"), job);
    }

    #[test]
    fn every_problem_names_its_field() {
        assert_eq!(field_of(json!([])), "job");
        assert_eq!(field_of(json!({"command": "x"})), "name");
        assert_eq!(field_of(json!({"name": "a b", "command": "x"})), "name");
        assert_eq!(field_of(json!({"name": "a"})), "command");
        assert_eq!(
            field_of(json!({"name": "a", "command": "x", "retries": -1})),
            "retries"
        );
        assert_eq!(
            field_of(json!({"name": "a", "command": "x", "cpus": "many"})),
            "cpus"
        );
        assert_eq!(
            field_of(json!({"name": "a", "command": "x", "mem": -5})),
            "mem"
        );
        assert_eq!(
            field_of(
                json!({"name": "a", "command": "x", "schedule": "R/2020-01-01T00:00:00Z/P1D", "parents": ["b"]})
            ),
            "parents"
        );
        assert_eq!(
            field_of(json!({"name": "a", "command": "x", "parents": ["a"]})),
            "parents"
        );
        assert_eq!(
            field_of(json!({"name": "a", "command": "x", "fetch": [{"uri": ""}]})),
            "fetch[0].uri"
        );
        assert_eq!(
            field_of(json!({"name": "a", "command": "x", "constraints": [["rack", "NEAR", "1"]]})),
            "constraints[0]"
        );
        assert_eq!(
            field_of(
                json!({"name": "a", "command": "x", "container": {"type": "RKT", "image": "i"}})
            ),
            "container.type"
        );
        assert_eq!(
            field_of(json!({"name": "a", "command": "x", "container": {"type": "DOCKER"}})),
            "container.image"
        );
        let docker = Job::parse(&json!({
            "name": "d", "command": "run", "container": {"type": "DOCKER", "image": "busybox",
            "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "RO"}]}
        }))
        .expect("job");
        let info = docker.mesos_container().expect("container");
        assert_eq!(info["docker"]["image"], "busybox");
        assert_eq!(info["volumes"][0]["host_path"], "/srv");
        let error = Job::parse(&json!({"command": "x"})).expect_err("no name");
        assert_eq!(error.to_json(), json!({"message": "name: is required"}));
    }
}

//! What a Docker task may ask of its host (`--docker-allow`): by default nothing that reaches
//! past its container — no `privileged`, no host pid, ipc or uts namespace, no added
//! capabilities, security options or other runtimes, no host directory but its own sandbox's.
//! Each can be allowed: `privileged`, `host-pid`, `host-ipc`, `host-uts`, `cap-add`,
//! `security-opt`, `runtime`, and `host-volumes=/data:/srv` (host paths under those
//! directories). The check reads a task's Mesos `ContainerInfo` (what every API's container
//! becomes), so the APIs (422) and the agent (TASK_ERROR) decide alike. Pure.

use serde_json::Value;

/// What Docker tasks may ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DockerPolicy {
    pub privileged: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    pub host_uts: bool,
    pub cap_add: bool,
    pub security_opt: bool,
    pub runtime: bool,
    /// Host directories whose paths (and everything under them) volumes may name.
    pub host_volumes: Vec<String>,
}

/// Where in the container a refused ask is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Privileged,
    /// The i-th of `docker.parameters`.
    Parameter(usize),
    /// The i-th of `volumes`.
    Volume(usize),
}

/// One thing the policy does not allow, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub field: Field,
    pub reason: String,
}

impl DockerPolicy {
    /// `privileged,host-pid,cap-add,host-volumes=/data:/srv` (empty or `none`: nothing).
    pub fn parse(text: &str) -> Result<DockerPolicy, String> {
        let mut policy = DockerPolicy::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item {
                "none" => {}
                "privileged" => policy.privileged = true,
                "host-pid" => policy.host_pid = true,
                "host-ipc" => policy.host_ipc = true,
                "host-uts" => policy.host_uts = true,
                "cap-add" => policy.cap_add = true,
                "security-opt" => policy.security_opt = true,
                "runtime" => policy.runtime = true,
                _ => match item.strip_prefix("host-volumes=") {
                    Some(paths) => {
                        for path in paths.split(':').filter(|p| !p.is_empty()) {
                            if !path.starts_with('/') || path.split('/').any(|s| s == "..") {
                                return Err(format!(
                                    "host-volumes: '{path}' is not an absolute path"
                                ));
                            }
                            policy
                                .host_volumes
                                .push(path.trim_end_matches('/').to_owned());
                        }
                    }
                    None => {
                        return Err(format!(
                            "'{item}' is not something Docker tasks can be allowed: use \
                             privileged, host-pid, host-ipc, host-uts, cap-add, security-opt, \
                             runtime or host-volumes=/a:/b"
                        ));
                    }
                },
            }
        }
        Ok(policy)
    }

    /// What a Mesos `ContainerInfo` asks that the policy does not allow (none for a
    /// container that is not Docker's).
    pub fn refusals(&self, container: &Value) -> Vec<Refusal> {
        let mut refused = Vec::new();
        if container.get("type").and_then(Value::as_str) != Some("DOCKER") {
            return refused;
        }
        let docker = container.get("docker").unwrap_or(&Value::Null);
        if docker.get("privileged").and_then(Value::as_bool) == Some(true) && !self.privileged {
            refused.push(Refusal {
                field: Field::Privileged,
                reason: "privileged containers are not allowed (--docker-allow privileged)".into(),
            });
        }
        let parameters = docker.get("parameters").and_then(Value::as_array);
        for (index, parameter) in parameters.into_iter().flatten().enumerate() {
            let key = parameter
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim_start_matches('-');
            let value = parameter.get("value").and_then(Value::as_str).unwrap_or("");
            if let Some(reason) = self.parameter(key, value) {
                refused.push(Refusal {
                    field: Field::Parameter(index),
                    reason,
                });
            }
        }
        let volumes = container.get("volumes").and_then(Value::as_array);
        for (index, volume) in volumes.into_iter().flatten().enumerate() {
            let host = volume
                .get("host_path")
                .or_else(|| volume.get("hostPath"))
                .and_then(Value::as_str);
            if let Some(reason) = host.and_then(|path| self.host_path(path)) {
                refused.push(Refusal {
                    field: Field::Volume(index),
                    reason,
                });
            }
        }
        refused
    }

    fn parameter(&self, key: &str, value: &str) -> Option<String> {
        // Another container's namespace is as much outside this one as the host's.
        let host_mode = |allowed: bool, flag: &str| {
            let shared = value == "host" || value.starts_with("container:");
            (shared && !allowed).then(|| {
                format!("sharing the host's or another container's {key} namespace is not allowed (--docker-allow {flag})")
            })
        };
        match key {
            "privileged" if value != "false" && !self.privileged => {
                Some("privileged containers are not allowed (--docker-allow privileged)".into())
            }
            "pid" => host_mode(self.host_pid, "host-pid"),
            "ipc" => host_mode(self.host_ipc, "host-ipc"),
            "uts" => host_mode(self.host_uts, "host-uts"),
            "cap-add" if !self.cap_add => {
                Some("adding capabilities is not allowed (--docker-allow cap-add)".into())
            }
            "security-opt" if !self.security_opt => {
                Some("security options are not allowed (--docker-allow security-opt)".into())
            }
            "runtime" if !self.runtime => {
                Some("choosing a runtime is not allowed (--docker-allow runtime)".into())
            }
            "volume" | "v" => {
                let source = value.split(':').next().unwrap_or("");
                // A named volume is Docker's, not a host directory.
                (source.starts_with('/') || source.starts_with('.'))
                    .then(|| self.host_path(source))
                    .flatten()
            }
            _ => None,
        }
    }

    /// Why a volume's host path is not allowed: outside the sandbox (relative paths are the
    /// sandbox's, and may not climb out of it) and outside the allowed directories.
    fn host_path(&self, path: &str) -> Option<String> {
        if path.split('/').any(|segment| segment == "..") {
            return Some(format!(
                "host path '{path}' climbs out of where it is allowed"
            ));
        }
        if !path.starts_with('/') {
            return None;
        }
        let allowed = self.host_volumes.iter().any(|prefix| {
            prefix.is_empty()
                || path == prefix
                || path
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        (!allowed).then(|| {
            format!("host path '{path}' is not allowed (--docker-allow host-volumes=<dirs>)")
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn docker(docker: Value, volumes: Value) -> Value {
        json!({"type": "DOCKER", "docker": docker, "volumes": volumes})
    }

    #[test]
    fn by_default_nothing_reaches_past_the_container() {
        let policy = DockerPolicy::default();
        let container = docker(
            json!({"image": "x", "privileged": true, "parameters": [
                {"key": "pid", "value": "host"}, {"key": "ipc", "value": "container:other"},
                {"key": "cap-add", "value": "SYS_ADMIN"}, {"key": "label", "value": "a=b"},
                {"key": "volume", "value": "/etc:/host-etc"}, {"key": "volume", "value": "named:/data"},
                {"key": "security-opt", "value": "seccomp=unconfined"}]}),
            json!([{"container_path": "/d", "host_path": "/var/run/docker.sock"},
                   {"container_path": "/s", "host_path": "cache"},
                   {"container_path": "/x", "host_path": "../../../../etc"}]),
        );
        let fields: Vec<Field> = policy
            .refusals(&container)
            .into_iter()
            .map(|r| r.field)
            .collect();
        assert_eq!(
            fields,
            [
                Field::Privileged,
                Field::Parameter(0),
                Field::Parameter(1),
                Field::Parameter(2),
                Field::Parameter(4),
                Field::Parameter(6),
                Field::Volume(0),
                Field::Volume(2),
            ]
        );
        assert!(
            policy
                .refusals(&json!({"type": "MESOS", "docker": {"privileged": true}}))
                .is_empty()
        );
    }

    #[test]
    fn what_is_allowed_passes() {
        let policy =
            DockerPolicy::parse("privileged, host-pid, cap-add, host-volumes=/data:/srv/").unwrap();
        let container = docker(
            json!({"image": "x", "privileged": true, "parameters": [
                {"key": "pid", "value": "host"}, {"key": "cap-add", "value": "NET_ADMIN"}]}),
            json!([{"container_path": "/d", "host_path": "/data/set"},
                   {"container_path": "/s", "host_path": "/srv"}]),
        );
        assert_eq!(policy.refusals(&container), []);
        let outside = docker(
            json!({"image": "x"}),
            json!([{"container_path": "/d", "host_path": "/database"},
                   {"container_path": "/e", "host_path": "/data/../etc"}]),
        );
        assert_eq!(policy.refusals(&outside).len(), 2);
        assert!(DockerPolicy::parse("root").is_err());
        assert!(DockerPolicy::parse("host-volumes=data").is_err());
        assert_eq!(DockerPolicy::parse("none"), Ok(DockerPolicy::default()));
    }
}

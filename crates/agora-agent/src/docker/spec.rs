//! A task's Docker container, as the Engine API's create body: Mesos' `ContainerInfo.docker`
//! (image, network, port mappings, privileged, `parameters` as `docker run` flags), its
//! volumes (host paths, or sandbox paths when relative), the command (`sh -c` for a shell
//! command, else the image's entrypoint with the arguments), the environment, cpu shares and
//! a memory limit from the resources, the sandbox at `/mnt/mesos/sandbox`, and labels naming
//! agent, framework, executor, task and container. Pure: nothing here talks to Docker.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, PortBinding, ResourcesUlimits,
};
use serde_json::Value;

use agora_api::mesos::TaskInfo;

/// Where the sandbox is inside a Docker container (Mesos' path).
pub(crate) const SANDBOX_IN_CONTAINER: &str = "/mnt/mesos/sandbox";

/// Label keys on every container the agent runs, for finding them again.
pub(crate) mod labels {
    pub(crate) const AGENT: &str = "agora.agent_id";
    pub(crate) const FRAMEWORK: &str = "agora.framework_id";
    pub(crate) const EXECUTOR: &str = "agora.executor_id";
    pub(crate) const TASK: &str = "agora.task_id";
    pub(crate) const CONTAINER: &str = "agora.container_id";
}

/// Who a container belongs to.
#[derive(Clone, Debug, Default)]
pub(crate) struct Owner {
    pub agent_id: String,
    pub framework_id: String,
    pub executor_id: String,
    pub container_id: String,
}

/// A container to create: its image and create body.
#[derive(Debug)]
pub(crate) struct Spec {
    pub image: String,
    pub force_pull: bool,
    pub body: ContainerCreateBody,
}

/// Whether a task runs in a Docker container.
pub(crate) fn is_docker(task: &TaskInfo) -> bool {
    task.container
        .as_ref()
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str)
        == Some("DOCKER")
}

/// Why a task's container cannot be made as it asks.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpecError {
    /// What the container definition lacks.
    #[error("{0}")]
    Incomplete(&'static str),
    #[error("unknown docker network '{0}' (HOST, BRIDGE, USER or NONE)")]
    UnknownNetwork(String),
    #[error("docker parameter '{key}' {needs}, got '{value}'")]
    BadParameter {
        key: String,
        needs: &'static str,
        value: String,
    },
    #[error("unsupported docker parameter '{0}'")]
    UnsupportedParameter(String),
    #[error("volume '{}' in the sandbox: {source}", path.display())]
    Volume {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The container for `task`, whose sandbox on the host is `sandbox`; `in_sandbox` gives the
/// host path of a directory of the sandbox a volume names (made and resolved beneath it by
/// the executor: Docker follows links in a bind mount's source).
pub(crate) fn build(
    task: &TaskInfo,
    sandbox: &Path,
    in_sandbox: impl Fn(&Path) -> Result<PathBuf, SpecError>,
    owner: &Owner,
    name: &str,
) -> Result<Spec, SpecError> {
    let container = task
        .container
        .as_ref()
        .ok_or(SpecError::Incomplete("the task has no container"))?;
    let docker = container.get("docker").ok_or(SpecError::Incomplete(
        "a DOCKER container needs 'docker' with an image",
    ))?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let image = text(docker, "image")
        .filter(|i| !i.trim().is_empty())
        .ok_or(SpecError::Incomplete("a DOCKER container needs an image"))?;
    let mut body = ContainerCreateBody {
        image: Some(image.clone()),
        ..ContainerCreateBody::default()
    };
    let mut host = HostConfig {
        privileged: docker.get("privileged").and_then(Value::as_bool),
        ..HostConfig::default()
    };

    // The command: a shell command runs under the image's /bin/sh (Mesos overrides the
    // entrypoint); otherwise the image's entrypoint gets the value and arguments.
    if let Some(command) = &task.command {
        let value = command.value.clone().filter(|v| !v.trim().is_empty());
        if command.shell {
            if let Some(value) = value {
                body.entrypoint = Some(vec!["/bin/sh".into(), "-c".into()]);
                body.cmd = Some(vec![value]);
            }
        } else {
            let argv: Vec<String> = value
                .into_iter()
                .chain(command.arguments.iter().cloned())
                .collect();
            if !argv.is_empty() {
                body.cmd = Some(argv);
            }
        }
    }

    let mut env = vec![
        format!("MESOS_SANDBOX={SANDBOX_IN_CONTAINER}"),
        format!("MESOS_TASK_ID={}", task.task_id.value),
        format!("MESOS_CONTAINER_NAME={name}"),
    ];
    if let Some(variables) = task.command.as_ref().and_then(|c| c.environment.as_ref()) {
        for variable in &variables.variables {
            env.push(format!(
                "{}={}",
                variable.name,
                variable.value.clone().unwrap_or_default()
            ));
        }
    }

    let resources = agora_api::mesos::to_resources(&task.resources).unwrap_or_default();
    let cpus = resources.scalar("cpus").to_f64();
    let mem_mb = resources.scalar("mem").to_f64();
    if cpus > 0.0 {
        host.cpu_shares = Some(((cpus * 1024.0).round() as i64).max(2));
    }
    if mem_mb > 0.0 {
        // Docker refuses less than 6 MB.
        host.memory = Some(((mem_mb * 1024.0 * 1024.0) as i64).max(6 << 20));
    }

    // The sandbox, then the task's volumes.
    let mut binds = vec![format!("{}:{SANDBOX_IN_CONTAINER}", sandbox.display())];
    for volume in container
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let target = text(volume, "container_path")
            .ok_or(SpecError::Incomplete("a volume needs a container_path"))?;
        let source = match text(volume, "host_path") {
            Some(path) if path.starts_with('/') => path,
            // A relative host path, or none: a directory of the sandbox (Mesos' sandbox path).
            Some(path) => in_sandbox(Path::new(&path))?.display().to_string(),
            None => in_sandbox(Path::new(target.trim_start_matches('/')))?
                .display()
                .to_string(),
        };
        let mode = match text(volume, "mode").as_deref() {
            Some("RO") => "ro",
            _ => "rw",
        };
        binds.push(format!("{source}:{target}:{mode}"));
    }

    let mut labels = HashMap::new();

    match text(docker, "network").as_deref().unwrap_or("HOST") {
        "HOST" => host.network_mode = Some("host".into()),
        "NONE" => host.network_mode = Some("none".into()),
        "BRIDGE" => {
            host.network_mode = Some("bridge".into());
            let mut exposed = Vec::new();
            let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
            for mapping in docker
                .get("port_mappings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let container_port = mapping
                    .get("container_port")
                    .and_then(Value::as_u64)
                    .filter(|p| *p > 0 && *p <= 65535)
                    .ok_or(SpecError::Incomplete(
                        "a port mapping needs a container_port",
                    ))?;
                let host_port = mapping
                    .get("host_port")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let protocol = text(mapping, "protocol")
                    .unwrap_or_else(|| "tcp".into())
                    .to_lowercase();
                for protocol in protocol.split(',') {
                    let key = format!("{container_port}/{protocol}");
                    exposed.push(key.clone());
                    bindings
                        .entry(key)
                        .or_insert_with(|| Some(Vec::new()))
                        .get_or_insert_with(Vec::new)
                        .push(PortBinding {
                            host_ip: None,
                            host_port: Some(host_port.to_string()),
                        });
                }
            }
            if !exposed.is_empty() {
                body.exposed_ports = Some(exposed);
                host.port_bindings = Some(bindings);
            }
        }
        "USER" => {
            let network = container
                .get("network_infos")
                .and_then(Value::as_array)
                .and_then(|n| n.first())
                .and_then(|n| text(n, "name"))
                .ok_or(SpecError::Incomplete(
                    "USER networking needs a network name in network_infos",
                ))?;
            host.network_mode = Some(network);
        }
        other => {
            return Err(SpecError::UnknownNetwork(other.to_owned()));
        }
    }
    if let Some(hostname) = text(container, "hostname") {
        body.hostname = Some(hostname);
    }

    for parameter in docker
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = text(parameter, "key").unwrap_or_default();
        let value = text(parameter, "value").unwrap_or_default();
        apply_parameter(
            &key,
            &value,
            &mut body,
            &mut host,
            &mut env,
            &mut binds,
            &mut labels,
        )?;
    }

    // The agent's labels last: a `label` parameter cannot disown the container.
    labels.extend([
        (labels::AGENT.to_owned(), owner.agent_id.clone()),
        (labels::FRAMEWORK.to_owned(), owner.framework_id.clone()),
        (labels::EXECUTOR.to_owned(), owner.executor_id.clone()),
        (labels::TASK.to_owned(), task.task_id.value.clone()),
        (labels::CONTAINER.to_owned(), owner.container_id.clone()),
    ]);
    body.env = Some(env);
    body.labels = Some(labels);
    host.binds = Some(binds);
    body.host_config = Some(host);
    Ok(Spec {
        image,
        force_pull: docker
            .get("force_pull_image")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        body,
    })
}

/// One `docker run` flag (without its dashes) as the API's field.
fn apply_parameter(
    key: &str,
    value: &str,
    body: &mut ContainerCreateBody,
    host: &mut HostConfig,
    env: &mut Vec<String>,
    binds: &mut Vec<String>,
    labels: &mut HashMap<String, String>,
) -> Result<(), SpecError> {
    let key = key.trim_start_matches('-');
    let list =
        |field: &mut Option<Vec<String>>| field.get_or_insert_with(Vec::new).push(value.to_owned());
    let bad = |needs: &'static str| SpecError::BadParameter {
        key: key.to_owned(),
        needs,
        value: value.to_owned(),
    };
    let pair = || {
        value
            .split_once('=')
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .ok_or_else(|| bad("needs key=value"))
    };
    let flag = || match value {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad("is true or false")),
    };
    let size = || parse_size(value).ok_or_else(|| bad("needs a size like 64m"));
    match key {
        "env" | "e" => env.push(value.to_owned()),
        "label" | "l" => {
            let (k, v) = value.split_once('=').unwrap_or((value, ""));
            labels.insert(k.to_owned(), v.to_owned());
        }
        "volume" | "v" => binds.push(value.to_owned()),
        "user" | "u" => body.user = Some(value.to_owned()),
        "workdir" | "w" => body.working_dir = Some(value.to_owned()),
        "hostname" | "h" => body.hostname = Some(value.to_owned()),
        "entrypoint" => body.entrypoint = Some(vec![value.to_owned()]),
        "stop-signal" => body.stop_signal = Some(value.to_owned()),
        "add-host" => list(&mut host.extra_hosts),
        "dns" => list(&mut host.dns),
        "dns-search" => list(&mut host.dns_search),
        "dns-opt" | "dns-option" => list(&mut host.dns_options),
        "cap-add" => list(&mut host.cap_add),
        "cap-drop" => list(&mut host.cap_drop),
        "security-opt" => list(&mut host.security_opt),
        "group-add" => list(&mut host.group_add),
        "privileged" => host.privileged = Some(flag()?),
        "init" => host.init = Some(flag()?),
        "read-only" => host.readonly_rootfs = Some(flag()?),
        "oom-kill-disable" => host.oom_kill_disable = Some(flag()?),
        "shm-size" => host.shm_size = Some(size()?),
        "memory-swap" => host.memory_swap = Some(if value == "-1" { -1 } else { size()? }),
        "memory-reservation" => host.memory_reservation = Some(size()?),
        "pids-limit" => host.pids_limit = Some(value.parse().map_err(|_| bad("is a number"))?),
        "cpuset-cpus" => host.cpuset_cpus = Some(value.to_owned()),
        "network" | "net" => host.network_mode = Some(value.to_owned()),
        "ipc" => host.ipc_mode = Some(value.to_owned()),
        "pid" => host.pid_mode = Some(value.to_owned()),
        "uts" => host.uts_mode = Some(value.to_owned()),
        "runtime" => host.runtime = Some(value.to_owned()),
        "sysctl" => {
            let (k, v) = pair()?;
            host.sysctls.get_or_insert_with(HashMap::new).insert(k, v);
        }
        "tmpfs" => {
            let (path, options) = value.split_once(':').unwrap_or((value, ""));
            host.tmpfs
                .get_or_insert_with(HashMap::new)
                .insert(path.to_owned(), options.to_owned());
        }
        "log-driver" => {
            host.log_config
                .get_or_insert_with(HostConfigLogConfig::default)
                .typ = Some(value.to_owned())
        }
        "log-opt" => {
            let (k, v) = pair()?;
            host.log_config
                .get_or_insert_with(HostConfigLogConfig::default)
                .config
                .get_or_insert_with(HashMap::new)
                .insert(k, v);
        }
        "ulimit" => {
            let (name, limits) = pair()?;
            let (soft, hard) = limits.split_once(':').unwrap_or((&limits, &limits));
            let number = |n: &str| n.parse::<i64>().map_err(|_| bad("needs numbers"));
            host.ulimits
                .get_or_insert_with(Vec::new)
                .push(ResourcesUlimits {
                    name: Some(name),
                    soft: Some(number(soft)?),
                    hard: Some(number(hard)?),
                });
        }
        _ => return Err(SpecError::UnsupportedParameter(key.to_owned())),
    }
    Ok(())
}

/// A size as `docker run` takes it: bytes, or a number with b, k, m or g.
fn parse_size(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let scale = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(container: Value, command: Value) -> TaskInfo {
        serde_json::from_value(json!({
            "name": "web", "task_id": {"value": "web.1"}, "agent_id": {"value": "S0"},
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}
            ],
            "command": command,
            "container": container,
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sandbox directories as plain paths under `sandbox`.
    fn at(sandbox: &'static str) -> impl Fn(&Path) -> Result<PathBuf, SpecError> {
        move |relative| Ok(Path::new(sandbox).join(relative))
    }

    fn owner() -> Owner {
        Owner {
            agent_id: "S0".into(),
            framework_id: "F".into(),
            executor_id: "web.1".into(),
            container_id: "c1".into(),
        }
    }

    #[test]
    fn a_bridge_container_with_everything() {
        let info = task(
            json!({"type": "DOCKER", "docker": {"image": "web:1", "network": "BRIDGE",
                "port_mappings": [{"host_port": 31000, "container_port": 80, "protocol": "tcp"}],
                "parameters": [{"key": "label", "value": "team=a"}, {"key": "env", "value": "X=1"},
                               {"key": "ulimit", "value": "nofile=1024:2048"}, {"key": "shm-size", "value": "64m"}],
                "force_pull_image": true},
                "volumes": [{"container_path": "/data", "host_path": "/srv/data", "mode": "RO"},
                            {"container_path": "/cache", "host_path": "cache", "mode": "RW"}]}),
            json!({"value": "echo hi", "environment": {"variables": [{"name": "PORT0", "value": "31000"}]}}),
        );
        let spec = build(
            &info,
            Path::new("/w/sandbox"),
            at("/w/sandbox"),
            &owner(),
            "mesos-c1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.image, "web:1");
        assert!(spec.force_pull);
        let body = spec.body;
        assert_eq!(body.entrypoint, Some(vec!["/bin/sh".into(), "-c".into()]));
        assert_eq!(body.cmd, Some(vec!["echo hi".into()]));
        let env = body.env.unwrap_or_default();
        assert!(env.contains(&"MESOS_SANDBOX=/mnt/mesos/sandbox".into()));
        assert!(env.contains(&"PORT0=31000".into()) && env.contains(&"X=1".into()));
        let labels = body.labels.unwrap_or_default();
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(
            labels.get(labels::CONTAINER).map(String::as_str),
            Some("c1")
        );
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".into()]));
        let host = body.host_config.unwrap_or_default();
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        let binding = host
            .port_bindings
            .unwrap_or_default()
            .remove("80/tcp")
            .flatten()
            .unwrap_or_default();
        assert_eq!(binding[0].host_port.as_deref(), Some("31000"));
        assert_eq!(host.cpu_shares, Some(512));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.shm_size, Some(64 << 20));
        assert_eq!(
            host.binds,
            Some(vec![
                "/w/sandbox:/mnt/mesos/sandbox".into(),
                "/srv/data:/data:ro".into(),
                "/w/sandbox/cache:/cache:rw".into(),
            ])
        );
        let ulimit = &host.ulimits.unwrap_or_default()[0];
        assert_eq!((ulimit.soft, ulimit.hard), (Some(1024), Some(2048)));
    }

    #[test]
    fn host_network_and_image_entrypoint_by_default() {
        let info = task(
            json!({"type": "DOCKER", "docker": {"image": "tool"}}),
            json!({"shell": false, "arguments": ["--serve", "8080"]}),
        );
        let spec = build(&info, Path::new("/s"), at("/s"), &owner(), "n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.body.entrypoint, None);
        assert_eq!(spec.body.cmd, Some(vec!["--serve".into(), "8080".into()]));
        let host = spec.body.host_config.unwrap_or_default();
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert_eq!(host.port_bindings, None);
    }

    #[test]
    fn bad_containers_say_what_is_wrong() {
        let error = |container: Value| {
            build(
                &task(container, json!({"value": "x"})),
                Path::new("/s"),
                at("/s"),
                &owner(),
                "n",
            )
            .unwrap_err()
            .to_string()
        };
        assert!(error(json!({"type": "DOCKER", "docker": {}})).contains("image"));
        assert!(
            error(json!({"type": "DOCKER", "docker": {"image": "i", "network": "MESH"}}))
                .contains("MESH")
        );
        assert!(error(json!({"type": "DOCKER", "docker": {"image": "i", "parameters": [{"key": "gpus", "value": "all"}]}}))
            .contains("unsupported docker parameter 'gpus'"));
        assert!(error(json!({"type": "DOCKER", "docker": {"image": "i", "parameters": [{"key": "sysctl", "value": "x"}]}}))
            .contains("key=value"));
    }

    #[test]
    fn sizes_as_docker_reads_them() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("2kb"), Some(2048));
        assert_eq!(parse_size("lots"), None);
    }
}

//! Marathon's app `container` and `fetch` in Mesos' shapes, as the agent receives them:
//! `ContainerInfo` (DOCKER with its network, port mappings, parameters and volumes; MESOS with a
//! Docker image) and `CommandInfo.uris`.

use serde_json::{Map, Value, json};

use super::app::FetchUri;

/// The port mappings of a container (`docker.portMappings`, or `portMappings` at the container
/// level since Marathon 1.5), as given.
pub fn port_mappings(container: &Value) -> Vec<Value> {
    [
        container.get("portMappings"),
        container.get("docker").and_then(|d| d.get("portMappings")),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_array)
    .find(|mappings| !mappings.is_empty())
    .cloned()
    .unwrap_or_default()
}

/// An app's service ports as the services API shows the app (any JSON of it: an answer of
/// `/v2/apps`, an event, a definition): its container's port mappings' `servicePort`s (at the
/// container, or under `docker` as older definitions have them) when it has any, else its
/// `portDefinitions`' ports, else the legacy `ports`. Position *i* is service port *i*; a 0
/// is one not assigned. The one reading every component uses (marathon-lb reads them so).
pub fn service_ports(app: &Value) -> Vec<u64> {
    let mappings = app.get("container").map(port_mappings).unwrap_or_default();
    if !mappings.is_empty() {
        return mappings
            .iter()
            .map(|m| m.get("servicePort").and_then(Value::as_u64).unwrap_or(0))
            .collect();
    }
    let ports = |field: &str, key: Option<&str>| {
        app.get(field).and_then(Value::as_array).map(|items| {
            items
                .iter()
                .map(|item| match key {
                    Some(key) => item.get(key).and_then(Value::as_u64).unwrap_or(0),
                    None => item.as_u64().unwrap_or(0),
                })
                .collect::<Vec<u64>>()
        })
    };
    ports("portDefinitions", Some("port"))
        .or_else(|| ports("ports", None))
        .unwrap_or_default()
}

/// Writes `ports` into the port mappings' `servicePort`s, in order, wherever the mappings are.
pub fn set_service_ports(container: &mut Value, ports: &[u64]) {
    let at_container = container
        .get("portMappings")
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty());
    let mappings = if at_container {
        container.get_mut("portMappings")
    } else {
        container
            .get_mut("docker")
            .and_then(|d| d.get_mut("portMappings"))
    };
    let Some(Value::Array(mappings)) = mappings else {
        return;
    };
    for (mapping, port) in mappings.iter_mut().zip(ports) {
        if let Value::Object(mapping) = mapping {
            mapping.insert("servicePort".into(), json!(port));
        }
    }
}

/// The host port each port mapping asks for (0: any offered port).
pub fn requested_host_ports(container: &Value) -> Vec<u64> {
    port_mappings(container)
        .iter()
        .map(|m| m.get("hostPort").and_then(Value::as_u64).unwrap_or(0))
        .collect()
}

/// Mesos' `ContainerInfo` for a Marathon container; `host_ports` are the ports the instance
/// got from its offer, in the order of the port mappings.
pub fn to_mesos(container: &Value, host_ports: &[u64]) -> Value {
    let kind = container
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("DOCKER");
    let docker = container.get("docker").cloned().unwrap_or(Value::Null);
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut info = Map::new();
    info.insert("type".into(), json!(kind));
    if kind == "DOCKER" {
        let mappings: Vec<Value> = port_mappings(container)
            .iter()
            .enumerate()
            .map(|(index, mapping)| {
                let host_port = host_ports
                    .get(index)
                    .copied()
                    .or_else(|| mapping.get("hostPort").and_then(Value::as_u64))
                    .unwrap_or(0);
                json!({
                    "host_port": host_port,
                    "container_port": mapping.get("containerPort").and_then(Value::as_u64).unwrap_or(0),
                    "protocol": text(mapping, "protocol").unwrap_or_else(|| "tcp".into()),
                })
            })
            .collect();
        let parameters: Vec<Value> = docker
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| json!({"key": text(p, "key").unwrap_or_default(), "value": text(p, "value").unwrap_or_default()}))
            .collect();
        let mut docker_info = json!({
            "image": text(&docker, "image").unwrap_or_default(),
            "network": text(&docker, "network").unwrap_or_else(|| "HOST".into()),
            "privileged": docker.get("privileged").and_then(Value::as_bool).unwrap_or(false),
            "force_pull_image": docker.get("forcePullImage").and_then(Value::as_bool).unwrap_or(false),
        });
        if let Some(map) = docker_info.as_object_mut() {
            if !mappings.is_empty() {
                map.insert("port_mappings".into(), json!(mappings));
            }
            if !parameters.is_empty() {
                map.insert("parameters".into(), json!(parameters));
            }
        }
        info.insert("docker".into(), docker_info);
    } else if let Some(image) = text(&docker, "image") {
        info.insert(
            "mesos".into(),
            json!({"image": {"type": "DOCKER", "docker": {"name": image}}}),
        );
    }
    let volumes: Vec<Value> = container
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("containerPath").is_some())
        .map(|v| {
            let mut volume = json!({
                "container_path": text(v, "containerPath").unwrap_or_default(),
                "mode": text(v, "mode").unwrap_or_else(|| "RW".into()),
            });
            if let (Some(map), Some(host)) = (volume.as_object_mut(), text(v, "hostPath")) {
                map.insert("host_path".into(), json!(host));
            }
            volume
        })
        .collect();
    if !volumes.is_empty() {
        info.insert("volumes".into(), json!(volumes));
    }
    Value::Object(info)
}

/// Mesos' `CommandInfo.uris` from `fetch` (and the older `uris`, extracted as Marathon did).
pub fn to_mesos_uris(fetch: &[FetchUri], uris: &[String]) -> Vec<Value> {
    let fetched = fetch.iter().map(|f| {
        let mut uri = json!({"value": f.uri, "extract": f.extract, "executable": f.executable, "cache": f.cache});
        if let (Some(map), Some(dest)) = (uri.as_object_mut(), &f.dest_path) {
            map.insert("output_file".into(), json!(dest));
        }
        uri
    });
    let legacy = uris
        .iter()
        .map(|u| json!({"value": u, "extract": true, "executable": false, "cache": false}));
    fetched.chain(legacy).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ports_are_read_where_marathon_lb_reads_them() {
        let mapped = json!({"portDefinitions": [{"port": 10000}],
            "container": {"docker": {"portMappings": [{"servicePort": 10001}, {"containerPort": 81}]}}});
        assert_eq!(
            service_ports(&mapped),
            [10001, 0],
            "zeros kept: position is the index"
        );
        let empty_mappings = json!({"portDefinitions": [{"port": 10000}],
            "container": {"portMappings": [], "docker": {"portMappings": [{"servicePort": 10005}]}}});
        assert_eq!(service_ports(&empty_mappings), [10005]);
        let defined =
            json!({"portDefinitions": [{"port": 10000}], "container": {"portMappings": []}});
        assert_eq!(service_ports(&defined), [10000]);
        assert_eq!(
            service_ports(&json!({"ports": [10002, 10003]})),
            [10002, 10003]
        );
        assert_eq!(
            service_ports(&json!({"portDefinitions": [], "ports": [10002]})),
            Vec::<u64>::new()
        );
        assert_eq!(service_ports(&json!({})), Vec::<u64>::new());
    }

    #[test]
    fn docker_containers_map_ports_parameters_and_volumes() {
        let container = json!({"type": "DOCKER", "docker": {"image": "web:1", "network": "BRIDGE",
            "portMappings": [{"containerPort": 80, "hostPort": 0}, {"containerPort": 53, "hostPort": 5353, "protocol": "udp"}],
            "parameters": [{"key": "label", "value": "x=y"}], "forcePullImage": true},
            "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "RO"}]});
        assert_eq!(requested_host_ports(&container), vec![0, 5353]);
        let info = to_mesos(&container, &[31000, 5353]);
        assert_eq!(
            info,
            json!({"type": "DOCKER", "docker": {"image": "web:1", "network": "BRIDGE", "privileged": false,
                "force_pull_image": true,
                "port_mappings": [{"host_port": 31000, "container_port": 80, "protocol": "tcp"},
                                  {"host_port": 5353, "container_port": 53, "protocol": "udp"}],
                "parameters": [{"key": "label", "value": "x=y"}]},
                "volumes": [{"container_path": "/data", "host_path": "/srv", "mode": "RO"}]})
        );
    }

    #[test]
    fn mesos_containers_carry_their_image_and_fetch_becomes_uris() {
        let info = to_mesos(
            &json!({"type": "MESOS", "docker": {"image": "busybox"}}),
            &[],
        );
        assert_eq!(info["mesos"]["image"]["docker"]["name"], "busybox");
        let fetch = vec![FetchUri {
            uri: "http://x/a.tgz".into(),
            extract: true,
            executable: false,
            cache: true,
            dest_path: Some("b.tgz".into()),
        }];
        let uris = to_mesos_uris(&fetch, &["http://x/run.sh".into()]);
        assert_eq!(uris[0]["output_file"], "b.tgz");
        assert_eq!(uris[0]["cache"], true);
        assert_eq!(uris[1]["value"], "http://x/run.sh");
    }
}

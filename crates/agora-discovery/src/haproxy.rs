//! The HAProxy bridge (`agora lb haproxy`): a complete `haproxy.cfg` rendered from the same
//! routes the built-in proxy serves — a frontend and backend per service port, virtual-host
//! ACLs on a shared HTTP frontend — rewritten only when it changes, checked with `haproxy -c`
//! first, and followed by the operator's reload command, at most once per interval.
//!
//! Reloads are hitless with HAProxy's master-worker mode (`haproxy -W`, reloaded by SIGUSR2)
//! and the admin socket rendered with `expose-fd listeners`, which hands the listening
//! sockets to the new worker. A server that leaves (a task being killed drains meanwhile) is
//! put in maintenance through that socket at once, without waiting for the next reload.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::follow::{self, View};
use crate::proxy::HostCache;
use crate::routes::{Balance, Groups, PortRoute, Routes};

/// What the rendered configuration binds and where its admin socket lives.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    pub bind: IpAddr,
    /// The shared virtual-host frontend's port (0: none).
    pub http_port: u16,
    /// The admin socket (with `expose-fd listeners`), if any.
    pub admin_socket: Option<PathBuf>,
    /// Where HAProxy's statistics page listens (none if `None`).
    pub stats: Option<std::net::SocketAddr>,
    pub default_balance: Balance,
}

/// `/prod/web` and port 10001 → `prod_web_10001`: a name HAProxy accepts.
fn section_name(app_id: &str, port: u16) -> String {
    let base: String = app_id
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{base}_{port}")
}

/// A task's server name in its backend.
fn server_name(task_id: &str) -> String {
    // HAProxy takes letters, digits and `-_.:` in a name; every other byte is written as
    // `:` and two hex digits (`:` itself too), so two task ids never share a name.
    let mut name = String::with_capacity(task_id.len());
    for byte in task_id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            name.push(char::from(byte));
        } else {
            name.push_str(&format!(":{byte:02x}"));
        }
    }
    name
}

/// Every (backend, server) the configuration of `routes` holds.
fn servers(routes: &Routes) -> BTreeSet<(String, String)> {
    routes
        .ports
        .iter()
        .flat_map(|(port, route)| {
            let backend = section_name(&route.app_id, *port);
            route
                .backends
                .iter()
                .map(move |b| (backend.clone(), server_name(&b.task_id)))
        })
        .collect()
}

fn server_lines(out: &mut String, route: &PortRoute, addresses: &HashMap<String, IpAddr>) {
    for backend in &route.backends {
        // HAProxy resolves names only at start: give it addresses.
        let host = addresses
            .get(&backend.host)
            .map(IpAddr::to_string)
            .unwrap_or_else(|| backend.host.clone());
        let name = server_name(&backend.task_id);
        let _ = writeln!(
            out,
            "    server {name} {host}:{} check inter 2s",
            backend.port
        );
    }
}

/// The whole configuration. Stable for the same routes: same input, same bytes.
pub fn render(
    routes: &Routes,
    addresses: &HashMap<String, IpAddr>,
    options: &RenderOptions,
) -> String {
    let mut out = String::new();
    out.push_str("# Written by `agora lb haproxy` from the cluster's routes; changes are lost.\n");
    // As the classic bridge: HAProxy needs about two descriptors per connection.
    out.push_str("global\n    maxconn 4096\n");
    if let Some(socket) = &options.admin_socket {
        let _ = writeln!(
            out,
            "    stats socket {} mode 600 level admin expose-fd listeners",
            socket.display()
        );
    }
    out.push_str(
        "\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 50s\n    \
         timeout server 50s\n    timeout http-keep-alive 50s\n    option redispatch\n    \
         retries 3\n",
    );
    if let Some(stats) = options.stats {
        let _ = write!(
            out,
            "\nlisten stats\n    bind {stats}\n    mode http\n    stats enable\n    \
             stats uri /haproxy?stats\n"
        );
    }
    let bind = match options.bind {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    for (port, route) in &routes.ports {
        let name = section_name(&route.app_id, *port);
        let mode = if route.http { "http" } else { "tcp" };
        let balance = route.balance.unwrap_or(options.default_balance);
        let _ = write!(
            out,
            "\nfrontend {name}\n    bind {bind}:{port}\n    mode {mode}\n"
        );
        if route.http {
            out.push_str("    option forwardfor\n");
        }
        let _ = write!(
            out,
            "    default_backend {name}\n\nbackend {name}\n    mode {mode}\n    balance {}\n",
            balance.haproxy_name()
        );
        server_lines(&mut out, route, addresses);
    }
    if options.http_port != 0 && !routes.vhosts.is_empty() {
        let _ = write!(
            out,
            "\nfrontend http_vhosts\n    bind {bind}:{}\n    mode http\n    option forwardfor\n",
            options.http_port
        );
        for (vhost, port) in &routes.vhosts {
            let Some(route) = routes.ports.get(port) else {
                continue;
            };
            let _ = writeln!(
                out,
                "    use_backend {} if {{ hdr(host),field(1,:),lower -m str {vhost} }}",
                section_name(&route.app_id, *port)
            );
        }
    }
    out
}

/// The bridge's settings, from `agora lb haproxy`'s flags.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    pub master: String,
    /// The leading master's HOST:PORT when masters fail over (`None` while there is none).
    pub leader: Option<tokio::sync::watch::Receiver<Option<String>>>,
    /// Who the bridge is to the master's APIs (when they ask).
    pub access: agora_client::Access,
    pub config_path: PathBuf,
    /// Run by `sh -c` after each rewrite (nothing if `None`).
    pub reload_command: Option<String>,
    /// The HAProxy binary that checks a configuration before it is installed.
    pub haproxy_binary: String,
    pub groups: Groups,
    pub render: RenderOptions,
    /// At least this long between two reloads; changes meanwhile wait and are taken together.
    pub min_reload_interval: Duration,
    /// Write the configuration once and return.
    pub once: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("haproxy refused the configuration: {0}")]
    Invalid(String),
    #[error("the reload command failed: {0}")]
    Reload(String),
    #[error("stopped before the cluster was read")]
    Stopped,
    #[error("the services API at {0} could not be read within 30 s")]
    Unreachable(String),
}

/// Follows the cluster and keeps the configuration current until `shutdown`.
pub async fn run_bridge(
    config: BridgeConfig,
    shutdown: CancellationToken,
) -> Result<(), BridgeError> {
    let (publish, mut view) = watch::channel(View::default());
    let follower = tokio::spawn(follow::follow(
        follow::Masters {
            fixed: config.master.clone(),
            leader: config.leader.clone(),
        },
        config.access.clone(),
        publish,
        shutdown.clone(),
    ));
    let mut hosts = HostCache::default();
    let mut last_reload: Option<tokio::time::Instant> = None;
    // The servers of the configuration HAProxy runs, and those already put in maintenance.
    let mut installed: Option<BTreeSet<(String, String)>> = None;
    let mut disabled = BTreeSet::new();
    // A one-off run gives up rather than wait for an unreachable master forever.
    let give_up = async {
        if config.once {
            tokio::time::sleep(Duration::from_secs(30)).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(give_up);
    let result = loop {
        tokio::select! {
            () = shutdown.cancelled() => break Err(BridgeError::Stopped),
            () = &mut give_up => break Err(BridgeError::Unreachable(config.master.clone())),
            changed = view.changed() => if changed.is_err() { break Err(BridgeError::Stopped) },
        }
        if !view.borrow().synced {
            continue;
        }
        // Take a burst of changes together, and keep to the reload rate; meanwhile a server
        // that leaves stops getting connections at once.
        let until = last_reload
            .map(|at| at + config.min_reload_interval)
            .unwrap_or_else(tokio::time::Instant::now)
            .max(tokio::time::Instant::now() + Duration::from_millis(50));
        take_out_leaving(&config, &view, installed.as_ref(), &mut disabled).await;
        let stopped = loop {
            tokio::select! {
                () = shutdown.cancelled() => break true,
                () = tokio::time::sleep_until(until) => break false,
                changed = view.changed() => {
                    if changed.is_err() {
                        break true;
                    }
                    take_out_leaving(&config, &view, installed.as_ref(), &mut disabled).await;
                }
            }
        };
        if stopped {
            break Err(BridgeError::Stopped);
        }
        let current = view.borrow_and_update().clone();
        let routes = Routes::of(&current.cluster, &config.groups);
        let addresses = hosts.resolve(&routes).await;
        let text = render(&routes, &addresses, &config.render);
        match install(&config, &text).await {
            Ok(true) => {
                installed = Some(servers(&routes));
                disabled.clear();
                last_reload = Some(tokio::time::Instant::now());
                tracing::info!(path = %config.config_path.display(), ports = routes.ports.len(), "haproxy configuration rewritten");
                if let Err(error) = reload(&config).await {
                    tracing::error!(%error, "haproxy reload failed");
                }
            }
            Ok(false) => {
                // HAProxy runs what the file says (the bridge restarted, or nothing changed).
                if installed.is_none() {
                    installed = Some(servers(&routes));
                }
            }
            Err(error) if config.once => break Err(error),
            Err(error) => tracing::error!(%error, "haproxy configuration not installed"),
        }
        if config.once {
            break Ok(());
        }
    };
    follower.abort();
    result
}

/// Writes the configuration if it differs from the file's, checked by HAProxy first; whether
/// it was written.
async fn install(config: &BridgeConfig, text: &str) -> Result<bool, BridgeError> {
    let path = &config.config_path;
    if tokio::fs::read_to_string(path).await.ok().as_deref() == Some(text) {
        return Ok(false);
    }
    let write_error = |source| BridgeError::Write {
        path: path.display().to_string(),
        source,
    };
    let temporary = temporary_path(path);
    tokio::fs::write(&temporary, text)
        .await
        .map_err(write_error)?;
    if let Err(error) = check(&config.haproxy_binary, &temporary).await {
        let _ = tokio::fs::remove_file(&temporary).await;
        return Err(error);
    }
    tokio::fs::rename(&temporary, path)
        .await
        .map_err(write_error)?;
    Ok(true)
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".agora-new");
    path.with_file_name(name)
}

/// `haproxy -c -f PATH`; a missing binary is not an error (the operator may check elsewhere).
async fn check(binary: &str, path: &Path) -> Result<(), BridgeError> {
    let output = tokio::process::Command::new(binary)
        .arg("-c")
        .arg("-f")
        .arg(path)
        .output()
        .await;
    match output {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(BridgeError::Invalid(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(
                binary,
                "haproxy not found; the configuration is installed unchecked"
            );
            Ok(())
        }
        Err(error) => Err(BridgeError::Invalid(error.to_string())),
    }
}

/// A server of the running configuration that the cluster no longer routes to (its task is
/// being killed, and gets its signal after a drain delay) is put in maintenance now, not at
/// the next reload.
async fn take_out_leaving(
    config: &BridgeConfig,
    view: &watch::Receiver<View>,
    installed: Option<&BTreeSet<(String, String)>>,
    disabled: &mut BTreeSet<(String, String)>,
) {
    let (Some(socket), Some(running)) = (&config.render.admin_socket, installed) else {
        return;
    };
    let wanted = servers(&Routes::of(&view.borrow().cluster, &config.groups));
    let leaving: Vec<(String, String)> = running
        .difference(&wanted)
        .filter(|server| !disabled.contains(*server))
        .cloned()
        .collect();
    if leaving.is_empty() {
        return;
    }
    match disable_servers(socket, &leaving).await {
        Ok(()) => disabled.extend(leaving),
        Err(error) => tracing::warn!(
            %error,
            socket = %socket.display(),
            "cannot put leaving servers in maintenance; the next reload removes them"
        ),
    }
}

/// `set server <backend>/<server> state maint` for each, over HAProxy's admin socket: no new
/// connection goes to them, the open ones finish.
async fn disable_servers(socket: &Path, servers: &[(String, String)]) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let commands: Vec<String> = servers
        .iter()
        .map(|(backend, server)| format!("set server {backend}/{server} state maint"))
        .collect();
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        stream
            .write_all(format!("{}\n", commands.join("; ")).as_bytes())
            .await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 2 s"))??;
    // HAProxy answers nothing for a command that worked, a reason for one that did not (a
    // server a reload already removed, say): worth a note, not a failure.
    if !answer.trim().is_empty() {
        tracing::debug!(answer = answer.trim(), "haproxy on leaving servers");
    }
    Ok(())
}

async fn reload(config: &BridgeConfig) -> Result<(), BridgeError> {
    let Some(command) = &config.reload_command else {
        return Ok(());
    };
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .await
        .map_err(|e| BridgeError::Reload(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(BridgeError::Reload(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_names_are_haproxy_names_and_never_shared() {
        assert_eq!(super::server_name("web.1a2b-c_d"), "web.1a2b-c_d");
        assert_eq!(super::server_name("a/1 b:"), "a:2f1:20b:3a");
        let ids = ["a.1", "a_1", "a:1", "a/1", "a:2f1", "é"];
        let names: std::collections::BTreeSet<String> =
            ids.iter().map(|id| super::server_name(id)).collect();
        assert_eq!(names.len(), ids.len(), "{names:?}");
        assert!(names.iter().all(|name| {
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        }));
    }

    use super::*;
    use crate::model::Cluster;
    use serde_json::json;

    fn routes() -> Routes {
        let mut cluster = Cluster::default();
        let doc = json!({"apps": [
            {"id": "/prod/web", "portDefinitions": [{"port": 10001}],
             "labels": {"HAPROXY_0_VHOST": "web.example.com"},
             "tasks": [{"id": "prod_web.1", "host": "node-1", "ports": [31000], "state": "TASK_RUNNING"}]},
            {"id": "/db", "portDefinitions": [{"port": 10002}], "labels": {"HAPROXY_0_BALANCE": "roundrobin"},
             "tasks": [{"id": "db.1", "host": "10.0.0.2", "ports": [31001], "state": "TASK_RUNNING"}]},
        ]});
        cluster
            .load_snapshot(doc.to_string().as_bytes())
            .expect("snapshot");
        Routes::of(&cluster, &Groups::default())
    }

    #[test]
    fn renders_frontends_backends_and_vhosts() {
        let addresses = HashMap::from([
            ("node-1".to_owned(), IpAddr::from([10, 0, 0, 1])),
            ("10.0.0.2".to_owned(), IpAddr::from([10, 0, 0, 2])),
        ]);
        let options = RenderOptions {
            bind: IpAddr::from([0, 0, 0, 0]),
            http_port: 80,
            admin_socket: Some("/run/haproxy/admin.sock".into()),
            stats: None,
            default_balance: Balance::LeastConn,
        };
        let text = render(&routes(), &addresses, &options);
        assert!(text.contains("expose-fd listeners"), "{text}");
        assert!(
            text.contains("frontend prod_web_10001\n    bind 0.0.0.0:10001\n    mode http\n"),
            "{text}"
        );
        assert!(
            text.contains("server prod_web.1 10.0.0.1:31000 check"),
            "{text}"
        );
        assert!(
            text.contains("backend db_10002\n    mode tcp\n    balance roundrobin\n"),
            "{text}"
        );
        assert!(
            text.contains("use_backend prod_web_10001 if { hdr(host),field(1,:),lower -m str web.example.com }"),
            "{text}"
        );
        // The servers it holds, by the names the admin socket knows them by.
        assert_eq!(
            servers(&routes()),
            BTreeSet::from([
                ("db_10002".to_owned(), "db.1".to_owned()),
                ("prod_web_10001".to_owned(), "prod_web.1".to_owned()),
            ])
        );
        // Stable: the same routes give the same bytes.
        assert_eq!(text, render(&routes(), &addresses, &options));
    }
}

#[cfg(test)]
mod snapshot_tests;

//! The agent's configuration and the detection of its machine's resources.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agora_api::mesos::Attribute;
use agora_types::{Range, Resource, Resources};

/// `--kill-drain`'s default: well above what a route change takes to reach the proxies of a
/// cluster (BENCHMARKS.md, "Planned kills"), short beside a kill's grace period.
pub const DEFAULT_KILL_DRAIN: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The master's `host:port` (or, with `leader`, what names the masters: a `zk://` URL).
    pub master: String,
    /// Where the leading master is when masters fail over (elected in ZooKeeper): its
    /// `host:port`, `None` while there is none. The agent re-registers with each new leader.
    pub leader: Option<tokio::sync::watch::Receiver<Option<String>>>,
    /// Sandboxes and checkpoints live here.
    pub work_dir: PathBuf,
    pub hostname: String,
    /// Address executors and the master use to reach this agent.
    pub advertise_ip: String,
    /// Port of this agent's HTTP API (the `agora up` port when combined with the master).
    pub port: u16,
    pub resources: Resources,
    pub attributes: Vec<Attribute>,
    /// The `agora` binary, whose `executor` subcommand is the built-in executor.
    pub executor_binary: PathBuf,
    /// Start executors through a launcher process (see [`crate::serve_launcher`]) rather than
    /// spawning `executor_binary` for each.
    pub launcher: bool,
    /// SIGTERM → SIGKILL grace period when a kill policy gives none.
    pub default_kill_grace: Duration,
    /// TASK_KILLING → SIGTERM for a task with ports, so that service proxies stop sending it
    /// connections first; a task's `AGORA_KILL_DRAIN_SECONDS` label overrides it.
    pub kill_drain: Duration,
    /// Time for an executor to subscribe before it is destroyed (Mesos: 1 min).
    pub executor_registration_timeout: Duration,
    /// Time for a recovered executor to re-subscribe after an agent restart (Mesos: 15 min).
    pub recovery_timeout: Duration,
    /// Time an executor gets between SHUTDOWN and SIGKILL (Mesos: 5 s).
    pub executor_shutdown_grace: Duration,
    /// First retry of an unacknowledged status update; doubles up to 10 minutes (Mesos: 10 s).
    pub status_update_retry: Duration,
    /// Serve the agent-only root paths (`/state`, `/health`, `/metrics/snapshot`); off when the
    /// master shares the port.
    pub standalone: bool,
    /// Which isolation tasks get.
    pub isolation: Isolation,
    /// Hard cpu limits (a CFS quota of the cpus asked for) besides shares (Mesos'
    /// `--cgroups_enable_cfs`).
    pub cgroups_cfs_quota: bool,
    /// Turn on cgroup2's `favordynmods` so that moving a task into its cgroups never waits
    /// for an RCU grace period (see `cgroups::favor_dynamic_moves`).
    pub cgroups_favor_dynmods: bool,
    /// Run tasks as their `user` (the task's, else the framework's) when the agent is root
    /// (Mesos' `--switch_user`).
    pub switch_user: bool,
    /// Size limit of the fetcher's cache, under `<work dir>/fetch` (Mesos: 2 GB).
    pub fetcher_cache_bytes: u64,
    /// The most one download may bring into a sandbox.
    pub fetcher_max_bytes: u64,
    /// Built-in executors' containers kept ready ahead of their tasks (0: none).
    pub warm_containers: usize,
    /// Every executor must prove itself with its token (Mesos'
    /// `--authenticate_http_executors`); the built-in executors always do.
    pub authenticate_http_executors: bool,
    /// Sent with every request to the master: how the agent authenticates (its
    /// `--credential`).
    pub master_headers: reqwest::header::HeaderMap,
    /// Which of this agent's HTTP endpoints need an authenticated caller (for its state).
    pub authentication: agora_http::auth::Required,
    /// Who may look into tasks (`exec`, `attach`, `top`, sandboxes): `--acls`.
    pub acls: std::sync::Arc<agora_http::auth::acl::Acls>,
    /// What Docker tasks may ask of this host (`--docker-allow`); the rest is TASK_ERROR.
    pub docker: agora_api::docker_policy::DockerPolicy,
    /// Where tasks' secrets are (`--secrets-dir`); without it a task naming one fails.
    pub secrets: Option<std::sync::Arc<agora_secrets::SecretsDir>>,
    /// What the agent trusts, and presents, when it reaches its master over TLS (`--tls-ca`,
    /// its `--tls-cert`): the master is then reached over https unless its address says.
    pub master_tls: Option<agora_client::Tls>,
    /// How executors reach this agent when it serves TLS (none: plain HTTP).
    pub executor_tls: Option<ExecutorTls>,
    /// Where the executor API is also served on a Unix socket (Mesos'
    /// `--domain_socket_location`), told to executors as `MESOS_DOMAIN_SOCKET`; whoever
    /// starts the agent binds it and serves [`crate::AgentHandle::executor_router`] there.
    pub executor_socket: Option<PathBuf>,
}

/// What executors need to reach an agent that serves TLS.
#[derive(Clone, Debug, Default)]
pub struct ExecutorTls {
    /// The agent's certificate (PEM): the built-in executor trusts exactly it, whatever
    /// address it dials (a task's user may not be able to read the file, so it is handed
    /// over in the environment; a certificate is public).
    pub cert_pem: String,
    /// The CA the agent's certificate is signed by (`--tls-ca`), for framework executors
    /// (Mesos' `LIBPROCESS_SSL_CA_FILE`).
    pub ca_file: Option<PathBuf>,
}

/// What isolates tasks (`--isolation`): cgroups (cpu, memory, pids) and namespaces (pid and
/// mount, with a private `/tmp`), each off, used where it works, or required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isolation {
    pub cgroups: Isolator,
    pub namespaces: Isolator,
}

/// Whether one kind of isolation is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolator {
    Off,
    /// Used where the agent can (root, a usable hierarchy); without, said once at start.
    Auto,
    /// An agent that cannot use it does not start.
    Required,
}

impl Default for Isolation {
    fn default() -> Isolation {
        Isolation {
            cgroups: Isolator::Auto,
            namespaces: Isolator::Auto,
        }
    }
}

impl Isolation {
    /// `auto`, `none`, or a comma-separated list of the isolators required (the others off),
    /// in agora's words (`cgroups`, `namespaces`) or Mesos' (`cgroups/cpu`, `cgroups/mem`,
    /// `cgroups/pids`, `namespaces/pid`, `filesystem/linux`).
    pub fn parse(text: &str) -> Option<Isolation> {
        let off = Isolation {
            cgroups: Isolator::Off,
            namespaces: Isolator::Off,
        };
        match text.trim() {
            "auto" => return Some(Isolation::default()),
            "none" | "posix" | "posix/cpu,posix/mem" => return Some(off),
            _ => {}
        }
        let mut isolation = off;
        for item in text.split(',').map(str::trim) {
            match item {
                "cgroups" | "cgroups/cpu" | "cgroups/mem" | "cgroups/pids" => {
                    isolation.cgroups = Isolator::Required
                }
                "namespaces" | "namespaces/pid" | "filesystem/linux" => {
                    isolation.namespaces = Isolator::Required
                }
                _ => return None,
            }
        }
        Some(isolation)
    }
}

impl AgentConfig {
    pub fn new(master: impl Into<String>, work_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            master: master.into(),
            leader: None,
            work_dir: work_dir.into(),
            hostname: "localhost".into(),
            advertise_ip: "127.0.0.1".into(),
            port: 5051,
            resources: Resources::new(),
            attributes: Vec::new(),
            executor_binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("agora")),
            launcher: true,
            default_kill_grace: Duration::from_secs(3),
            kill_drain: DEFAULT_KILL_DRAIN,
            executor_registration_timeout: Duration::from_secs(60),
            recovery_timeout: Duration::from_secs(15 * 60),
            executor_shutdown_grace: Duration::from_secs(5),
            status_update_retry: Duration::from_secs(10),
            standalone: true,
            isolation: Isolation::default(),
            cgroups_cfs_quota: false,
            cgroups_favor_dynmods: true,
            switch_user: true,
            fetcher_cache_bytes: 2 << 30,
            fetcher_max_bytes: 8 << 30,
            warm_containers: 2,
            authenticate_http_executors: false,
            master_headers: reqwest::header::HeaderMap::new(),
            authentication: agora_http::auth::Required::default(),
            acls: std::sync::Arc::default(),
            docker: agora_api::docker_policy::DockerPolicy::default(),
            secrets: None,
            master_tls: None,
            executor_tls: None,
            executor_socket: None,
        }
    }

    /// The directory holding the executor socket, which containers keep reachable.
    pub(crate) fn socket_dir(&self) -> Option<PathBuf> {
        let socket = self.executor_socket.as_ref()?;
        socket.parent().map(Path::to_path_buf)
    }

    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.advertise_ip, self.port)
    }

    /// The master's URL for `path`: its address's scheme when it gives one, else https when
    /// the agent has TLS settings for it.
    pub fn master_url(&self, path: &str) -> String {
        let access = agora_client::Access::default().with_tls(self.master_tls.clone());
        let master = self.current_master().unwrap_or_else(|| self.master.clone());
        format!("{}{path}", access.base_url(&master))
    }

    /// The master to talk to now: the leader when masters fail over (`None` while there is
    /// none), else `master`.
    pub fn current_master(&self) -> Option<String> {
        match &self.leader {
            Some(leader) => leader.borrow().clone(),
            None => Some(self.master.clone()),
        }
    }
}

/// Resources of this machine, as Mesos computes them when `--resources` does not say: all cpus,
/// memory less 1 GiB (or half, on small machines), the work dir's free disk less 5 GiB (or half),
/// ports 31000–32000. Entries in `overrides` replace the detected ones by name.
pub fn detect_resources(work_dir: &Path, overrides: &Resources) -> Resources {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let mem_mb = total_memory_mb()
        .map(|total| (total - 1024.0).max(total / 2.0))
        .unwrap_or(1024.0);
    let disk_mb = free_disk_mb(work_dir)
        .map(|free| (free - 5120.0).max(free / 2.0))
        .unwrap_or(10240.0);
    let mut detected = Resources::new();
    detected.push(Resource::scalar("cpus", cpus));
    detected.push(Resource::scalar("mem", mem_mb.floor()));
    detected.push(Resource::scalar("disk", disk_mb.floor()));
    detected.push(Resource::ranges("ports", [Range::new(31000, 32000)]));
    let overridden: Vec<&str> = overrides.iter().map(|r| r.name.as_str()).collect();
    let mut result = detected.filter(|r| !overridden.contains(&r.name.as_str()));
    result += overrides;
    result
}

fn total_memory_mb() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn free_disk_mb(path: &Path) -> Option<f64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    Some(stat.blocks_available() as f64 * stat.fragment_size() as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_lists_name_what_is_required() {
        assert_eq!(Isolation::parse("auto"), Some(Isolation::default()));
        let none = Isolation::parse("none").unwrap_or_default();
        assert_eq!(
            (none.cgroups, none.namespaces),
            (Isolator::Off, Isolator::Off)
        );
        let cgroups = Isolation::parse("cgroups/cpu,cgroups/mem").unwrap_or_default();
        assert_eq!(
            (cgroups.cgroups, cgroups.namespaces),
            (Isolator::Required, Isolator::Off)
        );
        let both = Isolation::parse("cgroups, namespaces/pid").unwrap_or_default();
        assert_eq!(
            (both.cgroups, both.namespaces),
            (Isolator::Required, Isolator::Required)
        );
        assert_eq!(Isolation::parse("cgroups,gpu"), None);
    }

    #[test]
    fn overrides_replace_detected_entries() {
        let overrides =
            Resources::parse("cpus:3;cpus(web):1;ports:[5000-5001]").unwrap_or_default();
        let resources = detect_resources(Path::new("/"), &overrides);
        assert_eq!(resources.scalar("cpus"), agora_types::Scalar::from_units(4));
        assert_eq!(resources.ranges("ports"), vec![Range::new(5000, 5001)]);
        assert!(resources.scalar("mem").is_positive());
    }
}

//! The master's configuration, one typed struct; the binary maps flags onto it.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// Hostname advertised to frameworks and in `MasterInfo`.
    pub hostname: String,
    /// IPv4 address advertised in `MasterInfo`.
    pub advertise_ip: std::net::Ipv4Addr,
    /// The port the HTTP API listens on.
    pub port: u16,
    /// The master's id (a fresh UUID when `None`); an HA master's is the one in its ZooKeeper
    /// group membership.
    pub master_id: Option<String>,
    /// The data directory (shown in the flags); the registry is written through the registrar
    /// the master is started with.
    pub data_dir: Option<PathBuf>,
    /// How often agents must ping; an agent silent for `agent_ping_timeout *
    /// max_agent_ping_timeouts` is unreachable (Mesos: 15 s × 5).
    pub agent_ping_timeout: Duration,
    pub max_agent_ping_timeouts: u32,
    /// How long an agent of the registry has to come back after this master starts (a
    /// restart, or a failover) before it is unreachable (Mesos' `--agent_reregister_timeout`:
    /// 10 min).
    pub agent_reregister_timeout: Duration,
    /// Heartbeat period on scheduler and operator streams (Mesos: 15 s).
    pub heartbeat_interval: Duration,
    /// Period of the allocation round when nothing triggers one sooner (Mesos: 1 s).
    pub allocation_interval: Duration,
    /// Collect changes this long before an event-triggered allocation round.
    pub allocation_batch: Duration,
    /// Role weights given at start (`--weights web=3,analytics=1`).
    pub weights: Vec<(String, f64)>,
    /// How many completed tasks to keep per framework and completed frameworks in all.
    pub max_completed_tasks_per_framework: usize,
    pub max_completed_frameworks: usize,
    /// Bytes of events queued for one framework or operator subscriber at most; one that
    /// falls further behind is told so and cut off.
    pub subscriber_queue_bytes: usize,
    /// Which realms need an authenticated caller (shown in the state and flags; frameworks
    /// are held to the principal they authenticate as).
    pub authentication: agora_http::auth::Required,
    /// Who may do what (`--acls`); without: everything is allowed.
    pub acls: std::sync::Arc<agora_http::auth::acl::Acls>,
    /// Agents must present a TLS certificate the listener's client CA signed
    /// (`--tls-require-agent-cert`).
    pub require_agent_certificate: bool,
    /// The listener serves https (`--tls-cert`), for the state's account of security.
    pub tls: bool,
}

impl Default for MasterConfig {
    fn default() -> MasterConfig {
        MasterConfig {
            hostname: "localhost".to_owned(),
            advertise_ip: std::net::Ipv4Addr::LOCALHOST,
            port: 5050,
            master_id: None,
            data_dir: None,
            agent_ping_timeout: Duration::from_secs(15),
            max_agent_ping_timeouts: 5,
            agent_reregister_timeout: Duration::from_secs(600),
            heartbeat_interval: Duration::from_secs(15),
            allocation_interval: Duration::from_secs(1),
            allocation_batch: Duration::from_millis(5),
            weights: Vec::new(),
            max_completed_tasks_per_framework: 1000,
            max_completed_frameworks: 50,
            subscriber_queue_bytes: 64 << 20,
            authentication: agora_http::auth::Required::default(),
            acls: std::sync::Arc::default(),
            require_agent_certificate: false,
            tls: false,
        }
    }
}

impl MasterConfig {
    /// How long an agent may stay silent before it is unreachable.
    pub fn agent_timeout(&self) -> Duration {
        self.agent_ping_timeout * self.max_agent_ping_timeouts.max(1)
    }
}

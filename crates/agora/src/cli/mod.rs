//! Command-line definitions: every flag is defined once, here (the server roles) and in
//! `operator_commands.rs` (the operator commands), with its `AGORA_*` variable.

mod operator_commands;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use operator_commands::*;

#[derive(Parser, Debug)]
#[command(
    name = "agora",
    version,
    about = "A datacenter operating system: Mesos, Marathon and Chronos in one binary"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a whole single-node cluster (master and agent on one port)
    Up(UpArgs),
    /// Run a master
    Master(MasterArgs),
    /// Run an agent
    Agent(AgentArgs),
    /// Many hollow agents in one process, for capacity planning and scale tests: each speaks
    /// the real master↔agent protocol and runs tasks that are no processes
    HollowAgents(HollowArgs),
    /// Agents: list, show, drain, undrain
    Node(Noun<NodeCommand>),
    /// Frameworks: list, show, teardown
    Framework(Noun<FrameworkCommand>),
    /// Services (Marathon apps): add, list, show, update, scale, restart, remove, versions,
    /// rollback
    App(Noun<AppCommand>),
    /// Groups of apps: add, list, show, scale, remove
    Group(Noun<GroupCommand>),
    /// Deployments of apps: list, watch, rollback, stop
    Deployment(Noun<DeploymentCommand>),
    /// Tasks: list, log, kill, exec
    Task(Noun<TaskCommand>),
    /// Jobs (Chronos): add, list, show, run, remove, history
    Job(Noun<JobCommand>),
    /// Load balancers fed from the cluster's routes; what each node's service proxy serves
    #[command(subcommand)]
    Lb(LbCommand),
    /// The cluster's DNS names
    Dns(Noun<DnsCommand>),
    /// The cluster at a glance
    Cluster(Noun<ClusterCommand>),
    /// The masters' state (registry, services, jobs): export it to a file, import it — to
    /// move a single master's state into ZooKeeper for HA, or back. Only while no master runs
    /// on it
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Signs in and prints a bearer token (for AGORA_TOKEN or --token-file): the principal's
    /// secret comes from AGORA_SECRET, --secret-file or standard input
    Login(LoginArgs),
    /// Shell completions for bash, zsh, fish, elvish or powershell, on stdout
    Completions(CompletionsArgs),
    /// The manual page (roff), on stdout
    Man(ManArgs),
    /// The built-in executor; started by agents, not by hand
    #[command(hide = true)]
    Executor,
}

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Writes the whole state as one JSON document
    Export(RegistryExportArgs),
    /// Writes a document `export` made into an empty store
    Import(RegistryImportArgs),
}

/// Where the masters' state is: a master's data dir (the embedded store) or ZooKeeper.
#[derive(Args, Debug)]
#[group(required = true, multiple = false, id = "location")]
pub struct StateLocation {
    /// A master's data dir (registry.redb, services.redb, jobs.redb)
    #[arg(long, group = "location")]
    pub data_dir: Option<PathBuf>,
    /// The masters' group in ZooKeeper (zk://host:2181/agora); the state is beside it
    #[arg(long, group = "location")]
    pub zk: Option<String>,
    /// Where in ZooKeeper the state lives (default: the group's path with '-state')
    #[arg(long, requires = "zk")]
    pub zk_state: Option<String>,
}

#[derive(Args, Debug)]
pub struct RegistryExportArgs {
    #[command(flatten)]
    pub from: StateLocation,
    /// The file to write (readable by its owner only); '-' or none: stdout
    #[arg(long, short)]
    pub output: Option<String>,
}

#[derive(Args, Debug)]
pub struct RegistryImportArgs {
    #[command(flatten)]
    pub to: StateLocation,
    /// The document to read; '-' or none: stdin
    #[arg(long, short)]
    pub input: Option<String>,
    /// Write over a store that already holds records
    #[arg(long)]
    pub replace: bool,
}

#[derive(Subcommand, Debug)]
pub enum LbCommand {
    /// What each node's service proxy serves: service ports, their backends, virtual hosts
    Status(LbStatusArgs),
    /// Keep an haproxy.cfg current (service ports, healthy tasks, virtual hosts) and reload
    /// HAProxy when it changes
    Haproxy(HaproxyArgs),
}

#[derive(Args, Debug)]
pub struct LbStatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct HaproxyArgs {
    /// A master serving the services API, HOST:PORT; or several, the masters in ZooKeeper
    /// (zk://host:2181/agora) or a list (h1:5050,h2:5050): the bridge follows their leader
    #[arg(long, env = "AGORA_MASTER")]
    pub master: String,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// The configuration file to write
    #[arg(long, default_value = "/etc/haproxy/haproxy.cfg")]
    pub config: PathBuf,
    /// Run (by sh -c) after each rewrite, e.g. "systemctl reload haproxy" or
    /// "kill -USR2 $(cat /run/haproxy.pid)" for HAProxy in master-worker mode
    #[arg(long)]
    pub reload_cmd: Option<String>,
    /// Apps exposed: those whose HAPROXY_GROUP label shares a group with this list ("*": all)
    #[arg(long, default_value = "*")]
    pub group: String,
    /// Address the frontends bind
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: std::net::IpAddr,
    /// Port of the shared HTTP frontend for virtual hosts (0: none)
    #[arg(long, default_value_t = 80)]
    pub http_port: u16,
    /// Admin socket rendered with `expose-fd listeners`, for seamless reloads ("none": leave out)
    #[arg(long, default_value = "/run/haproxy/admin.sock")]
    pub admin_socket: String,
    /// Address of HAProxy's statistics page ("none": leave out)
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub stats: String,
    /// Balance for ports whose labels do not say: leastconn or roundrobin
    #[arg(long, default_value = "leastconn", value_parser = parse_balance)]
    pub balance: agora_discovery::Balance,
    /// HAProxy binary used to check a configuration before it is installed
    #[arg(long, default_value = "haproxy")]
    pub haproxy_bin: String,
    /// Least time between two reloads
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub min_reload_interval: Duration,
    /// Write the configuration once (no reload) and exit
    #[arg(long)]
    pub once: bool,
}

#[derive(Args, Debug, Clone)]
pub struct NetworkArgs {
    /// Address to listen on (default: 127.0.0.1 for `agora up`, a developer's cluster;
    /// 0.0.0.0 for `agora master` and `agora agent`)
    #[arg(long, env = "AGORA_BIND")]
    pub bind: Option<String>,
    /// Names browsers may reach this server by, comma-separated, besides its addresses,
    /// `localhost` and its hostname (a browser naming any other host is refused: DNS rebinding)
    #[arg(long, env = "AGORA_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Address other nodes and executors use to reach this process
    #[arg(long, env = "AGORA_IP", default_value = "127.0.0.1")]
    pub ip: std::net::Ipv4Addr,
    /// Hostname advertised in offers and state (default: the machine's hostname)
    #[arg(long, env = "AGORA_HOSTNAME")]
    pub hostname: Option<String>,
    /// Connections served at once; one past it is closed as it is accepted
    #[arg(long, env = "AGORA_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,
    /// Time a client has to send a request's headers
    #[arg(long, env = "AGORA_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_period)]
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body, whole
    #[arg(long, env = "AGORA_BODY_READ_TIMEOUT", default_value = "30s", value_parser = parse_period)]
    pub body_read_timeout: Duration,
}

/// Who may call this node's HTTP APIs (Mesos' flags, in kebab case). The default: anyone.
#[derive(Args, Debug, Clone, Default)]
pub struct AuthArgs {
    /// Principals and their secrets that may authenticate (HTTP Basic): Mesos' JSON,
    /// {"credentials": [{"principal": …, "secret": …}]}, or 'principal secret' lines
    #[arg(long, env = "AGORA_CREDENTIALS")]
    pub credentials: Option<PathBuf>,
    /// The key that signs and verifies bearer tokens (a file; a master without one makes
    /// one in its data dir; give every master and agent the same file to share tokens)
    #[arg(long, env = "AGORA_JWT_SECRET_KEY")]
    pub jwt_secret_key: Option<PathBuf>,
    /// Requests that change state need an authenticated caller
    #[arg(long, env = "AGORA_AUTHENTICATE_HTTP_READWRITE")]
    pub authenticate_http_readwrite: bool,
    /// Requests that read state need an authenticated caller
    #[arg(long, env = "AGORA_AUTHENTICATE_HTTP_READONLY")]
    pub authenticate_http_readonly: bool,
    /// Who may do what: Mesos' ACL JSON (register_frameworks, run_tasks, view_tasks, ...)
    /// and agora's own (view_apps, manage_apps, view_jobs, manage_jobs); see docs/security.md
    #[arg(long, env = "AGORA_ACLS")]
    pub acls: Option<PathBuf>,
    /// What Docker tasks may ask of their hosts, comma-separated: privileged, host-pid,
    /// host-ipc, host-uts, cap-add, security-opt, runtime, host-volumes=/dir:/dir (default:
    /// none of them)
    #[arg(long, env = "AGORA_DOCKER_ALLOW", default_value = "none", value_parser = parse_docker_allow)]
    pub docker_allow: agora_api::docker_policy::DockerPolicy,
    /// The directory of secrets that apps' and jobs' `{"secret": …}` env values name: one
    /// file a secret (0600), named by its path under the directory. Masters check the names,
    /// agents read the values
    #[arg(long, env = "AGORA_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
}

fn parse_docker_allow(text: &str) -> Result<agora_api::docker_policy::DockerPolicy, String> {
    agora_api::docker_policy::DockerPolicy::parse(text)
}

/// TLS on the node's listener, and what it trusts of the nodes it reaches.
#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    /// The certificate chain (PEM) the node serves https with (its API, UI and executor
    /// API); it also names the node to a master that requires agents' certificates
    #[arg(long, env = "AGORA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[arg(long, env = "AGORA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The CA (PEM) the cluster's certificates are signed by: an agent reaches its master
    /// over https checked against it; a master checks agents' certificates against it
    #[arg(long, env = "AGORA_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Serve plain HTTP on the same port too, for clients that speak no TLS (pymesos,
    /// framework executors without it): Mesos' LIBPROCESS_SSL_SUPPORT_DOWNGRADE
    #[arg(long, env = "AGORA_TLS_SUPPORT_DOWNGRADE", requires = "tls_cert")]
    pub tls_support_downgrade: bool,
}

/// What a master requires of frameworks and agents.
#[derive(Args, Debug, Clone)]
pub struct MasterAuthArgs {
    /// Frameworks (the scheduler API) must authenticate, as their FrameworkInfo.principal
    #[arg(long, env = "AGORA_AUTHENTICATE_FRAMEWORKS")]
    pub authenticate_frameworks: bool,
    /// Agents must authenticate (with their --credential)
    #[arg(long, env = "AGORA_AUTHENTICATE_AGENTS")]
    pub authenticate_agents: bool,
    /// Agents must present a TLS certificate signed by --tls-ca (mutual TLS; needs
    /// --tls-cert and --tls-ca)
    #[arg(long, env = "AGORA_TLS_REQUIRE_AGENT_CERT")]
    pub tls_require_agent_cert: bool,
}

#[derive(Args, Debug, Clone)]
pub struct MasterOptions {
    /// How often agents must ping the master (e.g. 15s, 500ms)
    #[arg(long, env = "AGORA_AGENT_PING_TIMEOUT", default_value = "15s", value_parser = parse_period)]
    pub agent_ping_timeout: Duration,
    /// Missed pings before an agent is unreachable
    #[arg(long, env = "AGORA_MAX_AGENT_PING_TIMEOUTS", default_value_t = 5)]
    pub max_agent_ping_timeouts: u32,
    /// How long the agents a master recovers (after its restart or a failover) have to
    /// re-register before they are unreachable (Mesos' default: 10 minutes)
    #[arg(long, env = "AGORA_AGENT_REREGISTER_TIMEOUT", default_value = "10m", value_parser = parse_period)]
    pub agent_reregister_timeout: Duration,
    /// Heartbeat period of scheduler and operator event streams
    #[arg(long, env = "AGORA_HEARTBEAT_INTERVAL", default_value = "15s", value_parser = parse_period)]
    pub heartbeat_interval: Duration,
    /// Period of the allocation round when nothing triggers one sooner
    #[arg(long, env = "AGORA_ALLOCATION_INTERVAL", default_value = "1s", value_parser = parse_period)]
    pub allocation_interval: Duration,
    /// Initial role weights, e.g. web=3,analytics=1
    #[arg(long, env = "AGORA_WEIGHTS", value_parser = parse_weights)]
    pub weights: Option<Weights>,
    /// The user tasks of apps and jobs run as when they name none (Marathon's --mesos_user,
    /// Chronos' --user; default: the user agora runs as)
    #[arg(long, env = "AGORA_DEFAULT_TASK_USER")]
    pub default_task_user: Option<String>,
    /// Events queued for one framework or operator subscriber at most; one that falls
    /// further behind is told so and cut off (it may subscribe again)
    #[arg(long, env = "AGORA_SUBSCRIBER_QUEUE_SIZE", default_value = "64MB", value_parser = parse_bytes)]
    pub subscriber_queue_size: u64,
    /// Wait before a failed job run is tried again (Chronos' --failure_retry)
    #[arg(long, env = "AGORA_JOB_FAILURE_RETRY", default_value = "60s", value_parser = parse_duration)]
    pub job_failure_retry: Duration,
}

#[derive(Args, Debug, Clone)]
pub struct AgentOptions {
    /// Resources in Mesos syntax, e.g. "cpus:4;mem:8192;ports:[31000-32000];cpus(analytics):2"
    #[arg(long, env = "AGORA_RESOURCES")]
    pub resources: Option<String>,
    /// Attributes, e.g. "rack:a;zone:1"
    #[arg(long, env = "AGORA_ATTRIBUTES")]
    pub attributes: Option<String>,
    /// First retry of an unacknowledged status update (doubles up to 10 minutes)
    #[arg(long, env = "AGORA_STATUS_UPDATE_RETRY", default_value = "10s", value_parser = parse_period)]
    pub status_update_retry: Duration,
    /// Time an executor has to subscribe before it is destroyed
    #[arg(long, env = "AGORA_EXECUTOR_REGISTRATION_TIMEOUT", default_value = "1m", value_parser = parse_period)]
    pub executor_registration_timeout: Duration,
    /// Default SIGTERM→SIGKILL grace period for tasks
    #[arg(long, env = "AGORA_KILL_GRACE", default_value = "3s", value_parser = parse_duration)]
    pub kill_grace: Duration,
    /// Time between telling the framework a task is being killed (TASK_KILLING) and signalling
    /// it, for tasks with ports: service proxies stop routing to it first. An app's label
    /// AGORA_KILL_DRAIN_SECONDS sets its own
    #[arg(long, env = "AGORA_KILL_DRAIN", default_value = "1s", value_parser = parse_duration)]
    pub kill_drain: Duration,
    /// Task isolation: auto (cgroups and pid/mount namespaces where the agent can use them),
    /// none, or the isolators required, comma-separated (cgroups, namespaces): an agent that
    /// cannot use one does not start
    #[arg(long, env = "AGORA_ISOLATION", default_value = "auto", value_parser = parse_isolation)]
    pub isolation: agora_agent::Isolation,
    /// Also cap each task's cpu at what it asked for (a CFS quota), not only share it
    #[arg(long, env = "AGORA_CGROUPS_ENABLE_CFS")]
    pub cgroups_enable_cfs: bool,
    /// Turn on cgroup2's favordynmods (remounting it) so that starting a task never waits on
    /// the kernel's cgroup lock; forks and exits machine-wide cost slightly more
    #[arg(long, env = "AGORA_CGROUPS_FAVOR_DYNMODS", default_value_t = true, action = clap::ArgAction::Set)]
    pub cgroups_favor_dynmods: bool,
    /// Run each task as its user (the task's, else its framework's) when the agent runs as root
    #[arg(long, env = "AGORA_SWITCH_USER", default_value_t = true, action = clap::ArgAction::Set)]
    pub switch_user: bool,
    /// Size limit of the fetcher's cache of URIs marked `cache` (under the work dir)
    #[arg(long, env = "AGORA_FETCHER_CACHE_SIZE", default_value = "2GB", value_parser = parse_bytes)]
    pub fetcher_cache_size: u64,
    /// The most one URI may bring into a sandbox; a larger download fails its task
    #[arg(long, env = "AGORA_FETCHER_MAX_SIZE", default_value = "8GB", value_parser = parse_bytes)]
    pub fetcher_max_size: u64,
    /// Containers for the built-in executors made ahead of their tasks, so a task starts
    /// without waiting for its cgroups, namespaces and executor process (0: none)
    #[arg(long, env = "AGORA_WARM_CONTAINERS", default_value_t = 2)]
    pub warm_containers: usize,
    /// Every executor must send its MESOS_EXECUTOR_AUTHENTICATION_TOKEN as a bearer token
    /// (the built-in executors always do; a framework's own executor that does not is refused)
    #[arg(long, env = "AGORA_AUTHENTICATE_HTTP_EXECUTORS")]
    pub authenticate_http_executors: bool,
    /// Serve the executor API on a Unix socket too, named to executors in
    /// MESOS_DOMAIN_SOCKET: the built-in executors use it, so no TCP connection or TLS
    /// handshake stands between a task's launch and its agent (Mesos' flag; on by default here)
    #[arg(long, env = "AGORA_HTTP_EXECUTOR_DOMAIN_SOCKETS", default_value_t = true, action = clap::ArgAction::Set)]
    pub http_executor_domain_sockets: bool,
    /// Where that socket is, an absolute path under 108 bytes (default: run/agent.sock in the
    /// work dir)
    #[arg(long, env = "AGORA_DOMAIN_SOCKET_LOCATION")]
    pub domain_socket_location: Option<PathBuf>,
}

fn parse_isolation(text: &str) -> Result<agora_agent::Isolation, String> {
    agora_agent::Isolation::parse(text).ok_or_else(|| {
        format!("'{text}' is not an isolation; use auto, none, or a list of cgroups and namespaces")
    })
}

#[derive(Args, Debug, Clone)]
pub struct DiscoveryArgs {
    /// Address service ports listen on ("off" turns the service proxy off; default: the
    /// listening address of `agora up`, 0.0.0.0 for `agora agent`)
    #[arg(long, env = "AGORA_PROXY_BIND", value_parser = parse_proxy_bind)]
    pub proxy_bind: Option<ProxyBind>,
    /// How the proxy spreads connections when an app's labels do not say: leastconn or roundrobin
    #[arg(long, env = "AGORA_PROXY_BALANCE", default_value = "leastconn", value_parser = parse_balance)]
    pub proxy_balance: agora_discovery::Balance,
    /// Threads serving proxied connections (one serves about 70,000 requests a second)
    #[arg(long, env = "AGORA_PROXY_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub proxy_threads: u16,
    /// Shared port for apps with HAPROXY_{n}_VHOST labels, routed by Host (0 turns it off)
    #[arg(long, env = "AGORA_PROXY_HTTP_PORT", default_value_t = 80)]
    pub proxy_http_port: u16,
    /// DNS port (UDP and TCP) for Mesos-DNS names, on the proxy's address (0 turns DNS off)
    #[arg(long, env = "AGORA_DNS_PORT", default_value_t = 53)]
    pub dns_port: u16,
    /// DNS domain: names are <app>.marathon.<domain>, leader.<domain>, ...
    #[arg(long, env = "AGORA_DNS_DOMAIN", default_value = "mesos")]
    pub dns_domain: String,
}

/// Where the service proxy listens, if anywhere.
#[derive(Clone, Copy, Debug)]
pub struct ProxyBind(pub Option<std::net::IpAddr>);

fn parse_proxy_bind(text: &str) -> Result<ProxyBind, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(ProxyBind(None));
    }
    text.parse()
        .map(|ip| ProxyBind(Some(ip)))
        .map_err(|_| format!("'{text}' is not an IP address (or \"off\")"))
}

fn parse_balance(text: &str) -> Result<agora_discovery::Balance, String> {
    agora_discovery::Balance::parse(text)
        .ok_or_else(|| format!("'{text}' is not a balance; use leastconn or roundrobin"))
}

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub master_auth: MasterAuthArgs,
    #[arg(long, env = "AGORA_PORT", default_value_t = 5050)]
    pub port: u16,
    /// Where the registry and (unless --work-dir says otherwise) sandboxes live
    #[arg(long, env = "AGORA_DATA_DIR", default_value = "./agora-data")]
    pub data_dir: PathBuf,
    /// The agent's work dir (default: DATA_DIR/agent)
    #[arg(long, env = "AGORA_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub master: MasterOptions,
    #[command(flatten)]
    pub agent: AgentOptions,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
}

#[derive(Args, Debug)]
pub struct MasterArgs {
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub master_auth: MasterAuthArgs,
    #[arg(long, env = "AGORA_PORT", default_value_t = 5050)]
    pub port: u16,
    /// Where the registry lives
    #[arg(long, env = "AGORA_DATA_DIR", default_value = "./agora-master")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub master: MasterOptions,
    #[command(flatten)]
    pub ha: HaArgs,
}

/// High availability: masters elected in ZooKeeper, as Mesos' are.
#[derive(Args, Debug)]
pub struct HaArgs {
    /// The masters' group in ZooKeeper (zk://host:2181,host2:2181/agora): the masters elect
    /// their leader there, standbys redirect to it, and the state lives beside the group
    #[arg(long, env = "AGORA_ZK")]
    pub zk: Option<String>,
    /// The ZooKeeper session timeout: a leader unheard of this long is replaced
    #[arg(long, env = "AGORA_ZK_SESSION_TIMEOUT", default_value = "10s", value_parser = parse_period)]
    pub zk_session_timeout: Duration,
    /// Where in ZooKeeper the state lives (default: the group's path with '-state')
    #[arg(long, env = "AGORA_ZK_STATE")]
    pub zk_state: Option<String>,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The master, HOST:PORT or a URL (https:// with --tls-ca by default); or several, the
    /// masters in ZooKeeper (zk://host:2181,host2:2181/agora) or a list (h1:5050,h2:5050):
    /// the agent follows their leader
    #[arg(long, env = "AGORA_MASTER")]
    pub master: String,
    /// This agent's own principal and secret, which it authenticates to the master with
    /// (JSON {"principal": …, "secret": …}, or one 'principal secret' line)
    #[arg(long, env = "AGORA_CREDENTIAL")]
    pub credential: Option<PathBuf>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[arg(long, env = "AGORA_PORT", default_value_t = 5051)]
    pub port: u16,
    /// Sandboxes and checkpoints
    #[arg(long, env = "AGORA_WORK_DIR", default_value = "./agora-agent")]
    pub work_dir: PathBuf,
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub agent: AgentOptions,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
}

/// `agora hollow-agents`: hollow agents and what their tasks do.
#[derive(Args, Debug)]
pub struct HollowArgs {
    /// The master: host:port, a list of masters (host:port,host:port) or zk://host:port/path
    #[arg(long, env = "AGORA_MASTER")]
    pub master: String,
    /// How many agents
    #[arg(long, env = "AGORA_HOLLOW_COUNT", default_value_t = 1)]
    pub count: usize,
    /// What each agent offers, in Mesos syntax
    #[arg(
        long,
        env = "AGORA_RESOURCES",
        default_value = "cpus:8;mem:32768;disk:262144;ports:[31000-32000]"
    )]
    pub resources: String,
    /// Each agent's attributes; {i} is the agent's index, {i%N} that index modulo N
    /// (e.g. "rack:r{i%40};zone:z{i%3}")
    #[arg(long, env = "AGORA_ATTRIBUTES", default_value = "")]
    pub attributes: String,
    /// Agent i's hostname is this prefix and i
    #[arg(long, env = "AGORA_HOSTNAME_PREFIX", default_value = "hollow-")]
    pub hostname_prefix: String,
    /// Time from TASK_STARTING to TASK_RUNNING
    #[arg(long, env = "AGORA_HOLLOW_TASK_STARTUP", default_value = "0s", value_parser = parse_duration)]
    pub task_startup: Duration,
    /// Time from TASK_RUNNING to TASK_FINISHED (default: tasks run until killed)
    #[arg(long, env = "AGORA_HOLLOW_TASK_RUNTIME", value_parser = parse_period)]
    pub task_runtime: Option<Duration>,
    /// Share of tasks, 0 to 1, that fail at start (TASK_FAILED); chosen by task id
    #[arg(long, env = "AGORA_HOLLOW_FAILURE_RATE", default_value_t = 0.0)]
    pub failure_rate: f64,
    /// First retry of an unacknowledged status update (doubles up to 10 minutes)
    #[arg(long, env = "AGORA_STATUS_UPDATE_RETRY", default_value = "10s", value_parser = parse_period)]
    pub status_update_retry: Duration,
    /// Port of this process's own /state and /metrics (0: any); the agents name it as their
    /// endpoint
    #[arg(long, env = "AGORA_PORT", default_value_t = 5052)]
    pub port: u16,
    /// How the agents authenticate to the master: a file with one credential (Mesos' JSON
    /// {"principal": …, "secret": …} or 'principal secret')
    #[arg(long, env = "AGORA_CREDENTIAL")]
    pub credential: Option<PathBuf>,
    /// Who may call this process's own listener (its `POST /storm` changes state)
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub network: NetworkArgs,
}

pub type Weights = Vec<(String, f64)>;

/// A leading decimal number and the unit after it (`1.5KB` → 1.5, "KB").
fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit))
}

/// `500ms`, `15s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (value, unit) = number_and_unit(text)
        .ok_or_else(|| format!("'{text}' is not a duration like 500ms, 15s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("'{text}' has an unknown unit; use ms, s, m or h")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("'{text}' is not a valid duration"));
    }
    match Duration::try_from_secs_f64(seconds) {
        Ok(duration) if duration <= LONGEST_DURATION => Ok(duration),
        _ => Err(format!("'{text}' is longer than a year")),
    }
}

/// No duration a flag takes is meant to be longer (and time arithmetic stays far from
/// overflowing).
const LONGEST_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration that must not be zero: a period or timeout of nothing would spin or fire at once.
pub fn parse_period(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("'{text}' must be more than zero"));
    }
    Ok(duration)
}

/// A size as Mesos writes them: bytes, or a number with B, KB, MB, GB or TB (powers of 1024).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (value, unit) =
        number_and_unit(text).ok_or_else(|| format!("'{text}' is not a size like 512MB or 2GB"))?;
    let scale: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => {
            return Err(format!(
                "'{text}' has an unknown unit; use B, KB, MB, GB or TB"
            ));
        }
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("'{text}' is not a valid size"));
    }
    Ok(bytes as u64)
}

fn parse_weights(text: &str) -> Result<Weights, String> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (role, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' should be role=weight"))?;
            let weight: f64 = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight of '{role}' is not a number"))?;
            if !(weight > 0.0 && weight.is_finite()) {
                return Err(format!("weight of '{role}' must be positive"));
            }
            Ok((role.trim().to_owned(), weight))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("2GB"), Ok(2 << 30));
        assert_eq!(parse_bytes("512mb"), Ok(512 << 20));
        assert_eq!(parse_bytes("1.5KB"), Ok(1536));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("2 parsecs").is_err());
        assert!(parse_bytes("big").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("1e300s").is_err());
        assert!(parse_duration("400d").is_err());
        assert!(parse_duration("9999999999h").is_err());
        assert!(parse_period("0s").is_err());
        assert_eq!(parse_period("1ms"), Ok(Duration::from_millis(1)));
    }

    proptest::proptest! {
        #[test]
        fn any_flag_text_is_read_or_refused(text in "\\PC{0,24}", number in proptest::num::f64::ANY, unit in "(ms|s|m|h|KB|MB|GB|TB|B|)") {
            let _ = parse_duration(&text);
            let _ = parse_period(&text);
            let _ = parse_bytes(&text);
            let _ = parse_weights(&text);
            let _ = parse_isolation(&text);
            let _ = parse_proxy_bind(&text);
            let _ = parse_balance(&text);
            let numeric = format!("{number}{unit}");
            let _ = parse_duration(&numeric);
            let _ = parse_bytes(&numeric);
            let _ = parse_weights(&format!("web={number}"));
        }
    }

    #[test]
    fn weights() {
        assert_eq!(
            parse_weights("web=3,analytics=1"),
            Ok(vec![("web".into(), 3.0), ("analytics".into(), 1.0)])
        );
        assert!(parse_weights("web=0").is_err());
        assert!(parse_weights("web").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

//! The operator commands, `agora <noun> <verb>`, as the DC/OS CLI spells them: every one talks
//! to a master through `agora-client`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Where the master is and how answers are shown; accepted after any noun or verb.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The master, HOST:PORT or a URL
    #[arg(
        long,
        env = "AGORA_MASTER",
        default_value = "127.0.0.1:5050",
        global = true
    )]
    pub master: String,
    /// table (for people), json (exactly the API's answer) or yaml
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

/// Whether to follow the deployment an operation starts.
#[derive(Args, Debug, Clone)]
pub struct WaitArgs {
    /// Return once the change is accepted, without waiting for its deployment
    #[arg(long)]
    pub no_wait: bool,
    /// Override a deployment in progress on the same apps
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct Noun<C: Subcommand> {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: C,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Agents with their resources and state
    List,
    /// One agent: resources, attributes, tasks
    Show { id: String },
    /// Stop offering an agent and kill its tasks (they are replaced elsewhere)
    Drain {
        id: String,
        /// Kill grace period of its tasks, in seconds
        #[arg(long)]
        grace: Option<f64>,
        /// Forget the agent once it is drained
        #[arg(long)]
        mark_gone: bool,
    },
    /// Offer a drained or deactivated agent again
    Undrain { id: String },
}

#[derive(Subcommand, Debug)]
pub enum FrameworkCommand {
    /// Frameworks with their roles and allocation
    List,
    /// One framework (by id or name): roles, resources, tasks
    Show { id: String },
    /// Kill a framework's tasks and remove it
    Teardown { id: String },
}

#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Deploy an app from a Marathon app definition (a file, or - for stdin)
    Add {
        file: PathBuf,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Apps with their instances, health and deployments
    List,
    /// One app's definition and status
    Show { id: String },
    /// A new version of an app from a whole or partial definition (a file, or - for stdin)
    Update {
        id: String,
        file: PathBuf,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Run N instances of an app
    Scale {
        id: String,
        instances: u32,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Replace every instance of an app (rolling, as its upgrade strategy says)
    Restart {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Remove an app and kill its tasks
    Remove {
        id: String,
        /// Override a deployment in progress on the app
        #[arg(long)]
        force: bool,
    },
    /// An app's versions, latest first
    Versions { id: String },
    /// Deploy an earlier version of an app again
    Rollback {
        id: String,
        version: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// Deploy a group of apps (a file, or - for stdin), in dependency order
    Add {
        file: PathBuf,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Groups with their apps
    List,
    /// One group: its apps and subgroups
    Show { id: String },
    /// Scale every app below a group by a factor
    Scale {
        id: String,
        factor: f64,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Remove a group with everything below it
    Remove {
        id: String,
        /// Override a deployment in progress
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeploymentCommand {
    /// Deployments in progress
    List,
    /// Follow a deployment until it ends
    Watch { id: String },
    /// Cancel a deployment, rolling its apps back to where they were
    Rollback { id: String },
    /// Cancel a deployment, leaving its apps as they stand
    Stop { id: String },
}

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Tasks of every framework (the master's list), or of one app (the services API's)
    List {
        /// Only this app's tasks, as the services API lists them
        #[arg(long)]
        app: Option<String>,
        /// Also tasks that have ended
        #[arg(long)]
        all: bool,
    },
    /// A task's stdout (or stderr); TASK may be a unique part of its id
    Log {
        task: String,
        /// Keep printing what the task writes, until it ends
        #[arg(long, short = 'f')]
        follow: bool,
        /// stderr instead of stdout
        #[arg(long)]
        stderr: bool,
        /// Only the last N lines
        #[arg(long, short = 'n')]
        lines: Option<usize>,
    },
    /// Kill a task (its app replaces it unless --scale)
    Kill {
        task: String,
        /// Shrink the app by one instead of replacing the task
        #[arg(long)]
        scale: bool,
    },
    /// Run a command inside a running task's container
    Exec {
        task: String,
        /// Give up (and kill the command) after this many seconds
        #[arg(long)]
        timeout: Option<u64>,
        /// The command and its arguments
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Create or replace a job from a Chronos job definition (a file, or - for stdin)
    Add { file: PathBuf },
    /// Jobs with their schedules and last runs
    List,
    /// One job
    Show { name: String },
    /// Run a job now
    Run { name: String },
    /// Remove a job
    Remove { name: String },
    /// A job's runs, latest first, with duration percentiles
    History { name: String },
}

#[derive(Subcommand, Debug)]
pub enum DnsCommand {
    /// Ask the cluster's DNS for a name (A, or SRV for names starting with _)
    Lookup {
        name: String,
        /// The DNS server, HOST:PORT (default: the first agent's)
        #[arg(long)]
        server: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Resources used and total, agents, frameworks, tasks, the leader
    Status,
}

/// `agora completions SHELL`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

/// `agora man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write a page per command (agora.1, agora-app.1, agora-app-list.1, ...) into this
    /// directory instead of printing agora.1
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

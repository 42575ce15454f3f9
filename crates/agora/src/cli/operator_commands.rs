//! The operator commands, `agora <noun> <verb>`, as the DC/OS CLI spells them: every one talks
//! to a master through `agora-client`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Where the master is and how answers are shown; accepted after any noun or verb.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The master, HOST:PORT or a URL; or several, the masters in ZooKeeper
    /// (zk://host:2181/agora) or a list (h1:5050,h2:5050): their leader
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
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

/// Who an operator command or a follower is to the cluster.
#[derive(Args, Debug, Clone)]
pub struct CredentialArgs {
    /// The principal to authenticate as (its secret from AGORA_SECRET or --secret-file)
    #[arg(long, env = "AGORA_PRINCIPAL", global = true)]
    pub principal: Option<String>,
    /// A file holding the principal's secret (never give a secret on the command line: it
    /// shows in process lists)
    #[arg(long, env = "AGORA_SECRET_FILE", global = true)]
    pub secret_file: Option<PathBuf>,
    /// A file holding a bearer token (from `agora login`), instead of a principal; also
    /// AGORA_TOKEN
    #[arg(long, env = "AGORA_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// The CA (PEM) the cluster's certificates are signed by: the master is reached over
    /// https (unless its address says http://), its certificate checked against this CA
    #[arg(long, env = "AGORA_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
}

impl CredentialArgs {
    /// Who the command is to the cluster: a bearer token (AGORA_TOKEN, --token-file), else a
    /// principal and its secret (AGORA_SECRET, --secret-file), else nobody.
    pub fn access(&self) -> anyhow::Result<agora_client::Access> {
        Ok(self.identity()?.with_tls(self.tls()?))
    }

    /// What the command trusts of the cluster's certificates (`--tls-ca`).
    pub fn tls(&self) -> anyhow::Result<Option<agora_client::Tls>> {
        match &self.tls_ca {
            Some(ca) => Ok(Some(agora_client::Tls::new(agora_tls::client(ca, None)?))),
            None => Ok(None),
        }
    }

    /// The principal's secret, from `--secret-file` or AGORA_SECRET, if either gives one.
    pub fn secret(&self) -> anyhow::Result<Option<String>> {
        match (&self.secret_file, std::env::var("AGORA_SECRET").ok()) {
            (Some(path), _) => read(path, "secret").map(Some),
            (None, secret) => Ok(secret),
        }
    }

    fn identity(&self) -> anyhow::Result<agora_client::Access> {
        let token = match (&self.token_file, std::env::var("AGORA_TOKEN").ok()) {
            (Some(path), _) => Some(read(path, "token")?),
            (None, Some(token)) if !token.is_empty() => Some(token),
            _ => None,
        };
        if let Some(token) = token {
            let auth = agora_client::Auth::Bearer(token.trim().to_owned());
            // Unsendable, it would go unsent: every call would then be a stranger's.
            if auth.header().is_none() {
                anyhow::bail!(
                    "the token (AGORA_TOKEN or --token-file) holds characters an HTTP header \
                     cannot carry: is it what `agora login` printed?"
                );
            }
            return Ok(agora_client::Access::new(Some(auth)));
        }
        let Some(principal) = &self.principal else {
            return Ok(agora_client::Access::default());
        };
        if principal.contains(':') {
            // HTTP Basic ends the principal at its first colon.
            anyhow::bail!("--principal {principal}: a principal cannot hold ':'");
        }
        let Some(secret) = self.secret()? else {
            anyhow::bail!(
                "--principal {principal} needs its secret: AGORA_SECRET or --secret-file"
            );
        };
        Ok(agora_client::Access::new(Some(agora_client::Auth::Basic {
            principal: principal.clone(),
            secret,
        })))
    }
}

/// A file's text, trimmed (a secret or a token).
fn read(path: &PathBuf, what: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .with_context(|| format!("cannot read the {what} in {}", path.display()))
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    #[command(flatten)]
    pub client: ClientArgs,
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

/// The nouns whose commands take [`ClientArgs`] (`lb` only under `lb status`).
const NOUNS: [&str; 10] = [
    "node",
    "framework",
    "app",
    "group",
    "deployment",
    "task",
    "job",
    "lb",
    "dns",
    "cluster",
];

/// `agora --master M -o json app list` as kubectl users write it: client flags given before
/// the noun are moved to just after it (after `lb status` for `lb`), where clap takes them.
/// (They cannot be defined at the top as well: `agora agent --master` is another flag.)
/// The client's flags that take a value (`--flag value` or `--flag=value`).
const CLIENT_FLAGS: [&str; 6] = [
    "--master",
    "--output",
    "--principal",
    "--secret-file",
    "--token-file",
    "--tls-ca",
];

pub fn hoist_client_flags(args: Vec<OsString>) -> Vec<OsString> {
    let mut hoisted: Vec<OsString> = Vec::new();
    let mut index = 1;
    while let Some(arg) = args.get(index).and_then(|a| a.to_str()) {
        let takes_value = arg == "-o" || CLIENT_FLAGS.contains(&arg);
        let joined = CLIENT_FLAGS.iter().any(|flag| {
            arg.strip_prefix(flag)
                .is_some_and(|rest| rest.starts_with('='))
        }) || (arg.starts_with("-o") && arg.len() > 2);
        if takes_value && index + 1 < args.len() {
            hoisted.extend_from_slice(&args[index..index + 2]);
            index += 2;
        } else if joined {
            hoisted.push(args[index].clone());
            index += 1;
        } else {
            break;
        }
    }
    let noun = args.get(index).and_then(|a| a.to_str());
    if hoisted.is_empty() || !noun.is_some_and(|n| NOUNS.contains(&n)) {
        return args;
    }
    let insert_at = if noun == Some("lb") && args.get(index + 1).is_some_and(|v| v == "status") {
        index + 2
    } else {
        index + 1
    };
    let mut out: Vec<OsString> = args[..1].to_vec();
    out.extend_from_slice(&args[index..insert_at.min(args.len())]);
    out.extend(hoisted);
    out.extend_from_slice(&args[insert_at.min(args.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::{CredentialArgs, hoist_client_flags};

    fn credentials(
        token_file: Option<&std::path::Path>,
        principal: Option<&str>,
    ) -> CredentialArgs {
        CredentialArgs {
            principal: principal.map(str::to_owned),
            secret_file: None,
            token_file: token_file.map(std::path::Path::to_path_buf),
            tls_ca: None,
        }
    }

    #[test]
    fn a_token_or_principal_that_cannot_be_sent_is_an_error_not_a_stranger() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "header.payload.signature\n").unwrap();
        let access = credentials(Some(&good), None).access().unwrap();
        assert!(access.headers().contains_key("authorization"));
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "header.pay\u{1}load.signature").unwrap();
        let error = credentials(Some(&bad), None).access().unwrap_err();
        assert!(error.to_string().contains("agora login"), "{error}");
        let error = credentials(None, Some("ops:admin")).access().unwrap_err();
        assert!(error.to_string().contains("':'"), "{error}");
    }

    fn hoist(line: &str) -> String {
        let args = line.split(' ').map(Into::into).collect();
        hoist_client_flags(args)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn client_flags_before_the_noun_move_after_it() {
        assert_eq!(
            hoist("agora --master m:1 app list"),
            "agora app --master m:1 list"
        );
        assert_eq!(
            hoist("agora -o json --master=m:1 task exec t -- ls -o x"),
            "agora task -o json --master=m:1 exec t -- ls -o x"
        );
        assert_eq!(hoist("agora -ojson lb status"), "agora lb status -ojson");
        // Left alone: nothing to move, a server role, or no noun at all.
        assert_eq!(
            hoist("agora app list --master m:1"),
            "agora app list --master m:1"
        );
        assert_eq!(
            hoist("agora --master m:1 agent"),
            "agora --master m:1 agent"
        );
        assert_eq!(hoist("agora --master"), "agora --master");
    }
}

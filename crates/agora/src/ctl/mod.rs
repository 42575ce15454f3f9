//! The operator commands (`agora node|framework|app|group|deployment|task|job|lb|dns|cluster`):
//! each a few calls through `agora-client` and a rendering of the answer. Failures become one
//! line saying what failed and what to do (`describe`).

mod apps;
mod cluster;
mod deployments;
mod discovery;
mod frameworks;
mod jobs;
mod nodes;
mod output;
mod tasks;

use std::io::Read;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use agora_client::{Access, AgentClient, ClientError, JobsClient, MasterClient, ServicesClient};

use crate::cli::{ClientArgs, Command, Output};

/// The clients of one master and how to show answers.
pub struct Context {
    pub master: MasterClient,
    pub services: ServicesClient,
    pub jobs: JobsClient,
    pub output: Output,
    /// Who the command is to the cluster (agents included).
    access: Access,
}

impl Context {
    /// The clients of `--master`: an address, or the leader of several masters (in ZooKeeper,
    /// `zk://…`, or a list, `h1:5050,h2:5050`), found once.
    async fn new(args: &ClientArgs) -> anyhow::Result<Context> {
        let access = args.credentials.access()?;
        let master = crate::ha::leader_now(&args.master, &access).await?;
        Ok(Context {
            master: MasterClient::with_access(&master, &access),
            services: ServicesClient::with_access(&master, &access),
            jobs: JobsClient::with_access(&master, &access),
            output: args.output,
            access,
        })
    }

    /// An agent, reached as the command's caller.
    pub fn agent(&self, address: &str) -> AgentClient {
        AgentClient::with_access(address, &self.access)
    }

    /// Prints an answer as asked; `table` renders it for people.
    pub fn print(&self, value: &Value, table: impl FnOnce(&Value) -> String) {
        output::print(self.output, value, table);
    }
}

/// Whether `command` is an operator command (a client of a master), not a server role.
pub fn is_operator(command: &Command) -> bool {
    !matches!(
        command,
        Command::Up(_)
            | Command::Master(_)
            | Command::Agent(_)
            | Command::HollowAgents(_)
            | Command::Executor
            | Command::Registry(_)
            | Command::Lb(crate::cli::LbCommand::Haproxy(_))
    )
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Node(noun) => nodes::run(&Context::new(&noun.client).await?, noun.command).await,
        Command::Framework(noun) => {
            frameworks::run(&Context::new(&noun.client).await?, noun.command).await
        }
        Command::App(noun) => apps::run_app(&Context::new(&noun.client).await?, noun.command).await,
        Command::Group(noun) => {
            apps::run_group(&Context::new(&noun.client).await?, noun.command).await
        }
        Command::Deployment(noun) => {
            deployments::run(&Context::new(&noun.client).await?, noun.command).await
        }
        Command::Task(noun) => tasks::run(&Context::new(&noun.client).await?, noun.command).await,
        Command::Job(noun) => jobs::run(&Context::new(&noun.client).await?, noun.command).await,
        Command::Lb(crate::cli::LbCommand::Status(args)) => {
            discovery::lb_status(&Context::new(&args.client).await?).await
        }
        Command::Dns(noun) => {
            discovery::dns(&Context::new(&noun.client).await?, noun.command).await
        }
        Command::Cluster(noun) => {
            cluster::run(&Context::new(&noun.client).await?, noun.command).await
        }
        Command::Login(args) => login(&args.client).await,
        Command::Completions(args) => {
            use clap::CommandFactory;
            let mut command = crate::cli::Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut command, "agora", &mut script);
            output::write_out(&script);
            Ok(())
        }
        Command::Man(args) => man(args),
        _ => anyhow::bail!("not an operator command"),
    }
}

/// `agora login`: a token for the principal, on stdout.
async fn login(args: &ClientArgs) -> anyhow::Result<()> {
    let credentials = &args.credentials;
    let Some(principal) = &credentials.principal else {
        anyhow::bail!("agora login needs --principal (or AGORA_PRINCIPAL)");
    };
    let secret = match credentials.secret()? {
        Some(secret) => secret,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the secret from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let anonymous = Access::default().with_tls(credentials.tls()?);
    let token = MasterClient::with_access(&args.master, &anonymous)
        .login(principal, &secret)
        .await
        .context("cannot sign in")?;
    println!("{token}");
    Ok(())
}

fn man(args: crate::cli::ManArgs) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let command = crate::cli::Cli::command();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("cannot write the pages into {}", dir.display()))
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("cannot render the page")?;
            output::write_out(&page);
            Ok(())
        }
    }
}

/// A JSON definition from a file, or from stdin for `-`.
pub fn read_definition(file: &Path) -> anyhow::Result<Value> {
    let (text, origin) = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the definition from stdin")?;
        (text, "stdin".to_owned())
    } else {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        (text, file.display().to_string())
    };
    let value: Value = serde_json::from_str(&text)
        .map_err(|error| anyhow::anyhow!("{origin} is not valid JSON: {error}"))?;
    if !value.is_object() {
        anyhow::bail!("{origin} should hold a JSON object");
    }
    Ok(value)
}

/// One failure as the lines a person reads: what failed, why, and what to do.
pub fn describe(error: &anyhow::Error) -> String {
    let Some(client) = error.chain().find_map(|e| e.downcast_ref::<ClientError>()) else {
        return format!("{error:#}");
    };
    let context: Vec<String> = error
        .chain()
        .take_while(|e| e.downcast_ref::<ClientError>().is_none())
        .map(ToString::to_string)
        .collect();
    let prefix = if context.is_empty() {
        String::new()
    } else {
        format!("{}: ", context.join(": "))
    };
    let detail = match client {
        ClientError::Connect { url, message } => {
            let base = url.split("/").take(3).collect::<Vec<_>>().join("/");
            format!(
                "cannot reach {base} ({message}); is agora running there? \
                 --master or AGORA_MASTER says where the master is"
            )
        }
        ClientError::Status { status, url, .. } => {
            let message = client.server_message().unwrap_or_default();
            match status {
                404 if message.is_empty() => format!("not found: {url}"),
                // Marathon's words are for its URL; here the flag says it.
                409 if message.contains("?force=true") => {
                    message.replace("the option '?force=true'", "--force")
                }
                409 => format!("{message} (--force overrides a deployment in progress)"),
                401 => format!(
                    "{message} (authenticate: --principal with AGORA_SECRET or --secret-file, \
                     or a token from `agora login` in AGORA_TOKEN or --token-file)"
                ),
                _ if message.is_empty() => format!("{url} answered {status}"),
                _ => message,
            }
        }
        other => other.to_string(),
    };
    format!("{prefix}{detail}")
}

//! The `agora` binary: one executable for every role. `agora up` runs a whole single-node
//! cluster; `agora master` and `agora agent` run the roles separately; `agora executor` is the
//! built-in executor that agents start for command tasks and task groups.

/// A line on stderr for whoever runs the process; never a panic when stderr is gone (a
/// supervisor that stopped reading), as `eprintln!` would.
macro_rules! to_stderr {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod cli;
mod ctl;
mod executor_socket;
mod ha;
mod hollow;
mod lb;
mod security;
mod serve;
mod state;
mod state_copy;
mod tls;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Every TLS configuration names ring; this covers any client built without one.
    agora_tls::install_default_provider();
    // An agent starts `agora executor` once per task: it skips building the whole CLI.
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|arg| arg == "executor") && args.next().is_none() {
        if std::env::var_os(agora_agent::LAUNCHER_ENV).is_some() {
            // Before any thread starts: the launcher forks executors.
            let code = agora_agent::serve_launcher(launched_executor);
            return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        return exit_code(run(cli::Command::Executor));
    }
    let args = cli::hoist_client_flags(std::env::args_os().collect());
    let command = cli::Cli::parse_from(args).command;
    if ctl::is_operator(&command) {
        return run_operator_command(command);
    }
    exit_code(run(command))
}

/// An operator command: 0 when it did what was asked, 1 with one readable error otherwise
/// (clap has already exited with 2 for a usage error).
fn run_operator_command(command: cli::Command) -> std::process::ExitCode {
    // Quiet unless asked: people read the command's own output.
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGORA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = executor_runtime()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(ctl::run(command)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agora: {}", ctl::describe(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The built-in executor in a process the launcher forked: logging and its single-threaded
/// runtime made first (a warm container does this before its task is known; no thread is
/// started, so it may still become another user), then run.
fn launched_executor() -> Box<dyn FnOnce() -> i32> {
    init_logging(&cli::Command::Executor);
    match executor_runtime() {
        Ok(runtime) => Box::new(move || {
            if ended_well(runtime.block_on(executor())) {
                0
            } else {
                1
            }
        }),
        Err(error) => Box::new(move || {
            eprintln!("agora: cannot start the async runtime: {error}");
            1
        }),
    }
}

/// One per task: a single thread starts faster and weighs less.
fn executor_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

async fn executor() -> anyhow::Result<()> {
    match agora_agent::run_command_executor().await {
        Ok(0) => Ok(()),
        Ok(code) => anyhow::bail!("executor exited with code {code}"),
        Err(error) => Err(error.into()),
    }
}

fn exit_code(success: bool) -> std::process::ExitCode {
    if success {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// Runs one role to its end; returns whether it ended well.
fn run(command: cli::Command) -> bool {
    init_logging(&command);
    let runtime = match command {
        cli::Command::Executor => executor_runtime(),
        // Handlers write checkpoints and spawn processes synchronously; more workers than
        // cores keep the rest of the API answering while some of them wait on the disk.
        _ => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(server_threads())
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("agora: cannot start the async runtime: {error}");
            return false;
        }
    };
    let result = runtime.block_on(async {
        match command {
            cli::Command::Up(args) => serve::up(args).await,
            cli::Command::Master(args) => serve::master(args).await,
            cli::Command::Agent(args) => serve::agent(args).await,
            cli::Command::HollowAgents(args) => hollow::run(args).await,
            cli::Command::Lb(cli::LbCommand::Haproxy(args)) => lb::haproxy(args).await,
            cli::Command::Registry(cli::RegistryCommand::Export(args)) => {
                state_copy::export(args).await
            }
            cli::Command::Registry(cli::RegistryCommand::Import(args)) => {
                state_copy::import(args).await
            }
            cli::Command::Executor => executor().await,
            operator => ctl::run(operator).await,
        }
    });
    ended_well(result)
}

/// Whether a role ended well; why not, on stderr.
fn ended_well(result: anyhow::Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(error) => {
            eprintln!("agora: {error:#}");
            false
        }
    }
}

fn server_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    (cores * 2).max(4)
}

fn init_logging(command: &cli::Command) {
    let default = match command {
        cli::Command::Executor => "warn",
        // Thousands of agents' registrations are noise; their summary is on /state.
        cli::Command::HollowAgents(_) => "warn",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGORA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

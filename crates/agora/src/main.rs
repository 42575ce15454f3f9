//! The `agora` binary: one executable for every role. `agora up` runs a whole single-node
//! cluster; `agora master` and `agora agent` run the roles separately; `agora executor` is the
//! built-in executor that agents start for command tasks and task groups.

mod cli;
mod serve;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_logging(&cli);
    let runtime = match cli.command {
        // One per task: a single thread starts faster and weighs less.
        cli::Command::Executor => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
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
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Up(args) => serve::up(args).await,
            cli::Command::Master(args) => serve::master(args).await,
            cli::Command::Agent(args) => serve::agent(args).await,
            cli::Command::Executor => match agora_agent::run_command_executor().await {
                Ok(0) => Ok(()),
                Ok(code) => anyhow::bail!("executor exited with code {code}"),
                Err(message) => anyhow::bail!(message),
            },
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agora: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn server_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    (cores * 2).max(4)
}

fn init_logging(cli: &cli::Cli) {
    let default = match cli.command {
        cli::Command::Executor => "warn",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGORA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

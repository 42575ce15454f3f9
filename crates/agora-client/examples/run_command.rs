//! A complete framework in one page: subscribes to a master, runs one shell command on the
//! first offer that fits, prints every state change, then tears itself down.
//!
//! ```text
//! cargo run -p agora-client --example run_command -- 127.0.0.1:5050 'echo hello; sleep 1'
//! ```

use std::process::ExitCode;

use agora_api::mesos::{CommandInfo, FrameworkInfo, Id, ScalarValue, TaskInfo, WireResource};
use agora_api::scheduler::Event;
use agora_client::{Scheduler, SchedulerOptions};

fn scalar(name: &str, value: f64) -> WireResource {
    WireResource {
        name: name.into(),
        kind: "SCALAR".into(),
        scalar: Some(ScalarValue { value }),
        role: Some("*".into()),
        ..WireResource::default()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(master), Some(command)) = (args.next(), args.next()) else {
        eprintln!("usage: run_command MASTER_HOST:PORT 'SHELL COMMAND'");
        return ExitCode::from(2);
    };
    let info = FrameworkInfo {
        user: "root".into(),
        name: "run-command".into(),
        ..FrameworkInfo::default()
    };
    let mut scheduler = match Scheduler::subscribe(&master, info, SchedulerOptions::default()).await
    {
        Ok(scheduler) => scheduler,
        Err(error) => {
            eprintln!("cannot subscribe: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "subscribed as framework {}",
        scheduler.framework_id().unwrap_or_default()
    );
    let mut launched = false;
    while let Some(event) = scheduler.next_event().await {
        match event {
            Event::Offers { offers } => {
                for offer in offers.offers {
                    if launched {
                        let _ = scheduler.decline(vec![offer.id], None).await;
                        continue;
                    }
                    let task = TaskInfo {
                        name: "command".into(),
                        task_id: Id::new("command-1"),
                        agent_id: offer.agent_id.clone(),
                        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
                        command: Some(CommandInfo {
                            value: Some(command.clone()),
                            ..CommandInfo::default()
                        }),
                        ..TaskInfo::default()
                    };
                    println!(
                        "launching on agent {} ({})",
                        offer.agent_id.value, offer.hostname
                    );
                    if let Err(error) = scheduler.launch(vec![offer.id], vec![task], None).await {
                        eprintln!("launch failed: {error}");
                        return ExitCode::FAILURE;
                    }
                    launched = true;
                }
            }
            Event::Update { update } => {
                let status = update.status;
                println!(
                    "{} {}",
                    status.state,
                    status.message.clone().unwrap_or_default()
                );
                if status.state.is_terminal() {
                    let ok = status.state == agora_types::TaskState::Finished;
                    let _ = scheduler.teardown().await;
                    return if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    };
                }
            }
            Event::Error { error } => {
                eprintln!("master error: {}", error.message);
                return ExitCode::FAILURE;
            }
            _ => {}
        }
    }
    ExitCode::FAILURE
}

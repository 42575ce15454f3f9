//! Status updates: only the agent running a task speaks for it, terminal states free the
//! task's resources, acknowledgements complete it; kills and reconciliation.

use agora_api::agent_protocol::{AgentCommand, StatusUpdate};
use agora_api::mesos::{Id, TaskStatus};
use agora_api::scheduler::{Acknowledge, ReconcileTask};
use agora_types::{TaskId, TaskState};

use super::support::*;

fn acknowledge(c: &mut Cluster, uuid: &str) {
    let ack = Acknowledge {
        agent_id: Id::new(c.agent.id.as_str()),
        task_id: Id::new("t1"),
        uuid: uuid.to_owned(),
    };
    let framework_id = c.scheduler.id.clone();
    c.master.acknowledge(&framework_id, ack);
}

#[test]
fn a_terminal_update_frees_the_resources_and_its_acknowledgement_completes_the_task() {
    let mut c = cluster();
    let mut update = c
        .agent
        .update(&c.scheduler, "t1", TaskState::Finished, "u-done");
    update.status.message = Some("exited 0".to_owned());
    c.master.agent_status_update(update);

    let forwarded = c.scheduler.only_update();
    assert_eq!(forwarded.state, TaskState::Finished);
    assert_eq!(
        forwarded.uuid.as_deref(),
        Some("u-done"),
        "to be acknowledged"
    );
    assert_eq!(forwarded.message.as_deref(), Some("exited 0"));
    assert_eq!(forwarded.agent_id, Some(Id::new(c.agent.id.as_str())));
    assert_eq!(
        c.task("t1")
            .map(|t| t.statuses.views().map(|s| s.state).collect::<Vec<_>>()),
        Some(vec![
            TaskState::Staging,
            TaskState::Running,
            TaskState::Finished
        ])
    );
    assert_eq!(c.master.metrics.valid_status_updates, 2);
    assert_eq!(c.available(), resources(AGENT_RESOURCES), "freed at once");
    let task = c.task("t1").expect("kept until acknowledged");
    assert!(task.released);

    acknowledge(&mut c, "u-running");
    assert!(
        c.task("t1").is_some(),
        "an older update's ack does not complete it"
    );

    acknowledge(&mut c, "u-done");
    assert!(c.task("t1").is_none());
    assert_eq!(
        c.completed_task_states(),
        vec![("t1".to_owned(), TaskState::Finished)]
    );
    assert!(c.master.agents[&c.agent.id].tasks.is_empty());
    assert_eq!(
        c.agent.commands(),
        ["u-running", "u-done"]
            .map(|uuid| AgentCommand::Acknowledge {
                framework_id: c.scheduler.id.to_string(),
                task_id: "t1".to_owned(),
                uuid: uuid.to_owned(),
            })
            .to_vec(),
        "every acknowledgement reaches the agent"
    );
    assert_eq!(c.available(), resources(AGENT_RESOURCES), "freed only once");
}

#[test]
fn an_update_from_an_agent_that_does_not_run_the_task_is_dropped() {
    let mut c = cluster();
    let other = add_agent(&mut c.master, "host-2", AGENT_RESOURCES);

    c.master
        .agent_status_update(other.update(&c.scheduler, "t1", TaskState::Failed, "u-forged"));

    assert!(c.scheduler.events().is_empty());
    assert_eq!(c.task("t1").map(|t| t.state), Some(TaskState::Running));
    assert_eq!(c.master.metrics.invalid_status_updates, 1);
    assert_eq!(
        Some(c.available()),
        resources(AGENT_RESOURCES).checked_sub(&resources(TASK_RESOURCES)),
        "the task's resources stay in use"
    );
}

#[test]
fn an_update_for_an_unknown_framework_shuts_that_framework_down_on_the_agent() {
    let mut c = cluster();
    c.master.agent_status_update(StatusUpdate {
        agent_id: c.agent.id.to_string(),
        framework_id: "a-removed-framework".to_owned(),
        status: TaskStatus::new("t9", TaskState::Running),
    });

    assert_eq!(
        c.agent.commands(),
        vec![AgentCommand::ShutdownFramework {
            framework_id: "a-removed-framework".to_owned(),
        }]
    );
    assert_eq!(c.master.metrics.invalid_status_updates, 1);
    assert!(c.scheduler.events().is_empty());
}

#[test]
fn killing_asks_the_tasks_agent_and_an_unknown_task_is_reported_lost() {
    let mut c = cluster();
    let framework_id = c.scheduler.id.clone();

    c.master.kill_task(&framework_id, &TaskId::new("t1"), None);
    c.master
        .kill_task(&framework_id, &TaskId::new("never-launched"), None);

    assert_eq!(
        c.agent.commands(),
        vec![AgentCommand::KillTask {
            framework_id: framework_id.to_string(),
            task_id: "t1".to_owned(),
            kill_policy: None,
        }]
    );
    let update = c.scheduler.only_update();
    assert_eq!(update.task_id, Id::new("never-launched"));
    assert_eq!(
        update.state,
        TaskState::Lost,
        "TASK_UNKNOWN to a framework that is not partition-aware"
    );
    assert_eq!(update.reason.as_deref(), Some("REASON_RECONCILIATION"));
    assert_eq!(
        c.task("t1").map(|t| t.state),
        Some(TaskState::Running),
        "the agent decides when it is killed"
    );
}

#[test]
fn explicit_reconciliation_answers_known_tasks_and_unknown_ones_per_their_agent() {
    let mut c = cluster_with(partition_aware("web"));
    let framework_id = c.scheduler.id.clone();
    let ask = |task: &str, agent: Option<&str>| ReconcileTask {
        task_id: Id::new(task),
        agent_id: agent.map(Id::new),
    };
    let agent_id = c.agent.id.to_string();

    c.master.reconcile(
        &framework_id,
        vec![
            ask("t1", None),
            ask("t-on-a-live-agent", Some(&agent_id)),
            ask("t-nowhere", Some("an-unknown-agent")),
        ],
    );

    let answers: Vec<(String, TaskState)> = c
        .scheduler
        .updates()
        .into_iter()
        .map(|status| {
            assert_eq!(status.reason.as_deref(), Some("REASON_RECONCILIATION"));
            assert_eq!(status.uuid, None);
            (status.task_id.value, status.state)
        })
        .collect();
    assert_eq!(
        answers,
        vec![
            ("t1".to_owned(), TaskState::Running),
            ("t-on-a-live-agent".to_owned(), TaskState::Gone),
            ("t-nowhere".to_owned(), TaskState::Unknown),
        ]
    );
}

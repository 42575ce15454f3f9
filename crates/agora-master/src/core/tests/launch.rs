//! ACCEPT with LAUNCH: valid tasks consume the offer and go to the agent; invalid ones are
//! refused with TASK_ERROR (or TASK_LOST/DROPPED for invalid offers) and the reason why.

use agora_api::agent_protocol::AgentCommand;
use agora_api::mesos::{CommandInfo, ExecutorInfo, Id, TaskInfo, TaskStatus};
use agora_api::scheduler::Offer;
use agora_types::{TaskId, TaskState};

use super::support::*;
use crate::config::MasterConfig;

#[test]
fn a_launched_task_consumes_its_resources_and_goes_to_the_agent() {
    let mut master = master();
    let mut agent = add_agent(&mut master, "host-1", AGENT_RESOURCES);
    agent.commands();
    let mut scheduler = add_framework(&mut master, framework_info("web"));
    let offer = next_offer(&mut master, &mut scheduler);
    let task = command_task("t1", &offer, TASK_RESOURCES);

    launch(&mut master, &scheduler, &offer, vec![task.clone()]);

    assert!(scheduler.updates().is_empty(), "nothing refused");
    let stored = &master.frameworks[&scheduler.id].tasks[&TaskId::new("t1")];
    assert_eq!(stored.state, TaskState::Staging);
    assert_eq!(stored.resources, resources(TASK_RESOURCES));
    assert_eq!(
        stored.statuses.views().map(|s| s.state).collect::<Vec<_>>(),
        vec![TaskState::Staging]
    );
    assert!(master.offers.is_empty(), "the offer is used up");
    let commands = agent.commands();
    let [
        AgentCommand::RunTasks {
            tasks,
            executor: None,
            group: false,
            ..
        },
    ] = &commands[..]
    else {
        panic!("expected one RUN_TASKS, got {commands:?}");
    };
    assert_eq!(tasks, &vec![task]);
    let rest = resources(AGENT_RESOURCES)
        .checked_sub(&resources(TASK_RESOURCES))
        .expect("the task fits");
    assert_eq!(master.allocator.available(&agent.id), Some(rest.clone()));

    assert!(
        next_offers(&mut master, &mut scheduler).is_empty(),
        "the unused rest is refused for 5 s"
    );
    advance_clock(&mut master, 6);
    assert_eq!(offered(&next_offer(&mut master, &mut scheduler)), rest);
}

/// Launches `task(offer)` on a fresh cluster's only offer; the one update the scheduler got.
fn refused_launch(task: impl Fn(&Offer) -> TaskInfo) -> TaskStatus {
    let mut master = master();
    let mut agent = add_agent(&mut master, "host-1", AGENT_RESOURCES);
    agent.commands();
    let mut scheduler = add_framework(&mut master, framework_info("web"));
    let offer = next_offer(&mut master, &mut scheduler);

    launch(&mut master, &scheduler, &offer, vec![task(&offer)]);

    assert!(agent.commands().is_empty(), "nothing goes to the agent");
    assert!(master.frameworks[&scheduler.id].tasks.is_empty());
    assert_eq!(
        master.allocator.available(&agent.id),
        Some(resources(AGENT_RESOURCES)),
        "the whole offer comes back"
    );
    scheduler.only_update()
}

/// Builds a task for an offer.
type TaskOfOffer = Box<dyn Fn(&Offer) -> TaskInfo>;

#[test]
fn invalid_tasks_are_refused_with_task_error_and_the_reason() {
    let cases: Vec<(&str, TaskOfOffer, String)> = vec![
        (
            "more than offered",
            Box::new(|offer| command_task("t1", offer, "cpus:8;mem:128")),
            format!(
                "Task uses more resources {} than available {}",
                resources("cpus:8;mem:128"),
                resources(AGENT_RESOURCES)
            ),
        ),
        (
            "another agent",
            Box::new(|offer| TaskInfo {
                agent_id: Id::new("some-other-agent"),
                ..command_task("t1", offer, TASK_RESOURCES)
            }),
            "Task uses agent some-other-agent but the offer is for agent master-1-S0".to_owned(),
        ),
        (
            "an empty command",
            Box::new(|offer| TaskInfo {
                command: Some(CommandInfo {
                    value: Some(String::new()),
                    ..CommandInfo::default()
                }),
                ..command_task("t1", offer, TASK_RESOURCES)
            }),
            "Task's CommandInfo has no 'value'".to_owned(),
        ),
        (
            "a command and an executor",
            Box::new(|offer| TaskInfo {
                executor: Some(ExecutorInfo {
                    executor_id: Id::new("e1"),
                    ..ExecutorInfo::default()
                }),
                ..command_task("t1", offer, TASK_RESOURCES)
            }),
            "Task should have at most one of CommandInfo or ExecutorInfo present".to_owned(),
        ),
        (
            "a slash in its id",
            Box::new(|offer| command_task("a/b", offer, TASK_RESOURCES)),
            "Task id 'a/b' contains '/', '\\' or a control character".to_owned(),
        ),
    ];
    for (what, task, expected) in cases {
        let update = refused_launch(task);
        assert_eq!(update.state, TaskState::Error, "{what}");
        assert_eq!(update.source.as_deref(), Some("SOURCE_MASTER"), "{what}");
        assert_eq!(
            update.reason.as_deref(),
            Some("REASON_TASK_INVALID"),
            "{what}"
        );
        assert_eq!(update.message, Some(expected), "{what}");
    }
}

#[test]
fn a_task_id_already_in_use_is_refused_and_the_first_task_launched() {
    let mut master = master();
    add_agent(&mut master, "host-1", AGENT_RESOURCES);
    let mut scheduler = add_framework(&mut master, framework_info("web"));
    let offer = next_offer(&mut master, &mut scheduler);

    launch(
        &mut master,
        &scheduler,
        &offer,
        vec![
            command_task("t1", &offer, TASK_RESOURCES),
            command_task("t1", &offer, "cpus:2;mem:256"),
        ],
    );

    let update = scheduler.only_update();
    assert_eq!(
        (update.state, update.message.as_deref()),
        (TaskState::Error, Some("Task has duplicate ID: t1"))
    );
    let tasks = &master.frameworks[&scheduler.id].tasks;
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[&TaskId::new("t1")].resources,
        resources(TASK_RESOURCES),
        "the first one runs"
    );
}

#[test]
fn tasks_on_an_offer_no_longer_valid_are_lost_or_dropped() {
    for (info, state) in [
        (framework_info("web"), TaskState::Lost),
        (partition_aware("web"), TaskState::Dropped),
    ] {
        let mut master = master();
        let mut agent = add_agent(&mut master, "host-1", AGENT_RESOURCES);
        agent.commands();
        let mut scheduler = add_framework(&mut master, info);
        let offer = next_offer(&mut master, &mut scheduler);
        master.decline(
            &scheduler.id,
            agora_api::scheduler::Decline {
                offer_ids: vec![offer.id.clone()],
                filters: None,
            },
        );

        launch(
            &mut master,
            &scheduler,
            &offer,
            vec![command_task("t1", &offer, TASK_RESOURCES)],
        );

        let update = scheduler.only_update();
        assert_eq!(update.state, state);
        assert_eq!(update.reason.as_deref(), Some("REASON_INVALID_OFFERS"));
        assert_eq!(
            update.message,
            Some(format!("Offer {} is no longer valid", offer.id.value))
        );
        assert!(agent.commands().is_empty());
        assert!(master.frameworks[&scheduler.id].tasks.is_empty());
    }
}

#[test]
fn offers_of_two_agents_cannot_be_used_together_and_both_come_back() {
    let mut master = master();
    let first = add_agent(&mut master, "host-1", AGENT_RESOURCES);
    let second = add_agent(&mut master, "host-2", AGENT_RESOURCES);
    let mut scheduler = add_framework(&mut master, framework_info("web"));
    let offers = next_offers(&mut master, &mut scheduler);
    assert_eq!(offers.len(), 2);

    master.accept(
        &scheduler.id,
        launch_call(
            &[&offers[0].id, &offers[1].id],
            vec![command_task("t1", &offers[0], TASK_RESOURCES)],
            5.0,
        ),
    );

    let update = scheduler.only_update();
    assert_eq!(update.state, TaskState::Lost);
    assert_eq!(
        update.message.as_deref(),
        Some("Aggregated offers must belong to one single agent")
    );
    assert!(master.offers.is_empty());
    for agent in [&first, &second] {
        assert_eq!(
            master.allocator.available(&agent.id),
            Some(resources(AGENT_RESOURCES))
        );
    }
    assert_eq!(
        next_offers(&mut master, &mut scheduler).len(),
        2,
        "they come back without a filter"
    );
}

#[test]
fn a_task_the_acls_do_not_let_run_is_refused_as_unauthorized() {
    let acls = agora_http::auth::acl::Acls::parse(
        r#"{"run_tasks": [{"principals": {"values": ["web-team"]}, "users": {"type": "NONE"}}]}"#,
    )
    .expect("valid ACLs");
    let mut master = master_with(MasterConfig {
        acls: std::sync::Arc::new(acls),
        ..MasterConfig::default()
    });
    let mut agent = add_agent(&mut master, "host-1", AGENT_RESOURCES);
    agent.commands();
    let mut info = framework_info("web");
    info.principal = Some("web-team".to_owned());
    let mut scheduler = add_framework(&mut master, info);
    let offer = next_offer(&mut master, &mut scheduler);

    launch(
        &mut master,
        &scheduler,
        &offer,
        vec![command_task("t1", &offer, TASK_RESOURCES)],
    );

    let update = scheduler.only_update();
    assert_eq!(update.state, TaskState::Error);
    assert_eq!(update.reason.as_deref(), Some("REASON_TASK_UNAUTHORIZED"));
    assert_eq!(
        update.message.as_deref(),
        Some("Not authorized to launch as user 'root' ('run_tasks' in the ACLs)")
    );
    assert!(agent.commands().is_empty());
    assert!(master.frameworks[&scheduler.id].tasks.is_empty());
}

#[test]
fn offers_allocated_to_two_roles_cannot_be_used_together() {
    let mut master = master();
    let mut agent = add_agent(&mut master, "host-1", AGENT_RESOURCES);
    agent.commands();
    let mut info = framework_info("multi");
    info.roles = vec!["a".into(), "b".into()];
    info.capabilities = vec![agora_api::mesos::Capability {
        kind: "MULTI_ROLE".into(),
    }];
    let mut scheduler = add_framework(&mut master, info);
    let offer = next_offer(&mut master, &mut scheduler);
    // A MULTI_ROLE framework may hold an offer per role of one agent: the second is made by
    // hand here, as the allocator makes it when both roles are due resources.
    let first = master.offers[&agora_types::OfferId::new(&offer.id.value)].clone();
    let other_role = if first.role == "a" { "b" } else { "a" };
    let second_id = agora_types::OfferId::new("second");
    master.offers.insert(
        second_id.clone(),
        crate::core::OutstandingOffer {
            role: other_role.to_owned(),
            resources: agora_types::Resources::new(),
            ..first.clone()
        },
    );

    master.accept(
        &scheduler.id,
        launch_call(
            &[&offer.id, &Id::new(second_id.as_str())],
            vec![command_task("t1", &offer, TASK_RESOURCES)],
            5.0,
        ),
    );

    let update = scheduler.only_update();
    assert_eq!(update.state, TaskState::Lost);
    assert_eq!(update.reason.as_deref(), Some("REASON_INVALID_OFFERS"));
    assert_eq!(
        update.message,
        Some(format!(
            "Aggregated offers must be allocated to the same role. Offer second uses role \
             '{other_role}' but another is using role '{}'",
            first.role
        ))
    );
    assert!(agent.commands().is_empty(), "nothing launched");
    assert!(master.frameworks[&scheduler.id].tasks.is_empty());
}

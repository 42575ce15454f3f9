//! Agent registration, re-registration with task reconciliation, the failure detector, and
//! operator maintenance (gone, deactivated).

use std::time::{Duration, Instant};

use agora_api::agent_protocol::{AgentCommand, AgentTask};
use agora_api::mesos::{Id, TaskStatus};
use agora_api::scheduler::Event;
use agora_types::{AgentId, FrameworkId, TaskId, TaskState};

use super::support::*;
use crate::core::{AgentConnection, Master};

#[test]
fn a_new_agent_gets_the_next_id_a_secret_and_its_resources_in_the_allocator() {
    let mut master = master();
    let first = add_agent(&mut master, "host-1", AGENT_RESOURCES);
    let second = add_agent(&mut master, "host-2", "cpus:2;mem:1024");

    assert_eq!(first.id.as_str(), "master-1-S0");
    assert_eq!(second.id.as_str(), "master-1-S1");
    assert_ne!(first.token, second.token, "each agent has its own secret");
    let agent = &master.agents[&first.id];
    assert!(agent.registered && agent.is_active());
    assert!(agent.holds(Some(&first.token)) && !agent.holds(Some(&second.token)));
    assert_eq!(
        master.allocator.available(&first.id),
        Some(resources(AGENT_RESOURCES))
    );
    assert_eq!(master.metrics.agent_registrations, 2);
    let stored: Vec<String> = persisted(&master)
        .agents
        .into_iter()
        .map(|record| record.id)
        .collect();
    assert_eq!(stored.len(), 2);
    assert!(stored.contains(&first.id.to_string()) && stored.contains(&second.id.to_string()));
}

#[test]
fn a_kill_asked_while_the_agent_is_away_reaches_it_when_it_comes_back() {
    let mut c = cluster();
    c.master.agent_disconnected(&c.agent.id, c.agent.generation);
    c.master
        .kill_task(&c.scheduler.id, &TaskId::new("t1"), None);
    c.master
        .kill_task(&c.scheduler.id, &TaskId::new("t1"), None);

    let request = c
        .agent
        .reregistration(vec![c.reported_task(TaskState::Running)]);
    reregister(&mut c.master, &mut c.agent, request).expect("re-registration");
    let kills: Vec<AgentCommand> = c
        .agent
        .commands()
        .into_iter()
        .filter(|command| matches!(command, AgentCommand::KillTask { .. }))
        .collect();
    assert_eq!(
        kills,
        vec![AgentCommand::KillTask {
            framework_id: c.scheduler.id.to_string(),
            task_id: "t1".to_owned(),
            kill_policy: None,
        }],
        "the kill, once"
    );

    // Sent once: the next re-registration carries no kill.
    c.master.agent_disconnected(&c.agent.id, c.agent.generation);
    let request = c
        .agent
        .reregistration(vec![c.reported_task(TaskState::Running)]);
    reregister(&mut c.master, &mut c.agent, request).expect("re-registration");
    assert!(
        !c.agent
            .commands()
            .iter()
            .any(|command| matches!(command, AgentCommand::KillTask { .. }))
    );
}

#[test]
fn reregistering_with_its_secret_keeps_the_id_and_the_running_task() {
    let mut c = cluster();
    let registered_time = c.master.agents[&c.agent.id].registered_time;
    c.master.agent_disconnected(&c.agent.id, c.agent.generation);
    assert!(matches!(
        c.master.agents[&c.agent.id].connection,
        AgentConnection::Disconnected
    ));

    let request = c
        .agent
        .reregistration(vec![c.reported_task(TaskState::Running)]);
    reregister(&mut c.master, &mut c.agent, request).expect("re-registration");

    let agent = &c.master.agents[&c.agent.id];
    assert!(agent.is_active());
    assert_eq!(agent.registered_time, registered_time);
    assert!(agent.reregistered_time.is_some());
    assert!(
        agent
            .tasks
            .contains(&(c.scheduler.id.clone(), TaskId::new("t1")))
    );
    assert_eq!(c.task("t1").map(|t| t.state), Some(TaskState::Running));
    assert_eq!(
        c.agent.commands(),
        vec![AgentCommand::Registered {
            agent_id: c.agent.id.to_string(),
            master_id: MASTER_ID.to_owned(),
            ping_interval_ms: 15_000,
            token: None,
        }],
        "no new secret, nothing to kill"
    );
    assert_eq!(
        c.available(),
        resources(AGENT_RESOURCES)
            .checked_sub(&resources(TASK_RESOURCES))
            .expect("the task fits"),
        "the task's resources stay in use"
    );
    assert_eq!(c.master.metrics.agent_reregistrations, 1);
    assert!(c.scheduler.updates().is_empty());
}

#[test]
fn another_agents_id_is_refused_without_its_secret() {
    let mut c = cluster();
    let mut intruder = agent_request("intruder", "cpus:64;mem:65536");
    intruder.agent_id = Some(c.agent.id.to_string());
    let expected = format!(
        "agent id {} belongs to another agent: its secret was not given",
        c.agent.id
    );

    for token in [Some("not-the-secret"), None] {
        let (sender, mut inbox) = Inbox::new();
        let refused = c
            .master
            .register_agent(as_read(&intruder), token, sender)
            .map(|_| ())
            .map_err(|refused| refused.to_string());
        assert_eq!(refused, Err(expected.clone()));
        assert!(inbox.records().is_empty(), "the intruder is told nothing");
    }

    assert_eq!(c.master.metrics.invalid_agent_registrations, 2);
    let agent = &c.master.agents[&c.agent.id];
    assert_eq!(agent.endpoint, "host-1:5051");
    assert_eq!(*agent.total, resources(AGENT_RESOURCES));
    assert!(
        matches!(&agent.connection, AgentConnection::Connected(link) if link.generation == c.agent.generation)
    );
    assert_eq!(c.task("t1").map(|t| t.state), Some(TaskState::Running));
}

#[test]
fn a_task_the_reregistering_agent_does_not_report_is_lost_and_freed() {
    let mut c = cluster();
    let request = c.agent.reregistration(Vec::new());
    reregister(&mut c.master, &mut c.agent, request).expect("re-registration");

    let update = c.scheduler.only_update();
    assert_eq!(
        (update.task_id.value.as_str(), update.state),
        ("t1", TaskState::Lost)
    );
    assert_eq!(update.source.as_deref(), Some("SOURCE_MASTER"));
    assert_eq!(update.reason.as_deref(), Some("REASON_RECONCILIATION"));
    assert_eq!(
        update.message.as_deref(),
        Some("Task is unknown to the agent")
    );
    assert_eq!(
        update.uuid, None,
        "the master's own updates are not acknowledged"
    );
    assert_eq!(
        c.completed_task_states(),
        vec![("t1".to_owned(), TaskState::Lost)]
    );
    assert!(c.master.agents[&c.agent.id].tasks.is_empty());
    assert_eq!(c.available(), resources(AGENT_RESOURCES));
}

#[test]
fn reregistration_kills_unknown_tasks_of_known_frameworks_and_shuts_down_unknown_frameworks() {
    let mut c = cluster();
    let running = c.reported_task(TaskState::Running);
    let mut stale = running.clone();
    std::sync::Arc::make_mut(&mut stale.task).task_id = Id::new("t-stale");
    stale.status = TaskStatus::new("t-stale", TaskState::Running);
    let mut orphan = running.clone();
    orphan.framework_id = "framework-of-another-master".to_owned();
    std::sync::Arc::make_mut(&mut orphan.task).task_id = Id::new("t-orphan");

    let request = c.agent.reregistration(vec![running, stale, orphan]);
    reregister(&mut c.master, &mut c.agent, request).expect("re-registration");

    let commands = c.agent.commands();
    assert!(matches!(commands[0], AgentCommand::Registered { .. }));
    assert_eq!(
        commands[1..],
        [
            AgentCommand::ShutdownFramework {
                framework_id: "framework-of-another-master".to_owned(),
            },
            AgentCommand::KillTask {
                framework_id: c.scheduler.id.to_string(),
                task_id: "t-stale".to_owned(),
                kill_policy: None,
            },
        ]
    );
    let framework = &c.master.frameworks[&c.scheduler.id];
    assert_eq!(
        framework.tasks.keys().collect::<Vec<_>>(),
        vec![&TaskId::new("t1")]
    );
    assert!(
        !c.master
            .frameworks
            .contains_key(&FrameworkId::new("framework-of-another-master"))
    );
}

#[test]
fn an_agent_reregistering_with_a_new_master_brings_its_framework_and_tasks_back() {
    let mut master = master();
    let mut request = agent_request("host-1", AGENT_RESOURCES);
    request.agent_id = Some("agent-of-the-old-master".to_owned());
    let mut info = framework_info("web");
    info.id = Some(Id::new("fw-old"));
    request.frameworks = vec![info];
    let offer_like = agora_api::scheduler::Offer {
        agent_id: Id::new("agent-of-the-old-master"),
        ..Default::default()
    };
    request.tasks = vec![AgentTask {
        framework_id: "fw-old".to_owned(),
        task: command_task("t1", &offer_like, TASK_RESOURCES).into(),
        status: TaskStatus::new("t1", TaskState::Running),
    }];

    let (sender, _inbox) = Inbox::new();
    let (id, _) = master
        .register_agent(as_read(&request), Some("the-agents-secret"), sender)
        .expect("an agent the master has no secret for registers");

    assert_eq!(id.as_str(), "agent-of-the-old-master");
    assert!(master.agents[&id].holds(Some("the-agents-secret")));
    let framework = &master.frameworks[&FrameworkId::new("fw-old")];
    assert!(framework.recovered && !framework.connected());
    let task = &framework.tasks[&TaskId::new("t1")];
    assert_eq!(
        (task.state, &*task.role, &task.agent_id),
        (TaskState::Running, "*", &id)
    );
    assert_eq!(
        master.allocator.available(&id),
        resources(AGENT_RESOURCES).checked_sub(&resources(TASK_RESOURCES))
    );
}

/// Makes the agent look silent for longer than its timeout, then runs the failure detector.
fn time_out(c: &mut Cluster) {
    let timeout = c.master.config.agent_timeout();
    if let Some(agent) = c.master.agents.get_mut(&c.agent.id) {
        agent.last_seen = Instant::now() - timeout - Duration::from_secs(1);
    }
    c.master.check_agent_timeouts();
}

#[test]
fn a_recovered_agent_has_the_reregistration_timeout_to_come_back() {
    let store = std::sync::Arc::new(agora_store::MemoryStore::new());
    let mut before = master_over(store.clone(), crate::config::MasterConfig::default());
    let agent = add_agent(&mut before, "a1", AGENT_RESOURCES);
    before.registry.barrier().wait().expect("committed");
    let config = crate::config::MasterConfig {
        agent_reregister_timeout: Duration::from_secs(600),
        ..crate::config::MasterConfig::default()
    };
    let mut after = master_over(store, config);
    let silent_for = |master: &mut Master, how_long: Duration| {
        if let Some(recovered) = master.agents.get_mut(&agent.id) {
            recovered.last_seen = Instant::now() - how_long;
        }
        master.check_agent_timeouts();
        master.agents[&agent.id].is_reachable()
    };
    // Past the ping timeout (75 s) a recovered agent is still awaited, as during a failover.
    assert!(silent_for(&mut after, Duration::from_secs(120)));
    assert!(!silent_for(&mut after, Duration::from_secs(601)));
}

#[test]
fn a_drain_in_progress_survives_a_failover() {
    let store = std::sync::Arc::new(agora_store::MemoryStore::new());
    let mut before = master_over(store.clone(), crate::config::MasterConfig::default());
    let agent = add_agent(&mut before, "a1", AGENT_RESOURCES);
    before.drain_agent(&agent.id, None).expect("a known agent");
    before.mark_gone_after_drain(&agent.id);
    before.registry.barrier().wait().expect("committed");

    let mut after = master_over(store, crate::config::MasterConfig::default());
    // Its tasks are not reported yet: it is not drained, and not marked gone, for that.
    after.check_agent_timeouts();
    let recovered = &after.agents[&agent.id];
    assert!(recovered.deactivated);
    assert_eq!(recovered.drain, Some(crate::core::DrainState::Draining));
    assert!(recovered.mark_gone_when_drained);
    assert!(!after.gone_agents.contains(&agent.id));
}

#[test]
fn a_silent_agent_is_unreachable_its_offers_rescinded_and_its_tasks_lost() {
    let mut c = cluster();
    advance_clock(&mut c.master, 10);
    let rest = next_offer(&mut c.master, &mut c.scheduler);

    time_out(&mut c);

    let events = c.scheduler.events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        matches!(&events[0], Event::Rescind { rescind } if rescind.offer_id == rest.id),
        "{:?}",
        events[0]
    );
    let Event::Update { update } = &events[1] else {
        panic!("expected an update, got {:?}", events[1]);
    };
    assert_eq!(update.status.state, TaskState::Lost);
    assert_eq!(
        update.status.reason.as_deref(),
        Some("REASON_AGENT_REMOVED")
    );
    assert_eq!(
        update.status.message,
        Some(format!("Agent {} is unreachable", c.agent.id))
    );
    assert!(
        matches!(&events[2], Event::Failure { failure } if failure.agent_id == Some(Id::new(c.agent.id.as_str()))),
        "{:?}",
        events[2]
    );
    assert!(matches!(
        c.master.agents[&c.agent.id].connection,
        AgentConnection::Unreachable { .. }
    ));
    assert_eq!(c.master.allocator.available(&c.agent.id), None);
    assert!(c.master.offers.is_empty());
    assert_eq!(
        c.completed_task_states(),
        vec![("t1".to_owned(), TaskState::Lost)]
    );
    assert_eq!(c.master.metrics.agent_removals, 1);
}

#[test]
fn partition_aware_tasks_are_unreachable_and_come_back_with_their_agent() {
    let mut c = cluster_with(partition_aware("web"));

    time_out(&mut c);
    let update = c.scheduler.only_update();
    assert_eq!(update.state, TaskState::Unreachable);
    assert!(update.unreachable_time.is_some());
    assert_eq!(
        c.task("t1").map(|t| t.state),
        Some(TaskState::Unreachable),
        "an unreachable task is not over"
    );

    let request = c
        .agent
        .reregistration(vec![c.reported_task(TaskState::Running)]);
    reregister(&mut c.master, &mut c.agent, request).expect("re-registration");
    let update = c.scheduler.only_update();
    assert_eq!(update.state, TaskState::Running);
    assert_eq!(update.reason.as_deref(), Some("REASON_AGENT_REREGISTERED"));
    assert_eq!(c.task("t1").map(|t| t.state), Some(TaskState::Running));
    assert_eq!(
        Some(c.available()),
        resources(AGENT_RESOURCES).checked_sub(&resources(TASK_RESOURCES))
    );
}

#[test]
fn an_agent_marked_gone_loses_its_tasks_and_cannot_register_again() {
    let mut c = cluster_with(partition_aware("web"));
    assert_eq!(
        c.master
            .mark_agent_gone(&AgentId::new("nobody"))
            .map_err(|unknown| unknown.to_string()),
        Err("Agent nobody is not registered".to_owned())
    );

    c.master
        .mark_agent_gone(&c.agent.id)
        .expect("a known agent");

    assert_eq!(
        c.agent.commands(),
        vec![AgentCommand::Shutdown {
            message: "Agent marked gone by operator".to_owned(),
        }]
    );
    let update = c.scheduler.only_update();
    assert_eq!(update.state, TaskState::GoneByOperator);
    assert_eq!(
        update.reason.as_deref(),
        Some("REASON_AGENT_REMOVED_BY_OPERATOR")
    );
    assert!(!c.master.agents.contains_key(&c.agent.id));
    assert!(c.master.gone_agents.contains(&c.agent.id));

    let (sender, mut inbox) = Inbox::new();
    let request = c.agent.reregistration(Vec::new());
    let refused = c
        .master
        .register_agent(as_read(&request), Some(&c.agent.token), sender)
        .map(|_| ())
        .map_err(|refused| refused.to_string());
    assert_eq!(
        refused,
        Err(format!("agent {} has been marked gone", c.agent.id))
    );
    assert_eq!(
        inbox.decoded::<AgentCommand>(),
        vec![AgentCommand::Shutdown {
            message: format!("Agent {} has been marked gone", c.agent.id),
        }]
    );
    assert!(!c.master.agents.contains_key(&c.agent.id));
}

#[test]
fn a_deactivated_agent_is_not_offered_until_reactivated() {
    let mut master = master();
    let agent = add_agent(&mut master, "host-1", AGENT_RESOURCES);
    let mut scheduler = add_framework(&mut master, framework_info("web"));
    let offer = next_offer(&mut master, &mut scheduler);

    master
        .set_agent_deactivated(&agent.id, true)
        .expect("a known agent");
    assert!(
        matches!(&scheduler.events()[..], [Event::Rescind { rescind }] if rescind.offer_id == offer.id)
    );
    advance_clock(&mut master, 10);
    assert!(next_offers(&mut master, &mut scheduler).is_empty());

    master
        .set_agent_deactivated(&agent.id, false)
        .expect("a known agent");
    let offer = next_offer(&mut master, &mut scheduler);
    assert_eq!(offered(&offer), resources(AGENT_RESOURCES));
}

#[test]
fn only_the_stream_of_the_latest_registration_disconnects_the_agent() {
    let mut c = cluster();
    let old_generation = c.agent.generation;
    let request = c
        .agent
        .reregistration(vec![c.reported_task(TaskState::Running)]);
    let new_generation = reregister(&mut c.master, &mut c.agent, request).expect("ok");
    assert_ne!(old_generation, new_generation);
    advance_clock(&mut c.master, 10);
    let rest = next_offer(&mut c.master, &mut c.scheduler);

    c.master.agent_disconnected(&c.agent.id, old_generation);
    assert!(c.master.agents[&c.agent.id].is_active());
    assert!(c.scheduler.events().is_empty());

    c.master.agent_disconnected(&c.agent.id, new_generation);
    let agent = &c.master.agents[&c.agent.id];
    assert!(!agent.is_active());
    assert!(agent.is_reachable(), "it has its ping timeout to come back");
    let events = c.scheduler.events();
    assert!(
        matches!(&events[..], [Event::Rescind { rescind }] if rescind.offer_id == rest.id),
        "{events:?}"
    );
    assert!(c.master.offers.is_empty());
    assert!(next_offers(&mut c.master, &mut c.scheduler).is_empty());
    assert_eq!(c.task("t1").map(|t| t.state), Some(TaskState::Running));
}

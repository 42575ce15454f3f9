//! Framework subscription, failover to a new connection, and removal after the failover
//! timeout.

use std::time::{Duration, Instant};

use agora_api::agent_protocol::AgentCommand;
use agora_api::mesos::{Capability, FrameworkInfo, Id};
use agora_api::scheduler::Event;
use agora_types::{FrameworkId, TaskState};

use super::support::*;

#[test]
fn a_new_framework_is_subscribed_under_a_new_id_and_persisted() {
    let mut master = master();
    let (sender, mut inbox) = Inbox::new();
    let (id, _stream) = master
        .subscribe(framework_info("web"), Vec::new(), sender)
        .unwrap_or_else(|refused| panic!("refused: {}", refused.0));

    assert_eq!(id.as_str(), "master-1-0000");
    let events = inbox.decoded::<Event>();
    let [Event::Subscribed { subscribed }] = &events[..] else {
        panic!("expected SUBSCRIBED alone, got {events:?}");
    };
    assert_eq!(subscribed.framework_id, Id::new("master-1-0000"));
    assert_eq!(subscribed.heartbeat_interval_seconds, 15.0);
    assert_eq!(
        subscribed.master_info.as_ref().map(|info| info.id.as_str()),
        Some(MASTER_ID)
    );
    let framework = &master.frameworks[&id];
    assert!(framework.connected() && !framework.recovered);
    assert_eq!(framework.roles, vec!["*".to_owned()]);
    let stored = persisted(&master).frameworks;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, Some(Id::new("master-1-0000")));
}

#[test]
fn subscriptions_breaking_the_rules_are_refused() {
    let multi_role = |role: Option<&str>, roles: &[&str]| FrameworkInfo {
        role: role.map(str::to_owned),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        capabilities: vec![Capability {
            kind: "MULTI_ROLE".to_owned(),
        }],
        ..framework_info("web")
    };
    let cases = [
        (
            FrameworkInfo::default(),
            "FrameworkInfo must set 'user' and 'name'",
        ),
        (
            FrameworkInfo {
                role: Some("a/../b".to_owned()),
                ..framework_info("web")
            },
            "Role 'a/../b' is invalid: empty or dot path component",
        ),
        (multi_role(None, &["web", "-web"]), "Role '-web' is invalid"),
        (
            multi_role(Some("web"), &["web"]),
            "'FrameworkInfo.role' must not be set together with 'roles'",
        ),
    ];
    for (info, expected) in cases {
        let mut master = master();
        let (sender, mut inbox) = Inbox::new();
        match master.subscribe(info.clone(), Vec::new(), sender) {
            Ok(_) => panic!("{info:?} was subscribed"),
            Err(refused) => assert_eq!(refused.0, expected, "{info:?}"),
        }
        assert!(master.frameworks.is_empty(), "{info:?}");
        assert!(inbox.records().is_empty(), "{info:?}");
    }
}

#[test]
fn resubscribing_fails_the_old_connection_over_and_keeps_the_tasks() {
    let mut c = cluster();
    advance_clock(&mut c.master, 10);
    let rest = next_offer(&mut c.master, &mut c.scheduler);

    let mut info = framework_info("web-2");
    info.id = Some(Id::new(c.scheduler.id.as_str()));
    let (sender, mut inbox) = Inbox::new();
    let (id, stream_id) = c
        .master
        .subscribe(info.clone(), Vec::new(), sender)
        .unwrap_or_else(|refused| panic!("refused: {}", refused.0));

    assert_eq!(id, c.scheduler.id);
    assert_ne!(stream_id, c.scheduler.stream_id);
    let old_stream = c.scheduler.events();
    assert!(
        matches!(
            &old_stream[..],
            [Event::Rescind { rescind }, Event::Error { error }]
                if rescind.offer_id == rest.id && error.message == "Framework failed over"
        ),
        "{old_stream:?}"
    );
    assert!(matches!(
        &inbox.decoded::<Event>()[..],
        [Event::Subscribed { .. }]
    ));
    assert!(c.master.offers.is_empty());
    assert_eq!(c.task("t1").map(|t| t.state), Some(TaskState::Running));
    let framework = &c.master.frameworks[&id];
    assert_eq!(framework.info.name, "web-2");
    assert!(framework.reregistered_time.is_some());
    assert_eq!(
        c.agent.commands(),
        vec![AgentCommand::UpdateFramework { framework: info }],
        "the agent runs the task for the new scheduler"
    );
}

#[test]
fn failing_over_under_another_principal_is_refused() {
    let mut info = framework_info("web");
    info.principal = Some("web-team".to_owned());
    let mut c = cluster_with(info.clone());

    info.id = Some(Id::new(c.scheduler.id.as_str()));
    info.principal = Some("someone-else".to_owned());
    let (sender, _inbox) = Inbox::new();
    match c.master.subscribe(info, Vec::new(), sender) {
        Ok(_) => panic!("another principal took the framework over"),
        Err(refused) => assert_eq!(refused.0, "Changing framework's principal is not allowed"),
    }
    let framework = &c.master.frameworks[&c.scheduler.id];
    assert_eq!(
        framework.stream.as_ref().map(|s| s.id.as_str()),
        Some(c.scheduler.stream_id.as_str()),
        "the connected scheduler keeps its stream"
    );
    assert!(c.scheduler.events().is_empty());
}

#[test]
fn a_framework_past_its_failover_timeout_is_removed_with_its_tasks() {
    let mut c = cluster();
    c.master
        .framework_disconnected(&c.scheduler.id, &c.scheduler.stream_id);
    assert!(
        c.master.frameworks.contains_key(&c.scheduler.id),
        "it has 60 s to come back"
    );
    assert!(c.agent.commands().is_empty());

    if let Some(framework) = c.master.frameworks.get_mut(&c.scheduler.id) {
        framework.disconnected_since = Some(Instant::now() - Duration::from_secs(61));
    }
    c.master.check_failover_timeouts();

    assert!(!c.master.frameworks.contains_key(&c.scheduler.id));
    assert_eq!(
        c.agent.commands(),
        vec![AgentCommand::ShutdownFramework {
            framework_id: c.scheduler.id.to_string(),
        }]
    );
    let removed = c
        .master
        .completed_frameworks
        .back()
        .expect("a completed framework");
    assert_eq!(removed.id, c.scheduler.id);
    assert_eq!(
        removed
            .completed_tasks
            .iter()
            .map(|t| (t.statuses.task_id(), t.state))
            .collect::<Vec<_>>(),
        vec![("t1", TaskState::Killed)]
    );
    assert!(c.master.agents[&c.agent.id].tasks.is_empty());
    assert_eq!(c.available(), resources(AGENT_RESOURCES));
    assert!(persisted(&c.master).frameworks.is_empty());

    let mut info = framework_info("web");
    info.id = Some(Id::new(c.scheduler.id.as_str()));
    let (sender, _inbox) = Inbox::new();
    match c.master.subscribe(info, Vec::new(), sender) {
        Ok(_) => panic!("a removed framework came back"),
        Err(refused) => assert_eq!(refused.0, "Framework has been removed"),
    }
    assert!(
        !c.master
            .frameworks
            .contains_key(&FrameworkId::new(c.scheduler.id.as_str()))
    );
}

//! The offer cycle: what is offered from an agent's resources, and declines with their
//! filters.

use agora_api::mesos::Id;
use agora_api::scheduler::{Decline, Event, Filters};
use agora_types::{OfferId, Resources, TaskId};

use super::support::*;

#[test]
fn an_agents_whole_resources_are_offered_once() {
    let mut master = master();
    let agent = add_agent(&mut master, "host-1", AGENT_RESOURCES);
    let mut scheduler = add_framework(&mut master, framework_info("web"));

    let offer = next_offer(&mut master, &mut scheduler);

    assert_eq!(offer.id, Id::new("master-1-O0"));
    assert_eq!(offer.framework_id, Id::new(scheduler.id.as_str()));
    assert_eq!(offer.agent_id, Id::new(agent.id.as_str()));
    assert_eq!(offer.hostname, "host-1");
    let address = &offer.url.as_ref().expect("an agent url").address;
    assert_eq!((address.ip.as_str(), address.port), ("host-1", 5051));
    assert_eq!(offered(&offer), resources(AGENT_RESOURCES));
    assert_eq!(offer.allocation_info, None, "not a MULTI_ROLE framework");

    let outstanding = &master.offers[&OfferId::new("master-1-O0")];
    assert_eq!(
        (&outstanding.agent_id, outstanding.role.as_str()),
        (&agent.id, "*")
    );
    assert!(
        master.agents[&agent.id]
            .offers
            .contains(&OfferId::new("master-1-O0"))
    );
    assert_eq!(
        master.allocator.available(&agent.id),
        Some(Resources::new())
    );
    assert!(
        next_offers(&mut master, &mut scheduler).is_empty(),
        "offered resources are not offered twice"
    );
}

#[test]
fn a_declined_offer_is_not_made_again_until_its_filter_expires() {
    let mut master = master();
    add_agent(&mut master, "host-1", AGENT_RESOURCES);
    let mut scheduler = add_framework(&mut master, framework_info("web"));
    let offer = next_offer(&mut master, &mut scheduler);

    master.decline(
        &scheduler.id,
        Decline {
            offer_ids: vec![offer.id.clone()],
            filters: Some(Filters {
                refuse_seconds: Some(30.0),
            }),
        },
    );

    assert!(master.offers.is_empty());
    assert!(next_offers(&mut master, &mut scheduler).is_empty());
    advance_clock(&mut master, 29);
    assert!(next_offers(&mut master, &mut scheduler).is_empty());
    advance_clock(&mut master, 2);
    let again = next_offer(&mut master, &mut scheduler);
    assert_eq!(offered(&again), resources(AGENT_RESOURCES));
    assert_ne!(again.id, offer.id, "a new offer, not the declined one");
}

#[test]
fn declining_another_frameworks_offer_changes_nothing() {
    let mut master = master();
    add_agent(&mut master, "host-1", AGENT_RESOURCES);
    let mut holder = add_framework(&mut master, framework_info("holder"));
    let mut other = add_framework(&mut master, framework_info("other"));
    master.allocate();
    let offers: Vec<_> = holder
        .events()
        .into_iter()
        .filter_map(|event| match event {
            Event::Offers { offers } => Some(offers.offers),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(offers.len(), 1, "the first framework by id gets the agent");
    assert!(other.events().is_empty());

    master.decline(
        &other.id,
        Decline {
            offer_ids: vec![offers[0].id.clone()],
            filters: None,
        },
    );

    assert!(
        master
            .offers
            .contains_key(&OfferId::new(offers[0].id.value.as_str()))
    );
    launch(
        &mut master,
        &holder,
        &offers[0],
        vec![command_task("t1", &offers[0], TASK_RESOURCES)],
    );
    assert!(holder.updates().is_empty(), "the launch is valid");
    assert!(
        master.frameworks[&holder.id]
            .tasks
            .contains_key(&TaskId::new("t1"))
    );
}

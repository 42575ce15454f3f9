//! Behaviour tests of the allocator through its public calls: reservations, filters,
//! suppression, quota, framework and agent life cycles.

use agora_types::{AgentId, FrameworkId, Resources, Scalar};

use crate::{Allocator, AllocatorConfig, OfferGrant};

fn res(text: &str) -> Resources {
    Resources::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn fw(id: &str) -> FrameworkId {
    FrameworkId::new(id)
}

fn agent(id: &str) -> AgentId {
    AgentId::new(id)
}

fn roles(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn allocator() -> Allocator {
    Allocator::new(AllocatorConfig::default())
}

/// Cpus granted to `framework` in these grants.
fn cpus_of(grants: &[OfferGrant], framework: &str) -> f64 {
    grants
        .iter()
        .filter(|grant| grant.framework.as_str() == framework)
        .map(|grant| grant.resources.scalar("cpus").to_f64())
        .sum()
}

/// Gives every grant back without a filter.
fn recover_all(allocator: &mut Allocator, grants: &[OfferGrant], now_ms: u64) {
    for grant in grants {
        allocator.recover(
            &grant.framework,
            &grant.agent,
            &grant.role,
            &grant.resources,
            None,
            now_ms,
        );
    }
}

#[test]
fn offers_the_whole_agent_once() {
    let mut allocator = allocator();
    allocator.add_agent(
        agent("a1"),
        res("cpus:4;mem:4096;ports:[31000-31009]"),
        vec![],
    );
    allocator.add_framework(fw("f1"), roles(&["*"]), true);
    let grants = allocator.allocate(0);
    assert_eq!(
        grants,
        vec![OfferGrant {
            framework: fw("f1"),
            agent: agent("a1"),
            role: "*".to_owned(),
            resources: res("cpus:4;mem:4096;ports:[31000-31009]"),
        }]
    );
    assert_eq!(allocator.available(&agent("a1")), Some(Resources::new()));
    assert!(
        allocator.allocate(1).is_empty(),
        "offered resources must not be offered again"
    );
}

#[test]
fn reservation_is_offered_only_to_its_role() {
    let mut allocator = allocator();
    allocator.add_agent(
        agent("a1"),
        res("cpus:4;mem:4096;cpus(analytics):2"),
        vec![],
    );
    allocator.add_framework(fw("web"), roles(&["web"]), true);
    let grants = allocator.allocate(0);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].resources, res("cpus:4;mem:4096"));
    assert_eq!(
        allocator.available(&agent("a1")),
        Some(res("cpus(analytics):2"))
    );

    // Nothing is left for another web framework, but the analytics one gets its reservation.
    allocator.add_framework(fw("web2"), roles(&["web"]), true);
    allocator.add_framework(fw("spark"), roles(&["analytics"]), true);
    let grants = allocator.allocate(1);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].framework, fw("spark"));
    assert_eq!(grants[0].role, "analytics");
    assert_eq!(grants[0].resources, res("cpus(analytics):2"));
}

#[test]
fn reserved_and_unreserved_go_together_to_the_reserving_role() {
    let mut allocator = allocator();
    allocator.add_agent(
        agent("a1"),
        res("cpus:1;mem:1024;cpus(analytics):2;mem(analytics):512"),
        vec![],
    );
    allocator.add_framework(fw("spark"), roles(&["analytics"]), true);
    let grants = allocator.allocate(0);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].resources.scalar("cpus"), Scalar::from_units(3));
    assert_eq!(grants[0].resources.scalar("mem"), Scalar::from_units(1536));
}

#[test]
fn decline_filter_blocks_then_expires() {
    let mut allocator = allocator();
    allocator.add_agent(agent("a1"), res("cpus:4;mem:4096"), vec![]);
    allocator.add_framework(fw("f1"), roles(&["*"]), true);
    let grants = allocator.allocate(0);
    assert_eq!(grants.len(), 1);
    let offered = grants[0].resources.clone();
    allocator.recover(&fw("f1"), &agent("a1"), "*", &offered, Some(5_000), 0);
    assert_eq!(allocator.available(&agent("a1")), Some(offered.clone()));

    assert!(allocator.allocate(1_000).is_empty());
    assert!(allocator.allocate(4_999).is_empty());
    let grants = allocator.allocate(5_000);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].resources, offered);
}

#[test]
fn decline_filter_has_a_floor_and_is_per_framework() {
    let mut allocator = allocator();
    allocator.add_agent(agent("a1"), res("cpus:4;mem:4096"), vec![]);
    allocator.add_framework(fw("f1"), roles(&["*"]), true);
    let grants = allocator.allocate(0);
    allocator.recover(
        &fw("f1"),
        &agent("a1"),
        "*",
        &grants[0].resources,
        Some(0),
        100,
    );
    assert!(
        allocator.allocate(500).is_empty(),
        "filter lasts at least min_refuse_ms"
    );

    // Another framework is not affected by f1's filter.
    allocator.add_framework(fw("f2"), roles(&["*"]), true);
    let grants = allocator.allocate(600);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].framework, fw("f2"));
    recover_all(&mut allocator, &grants, 600);
    allocator.remove_framework(&fw("f2"));
    let grants = allocator.allocate(1_100);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].framework, fw("f1"));
}

#[test]
fn decline_filter_only_blocks_subsets_of_the_refused_resources() {
    let mut allocator = allocator();
    allocator.add_agent(agent("a1"), res("cpus:4;mem:4096"), vec![]);
    allocator.add_framework(fw("f1"), roles(&["*"]), true);
    let grants = allocator.allocate(0);
    // f1 launches a task with 1 cpu and declines the rest for a long time.
    allocator.mark_used(&fw("f1"), &agent("a1"), "*", &res("cpus:1;mem:1024"));
    allocator.recover(
        &fw("f1"),
        &agent("a1"),
        "*",
        &res("cpus:3;mem:3072"),
        Some(60_000),
        0,
    );
    assert_eq!(grants.len(), 1);
    assert!(allocator.allocate(1_000).is_empty());

    // The task ends: now more is available than was refused, so the agent is offered again.
    allocator.recover(
        &fw("f1"),
        &agent("a1"),
        "*",
        &res("cpus:1;mem:1024"),
        None,
        2_000,
    );
    let grants = allocator.allocate(2_000);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].resources, res("cpus:4;mem:4096"));
}

#[test]
fn suppress_and_revive() {
    let mut allocator = allocator();
    allocator.add_agent(agent("a1"), res("cpus:4;mem:4096"), vec![]);
    allocator.add_framework(fw("f1"), roles(&["web", "batch"]), true);
    allocator.suppress(&fw("f1"), None);
    assert!(allocator.allocate(0).is_empty());

    allocator.revive(&fw("f1"), Some(&roles(&["batch"])));
    let grants = allocator.allocate(1);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].role, "batch");

    // Revive also clears decline filters.
    allocator.recover(
        &fw("f1"),
        &agent("a1"),
        "batch",
        &grants[0].resources,
        Some(60_000),
        2,
    );
    assert!(allocator.allocate(3).is_empty());
    allocator.revive(&fw("f1"), None);
    let grants = allocator.allocate(4);
    assert_eq!(
        grants.len(),
        1,
        "one grant per agent: both roles cannot share the same cpus"
    );
    assert_eq!(
        grants[0].role, "batch",
        "batch sorts before web at equal shares"
    );
}

#[test]
fn inactive_agents_and_frameworks_get_nothing() {
    let mut allocator = allocator();
    allocator.add_agent(agent("a1"), res("cpus:4;mem:4096"), vec![]);
    allocator.add_framework(fw("f1"), roles(&["*"]), false);
    assert!(allocator.allocate(0).is_empty());
    allocator.set_framework_active(&fw("f1"), true);
    allocator.set_agent_active(&agent("a1"), false);
    assert!(allocator.allocate(1).is_empty());
    allocator.set_agent_active(&agent("a1"), true);
    assert_eq!(allocator.allocate(2).len(), 1);
}

#[test]
fn chunks_below_the_minimum_are_not_offered() {
    let mut allocator = allocator();
    allocator.add_agent(agent("a1"), res("cpus:0.005;mem:16;disk:100"), vec![]);
    allocator.add_agent(agent("a2"), res("cpus:0;mem:32"), vec![]);
    allocator.add_framework(fw("f1"), roles(&["*"]), true);
    let grants = allocator.allocate(0);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].agent, agent("a2"));
}

#[test]
fn a_framework_with_several_roles_gets_one_grant_per_role() {
    let mut allocator = allocator();
    allocator.add_agent(
        agent("a1"),
        res("cpus:4;mem:4096;cpus(web):1;cpus(batch):1"),
        vec![],
    );
    allocator.add_framework(fw("f1"), roles(&["web", "batch"]), true);
    let mut grants = allocator.allocate(0);
    grants.sort_by(|a, b| a.role.cmp(&b.role));
    let summary: Vec<(String, String)> = grants
        .iter()
        .map(|grant| (grant.role.clone(), grant.resources.to_string()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "batch".to_owned(),
                "cpus:4; mem:4096; cpus(batch):1".to_owned()
            ),
            ("web".to_owned(), "cpus(web):1".to_owned()),
        ]
    );
}

#[test]
fn quota_guarantee_is_served_first() {
    let mut allocator = allocator();
    for index in 0..4 {
        allocator.add_agent(agent(&format!("a{index}")), res("cpus:2;mem:2048"), vec![]);
    }
    // "a" sorts before "q", so without quota "a" would take every other agent.
    allocator.add_framework(fw("fa"), roles(&["a"]), true);
    allocator.add_framework(fw("fq"), roles(&["q"]), true);
    allocator.set_quota("q", res("cpus:6"), None);
    let grants = allocator.allocate(0);
    assert_eq!(cpus_of(&grants, "fq"), 6.0);
    assert_eq!(cpus_of(&grants, "fa"), 2.0);
    assert_eq!(grants.len(), 4, "every agent is offered exactly once");
}

#[test]
fn unmet_guarantees_hold_headroom_back_from_other_roles() {
    let mut allocator = allocator();
    for index in 0..4 {
        allocator.add_agent(agent(&format!("a{index}")), res("cpus:2;mem:2048"), vec![]);
    }
    allocator.add_framework(fw("fa"), roles(&["a"]), true);
    allocator.add_framework(fw("fq"), roles(&["q"]), true);
    allocator.set_quota("q", res("cpus:5"), None);
    allocator.suppress(&fw("fq"), None);
    let grants = allocator.allocate(0);
    assert_eq!(cpus_of(&grants, "fq"), 0.0);
    assert_eq!(
        cpus_of(&grants, "fa"),
        3.0,
        "5 of 8 cpus stay free for q's guarantee"
    );
    assert_eq!(
        allocator
            .available(&agent("a0"))
            .map(|free| free.scalar("mem").to_f64()),
        Some(0.0)
    );

    // Once q asks again it gets its guarantee.
    allocator.revive(&fw("fq"), None);
    let grants = allocator.allocate(1);
    assert_eq!(cpus_of(&grants, "fq"), 5.0);
}

#[test]
fn quota_limit_is_respected() {
    let mut allocator = allocator();
    for index in 0..4 {
        allocator.add_agent(agent(&format!("a{index}")), res("cpus:2;mem:2048"), vec![]);
    }
    allocator.add_framework(fw("f1"), roles(&["capped"]), true);
    allocator.set_quota("capped", Resources::new(), Some(res("cpus:3")));
    let grants = allocator.allocate(0);
    assert_eq!(cpus_of(&grants, "f1"), 3.0);
    let mem: f64 = grants
        .iter()
        .map(|grant| grant.resources.scalar("mem").to_f64())
        .sum();
    assert_eq!(mem, 8192.0, "memory has no limit");
    let role = allocator
        .role_shares()
        .into_iter()
        .find(|(name, _, _)| name == "capped");
    assert_eq!(
        role.map(|(_, _, allocated)| allocated.scalar("cpus")),
        Some(Scalar::from_units(3))
    );

    // Returning one cpu lets exactly one cpu be offered again.
    let first = &grants[0];
    allocator.recover(
        &first.framework,
        &first.agent,
        "capped",
        &res("cpus:1"),
        None,
        1,
    );
    let grants = allocator.allocate(2);
    assert_eq!(cpus_of(&grants, "f1"), 1.0);
}

#[test]
fn reservations_count_towards_the_quota_limit() {
    let mut allocator = allocator();
    allocator.add_agent(agent("a1"), res("cpus:4;mem:4096;cpus(capped):2"), vec![]);
    allocator.add_framework(fw("f1"), roles(&["capped"]), true);
    allocator.set_quota("capped", Resources::new(), Some(res("cpus:3")));
    let grants = allocator.allocate(0);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].resources, res("cpus:1;mem:4096;cpus(capped):2"));
}

#[test]
fn remove_framework_frees_resources() {
    let mut allocator = allocator();
    allocator.add_agent(agent("a1"), res("cpus:4;mem:4096"), vec![]);
    allocator.add_framework(fw("f1"), roles(&["*"]), true);
    let grants = allocator.allocate(0);
    allocator.mark_used(&fw("f1"), &agent("a1"), "*", &res("cpus:1;mem:100"));
    assert_eq!(grants.len(), 1);
    assert!(allocator.framework_share(&fw("f1")) > 0.0);
    allocator.remove_framework(&fw("f1"));
    assert_eq!(
        allocator.available(&agent("a1")),
        Some(res("cpus:4;mem:4096"))
    );
    assert_eq!(allocator.framework_share(&fw("f1")), 0.0);
    assert!(
        allocator
            .role_shares()
            .iter()
            .all(|(_, share, _)| *share == 0.0)
    );

    allocator.add_framework(fw("f2"), roles(&["*"]), true);
    let grants = allocator.allocate(1);
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].framework, fw("f2"));
}

#[test]
fn agent_reregistration_with_used_resources() {
    let mut allocator = allocator();
    allocator.add_framework(fw("other"), roles(&["web"]), true);
    // The master failed over: the agent comes back with a task of a framework that has not
    // re-subscribed yet.
    allocator.add_agent(
        agent("a1"),
        res("cpus:4;mem:4096"),
        vec![(fw("old"), "web".to_owned(), res("cpus:1;mem:1024"))],
    );
    allocator.add_agent(agent("a2"), res("cpus:4;mem:4096"), vec![]);
    assert_eq!(
        allocator.available(&agent("a1")),
        Some(res("cpus:3;mem:3072"))
    );
    let web = allocator
        .role_shares()
        .into_iter()
        .find(|(name, _, _)| name == "web");
    assert_eq!(web.map(|(_, share, _)| share), Some(0.125));

    // "old" is not offered anything until it re-subscribes, but keeps its allocation.
    let grants = allocator.allocate(0);
    assert!(grants.iter().all(|grant| grant.framework == fw("other")));
    assert_eq!(cpus_of(&grants, "other"), 7.0);
    recover_all(&mut allocator, &grants, 0);

    allocator.add_framework(fw("old"), roles(&["web"]), true);
    assert_eq!(allocator.framework_share(&fw("old")), 0.125);
    // The task ends: its resources come back from the used bucket.
    allocator.recover(
        &fw("old"),
        &agent("a1"),
        "web",
        &res("cpus:1;mem:1024"),
        None,
        1,
    );
    assert_eq!(
        allocator.available(&agent("a1")),
        Some(res("cpus:4;mem:4096"))
    );
    assert_eq!(allocator.framework_share(&fw("old")), 0.0);

    // Re-registering again replaces the agent and its allocations.
    allocator.add_agent(
        agent("a1"),
        res("cpus:8;mem:8192"),
        vec![(fw("old"), "web".to_owned(), res("cpus:2;mem:100;gpus:1"))],
    );
    assert_eq!(
        allocator.available(&agent("a1")),
        Some(res("cpus:6;mem:8092"))
    );
}

#[test]
fn remove_agent_drops_its_allocations() {
    let mut allocator = allocator();
    allocator.add_agent(agent("a1"), res("cpus:4;mem:4096"), vec![]);
    allocator.add_agent(agent("a2"), res("cpus:4;mem:4096"), vec![]);
    allocator.add_framework(fw("f1"), roles(&["*"]), true);
    let grants = allocator.allocate(0);
    assert_eq!(grants.len(), 2);
    assert_eq!(allocator.framework_share(&fw("f1")), 1.0);
    allocator.remove_agent(&agent("a1"));
    assert_eq!(
        allocator.framework_share(&fw("f1")),
        1.0,
        "it holds all of what is left"
    );
    assert_eq!(allocator.available(&agent("a1")), None);
    allocator.recover(
        &fw("f1"),
        &agent("a2"),
        "*",
        &res("cpus:2;mem:2048"),
        None,
        1,
    );
    assert_eq!(allocator.framework_share(&fw("f1")), 0.5);
}

#[test]
fn recover_frees_only_what_the_framework_holds() {
    let mut allocator = allocator();
    allocator.add_agent(agent("a1"), res("cpus:4;mem:4096;ports:[1-10]"), vec![]);
    allocator.add_framework(fw("f1"), roles(&["*"]), true);
    allocator.allocate(0);
    allocator.mark_used(&fw("f1"), &agent("a1"), "*", &res("cpus:1;ports:[1-2]"));
    allocator.recover(
        &fw("f1"),
        &agent("a1"),
        "*",
        &res("cpus:3;mem:4096;ports:[3-10]"),
        None,
        0,
    );
    assert_eq!(
        allocator.available(&agent("a1")),
        Some(res("cpus:3;mem:4096;ports:[3-10]"))
    );
    // Offered resources are freed first, then used ones; nothing beyond what is held.
    allocator.recover(
        &fw("f1"),
        &agent("a1"),
        "*",
        &res("cpus:3;mem:4096;ports:[3-10]"),
        None,
        0,
    );
    assert_eq!(
        allocator.available(&agent("a1")),
        Some(res("cpus:4;mem:4096;ports:[3-10]"))
    );
    allocator.recover(&fw("f2"), &agent("a1"), "*", &res("ports:[1-2]"), None, 0);
    allocator.recover(&fw("f1"), &agent("a1"), "web", &res("ports:[1-2]"), None, 0);
    assert_eq!(
        allocator.available(&agent("a1")),
        Some(res("cpus:4;mem:4096;ports:[3-10]"))
    );
    allocator.recover(&fw("f1"), &agent("a1"), "*", &res("ports:[1-2]"), None, 0);
    assert_eq!(
        allocator.available(&agent("a1")),
        Some(res("cpus:4;mem:4096;ports:[1-10]"))
    );
}

#[test]
fn lower_share_framework_is_offered_first_and_ties_go_by_id() {
    let mut allocator = allocator();
    allocator.add_agent(agent("a1"), res("cpus:4;mem:4096"), vec![]);
    allocator.add_agent(agent("a2"), res("cpus:4;mem:4096"), vec![]);
    allocator.add_framework(fw("f2"), roles(&["*"]), true);
    allocator.add_framework(fw("f1"), roles(&["*"]), true);
    let grants = allocator.allocate(0);
    let mut takers: Vec<&str> = grants
        .iter()
        .map(|grant| grant.framework.as_str())
        .collect();
    takers.sort();
    assert_eq!(
        takers,
        vec!["f1", "f2"],
        "after f1's grant f2 has the lower share"
    );
}

#[test]
fn weights_are_kept_and_validated() {
    let mut allocator = allocator();
    assert_eq!(allocator.weight("web"), 1.0);
    allocator.set_weight("web", 2.5);
    allocator.set_weight("web", 0.0);
    allocator.set_weight("web", f64::NAN);
    assert_eq!(allocator.weight("web"), 2.5);
    let names: Vec<String> = allocator
        .role_shares()
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    assert_eq!(names, vec!["web".to_owned()]);
}

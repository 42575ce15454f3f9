//! Roles: quota limits and weights set by operators, persisted in the registry.

use agora_api::mesos::FrameworkInfo;
use agora_types::{Resources, Scalar};

use super::support::*;

fn in_role(name: &str, role: &str) -> FrameworkInfo {
    FrameworkInfo {
        role: Some(role.to_owned()),
        ..framework_info(name)
    }
}

#[test]
fn a_quota_limit_caps_what_the_role_is_offered_and_is_persisted() {
    let mut master = master();
    add_agent(&mut master, "host-1", AGENT_RESOURCES);
    master.set_quota("web", Resources::new(), Some(resources("cpus:1;mem:512")));
    let mut scheduler = add_framework(&mut master, in_role("web", "web"));

    let offer = next_offer(&mut master, &mut scheduler);

    let got = offered(&offer);
    assert_eq!(got.scalar("cpus"), Scalar::from_units(1));
    assert_eq!(got.scalar("mem"), Scalar::from_units(512));
    assert_eq!(
        got.scalar("disk"),
        Scalar::from_units(10240),
        "no limit on disk"
    );
    let stored = persisted(&master).quotas;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].role.as_str(), stored[0].limits.clone()),
        ("web", Some(resources("cpus:1;mem:512")))
    );

    master.set_quota("web", Resources::new(), None);
    assert!(
        master.quotas.is_empty(),
        "empty guarantees and no limits remove it"
    );
    assert!(persisted(&master).quotas.is_empty());
}

#[test]
fn a_weight_is_persisted_and_shown_with_the_roles_frameworks() {
    let mut master = master();
    add_agent(&mut master, "host-1", AGENT_RESOURCES);
    let scheduler = add_framework(&mut master, in_role("web", "web"));

    master.set_weight("web", 3.0);

    assert_eq!(persisted(&master).weights, vec![("web".to_owned(), 3.0)]);
    let roles = master.roles_json();
    let web = roles
        .iter()
        .find(|role| role["name"] == "web")
        .expect("the role is listed");
    assert_eq!(web["weight"], 3.0);
    assert_eq!(
        web["frameworks"],
        serde_json::json!([{"value": scheduler.id.as_str()}])
    );
}

//! Property tests: random sequences of agent, framework, offer and time events, checked against
//! a model the way the master sees it. Nothing is granted twice, no agent is over-allocated,
//! grants respect reservations, activity, suppression, decline filters and quota limits, and
//! the allocator's own totals agree with the model after every step.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test may panic

use std::collections::{BTreeMap, BTreeSet};

use agora_alloc::{Allocator, AllocatorConfig, OfferGrant};
use agora_types::{AgentId, FrameworkId, Resource, ResourceValue, Resources, Scalar};
use proptest::prelude::*;

const AGENT_TEMPLATES: [&str; 4] = [
    "cpus:4;mem:4096;ports:[31000-31009]",
    "cpus:2;mem:1024;cpus(r1):2;mem(r1):512;ports:[31000-31004]",
    "cpus:1;mem:512;disk:100;cpus(r2):1;ports:[31000-31001];zones:{a,b}",
    "cpus:8;mem:16384;gpus:1;ports:[31000-31100]",
];
/// What a re-registering agent reports as used; fits in every template.
const REREGISTERED_TASK: &str = "cpus:0.5;mem:256;ports:[31000-31001]";
const ROLES: [&str; 3] = ["*", "r1", "r2"];
const MIN_REFUSE_MS: u64 = 1_000;

#[derive(Clone, Debug)]
enum Op {
    AddAgent {
        agent: u8,
        template: usize,
        used: Option<(u8, usize)>,
    },
    RemoveAgent(u8),
    SetAgentActive(u8, bool),
    AddFramework {
        framework: u8,
        roles: BTreeSet<usize>,
        active: bool,
    },
    RemoveFramework(u8),
    SetFrameworkActive(u8, bool),
    Suppress(u8, Option<usize>),
    Revive(u8, Option<usize>),
    Allocate,
    /// A round after a change: only the agents that changed, when nothing else did.
    AllocateChanged,
    Recover {
        pick: usize,
        portion: u8,
        refuse_ms: Option<u64>,
    },
    MarkUsed {
        pick: usize,
    },
    Advance(u64),
    SetQuota {
        role: usize,
        guarantee_cpus: u8,
        limit_cpus: Option<u8>,
    },
    SetWeight {
        role: usize,
        weight: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let agent = 0u8..4;
    let framework = 0u8..4;
    let role = 0usize..ROLES.len();
    prop_oneof![
        3 => (agent.clone(), 0..AGENT_TEMPLATES.len(), prop::option::of((framework.clone(), role.clone())))
            .prop_map(|(agent, template, used)| Op::AddAgent { agent, template, used }),
        1 => agent.clone().prop_map(Op::RemoveAgent),
        1 => (agent, any::<bool>()).prop_map(|(agent, active)| Op::SetAgentActive(agent, active)),
        3 => (framework.clone(), prop::collection::btree_set(role.clone(), 1..=3), prop::bool::weighted(0.8))
            .prop_map(|(framework, roles, active)| Op::AddFramework { framework, roles, active }),
        1 => framework.clone().prop_map(Op::RemoveFramework),
        1 => (framework.clone(), any::<bool>()).prop_map(|(f, active)| Op::SetFrameworkActive(f, active)),
        1 => (framework.clone(), prop::option::of(role.clone())).prop_map(|(f, role)| Op::Suppress(f, role)),
        1 => (framework, prop::option::of(role.clone())).prop_map(|(f, role)| Op::Revive(f, role)),
        3 => Just(Op::Allocate),
        3 => Just(Op::AllocateChanged),
        6 => (any::<usize>(), 0u8..4, prop::option::of(0u64..5_000))
            .prop_map(|(pick, portion, refuse_ms)| Op::Recover { pick, portion, refuse_ms }),
        2 => any::<usize>().prop_map(|pick| Op::MarkUsed { pick }),
        2 => (0u64..3_000).prop_map(Op::Advance),
        1 => (1usize..ROLES.len(), 0u8..8, prop::option::of(1u8..8))
            .prop_map(|(role, guarantee_cpus, limit_cpus)| Op::SetQuota { role, guarantee_cpus, limit_cpus }),
        1 => (role, 1u8..5).prop_map(|(role, weight)| Op::SetWeight { role, weight }),
    ]
}

/// A round leaves nothing behind that a full round at the same moment would still grant:
/// the rounds that visit only the changed agents miss none.
fn nothing_left_to_grant(model: &Model, allocator: &Allocator) -> Result<(), TestCaseError> {
    let mut full = allocator.clone();
    let more = full.allocate(model.now_ms);
    prop_assert!(more.is_empty(), "a full round still grants {:?}", more);
    Ok(())
}

fn res(text: &str) -> Resources {
    Resources::parse(text).unwrap_or_default()
}

fn agent_id(agent: u8) -> AgentId {
    AgentId::new(format!("a{agent}"))
}

fn framework_id(framework: u8) -> FrameworkId {
    FrameworkId::new(format!("f{framework}"))
}

/// Resources a framework holds on an agent in a role, as the master would track one offer or
/// one task.
#[derive(Clone, Debug)]
struct Held {
    framework: u8,
    agent: u8,
    role: usize,
    resources: Resources,
}

#[derive(Clone, Debug)]
struct FrameworkModel {
    registered: bool,
    active: bool,
    roles: BTreeSet<usize>,
    suppressed: BTreeSet<usize>,
}

#[derive(Clone, Debug)]
struct Filter {
    framework: u8,
    agent: u8,
    role: usize,
    resources: Resources,
    until_ms: u64,
}

#[derive(Default)]
struct Model {
    now_ms: u64,
    agents: BTreeMap<u8, (Resources, bool)>,
    frameworks: BTreeMap<u8, FrameworkModel>,
    held: Vec<Held>,
    filters: Vec<Filter>,
    limits: BTreeMap<usize, Scalar>,
}

impl Model {
    fn held_on(&self, agent: u8) -> Resources {
        let mut sum = Resources::new();
        for held in self.held.iter().filter(|held| held.agent == agent) {
            sum += &held.resources;
        }
        sum
    }

    fn free_on(&self, agent: u8) -> Resources {
        let mut free = self
            .agents
            .get(&agent)
            .map(|(total, _)| total.clone())
            .unwrap_or_default();
        free.subtract(&self.held_on(agent));
        free
    }

    /// Quota consumption of cpus: reservations plus unreserved allocations.
    fn cpus_consumed(&self, role: usize) -> Scalar {
        let reserved = self
            .agents
            .values()
            .map(|(total, _)| {
                total
                    .filter(|entry| entry.role() == ROLES[role])
                    .reserved()
                    .scalar("cpus")
            })
            .fold(Scalar::ZERO, |sum, cpus| sum + cpus);
        let unreserved = self
            .held
            .iter()
            .filter(|held| held.role == role)
            .map(|held| held.resources.unreserved().scalar("cpus"))
            .fold(Scalar::ZERO, |sum, cpus| sum + cpus);
        reserved + unreserved
    }

    fn clear_filters(&mut self, keep: impl Fn(&Filter) -> bool) {
        self.filters.retain(keep);
    }
}

fn same(a: &Resources, b: &Resources) -> bool {
    a.contains(b) && b.contains(a)
}

fn half_of_scalars(resources: &Resources) -> Resources {
    resources
        .iter()
        .filter_map(|entry| match entry.value {
            ResourceValue::Scalar(value) => Some(Resource {
                name: entry.name.clone(),
                value: ResourceValue::Scalar(Scalar::from_milli(value.milli() / 2)),
                reservation: entry.reservation.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn role_index(name: &str) -> usize {
    ROLES
        .iter()
        .position(|role| *role == name)
        .unwrap_or(usize::MAX)
}

fn check_grants(model: &mut Model, grants: &[OfferGrant]) -> Result<(), TestCaseError> {
    let mut seen = BTreeSet::new();
    let mut capped_roles = BTreeSet::new();
    for grant in grants {
        let agent: u8 = grant.agent.as_str()[1..].parse().unwrap_or(u8::MAX);
        let framework: u8 = grant.framework.as_str()[1..].parse().unwrap_or(u8::MAX);
        let role = role_index(&grant.role);
        prop_assert!(
            seen.insert((framework, agent, role)),
            "two grants for one triple: {:?}",
            grant
        );

        let (total, agent_active) = model.agents.get(&agent).cloned().unwrap_or_default();
        prop_assert!(
            agent_active,
            "grant on an inactive or unknown agent: {:?}",
            grant
        );
        let state = model.frameworks.get(&framework);
        prop_assert!(
            state.is_some_and(|state| state.registered
                && state.active
                && state.roles.contains(&role)
                && !state.suppressed.contains(&role)),
            "grant to a framework that may not receive offers: {:?} {:?}",
            grant,
            state
        );
        prop_assert!(
            total.allocatable_to(&grant.role).contains(&grant.resources),
            "grant includes resources reserved for another role: {:?}",
            grant
        );
        let free = model.free_on(agent);
        prop_assert!(
            free.contains(&grant.resources),
            "grant of resources already allocated: {} not in free {}",
            grant.resources,
            free
        );
        prop_assert!(
            grant.resources.scalar("cpus") >= Scalar::from_milli(10)
                || grant.resources.scalar("mem") >= Scalar::from_units(32),
            "grant below the minimum: {}",
            grant.resources
        );
        for filter in &model.filters {
            prop_assert!(
                !(filter.framework == framework
                    && filter.agent == agent
                    && filter.role == role
                    && filter.until_ms > model.now_ms
                    && filter.resources.contains(&grant.resources)),
                "grant {:?} violates filter {:?}",
                grant,
                filter
            );
        }
        if grant.resources.unreserved().scalar("cpus").is_positive() {
            capped_roles.insert(role);
        }
        model.held.push(Held {
            framework,
            agent,
            role,
            resources: grant.resources.clone(),
        });
    }
    for role in capped_roles {
        if let Some(limit) = model.limits.get(&role) {
            let consumed = model.cpus_consumed(role);
            prop_assert!(
                consumed <= *limit,
                "role {} consumes {} cpus, limit {}",
                ROLES[role],
                consumed,
                limit
            );
        }
    }
    Ok(())
}

fn check_totals(model: &Model, allocator: &Allocator) -> Result<(), TestCaseError> {
    for (&agent, (total, _)) in &model.agents {
        let available = allocator.available(&agent_id(agent));
        prop_assert!(available.is_some());
        let available = available.unwrap_or_default();
        prop_assert!(
            total.contains(&available),
            "available {} exceeds total {}",
            available,
            total
        );
        let free = model.free_on(agent);
        prop_assert!(
            same(&available, &free),
            "agent a{}: available {} but model free {}",
            agent,
            available,
            free
        );
    }
    for agent in 0..4u8 {
        if !model.agents.contains_key(&agent) {
            prop_assert!(allocator.available(&agent_id(agent)).is_none());
        }
    }
    for (name, share, allocated) in allocator.role_shares() {
        let role = role_index(&name);
        let expected = model
            .held
            .iter()
            .filter(|held| held.role == role)
            .map(|held| held.resources.scalar("cpus"))
            .fold(Scalar::ZERO, |sum, cpus| sum + cpus);
        prop_assert_eq!(
            allocated.scalar("cpus"),
            expected,
            "cpus allocated to role {}",
            name
        );
        prop_assert!(
            (0.0..=1.0 + 1e-9).contains(&share),
            "share {} of role {}",
            share,
            name
        );
    }
    Ok(())
}

fn apply(model: &mut Model, allocator: &mut Allocator, op: &Op) -> Result<(), TestCaseError> {
    match op.clone() {
        Op::AddAgent {
            agent,
            template,
            used,
        } => {
            let total = res(AGENT_TEMPLATES[template]);
            model.held.retain(|held| held.agent != agent);
            model.clear_filters(|filter| filter.agent != agent);
            let mut reported = Vec::new();
            if let Some((framework, role)) = used {
                let resources = res(REREGISTERED_TASK);
                reported.push((
                    framework_id(framework),
                    ROLES[role].to_owned(),
                    resources.clone(),
                ));
                model.held.push(Held {
                    framework,
                    agent,
                    role,
                    resources,
                });
                model.frameworks.entry(framework).or_insert(FrameworkModel {
                    registered: false,
                    active: false,
                    roles: BTreeSet::new(),
                    suppressed: BTreeSet::new(),
                });
            }
            model.agents.insert(agent, (total.clone(), true));
            allocator.add_agent(agent_id(agent), total, reported);
        }
        Op::RemoveAgent(agent) => {
            model.agents.remove(&agent);
            model.held.retain(|held| held.agent != agent);
            model.clear_filters(|filter| filter.agent != agent);
            allocator.remove_agent(&agent_id(agent));
        }
        Op::SetAgentActive(agent, active) => {
            if let Some(state) = model.agents.get_mut(&agent) {
                state.1 = active;
            }
            allocator.set_agent_active(&agent_id(agent), active);
        }
        Op::AddFramework {
            framework,
            roles,
            active,
        } => {
            let state = model.frameworks.entry(framework).or_insert(FrameworkModel {
                registered: true,
                active,
                roles: BTreeSet::new(),
                suppressed: BTreeSet::new(),
            });
            state.registered = true;
            state.active = active;
            state.suppressed.retain(|role| roles.contains(role));
            state.roles = roles.clone();
            model.clear_filters(|filter| {
                filter.framework != framework || (active && roles.contains(&filter.role))
            });
            let names = roles.iter().map(|role| ROLES[*role].to_owned()).collect();
            allocator.add_framework(framework_id(framework), names, active);
        }
        Op::RemoveFramework(framework) => {
            model.frameworks.remove(&framework);
            model.held.retain(|held| held.framework != framework);
            model.clear_filters(|filter| filter.framework != framework);
            allocator.remove_framework(&framework_id(framework));
        }
        Op::SetFrameworkActive(framework, active) => {
            if let Some(state) = model.frameworks.get_mut(&framework) {
                state.active = active;
                if !active {
                    model.clear_filters(|filter| filter.framework != framework);
                }
            }
            allocator.set_framework_active(&framework_id(framework), active);
        }
        Op::Suppress(framework, role) => {
            if let Some(state) = model.frameworks.get_mut(&framework) {
                let selected: Vec<usize> = match role {
                    Some(role) => vec![role],
                    None => state.roles.iter().copied().collect(),
                };
                for role in selected
                    .into_iter()
                    .filter(|role| state.roles.contains(role))
                {
                    state.suppressed.insert(role);
                }
            }
            let names = role.map(|role| vec![ROLES[role].to_owned()]);
            allocator.suppress(&framework_id(framework), names.as_deref());
        }
        Op::Revive(framework, role) => {
            if let Some(state) = model.frameworks.get_mut(&framework) {
                match role {
                    Some(role) => {
                        state.suppressed.remove(&role);
                    }
                    None => state.suppressed.clear(),
                }
            }
            model.clear_filters(|filter| {
                filter.framework != framework || role.is_some_and(|role| role != filter.role)
            });
            let names = role.map(|role| vec![ROLES[role].to_owned()]);
            allocator.revive(&framework_id(framework), names.as_deref());
        }
        Op::Allocate => {
            let grants = allocator.allocate(model.now_ms);
            check_grants(model, &grants)?;
            nothing_left_to_grant(model, allocator)?;
        }
        Op::AllocateChanged => {
            let grants = allocator.allocate_changed(model.now_ms);
            check_grants(model, &grants)?;
            nothing_left_to_grant(model, allocator)?;
        }
        Op::Recover {
            pick,
            portion,
            refuse_ms,
        } => {
            if model.held.is_empty() {
                return Ok(());
            }
            let index = pick % model.held.len();
            let held = model.held[index].clone();
            let returned = match portion {
                0 => held.resources.clone(),
                1 => held
                    .resources
                    .filter(|entry| matches!(entry.value, ResourceValue::Scalar(_))),
                2 => held
                    .resources
                    .filter(|entry| !matches!(entry.value, ResourceValue::Scalar(_))),
                _ => half_of_scalars(&held.resources),
            };
            model.held[index].resources.subtract(&returned);
            if model.held[index].resources.is_empty() {
                model.held.remove(index);
            }
            let framework = model.frameworks.get(&held.framework);
            if let Some(refuse_ms) = refuse_ms
                && framework.is_some_and(|state| state.registered && state.active)
                && !returned.is_empty()
            {
                model.filters.push(Filter {
                    framework: held.framework,
                    agent: held.agent,
                    role: held.role,
                    resources: returned.clone(),
                    until_ms: model.now_ms + refuse_ms.max(MIN_REFUSE_MS),
                });
            }
            allocator.recover(
                &framework_id(held.framework),
                &agent_id(held.agent),
                ROLES[held.role],
                &returned,
                refuse_ms,
                model.now_ms,
            );
        }
        Op::MarkUsed { pick } => {
            if model.held.is_empty() {
                return Ok(());
            }
            let held = &model.held[pick % model.held.len()];
            allocator.mark_used(
                &framework_id(held.framework),
                &agent_id(held.agent),
                ROLES[held.role],
                &held.resources,
            );
        }
        Op::Advance(ms) => model.now_ms += ms,
        Op::SetQuota {
            role,
            guarantee_cpus,
            limit_cpus,
        } => {
            let guarantee = res(&format!("cpus:{guarantee_cpus}"));
            let limits = limit_cpus.map(|cpus| res(&format!("cpus:{cpus}")));
            match limit_cpus {
                Some(cpus) => model
                    .limits
                    .insert(role, Scalar::from_units(i64::from(cpus))),
                None => model.limits.remove(&role),
            };
            allocator.set_quota(ROLES[role], guarantee, limits);
        }
        Op::SetWeight { role, weight } => allocator.set_weight(ROLES[role], f64::from(weight)),
    }
    check_totals(model, allocator)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_event_sequences_keep_the_books_straight(ops in prop::collection::vec(op(), 1..80)) {
        let mut allocator = Allocator::new(AllocatorConfig::default());
        let mut model = Model::default();
        for op in &ops {
            apply(&mut model, &mut allocator, op)?;
        }
        // Giving everything back leaves every agent whole.
        for held in std::mem::take(&mut model.held) {
            allocator.recover(
                &framework_id(held.framework),
                &agent_id(held.agent),
                ROLES[held.role],
                &held.resources,
                None,
                model.now_ms,
            );
        }
        check_totals(&model, &allocator)?;
    }

    #[test]
    fn a_busy_cluster_hands_out_everything_once(
        templates in prop::collection::vec(0..AGENT_TEMPLATES.len(), 1..12),
        frameworks in prop::collection::vec(prop::collection::btree_set(0..ROLES.len(), 1..=3), 1..6),
    ) {
        let mut allocator = Allocator::new(AllocatorConfig::default());
        let mut model = Model::default();
        for (agent, template) in templates.iter().enumerate() {
            let agent = u8::try_from(agent).unwrap_or(u8::MAX);
            apply(&mut model, &mut allocator, &Op::AddAgent { agent, template: *template, used: None })?;
        }
        for (framework, roles) in frameworks.iter().enumerate() {
            let framework = u8::try_from(framework).unwrap_or(u8::MAX);
            apply(&mut model, &mut allocator, &Op::AddFramework { framework, roles: roles.clone(), active: true })?;
        }
        apply(&mut model, &mut allocator, &Op::Allocate)?;
        // Every agent's unreserved cpus went to someone, since every framework was willing.
        for agent in model.agents.keys() {
            let free = model.free_on(*agent);
            prop_assert!(!free.unreserved().scalar("cpus").is_positive(), "a{} still has {}", agent, free);
        }
    }
}

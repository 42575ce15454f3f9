//! Convergence of repeated rounds to the DRF outcome: frameworks that keep launching tasks on
//! every offer end up with dominant shares in proportion to their roles' weights.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test may panic

use agora_alloc::{Allocator, AllocatorConfig};
use agora_types::{AgentId, FrameworkId, Resources};

fn res(text: &str) -> Resources {
    Resources::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

/// A framework that joins at round `joins_at`, launches up to `tasks_per_offer` tasks of
/// `task` on every offer and declines the rest (with a filter when it could use nothing).
struct Greedy {
    id: FrameworkId,
    role: String,
    task: Resources,
    tasks_per_offer: usize,
    joins_at: u64,
}

impl Greedy {
    fn new(id: &str, role: &str, task: &str, tasks_per_offer: usize) -> Greedy {
        Greedy {
            id: FrameworkId::new(id),
            role: role.to_owned(),
            task: res(task),
            tasks_per_offer,
            joins_at: 1,
        }
    }

    fn joining_at(mut self, round: u64) -> Greedy {
        self.joins_at = round;
        self
    }
}

fn cluster(agents: usize, agent_resources: &str) -> Allocator {
    let mut allocator = Allocator::new(AllocatorConfig::default());
    for index in 0..agents {
        allocator.add_agent(
            AgentId::new(format!("agent-{index:03}")),
            res(agent_resources),
            vec![],
        );
    }
    allocator
}

/// A running task: (round it ends, framework, agent, role).
type Task = (u64, usize, AgentId, String);

/// Runs `rounds` offer cycles one second apart; tasks run for `lifetime` rounds (forever when
/// `None`). Returns the number of tasks launched per framework.
fn simulate(
    allocator: &mut Allocator,
    frameworks: &[Greedy],
    rounds: u64,
    lifetime: Option<u64>,
) -> Vec<usize> {
    let mut launched = vec![0; frameworks.len()];
    let mut running: Vec<Task> = Vec::new();
    for round in 1..=rounds {
        let now_ms = round * 1_000;
        for framework in frameworks
            .iter()
            .filter(|framework| framework.joins_at == round)
        {
            allocator.add_framework(framework.id.clone(), vec![framework.role.clone()], true);
        }
        running.retain(|(ends, index, agent, role)| {
            if *ends > round {
                return true;
            }
            let framework = &frameworks[*index];
            allocator.recover(&framework.id, agent, role, &framework.task, None, now_ms);
            false
        });
        for grant in allocator.allocate(now_ms) {
            let Some(index) = frameworks
                .iter()
                .position(|framework| framework.id == grant.framework)
            else {
                panic!("grant to an unknown framework: {grant:?}");
            };
            let framework = &frameworks[index];
            assert_eq!(grant.role, framework.role);
            let mut left = grant.resources.clone();
            let mut tasks = 0;
            while tasks < framework.tasks_per_offer {
                let Some(rest) = left.checked_sub(&framework.task) else {
                    break;
                };
                allocator.mark_used(&grant.framework, &grant.agent, &grant.role, &framework.task);
                let ends = lifetime.map_or(u64::MAX, |lifetime| round.saturating_add(lifetime));
                running.push((ends, index, grant.agent.clone(), grant.role.clone()));
                left = rest;
                tasks += 1;
            }
            launched[index] += tasks;
            let refuse_ms = (tasks == 0).then_some(5_000);
            allocator.recover(
                &grant.framework,
                &grant.agent,
                &grant.role,
                &left,
                refuse_ms,
                now_ms,
            );
        }
    }
    launched
}

fn role_cpus(allocator: &Allocator, role: &str) -> f64 {
    allocator
        .role_shares()
        .into_iter()
        .find(|(name, _, _)| name == role)
        .map_or(0.0, |(_, _, allocated)| allocated.scalar("cpus").to_f64())
}

fn two_roles(weight_a: f64) -> (f64, f64) {
    let mut allocator = cluster(100, "cpus:1;mem:1024");
    allocator.set_weight("a", weight_a);
    let frameworks = [
        Greedy::new("fa", "a", "cpus:0.25;mem:128", 1),
        Greedy::new("fb", "b", "cpus:0.25;mem:128", 1),
    ];
    let launched = simulate(&mut allocator, &frameworks, 30, None);
    assert_eq!(launched.iter().sum::<usize>(), 400, "the cluster fills up");
    // Everything offered was either used or given back, so allocated == used.
    let (a, b) = (role_cpus(&allocator, "a"), role_cpus(&allocator, "b"));
    assert_eq!(a + b, 100.0);
    (a / 100.0, b / 100.0)
}

#[test]
fn equal_weights_converge_to_equal_shares() {
    let (a, b) = two_roles(1.0);
    assert!(
        (a - 0.5).abs() <= 0.05 && (b - 0.5).abs() <= 0.05,
        "a={a} b={b}"
    );
}

#[test]
fn weights_three_to_one_converge_to_75_25() {
    let (a, b) = two_roles(3.0);
    assert!(
        (a - 0.75).abs() <= 0.05 && (b - 0.25).abs() <= 0.05,
        "a={a} b={b}"
    );
}

#[test]
fn weighted_shares_hold_while_the_cluster_is_not_full() {
    // Fewer rounds than it takes to fill the cluster: the split must already follow the
    // weights, not only the final packing.
    let mut allocator = cluster(100, "cpus:1;mem:1024");
    allocator.set_weight("a", 3.0);
    let frameworks = [
        Greedy::new("fa", "a", "cpus:0.1;mem:16", 1),
        Greedy::new("fb", "b", "cpus:0.1;mem:16", 1),
    ];
    let launched = simulate(&mut allocator, &frameworks, 4, None);
    let (a, b) = (role_cpus(&allocator, "a"), role_cpus(&allocator, "b"));
    assert!(a + b < 60.0, "the cluster is not full yet: {a} + {b}");
    let ratio = a / b;
    assert!(
        (ratio - 3.0).abs() <= 0.3,
        "a={a} b={b} launched={launched:?}"
    );
}

#[test]
fn a_late_framework_catches_up_as_tasks_finish() {
    // "early" fills the cluster alone; "late" joins when nothing is free. As tasks end, DRF
    // hands the freed resources to the framework with the lower share until both are even.
    let mut allocator = cluster(100, "cpus:1;mem:1024");
    let frameworks = [
        Greedy::new("early", "*", "cpus:0.25;mem:128", 1),
        Greedy::new("late", "*", "cpus:0.25;mem:128", 1).joining_at(10),
    ];
    simulate(&mut allocator, &frameworks, 9, Some(u64::MAX));
    assert_eq!(allocator.framework_share(&FrameworkId::new("early")), 1.0);
    let mut allocator = cluster(100, "cpus:1;mem:1024");
    simulate(&mut allocator, &frameworks, 80, Some(6));
    let early = allocator.framework_share(&FrameworkId::new("early"));
    let late = allocator.framework_share(&FrameworkId::new("late"));
    assert!(
        early + late > 0.9,
        "the cluster stays busy: {early} + {late}"
    );
    assert!((early - late).abs() <= 0.05, "early={early} late={late}");
}

#[test]
fn frameworks_with_different_dominant_resources_equalise_dominant_shares() {
    // The DRF paper's example: one framework is cpu-heavy, the other memory-heavy, and each
    // packs as many tasks as fit into an offer. Ordering by cpu share alone would hand the
    // memory-heavy framework most agents; DRF keeps the dominant shares level through churn.
    let mut allocator = cluster(100, "cpus:1;mem:1024");
    let frameworks = [
        Greedy::new("cpu-heavy", "*", "cpus:0.1;mem:16", usize::MAX),
        Greedy::new("mem-heavy", "*", "cpus:0.01;mem:40.96", usize::MAX),
    ];
    simulate(&mut allocator, &frameworks, 120, Some(8));
    let cpu_heavy = allocator.framework_share(&FrameworkId::new("cpu-heavy"));
    let mem_heavy = allocator.framework_share(&FrameworkId::new("mem-heavy"));
    assert!(
        cpu_heavy > 0.3 && mem_heavy > 0.3,
        "{cpu_heavy} {mem_heavy}"
    );
    assert!(
        (cpu_heavy - mem_heavy).abs() <= 0.05,
        "cpu-heavy={cpu_heavy} mem-heavy={mem_heavy}"
    );
}

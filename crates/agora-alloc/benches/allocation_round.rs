//! One allocation round on a large cluster where every agent is free, the worst case: every
//! agent is offered. 10,000 agents, 1,000 frameworks in 10 roles; once without quota, once
//! with guarantees and limits on some roles (the trimming path), and once on a cluster with
//! nothing free (the steady state).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test may panic

use std::hint::black_box;
use std::time::Duration;

use agora_alloc::{Allocator, AllocatorConfig};
use agora_types::{AgentId, FrameworkId, Resources};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const AGENTS: usize = 10_000;
const FRAMEWORKS: usize = 1_000;
const ROLES: usize = 10;

fn res(text: &str) -> Resources {
    Resources::parse(text).unwrap_or_default()
}

fn cluster() -> Allocator {
    let mut allocator = Allocator::new(AllocatorConfig::default());
    let total = res("cpus:16;mem:65536;disk:100000;ports:[31000-32000]");
    for agent in 0..AGENTS {
        allocator.add_agent(
            AgentId::new(format!("agent-{agent:05}")),
            total.clone(),
            vec![],
        );
    }
    for framework in 0..FRAMEWORKS {
        let role = format!("role-{}", framework % ROLES);
        allocator.add_framework(
            FrameworkId::new(format!("fw-{framework:04}")),
            vec![role],
            true,
        );
    }
    for role in 0..ROLES {
        allocator.set_weight(&format!("role-{role}"), 1.0 + role as f64);
    }
    allocator
}

fn with_quota() -> Allocator {
    let mut allocator = cluster();
    allocator.set_quota("role-0", res("cpus:20000;mem:80000000"), None);
    allocator.set_quota("role-1", res("cpus:10000"), Some(res("cpus:15000")));
    allocator.set_quota(
        "role-2",
        Resources::new(),
        Some(res("cpus:5000;mem:1000000")),
    );
    allocator
}

fn allocation_round(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocation_round");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));

    let free = cluster();
    let grants = free.clone().allocate(0).len();
    assert_eq!(grants, AGENTS, "every agent is offered once");
    group.bench_function("10k_agents_1k_frameworks", |b| {
        b.iter_batched_ref(
            || free.clone(),
            |allocator| black_box(allocator.allocate(0)),
            BatchSize::LargeInput,
        );
    });

    let quota = with_quota();
    group.bench_function("10k_agents_1k_frameworks_quota", |b| {
        b.iter_batched_ref(
            || quota.clone(),
            |allocator| black_box(allocator.allocate(0)),
            BatchSize::LargeInput,
        );
    });

    // The steady state: everything is offered or used, a round finds nothing to give.
    let mut busy = cluster();
    busy.allocate(0);
    group.bench_function("10k_agents_1k_frameworks_busy", |b| {
        b.iter(|| black_box(busy.allocate(1)));
    });
    group.finish();
}

criterion_group!(benches, allocation_round);
criterion_main!(benches);

//! agora's integration tests, in one binary (one link instead of one per file): each module
//! starts real `agora` processes and talks to them over HTTP, as their users do.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test may panic

mod common;

mod agent_docker;
mod agent_fetcher;
mod agent_isolation;
mod agent_launcher;
mod agent_sandbox;
mod allocation_shares;
mod cli_cluster;
mod cli_services;
mod cluster_launch;
mod discovery_dns;
mod discovery_haproxy;
mod discovery_proxy;
mod failure_recovery;
mod ha_masters;
mod hollow_agents;
mod jobs_chronos;
mod jobs_metronome;
mod operator_api;
mod scheduler_api;
mod security;
mod services_apps;
mod services_cluster;
mod services_groups;
mod services_health;
mod up_lifecycle;

//! The allocator's tunables and the one thing it produces: a grant of an agent's resources to a
//! framework in a role, which the master turns into an offer.

use agora_types::{AgentId, FrameworkId, Resources, Scalar};

/// Tunables of the allocator; the defaults are Mesos' defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocatorConfig {
    /// A chunk is offered only if it holds at least this many cpus (or enough memory).
    /// Mesos `--min_allocatable_resources` default `cpus:0.01`.
    pub min_allocatable_cpus: Scalar,
    /// A chunk is offered only if it holds at least this much memory in MB (or enough cpus).
    /// Mesos default `mem:32`.
    pub min_allocatable_mem: Scalar,
    /// The shortest decline filter: Mesos never filters for less than one allocation interval.
    pub min_refuse_ms: u64,
}

impl Default for AllocatorConfig {
    fn default() -> AllocatorConfig {
        AllocatorConfig {
            min_allocatable_cpus: Scalar::from_milli(10),
            min_allocatable_mem: Scalar::from_units(32),
            min_refuse_ms: 1000,
        }
    }
}

/// Resources of one agent handed to one framework for one of its roles. At most one grant per
/// (framework, agent, role) per round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferGrant {
    pub framework: FrameworkId,
    pub agent: AgentId,
    pub role: String,
    pub resources: Resources,
}

//! Hierarchical Dominant Resource Fairness over roles, as the Mesos master's allocator does it:
//! weights, quota guarantees and limits, static reservations and offer (decline) filters.
//!
//! The crate is pure: it does no I/O, never reads the clock (every time-dependent call takes
//! `now_ms`) and uses no randomness. The master owns one [`Allocator`], feeds it agent, framework
//! and offer events, and calls [`Allocator::allocate`] once per offer cycle; the returned
//! [`OfferGrant`]s are already recorded as allocated and stay so until the master gives them back
//! with [`Allocator::recover`] (declined, rescinded, or the task using them ended).
//! [`Allocator::mark_used`] only moves accepted resources from the offered to the used
//! bookkeeping; both count as allocated for shares.
//!
//! Semantics follow Mesos' hierarchical allocator: stage 1 serves quota guarantees, stage 2
//! orders roles by dominant share divided by weight and frameworks inside a role by their share
//! there; unreserved resources other roles' unmet guarantees need are held back; quota limits
//! trim unreserved scalars; quota consumption counts a role's reservations, allocated or not
//! (Mesos 1.9+). Roles are flat: `a/b` is not nested under `a`.
//!
//! **Invariant:** for every agent, the resources handed out (offered or used) plus what is still
//! available equal the agent's total; nothing is granted twice and no agent is over-allocated.
//!
//! **API boundary:** ids and [`agora_types::Resources`] in, [`OfferGrant`]s out. Offer ids,
//! offer timeouts, and wire formats belong to the master.

mod allocator;
mod config;
mod round;
mod share;
#[cfg(test)]
mod tests;

pub use allocator::Allocator;
pub use config::{AllocatorConfig, OfferGrant};

//! Domain types shared by every agora component: identifiers, resources with exact fixed-point
//! arithmetic, task states. Pure: no I/O, no clock, no randomness.

mod ids;
mod resources;
mod task_state;

pub use ids::{AgentId, ExecutorId, FrameworkId, OfferId, TaskId};
pub use resources::{
    DEFAULT_ROLE, ParseResourcesError, Range, Reservation, ReservationKind, Resource,
    ResourceValue, Resources, Scalar,
};
pub use task_state::TaskState;

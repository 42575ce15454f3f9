//! Domain types shared by every agora component: identifiers, resources with exact fixed-point
//! arithmetic, task states. Pure: no I/O, no clock, no randomness.

mod ids;
mod resources;
mod task_state;

pub use ids::{AgentId, ExecutorId, FrameworkId, OfferId, TaskId};
pub use resources::{
    ParseResourcesError, Range, Reservation, ReservationKind, Resource, ResourceValue, Resources,
    Scalar, DEFAULT_ROLE,
};
pub use task_state::TaskState;

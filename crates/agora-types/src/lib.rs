//! Domain types shared by every agora component: identifiers, resources with exact fixed-point
//! arithmetic, task states, the host of an address. Pure: no I/O, no clock, no randomness.

mod address;
mod ids;
mod resources;
mod task_state;

pub use address::host_of;
pub use ids::{AgentId, ExecutorId, FrameworkId, OfferId, TaskId};
pub use resources::{
    DEFAULT_ROLE, ParseResourcesError, Range, Reservation, ReservationKind, Resource,
    ResourceValue, Resources, Scalar,
};
pub use task_state::TaskState;

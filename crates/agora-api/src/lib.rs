//! Wire formats agora speaks: the Mesos v1 JSON messages (scheduler, executor, operator), RecordIO
//! framing, the v0 state JSON shapes, Marathon's apps and Chronos' jobs, and agora's own
//! master↔agent protocol. Only this crate knows the external JSON shapes; conversions to domain
//! types live next to the wire types.

pub mod agent_protocol;
pub mod chronos;
pub mod docker_policy;
pub mod executor;
pub mod health;
pub mod marathon;
pub mod mesos;
pub mod metronome;
pub mod operator;
pub mod prometheus;
pub mod recordio;
pub mod scheduler;
pub mod v0;

mod error;

pub use error::ApiError;

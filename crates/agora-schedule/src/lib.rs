//! Pure schedule arithmetic for the jobs scheduler: Chronos' ISO 8601 repeating intervals and
//! Metronome's cron expressions in time zones ([`repeating`], [`cron`]), the one rule for when a
//! run is due or skipped ([`due`]), and the job dependency graph ([`graph`]). Nothing here reads
//! the clock or does I/O: every function takes the time it is asked about.

pub mod cron;
pub mod due;
pub mod graph;
pub mod repeating;

pub use cron::CronSchedule;
pub use due::{Decision, Schedule};
pub use graph::Readiness;
pub use repeating::Repeating;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid schedule {0}")]
    Invalid(String),
    #[error("job {job:?} names an unknown parent {parent:?}")]
    UnknownParent { job: String, parent: String },
    #[error("the parents form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

//! The jobs scheduler: Chronos-style recurring and dependent batch jobs. Like the services
//! scheduler it will be a framework of the master, reaching it only through the scheduler SDK,
//! with its jobs in the store.
//!
//! Built so far (issue 4 is in progress): the jobs and the rules that change them
//! ([`core::Jobs`]: definitions checked against each other, due runs, the run queue, retries,
//! dependent jobs, history, persistence). The framework loop and the Chronos and Metronome
//! HTTP APIs come next.

pub mod core;

pub use crate::core::{Jobs, JobsError};

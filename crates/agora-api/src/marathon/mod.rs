//! Marathon `/v2` wire formats: app definitions with Marathon's defaults, path ids,
//! timestamps, and the 422 error body. The services scheduler (issue 3) builds on these.

pub mod app;
pub mod container;
pub mod errors;
pub mod path;
pub mod time;

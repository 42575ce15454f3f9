//! Pure scheduling decisions for long-running apps, kept apart from all I/O so they can be unit-
//! and property-tested and benchmarked alone: placement constraints (Marathon's operators),
//! matching an instance's needs against an offer, service-port assignment, the arithmetic
//! of rolling upgrades, and deployment order by dependencies. Nothing here reads a clock or does I/O.

pub mod constraints;
pub mod dependencies;
pub mod offer_match;
pub mod rolling;
pub mod service_ports;

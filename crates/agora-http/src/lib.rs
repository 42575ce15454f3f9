//! What every agora HTTP server shares, whatever role it plays: the gate each request passes
//! before any handler sees it ([`protect`]: requests a web page could forge are refused, and a
//! browser must name this server by a name it serves), and the error shape of each API family
//! ([`ApiFamily`]) so a refusal reads as the API the client speaks; and the listener loop
//! ([`serve`]) with the limits a server facing a network needs.

mod answer;
pub mod auth;
mod body;
mod durable;
pub mod events;
mod family;
mod gate;
mod listen;

pub use agora_tls::PeerCertified;
pub use answer::{MesosError, Query, flag, mesos_content_type};
pub use durable::answer_once_committed;
pub use family::{ApiFamily, MesosV1};
pub use gate::{GateConfig, HostNames, protect};
pub use listen::{Limits, ListenerTls, Refused, serve, serve_local};

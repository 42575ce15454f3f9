//! What every agora HTTP server shares, whatever role it plays: the gate each request passes
//! before any handler sees it ([`protect`]: requests a web page could forge are refused, and a
//! browser must name this server by a name it serves), and the error shape of each API family
//! ([`ApiFamily`]) so a refusal reads as the API the client speaks.

mod family;
mod gate;

pub use family::ApiFamily;
pub use gate::{GateConfig, HostNames, protect};

//! The launcher: one helper process per agent that starts executors on the agent's behalf.
//!
//! Starting the built-in executor by `exec` costs every task the loading and relocating of the
//! whole `agora` binary, and every spawn from the agent itself copies, then closes, the agent's
//! file table (thousands of connections with thousands of executors). The launcher is the
//! `agora executor` binary started once, with `AGORA_LAUNCHER` set and a socket as its stdin:
//! it forks the built-in executor without `exec` (so executors still show as `agora executor`
//! in `ps`), and spawns framework executors from its small file table. It reaps its children
//! and reports their raw wait status, as the agent would for its own children.
//!
//! The two speak one JSON object a line. When the agent goes, the launcher sees end-of-file
//! and exits; the executors it started live on, as they do when the agent starts them itself,
//! for the agent to recover. If the launcher goes, the agent starts executors itself.

mod client;
// Forking without exec, the one place the agent needs raw process calls; each has a SAFETY note.
#[allow(unsafe_code)]
mod forked;
mod protocol;

pub(crate) use client::{LaunchError, Launched, Launcher};
pub(crate) use forked::prepare_on_spawn;
pub use forked::serve_launcher;
pub use protocol::LAUNCHER_ENV;
pub(crate) use protocol::{Assignment, LaunchRequest};

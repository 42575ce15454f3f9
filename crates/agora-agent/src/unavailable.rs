//! Why an isolation (cgroups, namespaces, tasks running as their users) is not used: said once
//! at start, shown in the agent's state, and fatal where `--isolation` requires it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("{0} turned off (--isolation)")]
    TurnedOff(&'static str),
    #[error("turned off (--switch-user false)")]
    SwitchUserOff,
    #[error("the agent does not run as root")]
    NotRoot,
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("no usable cgroup hierarchy has the cpu and memory controllers (missing: {missing})")]
    NoControllers { missing: String },
    #[error("cannot create {}: {source}", dir.display())]
    CannotCreate {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot enable {controllers} in {}: {source} (cgroup v2 needs the agent in a delegated \
         cgroup of its own)",
        dir.display()
    )]
    CannotDelegate {
        controllers: String,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("the kernel has no {0} namespaces")]
    NoNamespace(&'static str),
    #[error("new pid and mount namespaces are refused here: {0}")]
    NamespacesRefused(String),
}

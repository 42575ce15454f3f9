//! agora's masters on ZooKeeper, as Mesos' are: each master joins the group at the path of a
//! `zk://` URL as an ephemeral sequential znode `json.info_<seq>` holding its MasterInfo JSON,
//! the lowest sequence leads ([`Contender`]), and anyone — agents, clients, pymesos — finds
//! the leader by reading that group ([`Detector`]).
//!
//! The masters' state lives in ZooKeeper too, beside the group ([`ZkStore`], an
//! `agora_store::Store` whose every write is fenced by the writer's member znode).
//!
//! The public surface is [`ZkUrl`], [`Contender`] with its [`Leadership`], [`Detector`],
//! [`ZkStore`] and the pure [`group`] rules.

mod contender;
mod detector;
pub mod group;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod url;

use std::time::Duration;

pub use contender::{Contender, Leadership};
pub use detector::{Detector, address_of};
pub use store::{StoreOptions, ZkStore, default_state_root};
pub use url::ZkUrl;
pub use zookeeper_client as client;

/// Mesos' `--zk_session_timeout` default.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ZkError {
    #[error("{url} is not a ZooKeeper URL for agora: {why}")]
    Url { url: String, why: String },
    #[error("cannot reach ZooKeeper at {hosts}: {source}")]
    Connect {
        hosts: String,
        source: zookeeper_client::Error,
    },
    #[error("ZooKeeper at {path}: {source}")]
    Zk {
        path: String,
        source: zookeeper_client::Error,
    },
    #[error(
        "the ZooKeeper path {path} holds nodes that are not masters' ({found}): give the \
         cluster a path of its own"
    )]
    Foreign { path: String, found: String },
    #[error(
        "the ZooKeeper path {root} cannot hold this cluster's state: {found}; give the \
         cluster a state path of its own (--zk-state)"
    )]
    OtherState { root: String, found: String },
}

/// A session on the ensemble, with the session timeout asked for.
async fn connect(
    url: &ZkUrl,
    session_timeout: Duration,
) -> Result<zookeeper_client::Client, ZkError> {
    zookeeper_client::Client::connector()
        .with_session_timeout(session_timeout)
        .connect(&url.connect_string())
        .await
        .map_err(|source| ZkError::Connect {
            hosts: url.connect_string(),
            source,
        })
}

/// How soon a request the connection lost is tried again (within the session).
const RETRY: Duration = Duration::from_millis(200);

/// Whether a request failed because the session is over, rather than a connection lost
/// within it (which the client re-establishes while the session lives).
fn ends_session(error: &zookeeper_client::Error) -> bool {
    use zookeeper_client::Error;
    matches!(
        error,
        Error::SessionExpired | Error::ClientClosed | Error::AuthFailed
    )
}

/// Whether a session state is final.
fn session_ended(state: zookeeper_client::SessionState) -> bool {
    use zookeeper_client::SessionState;
    matches!(
        state,
        SessionState::Expired | SessionState::Closed | SessionState::AuthFailed
    )
}

fn at(path: &str) -> impl Fn(zookeeper_client::Error) -> ZkError + '_ {
    move |source| ZkError::Zk {
        path: path.to_owned(),
        source,
    }
}

//! Masters in ZooKeeper, for the SDK: a scheduler given `zk://host:2181/agora` follows the
//! group's leader as Mesos' scheduler library does (with the `zk` feature; a build without it
//! says so rather than knocking on a URL that is no master).

use std::time::Duration;

use tokio::sync::watch;

use crate::ClientError;

/// How long the first subscription waits for a leader to be elected.
const FIRST_LEADER_WAIT: Duration = Duration::from_secs(30);

/// The leader's `host:port`, kept current while this lives.
pub(crate) struct Leader {
    #[cfg(feature = "zk")]
    _detector: agora_zk::Detector,
    pub address: watch::Receiver<Option<String>>,
}

pub(crate) fn is_zk(master: &str) -> bool {
    master.starts_with("zk://") || master.starts_with("zoo://")
}

/// The leader of the masters in ZooKeeper at `master`, once one leads; `None` when `master`
/// is no ZooKeeper URL.
pub(crate) async fn follow(master: &str) -> Result<Option<(Leader, String)>, ClientError> {
    if !is_zk(master) {
        return Ok(None);
    }
    follow_zk(master).await.map(Some)
}

#[cfg(feature = "zk")]
async fn follow_zk(master: &str) -> Result<(Leader, String), ClientError> {
    let failed = |message: String| ClientError::Connect {
        url: master.to_owned(),
        message,
    };
    let url = agora_zk::ZkUrl::parse(master).map_err(|e| failed(e.to_string()))?;
    let detector = agora_zk::Detector::follow(&url, agora_zk::DEFAULT_SESSION_TIMEOUT)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut address = detector.leader_address();
    let first =
        match tokio::time::timeout(FIRST_LEADER_WAIT, address.wait_for(Option::is_some)).await {
            Ok(Ok(first)) => first.clone().unwrap_or_default(),
            _ => return Err(failed("no master leads".into())),
        };
    Ok((
        Leader {
            _detector: detector,
            address,
        },
        first,
    ))
}

#[cfg(not(feature = "zk"))]
async fn follow_zk(master: &str) -> Result<(Leader, String), ClientError> {
    let _ = FIRST_LEADER_WAIT;
    Err(ClientError::Connect {
        url: master.to_owned(),
        message: "this build of agora-client has no ZooKeeper support (its `zk` feature)".into(),
    })
}

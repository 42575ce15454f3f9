//! The leading master as Mesos' detectors find it: the MasterInfo JSON of the group's member
//! with the lowest sequence, followed as members come and go, through ZooKeeper's own
//! turbulence (a lost session is replaced).

use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client as zk;

use crate::{RETRY, ZkError, ZkUrl, connect, ends_session, group, session_ended};

/// The leader of a group, kept current.
pub struct Detector {
    leader: watch::Receiver<Option<serde_json::Value>>,
    task: tokio::task::JoinHandle<()>,
}

impl Detector {
    /// Follows the group at `url`'s path; fails only when no ZooKeeper server answers at all.
    pub async fn follow(url: &ZkUrl, session_timeout: Duration) -> Result<Detector, ZkError> {
        let client = connect(url, session_timeout).await?;
        let (publish, leader) = watch::channel(None);
        let task = tokio::spawn(detect(url.clone(), session_timeout, client, publish));
        Ok(Detector { leader, task })
    }

    /// The leader's MasterInfo JSON (`None` while there is none).
    pub fn leader(&self) -> watch::Receiver<Option<serde_json::Value>> {
        self.leader.clone()
    }

    /// The leader's `host:port` (`None` while there is none), kept current while the
    /// detector lives.
    pub fn leader_address(&self) -> watch::Receiver<Option<String>> {
        let mut leader = self.leader.clone();
        let first = leader.borrow_and_update().as_ref().and_then(address_of);
        let (publish, address) = watch::channel(first);
        tokio::spawn(async move {
            while leader.changed().await.is_ok() {
                let now = leader.borrow_and_update().as_ref().and_then(address_of);
                publish.send_if_modified(|current| {
                    let changed = *current != now;
                    *current = now;
                    changed
                });
                if publish.is_closed() {
                    return;
                }
            }
        });
        address
    }
}

/// `host:port` of a MasterInfo: its address's ip (else its hostname) and port, as Mesos'
/// clients reach the leader.
pub fn address_of(info: &serde_json::Value) -> Option<String> {
    let address = info.get("address");
    let host = address
        .and_then(|a| a.get("ip"))
        .or_else(|| address.and_then(|a| a.get("hostname")))
        .or_else(|| info.get("hostname"))?
        .as_str()?;
    let port = info.get("port")?.as_u64()?;
    Some(format!("{host}:{port}"))
}

impl Drop for Detector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn detect(
    url: ZkUrl,
    session_timeout: Duration,
    mut client: zk::Client,
    publish: watch::Sender<Option<serde_json::Value>>,
) {
    loop {
        if let Err(error) = follow_session(&client, &url.path, &publish).await {
            tracing::debug!(%error, "leader detection: a new ZooKeeper session");
        }
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            match connect(&url, session_timeout).await {
                Ok(fresh) => {
                    client = fresh;
                    break;
                }
                Err(error) => tracing::debug!(%error, "leader detection: ZooKeeper unreachable"),
            }
        }
    }
}

/// Publishes the leader until the session ends; a connection lost within it is waited out.
async fn follow_session(
    client: &zk::Client,
    path: &str,
    publish: &watch::Sender<Option<serde_json::Value>>,
) -> Result<(), zk::Error> {
    let mut session = client.state_watcher();
    loop {
        let next = match client.list_and_watch_children(path).await {
            Ok((children, watcher)) => match leader_info(client, path, &children).await {
                Ok(leader) => {
                    publish.send_if_modified(|current| {
                        let changed = *current != leader;
                        *current = leader;
                        changed
                    });
                    Some(watcher)
                }
                Err(error) if ends_session(&error) => return Err(error),
                Err(_) => None,
            },
            // No group yet: no leader; look again soon (an exists-watch would do as well).
            Err(zk::Error::NoNode) => {
                publish.send_if_modified(|current| current.take().is_some());
                None
            }
            Err(error) if ends_session(&error) => return Err(error),
            // The connection, not the session, is lost: the leader known stands meanwhile.
            Err(_) => None,
        };
        let wait = async {
            match next {
                Some(watcher) => {
                    watcher.changed().await;
                }
                None => tokio::time::sleep(RETRY).await,
            }
        };
        tokio::select! {
            () = wait => {}
            state = session.changed() => {
                if session_ended(state) {
                    return Err(zk::Error::SessionExpired);
                }
            }
        }
    }
}

async fn leader_info(
    client: &zk::Client,
    path: &str,
    children: &[String],
) -> Result<Option<serde_json::Value>, zk::Error> {
    let Some(leader) = group::leader(children) else {
        return Ok(None);
    };
    match client.get_data(&format!("{path}/{leader}")).await {
        Ok((data, _)) => Ok(Some(
            serde_json::from_slice(&data).unwrap_or(serde_json::Value::Null),
        )),
        // It left between the listing and the read: the next listing says who leads.
        Err(zk::Error::NoNode) => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_is_reached_at_its_address() {
        let info = serde_json::json!({"id": "m", "hostname": "host-a", "port": 5050, "ip": 16777343,
            "address": {"hostname": "host-a", "ip": "10.0.0.7", "port": 5050}});
        assert_eq!(address_of(&info).as_deref(), Some("10.0.0.7:5050"));
        let bare = serde_json::json!({"hostname": "host-b", "port": 5051});
        assert_eq!(address_of(&bare).as_deref(), Some("host-b:5051"));
        assert_eq!(address_of(&serde_json::json!({})), None);
    }
}

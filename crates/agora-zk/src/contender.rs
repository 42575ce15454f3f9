//! A master contending for leadership: its znode in the group, and what the group says of it
//! as members come and go.

use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client as zk;

use crate::group::{self, MEMBER_PREFIX};
use crate::{RETRY, ZkError, ZkUrl, at, connect, ends_session, session_ended};

/// Where a contender stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Leadership {
    /// It leads: its znode has the lowest sequence.
    Leading,
    /// Another master leads; its MasterInfo JSON.
    Following { leader: serde_json::Value },
    /// Its session ended (expired, closed): it must stop acting as a master at once. Final.
    Lost,
}

/// A master's membership of the group, alive as long as its ZooKeeper session.
pub struct Contender {
    client: zk::Client,
    path: String,
    member: String,
    leadership: watch::Receiver<Leadership>,
    task: tokio::task::JoinHandle<()>,
}

impl Contender {
    /// Joins the group at `url`'s path with `info` (the master's MasterInfo JSON, written in
    /// the same create call), and keeps [`Contender::leadership`] current.
    pub async fn join(
        url: &ZkUrl,
        session_timeout: Duration,
        info: &serde_json::Value,
    ) -> Result<Contender, ZkError> {
        let client = connect(url, session_timeout).await?;
        make_path(&client, &url.path).await?;
        let children = client
            .list_children(&url.path)
            .await
            .map_err(at(&url.path))?;
        let strangers = group::strangers(&children);
        if !strangers.is_empty() {
            return Err(ZkError::Foreign {
                path: url.path.clone(),
                found: strangers.join(", "),
            });
        }
        let prefix = format!("{}/{MEMBER_PREFIX}", url.path);
        let data = serde_json::to_vec(info).unwrap_or_default();
        let options = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let (_, sequence) = client
            .create(&prefix, &data, &options)
            .await
            .map_err(at(&prefix))?;
        let member = format!("{MEMBER_PREFIX}{sequence}");
        let first = standing(&client, &url.path, &member).await?;
        let (publish, leadership) = watch::channel(first);
        let task = tokio::spawn(watch_group(
            client.clone(),
            url.path.clone(),
            member.clone(),
            session_timeout,
            publish,
        ));
        tracing::info!(group = %url, %member, "joined the masters' group");
        Ok(Contender {
            client,
            path: url.path.clone(),
            member,
            leadership,
            task,
        })
    }

    /// Where this contender stands, kept current.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// The name of this master's znode in the group (what fenced writes check).
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The member znode's full path: what fences this master's writes.
    pub fn member_path(&self) -> String {
        format!("{}/{}", self.path, self.member)
    }

    /// The ZooKeeper session this membership lives in.
    pub fn client(&self) -> &zk::Client {
        &self.client
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Creates the group's path and its parents, as persistent nodes, where missing.
pub(crate) async fn make_path(client: &zk::Client, path: &str) -> Result<(), ZkError> {
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let mut prefix = String::new();
    for part in path.split('/').skip(1) {
        prefix.push('/');
        prefix.push_str(part);
        match client.create(&prefix, &[], &options).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(source) => return Err(at(&prefix)(source)),
        }
    }
    Ok(())
}

/// What the group's children say of `member` now.
async fn standing(client: &zk::Client, path: &str, member: &str) -> Result<Leadership, ZkError> {
    let children = client.list_children(path).await.map_err(at(path))?;
    leadership_among(client, path, member, &children)
        .await
        .map_err(at(path))
}

async fn leadership_among(
    client: &zk::Client,
    path: &str,
    member: &str,
    children: &[String],
) -> Result<Leadership, zk::Error> {
    match group::leader(children) {
        Some(leader) if leader == member => Ok(Leadership::Leading),
        // Our own znode is gone: the session that held it has ended.
        _ if !children.iter().any(|child| child == member) => Ok(Leadership::Lost),
        Some(leader) => {
            let (data, _) = client.get_data(&format!("{path}/{leader}")).await?;
            Ok(Leadership::Following {
                leader: serde_json::from_slice(&data).unwrap_or(serde_json::Value::Null),
            })
        }
        None => Ok(Leadership::Lost),
    }
}

/// The standing now, and the watch that fires when the group changes.
async fn look(
    client: &zk::Client,
    path: &str,
    member: &str,
) -> Result<(Leadership, zk::OneshotWatcher), zk::Error> {
    let (children, watcher) = client.list_and_watch_children(path).await?;
    let standing = leadership_among(client, path, member, &children).await?;
    Ok((standing, watcher))
}

/// Follows the group until the session ends, publishing every change of standing. A
/// connection lost within the session is waited out; one lost for a whole session timeout
/// deposes at once, as Mesos' group does: the ensemble expires the session about then and
/// elects another master, while the client would learn of the expiry only on reconnecting
/// (or 1.4 timeouts later).
async fn watch_group(
    client: zk::Client,
    path: String,
    member: String,
    session_timeout: std::time::Duration,
    publish: watch::Sender<Leadership>,
) {
    let mut session = client.state_watcher();
    // Since when the connection has been lost, if it is.
    let mut cut_off: Option<tokio::time::Instant> = None;
    let lost = |why: &str| {
        tracing::warn!(group = %path, why, "no longer a master");
        publish.send_replace(Leadership::Lost);
    };
    loop {
        let deadline = cut_off.map(|since| since + session_timeout);
        let looked = tokio::select! {
            looked = look(&client, &path, &member) => looked,
            () = until(deadline) => {
                lost("cut off from ZooKeeper for a whole session timeout");
                return;
            }
        };
        let watcher = match looked {
            Ok((Leadership::Lost, _)) => None,
            Ok((standing, watcher)) => {
                publish.send_if_modified(|current| {
                    let changed = *current != standing;
                    *current = standing;
                    changed
                });
                Some(watcher)
            }
            Err(error) if ends_session(&error) => None,
            Err(error) => {
                tracing::debug!(%error, "the masters' group is out of reach for now");
                let retry = tokio::time::sleep(RETRY);
                tokio::select! {
                    () = retry => continue,
                    () = until(deadline) => {
                        lost("cut off from ZooKeeper for a whole session timeout");
                        return;
                    }
                    state = session.changed() => {
                        note_connection(state, &mut cut_off);
                        if !session_ended(state) {
                            continue;
                        }
                    }
                }
                None
            }
        };
        let Some(watcher) = watcher else {
            lost("the ZooKeeper session ended");
            return;
        };
        tokio::select! {
            _ = watcher.changed() => {}
            () = until(deadline) => {
                lost("cut off from ZooKeeper for a whole session timeout");
                return;
            }
            state = session.changed() => {
                note_connection(state, &mut cut_off);
                if session_ended(state) {
                    lost("the ZooKeeper session ended");
                    return;
                }
            }
        }
    }
}

/// Resolves at `deadline` (never, without one).
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Keeps when the connection was lost (the first moment of an outage).
fn note_connection(state: zk::SessionState, cut_off: &mut Option<tokio::time::Instant>) {
    match state {
        zk::SessionState::Disconnected => {
            cut_off.get_or_insert_with(tokio::time::Instant::now);
        }
        zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => *cut_off = None,
        _ => {}
    }
}

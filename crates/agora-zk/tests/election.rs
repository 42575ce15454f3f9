//! Masters elected in a real ZooKeeper (Debian's package, started here on a loopback port).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test may panic

use std::time::{Duration, Instant};

use agora_zk::testing::{ZooKeeper, free_port};
use agora_zk::{Contender, Detector, Leadership, ZkUrl, client as zk};
use serde_json::json;

fn info(id: &str, port: u16) -> serde_json::Value {
    json!({"id": id, "ip": 16777343, "port": port, "hostname": "localhost",
           "address": {"hostname": "localhost", "ip": "127.0.0.1", "port": port}})
}

/// Waits (bounded) until `receiver` holds what `wanted` accepts.
async fn until<T: Clone>(
    receiver: &mut tokio::sync::watch::Receiver<T>,
    what: &str,
    wanted: impl Fn(&T) -> bool,
) -> T {
    let found = tokio::time::timeout(Duration::from_secs(20), receiver.wait_for(|v| wanted(v)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    found.unwrap().clone()
}

const SESSION: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_master_leads_the_next_follows_and_takes_over_when_it_goes() {
    let zookeeper = ZooKeeper::start();
    let url = zookeeper.url("/agora");
    let first = Contender::join(&url, SESSION, &info("m1", 5050))
        .await
        .unwrap();
    let second = Contender::join(&url, SESSION, &info("m2", 5051))
        .await
        .unwrap();
    let detector = Detector::follow(&url, SESSION).await.unwrap();

    assert_eq!(*first.leadership().borrow(), Leadership::Leading);
    assert_eq!(
        *second.leadership().borrow(),
        Leadership::Following {
            leader: info("m1", 5050)
        }
    );
    let mut leader = detector.leader();
    until(&mut leader, "the detector to see m1", |l| {
        l.as_ref().is_some_and(|l| l["id"] == "m1")
    })
    .await;

    // As Mesos writes it: a child json.info_<ten digits> holding the MasterInfo JSON, and
    // nothing else in the group (what pymesos' detector reads).
    let reader = zk::Client::connect(&url.connect_string()).await.unwrap();
    let mut children = reader.list_children("/agora").await.unwrap();
    children.sort();
    assert_eq!(children.len(), 2);
    assert_eq!(children[0], first.member());
    assert!(
        children
            .iter()
            .all(|c| c.len() == "json.info_".len() + 10 && c.starts_with("json.info_")),
        "{children:?}"
    );
    let (data, _) = reader
        .get_data(&format!("/agora/{}", children[0]))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&data).unwrap(),
        info("m1", 5050)
    );

    // The leader goes (its session closes with it): the follower leads, the detector says so.
    let mut standing = second.leadership();
    drop(first);
    until(&mut standing, "m2 to lead", |s| *s == Leadership::Leading).await;
    until(&mut leader, "the detector to see m2", |l| {
        l.as_ref().is_some_and(|l| l["id"] == "m2")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_whose_session_expires_loses_its_leadership_for_good() {
    let mut zookeeper = ZooKeeper::start();
    let url = zookeeper.url("/agora");
    let master = Contender::join(&url, SESSION, &info("m1", 5050))
        .await
        .unwrap();
    let mut standing = master.leadership();
    assert_eq!(*standing.borrow(), Leadership::Leading);

    // The ensemble is away longer than the session timeout: when it is back, the session
    // has expired and this master must stop acting as one.
    tokio::task::block_in_place(|| zookeeper.restart_after(SESSION * 3));
    until(&mut standing, "the leadership to be lost", |s| {
        *s == Leadership::Lost
    })
    .await;

    // A master joining now leads once the server has expired the old session too (a
    // restarted server expires the sessions it restored a session timeout after its start).
    let next = Contender::join(&url, SESSION, &info("m2", 5051))
        .await
        .unwrap();
    let mut next_standing = next.leadership();
    until(&mut next_standing, "the new master to lead", |s| {
        *s == Leadership::Leading
    })
    .await;
    assert_eq!(*standing.borrow(), Leadership::Lost, "lost is final");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_path_shared_with_other_nodes_is_refused() {
    let zookeeper = ZooKeeper::start();
    let client = zk::Client::connect(&format!("127.0.0.1:{}", zookeeper.port()))
        .await
        .unwrap();
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.create("/shared", &[], &options).await.unwrap();
    client
        .create("/shared/config", &[], &options)
        .await
        .unwrap();

    let refused = Contender::join(&zookeeper.url("/shared"), SESSION, &info("m1", 5050)).await;
    let error = refused.err().expect("refused").to_string();
    assert!(
        error.contains("/shared") && error.contains("config") && error.contains("path of its own"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_ensemble_is_an_error_that_names_it() {
    let url = ZkUrl::parse(&format!("zk://127.0.0.1:{}/agora", free_port())).unwrap();
    let error = Contender::join(&url, SESSION, &info("m1", 5050))
        .await
        .err()
        .expect("no server there")
        .to_string();
    assert!(
        error.contains("cannot reach ZooKeeper at 127.0.0.1:"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_rides_out_an_ensemble_back_within_its_session() {
    let mut zookeeper = ZooKeeper::start();
    let session = Duration::from_secs(8);
    let url = zookeeper.url("/agora");
    let master = Contender::join(&url, session, &info("m1", 5050))
        .await
        .unwrap();
    let mut standing = master.leadership();
    assert_eq!(*standing.borrow_and_update(), Leadership::Leading);
    let detector = Detector::follow(&url, session).await.unwrap();
    let mut leader = detector.leader();
    until(&mut leader, "the detector to see m1", |l| {
        l.as_ref().is_some_and(|l| l["id"] == "m1")
    })
    .await;

    // The server goes and comes back well within the session timeout (as a member of an
    // ensemble restarting): the session lives on, and so does the leadership.
    tokio::task::block_in_place(|| zookeeper.restart_after(Duration::ZERO));
    let deadline = Instant::now() + Duration::from_secs(20);
    while master.client().list_children("/agora").await.is_err() {
        assert!(Instant::now() < deadline, "the session never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Whatever the group said meanwhile is now said again: give the watcher its turn.
    let settled = tokio::time::timeout(Duration::from_secs(2), standing.changed()).await;
    assert!(
        settled.is_err() || *standing.borrow() == Leadership::Leading,
        "the leader was deposed by a reconnection: {:?}",
        *standing.borrow()
    );
    assert_eq!(*standing.borrow(), Leadership::Leading);
    // Followers were never told there is no leader.
    assert!(
        !leader.has_changed().unwrap(),
        "the detector's leader changed: {:?}",
        *leader.borrow()
    );
}

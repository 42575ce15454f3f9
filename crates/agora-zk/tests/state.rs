//! The masters' state in a real ZooKeeper (Debian's package, started here on a loopback port):
//! the store contract, fencing by the writer's member znode, and a state root that is not
//! this cluster's refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test may panic

use std::sync::Arc;
use std::time::Duration;

use agora_store::{Registrar, Store, StoreError};
use agora_zk::testing::ZooKeeper;
use agora_zk::{Contender, StoreOptions, ZkError, ZkStore, client as zk};

const SESSION: Duration = Duration::from_secs(2);

fn options(root: &str, fence: Option<String>) -> StoreOptions {
    StoreOptions {
        root: root.to_owned(),
        fence,
        session_timeout: SESSION,
    }
}

fn info() -> serde_json::Value {
    serde_json::json!({"id": "m", "ip": 16777343, "port": 5050, "hostname": "localhost"})
}

/// Runs a blocking store call off the runtime, as the registrar's thread makes it.
async fn off_runtime<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(call).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_records_as_every_backend_must() {
    let zookeeper = ZooKeeper::start();
    let url = zookeeper.url("/agora");
    let contender = Contender::join(&url, SESSION, &info()).await.unwrap();
    let store = ZkStore::open(&url, options("/agora-state", Some(contender.member_path())))
        .await
        .unwrap();
    let store = Arc::new(store);
    let checked = store.clone();
    off_runtime(move || agora_store::contract::check(&*checked)).await;

    // One znode per record, nothing in the masters' group but members.
    let client = zk::Client::connect(&format!("127.0.0.1:{}", zookeeper.port()))
        .await
        .unwrap();
    let members = client.list_children("/agora").await.unwrap();
    assert_eq!(members, vec![contender.member().to_owned()]);
    let dirs = client.list_children("/agora-state").await.unwrap();
    assert!(
        dirs.contains(&"services%2Fapps%2Fprod".to_owned()),
        "{dirs:?}"
    );

    // Many records in one family, written as one batch of several transactions.
    let writes: Vec<_> = (0..3000)
        .map(|i| {
            (
                format!("services/instances/web.{i:05}"),
                Some(vec![b'x'; 400]),
            )
        })
        .collect();
    let writer = store.clone();
    off_runtime(move || writer.write_batch(&writes))
        .await
        .unwrap();
    let reader = store.clone();
    let listed = off_runtime(move || reader.list("services/instances/"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3000);
    assert_eq!(listed[0].0, "services/instances/web.00000");
    assert_eq!(listed[2999].0, "services/instances/web.02999");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_whose_member_znode_is_gone_can_never_write_again() {
    let zookeeper = ZooKeeper::start();
    let url = zookeeper.url("/agora");
    let leader = Contender::join(&url, SESSION, &info()).await.unwrap();
    let store = ZkStore::open(&url, options("/agora-state", Some(leader.member_path())))
        .await
        .unwrap();
    let registrar = Registrar::spawn(Arc::new(store)).unwrap();
    registrar
        .put("registry/agents/a1".into(), b"one".to_vec())
        .committed()
        .await
        .unwrap();

    // The leader's session goes (its member znode with it), as when ZooKeeper expires it; a
    // new leader is elected and writes.
    let member = leader.member_path();
    let admin = zk::Client::connect(&format!("127.0.0.1:{}", zookeeper.port()))
        .await
        .unwrap();
    admin.delete(&member, None).await.unwrap();
    let successor = Contender::join(&url, SESSION, &info()).await.unwrap();
    let successor_store =
        ZkStore::open(&url, options("/agora-state", Some(successor.member_path())))
            .await
            .unwrap();
    let successor_store = Arc::new(successor_store);
    let writer = successor_store.clone();
    off_runtime(move || writer.put("registry/agents/a1", b"successor"))
        .await
        .unwrap();

    // The deposed master's write is refused, and its registrar stops for good.
    let refused = registrar
        .put("registry/agents/a1".into(), b"stale".to_vec())
        .committed()
        .await
        .unwrap_err();
    assert!(
        matches!(*refused.0, StoreError::Fenced(_)),
        "refused as fenced: {refused}"
    );
    assert!(
        registrar
            .failed()
            .await
            .to_string()
            .contains("no longer leads")
    );
    let reader = successor_store.clone();
    let value = off_runtime(move || reader.get("registry/agents/a1"))
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some(&b"successor"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_root_of_another_cluster_or_inside_the_group_is_refused() {
    let zookeeper = ZooKeeper::start();
    let ours = zookeeper.url("/agora");
    ZkStore::open(&ours, options("/shared-state", None))
        .await
        .unwrap();
    let theirs = zookeeper.url("/other");
    let refused = ZkStore::open(&theirs, options("/shared-state", None))
        .await
        .err()
        .expect("another cluster's state is refused");
    assert!(matches!(refused, ZkError::OtherState { .. }));
    let message = refused.to_string();
    assert!(
        message.contains("the state of the masters at /agora") && message.contains("--zk-state"),
        "{message}"
    );
    let inside = ZkStore::open(&ours, options("/agora/state", None))
        .await
        .err()
        .expect("a root inside the group is refused");
    assert!(inside.to_string().contains("members only"), "{inside}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_rides_out_an_ensemble_restart() {
    let mut zookeeper = ZooKeeper::start();
    let url = zookeeper.url("/agora");
    let store = Arc::new(
        ZkStore::open(&url, options("/agora-state", None))
            .await
            .unwrap(),
    );
    let writer = store.clone();
    off_runtime(move || writer.put("jobs/queue", b"[]"))
        .await
        .unwrap();
    // Back within the session: the same session goes on.
    tokio::task::block_in_place(|| zookeeper.restart_after(Duration::from_millis(300)));
    let writer = store.clone();
    off_runtime(move || writer.put("jobs/queue", b"[1]"))
        .await
        .unwrap();
    // Away longer than the session: a new session is made and the write goes through.
    tokio::task::block_in_place(|| zookeeper.restart_after(SESSION * 2));
    let writer = store.clone();
    off_runtime(move || writer.put("jobs/readiness", b"{}"))
        .await
        .unwrap();
    let reader = store.clone();
    let listed = off_runtime(move || reader.list("jobs/")).await.unwrap();
    assert_eq!(
        listed,
        vec![
            ("jobs/queue".to_owned(), b"[1]".to_vec()),
            ("jobs/readiness".to_owned(), b"{}".to_vec())
        ]
    );
}

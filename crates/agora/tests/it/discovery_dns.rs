//! DNS in the Mesos-DNS scheme, queried with a real resolver library (hickory-resolver) over
//! UDP and TCP: app names appear as tasks start and vanish when they end, SRV records carry the
//! tasks' ports, the leader, master and frameworks have names, and the domain is configurable.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use reqwest::Method;
use serde_json::json;

use crate::common::dns::{self, addresses, services};
use crate::common::marathon::Marathon;
use crate::common::traffic::{agent_state, resources};
use crate::common::*;

const DNS_PORT: u16 = 18353;

/// A resolver asking only agora's DNS on this test's port.
fn resolver(tcp: bool) -> Resolver<TokioRuntimeProvider> {
    dns::resolver(DNS_PORT, tcp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_names_follow_their_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let dns_port = DNS_PORT.to_string();
    let up = start_up(
        dir.path(),
        &[
            "--resources",
            &resources(32300),
            "--proxy-bind",
            "127.0.0.1",
            "--dns-port",
            &dns_port,
            "--dns-domain",
            "cluster.test",
        ],
    );
    let udp = resolver(false);
    let tcp = resolver(true);
    let marathon = Marathon::new(&up.address());

    // The cluster's own names, once the master's members are read.
    wait_until(Duration::from_secs(10), "leader.cluster.test", || async {
        (addresses(&udp, "leader.cluster.test.").await == vec![IpAddr::from([127, 0, 0, 1])])
            .then_some(())
    })
    .await;
    assert_eq!(addresses(&tcp, "master.cluster.test.").await.len(), 1);
    wait_until(Duration::from_secs(15), "marathon.cluster.test", || async {
        (!addresses(&udp, "marathon.cluster.test.").await.is_empty()).then_some(())
    })
    .await;
    let leader = services(&udp, "_leader._tcp.cluster.test.").await;
    assert_eq!(
        leader,
        BTreeSet::from([(up.port, "leader.cluster.test.".to_owned())])
    );

    // An app's tasks get names within moments of running.
    marathon
        .create(
            json!({"id": "/prod/web", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16,
            "instances": 2, "portDefinitions": [{"port": 0}, {"port": 0}]}),
        )
        .await;
    let tasks = marathon.settled("/prod/web", 2).await;
    let ports: BTreeSet<u16> = tasks
        .iter()
        .flat_map(|t| t["ports"].as_array().unwrap().clone())
        .map(|p| p.as_u64().unwrap() as u16)
        .collect();
    assert_eq!(ports.len(), 4);
    let srv = wait_until(Duration::from_secs(5), "the app's SRV records", || async {
        let srv = services(&udp, "_web-prod._tcp.marathon.cluster.test.").await;
        (srv.len() == 4).then_some(srv)
    })
    .await;
    assert_eq!(srv.iter().map(|(p, _)| *p).collect::<BTreeSet<_>>(), ports);
    for (_, target) in &srv {
        assert!(
            target.ends_with(".marathon.slave.cluster.test."),
            "{target}"
        );
        assert_eq!(
            addresses(&tcp, target).await,
            vec![IpAddr::from([127, 0, 0, 1])],
            "{target}"
        );
    }
    // Two tasks on one host: one address, over either transport.
    assert_eq!(
        addresses(&udp, "web-prod.marathon.cluster.test.").await,
        vec![IpAddr::from([127, 0, 0, 1])]
    );
    assert_eq!(
        services(&tcp, "_web-prod._udp.marathon.cluster.test.")
            .await
            .len(),
        4
    );
    assert!(
        addresses(&udp, "nothing.marathon.cluster.test.")
            .await
            .is_empty()
    );

    // Gone with the app.
    let (status, body) = marathon
        .send(Method::DELETE, "/v2/apps/prod/web", None)
        .await;
    assert_eq!(status, 200, "{body}");
    wait_until(Duration::from_secs(10), "the names gone", || async {
        addresses(&udp, "web-prod.marathon.cluster.test.")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let state = agent_state(&up.address()).await.unwrap();
    assert_eq!(
        state["discovery"]["dns"]["domain"], "cluster.test",
        "{state}"
    );
    assert!(state["discovery"]["dns"]["error"].is_null(), "{state}");
}

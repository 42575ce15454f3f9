//! A snapshot of a whole `haproxy.cfg` as the bridge renders it: two apps, one HTTP app with
//! two virtual hosts and two running tasks, one TCP app with round-robin balancing, plus the
//! admin socket, the statistics listener and the shared virtual-host frontend. Refresh with
//! `UPDATE_EXPECT=1 cargo test -p agora-discovery snapshot` (one process: nextest's parallel
//! processes would each rewrite this file).

use std::collections::HashMap;
use std::net::IpAddr;

use expect_test::expect;
use serde_json::json;

use crate::haproxy::{RenderOptions, render};
use crate::model::Cluster;
use crate::routes::{Balance, Groups, Routes};

/// Routes of `/prod/web` (service port 10001, two virtual hosts) and `/db` (10002); a task
/// that is not running yet serves nothing.
fn routes() -> Routes {
    let apps = json!({"apps": [
        {"id": "/prod/web", "portDefinitions": [{"port": 10001}],
         "labels": {"HAPROXY_0_VHOST": "web.example.com,www.example.com"},
         "tasks": [
            {"id": "prod_web.2", "host": "node-2", "ports": [31002], "state": "TASK_RUNNING"},
            {"id": "prod_web.1", "host": "node-1", "ports": [31001], "state": "TASK_RUNNING"},
            {"id": "prod_web.3", "host": "node-3", "ports": [31003], "state": "TASK_STAGING"}
         ]},
        {"id": "/db", "portDefinitions": [{"port": 10002}],
         "labels": {"HAPROXY_0_BALANCE": "roundrobin"},
         "tasks": [{"id": "db.1", "host": "10.0.0.9", "ports": [31010], "state": "TASK_RUNNING"}]}
    ]});
    let mut cluster = Cluster::default();
    cluster
        .load_snapshot(apps.to_string().as_bytes())
        .expect("a valid /v2/apps document");
    Routes::of(&cluster, &Groups::default())
}

#[test]
fn a_config_with_an_http_app_behind_virtual_hosts_and_a_tcp_app() {
    let addresses = HashMap::from([
        ("node-1".to_owned(), IpAddr::from([10, 0, 0, 1])),
        ("node-2".to_owned(), IpAddr::from([10, 0, 0, 2])),
    ]);
    let options = RenderOptions {
        bind: IpAddr::from([0, 0, 0, 0]),
        http_port: 80,
        admin_socket: Some("/run/haproxy/admin.sock".into()),
        stats: Some(([127, 0, 0, 1], 9090).into()),
        default_balance: Balance::LeastConn,
    };
    expect![[r#"
        # Written by `agora lb haproxy` from the cluster's routes; changes are lost.
        global
            maxconn 4096
            stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners

        defaults
            mode tcp
            timeout connect 5s
            timeout client 50s
            timeout server 50s
            timeout http-keep-alive 50s
            option redispatch
            retries 3

        listen stats
            bind 127.0.0.1:9090
            mode http
            stats enable
            stats uri /haproxy?stats

        frontend prod_web_10001
            bind 0.0.0.0:10001
            mode http
            option forwardfor
            default_backend prod_web_10001

        backend prod_web_10001
            mode http
            balance leastconn
            server prod_web.1 10.0.0.1:31001 check inter 2s
            server prod_web.2 10.0.0.2:31002 check inter 2s

        frontend db_10002
            bind 0.0.0.0:10002
            mode tcp
            default_backend db_10002

        backend db_10002
            mode tcp
            balance roundrobin
            server db.1 10.0.0.9:31010 check inter 2s

        frontend http_vhosts
            bind 0.0.0.0:80
            mode http
            option forwardfor
            use_backend prod_web_10001 if { hdr(host),field(1,:),lower -m str web.example.com }
            use_backend prod_web_10001 if { hdr(host),field(1,:),lower -m str www.example.com }
    "#]]
    .assert_eq(&render(&routes(), &addresses, &options));
}

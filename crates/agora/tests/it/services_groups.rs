//! Groups on `agora up`: a nested group whose dependencies order the deployment (a dependency is
//! running and healthy before its dependants start), the group tree, scaling by a factor,
//! versions and rollback, cycles and invalid bodies refused, and removal.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::common::marathon::Marathon;
use crate::common::*;

async fn no_deployments(marathon: &Marathon) {
    wait_until(Duration::from_secs(30), "no deployment left", || async {
        marathon
            .get("/v2/deployments")
            .await
            .as_array()?
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_deploy_in_dependency_order_scale_roll_back_and_go() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:8;mem:4096;ports:[31000-31100]"],
    );
    let marathon = Marathon::new(&up.address());
    wait_for_agents(&agora_client::MasterClient::new(&up.address()), 1).await;

    // The database becomes healthy two seconds after it starts; the front group depends on the
    // whole db group, so its app may only start after that.
    let shop = json!({
        "id": "/shop",
        "groups": [
            {"id": "db", "apps": [{
                "id": "main", "cmd": "sleep 2; touch ready; exec sleep 600", "cpus": 0.1, "mem": 16,
                "healthChecks": [{"protocol": "COMMAND", "command": {"value": "test -f ready"},
                    "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 1,
                    "delaySeconds": 0}]
            }]},
            {"id": "front", "dependencies": ["/shop/db"], "apps": [
                {"id": "web", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16}
            ]}
        ]
    });
    let (status, created) = marathon
        .send(Method::POST, "/v2/groups", Some(shop.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    assert!(created["deploymentId"].is_string());
    let deployment = marathon.get("/v2/deployments").await[0].clone();
    assert_eq!(deployment["totalSteps"], 2, "{deployment}");
    assert_eq!(deployment["steps"][0]["actions"][0]["app"], "/shop/db/main");
    assert_eq!(
        deployment["steps"][1]["actions"][0]["app"],
        "/shop/front/web"
    );
    assert_eq!(
        deployment["affectedApps"],
        json!(["/shop/db/main", "/shop/front/web"])
    );

    no_deployments(&marathon).await;
    let db = marathon.tasks("/shop/db/main").await;
    let web = marathon.tasks("/shop/front/web").await;
    let healthy_at = db[0]["healthCheckResults"][0]["firstSuccess"]
        .as_str()
        .unwrap()
        .to_owned();
    let web_staged = web[0]["stagedAt"].as_str().unwrap().to_owned();
    assert!(
        web_staged >= healthy_at,
        "web staged at {web_staged}, before db turned healthy at {healthy_at}"
    );

    // The tree nests by path, with Marathon's group keys only.
    let root = marathon.get("/v2/groups").await;
    assert_eq!(root["id"], "/");
    let shop_group = &root["groups"][0];
    assert_eq!(shop_group["id"], "/shop");
    let subgroups: Vec<&str> = shop_group["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(subgroups, vec!["/shop/db", "/shop/front"]);
    assert_eq!(shop_group["groups"][1]["dependencies"], json!(["/shop/db"]));
    let mut keys: Vec<&String> = shop_group.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        vec!["apps", "dependencies", "groups", "id", "pods", "version"]
    );
    let front = marathon
        .get("/v2/groups/shop/front?embed=group.apps.tasks")
        .await;
    assert_eq!(front["apps"][0]["id"], "/shop/front/web");
    assert_eq!(front["apps"][0]["tasks"].as_array().unwrap().len(), 1);

    // A dry run shows the steps and changes nothing.
    let (status, body) = marathon
        .send(
            Method::PUT,
            "/v2/groups/shop?dryRun=true",
            Some(json!({"scaleBy": 3})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["steps"],
        json!([
            {"actions": [{"action": "ScaleApplication", "app": "/shop/db/main"}]},
            {"actions": [{"action": "ScaleApplication", "app": "/shop/front/web"}]},
        ])
    );
    assert!(
        marathon
            .get("/v2/deployments")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        marathon.get("/v2/apps/shop/db/main").await["app"]["instances"],
        1
    );

    // Scaling the group doubles every app below it.
    let (status, body) = marathon
        .send(Method::PUT, "/v2/groups/shop", Some(json!({"scaleBy": 2})))
        .await;
    assert_eq!(status, 200, "{body}");
    no_deployments(&marathon).await;
    for app in ["/shop/db/main", "/shop/front/web"] {
        let tasks = marathon.tasks(app).await;
        assert_eq!(tasks.len(), 2, "{app}: {tasks:?}");
        assert_eq!(
            marathon.get(&format!("/v2/apps{app}")).await["app"]["instances"],
            2
        );
    }

    // A dependency cycle is refused and changes nothing.
    let cyclic = json!({"id": "/shop/db", "dependencies": ["/shop/front"]});
    let (status, body) = marathon
        .send(Method::PUT, "/v2/groups/shop/db", Some(cyclic))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["details"][0]["errors"][0]
            .as_str()
            .unwrap()
            .contains("cyclic")
    );
    assert_eq!(
        marathon.get("/v2/groups/shop/db").await["dependencies"],
        json!([])
    );

    // Versions: back to the first one, with one instance each.
    let versions = marathon.get("/v2/groups/shop/versions").await;
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    let first = versions.last().unwrap().as_str().unwrap();
    let (status, body) = marathon
        .send(
            Method::PUT,
            &format!("/v2/groups/shop/versions/{first}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    no_deployments(&marathon).await;
    assert_eq!(marathon.tasks("/shop/front/web").await.len(), 1);

    // A second POST of the same group conflicts; a bad nested app names its path.
    let (status, _) = marathon.send(Method::POST, "/v2/groups", Some(shop)).await;
    assert_eq!(status, 409);
    let bad = json!({"id": "/broken", "groups": [{"id": "inner", "apps": [{"id": "x", "cmd": "sleep 1", "cpus": -1}]}]});
    let (status, body) = marathon.send(Method::POST, "/v2/groups", Some(bad)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["details"][0]["path"], "/groups(0)/apps(0)/cpus",
        "{body}"
    );
    assert_eq!(
        marathon
            .send(Method::GET, "/v2/groups/broken", None)
            .await
            .0,
        404
    );

    // Removing the group stops everything in it.
    let (status, body) = marathon.send(Method::DELETE, "/v2/groups/shop", None).await;
    assert_eq!(status, 200, "{body}");
    no_deployments(&marathon).await;
    assert_eq!(marathon.get("/v2/apps").await["apps"], json!([]));
    assert_eq!(
        marathon.send(Method::GET, "/v2/groups/shop", None).await.0,
        404
    );
    assert_eq!(marathon.get("/v2/tasks").await["tasks"], json!([]));
}

//! DRF across roles on a real cluster: two frameworks that keep launching short tasks share
//! the cluster 75/25 under weights 3:1, and the shares flip live when an operator swaps the
//! weights (the classic "web by day, analytics by night").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::common::*;
use agora_api::scheduler::Event;
use agora_client::MasterClient;

/// A framework that takes one 0.5-cpu slot per offer, forever, with tasks of `task_secs`.
fn greedy_framework(
    master: String,
    role: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut info = framework_info(role);
        info.role = Some(role.to_owned());
        let mut scheduler = subscribe(&master, info).await;
        let mut next = 0;
        while !stop.load(Ordering::SeqCst) {
            let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(200), scheduler.next_event()).await
            else {
                continue;
            };
            if let Event::Offers { offers } = event {
                for offer in offers.offers {
                    let cpus: f64 = offer
                        .resources
                        .iter()
                        .filter(|r| r.name == "cpus")
                        .filter_map(|r| r.scalar.as_ref())
                        .map(|s| s.value)
                        .sum();
                    // As many tasks as fit: what an accepted offer leaves is filtered from
                    // this framework for an allocation interval (as in Mesos), so taking one
                    // task per offer would hand the rest to the other role whatever the
                    // weights.
                    let fit = (cpus / 0.5 + 1e-9).floor() as usize;
                    if fit > 0 {
                        let tasks = (0..fit)
                            .map(|_| {
                                next += 1;
                                command_task(
                                    &format!("{role}-{next}"),
                                    &offer,
                                    "sleep 1.5",
                                    0.5,
                                    16.0,
                                )
                            })
                            .collect();
                        let _ = scheduler
                            .launch(vec![offer.id.clone()], tasks, Some(0.0))
                            .await;
                    } else {
                        let _ = scheduler.decline(vec![offer.id.clone()], Some(0.0)).await;
                    }
                }
            }
        }
        let _ = scheduler.teardown().await;
    })
}

/// The fraction of running cpus held by the web role, averaged over a few samples.
async fn web_share(client: &MasterClient) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..10 {
        let state = client.get_json("/master/state").await.expect("state");
        let mut web = 0.0;
        let mut all = 0.0;
        for framework in state["frameworks"].as_array().unwrap() {
            let cpus = framework["used_resources"]["cpus"].as_f64().unwrap_or(0.0);
            all += cpus;
            if framework["role"] == "web" {
                web += cpus;
            }
        }
        if all > 0.0 {
            samples.push(web / all);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    samples.iter().sum::<f64>() / samples.len().max(1) as f64
}

/// Samples the web share until it lies in `wanted` (returning it) or 30 s pass (returning the
/// last sample, for the caller's assertion to report).
async fn converge(client: &MasterClient, wanted: std::ops::RangeInclusive<f64>) -> f64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let share = web_share(client).await;
        if wanted.contains(&share) || std::time::Instant::now() > deadline {
            return share;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_set_the_shares_and_change_them_live() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:8;mem:4096",
            "--weights",
            "web=3,analytics=1",
        ],
    );
    let client = MasterClient::new(&up.address());
    wait_for_agents(&client, 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let web = greedy_framework(up.address(), "web", stop.clone());
    let analytics = greedy_framework(up.address(), "analytics", stop.clone());

    // Converges in a few seconds on an idle machine; the deadline leaves room for a busy one.
    let day = converge(&client, 0.62..=0.88).await;
    assert!(
        (0.62..=0.88).contains(&day),
        "web should hold ~75% by day, held {day:.2}"
    );

    client
        .operator(&json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "web", "weight": 1.0}, {"role": "analytics", "weight": 3.0}]}}))
        .await
        .expect("weights");
    let night = converge(&client, 0.12..=0.38).await;
    assert!(
        (0.12..=0.38).contains(&night),
        "web should hold ~25% by night, held {night:.2}"
    );

    stop.store(true, Ordering::SeqCst);
    let _ = tokio::join!(web, analytics);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_reservations_are_offered_only_to_their_role() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:1;mem:512;cpus(analytics):2;mem(analytics):256",
        ],
    );
    let client = MasterClient::new(&up.address());
    wait_for_agents(&client, 1).await;

    let mut anyone = subscribe(&up.address(), framework_info("anyone")).await;
    let offer = next_offers(&mut anyone, Duration::from_secs(10))
        .await
        .remove(0);
    assert!(
        offer
            .resources
            .iter()
            .all(|r| r.role.as_deref() == Some("*")),
        "{:?}",
        offer.resources
    );
    let cpus: f64 = offer
        .resources
        .iter()
        .filter(|r| r.name == "cpus")
        .filter_map(|r| r.scalar.as_ref())
        .map(|s| s.value)
        .sum();
    assert_eq!(cpus, 1.0);
    // Launching on reserved resources the offer does not hold is refused.
    let mut greedy = command_task("greedy", &offer, "true", 0.5, 16.0);
    greedy.resources[0].role = Some("analytics".into());
    anyone
        .launch(vec![offer.id.clone()], vec![greedy], Some(3600.0))
        .await
        .expect("accept");
    let error = wait_for_state(
        &mut anyone,
        "greedy",
        agora_types::TaskState::Error,
        Duration::from_secs(10),
    )
    .await;
    assert!(error.message.unwrap_or_default().contains("more resources"));

    let mut info = framework_info("analyst");
    info.role = Some("analytics".into());
    let mut analyst = subscribe(&up.address(), info).await;
    let offer = next_offers(&mut analyst, Duration::from_secs(10))
        .await
        .remove(0);
    let reserved: f64 = offer
        .resources
        .iter()
        .filter(|r| r.name == "cpus" && r.role.as_deref() == Some("analytics"))
        .filter_map(|r| r.scalar.as_ref())
        .map(|s| s.value)
        .sum();
    assert_eq!(reserved, 2.0, "{:?}", offer.resources);
    let mut task = command_task("reserved-work", &offer, "true", 2.0, 16.0);
    task.resources[0].role = Some("analytics".into());
    analyst
        .launch(vec![offer.id.clone()], vec![task], None)
        .await
        .expect("accept");
    wait_for_state(
        &mut analyst,
        "reserved-work",
        agora_types::TaskState::Finished,
        Duration::from_secs(10),
    )
    .await;
}

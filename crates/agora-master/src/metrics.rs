//! Master metrics: counters kept as events happen, gauges computed from the state on demand,
//! rendered as Mesos' `/metrics/snapshot` JSON and as Prometheus text from one list.

use std::collections::HashMap;

use agora_types::TaskState;

use crate::core::{AgentConnection, Master, SCALARS, Tally};

#[derive(Default)]
pub(crate) struct Counters {
    pub agent_registrations: u64,
    pub agent_reregistrations: u64,
    pub agent_removals: u64,
    pub valid_status_updates: u64,
    pub invalid_status_updates: u64,
    /// Registrations refused because the agent id's secret was not given.
    pub invalid_agent_registrations: u64,
    /// Reports (pings, updates, messages) refused for the same reason.
    pub invalid_agent_reports: u64,
    pub allocation_runs: u64,
    /// How long the latest allocation rounds took.
    pub allocation_run: Timer,
    /// How long the latest state views held the lock to take their capture.
    pub view_capture: Timer,
    pub framework_to_executor_messages: u64,
    pub executor_to_framework_messages: u64,
    /// Tasks that reached each terminal state since start (Mesos counts these cumulatively).
    terminal: HashMap<TaskState, u64>,
}

impl Counters {
    pub fn count_task_state(&mut self, state: TaskState) {
        if state.is_terminal() {
            *self.terminal.entry(state).or_default() += 1;
        }
    }
}

/// The latest durations of something, summarised as a Mesos timer is (`name`, `name/count`,
/// `name/min`, `name/max`, `name/p50`, `name/p90`, `name/p95`, `name/p99`, `name/p999`,
/// `name/p9999`, in milliseconds).
#[derive(Default)]
pub(crate) struct Timer {
    count: u64,
    /// The latest [`Timer::WINDOW`] durations in ms, oldest overwritten first.
    window: Vec<f64>,
    next: usize,
}

impl Timer {
    const WINDOW: usize = 1000;

    pub fn record(&mut self, elapsed: std::time::Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        self.count += 1;
        if self.window.len() < Self::WINDOW {
            self.window.push(ms);
        } else {
            self.window[self.next] = ms;
        }
        self.next = (self.next + 1) % Self::WINDOW;
    }

    fn put(&self, name: &str, put: &mut impl FnMut(&str, f64)) {
        put(&format!("{name}/count"), self.count as f64);
        if self.window.is_empty() {
            return;
        }
        let latest = (self.next + Self::WINDOW - 1) % Self::WINDOW;
        put(name, self.window.get(latest).copied().unwrap_or_default());
        let mut sorted = self.window.clone();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        put(&format!("{name}/min"), at(0.0));
        put(&format!("{name}/p50"), at(0.5));
        put(&format!("{name}/p90"), at(0.9));
        put(&format!("{name}/p95"), at(0.95));
        put(&format!("{name}/p99"), at(0.99));
        put(&format!("{name}/p999"), at(0.999));
        put(&format!("{name}/p9999"), at(0.9999));
        put(&format!("{name}/max"), at(1.0));
    }
}

/// Every metric as (Mesos name, value).
pub(crate) fn snapshot(master: &Master) -> Vec<(String, f64)> {
    let mut metrics: Vec<(String, f64)> = Vec::new();
    let mut put = |name: &str, value: f64| metrics.push((name.to_owned(), value));
    put("master/elected", 1.0);
    put("master/uptime_secs", master.clock.elapsed().as_secs_f64());

    // Sums of the four scalars, not of whole resources; the tasks' come from each framework's
    // tally (this runs under the master's lock: it never walks every task).
    let mut tally = Tally::default();
    for framework in master.frameworks.values() {
        tally.add(framework.tasks.tally());
    }
    let sums = |resources: &mut dyn Iterator<Item = &agora_types::Resources>| {
        let mut sums = [agora_types::Scalar::ZERO; 4];
        for resources in resources {
            for (sum, name) in sums.iter_mut().zip(SCALARS) {
                *sum += resources.scalar(name);
            }
        }
        sums
    };
    let total = sums(
        &mut master
            .agents
            .values()
            .filter(|a| a.is_reachable())
            .map(|a| &*a.total),
    );
    let used = tally.held();
    let offered = sums(&mut master.offers.values().map(|offer| &offer.resources));
    for (index, name) in SCALARS.into_iter().enumerate() {
        let total_value = total[index].to_f64();
        let used_value = used[index].to_f64();
        put(&format!("master/{name}_total"), total_value);
        put(&format!("master/{name}_used"), used_value);
        put(
            &format!("master/{name}_percent"),
            if total_value > 0.0 {
                used_value / total_value
            } else {
                0.0
            },
        );
        put(&format!("master/{name}_revocable_total"), 0.0);
        put(&format!("master/{name}_revocable_used"), 0.0);
        put(&format!("master/{name}_revocable_percent"), 0.0);
        put(
            &format!("allocator/mesos/resources/{name}/total"),
            total_value,
        );
        put(
            &format!("allocator/mesos/resources/{name}/offered_or_allocated"),
            used_value + offered[index].to_f64(),
        );
    }

    let agents = master.agents.values();
    let (mut active, mut inactive, mut connected, mut disconnected, mut unreachable) =
        (0, 0, 0, 0, 0);
    for agent in agents {
        match agent.connection {
            AgentConnection::Connected(_) => connected += 1,
            AgentConnection::Disconnected => disconnected += 1,
            AgentConnection::Unreachable { .. } => unreachable += 1,
        }
        if agent.is_reachable() {
            if agent.deactivated {
                inactive += 1
            } else {
                active += 1
            }
        }
    }
    put("master/slaves_active", f64::from(active));
    put("master/slaves_inactive", f64::from(inactive));
    put("master/slaves_connected", f64::from(connected));
    put("master/slaves_disconnected", f64::from(disconnected));
    put("master/slaves_unreachable", f64::from(unreachable));

    let connected_frameworks = master.frameworks.values().filter(|f| f.connected()).count() as f64;
    let all_frameworks = master.frameworks.len() as f64;
    put("master/frameworks_active", connected_frameworks);
    put(
        "master/frameworks_inactive",
        all_frameworks - connected_frameworks,
    );
    put("master/frameworks_connected", connected_frameworks);
    put(
        "master/frameworks_disconnected",
        all_frameworks - connected_frameworks,
    );

    for state in TaskState::ALL {
        let value = if state.is_terminal() {
            master.metrics.terminal.get(&state).copied().unwrap_or(0)
        } else {
            tally.in_state(state)
        };
        put(
            &format!("master/tasks_{}", state.metric_suffix()),
            value as f64,
        );
    }
    put("master/outstanding_offers", master.offers.len() as f64);
    put(
        "master/slave_registrations",
        master.metrics.agent_registrations as f64,
    );
    put(
        "master/slave_reregistrations",
        master.metrics.agent_reregistrations as f64,
    );
    put(
        "master/slave_removals",
        master.metrics.agent_removals as f64,
    );
    put(
        "master/valid_status_updates",
        master.metrics.valid_status_updates as f64,
    );
    put(
        "master/invalid_status_updates",
        master.metrics.invalid_status_updates as f64,
    );
    put(
        "master/event_stream_overflows",
        master
            .stream_overflows
            .load(std::sync::atomic::Ordering::Relaxed) as f64,
    );
    put(
        "master/invalid_agent_registrations",
        master.metrics.invalid_agent_registrations as f64,
    );
    put(
        "master/invalid_agent_reports",
        master.metrics.invalid_agent_reports as f64,
    );
    put(
        "master/messages_framework_to_executor",
        master.metrics.framework_to_executor_messages as f64,
    );
    put(
        "master/messages_executor_to_framework",
        master.metrics.executor_to_framework_messages as f64,
    );
    put(
        "allocator/mesos/allocation_runs",
        master.metrics.allocation_runs as f64,
    );
    master
        .metrics
        .allocation_run
        .put("allocator/mesos/allocation_run_ms", &mut put);
    master
        .metrics
        .view_capture
        .put("master/state_capture_ms", &mut put);
    metrics
}

/// Whether a metric (by its Mesos-style name) only ever grows.
fn is_counter(name: &str) -> bool {
    name.ends_with("_registrations")
        || name.ends_with("/count")
        || name.ends_with("_removals")
        || name.ends_with("_updates")
        || name.ends_with("_runs")
        || name.contains("/messages_")
        // Mesos' own `*_total` are gauges (`cpus_total`); other components' are counters.
        || (!name.starts_with("master/") && name.ends_with("_total"))
}

/// Prometheus text exposition of the same list.
pub(crate) fn prometheus(metrics: &[(String, f64)]) -> String {
    let counters: std::collections::HashSet<String> = metrics
        .iter()
        .filter(|(name, _)| is_counter(name))
        .map(|(name, _)| agora_api::prometheus::name(name))
        .collect();
    agora_api::prometheus::render(metrics, |name| counters.contains(name))
}

/// The same list in the Dropwizard JSON shape of Marathon's `/metrics` (what its Python
/// client's `get_metrics()` reads): gauges and counters by name.
pub(crate) fn dropwizard(metrics: &[(String, f64)]) -> serde_json::Value {
    let mut gauges = serde_json::Map::new();
    let mut counters = serde_json::Map::new();
    for (name, value) in metrics {
        if is_counter(name) {
            counters.insert(name.clone(), serde_json::json!({"count": *value as u64}));
        } else {
            gauges.insert(name.clone(), serde_json::json!({"value": value}));
        }
    }
    serde_json::json!({
        "version": "4.0.0",
        "gauges": gauges,
        "counters": counters,
        "histograms": {},
        "meters": {},
        "timers": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(timer: &Timer) -> HashMap<String, f64> {
        let mut out = HashMap::new();
        timer.put("t", &mut |name: &str, value: f64| {
            out.insert(name.to_owned(), value);
        });
        out
    }

    #[test]
    fn a_timer_summarises_its_latest_window() {
        let mut timer = Timer::default();
        assert_eq!(
            summary(&timer),
            HashMap::from([("t/count".to_owned(), 0.0)])
        );
        for ms in 1..=100u64 {
            timer.record(std::time::Duration::from_millis(ms));
        }
        let seen = summary(&timer);
        assert_eq!(seen["t"], 100.0);
        assert_eq!(seen["t/count"], 100.0);
        assert_eq!(seen["t/min"], 1.0);
        assert_eq!(seen["t/max"], 100.0);
        assert_eq!(seen["t/p90"], 90.0);
        // Past the window, the oldest go.
        for _ in 0..Timer::WINDOW {
            timer.record(std::time::Duration::from_millis(5));
        }
        let seen = summary(&timer);
        assert_eq!((seen["t/min"], seen["t/max"], seen["t"]), (5.0, 5.0, 5.0));
        assert_eq!(seen["t/count"], (100 + Timer::WINDOW) as f64);
    }
}

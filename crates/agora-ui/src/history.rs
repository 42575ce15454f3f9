//! Allocation over time: each framework's dominant share, sampled from the master's state
//! every few seconds into a ring the dashboard's chart is drawn from.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::format::dominant_share;
use crate::{Shared, lock};

/// One sample: when (ms since the epoch) and each framework's share (0–1) by name.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub at_ms: i64,
    pub shares: BTreeMap<String, f64>,
}

/// The last `capacity` samples, oldest first.
pub struct History {
    capacity: usize,
    samples: VecDeque<Sample>,
}

impl History {
    pub fn new(capacity: usize) -> History {
        History {
            capacity: capacity.max(2),
            samples: VecDeque::new(),
        }
    }

    pub fn record(&mut self, sample: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.iter().cloned().collect()
    }
}

/// Each framework's share in a v0 master state (frameworks with the same name add up).
pub fn shares_of(frameworks: &[serde_json::Value], totals: &[f64; 3]) -> BTreeMap<String, f64> {
    let mut shares = BTreeMap::new();
    for framework in frameworks.iter().filter(|f| f["completed"] != true) {
        let name = framework["name"].as_str().unwrap_or("?").to_owned();
        *shares.entry(name).or_insert(0.0) += dominant_share(&framework["used_resources"], totals);
    }
    shares
}

pub async fn sample(ui: Shared, every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        // The summary has every agent's resources and every framework's use of them, without
        // the tasks: the whole state of a large cluster, read every few seconds, would cost
        // the master more than anything the UI shows.
        // The metrics and the frameworks: nothing per agent or per task.
        let Ok(metrics) = ui.master.metrics_snapshot().await else {
            continue;
        };
        let Ok(frameworks) = crate::cluster::read_frameworks(&ui.master).await else {
            continue;
        };
        let sample = Sample {
            at_ms: jiff::Timestamp::now().as_millisecond(),
            shares: shares_of(&frameworks, &crate::cluster::totals(&metrics)),
        };
        lock(&ui.history).record(sample);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_ring_keeps_the_latest() {
        let mut history = History::new(2);
        for at_ms in 0..3 {
            history.record(Sample {
                at_ms,
                shares: BTreeMap::new(),
            });
        }
        let kept: Vec<i64> = history.samples().iter().map(|s| s.at_ms).collect();
        assert_eq!(kept, [1, 2]);
    }

    #[test]
    fn shares_are_dominant_and_by_name() {
        let frameworks = [
            json!({"name": "marathon", "used_resources": {"cpus": 1, "mem": 500}}),
            json!({"name": "chronos", "used_resources": {"cpus": 0.4, "mem": 0}}),
            json!({"name": "gone", "completed": true, "used_resources": {"cpus": 4}}),
        ];
        let shares = shares_of(&frameworks, &[4.0, 1000.0, 0.0]);
        assert!((shares["marathon"] - 0.5).abs() < 1e-9);
        assert!((shares["chronos"] - 0.1).abs() < 1e-9);
        assert!(!shares.contains_key("gone"));
    }
}

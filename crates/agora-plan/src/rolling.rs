//! The arithmetic of a rolling restart, as Marathon's `TaskReplaceActor` does it: how many old
//! instances to kill at once, how many new ones to start, and what to do as new instances turn
//! healthy and old ones go away.

/// `upgradeStrategy` of an app.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpgradeStrategy {
    pub minimum_health_capacity: f64,
    pub maximum_over_capacity: f64,
}

impl Default for UpgradeStrategy {
    fn default() -> UpgradeStrategy {
        UpgradeStrategy {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        }
    }
}

/// What to do now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub kill_old: u32,
    pub start_new: u32,
}

/// One app's restart in progress. Old instances are counted healthy while they run (Marathon
/// only replaces what runs); new ones count once healthy (and ready).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollingRestart {
    pub instances: u32,
    pub min_healthy: u32,
    pub max_capacity: u32,
    /// Old instances still running (not yet asked to die).
    pub old_running: u32,
    /// Old instances asked to die, not yet gone: they still take capacity.
    pub old_dying: u32,
    /// New instances launched and not failed (healthy or not).
    pub new_started: u32,
    pub new_healthy: u32,
}

impl RollingRestart {
    /// Starts a restart of an app with `instances` wanted and `old_running` old instances.
    /// Returns the restart and its first step.
    pub fn begin(
        instances: u32,
        strategy: UpgradeStrategy,
        old_running: u32,
        resident: bool,
    ) -> (RollingRestart, Step) {
        let n = f64::from(instances);
        let min_healthy =
            ((n * strategy.minimum_health_capacity.clamp(0.0, 1.0)).ceil() as u32).min(instances);
        let mut max_capacity =
            (n * (1.0 + strategy.maximum_over_capacity.clamp(0.0, 1.0))).floor() as u32;
        let mut kill_now = old_running.saturating_sub(min_healthy);
        // Neither room to start nor leave to kill would deadlock: make room for one.
        if min_healthy == max_capacity && max_capacity <= old_running {
            if resident {
                kill_now += 1;
            } else {
                max_capacity += 1;
            }
        }
        let kill_now = kill_now.min(old_running);
        let mut restart = RollingRestart {
            instances,
            min_healthy,
            max_capacity,
            old_running: old_running - kill_now,
            old_dying: kill_now,
            new_started: 0,
            new_healthy: 0,
        };
        let start = restart.room_to_start();
        restart.new_started += start;
        (
            restart,
            Step {
                kill_old: kill_now,
                start_new: start,
            },
        )
    }

    fn room_to_start(&self) -> u32 {
        let occupied = self.old_running + self.old_dying + self.new_started;
        (self.instances - self.new_started.min(self.instances))
            .min(self.max_capacity.saturating_sub(occupied))
    }

    /// A new instance became healthy and ready: one old instance may go (health stays the same:
    /// one more new, one fewer old).
    pub fn new_healthy(&mut self) -> Step {
        self.new_healthy = (self.new_healthy + 1).min(self.new_started);
        let kill = u32::from(self.old_running > 0);
        self.old_running -= kill;
        self.old_dying += kill;
        let start = self.room_to_start();
        self.new_started += start;
        Step {
            kill_old: kill,
            start_new: start,
        }
    }

    /// An old instance is gone (killed as asked, or died by itself): capacity frees up.
    pub fn old_gone(&mut self, was_asked_to_die: bool) -> Step {
        if was_asked_to_die {
            self.old_dying = self.old_dying.saturating_sub(1);
        } else {
            self.old_running = self.old_running.saturating_sub(1);
        }
        let start = self.room_to_start();
        self.new_started += start;
        Step {
            kill_old: 0,
            start_new: start,
        }
    }

    /// A new instance failed before or after turning healthy: it will be started again.
    pub fn new_failed(&mut self, was_healthy: bool) -> Step {
        self.new_started = self.new_started.saturating_sub(1);
        if was_healthy {
            self.new_healthy = self.new_healthy.saturating_sub(1);
        }
        let start = self.room_to_start();
        self.new_started += start;
        Step {
            kill_old: 0,
            start_new: start,
        }
    }

    /// Every instance runs the new version, healthy, and no old one is left.
    pub fn is_done(&self) -> bool {
        self.new_healthy == self.instances && self.old_running == 0 && self.old_dying == 0
    }

    /// Instances counted healthy now.
    pub fn healthy(&self) -> u32 {
        self.old_running + self.new_healthy
    }

    /// Instances taking capacity now.
    pub fn occupied(&self) -> u32 {
        self.old_running + self.old_dying + self.new_started
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strategy(min: f64, over: f64) -> UpgradeStrategy {
        UpgradeStrategy {
            minimum_health_capacity: min,
            maximum_over_capacity: over,
        }
    }

    #[test]
    fn marathon_worked_examples() {
        let (_, step) = RollingRestart::begin(10, strategy(1.0, 1.0), 10, false);
        assert_eq!(
            step,
            Step {
                kill_old: 0,
                start_new: 10
            }
        );
        let (_, step) = RollingRestart::begin(10, strategy(0.5, 0.2), 10, false);
        assert_eq!(
            step,
            Step {
                kill_old: 5,
                start_new: 2
            },
            "12 capacity - 5 old left - 5 dying"
        );
        let (restart, step) = RollingRestart::begin(3, strategy(1.0, 0.0), 3, false);
        assert_eq!(
            (restart.max_capacity, step),
            (
                4,
                Step {
                    kill_old: 0,
                    start_new: 1
                }
            )
        );
        let (_, step) = RollingRestart::begin(4, strategy(0.0, 0.0), 4, false);
        assert_eq!(
            step,
            Step {
                kill_old: 4,
                start_new: 0
            }
        );
    }

    /// Drives a restart with events in an arbitrary order until done.
    fn simulate(n: u32, min: f64, over: f64, choices: &[u8]) -> Result<(), String> {
        let (mut restart, first) = RollingRestart::begin(n, strategy(min, over), n, false);
        let mut pending_healthy = first.start_new; // started, not yet healthy
        let mut pending_gone = first.kill_old; // asked to die, not yet gone
        let mut choice = choices.iter().cycle();
        let min_healthy = restart.min_healthy;
        let cap = restart.max_capacity;
        for _ in 0..10_000 {
            if restart.is_done() {
                return Ok(());
            }
            if restart.occupied() > cap {
                return Err(format!("over capacity: {restart:?}"));
            }
            // Once the initial kills are done, health never drops below the minimum.
            if pending_gone == 0
                && restart.healthy() < min_healthy.min(restart.old_running + restart.new_started)
            {
                return Err(format!("below minimum health: {restart:?}"));
            }
            let step = match (
                choice.next().copied().unwrap_or(0) % 2,
                pending_healthy > 0,
                pending_gone > 0,
            ) {
                (0, true, _) | (_, true, false) => {
                    pending_healthy -= 1;
                    restart.new_healthy()
                }
                (_, _, true) => {
                    pending_gone -= 1;
                    restart.old_gone(true)
                }
                _ => return Err(format!("stuck: {restart:?}")),
            };
            pending_healthy += step.start_new;
            pending_gone += step.kill_old;
        }
        Err("did not finish".into())
    }

    proptest! {
        #[test]
        fn restarts_finish_within_capacity_and_health(n in 1u32..20, min in 0u32..=10, over in 0u32..=10, choices in prop::collection::vec(any::<u8>(), 1..50)) {
            let result = simulate(n, f64::from(min) / 10.0, f64::from(over) / 10.0, &choices);
            prop_assert!(result.is_ok(), "{:?}", result);
        }
    }
}

/// The level-triggered form of the same rules, for a scheduler that recomputes after every
/// change instead of counting events: given what runs now, how many old instances to kill and
/// how many new ones to start. `min_healthy` and `max_capacity` come from [`RollingRestart::begin`].
/// `old_dying` are old instances being killed: gone from health, still taking capacity.
pub fn next_step(
    instances: u32,
    min_healthy: u32,
    max_capacity: u32,
    old_running: u32,
    old_dying: u32,
    new_healthy: u32,
    new_active: u32,
) -> Step {
    // Old instances beyond the minimum (counting healthy new ones) may go.
    let healthy = old_running + new_healthy;
    let mut kill_old = healthy.saturating_sub(min_healthy).min(old_running);
    // Never keep more old ones than the new ones still missing.
    let still_needed = instances.saturating_sub(new_healthy);
    kill_old = kill_old.max(old_running.saturating_sub(still_needed));
    let start_new = instances
        .saturating_sub(new_active)
        // Instances killed in this step still hold their place until they are gone.
        .min(max_capacity.saturating_sub(old_running + old_dying + new_active));
    Step {
        kill_old,
        start_new,
    }
}

#[cfg(test)]
mod level_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Applying `next_step` repeatedly, with new instances turning healthy one at a time,
        /// converges to all-new without exceeding capacity or dropping below the minimum.
        #[test]
        fn converges_within_bounds(n in 1u32..20, min in 0u32..=10, over in 0u32..=10) {
            let strategy = UpgradeStrategy { minimum_health_capacity: f64::from(min) / 10.0, maximum_over_capacity: f64::from(over) / 10.0 };
            let (plan, _) = RollingRestart::begin(n, strategy, n, false);
            let (mut old, mut dying, mut healthy, mut active) = (n, 0u32, 0u32, 0u32);
            for round in 0..400 {
                let step = next_step(n, plan.min_healthy, plan.max_capacity, old, dying, healthy, active);
                old -= step.kill_old;
                dying += step.kill_old;
                active += step.start_new;
                prop_assert!(old + dying + active <= plan.max_capacity, "over capacity");
                // Kills complete one round later.
                if round % 2 == 1 {
                    dying = 0;
                }
                if old == 0 && healthy == n {
                    return Ok(());
                }
                if healthy < active {
                    healthy += 1;
                }
                prop_assert!(old + healthy >= plan.min_healthy.min(old + active), "below minimum");
            }
            prop_assert!(false, "did not converge: old {} healthy {} active {}", old, healthy, active);
        }
    }
}

/// Marathon's launch backoff: the delay after a failure is `backoff_seconds` the first time,
/// then the previous delay times `factor`, never more than `max_seconds`.
pub fn next_backoff(
    previous: Option<f64>,
    backoff_seconds: f64,
    factor: f64,
    max_seconds: f64,
) -> f64 {
    let next = match previous {
        None => backoff_seconds,
        Some(delay) => delay * factor,
    };
    next.clamp(0.0, max_seconds.max(0.0))
}

#[cfg(test)]
mod backoff_tests {
    use super::next_backoff;

    #[test]
    fn grows_by_the_factor_up_to_the_cap() {
        let mut delay = None;
        let mut seen = Vec::new();
        for _ in 0..5 {
            let next = next_backoff(delay, 1.0, 2.0, 10.0);
            seen.push(next);
            delay = Some(next);
        }
        assert_eq!(seen, vec![1.0, 2.0, 4.0, 8.0, 10.0]);
        assert_eq!(next_backoff(None, 5.0, 1.15, 3.0), 3.0);
    }
}

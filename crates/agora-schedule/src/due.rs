//! When a scheduled job runs: the one decision both schedule kinds share. A slot is run if it
//! can start within its tolerance (Chronos' `epsilon`, Metronome's `startingDeadlineSeconds`);
//! a slot missed by more than that (the scheduler was down, no resources came) is skipped and
//! counted, never run late. Only the latest missed slot can still be in time, so a scheduler
//! that comes back after a long outage runs a job at most once, not once per missed slot.

use jiff::{SignedDuration, Timestamp};

use crate::cron::CronSchedule;
use crate::repeating::Repeating;

/// Either kind of schedule.
#[derive(Clone, Debug)]
pub enum Schedule {
    Repeating(Repeating),
    Cron(CronSchedule),
}

/// What to do about a schedule at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is due before this time.
    WaitUntil(Timestamp),
    /// Run for the slot at `slot`; `skipped` earlier slots were missed beyond the tolerance.
    /// Record `slot` as handled before starting the run, so it never runs twice.
    Run { slot: Timestamp, skipped: u64 },
    /// Every slot up to `through` was missed beyond the tolerance; record it as handled.
    Skip { through: Timestamp, skipped: u64 },
    /// No slot is left (`Rn` exhausted).
    Finished,
}

/// At most this many missed cron slots are counted one by one (the count is a report).
const MAX_COUNTED: u64 = 10_000;

impl Schedule {
    /// The first slot strictly after `t`, or the first slot of all when nothing was handled.
    pub fn next_after(&self, handled: Option<Timestamp>) -> Option<Timestamp> {
        match (self, handled) {
            (Schedule::Repeating(r), None) => r.slot(0),
            (Schedule::Repeating(r), Some(t)) => match r.first_at_or_after(t) {
                Some((k, time)) if time == t => r.slot(k + 1),
                Some((_, time)) => Some(time),
                None => None,
            },
            (Schedule::Cron(c), Some(t)) => c.next_after(t),
            // A cron schedule has no first slot: the caller passes its creation time.
            (Schedule::Cron(_), None) => None,
        }
    }

    fn last_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Repeating(r) => r.last_at_or_before(t).map(|(_, time)| time),
            Schedule::Cron(c) => c.last_at_or_before(t),
        }
    }

    /// Slots in `[from, to]`, where `from` is a slot.
    fn count_between(&self, from: Timestamp, to: Timestamp) -> u64 {
        match self {
            Schedule::Repeating(r) => match (r.first_at_or_after(from), r.last_at_or_before(to)) {
                (Some((a, _)), Some((b, _))) if b >= a => b - a + 1,
                _ => 0,
            },
            Schedule::Cron(c) => {
                let mut count = 0;
                let mut at = Some(from);
                while let Some(t) = at.filter(|t| *t <= to && count < MAX_COUNTED) {
                    count += 1;
                    at = c.next_after(t);
                }
                count
            }
        }
    }

    /// What to do at `now`, given the last slot already handled (run or skipped) — for a cron
    /// schedule, at least its creation time.
    pub fn decide(
        &self,
        handled: Option<Timestamp>,
        now: Timestamp,
        tolerance: SignedDuration,
    ) -> Decision {
        let Some(next) = self.next_after(handled) else {
            return Decision::Finished;
        };
        if next > now {
            return Decision::WaitUntil(next);
        }
        let latest = self
            .last_at_or_before(now)
            .filter(|l| *l >= next)
            .unwrap_or(next);
        let missed = self.count_between(next, latest);
        if now.duration_since(latest) <= tolerance {
            Decision::Run {
                slot: latest,
                skipped: missed.saturating_sub(1),
            }
        } else {
            Decision::Skip {
                through: latest,
                skipped: missed,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn every_minute(count: &str) -> Schedule {
        let text = format!("{count}/2026-01-01T00:00:00Z/PT1M");
        Schedule::Repeating(Repeating::parse(&text, None, ts("2026-01-01T00:00:00Z")).expect("r"))
    }

    const MINUTE: SignedDuration = SignedDuration::from_secs(60);

    #[test]
    fn waits_runs_in_time_and_skips_what_is_too_late() {
        let s = every_minute("R");
        assert_eq!(
            s.decide(None, ts("2025-12-31T23:59:00Z"), MINUTE),
            Decision::WaitUntil(ts("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            s.decide(None, ts("2026-01-01T00:00:30Z"), MINUTE),
            Decision::Run {
                slot: ts("2026-01-01T00:00:00Z"),
                skipped: 0
            }
        );
        // Down for ten minutes: the latest slot is still in time, nine were missed.
        assert_eq!(
            s.decide(
                Some(ts("2026-01-01T00:00:00Z")),
                ts("2026-01-01T00:10:20Z"),
                MINUTE
            ),
            Decision::Run {
                slot: ts("2026-01-01T00:10:00Z"),
                skipped: 9
            }
        );
        // With a tolerance of 10 s, the same moment is too late for every slot.
        assert_eq!(
            s.decide(
                Some(ts("2026-01-01T00:00:00Z")),
                ts("2026-01-01T00:10:20Z"),
                SignedDuration::from_secs(10)
            ),
            Decision::Skip {
                through: ts("2026-01-01T00:10:00Z"),
                skipped: 10
            }
        );
    }

    #[test]
    fn a_slot_recorded_in_milliseconds_is_done() {
        // The scheduler keeps slots as epoch milliseconds; a start "now" with nanoseconds must
        // not make a recorded slot look unhandled (it would run again, forever).
        let now = ts("2026-01-01T00:00:00.123456789Z");
        let s = Schedule::Repeating(Repeating::parse("R1//PT1H", None, now).expect("r"));
        let Decision::Run { slot, .. } = s.decide(None, now, MINUTE) else {
            panic!("the first slot is due");
        };
        let recorded = Timestamp::from_millisecond(slot.as_millisecond()).expect("ms");
        assert_eq!(s.decide(Some(recorded), now, MINUTE), Decision::Finished);
    }

    #[test]
    fn a_finite_schedule_finishes() {
        let s = every_minute("R2");
        assert_eq!(
            s.decide(
                Some(ts("2026-01-01T00:01:00Z")),
                ts("2026-01-01T05:00:00Z"),
                MINUTE
            ),
            Decision::Finished
        );
        assert_eq!(
            s.decide(None, ts("2026-01-01T05:00:00Z"), MINUTE),
            Decision::Skip {
                through: ts("2026-01-01T00:01:00Z"),
                skipped: 2
            }
        );
        assert_eq!(
            every_minute("R0").decide(None, ts("2026-01-01T00:00:00Z"), MINUTE),
            Decision::Finished
        );
    }

    #[test]
    fn cron_runs_the_latest_slot_within_its_deadline() {
        let s = Schedule::Cron(CronSchedule::parse("*/5 * * * *", "UTC").expect("cron"));
        let created = ts("2026-01-01T00:01:00Z");
        assert_eq!(
            s.decide(Some(created), ts("2026-01-01T00:03:00Z"), MINUTE),
            Decision::WaitUntil(ts("2026-01-01T00:05:00Z"))
        );
        assert_eq!(
            s.decide(Some(created), ts("2026-01-01T00:20:30Z"), MINUTE),
            Decision::Run {
                slot: ts("2026-01-01T00:20:00Z"),
                skipped: 3
            }
        );
        assert_eq!(
            s.decide(Some(created), ts("2026-01-01T00:22:00Z"), MINUTE),
            Decision::Skip {
                through: ts("2026-01-01T00:20:00Z"),
                skipped: 4
            }
        );
    }

    proptest! {
        /// Driving a schedule through any sequence of wake-ups runs each slot at most once, in
        /// order, never later than its tolerance, and at most n times for Rn.
        #[test]
        fn slots_run_once_in_order_and_in_time(
            count in prop::option::of(0u64..30),
            period in 1i64..600,
            tolerance in 0i64..300,
            steps in prop::collection::vec(0i64..2_000, 1..60),
        ) {
            let origin = ts("2026-01-01T00:00:00Z");
            let text = match count {
                Some(n) => format!("R{n}/{origin}/PT{period}S"),
                None => format!("R/{origin}/PT{period}S"),
            };
            let schedule = Schedule::Repeating(Repeating::parse(&text, None, origin).expect("r"));
            let tolerance = SignedDuration::from_secs(tolerance);
            let mut handled: Option<Timestamp> = None;
            let mut now = origin;
            let mut runs = 0u64;
            for step in steps {
                now = now.checked_add(SignedDuration::from_secs(step)).expect("now");
                loop {
                    match schedule.decide(handled, now, tolerance) {
                        Decision::Run { slot, .. } => {
                            prop_assert!(handled.is_none_or(|h| slot > h));
                            prop_assert!(slot <= now && now.duration_since(slot) <= tolerance);
                            handled = Some(slot);
                            runs += 1;
                        }
                        Decision::Skip { through, skipped } => {
                            prop_assert!(handled.is_none_or(|h| through > h));
                            prop_assert!(skipped >= 1);
                            prop_assert!(now.duration_since(through) > tolerance);
                            handled = Some(through);
                        }
                        Decision::WaitUntil(t) => {
                            prop_assert!(t > now);
                            break;
                        }
                        Decision::Finished => break,
                    }
                }
            }
            if let Some(n) = count {
                prop_assert!(runs <= n);
            }
        }
    }
}

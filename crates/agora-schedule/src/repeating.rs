//! ISO 8601 repeating intervals as Chronos writes schedules: `R[n]/<start>/<period>`.
//!
//! `R` (or `R-1`) repeats forever, `Rn` n times; an empty start means "now" (given by the
//! caller: nothing here reads the clock). The start keeps the offset it was written with, unless
//! a time zone (Chronos' `scheduleTimeZone`) is given: then its wall-clock fields are read in
//! that zone, as Chronos does. Slot k is `start + k × period`, computed in the zone, so a daily
//! job keeps its wall-clock time across daylight-saving changes and a monthly one started on the
//! 31st does not drift to the 28th.

use jiff::civil::DateTime;
use jiff::fmt::temporal::{Pieces, SpanParser};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};

use crate::ScheduleError;

/// A parsed `R[n]/<start>/<period>`.
#[derive(Clone, Debug)]
pub struct Repeating {
    /// How many runs in all; `None` repeats forever.
    pub repetitions: Option<u64>,
    /// The first slot, in the zone slots are computed in.
    pub start: Zoned,
    pub period: Span,
}

impl Repeating {
    /// Parses a Chronos schedule. `time_zone` is `scheduleTimeZone` (empty: none); `now` stands
    /// in for an empty start.
    pub fn parse(
        schedule: &str,
        time_zone: Option<&str>,
        now: Timestamp,
    ) -> Result<Repeating, ScheduleError> {
        let invalid = |why: &str| ScheduleError::Invalid(format!("{schedule:?}: {why}"));
        let mut parts = schedule.trim().split('/');
        let (Some(count), Some(start), Some(period), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("expected R[n]/<start>/<period>"));
        };
        let repetitions = match count.strip_prefix('R') {
            Some("") | Some("-1") => None,
            Some(n) => Some(
                n.parse::<u64>()
                    .map_err(|_| invalid("the repetition count must be R, R-1 or Rn"))?,
            ),
            None => return Err(invalid("it must start with R")),
        };
        let zone = match time_zone.map(str::trim).filter(|z| !z.is_empty()) {
            Some(name) => Some(
                TimeZone::get(name)
                    .map_err(|_| ScheduleError::Invalid(format!("unknown time zone {name:?}")))?,
            ),
            None => None,
        };
        let start = if start.trim().is_empty() {
            now.to_zoned(zone.unwrap_or(TimeZone::UTC))
        } else {
            parse_start(start.trim(), zone).map_err(|why| invalid(&why))?
        };
        // Slots are whole milliseconds, as schedulers record them: a slot kept as milliseconds
        // must compare equal to the slot it came from.
        let start = start
            .round(
                jiff::ZonedRound::new()
                    .smallest(jiff::Unit::Millisecond)
                    .mode(jiff::RoundMode::Trunc),
            )
            .map_err(|_| invalid("the start is out of range"))?;
        // ISO 8601 only (jiff's own parse also takes "1 day").
        let period: Span = SpanParser::new()
            .parse_span(period.trim())
            .map_err(|_| invalid("the period must be an ISO 8601 duration such as PT1H or P1D"))?;
        if period.get_microseconds() != 0 || period.get_nanoseconds() != 0 {
            return Err(invalid("the period must be whole milliseconds"));
        }
        let next = start
            .checked_add(period)
            .map_err(|_| invalid("the period is out of range"))?;
        if next.timestamp() <= start.timestamp() {
            return Err(invalid("the period must be positive"));
        }
        Ok(Repeating {
            repetitions,
            start,
            period,
        })
    }

    /// The time of slot `k` (0 is the start); `None` past the last repetition or out of range.
    pub fn slot(&self, k: u64) -> Option<Timestamp> {
        if self.repetitions.is_some_and(|n| k >= n) {
            return None;
        }
        let k = i64::try_from(k).ok()?;
        let span = self.period.checked_mul(k).ok()?;
        self.start.checked_add(span).ok().map(|z| z.timestamp())
    }

    /// The first slot at or after `t`: its index and time.
    pub fn first_at_or_after(&self, t: Timestamp) -> Option<(u64, Timestamp)> {
        let first = self.slot(0)?;
        if first >= t {
            return Some((0, first));
        }
        // Slots only grow with k: find the first one at or after t by doubling, then halving.
        let mut low = 0u64; // slot(low) < t
        let mut high = 1u64;
        loop {
            match self.slot(high) {
                Some(time) if time >= t => break,
                Some(_) => {
                    low = high;
                    high = high.checked_mul(2)?;
                }
                None => {
                    // Past the last repetition: the answer, if any, is that one.
                    let last = match self.repetitions {
                        Some(n) if high >= n => n.checked_sub(1)?,
                        _ => return None,
                    };
                    if last <= low {
                        return None;
                    }
                    match self.slot(last) {
                        Some(time) if time >= t => {
                            high = last;
                            break;
                        }
                        _ => return None,
                    }
                }
            }
        }
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            match self.slot(middle) {
                Some(time) if time >= t => high = middle,
                _ => low = middle,
            }
        }
        self.slot(high).map(|time| (high, time))
    }

    /// The last slot at or before `t`, if any.
    pub fn last_at_or_before(&self, t: Timestamp) -> Option<(u64, Timestamp)> {
        match self.first_at_or_after(t) {
            Some((k, time)) if time == t => Some((k, time)),
            Some((0, _)) => None,
            Some((k, _)) => self.slot(k - 1).map(|time| (k - 1, time)),
            None => {
                // Every slot is before t: the last one, if the count is finite.
                let n = self.repetitions?;
                let k = n.checked_sub(1)?;
                self.slot(k).map(|time| (k, time))
            }
        }
    }

    /// The schedule as Chronos shows it after runs: the remaining count from slot `next`, that
    /// slot as the start, and the period (`R/...` when it repeats forever).
    pub fn rewritten_from(&self, next: u64) -> String {
        let count = match self.repetitions {
            None => "R".to_owned(),
            Some(n) => format!("R{}", n.saturating_sub(next)),
        };
        // Past the last repetition the start is where the next would have been, as Chronos
        // shows an exhausted schedule.
        let start = i64::try_from(next)
            .ok()
            .and_then(|k| self.period.checked_mul(k).ok())
            .and_then(|span| self.start.checked_add(span).ok())
            .map(|zoned| format_start(&zoned))
            .unwrap_or_else(|| format_start(&self.start));
        format!("{count}/{start}/{}", self.period)
    }
}

/// `2020-01-01T00:00:00Z`, `...+02:00`, or a local time read in `zone` (which then wins over any
/// offset written, as Chronos' `scheduleTimeZone` does).
fn parse_start(text: &str, zone: Option<TimeZone>) -> Result<Zoned, String> {
    let pieces = Pieces::parse(text).map_err(|e| format!("unreadable start {text:?}: {e}"))?;
    let time = pieces.time().unwrap_or_default();
    let datetime = DateTime::from_parts(pieces.date(), time);
    let zone = match zone {
        Some(zone) => zone,
        None => match pieces.to_numeric_offset() {
            Some(offset) if offset.seconds() == 0 => TimeZone::UTC,
            Some(offset) => TimeZone::fixed(offset),
            // No offset and no zone: UTC, as Chronos assumes.
            None => TimeZone::UTC,
        },
    };
    datetime
        .to_zoned(zone)
        .map_err(|e| format!("start {text:?} does not exist: {e}"))
}

/// Chronos' form: milliseconds, `Z` for UTC, else the offset.
pub fn format_start(zoned: &Zoned) -> String {
    if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn parse(schedule: &str, zone: Option<&str>) -> Repeating {
        Repeating::parse(schedule, zone, ts("2026-01-01T00:00:00Z")).expect("schedule")
    }

    #[test]
    fn reads_counts_starts_and_periods() {
        let forever = parse("R/2014-03-08T20:00:00.000Z/PT2M", None);
        assert_eq!(forever.repetitions, None);
        assert_eq!(forever.slot(0), Some(ts("2014-03-08T20:00:00Z")));
        assert_eq!(forever.slot(3), Some(ts("2014-03-08T20:06:00Z")));
        assert_eq!(
            parse("R-1/2014-03-08T20:00:00Z/P1D", None).repetitions,
            None
        );
        let five = parse("R5/2020-01-01T00:00:00+02:00/P1W", None);
        assert_eq!(five.repetitions, Some(5));
        assert_eq!(five.slot(1), Some(ts("2020-01-07T22:00:00Z")));
        assert_eq!(five.slot(4), Some(ts("2020-01-28T22:00:00Z")));
        assert_eq!(five.slot(5), None);
        let now = parse("R//PT1H", None);
        assert_eq!(now.slot(0), Some(ts("2026-01-01T00:00:00Z")));
        // An empty start is now, to the millisecond: slots are whole milliseconds.
        let precise = Repeating::parse("R//PT1H", None, ts("2026-01-01T00:00:00.123456789Z"))
            .expect("schedule");
        assert_eq!(precise.slot(0), Some(ts("2026-01-01T00:00:00.123Z")));
        assert!(Repeating::parse("R//PT0.0005S", None, ts("2026-01-01T00:00:00Z")).is_err());
    }

    #[test]
    fn bad_schedules_say_why() {
        let now = ts("2026-01-01T00:00:00Z");
        for bad in [
            "",
            "R/2020-01-01T00:00:00Z",
            "X/2020-01-01T00:00:00Z/P1D",
            "Rx/2020-01-01T00:00:00Z/P1D",
            "R/yesterday/P1D",
            "R/2020-01-01T00:00:00Z/1 day",
            "R/2020-01-01T00:00:00Z/PT0S",
            "R/2020-01-01T00:00:00Z/-PT1H",
            "R/2020-01-01T00:00:00Z/P1D/extra",
        ] {
            assert!(
                matches!(
                    Repeating::parse(bad, None, now),
                    Err(ScheduleError::Invalid(_))
                ),
                "{bad:?} was accepted"
            );
        }
        assert!(Repeating::parse("R/2020-01-01T00:00:00Z/P1D", Some("Mars/Olympus"), now).is_err());
    }

    #[test]
    fn a_time_zone_keeps_wall_clock_time_across_daylight_saving() {
        // Berlin moves to summer time on 2026-03-29: 08:00 local stays 08:00 local, 07:00 UTC
        // before and 06:00 UTC after.
        let daily = parse("R/2026-03-27T08:00:00Z/P1D", Some("Europe/Berlin"));
        assert_eq!(daily.slot(0), Some(ts("2026-03-27T07:00:00Z")));
        assert_eq!(daily.slot(1), Some(ts("2026-03-28T07:00:00Z")));
        assert_eq!(daily.slot(2), Some(ts("2026-03-29T06:00:00Z")));
        assert_eq!(daily.slot(3), Some(ts("2026-03-30T06:00:00Z")));
        // Without a zone the offset is fixed: 24 hours apart.
        let fixed = parse("R/2026-03-27T08:00:00+01:00/P1D", None);
        assert_eq!(fixed.slot(2), Some(ts("2026-03-29T07:00:00Z")));
    }

    #[test]
    fn months_do_not_drift() {
        let monthly = parse("R/2026-01-31T12:00:00Z/P1M", None);
        assert_eq!(monthly.slot(1), Some(ts("2026-02-28T12:00:00Z")));
        assert_eq!(monthly.slot(2), Some(ts("2026-03-31T12:00:00Z")));
    }

    #[test]
    fn finds_slots_around_a_time_without_walking_them() {
        let every_second = parse("R/2000-01-01T00:00:00Z/PT1S", None);
        let t = ts("2026-06-01T12:00:00.5Z");
        let (k, after) = every_second.first_at_or_after(t).expect("after");
        assert_eq!(after, ts("2026-06-01T12:00:01Z"));
        assert_eq!(every_second.slot(k), Some(after));
        let (j, before) = every_second.last_at_or_before(t).expect("before");
        assert_eq!((j + 1, before), (k, ts("2026-06-01T12:00:00Z")));
        let finite = parse("R3/2020-01-01T00:00:00Z/P1D", None);
        assert_eq!(finite.first_at_or_after(ts("2020-01-05T00:00:00Z")), None);
        assert_eq!(
            finite.last_at_or_before(ts("2020-01-05T00:00:00Z")),
            Some((2, ts("2020-01-03T00:00:00Z")))
        );
        assert_eq!(finite.last_at_or_before(ts("2019-12-31T00:00:00Z")), None);
    }

    #[test]
    fn rewrites_as_chronos_shows_it() {
        let five = parse("R5/2020-01-01T00:00:00Z/P1D", None);
        assert_eq!(five.rewritten_from(2), "R3/2020-01-03T00:00:00.000Z/P1D");
        assert_eq!(five.rewritten_from(5), "R0/2020-01-06T00:00:00.000Z/P1D");
        let forever = parse("R/2020-01-01T00:00:00Z/PT2M", Some("America/New_York"));
        assert_eq!(
            forever.rewritten_from(0),
            "R/2020-01-01T00:00:00.000-05:00/PT2M"
        );
    }

    proptest! {
        #[test]
        fn slots_grow_and_searches_agree(
            start in 0i64..2_000_000_000,
            seconds in 1i64..100_000,
            days in 0i64..40,
            months in 0i64..3,
            at in 0i64..4_000_000_000,
            zone in prop::sample::select(vec!["", "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
        ) {
            let start = Timestamp::from_second(start).expect("start");
            let period = format!("P{months}M{days}DT{seconds}S");
            let text = format!("R/{start}/{period}");
            let schedule = Repeating::parse(&text, Some(zone), start).expect("schedule");
            let mut previous = None;
            for k in 0..20 {
                let slot = schedule.slot(k).expect("slot");
                prop_assert!(previous.is_none_or(|p| p < slot), "slots grow");
                previous = Some(slot);
            }
            let t = Timestamp::from_second(at).expect("t");
            let (k, after) = schedule.first_at_or_after(t).expect("a later slot");
            prop_assert!(after >= t);
            prop_assert!(k == 0 || schedule.slot(k - 1).expect("slot") < t);
            match schedule.last_at_or_before(t) {
                Some((j, before)) => {
                    prop_assert!(before <= t);
                    prop_assert!(schedule.slot(j + 1).expect("slot") > t);
                }
                None => prop_assert!(schedule.slot(0).expect("slot") > t),
            }
        }
    }
}

//! Cron schedules as Metronome has them: a standard 5-field UNIX expression (day of month and
//! day of week match with OR, as in Vixie cron; `@daily` and friends too) in a time zone. A
//! sixth field in front, for seconds, is accepted beyond Metronome.
//! Matching is on the zone's wall clock, so `0 2 * * *` runs at 02:00 local every day, and on
//! the day 02:00 does not exist, at the first moment after the gap.

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::ScheduleError;

#[derive(Clone, Debug)]
pub struct CronSchedule {
    cron: Cron,
    zone: TimeZone,
}

impl CronSchedule {
    /// Parses `expression` for the time zone `zone` (an IANA name; empty means UTC).
    pub fn parse(expression: &str, zone: &str) -> Result<CronSchedule, ScheduleError> {
        let fields = expression.split_whitespace().count();
        if !expression.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(ScheduleError::Invalid(format!(
                "cron {expression:?}: expected 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, got {fields}"
            )));
        }
        let cron: Cron = expression
            .parse()
            .map_err(|e| ScheduleError::Invalid(format!("cron {expression:?}: {e}")))?;
        let zone = match zone.trim() {
            "" => TimeZone::UTC,
            name => TimeZone::get(name)
                .map_err(|_| ScheduleError::Invalid(format!("unknown time zone {name:?}")))?,
        };
        Ok(CronSchedule { cron, zone })
    }

    /// The first occurrence strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let zoned = t.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The last occurrence at or before `t`.
    pub fn last_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let zoned = t.to_zoned(self.zone.clone());
        self.cron
            .find_previous_occurrence(&zoned, true)
            .ok()
            .map(|z| z.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn weekdays_at_two_across_daylight_saving() {
        let cron = CronSchedule::parse("0 2 * * 1-5", "Europe/Berlin").expect("cron");
        // Saturday 2026-03-28; Berlin is on summer time from Sunday.
        let next = cron.next_after(ts("2026-03-28T12:00:00Z")).expect("next");
        assert_eq!(next, ts("2026-03-30T00:00:00Z"), "Monday 02:00 CEST");
        let cron = CronSchedule::parse("30 2 * * *", "Europe/Berlin").expect("cron");
        let next = cron.next_after(ts("2026-03-28T12:00:00Z")).expect("next");
        assert!(
            next >= ts("2026-03-29T01:00:00Z") && next <= ts("2026-03-29T01:30:00Z"),
            "02:30 does not exist on the 29th: the first moment after the gap, got {next}"
        );
    }

    #[test]
    fn day_of_month_and_week_match_with_or() {
        // The 13th or any Friday.
        let cron = CronSchedule::parse("0 0 13 * 5", "").expect("cron");
        let next = cron.next_after(ts("2026-02-01T00:00:00Z")).expect("next");
        assert_eq!(
            next,
            ts("2026-02-06T00:00:00Z"),
            "Friday the 6th comes first"
        );
        let seconds = CronSchedule::parse("*/2 * * * * *", "UTC").expect("cron");
        assert_eq!(
            seconds.next_after(ts("2026-02-01T10:00:01Z")),
            Some(ts("2026-02-01T10:00:02Z"))
        );
        let daily = CronSchedule::parse("@daily", "UTC").expect("cron");
        assert_eq!(
            daily.next_after(ts("2026-02-01T10:00:00Z")),
            Some(ts("2026-02-02T00:00:00Z"))
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_refused() {
        for bad in [
            "",
            "* * * *",
            "* * * * * * *",
            "61 * * * *",
            "* * 32 * *",
            "nonsense",
        ] {
            assert!(
                CronSchedule::parse(bad, "UTC").is_err(),
                "{bad:?} was accepted"
            );
        }
        assert!(CronSchedule::parse("* * * * *", "Nowhere/Special").is_err());
    }

    proptest! {
        #[test]
        fn next_and_last_bracket_a_time(
            minute in 0u8..60, hour in 0u8..24, at in 0i64..4_000_000_000,
            zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York"]),
        ) {
            let cron = CronSchedule::parse(&format!("{minute} {hour} * * *"), zone).expect("cron");
            let t = Timestamp::from_second(at).expect("t");
            let next = cron.next_after(t).expect("next");
            prop_assert!(next > t);
            prop_assert!(next.duration_since(t) <= jiff::SignedDuration::from_hours(26));
            let last = cron.last_at_or_before(t).expect("last");
            prop_assert!(last <= t);
            // Nothing lies between them: the one after the last is the next.
            prop_assert_eq!(cron.next_after(last), Some(next));
        }
    }
}

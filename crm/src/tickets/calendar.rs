//! Business-hours calendars: weekly opening hours in local wall-clock time,
//! holidays, and an IANA time zone (`chrono-tz`). SLA clocks run only
//! inside the opening hours.
//!
//! [`business_ms_between`] and [`add_business_ms`] are pure: they read no
//! clock and no database. Opening hours are wall-clock times, so across a
//! daylight-saving change a 09:00–17:00 day lasts 8 real hours on both
//! sides; on the night of the change an opening time that falls in the
//! skipped hour moves to the first instant after it, and one that falls in
//! the repeated hour takes its first occurrence.

use crate::types::Millis;
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One opening span on one weekday: `weekday` 0 = Monday … 6 = Sunday,
/// minutes from local midnight, `start < end <= 1440`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WeeklySpan {
    pub weekday: u8,
    pub start_min: u32,
    pub end_min: u32,
}

/// A validated calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessCalendar {
    tz: Tz,
    /// Spans per weekday (Monday first), sorted and non-overlapping.
    days: [Vec<(u32, u32)>; 7],
    holidays: BTreeSet<NaiveDate>,
}

/// How far the calendar functions look before giving up (a calendar whose
/// every day is a holiday).
const MAX_DAYS: i64 = 3660;

impl BusinessCalendar {
    /// Validates a time zone name, spans and holidays (`YYYY-MM-DD`).
    pub fn new(tz: &str, spans: &[WeeklySpan], holidays: &[String]) -> Result<BusinessCalendar, String> {
        let tz: Tz = tz.parse().map_err(|_| format!("unknown time zone {tz:?}"))?;
        let mut days: [Vec<(u32, u32)>; 7] = Default::default();
        for s in spans {
            if s.weekday > 6 {
                return Err(format!("weekday {} is not 0 (Monday) … 6 (Sunday)", s.weekday));
            }
            if s.start_min >= s.end_min || s.end_min > 1440 {
                return Err(format!("span {}–{} is not within a day (minutes, start < end ≤ 1440)", s.start_min, s.end_min));
            }
            days[s.weekday as usize].push((s.start_min, s.end_min));
        }
        for d in days.iter_mut() {
            d.sort_unstable();
            if d.windows(2).any(|w| w[0].1 > w[1].0) {
                return Err("opening spans of one day overlap".into());
            }
        }
        if days.iter().all(Vec::is_empty) {
            return Err("a calendar needs at least one opening span".into());
        }
        let mut hs = BTreeSet::new();
        for h in holidays {
            hs.insert(NaiveDate::parse_from_str(h.trim(), "%Y-%m-%d").map_err(|_| format!("holiday {h:?} is not YYYY-MM-DD"))?);
        }
        Ok(BusinessCalendar { tz, days, holidays: hs })
    }

    /// Monday–Friday with the given hours (e.g. 9:00–13:00 and 14:00–18:00).
    pub fn weekdays(tz: &str, spans: &[(u32, u32)], holidays: &[String]) -> Result<BusinessCalendar, String> {
        let mut all = Vec::new();
        for wd in 0..5 {
            for &(s, e) in spans {
                all.push(WeeklySpan { weekday: wd, start_min: s, end_min: e });
            }
        }
        BusinessCalendar::new(tz, &all, holidays)
    }

    /// Round the clock, every day, no holidays (the default when a centre
    /// has no calendar).
    pub fn always() -> BusinessCalendar {
        BusinessCalendar { tz: Tz::UTC, days: std::array::from_fn(|_| vec![(0, 1440)]), holidays: BTreeSet::new() }
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }

    fn local_date(&self, t: Millis) -> NaiveDate {
        match self.tz.timestamp_millis_opt(t) {
            chrono::LocalResult::Single(d) | chrono::LocalResult::Ambiguous(d, _) => d.date_naive(),
            chrono::LocalResult::None => NaiveDate::MIN,
        }
    }

    /// The instant of a local wall-clock time (see the module docs for DST).
    fn instant(&self, date: NaiveDate, minute: u32) -> Millis {
        let base = NaiveDateTime::new(date, NaiveTime::MIN) + Duration::minutes(i64::from(minute));
        for shift in 0..4 {
            let n = base + Duration::minutes(30 * shift);
            match self.tz.from_local_datetime(&n) {
                chrono::LocalResult::Single(d) => return d.timestamp_millis(),
                chrono::LocalResult::Ambiguous(a, _) => return a.timestamp_millis(),
                chrono::LocalResult::None => continue,
            }
        }
        base.and_utc().timestamp_millis()
    }

    /// The opening intervals of one local date, as instants.
    fn intervals(&self, date: NaiveDate) -> Vec<(Millis, Millis)> {
        if self.holidays.contains(&date) {
            return Vec::new();
        }
        let wd = date.weekday().num_days_from_monday() as usize;
        self.days[wd]
            .iter()
            .map(|&(s, e)| (self.instant(date, s), self.instant(date, e)))
            .filter(|(s, e)| e > s)
            .collect()
    }
}

/// Business milliseconds in `[a, b)` (0 when `b <= a`).
pub fn business_ms_between(cal: &BusinessCalendar, a: Millis, b: Millis) -> Millis {
    if b <= a {
        return 0;
    }
    let first = cal.local_date(a) - Duration::days(1);
    let last = cal.local_date(b) + Duration::days(1);
    let mut total = 0;
    let mut d = first;
    while d <= last {
        for (s, e) in cal.intervals(d) {
            let lo = s.max(a);
            let hi = e.min(b);
            if hi > lo {
                total += hi - lo;
            }
        }
        match d.succ_opt() {
            Some(n) => d = n,
            None => break,
        }
    }
    total
}

/// The instant at which `ms` business milliseconds have passed since
/// `start`. With `ms == 0` it is `start` itself, even outside hours.
pub fn add_business_ms(cal: &BusinessCalendar, start: Millis, ms: Millis) -> Millis {
    if ms <= 0 {
        return start;
    }
    let mut left = ms;
    let mut d = cal.local_date(start) - Duration::days(1);
    for _ in 0..MAX_DAYS {
        for (s, e) in cal.intervals(d) {
            let lo = s.max(start);
            if e > lo {
                let len = e - lo;
                if left <= len {
                    return lo + left;
                }
                left -= len;
            }
        }
        match d.succ_opt() {
            Some(n) => d = n,
            None => break,
        }
    }
    // Nothing open for ten years: the target is never reached.
    Millis::MAX
}

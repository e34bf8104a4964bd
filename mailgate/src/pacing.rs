//! When campaign mail may go out, and how fast: send windows in the
//! sender's time zone and throttles, as pure values that are given the time
//! (milliseconds since the epoch) rather than reading a clock.
//!
//! - [`SendWindow`]: e.g. only 20:00–07:00 on weekdays and all day at
//!   weekends, so the company's own mail server is not flooded in working
//!   hours (the seeds' "deferred sending"). Windows may wrap midnight.
//! - [`Throttle`]: messages per second, per recipient domain per minute,
//!   and a sliding window per hour (listmonk's `1h/10000`), each a sliding
//!   log of send times; [`Throttle::admit`] says "now" or "not before T".

use chrono::{Datelike, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use std::collections::{HashMap, VecDeque};

/// Minutes after local midnight.
type Minute = u32;

/// When sending is allowed; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct SendWindow {
    pub tz: Tz,
    /// `[start, end)` in local minutes; `start > end` wraps midnight.
    pub daily: Vec<(Minute, Minute)>,
    /// Saturday and Sunday are open all day.
    pub weekends: bool,
}

impl SendWindow {
    /// Parses `"Europe/Rome 20:00-07:00,weekends"` (the time zone, then
    /// comma-separated ranges and the word `weekends`).
    pub fn parse(s: &str) -> Result<SendWindow, String> {
        let (tz, rest) = s.trim().split_once(' ').ok_or("expected \"TIME_ZONE RANGES\", e.g. \"Europe/Rome 20:00-07:00,weekends\"")?;
        let tz: Tz = tz.parse().map_err(|_| format!("unknown time zone {tz:?}"))?;
        let mut w = SendWindow { tz, daily: vec![], weekends: false };
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.eq_ignore_ascii_case("weekends") {
                w.weekends = true;
                continue;
            }
            let (a, b) = part.split_once('-').ok_or_else(|| format!("{part:?} is not HH:MM-HH:MM"))?;
            w.daily.push((hhmm(a)?, hhmm(b)?));
        }
        if w.daily.is_empty() && !w.weekends {
            return Err("no range and no weekends: the window would never open".into());
        }
        Ok(w)
    }

    /// Whether mail may go out at `now_ms`.
    pub fn is_open(&self, now_ms: i64) -> bool {
        let Some(t) = self.tz.timestamp_millis_opt(now_ms).single() else { return false };
        if self.weekends && matches!(t.weekday(), Weekday::Sat | Weekday::Sun) {
            return true;
        }
        let m = t.hour() * 60 + t.minute();
        self.daily.iter().any(|&(a, b)| if a <= b { a <= m && m < b } else { m >= a || m < b })
    }

    /// The first minute at or after `now_ms` when the window is open
    /// (`now_ms` itself when open); at most a week ahead.
    pub fn next_open(&self, now_ms: i64) -> i64 {
        if self.is_open(now_ms) {
            return now_ms;
        }
        let start = now_ms - now_ms.rem_euclid(60_000) + 60_000;
        (0..7 * 24 * 60).map(|i| start + i * 60_000).find(|&t| self.is_open(t)).unwrap_or(now_ms + 3_600_000)
    }
}

fn hhmm(s: &str) -> Result<Minute, String> {
    let (h, m) = s.trim().split_once(':').ok_or_else(|| format!("{s:?} is not HH:MM"))?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| format!("bad hour in {s:?}"))?, m.parse().map_err(|_| format!("bad minute in {s:?}"))?);
    if h > 24 || m > 59 || (h == 24 && m > 0) {
        return Err(format!("{s:?} is not a time of day"));
    }
    Ok(h * 60 + m)
}

/// Sending rates; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub per_second: u32,
    pub per_domain_per_minute: u32,
    pub per_hour: u32,
}

/// Sliding-window throttles; see the module docs.
#[derive(Debug, Default)]
pub struct Throttle {
    limits: Limits,
    second: VecDeque<i64>,
    hour: VecDeque<i64>,
    domains: HashMap<String, VecDeque<i64>>,
}

/// The earliest time a window of `len` ms with at most `max` entries
/// admits one more, or `None` when it admits one now.
fn wait(log: &mut VecDeque<i64>, max: u32, len: i64, now: i64) -> Option<i64> {
    while log.front().is_some_and(|&t| t <= now - len) {
        log.pop_front();
    }
    if max == 0 || log.len() < max as usize {
        return None;
    }
    // The oldest entry that must leave before one more fits.
    log.get(log.len() - max as usize).map(|&t| t + len)
}

impl Throttle {
    pub fn new(limits: Limits) -> Throttle {
        Throttle { limits, ..Default::default() }
    }

    /// Admits one message to `domain` at `now` (recording it), or returns
    /// the earliest time to try again.
    pub fn admit(&mut self, domain: &str, now: i64) -> Result<(), i64> {
        let l = self.limits;
        let d = self.domains.entry(domain.to_ascii_lowercase()).or_default();
        let later = [wait(&mut self.second, l.per_second, 1_000, now), wait(&mut self.hour, l.per_hour, 3_600_000, now), wait(d, l.per_domain_per_minute, 60_000, now)]
            .into_iter()
            .flatten()
            .max();
        if let Some(t) = later {
            return Err(t);
        }
        for (log, max) in [(&mut self.second, l.per_second), (&mut self.hour, l.per_hour), (d, l.per_domain_per_minute)] {
            if max > 0 {
                log.push_back(now);
            }
        }
        // Idle domains are forgotten so the map does not grow forever.
        if self.domains.len() > 10_000 {
            self.domains.retain(|_, v| v.back().is_some_and(|&t| t > now - 60_000));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0).single().unwrap().timestamp_millis()
    }

    #[test]
    fn evenings_and_weekends_in_rome() {
        let w = SendWindow::parse("Europe/Rome 20:00-07:00, weekends").unwrap();
        let rome = chrono_tz::Europe::Rome;
        // Wednesday 2026-03-04.
        assert!(!w.is_open(at(rome, 2026, 3, 4, 12, 0)));
        assert!(w.is_open(at(rome, 2026, 3, 4, 20, 0)));
        assert!(w.is_open(at(rome, 2026, 3, 4, 23, 59)));
        assert!(w.is_open(at(rome, 2026, 3, 5, 6, 59)));
        assert!(!w.is_open(at(rome, 2026, 3, 5, 7, 0)));
        // Saturday noon.
        assert!(w.is_open(at(rome, 2026, 3, 7, 12, 0)));
        assert_eq!(w.next_open(at(rome, 2026, 3, 4, 12, 0)), at(rome, 2026, 3, 4, 20, 0));
        // The window is local time: 20:00 in Rome is 19:00 UTC in winter.
        assert!(w.is_open(at(chrono_tz::UTC, 2026, 3, 4, 19, 30)));
        assert!(SendWindow::parse("Europe/Nowhere 1:00-2:00").is_err());
        assert!(SendWindow::parse("UTC 25:00-2:00").is_err());
    }

    #[test]
    fn throttles_per_second_domain_and_hour() {
        let mut t = Throttle::new(Limits { per_second: 3, per_domain_per_minute: 2, per_hour: 5 });
        assert!(t.admit("a.example", 0).is_ok());
        assert!(t.admit("a.example", 10).is_ok());
        assert_eq!(t.admit("A.example", 20), Err(60_000), "two per minute to a.example");
        assert!(t.admit("b.example", 20).is_ok());
        assert_eq!(t.admit("c.example", 30), Err(1_000), "three per second");
        assert!(t.admit("c.example", 1_000).is_ok());
        assert!(t.admit("d.example", 1_010).is_ok());
        assert_eq!(t.admit("e.example", 2_000), Err(3_600_000), "five per hour");
        let mut free = Throttle::new(Limits::default());
        assert!((0..10_000).all(|i| free.admit("x", i).is_ok()));
    }

    #[test]
    fn a_sliding_hour_never_exceeds_its_limit() {
        let mut t = Throttle::new(Limits { per_second: 0, per_domain_per_minute: 0, per_hour: 100 });
        let mut sent = vec![];
        let mut now = 0;
        while now < 3 * 3_600_000 {
            match t.admit("x", now) {
                Ok(()) => {
                    sent.push(now);
                    now += 7_000;
                }
                Err(next) => now = next,
            }
        }
        for (i, &s) in sent.iter().enumerate() {
            let in_hour = sent[i..].iter().take_while(|&&x| x < s + 3_600_000).count();
            assert!(in_hour <= 100, "{in_hour} in the hour from {s}");
        }
        assert!(sent.len() >= 299, "{}", sent.len());
    }
}

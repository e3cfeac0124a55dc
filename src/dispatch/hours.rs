//! Weekly time windows in local time, such as `Mon-Fri 07:00-16:00`, used for vendor hours,
//! on-call hours and tenant availability.

use chrono::{Datelike, NaiveTime, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;

/// One window: a set of weekdays and a time range on each of them. `end_min` may be 1440
/// (`24:00`), the end of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Bit `n` is set for weekday `n`, Monday = 0.
    days: u8,
    start_min: u32,
    end_min: u32,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

const FULL_DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl Window {
    /// Parses `DAYS HH:MM-HH:MM`, where DAYS is a weekday (`Sat` or `Saturday`, in any case), a
    /// range (`Mon-Fri`) or a comma list of either (`Mon,Wed,Fri`). Returns what is wrong on
    /// failure.
    pub fn parse(text: &str) -> Result<Window, String> {
        let (days_text, times) = text.trim().split_once(' ').ok_or_else(|| {
            format!(
                "invalid window {text:?}; expected DAYS HH:MM-HH:MM such as Mon-Fri 07:00-16:00"
            )
        })?;
        let mut days = 0u8;
        for part in days_text.split(',') {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (day_index(a, text)?, day_index(b, text)?),
                None => {
                    let day = day_index(part, text)?;
                    (day, day)
                }
            };
            let mut day = first;
            loop {
                days |= 1 << day;
                if day == last {
                    break;
                }
                day = (day + 1) % 7;
            }
        }
        let (start, end) = times
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("invalid time range in {text:?}; expected HH:MM-HH:MM"))?;
        let start_min = minute_of_day(start, text)?;
        let end_min = minute_of_day(end, text)?;
        if end_min <= start_min {
            return Err(format!(
                "invalid window {text:?}; the end must be after the start on the same day, so \
                 split a window past midnight in two, such as \"Mon 22:00-24:00\" and \
                 \"Tue 00:00-06:00\""
            ));
        }
        Ok(Window {
            days,
            start_min,
            end_min,
        })
    }

    /// Returns whether the local interval `[start, start + minutes)` lies inside this window
    /// on one day.
    pub fn contains_local(&self, weekday: Weekday, start_min: u32, minutes: u32) -> bool {
        let day_bit = 1u8 << weekday.num_days_from_monday();
        self.days & day_bit != 0
            && start_min >= self.start_min
            && start_min + minutes <= self.end_min
    }
}

fn day_index(name: &str, text: &str) -> Result<u32, String> {
    let lower = name.trim().to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|day| *day == lower)
        .or_else(|| FULL_DAY_NAMES.iter().position(|day| *day == lower))
        .map(|index| index as u32)
        .ok_or_else(|| {
            format!(
                "invalid weekday {name:?} in {text:?}; expected Mon, Tue, Wed, Thu, Fri, Sat \
                 or Sun, or a range such as Mon-Fri"
            )
        })
}

/// Parses `HH:MM` into minutes after midnight; `24:00` is the end of the day.
pub fn minute_of_day(value: &str, text: &str) -> Result<u32, String> {
    let value = value.trim();
    if value == "24:00" {
        return Ok(24 * 60);
    }
    NaiveTime::parse_from_str(value, "%H:%M")
        .map(|time| time.hour() * 60 + time.minute())
        .map_err(|_| format!("invalid time {value:?} in {text:?}; expected HH:MM"))
}

/// Parses a list of windows, naming the first invalid one.
pub fn parse_all(texts: &[String]) -> Result<Vec<Window>, String> {
    texts.iter().map(|text| Window::parse(text)).collect()
}

/// Returns whether the interval from `start_ms` lasting `minutes` lies inside one of `windows`, in
/// the local time of `tz`. An interval that crosses a DST change is judged by its local
/// start and its real length, so a 2 h job never gets squeezed into a window that lost an
/// hour.
pub fn fits(windows: &[Window], tz: Tz, start_ms: i64, minutes: u32) -> bool {
    let Some(local) = tz.timestamp_millis_opt(start_ms).single() else {
        return false;
    };
    let end_ms = start_ms + i64::from(minutes) * 60_000;
    let Some(local_end) = tz.timestamp_millis_opt(end_ms).single() else {
        return false;
    };
    if local.date_naive() != local_end.date_naive() && local_end.time() != NaiveTime::MIN {
        return false;
    }
    let start_min = local.hour() * 60 + local.minute();
    // Wall-clock length, which differs from `minutes` when the interval crosses a DST change.
    let wall_minutes = if local_end.time() == NaiveTime::MIN {
        24 * 60 - start_min
    } else {
        (local_end.hour() * 60 + local_end.minute()).saturating_sub(start_min)
    };
    let span = wall_minutes.max(minutes);
    windows
        .iter()
        .any(|window| window.contains_local(local.weekday(), start_min, span))
}

/// Returns whether the instant `at_ms` falls inside one of `windows` in the local time of `tz`.
pub fn covers(windows: &[Window], tz: Tz, at_ms: i64) -> bool {
    let Some(local) = tz.timestamp_millis_opt(at_ms).single() else {
        return false;
    };
    let minute = local.hour() * 60 + local.minute();
    windows
        .iter()
        .any(|window| window.contains_local(local.weekday(), minute, 0) && minute < window.end_min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_ranges_and_lists() {
        let window = Window::parse("Mon-Fri 07:00-16:00").unwrap();
        assert!(window.contains_local(Weekday::Wed, 7 * 60, 120));
        assert!(!window.contains_local(Weekday::Sat, 7 * 60, 120));
        assert!(!window.contains_local(Weekday::Mon, 15 * 60, 120));
        let wrap = Window::parse("Sat-Sun 00:00-24:00").unwrap();
        assert!(wrap.contains_local(Weekday::Sun, 23 * 60, 60));
        let list = Window::parse("Mon,Wed 08:00-09:00").unwrap();
        assert!(list.contains_local(Weekday::Wed, 8 * 60, 60));
        assert!(!list.contains_local(Weekday::Tue, 8 * 60, 60));
    }

    #[test]
    fn parse_accepts_full_day_names() {
        let window = Window::parse("Monday-Friday 07:00-16:00").unwrap();
        assert_eq!(window, Window::parse("Mon-Fri 07:00-16:00").unwrap());
        let saturday = Window::parse("SATURDAY 09:00-12:00").unwrap();
        assert!(saturday.contains_local(Weekday::Sat, 9 * 60, 60));
    }

    #[test]
    fn parse_names_the_fix() {
        let night = Window::parse("Mon-Fri 16:00-07:00").unwrap_err();
        assert!(night.contains("\"Mon-Fri 16:00-07:00\""), "{night}");
        assert!(night.contains("split a window past midnight"), "{night}");
        let day = Window::parse("Mnd 08:00-09:00").unwrap_err();
        assert!(day.contains("\"Mnd\""), "{day}");
        assert!(day.contains("Mon, Tue"), "{day}");
    }

    #[test]
    fn parse_rejects_bad_windows() {
        for text in [
            "Mon 09:00",
            "Xyz 08:00-09:00",
            "Mon 10:00-09:00",
            "Mon 25:00-26:00",
            "Mon 09:00-09:00",
            "Mon 24:00-24:00",
            "Mo-Fr 08:00-09:00",
            "Mon-Fri",
        ] {
            assert!(Window::parse(text).is_err(), "{text}");
        }
    }
}

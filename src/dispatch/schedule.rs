//! Scheduling: the earliest slot that fits a vendor's hours and daily capacity and the
//! tenant's availability, checked against the SLA's on-site time. Pure functions of their
//! inputs and the current time.

use std::collections::HashMap;

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;

use super::hours::{self, Window};

/// Candidate start times are this many minutes apart, in UTC, so that a slot starts on a
/// quarter hour in every time zone with whole or quarter-hour offsets.
pub const STEP_MINUTES: i64 = 15;

/// A vendor's hours, capacity and bookings, as scheduling uses them.
#[derive(Debug, Clone)]
pub struct VendorCalendar<'a> {
    pub hours: &'a [Window],
    pub time_zone: Tz,
    /// Jobs per local day.
    pub daily_capacity: u32,
    /// Jobs already booked per local date of the vendor.
    pub booked: &'a HashMap<NaiveDate, u32>,
}

/// When the vendor may come into the unit.
#[derive(Debug, Clone, Copy)]
pub struct TenantAccess<'a> {
    /// Local windows when someone is home; empty means any time.
    pub availability: &'a [Window],
    /// Whether the vendor may enter when the tenant is out, which lifts `availability`.
    pub permission_to_enter: bool,
    /// The building's time zone, in which `availability` is written.
    pub time_zone: Tz,
}

impl TenantAccess<'_> {
    /// Access for a ticket without a tenant, such as one from a plant-room sensor.
    pub fn unrestricted(time_zone: Tz) -> TenantAccess<'static> {
        TenantAccess {
            availability: &[],
            permission_to_enter: true,
            time_zone,
        }
    }
}

/// A booked or proposed visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Whether the visit starts no later than the SLA's on-site time.
    pub meets_sla: bool,
}

/// Returns the earliest slot of `job_minutes` starting after `now_ms` and within
/// `horizon_days`, or `None` when the vendor has no room in that time. The slot may miss
/// `onsite_due_ms`, which `meets_sla` records, and the caller escalates.
pub fn earliest_slot(
    vendor: &VendorCalendar<'_>,
    tenant: TenantAccess<'_>,
    now_ms: i64,
    job_minutes: u32,
    onsite_due_ms: i64,
    horizon_days: u32,
) -> Option<Slot> {
    let step_ms = STEP_MINUTES * 60_000;
    let search = SlotSearch {
        windows: vendor.hours,
        time_zone: vendor.time_zone,
        whole_visit: true,
        capacity: Some((vendor.daily_capacity, vendor.booked)),
        tenant,
        first_ms: now_ms.div_euclid(step_ms) * step_ms + step_ms,
        last_ms: now_ms + i64::from(horizon_days) * 86_400_000,
    };
    search.run(job_minutes, onsite_due_ms)
}

/// Returns the slot of an emergency: the on-call vendor is sent at once, whatever the tenant's
/// availability and the day's capacity, when `on_call` covers `now_ms`.
pub fn emergency_slot(
    on_call: &[Window],
    time_zone: Tz,
    now_ms: i64,
    job_minutes: u32,
    onsite_due_ms: i64,
) -> Option<Slot> {
    let search = SlotSearch {
        windows: on_call,
        time_zone,
        whole_visit: false,
        capacity: None,
        tenant: TenantAccess::unrestricted(time_zone),
        first_ms: now_ms,
        last_ms: now_ms,
    };
    search.run(job_minutes, onsite_due_ms)
}

/// One search for a slot. Booked work and emergencies differ only in these fields.
struct SlotSearch<'a> {
    /// The vendor's windows, in the local time of `time_zone`.
    windows: &'a [Window],
    time_zone: Tz,
    /// Whether the whole visit must lie in one window, as booked work must. An on-call
    /// vendor needs only the start in a window, because it stays until the job is done.
    whole_visit: bool,
    /// Jobs per local day and the jobs booked per local date; `None` when capacity does not
    /// apply.
    capacity: Option<(u32, &'a HashMap<NaiveDate, u32>)>,
    tenant: TenantAccess<'a>,
    /// First candidate start.
    first_ms: i64,
    /// Last candidate start; candidates are [`STEP_MINUTES`] apart.
    last_ms: i64,
}

impl SlotSearch<'_> {
    /// Returns the first free candidate as a slot of `job_minutes`.
    fn run(&self, job_minutes: u32, onsite_due_ms: i64) -> Option<Slot> {
        let step_ms = STEP_MINUTES * 60_000;
        let mut start = self.first_ms;
        while start <= self.last_ms {
            if self.is_free(start, job_minutes) {
                return Some(Slot {
                    start_ms: start,
                    end_ms: start + i64::from(job_minutes) * 60_000,
                    meets_sla: start <= onsite_due_ms,
                });
            }
            start += step_ms;
        }
        None
    }

    fn is_free(&self, start: i64, minutes: u32) -> bool {
        let in_window = if self.whole_visit {
            hours::fits(self.windows, self.time_zone, start, minutes)
        } else {
            hours::covers(self.windows, self.time_zone, start)
        };
        if !in_window {
            return false;
        }
        if let Some((daily_capacity, booked)) = self.capacity {
            let Some(day) = local_date(self.time_zone, start) else {
                return false;
            };
            if booked.get(&day).copied().unwrap_or(0) >= daily_capacity {
                return false;
            }
        }
        let tenant = &self.tenant;
        tenant.permission_to_enter
            || tenant.availability.is_empty()
            || hours::fits(tenant.availability, tenant.time_zone, start, minutes)
    }
}

/// Returns the local date of an instant in `tz`.
pub fn local_date(tz: Tz, at_ms: i64) -> Option<NaiveDate> {
    tz.timestamp_millis_opt(at_ms)
        .single()
        .map(|local| local.date_naive())
}

/// Returns whether a due time is close enough to escalate: `warn_percent` of the time from
/// `from_ms` to `due_ms` has passed at `now_ms`.
pub fn near_breach(from_ms: i64, due_ms: i64, now_ms: i64, warn_percent: u32) -> bool {
    let span = (due_ms - from_ms).max(0);
    now_ms >= from_ms + span * i64::from(warn_percent) / 100
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDateTime, Timelike};
    use chrono_tz::Europe::Copenhagen;

    fn local_ms(text: &str) -> i64 {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        Copenhagen
            .from_local_datetime(&naive)
            .single()
            .unwrap()
            .timestamp_millis()
    }

    fn utc_ms(text: &str) -> i64 {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
            .unwrap()
            .and_utc()
            .timestamp_millis()
    }

    fn weekdays() -> Vec<Window> {
        vec![Window::parse("Mon-Fri 07:00-16:00").unwrap()]
    }

    #[test]
    fn after_hours_goes_to_next_morning() {
        let hours = weekdays();
        let booked = HashMap::new();
        let vendor = VendorCalendar {
            hours: &hours,
            time_zone: Copenhagen,
            daily_capacity: 4,
            booked: &booked,
        };
        let now = local_ms("2026-06-03 17:10");
        let slot = earliest_slot(
            &vendor,
            TenantAccess::unrestricted(Copenhagen),
            now,
            120,
            now + 86_400_000,
            14,
        )
        .unwrap();
        assert_eq!(slot.start_ms, local_ms("2026-06-04 07:00"));
        assert!(slot.meets_sla);
    }

    #[test]
    fn spring_forward_keeps_local_hours() {
        let hours = weekdays();
        let booked = HashMap::new();
        let vendor = VendorCalendar {
            hours: &hours,
            time_zone: Copenhagen,
            daily_capacity: 4,
            booked: &booked,
        };
        // Friday before the change on Sunday 29 March 2026: CET, UTC+1.
        let now = local_ms("2026-03-27 15:30");
        let slot = earliest_slot(
            &vendor,
            TenantAccess::unrestricted(Copenhagen),
            now,
            120,
            now + 5 * 86_400_000,
            14,
        )
        .unwrap();
        // Monday 07:00 CEST is 05:00 UTC, not 06:00 as it was the week before.
        assert_eq!(slot.start_ms, utc_ms("2026-03-30 05:00"));
    }

    #[test]
    fn fall_back_keeps_local_hours() {
        let hours = weekdays();
        let booked = HashMap::new();
        let vendor = VendorCalendar {
            hours: &hours,
            time_zone: Copenhagen,
            daily_capacity: 4,
            booked: &booked,
        };
        let now = local_ms("2026-10-23 16:30");
        let slot = earliest_slot(
            &vendor,
            TenantAccess::unrestricted(Copenhagen),
            now,
            60,
            now + 5 * 86_400_000,
            14,
        )
        .unwrap();
        assert_eq!(slot.start_ms, utc_ms("2026-10-26 06:00"));
    }

    #[test]
    fn full_day_moves_to_next_day() {
        let hours = weekdays();
        let mut booked = HashMap::new();
        booked.insert(NaiveDate::from_ymd_opt(2026, 6, 4).unwrap(), 2);
        let vendor = VendorCalendar {
            hours: &hours,
            time_zone: Copenhagen,
            daily_capacity: 2,
            booked: &booked,
        };
        let now = local_ms("2026-06-03 17:00");
        let slot = earliest_slot(
            &vendor,
            TenantAccess::unrestricted(Copenhagen),
            now,
            120,
            now + 3_600_000,
            14,
        )
        .unwrap();
        assert_eq!(slot.start_ms, local_ms("2026-06-05 07:00"));
        assert!(!slot.meets_sla);
    }

    #[test]
    fn tenant_availability_limits_slot() {
        let hours = weekdays();
        let booked = HashMap::new();
        let vendor = VendorCalendar {
            hours: &hours,
            time_zone: Copenhagen,
            daily_capacity: 4,
            booked: &booked,
        };
        let home = vec![Window::parse("Mon-Fri 13:00-18:00").unwrap()];
        let tenant = TenantAccess {
            availability: &home,
            permission_to_enter: false,
            time_zone: Copenhagen,
        };
        let now = local_ms("2026-06-03 17:00");
        let slot = earliest_slot(&vendor, tenant, now, 120, now + 86_400_000, 14).unwrap();
        assert_eq!(slot.start_ms, local_ms("2026-06-04 13:00"));
        let entering = TenantAccess {
            permission_to_enter: true,
            ..tenant
        };
        let slot = earliest_slot(&vendor, entering, now, 120, now + 86_400_000, 14).unwrap();
        assert_eq!(slot.start_ms, local_ms("2026-06-04 07:00"));
    }

    #[test]
    fn emergency_needs_on_call_cover() {
        let on_call = vec![Window::parse("Mon-Sun 00:00-24:00").unwrap()];
        // 01:30 UTC is 03:30 CEST, the first hour after the spring change.
        let now = utc_ms("2026-03-29 01:30");
        let slot = emergency_slot(&on_call, Copenhagen, now, 60, now + 3_600_000).unwrap();
        assert_eq!(slot.start_ms, now);
        let daytime = vec![Window::parse("Mon-Fri 07:00-16:00").unwrap()];
        let night = local_ms("2026-06-03 23:00");
        assert!(emergency_slot(&daytime, Copenhagen, night, 60, night).is_none());
        let local = Copenhagen.timestamp_millis_opt(now).unwrap();
        assert_eq!(local.hour(), 3);
    }

    #[test]
    fn emergency_ignores_quarter_hours() {
        let on_call = vec![Window::parse("Mon-Sun 00:00-24:00").unwrap()];
        let now = local_ms("2026-06-03 23:07") + 20_000;
        let slot = emergency_slot(&on_call, Copenhagen, now, 120, now + 3_600_000).unwrap();
        assert_eq!(
            slot.start_ms, now,
            "an emergency starts now, not on a quarter hour"
        );
        assert_eq!(slot.end_ms, now + 120 * 60_000);
        assert!(slot.meets_sla);
        let late = emergency_slot(&on_call, Copenhagen, now, 120, now - 1).unwrap();
        assert!(!late.meets_sla);
    }

    #[test]
    fn near_breach_at_percent() {
        assert!(!near_breach(0, 100, 79, 80));
        assert!(near_breach(0, 100, 80, 80));
        assert!(near_breach(0, 100, 150, 80));
    }
}

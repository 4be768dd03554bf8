//! Calendar periods of the retention rules: hour, day, ISO week, month, year.

use std::fmt;
use std::ops::{Index, IndexMut};

use time::OffsetDateTime;

/// A calendar period of the bucket rules (`keep_hourly` … `keep_yearly`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    /// Every period, in the order restic applies them.
    pub const ALL: [Period; 5] = [
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    /// The period `t` falls in, as a number equal for equal periods: the hour,
    /// day, ISO week (of the ISO week-numbering year), month or year of `t`
    /// in `t`'s own offset.
    pub fn bucket(self, t: OffsetDateTime) -> i64 {
        let (y, m, d, h) = (
            t.year() as i64,
            t.month() as i64,
            t.day() as i64,
            t.hour() as i64,
        );
        match self {
            Period::Hourly => y * 1_000_000 + m * 10_000 + d * 100 + h,
            Period::Daily => y * 10_000 + m * 100 + d,
            Period::Weekly => {
                let (iy, w, _) = t.to_iso_week_date();
                iy as i64 * 100 + w as i64
            }
            Period::Monthly => y * 100 + m,
            Period::Yearly => y,
        }
    }

    /// `hourly` … `yearly`, as in `keep_hourly` and in reasons.
    pub fn name(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One value per [`Period`], indexed by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerPeriod<T>(pub [T; 5]);

impl<T> PerPeriod<T> {
    /// The values in [`Period::ALL`] order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }
}

impl<T> Index<Period> for PerPeriod<T> {
    type Output = T;
    fn index(&self, p: Period) -> &T {
        &self.0[p as usize]
    }
}

impl<T> IndexMut<Period> for PerPeriod<T> {
    fn index_mut(&mut self, p: Period) -> &mut T {
        &mut self.0[p as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn weeks_are_iso_weeks_from_monday() {
        let week = |t| Period::Weekly.bucket(t);
        let sunday = datetime!(2025-12-28 23:59:59 UTC);
        assert_eq!(sunday.weekday(), time::Weekday::Sunday);
        // ISO week 1 of 2026 runs Mon 2025-12-29 .. Sun 2026-01-04.
        assert_eq!(week(sunday), 202552, "Sunday");
        assert_eq!(week(datetime!(2025-12-29 00:00 UTC)), 202601, "Monday");
        assert_eq!(week(datetime!(2026-01-04 23:59:59 UTC)), 202601, "Sunday");
        assert_eq!(week(datetime!(2026-01-05 00:00 UTC)), 202602, "Monday");
        // Thu 2026-12-31 and Fri 2027-01-01 are both in 2026-W53.
        assert_eq!(week(datetime!(2026-12-31 12:00 UTC)), 202653);
        assert_eq!(week(datetime!(2027-01-01 12:00 UTC)), 202653);
        assert_eq!(week(datetime!(2027-01-04 00:00 UTC)), 202701);
    }

    #[test]
    fn buckets_change_at_the_period_boundary() {
        let before = datetime!(2025-12-31 23:59:59 UTC);
        let after = datetime!(2026-01-01 00:00 UTC);
        let expected = [
            (Period::Hourly, 2025123123, 2026010100),
            (Period::Daily, 20251231, 20260101),
            (Period::Monthly, 202512, 202601),
            (Period::Yearly, 2025, 2026),
        ];
        for (p, b, a) in expected {
            assert_eq!((p.bucket(before), p.bucket(after)), (b, a), "{p}");
        }
        let (jan31, feb1) = (
            datetime!(2026-01-31 23:59:59 UTC),
            datetime!(2026-02-01 00:00 UTC),
        );
        assert_eq!(Period::Monthly.bucket(jan31), 202601);
        assert_eq!(Period::Monthly.bucket(feb1), 202602);
        assert_eq!(Period::Yearly.bucket(feb1), Period::Yearly.bucket(jan31));
        let (h13, h14) = (
            datetime!(2026-03-01 13:59:59.999 UTC),
            datetime!(2026-03-01 14:00 UTC),
        );
        assert_eq!(Period::Hourly.bucket(h13), 2026030113);
        assert_eq!(Period::Hourly.bucket(h14), 2026030114);
        assert_eq!(Period::Daily.bucket(h13), Period::Daily.bucket(h14));
        // Within one period, the same bucket.
        for p in Period::ALL {
            let t = datetime!(2026-06-10 10:15 UTC);
            assert_eq!(
                p.bucket(t),
                p.bucket(t + time::Duration::minutes(30)),
                "{p}"
            );
        }
    }
}

//! The retention planner against restic's documented `forget` behaviour, with
//! oracles computed independently of the planner's streaming algorithm.

use std::collections::{BTreeMap, BTreeSet};

use strongroom_core::retention::{plan, PlanPoint, Retention, Rules};
use strongroom_core::Reason;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn rules(json: serde_json::Value) -> Rules {
    let r: Retention = serde_json::from_value(json).unwrap();
    r.rules("retention").unwrap()
}

fn point(id: impl Into<String>, time: OffsetDateTime) -> PlanPoint {
    PlanPoint {
        id: id.into(),
        time,
        completed: true,
        protected: vec![],
    }
}

fn kept(p: &strongroom_core::retention::Plan) -> BTreeSet<String> {
    p.keep.iter().map(|d| d.id.clone()).collect()
}

fn reasons<'a>(p: &'a strongroom_core::retention::Plan, id: &str) -> &'a [Reason] {
    &p.keep
        .iter()
        .chain(&p.delete)
        .find(|d| d.id == id)
        .unwrap()
        .reasons
}

/// Independent oracle for bucket rules when every bucket runs out of counts
/// before the oldest point: the newest point of each of the N newest periods.
fn newest_per_period(
    points: &[PlanPoint],
    n: usize,
    key: impl Fn(OffsetDateTime) -> i64,
) -> BTreeSet<String> {
    let mut periods: BTreeMap<i64, &PlanPoint> = BTreeMap::new();
    for p in points {
        let e = periods.entry(key(p.time)).or_insert(p);
        if p.time > e.time {
            *e = p;
        }
    }
    periods
        .values()
        .rev()
        .take(n)
        .map(|p| p.id.clone())
        .collect()
}

#[test]
fn docs_example_a_century_of_daily_backups() {
    // restic docs: daily backups for 100 years, --keep-daily 7 --keep-weekly 5
    // --keep-monthly 12 --keep-yearly 75 keeps the last 7 days, the last day of
    // the last 5 weeks, of the last 12 months and of the last 75 years.
    let newest = datetime!(2026-11-29 03:00 UTC);
    let points: Vec<PlanPoint> = (0..36_525)
        .map(|i| point(format!("p{i:05}"), newest - Duration::days(i)))
        .collect();
    let r = rules(
        serde_json::json!({"keep_daily": 7, "keep_weekly": 5, "keep_monthly": 12, "keep_yearly": 75}),
    );
    let p = plan(&points, &r, newest + Duration::hours(1));
    let mut want = newest_per_period(&points, 7, |t| {
        t.year() as i64 * 10_000 + t.month() as i64 * 100 + t.day() as i64
    });
    want.extend(newest_per_period(&points, 5, |t| {
        let (y, w, _) = t.to_iso_week_date();
        y as i64 * 100 + w as i64
    }));
    want.extend(newest_per_period(&points, 12, |t| {
        t.year() as i64 * 100 + t.month() as i64
    }));
    want.extend(newest_per_period(&points, 75, |t| t.year() as i64));
    assert_eq!(kept(&p), want);
    assert_eq!(p.keep.len() + p.delete.len(), points.len());
    assert_eq!(
        reasons(&p, "p00000"),
        [
            "daily snapshot",
            "weekly snapshot",
            "monthly snapshot",
            "yearly snapshot",
            "newest completed recovery point of the source"
        ]
    );
    // The yearly snapshots are the last day of each year: Dec 31.
    let yearly_only: Vec<_> = p
        .keep
        .iter()
        .filter(|d| d.reasons == ["yearly snapshot"])
        .collect();
    assert!(yearly_only.len() >= 70);
    for d in yearly_only {
        let t = points.iter().find(|x| x.id == d.id).unwrap().time;
        assert_eq!((t.month() as u8, t.day()), (12, 31), "{}", d.id);
    }
}

#[test]
fn worked_example_in_the_readme() {
    // 30 daily recovery points at 03:00 UTC, 2026-10-31 .. 2026-11-29 (a Sunday),
    // keep_daily 7 + keep_weekly 4.
    let newest = datetime!(2026-11-29 03:00 UTC);
    let points: Vec<PlanPoint> = (0..30)
        .map(|i| {
            let t = newest - Duration::days(i);
            point(format!("{}", t.date()), t)
        })
        .collect();
    let p = plan(
        &points,
        &rules(serde_json::json!({"keep_daily": 7, "keep_weekly": 4})),
        newest + Duration::hours(1),
    );
    let want: BTreeSet<String> = [
        "2026-11-29",
        "2026-11-28",
        "2026-11-27",
        "2026-11-26",
        "2026-11-25",
        "2026-11-24",
        "2026-11-23",
        "2026-11-22",
        "2026-11-15",
        "2026-11-08",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(kept(&p), want);
    assert_eq!(p.delete.len(), 20);
    assert_eq!(reasons(&p, "2026-11-23"), ["daily snapshot"]);
    assert_eq!(reasons(&p, "2026-11-22"), ["weekly snapshot"]);
    assert_eq!(reasons(&p, "2026-11-21"), ["matches no keep rule"]);
}

#[test]
fn a_bucket_with_counts_left_keeps_the_oldest() {
    // restic: "also keep the oldest snapshot if the bucket has some counts left".
    let t = datetime!(2026-11-29 20:00 UTC);
    let points = vec![
        point("evening", t),
        point("morning", t - Duration::hours(12)),
    ];
    let p = plan(&points, &rules(serde_json::json!({"keep_daily": 5})), t);
    assert_eq!(kept(&p).len(), 2);
    assert_eq!(reasons(&p, "morning"), ["daily snapshot"]);
    // Without counts left it goes.
    let p = plan(&points, &rules(serde_json::json!({"keep_daily": 1})), t);
    assert_eq!(
        p.delete.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["morning"]
    );
}

#[test]
fn keep_last_and_minus_one() {
    let t = datetime!(2026-11-29 00:00 UTC);
    let points: Vec<PlanPoint> = (0..6)
        .map(|i| point(format!("p{i}"), t - Duration::hours(i)))
        .collect();
    let p = plan(&points, &rules(serde_json::json!({"keep_last": 3})), t);
    assert_eq!(
        kept(&p),
        ["p0", "p1", "p2"].into_iter().map(String::from).collect()
    );
    assert_eq!(reasons(&p, "p2"), ["last snapshot"]);
    let p = plan(&points, &rules(serde_json::json!({"keep_last": -1})), t);
    assert!(p.delete.is_empty());
    let p = plan(&points, &rules(serde_json::json!({"keep_hourly": -1})), t);
    assert!(p.delete.is_empty());
}

#[test]
fn keep_within_is_relative_to_the_newest_point() {
    // restic: keep all snapshots within the duration of the latest snapshot.
    let latest = datetime!(2026-06-01 12:00 UTC);
    let points = vec![
        point("latest", latest),
        point("47h", latest - Duration::hours(47)),
        point("49h", latest - Duration::hours(49)),
    ];
    // `now` a month later: still relative to the newest point, not to now.
    let p = plan(
        &points,
        &rules(serde_json::json!({"keep_within": "2d"})),
        latest + Duration::days(30),
    );
    assert_eq!(
        kept(&p),
        ["latest", "47h"].into_iter().map(String::from).collect()
    );
    assert_eq!(reasons(&p, "47h"), ["within 2d"]);
}

#[test]
fn keep_within_daily_keeps_one_per_day_inside_the_window() {
    let latest = datetime!(2026-06-10 18:00 UTC);
    let points: Vec<PlanPoint> = (0..40)
        .map(|i| point(format!("p{i:02}"), latest - Duration::hours(6 * i)))
        .collect();
    let p = plan(
        &points,
        &rules(serde_json::json!({"keep_within_daily": "7d"})),
        // restic ignores points that are not before now when it picks the newest.
        latest + Duration::hours(1),
    );
    let cut = latest - Duration::days(7);
    let inside: Vec<PlanPoint> = points.iter().filter(|p| p.time > cut).cloned().collect();
    let want = newest_per_period(&inside, usize::MAX, |t| {
        t.year() as i64 * 10_000 + t.month() as i64 * 100 + t.day() as i64
    });
    assert_eq!(kept(&p), want);
    assert_eq!(reasons(&p, "p04"), ["daily within 7d"]);
    assert_eq!(reasons(&p, "p01"), ["matches no keep rule"]);
}

#[test]
fn weeks_are_iso_weeks_across_the_new_year() {
    // 2026-12-31 (Thu) and 2027-01-01 (Fri) are both in ISO week 2026-W53.
    let a = point("jan1", datetime!(2027-01-01 03:00 UTC));
    let b = point("dec31", datetime!(2026-12-31 03:00 UTC));
    let c = point("dec24", datetime!(2026-12-24 03:00 UTC));
    let p = plan(
        &[a, b, c],
        &rules(serde_json::json!({"keep_weekly": 2})),
        datetime!(2027-01-02 00:00 UTC),
    );
    assert_eq!(
        kept(&p),
        ["jan1", "dec24"].into_iter().map(String::from).collect()
    );
}

#[test]
fn max_age_overrides_the_rules_but_not_the_newest_or_protections() {
    let now = datetime!(2026-11-29 04:00 UTC);
    let mut points: Vec<PlanPoint> = (0..20)
        .map(|i| {
            point(
                format!("d{i:02}"),
                now - Duration::days(i) - Duration::hours(1),
            )
        })
        .collect();
    points[15].protected.push(Reason::Hold);
    let p = plan(
        &points,
        &rules(serde_json::json!({"keep_daily": 30, "max_age": "10d"})),
        now,
    );
    for d in &p.delete {
        assert_eq!(d.reasons, ["older than max_age 10d"]);
    }
    assert_eq!(p.delete.len(), 9, "days 11..19 except the held day 15");
    assert_eq!(reasons(&p, "d15"), ["hold"]);
    // Everything too old: the newest still stays.
    let old: Vec<PlanPoint> = (0..3)
        .map(|i| point(format!("o{i}"), now - Duration::days(100 + i)))
        .collect();
    let p = plan(&old, &rules(serde_json::json!({"max_age": "30d"})), now);
    assert_eq!(kept(&p), ["o0"].into_iter().map(String::from).collect());
    assert_eq!(
        reasons(&p, "o0"),
        ["newest completed recovery point of the source"]
    );
}

#[test]
fn unfinished_points_are_kept_and_not_counted() {
    let t = datetime!(2026-11-29 03:00 UTC);
    let mut pending = point("pending", t);
    pending.completed = false;
    let points = vec![
        pending,
        point("done1", t - Duration::days(1)),
        point("done2", t - Duration::days(2)),
    ];
    let p = plan(&points, &rules(serde_json::json!({"keep_last": 1})), t);
    assert_eq!(
        kept(&p),
        ["pending", "done1"].into_iter().map(String::from).collect()
    );
    assert_eq!(reasons(&p, "pending"), ["not completed"]);
    assert_eq!(p.delete[0].id, "done2");
}

#[test]
fn future_points_do_not_move_the_window() {
    // restic takes `latest` as the newest snapshot that is not in the future.
    let now = datetime!(2026-11-29 00:00 UTC);
    let points = vec![
        point("future", now + Duration::days(10)),
        point("now", now - Duration::hours(1)),
        point("old", now - Duration::days(3)),
    ];
    let p = plan(
        &points,
        &rules(serde_json::json!({"keep_within": "2d"})),
        now,
    );
    assert_eq!(
        kept(&p),
        ["future", "now"].into_iter().map(String::from).collect()
    );
}

#[test]
fn restic_forever_keep_within_yearly_9999y_carries_over() {
    // restic's own test vectors keep "forever" with 9999y: the newest point of
    // every year, however far back.
    let latest = datetime!(2026-06-10 18:00 UTC);
    let points: Vec<PlanPoint> = (0..60)
        .map(|i| point(format!("p{i:02}"), latest - Duration::days(30 * i)))
        .collect();
    let p = plan(
        &points,
        &rules(serde_json::json!({"keep_within_yearly": "9999y"})),
        latest + Duration::hours(1),
    );
    let want = newest_per_period(&points, usize::MAX, |t| t.year() as i64);
    assert_eq!(want.len(), 6, "2021 to 2026");
    assert_eq!(kept(&p), want);
    assert_eq!(reasons(&p, "p06"), ["yearly within 9999y"]);
    assert_eq!(reasons(&p, "p07"), ["matches no keep rule"]);
}

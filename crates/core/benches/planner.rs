//! Planner throughput: 1,000,000 recovery points across 10,000 sources.
//! `make bench` reads the result from target/criterion/planner-1M/new/estimates.json.

use criterion::{criterion_group, criterion_main, Criterion};
use strongroom_core::retention::{plan, PlanPoint, Retention};
use time::macros::datetime;
use time::Duration;

fn estate() -> Vec<Vec<PlanPoint>> {
    let newest = datetime!(2026-11-29 03:00 UTC);
    (0..10_000u32)
        .map(|s| {
            (0..100i64)
                .map(|i| PlanPoint {
                    id: format!("snap-{s:05}-{i:03}"),
                    // Daily points with a per-source offset, a few hours apart across sources.
                    time: newest - Duration::days(i * 3) - Duration::minutes((s % 240) as i64),
                    completed: true,
                    protected: vec![],
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let sources = estate();
    let rules: Retention = serde_json::from_value(serde_json::json!({
        "keep_last": 2, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12, "keep_yearly": 3,
        "keep_within": "2d", "max_age": "400d"
    }))
    .unwrap();
    let rules = rules.rules("retention").unwrap();
    let now = datetime!(2026-11-29 04:00 UTC);
    let mut g = c.benchmark_group("planner");
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(15));
    g.bench_function("planner-1M", |b| {
        b.iter(|| {
            let mut kept = 0usize;
            for points in &sources {
                kept += plan(std::hint::black_box(points), &rules, now).keep.len();
            }
            kept
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

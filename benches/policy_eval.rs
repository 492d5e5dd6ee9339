//! Policy evaluation on the hot path: a realistic ten-criterion policy, compiled once,
//! evaluated for an identity it allows. Baseline in the same run: a public policy.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::api::policy::{Identity, Input, Outcome, Policy, Request, Shorthands};

/// Counts allocations so the bench can check that evaluation makes none.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const POLICY: &str = r#"
- allow:
    and:
      - groups: {has: engineering}
      - domain: {is: example.com}
      - email: {ends_with: "@example.com", not_in: [mallory@example.com, eve@example.com]}
      - http_method: {in: [GET, HEAD, POST]}
      - http_path: {starts_with: /api/}
      - source_ip: [10.0.0.0/8, 192.168.0.0/16, "2001:db8::/32"]
      - day_of_week: mon-fri
      - time_of_day: {timezone: Europe/Paris, after: "07:00", before: "8:30 PM"}
      - claim/org/team: {has: platform}
      - date: {after: "2024-01-01", before: "2030-01-01T00:00:00Z"}
- deny:
    or:
      - groups: {has: contractors}
      - http_path: {starts_with: /api/admin}
"#;

fn identity() -> Identity {
    Identity {
        user: "00u1a2b3c4".into(),
        email: "alice@example.com".into(),
        groups: vec!["everyone".into(), "engineering".into(), "oncall".into()],
        claims: serde_json::json!({
            "org": {"team": ["platform", "sre"]},
            "name": "Alice",
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    }
}

fn bench(c: &mut Criterion) {
    let policy = Policy::from_yaml(POLICY).expect("bench policy compiles");
    let public = Policy::from_shorthands(&Shorthands {
        allow_public_unauthenticated_access: true,
        ..Shorthands::default()
    });
    let id = identity();
    let input = Input {
        identity: Some(&id),
        request: Request {
            method: "GET",
            path: "/api/v1/things",
            host: "app.example.com",
            source_ip: Some("10.20.30.40".parse().unwrap()),
            cors_preflight: false,
        },
        // A Wednesday, 14:00 in Paris.
        now: "2025-06-04T12:00:00Z".parse().unwrap(),
    };
    assert_eq!(policy.evaluate(&input).outcome, Outcome::Allow);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..1000 {
        black_box(black_box(&policy).evaluate(black_box(&input)));
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(
        allocations, 0,
        "evaluate allocated {allocations} times in 1000 calls"
    );

    c.bench_function("policy_eval/ten_criteria_allow", |b| {
        b.iter(|| black_box(&policy).evaluate(black_box(&input)))
    });
    c.bench_function("policy_eval/baseline_public", |b| {
        b.iter(|| black_box(&public).evaluate(black_box(&input)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Deciding an attach review against 20 policies (see `common/mod.rs`), timed by criterion.
//!
//! `cargo bench -p kspy-admission --bench decide`
//!
//! Wall-clock figures on a shared 2-core VM wander by ±30 %; `benches/count.rs` gives the
//! instruction counts behind them, which do not.

mod common;

/// The allocator the webhook ships with (see `webhook/src/main.rs`), so the figures are the
/// webhook's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, criterion_group, criterion_main};
use kspy_admission::{Endpoint, ParsedReview};

fn bench(c: &mut Criterion) {
    let engine = common::engine();
    let namespaces = common::namespaces();
    let body = common::fixture("attach-sre-ptrace.json");
    let review = ParsedReview::from_slice(&body).expect("review");
    let ns = namespaces.get("prod-payments");
    let j = engine.judge(&review, Endpoint::Validate, ns);
    assert!(j.response.allowed, "{}", j.response.result.message);

    c.bench_function("validate attach, 20 policies (parsed review)", |b| {
        b.iter(|| engine.judge(std::hint::black_box(&review), Endpoint::Validate, ns))
    });
    c.bench_function("mutate attach, 20 policies (parsed review)", |b| {
        b.iter(|| engine.judge(std::hint::black_box(&review), Endpoint::Mutate, ns))
    });
    c.bench_function("parse attach review (from bytes)", |b| {
        b.iter(|| ParsedReview::from_slice(std::hint::black_box(&body)).expect("review"))
    });
    c.bench_function(
        "validate attach, 20 policies (from bytes, response encoded)",
        |b| {
            b.iter(|| {
                let r = ParsedReview::from_slice(std::hint::black_box(&body)).expect("review");
                let j = engine.judge(&r, Endpoint::Validate, ns);
                j.encode().expect("encode")
            })
        },
    );
    let plain = common::fixture("create-plain-pod.json");
    c.bench_function("not a debug request (from bytes)", |b| {
        b.iter(|| {
            let r = ParsedReview::from_slice(std::hint::black_box(&plain)).expect("review");
            engine.judge(&r, Endpoint::Validate, None)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

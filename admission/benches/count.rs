//! Runs one stage of deciding a review a given number of times, for instruction counting:
//! the difference between two runs under callgrind, divided by the difference in runs, is the
//! cost of one review, free of the timing noise of a shared VM.
//!
//! ```text
//! cargo bench -p kspy-admission --bench count --no-run
//! B=$(ls -t target/release/deps/count-* | grep -v '\.d$' | head -1)
//! for n in 0 1000; do valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n $B validate $n; done
//! ```
//! Stages: `parse`, `validate`, `mutate`, `full` (parse + validate + encode), `plain` (a
//! non-debug pod create from bytes).

mod common;

/// The allocator the webhook ships with (see `webhook/src/main.rs`), so the figures are the
/// webhook's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use kspy_admission::{Endpoint, ParsedReview};

fn main() {
    let mut args = std::env::args().skip(1);
    let stage = args.next().unwrap_or_else(|| "validate".into());
    // `cargo bench` passes `--bench`; anything that is not a count means "a few".
    let runs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);
    let engine = common::engine();
    let namespaces = common::namespaces();
    let ns = namespaces.get("prod-payments");
    let body = common::fixture("attach-sre-ptrace.json");
    let plain = common::fixture("create-plain-pod.json");
    let review = ParsedReview::from_slice(&body).expect("review");
    for _ in 0..runs {
        match stage.as_str() {
            "parse" => {
                std::hint::black_box(ParsedReview::from_slice(std::hint::black_box(&body)))
                    .expect("review");
            }
            "validate" => {
                std::hint::black_box(engine.judge(&review, Endpoint::Validate, ns));
            }
            "mutate" => {
                std::hint::black_box(engine.judge(&review, Endpoint::Mutate, ns));
            }
            "full" => {
                let r = ParsedReview::from_slice(std::hint::black_box(&body)).expect("review");
                let j = engine.judge(&r, Endpoint::Validate, ns);
                std::hint::black_box(j.encode().expect("encode"));
            }
            "plain" => {
                let r = ParsedReview::from_slice(std::hint::black_box(&plain)).expect("review");
                std::hint::black_box(engine.judge(&r, Endpoint::Validate, None));
            }
            other => {
                eprintln!("unknown stage {other:?}: parse, validate, mutate, full or plain");
                std::process::exit(2);
            }
        }
    }
}

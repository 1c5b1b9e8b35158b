//! Without traces, reading a request's W3C trace context costs nothing: no allocation on the
//! review's path. (Its own test binary: it counts allocations with its own global allocator.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use axum::http::{HeaderMap, HeaderValue};

/// The system allocator, counting this thread's allocations.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the count is a
// thread-local cell that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn without_traces_a_traceparent_is_not_even_read() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
    headers.insert("tracestate", HeaderValue::from_static("vendor=value"));
    let span = tracing::info_span!("review", otel.kind = "server");
    let before = ALLOCATIONS.with(Cell::get);
    for _ in 0..100 {
        kspy_webhook::telemetry::adopt_remote_parent(&span, &headers);
    }
    assert_eq!(ALLOCATIONS.with(Cell::get) - before, 0);
}

//! What recording one command costs, per way of doing it (release build, one thread):
//!
//! ```sh
//! cargo test --release -p autocache-telemetry --test cost -- --ignored --nocapture
//! ```
//!
//! Not a correctness test: it prints nanoseconds per operation and checks only that every
//! observation was counted.

use std::hint::black_box;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use membership::command::lookup;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use telemetry::stats::{AtomicHistogram, CommandStats, LATENCY_BOUNDS_NS, LocalStats, slot_of};

const N: u64 = 5_000_000;

fn per_op(label: &str, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    let ns = t.elapsed().as_nanos() as f64 / N as f64;
    println!("{label:<58} {ns:>7.1} ns/op");
    ns
}

#[test]
#[ignore = "a measurement; run with --release --ignored --nocapture"]
fn cost_of_recording_a_command() {
    let get = slot_of(lookup(b"get").map(|c| c.id));
    per_op("Instant::now()", || {
        for _ in 0..N {
            black_box(Instant::now());
        }
    });

    let stats = CommandStats::default();
    per_op(
        "LocalStats::record, flushed every 16 (pipelined batch)",
        || {
            let mut l = LocalStats::default();
            for i in 0..N {
                l.record(
                    &stats,
                    black_box(get),
                    true,
                    Some(black_box(20_000 + i % 1000)),
                );
                if i % 16 == 15 {
                    l.flush(&stats);
                }
            }
            l.flush(&stats);
        },
    );
    per_op(
        "LocalStats::record, flushed every command (no pipelining)",
        || {
            let mut l = LocalStats::default();
            for i in 0..N {
                l.record(
                    &stats,
                    black_box(get),
                    true,
                    Some(black_box(20_000 + i % 1000)),
                );
                l.flush(&stats);
            }
        },
    );
    let c = stats.get("get").expect("get");
    assert_eq!(c.ok.load(Relaxed), 2 * N);
    assert_eq!(c.latency.count(), 2 * N);

    let h = AtomicHistogram::new(&LATENCY_BOUNDS_NS);
    per_op("AtomicHistogram::record (shared atomics)", || {
        for i in 0..N {
            h.record(black_box(20_000 + i % 1000));
        }
    });
    assert_eq!(h.count(), N);

    let provider = SdkMeterProvider::builder().build();
    let meter = provider.meter("cost");
    let hist = meter
        .f64_histogram("latency")
        .with_boundaries(LATENCY_BOUNDS_NS.iter().map(|b| *b as f64 / 1e9).collect())
        .build();
    let counter = meter.u64_counter("commands").build();
    let attrs = [KeyValue::new("cmd", "get"), KeyValue::new("status", "ok")];
    let cmd_only = [KeyValue::new("cmd", "get")];
    per_op("OTel Histogram::record, pre-built attribute slice", || {
        for i in 0..N {
            hist.record(black_box(20e-6 + (i % 1000) as f64 * 1e-9), &cmd_only);
        }
    });
    per_op(
        "OTel Counter::add + Histogram::record (one command)",
        || {
            for i in 0..N {
                counter.add(1, &attrs);
                hist.record(black_box(20e-6 + (i % 1000) as f64 * 1e-9), &cmd_only);
            }
        },
    );
    let _ = provider.shutdown();
    black_box(Duration::ZERO);
}

//! B2(c) of `scripts/bench`: µs per call of `verify_delivery` (shared's Standard Webhooks
//! verification), native, for 1 KB, 16 KB and 256 KB bodies. Prints one JSON object,
//! `{"1024": µs, "16384": µs, "262144": µs}`. Run with `--release`, as `scripts/bench` does.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shared::WebhookSecret;
use signature_wasm::verify_delivery;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SIZES: [usize; 3] = [1024, 16 * 1024, 256 * 1024];
const NOW: i64 = 1_800_000_000;

/// Warms up for 0.2 s, then times whole calls for at least 0.5 s (and at least 10 calls), as
/// `bench/signature.ts` does.
fn micros_per_call(verify: impl Fn() -> bool) -> f64 {
    let warm_up = Instant::now();
    while warm_up.elapsed() < Duration::from_millis(200) {
        assert!(verify(), "a valid signature was refused");
    }
    let started = Instant::now();
    let mut calls = 0u32;
    while calls < 10 || started.elapsed() < Duration::from_millis(500) {
        black_box(verify());
        calls += 1;
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
}

fn main() {
    let secret = WebhookSecret::parse(SECRET).expect("a valid secret");
    let mut figures = Vec::new();
    for size in SIZES {
        let body = vec![b'x'; size];
        let timestamp = NOW.to_string();
        let signature = secret.sign("msg_bench", NOW, &body);
        let verify = || {
            verify_delivery(
                black_box(SECRET),
                black_box("msg_bench"),
                black_box(&timestamp),
                black_box(&signature),
                black_box(&body),
                black_box(NOW as f64),
            )
        };
        let micros = micros_per_call(verify);
        figures.push(format!("\"{size}\": {micros:.3}"));
    }
    println!("{{{}}}", figures.join(", "));
}

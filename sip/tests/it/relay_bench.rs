//! The relay measurement, ignored by default (it loads the machine):
//! `cargo test --release -p sip --test it relay_sweep -- --ignored --nocapture`
//! with `CENTRALINO_BENCH_CALLS=100,200,400` and `CENTRALINO_BENCH_SECS=5`.
//! For each step it runs the bare `recvmmsg`/`sendmmsg` relay and ours in
//! the same process and prints both reports (see `sip::bench`).

use sip::bench::{self, Relay};

#[test]
#[ignore]
fn relay_sweep() {
    let calls: Vec<usize> = std::env::var("CENTRALINO_BENCH_CALLS").unwrap_or_else(|_| "50,100,200".into()).split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let secs: f64 = std::env::var("CENTRALINO_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    for n in calls {
        for relay in [Relay::Mmsg, Relay::Centralino] {
            let r = bench::relay(relay, n, secs).unwrap();
            println!("{r}");
        }
    }
}

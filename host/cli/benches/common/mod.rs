//! What several benchmarks share: timing two sides fairly on a machine whose
//! speed drifts (a shared VM), and a moto server on loopback.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `timed` `iters` times, each run after one untimed run of `other`, and
/// returns the time `timed` took.
pub fn in_turns(iters: u64, timed: &dyn Fn(), other: &dyn Fn()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        other();
        let start = Instant::now();
        timed();
        total += start.elapsed();
    }
    total
}

/// The `a`/`b` ratio measured in pairs, robust to a machine whose speed drifts:
/// each of `rounds` rounds times `per_round` calls of each side, alternating,
/// and yields one ratio; the median ratio and the median time per call of each
/// side (named by `names`) are printed.
pub fn paired(
    label: &str,
    names: (&str, &str),
    rounds: usize,
    per_round: u32,
    a: &dyn Fn(),
    b: &dyn Fn(),
) {
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    let (mut ratios, mut ta, mut tb) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (mut da, mut db) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..per_round {
            da += time(a);
            db += time(b);
        }
        ratios.push(da.as_secs_f64() / db.as_secs_f64());
        ta.push(da.as_secs_f64() / f64::from(per_round));
        tb.push(db.as_secs_f64() / f64::from(per_round));
    }
    let at = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let (na, nb) = names;
    println!(
        "{label} in pairs: {na} {:.1} µs, {nb} {:.1} µs (medians per call); \
         {na}/{nb} {:.3} (median of {rounds} rounds; quartiles {:.3}–{:.3})",
        at(&mut ta, 0.5) * 1e6,
        at(&mut tb, 0.5) * 1e6,
        at(&mut ratios, 0.5),
        at(&mut ratios, 0.25),
        at(&mut ratios, 0.75),
    );
}

/// A moto server on a free loopback port, stopped when dropped; `.1` is its URL.
pub struct Moto(Child, pub String);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts moto and waits until it accepts connections.
pub fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server on PATH (tests/setup)");
    let moto = Moto(child, format!("http://127.0.0.1:{port}"));
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return moto;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto did not start on port {port}");
}

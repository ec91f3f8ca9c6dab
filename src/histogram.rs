//! A lock-free latency histogram in Prometheus' cumulative-bucket form, for
//! `/metrics`: the hot path only adds to atomics.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds in seconds.
pub const BUCKETS: [f64; 9] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, took: Duration) {
        let secs = took.as_secs_f64();
        // Cumulative: an observation counts in every bucket whose bound it is under.
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_us.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the histogram as Prometheus text: HELP, TYPE, buckets, sum, count.
    pub fn write_prometheus(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count();
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_sum_is_in_seconds() {
        let h = Histogram::default();
        h.record(Duration::from_micros(500));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(2));
        let mut out = String::new();
        h.write_prometheus(&mut out, "t_seconds", "test");
        assert!(out.starts_with("# HELP t_seconds test\n# TYPE t_seconds histogram\n"));
        assert!(out.contains("t_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(out.contains("t_seconds_bucket{le=\"0.0025\"} 1\n"));
        assert!(out.contains("t_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(out.contains("t_seconds_bucket{le=\"1\"} 2\n"));
        assert!(out.contains("t_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("t_seconds_sum 2.0035\n"));
        assert!(out.ends_with("t_seconds_count 3\n"));
    }
}

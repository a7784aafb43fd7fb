//! Percentiles and small number helpers.

/// Latency summary in milliseconds (to the µs).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// The nearest-rank percentile of sorted data: the smallest value such that at least
/// `p` percent of the values are less than or equal to it. `p` in (0, 100].
/// `None` for no data.
pub fn percentile_sorted<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let n = sorted.len();
    // rank = ceil(p/100 * n), at least 1. Computed in integers where possible so that
    // e.g. p=90, n=10 gives exactly rank 9 (floating point would give 9.000000000000002).
    let scaled = p * n as f64 / 100.0;
    let mut rank = scaled.ceil() as usize;
    if (scaled - scaled.round()).abs() < 1e-9 {
        rank = scaled.round() as usize;
    }
    let rank = rank.clamp(1, n);
    Some(sorted[rank - 1])
}

/// Sorts `micros` in place and summarises it in milliseconds.
pub fn summarize_micros(micros: &mut [u32]) -> Option<Summary> {
    if micros.is_empty() {
        return None;
    }
    micros.sort_unstable();
    let ms = |v: u32| v as f64 / 1000.0;
    let sum: u64 = micros.iter().map(|&v| v as u64).sum();
    Some(Summary {
        count: micros.len(),
        p50: ms(percentile_sorted(micros, 50.0)?),
        p90: ms(percentile_sorted(micros, 90.0)?),
        p99: ms(percentile_sorted(micros, 99.0)?),
        max: ms(*micros.last()?),
        mean: round(sum as f64 / micros.len() as f64 / 1000.0, 3),
    })
}

/// Events (or anything) per second; 0 when the interval is empty.
pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Rounds to `digits` decimals (for readable JSON).
pub fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile_sorted(&v, 50.0), Some(5));
        assert_eq!(percentile_sorted(&v, 90.0), Some(9));
        assert_eq!(percentile_sorted(&v, 99.0), Some(10));
        assert_eq!(percentile_sorted(&v, 100.0), Some(10));
        assert_eq!(percentile_sorted(&v, 0.0), Some(1));
        assert_eq!(percentile_sorted(&v, 10.0), Some(1));
        assert_eq!(percentile_sorted(&v, 11.0), Some(2));
    }

    #[test]
    fn hundred_values() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile_sorted(&v, 50.0), Some(50));
        assert_eq!(percentile_sorted(&v, 90.0), Some(90));
        assert_eq!(percentile_sorted(&v, 99.0), Some(99));
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile_sorted(&v, 99.0), Some(990));
        assert_eq!(percentile_sorted(&v, 99.9), Some(999));
    }

    #[test]
    fn small_and_empty() {
        assert_eq!(percentile_sorted::<u32>(&[], 50.0), None);
        assert_eq!(percentile_sorted(&[7u32], 50.0), Some(7));
        assert_eq!(percentile_sorted(&[7u32], 99.0), Some(7));
        assert_eq!(percentile_sorted(&[1u32, 2], 50.0), Some(1));
        assert_eq!(percentile_sorted(&[1u32, 2], 51.0), Some(2));
    }

    #[test]
    fn summary_sorts_and_converts() {
        let mut v: Vec<u32> = vec![5000, 1000, 3000, 2000, 4000];
        let s = summarize_micros(&mut v).unwrap();
        assert_eq!(s.count, 5);
        assert_eq!(s.p50, 3.0);
        assert_eq!(s.p90, 5.0);
        assert_eq!(s.p99, 5.0);
        assert_eq!(s.max, 5.0);
        assert_eq!(s.mean, 3.0);
        assert!(summarize_micros(&mut []).is_none());
    }

    #[test]
    fn rates_and_rounding() {
        assert_eq!(rate(100, 2.0), 50.0);
        assert_eq!(rate(100, 0.0), 0.0);
        assert_eq!(round(1.23456, 2), 1.23);
    }
}

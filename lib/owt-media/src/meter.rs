//! Counters of one track: packets and bytes so far, and the bitrate over the last second
//! (the previous complete one-second window, so the value does not jitter with each packet).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    pub packets: u64,
    pub bytes: u64,
    window_start: Option<Instant>,
    window_bytes: u64,
    last_rate_bps: f64,
}

const WINDOW: Duration = Duration::from_secs(1);

impl RateMeter {
    pub fn new() -> RateMeter {
        RateMeter::default()
    }

    /// Counts a packet of `bytes` at `now`.
    pub fn record(&mut self, bytes: usize, now: Instant) {
        self.record_packets(1, bytes, now);
    }

    /// Counts `packets` packets of `bytes` in all at `now`.
    pub fn record_packets(&mut self, packets: u64, bytes: usize, now: Instant) {
        self.roll(now);
        self.packets += packets;
        self.bytes += bytes as u64;
        self.window_bytes += bytes as u64;
    }

    fn roll(&mut self, now: Instant) {
        match self.window_start {
            None => self.window_start = Some(now),
            Some(start) => {
                let elapsed = now.saturating_duration_since(start);
                if elapsed >= WINDOW {
                    self.last_rate_bps = if elapsed >= 2 * WINDOW {
                        0.0
                    } else {
                        self.window_bytes as f64 * 8.0 / elapsed.as_secs_f64()
                    };
                    self.window_bytes = 0;
                    self.window_start = Some(now);
                }
            }
        }
    }

    /// Bits per second over the last complete window (0 if the track went quiet).
    pub fn bitrate_bps(&mut self, now: Instant) -> f64 {
        self.roll(now);
        self.last_rate_bps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrate_over_a_second() {
        let t0 = Instant::now();
        let mut m = RateMeter::new();
        for i in 0..100 {
            m.record(1000, t0 + Duration::from_millis(i * 10));
        }
        m.record(1000, t0 + Duration::from_millis(1000));
        assert_eq!((m.packets, m.bytes), (101, 101_000));
        let rate = m.bitrate_bps(t0 + Duration::from_millis(1500));
        assert!((rate - 800_000.0).abs() < 1.0, "{rate}");
        assert_eq!(m.bitrate_bps(t0 + Duration::from_secs(5)), 0.0, "quiet track");
    }

    #[test]
    fn a_batch_counts_as_its_packets() {
        let t0 = Instant::now();
        let (mut one_by_one, mut batched) = (RateMeter::new(), RateMeter::new());
        for i in 0..25 {
            let at = t0 + Duration::from_millis(i * 40);
            for _ in 0..4 {
                one_by_one.record(1200, at);
            }
            batched.record_packets(4, 4800, at);
        }
        assert_eq!((batched.packets, batched.bytes), (one_by_one.packets, one_by_one.bytes));
        let later = t0 + Duration::from_millis(1500);
        assert_eq!(batched.bitrate_bps(later), one_by_one.bitrate_bps(later));
    }
}

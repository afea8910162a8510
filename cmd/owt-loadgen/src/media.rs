//! Synthetic 720p-like VP8 RTP and what the receivers measure. Every packet's payload ends
//! with a trailer (magic, publisher index, sequence, send time in µs of CLOCK_MONOTONIC) so a
//! subscriber in the same process computes one-way latency on the same host clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const MAGIC: u32 = 0x4f57_544c; // "OWTL"
/// Trailer size: magic u32, publisher u32, sequence u64, send time u64.
pub const TRAILER: usize = 24;

/// Microseconds of CLOCK_MONOTONIC (host-wide, not just this process).
pub fn now_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// A VP8 RTP payload of `size` bytes (at least the descriptor, header and trailer). The
/// first packet of a frame carries the VP8 payload descriptor's S bit and a frame header,
/// a 1280x720 keyframe header when `keyframe`.
pub fn vp8_payload(size: usize, first: bool, keyframe: bool, publisher: u32, seq: u64, send_us: u64) -> Vec<u8> {
    let size = size.max(1 + 10 + TRAILER);
    let mut p = Vec::with_capacity(size);
    if first {
        p.push(0x10);
        // Frame tag: bit 0 = 0 for a keyframe, show_frame (bit 4), first partition size.
        p.extend_from_slice(&[if keyframe { 0x10 } else { 0x11 }, 0x40, 0x00]);
        if keyframe {
            p.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02]);
        }
    } else {
        p.push(0x00);
    }
    p.resize(size - TRAILER, 0xab);
    p.extend_from_slice(&MAGIC.to_be_bytes());
    p.extend_from_slice(&publisher.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&send_us.to_be_bytes());
    p
}

/// (publisher, sequence, send time) of a payload made by `vp8_payload`; None for others.
pub fn parse_trailer(payload: &[u8]) -> Option<(u32, u64, u64)> {
    let t = payload.get(payload.len().checked_sub(TRAILER)?..)?;
    let magic = u32::from_be_bytes(t[0..4].try_into().ok()?);
    if magic != MAGIC {
        return None;
    }
    let publisher = u32::from_be_bytes(t[4..8].try_into().ok()?);
    let seq = u64::from_be_bytes(t[8..16].try_into().ok()?);
    let sent = u64::from_be_bytes(t[16..24].try_into().ok()?);
    Some((publisher, seq, sent))
}

/// The measurement window in send time: packets sent in [start, end) count.
#[derive(Default)]
pub struct Window {
    start: AtomicU64,
    end: AtomicU64,
}

impl Window {
    pub fn new() -> Window {
        Window { start: AtomicU64::new(u64::MAX), end: AtomicU64::new(u64::MAX) }
    }
    pub fn open(&self, at: u64) {
        self.start.store(at, Ordering::SeqCst);
    }
    pub fn close(&self, at: u64) {
        self.end.store(at, Ordering::SeqCst);
    }
    pub fn contains(&self, t: u64) -> bool {
        t >= self.start.load(Ordering::Relaxed) && t < self.end.load(Ordering::Relaxed)
    }
}

/// A received packet as the wire names it (its SSRC and sequence number on the subscriber's
/// leg) and the publisher packet it is a copy of (trailer), for matching wire timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub ssrc: u32,
    pub sequence_number: u16,
    pub publisher: u32,
    pub publisher_seq: u64,
}

/// How many of one subscriber's `arrivals` (in the order they arrived) came after a later
/// packet of the same publisher: packets the server (or the way back) reordered.
pub fn out_of_order(arrivals: &[Arrival]) -> u64 {
    let mut newest: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    let mut count = 0;
    for arrival in arrivals {
        let newest = newest.entry(arrival.publisher).or_insert(arrival.publisher_seq);
        if arrival.publisher_seq < *newest {
            count += 1;
        } else {
            *newest = arrival.publisher_seq;
        }
    }
    count
}

/// What one subscriber received of its publisher's packets sent inside the window.
#[derive(Default)]
pub struct Received {
    pub packets: AtomicU64,
    /// Every packet, window or not (to tell "nothing arrives" from "arrived outside").
    pub total: AtomicU64,
    pub latencies_us: Mutex<Vec<u32>>,
    pub arrivals: Mutex<Vec<Arrival>>,
}

impl Received {
    /// A packet that arrived at `now` with this RTP `ssrc` and `sequence_number`.
    pub fn record(&self, window: &Window, ssrc: u32, sequence_number: u16, payload: &[u8], now: u64) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let Some((publisher, publisher_seq, sent)) = parse_trailer(payload) else { return };
        if !window.contains(sent) {
            return;
        }
        self.packets.fetch_add(1, Ordering::Relaxed);
        let latency = now.saturating_sub(sent).min(u32::MAX as u64) as u32;
        if let Ok(mut l) = self.latencies_us.lock() {
            l.push(latency);
        }
        if let Ok(mut a) = self.arrivals.lock() {
            a.push(Arrival { ssrc, sequence_number, publisher, publisher_seq });
        }
    }
}

/// The q-quantile (0..=1) of sorted samples (the default value when there are none).
pub fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trip() {
        let p = vp8_payload(1200, true, true, 7, 42, 123_456);
        assert_eq!(p.len(), 1200);
        assert_eq!(p[0], 0x10);
        assert_eq!(parse_trailer(&p), Some((7, 42, 123_456)));
        assert_eq!(parse_trailer(&p[..10]), None);
        assert_eq!(parse_trailer(&[0u8; 40]), None);
    }

    #[test]
    fn window_and_quantiles() {
        let w = Window::new();
        w.open(100);
        w.close(200);
        let r = Received::default();
        r.record(&w, 9, 70, &vp8_payload(100, false, false, 0, 1, 150), 160);
        r.record(&w, 9, 71, &vp8_payload(100, false, false, 0, 2, 250), 260);
        assert_eq!(r.packets.load(Ordering::Relaxed), 1);
        assert_eq!(r.total.load(Ordering::Relaxed), 2);
        assert_eq!(*r.latencies_us.lock().unwrap(), vec![10]);
        let arrival = Arrival { ssrc: 9, sequence_number: 70, publisher: 0, publisher_seq: 1 };
        assert_eq!(*r.arrivals.lock().unwrap(), vec![arrival]);
        assert_eq!(quantile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5), 6);
        assert_eq!(quantile::<u32>(&[], 0.5), 0);
    }

    #[test]
    fn packets_that_arrive_after_a_later_one_are_out_of_order() {
        let arrival =
            |publisher: u32, publisher_seq: u64| Arrival { ssrc: 1, sequence_number: 0, publisher, publisher_seq };
        assert_eq!(out_of_order(&[]), 0);
        assert_eq!(out_of_order(&[arrival(0, 1), arrival(0, 2), arrival(0, 4)]), 0, "a gap is loss, not order");
        let arrivals = [arrival(0, 1), arrival(0, 3), arrival(0, 2), arrival(1, 0), arrival(0, 4), arrival(0, 3)];
        assert_eq!(out_of_order(&arrivals), 2);
    }
}

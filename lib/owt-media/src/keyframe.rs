//! The rate limit of keyframe requests sent upstream. Every subscriber of a track may ask for
//! a keyframe (PLI/FIR) when it joins or loses packets; the publisher should get at most one
//! request per interval. A request refused inside the interval is remembered and granted
//! when the interval ends ([`KeyframeLimiter::due`]), so the last subscriber asking is not
//! left without a keyframe.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct KeyframeLimiter {
    interval: Duration,
    last_sent: Option<Instant>,
    pending: bool,
    sent: u64,
    suppressed: u64,
}

impl KeyframeLimiter {
    pub fn new(interval: Duration) -> KeyframeLimiter {
        KeyframeLimiter { interval, last_sent: None, pending: false, sent: 0, suppressed: 0 }
    }

    /// A subscriber asks for a keyframe at `now`: true if a request goes upstream now.
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last_sent {
            Some(at) if now.saturating_duration_since(at) < self.interval => {
                self.pending = true;
                self.suppressed += 1;
                false
            }
            _ => {
                self.grant(now);
                true
            }
        }
    }

    /// A suppressed request whose interval is over: true if one goes upstream now.
    pub fn due(&mut self, now: Instant) -> bool {
        if !self.pending {
            return false;
        }
        match self.last_sent {
            Some(at) if now.saturating_duration_since(at) < self.interval => false,
            _ => {
                self.grant(now);
                true
            }
        }
    }

    fn grant(&mut self, now: Instant) {
        self.last_sent = Some(now);
        self.pending = false;
        self.sent += 1;
    }

    /// Requests sent upstream and suppressed so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.sent, self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_interval_and_the_last_is_kept() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut k = KeyframeLimiter::new(ms(500));
        assert!(!k.due(t0));
        assert!(k.request(t0));
        assert!(!k.request(t0 + ms(10)));
        assert!(!k.request(t0 + ms(499)));
        assert!(!k.due(t0 + ms(499)));
        assert!(k.due(t0 + ms(500)));
        assert!(!k.due(t0 + ms(2000)), "granted once");
        assert!(k.request(t0 + ms(1001)));
        assert_eq!(k.counts(), (3, 2));
    }
}

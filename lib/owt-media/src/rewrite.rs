//! SSRC / sequence number / timestamp rewriting of one forwarded stream (one subscriber
//! m-line). The subscriber sees a single stream with its own SSRC whose sequence numbers
//! have no gap and whose timestamps keep advancing, whatever happens upstream: the source
//! changes SSRC (publisher restarts, simulcast layer switch), or forwarding pauses and
//! resumes. Packet loss upstream stays visible as a gap, so the subscriber can NACK it.

use std::time::Instant;

/// Header fields of a packet to send to the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub ssrc: u32,
    pub sequence_number: u16,
    pub timestamp: u32,
}

/// Where a packet the subscriber was sent came from (`StreamRewriter::original`): the source's
/// SSRC and sequence number, and what was added to the source's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original {
    pub source_ssrc: u32,
    pub sequence_number: u16,
    pub timestamp_offset: u32,
}

#[derive(Debug, Clone, Copy)]
struct Base {
    source_ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
    /// Output sequence number of the first packet of this base.
    first_out: u16,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    sequence_number: u16,
    timestamp: u32,
    at: Instant,
}

/// The rewriting state of one outgoing stream.
#[derive(Debug, Clone)]
pub struct StreamRewriter {
    ssrc: u32,
    clock_rate: u32,
    base: Option<Base>,
    /// The base before `base`: NACKs may still name its packets.
    previous_base: Option<Base>,
    /// The source switched away from: its late packets are dropped, not switched back to.
    previous_source: Option<u32>,
    last: Option<Last>,
    rebase: bool,
    forwarded: u64,
    dropped: u64,
}

/// `a` is after `b` in RTP sequence space (half-range rule).
pub fn seq_after(a: u16, b: u16) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000
}

impl StreamRewriter {
    /// `ssrc`: the subscriber-side SSRC; `clock_rate`: RTP clock of the codec (Hz).
    pub fn new(ssrc: u32, clock_rate: u32) -> StreamRewriter {
        StreamRewriter {
            ssrc,
            clock_rate: clock_rate.max(1),
            base: None,
            previous_base: None,
            previous_source: None,
            last: None,
            rebase: false,
            forwarded: 0,
            dropped: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Packets forwarded and dropped so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.forwarded, self.dropped)
    }

    /// The next packet starts a new base (after a pause, or to switch sources on a keyframe):
    /// sequence numbers continue from the last one sent, timestamps advance by the wall time
    /// that passed.
    pub fn rebase(&mut self) {
        self.rebase = true;
    }

    /// Rewrites one packet of the source, or `None` to drop it (it predates the current base,
    /// e.g. a late packet of the previous source).
    ///
    /// `late`: the packet is older than one the source sent before it (a retransmission the node
    /// recovered only now, or reordered), as the receiving side saw them arrive. A new base never
    /// starts on a late packet: every packet after it would jump ahead by the distance and leave
    /// the subscriber a gap as long as a pause. Late packets within the current base still go out.
    pub fn rewrite(
        &mut self,
        source_ssrc: u32,
        sequence_number: u16,
        timestamp: u32,
        late: bool,
        now: Instant,
    ) -> Option<Rewritten> {
        let needs_base = match &self.base {
            None => true,
            Some(base) if base.source_ssrc != source_ssrc && self.previous_source == Some(source_ssrc) => {
                self.dropped += 1;
                return None;
            }
            Some(base) => self.rebase || base.source_ssrc != source_ssrc,
        };
        if needs_base {
            if late {
                self.dropped += 1;
                return None;
            }
            let (seq_offset, ts_offset) = match &self.last {
                None => (0u16, 0u32),
                Some(last) => {
                    let elapsed = now.saturating_duration_since(last.at);
                    let ticks = (elapsed.as_secs_f64() * f64::from(self.clock_rate)).round();
                    // At least one tick so a new base never repeats a timestamp; at most half
                    // the timestamp space so it stays "later" for the receiver.
                    let ticks = ticks.clamp(1.0, f64::from(u32::MAX / 2)) as u32;
                    let next_ts = last.timestamp.wrapping_add(ticks);
                    (
                        last.sequence_number.wrapping_add(1).wrapping_sub(sequence_number),
                        next_ts.wrapping_sub(timestamp),
                    )
                }
            };
            let first_out = sequence_number.wrapping_add(seq_offset);
            if let Some(old) = &self.base {
                if old.source_ssrc != source_ssrc {
                    self.previous_source = Some(old.source_ssrc);
                }
            }
            self.previous_base = self.base;
            self.base = Some(Base { source_ssrc, seq_offset, ts_offset, first_out });
            self.rebase = false;
        }
        let base = self.base?;
        let out_seq = sequence_number.wrapping_add(base.seq_offset);
        if out_seq != base.first_out && !seq_after(out_seq, base.first_out) {
            self.dropped += 1;
            return None;
        }
        let out =
            Rewritten { ssrc: self.ssrc, sequence_number: out_seq, timestamp: timestamp.wrapping_add(base.ts_offset) };
        let newest = match &self.last {
            None => true,
            Some(last) => seq_after(out_seq, last.sequence_number) || needs_base,
        };
        if newest {
            self.last = Some(Last { sequence_number: out.sequence_number, timestamp: out.timestamp, at: now });
        }
        self.forwarded += 1;
        Some(out)
    }

    /// The source packet that went out as `sequence_number` (to retransmit it on a NACK), from
    /// the current base or the one before; None for a number not sent yet or from before those.
    pub fn original(&self, sequence_number: u16) -> Option<Original> {
        let last = self.last?;
        if seq_after(sequence_number, last.sequence_number) {
            return None;
        }
        [self.base, self.previous_base]
            .into_iter()
            .flatten()
            .find(|base| sequence_number == base.first_out || seq_after(sequence_number, base.first_out))
            .map(|base| Original {
                source_ssrc: base.source_ssrc,
                sequence_number: sequence_number.wrapping_sub(base.seq_offset),
                timestamp_offset: base.ts_offset,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn first_source_keeps_its_numbers_with_our_ssrc() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(77, 90_000);
        let a = r.rewrite(1, 100, 5000, false, t0).unwrap();
        assert_eq!(a, Rewritten { ssrc: 77, sequence_number: 100, timestamp: 5000 });
        let b = r.rewrite(1, 101, 8000, false, t0).unwrap();
        assert_eq!((b.sequence_number, b.timestamp), (101, 8000));
        // A gap upstream stays a gap (the subscriber NACKs it).
        assert_eq!(r.rewrite(1, 104, 9000, false, t0).unwrap().sequence_number, 104);
        // The late packet still goes out, with its place in the sequence.
        assert_eq!(r.rewrite(1, 102, 8500, false, t0).unwrap().sequence_number, 102);
        assert_eq!(r.counts(), (4, 0));
    }

    #[test]
    fn original_maps_sent_numbers_back_through_the_current_and_previous_base() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(9, 90_000);
        assert_eq!(r.original(0), None, "nothing sent yet");
        r.rewrite(1, 65_534, 1000, false, t0).unwrap();
        r.rewrite(1, 65_535, 4000, false, t0).unwrap();
        let t1 = t0 + Duration::from_millis(100);
        let c = r.rewrite(2, 7, 123_456, false, t1).unwrap();
        r.rewrite(2, 8, 126_456, false, t1).unwrap();
        // The new source's packets, and the old source's before the switch.
        assert_eq!(
            r.original(c.sequence_number.wrapping_add(1)),
            Some(Original { source_ssrc: 2, sequence_number: 8, timestamp_offset: c.timestamp.wrapping_sub(123_456) })
        );
        assert_eq!(r.original(65_535), Some(Original { source_ssrc: 1, sequence_number: 65_535, timestamp_offset: 0 }));
        assert_eq!(r.original(65_534).map(|o| o.sequence_number), Some(65_534));
        // Not sent yet; from before the previous base.
        assert_eq!(r.original(2), None);
        assert_eq!(r.original(65_533), None);
        // A third base: the first one is forgotten.
        r.rebase();
        r.rewrite(2, 20, 130_000, false, t1 + Duration::from_millis(50)).unwrap();
        assert_eq!(r.original(65_535), None);
        assert_eq!(r.original(1).map(|o| (o.source_ssrc, o.sequence_number)), Some((2, 8)));
    }

    #[test]
    fn a_late_packet_never_starts_a_base() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(9, 90_000);
        assert_eq!(r.rewrite(1, 99, 99 * 3000, true, t0), None, "not even the first one");
        for seq in 100u16..=110 {
            r.rewrite(1, seq, u32::from(seq) * 3000, false, t0).unwrap();
        }
        // Paused while the source went on to 400; resumed, the first packets to come are
        // retransmissions the node recovered only now: 105 from before the pause, 300 from
        // during it (newer than the last one forwarded), then 400 and on.
        r.rebase();
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(r.rewrite(1, 105, 105 * 3000, true, t1), None);
        assert_eq!(r.rewrite(1, 300, 300 * 3000, true, t1), None);
        let first = r.rewrite(1, 400, 400 * 3000, false, t1).unwrap();
        assert_eq!(first.sequence_number, 111, "no gap: the base starts on 400");
        // Within the base a late packet keeps its place: 402 came before 401.
        assert_eq!(r.rewrite(1, 402, 402 * 3000, false, t1).unwrap().sequence_number, 113);
        assert_eq!(r.rewrite(1, 401, 401 * 3000, true, t1).unwrap().sequence_number, 112);
        // One from before the base is dropped.
        assert_eq!(r.rewrite(1, 399, 399 * 3000, true, t1), None);
        // A switch to another source waits for a packet of it that is not late.
        assert_eq!(r.rewrite(2, 50, 0, true, t1), None);
        assert_eq!(r.rewrite(2, 51, 3000, false, t1).unwrap().sequence_number, 114);
        assert_eq!(r.counts(), (15, 5));
    }

    #[test]
    fn source_switch_continues_sequence_and_time() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(9, 90_000);
        r.rewrite(1, 65_534, 1000, false, t0).unwrap();
        r.rewrite(1, 65_535, 4000, false, t0).unwrap();
        let t1 = t0 + Duration::from_millis(100);
        let c = r.rewrite(2, 7, 123_456, false, t1).unwrap();
        assert_eq!(c.sequence_number, 0, "wraps on from 65535");
        assert_eq!(c.timestamp, 4000 + 9000, "100 ms at 90 kHz later");
        let d = r.rewrite(2, 8, 126_456, false, t1).unwrap();
        assert_eq!((d.sequence_number, d.timestamp), (1, 16_000));
        // A late packet of the old source is dropped, not sent with a stale offset.
        assert_eq!(r.rewrite(1, 3, 9999, false, t1), None);
        // So is one of the new source from before its first packet.
        assert_eq!(r.rewrite(2, 5, 120_000, false, t1), None);
        assert_eq!(r.counts(), (4, 2));
    }

    #[test]
    fn pause_and_resume_leaves_no_gap() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(9, 48_000);
        r.rewrite(5, 10, 0, false, t0).unwrap();
        r.rebase();
        // Packets 11..=499 were not forwarded while paused.
        let t1 = t0 + Duration::from_secs(2);
        let e = r.rewrite(5, 500, 470_000, false, t1).unwrap();
        assert_eq!(e.sequence_number, 11);
        assert_eq!(e.timestamp, 96_000);
        assert_eq!(r.rewrite(5, 501, 470_960, false, t1).unwrap().sequence_number, 12);
    }

    #[test]
    fn rebase_without_time_still_advances_timestamp() {
        let t0 = Instant::now();
        let mut r = StreamRewriter::new(1, 90_000);
        r.rewrite(3, 1, 100, false, t0).unwrap();
        let x = r.rewrite(4, 50, 100, false, t0).unwrap();
        assert_eq!((x.sequence_number, x.timestamp), (2, 101));
    }
}

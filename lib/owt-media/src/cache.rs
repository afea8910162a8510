//! A ring buffer of recently forwarded packets indexed by RTP sequence number, to answer
//! NACKs without asking the publisher, and the RTX packet (RFC 4588) that carries one again.
//! owt-webrtc keeps one cache per published track for all its subscribers. Fixed memory: a
//! slot per sequence number modulo the capacity; a slot holds the sequence number it was
//! written for, so a stale slot is never mistaken for the packet asked about.

use std::time::{Duration, Instant};

/// Packets by sequence number; `T` is whatever the caller resends (e.g. the marshalled
/// packet or its parts).
#[derive(Debug, Clone)]
pub struct PacketCache<T> {
    slots: Vec<Option<(u16, T)>>,
    hits: u64,
    misses: u64,
}

impl<T> PacketCache<T> {
    /// A cache of `capacity` packets (rounded up to a power of two, at least 16, at most 32768).
    pub fn new(capacity: usize) -> PacketCache<T> {
        let capacity = capacity.clamp(16, 32_768).next_power_of_two();
        PacketCache { slots: (0..capacity).map(|_| None).collect(), hits: 0, misses: 0 }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn index(&self, seq: u16) -> usize {
        usize::from(seq) & (self.slots.len() - 1)
    }

    /// Keeps `packet` as the one sent with `seq` (replacing whatever that slot held).
    pub fn insert(&mut self, seq: u16, packet: T) {
        let i = self.index(seq);
        self.slots[i] = Some((seq, packet));
    }

    /// The packet sent with `seq`, if still held.
    pub fn get(&mut self, seq: u16) -> Option<&T> {
        let i = self.index(seq);
        match &self.slots[i] {
            Some((s, packet)) if *s == seq => {
                self.hits += 1;
                Some(packet)
            }
            _ => {
                self.misses += 1;
                None
            }
        }
    }

    /// NACK lookups answered and missed so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// The sequence numbers a generic NACK (RFC 4585 §6.2.1) names: `pid` and each set bit
    /// of `blp` (bit i means `pid + i + 1`).
    pub fn nack_sequence_numbers(pid: u16, blp: u16) -> impl Iterator<Item = u16> {
        std::iter::once(pid)
            .chain((0..16u16).filter(move |i| blp & (1 << i) != 0).map(move |i| pid.wrapping_add(i + 1)))
    }
}

/// How many packets a subscriber may be sent again per second: NACKs cost the node a lookup,
/// a copy and an encryption each, and a client could send them without end.
#[derive(Debug, Clone)]
pub struct RetransmitBudget {
    per_second: u32,
    window_start: Option<Instant>,
    used: u32,
}

impl RetransmitBudget {
    pub fn new(per_second: u32) -> RetransmitBudget {
        RetransmitBudget { per_second, window_start: None, used: 0 }
    }

    /// Takes up to `wanted` packets of this second's budget at `now`: how many may go.
    pub fn take(&mut self, wanted: usize, now: Instant) -> usize {
        let fresh =
            self.window_start.is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            self.used = 0;
        }
        let granted = wanted.min((self.per_second - self.used) as usize);
        self.used += granted as u32;
        granted
    }
}

/// `media` sent again on a repair stream (RFC 4588 §4): the RTX stream's SSRC, payload type
/// and sequence number, the original's timestamp and marker, and the original sequence number
/// in front of its payload. No header extensions: a sender adds its own.
pub fn rtx_packet(media: &rtc_rtp::Packet, ssrc: u32, payload_type: u8, sequence_number: u16) -> rtc_rtp::Packet {
    let mut payload = bytes::BytesMut::with_capacity(2 + media.payload.len());
    payload.extend_from_slice(&media.header.sequence_number.to_be_bytes());
    payload.extend_from_slice(&media.payload);
    rtc_rtp::Packet {
        header: rtc_rtp::header::Header {
            version: 2,
            marker: media.header.marker,
            payload_type,
            sequence_number,
            timestamp: media.header.timestamp,
            ssrc,
            ..Default::default()
        },
        payload: payload.freeze(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmit_budget_renews_every_second() {
        let t0 = Instant::now();
        let mut budget = RetransmitBudget::new(100);
        assert_eq!(budget.take(60, t0), 60);
        assert_eq!(budget.take(60, t0 + Duration::from_millis(500)), 40);
        assert_eq!(budget.take(1, t0 + Duration::from_millis(999)), 0);
        assert_eq!(budget.take(150, t0 + Duration::from_secs(1)), 100);
        assert_eq!(budget.take(0, t0 + Duration::from_secs(3)), 0);
        assert_eq!(budget.take(5, t0 + Duration::from_secs(3)), 5);
    }

    #[test]
    fn rtx_packet_carries_the_original_sequence_number_first() {
        let media = rtc_rtp::Packet {
            header: rtc_rtp::header::Header {
                version: 2,
                marker: true,
                payload_type: 96,
                sequence_number: 0xBEEF,
                timestamp: 90_000,
                ssrc: 11,
                ..Default::default()
            },
            payload: bytes::Bytes::from_static(&[1, 2, 3]),
        };
        let rtx = rtx_packet(&media, 22, 97, 5);
        assert_eq!(
            (rtx.header.version, rtx.header.ssrc, rtx.header.payload_type, rtx.header.sequence_number),
            (2, 22, 97, 5)
        );
        assert_eq!((rtx.header.timestamp, rtx.header.marker), (90_000, true));
        assert_eq!(&rtx.payload[..], &[0xBE, 0xEF, 1, 2, 3]);
    }

    #[test]
    fn keeps_the_last_capacity_packets() {
        let mut cache = PacketCache::new(20);
        assert_eq!(cache.capacity(), 32);
        for seq in 65_500u16..=65_535 {
            cache.insert(seq, seq as u32);
        }
        for seq in 0u16..10 {
            cache.insert(seq, 100_000 + seq as u32);
        }
        assert_eq!(cache.get(5), Some(&100_005));
        assert_eq!(cache.get(65_535), Some(&65_535));
        // Its slot now holds 65_510 + 32 (wrapped: 6).
        assert_eq!(cache.get(65_510), None);
        assert_eq!(cache.get(1000), None);
        assert_eq!(cache.counts(), (2, 2));
    }

    #[test]
    fn nack_bitmask() {
        let seqs: Vec<u16> = PacketCache::<()>::nack_sequence_numbers(65_534, 0b101).collect();
        assert_eq!(seqs, vec![65_534, 65_535, 1]);
        assert_eq!(PacketCache::<()>::nack_sequence_numbers(7, 0).count(), 1);
    }
}

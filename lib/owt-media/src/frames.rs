//! RTP packets <-> whole frames, sans-IO (DESIGN.md §5): [`FrameAssembler`] turns the RTP
//! payloads of one received stream into the frames the media link carries
//! ([`MediaFrame`] payload conventions), and [`FramePacketizer`] turns those frames back
//! into RTP payloads for a WebRTC subscriber.
//!
//! Frame payloads: a VP8 or VP9 frame as the encoder wrote it, an H.264/H.265 Annex B access
//! unit (a 4-byte start code before every NAL unit, parameter sets included), an AV1
//! temporal unit as OBUs with size fields (low overhead bitstream format, no temporal
//! delimiter), one Opus packet, raw G.711/G.722 bytes.
//!
//! # Reassembly
//!
//! Packets are buffered by (extended) sequence number, so reordering is repaired: a frame is
//! complete when every packet from its first to the one with the marker bit (or to the last
//! one before the timestamp changes) is there. A hole in the sequence numbers is waited for
//! until [`REORDER_PACKETS`] newer packets have arrived or [`REORDER_DELAY`] has passed since
//! it was seen (whichever comes first; [`FrameAssembler::set_reorder_limits`]); then the
//! packet is lost, its frame is dropped, and so is every delta frame until the next
//! keyframe, while [`FrameAssembler::needs_keyframe`] says to ask the sender for one. Frames
//! before the first keyframe are dropped the same way. After a loss the next frame starts
//! at a packet the codec marks as a frame start (VP8 S=1 and PID 0, VP9 B, AV1 N, H.264 a
//! parameter set / SEI / AUD or a slice with `first_mb_in_slice` 0, H.265 the same with
//! `first_slice_segment_in_pic_flag`), or after a packet with the marker bit, or after a
//! timestamp change. Audio packets are frames by themselves and are passed on at once
//! (packets older than the last one passed on are dropped as late).
//!
//! Keyframes: VP8, the P bit of the frame tag is 0; VP9, the payload descriptor's P
//! (inter-picture predicted) bit of the first packet is 0; H.264, an IDR slice (5) or an SPS
//! (7) is in the access unit; H.265, an IRAP picture (16..=21) or a VPS/SPS; AV1, the N
//! (new coded video sequence) bit of the first packet. Audio frames are all keyframes (each
//! decodes by itself). RTP timestamps are extended to 64 bits across wraparounds.
//!
//! # What comes from `rtc-rtp` and what is written here
//!
//! The payload formats are `rtc-rtp`'s (the RTP crate of webrtc-rs 0.21): its payloaders
//! for every codec, its depacketizers for VP8, VP9, H.264 and Opus, and its H.265 packet
//! parser. Written here, and why:
//! - The frame buffer, loss and keyframe policy: `rtc-rtp` depacketizes one payload at a
//!   time and has no reassembly across reordered packets.
//! - H.264: STAP-A and FU-A payloads are checked before they reach `H264Packet`, which
//!   indexes past the end of a STAP-A whose last length field is cut (a panic on hostile
//!   input) and glues FU-A fragments together without looking at the start/end bits.
//! - H.265: `H265Packet` only parses a payload; the Annex B output (NAL header rebuilt for
//!   FUs, start codes, aggregation units split) is built here. Before packetizing, an access
//!   unit is rewritten with 4-byte start codes only: `HevcPayloader` splits on 4-byte start
//!   codes alone when there is one, merging NAL units that follow a 3-byte one.
//! - VP8: `Vp8Packet` refuses payloads under 4 bytes, which are valid (a 1-byte descriptor
//!   and 1 to 2 bytes of frame, e.g. the last fragment of a frame); those are parsed here.
//! - VP9: `Vp9Payloader` never sets the P bit, so every frame would look like a keyframe to
//!   a receiver; delta frames get P=1 and the one reference (P_DIFF 1) flexible mode then
//!   requires. `Vp9Packet` keeps reference indices across calls (and then fails with
//!   "too many P_DIFF"), so a fresh one parses each payload.
//! - AV1: `Av1Depacketizer` panics (subtract with overflow) on an OBU element shorter than
//!   its header, so AV1 payloads are depacketized here (same output: OBUs with size fields,
//!   temporal delimiters left out). `Av1Payloader` guesses the N bit from a leading
//!   sequence header (here it follows the frame's keyframe flag), and indexes past the end
//!   of an OBU whose size field is too big (OBU sizes are checked first).
//! - G.711/G.722: `G7xxPayloader` splits a long frame into several payloads; each gets its
//!   own timestamp here.
//!
//! Kept from `rtc-rtp` as is: `H264Payloader` leaves out AUD and filler NAL units and sends
//! SPS and PPS in one STAP-A before the next NAL unit (not at all when they do not fit in
//! one payload).
//!
//! Not handled: VP9 spatial layers are concatenated as they come (no superframe index is
//! written), H.264 STAP-B/MTAP/FU-B and H.265 PACI packets are refused, and H.265 DONL
//! (sprop-max-don-diff > 0) is not parsed.

use bytes::Bytes;
use owt_proto::media::{Codec, MediaFrame, MediaKind, MAX_PAYLOAD};
use rtc_rtp::codec::av1::Av1Payloader;
use rtc_rtp::codec::g7xx::G7xxPayloader;
use rtc_rtp::codec::h264::{H264Packet, H264Payloader};
use rtc_rtp::codec::h265::{H265Packet, H265Payload, HevcPayloader};
use rtc_rtp::codec::opus::{OpusPacket, OpusPayloader};
use rtc_rtp::codec::vp8::{Vp8Packet, Vp8Payloader};
use rtc_rtp::codec::vp9::{Vp9Packet, Vp9Payloader};
use rtc_rtp::packetizer::{Depacketizer, Payloader};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Default RTP payload size limit of [`FramePacketizer`] (payload only, without the RTP
/// header and SRTP tag).
pub const DEFAULT_MTU: usize = 1200;
/// A missing packet is lost once this many newer packets have arrived.
pub const REORDER_PACKETS: u64 = 64;
/// A missing packet is lost once it has been missing this long.
pub const REORDER_DELAY: Duration = Duration::from_millis(100);
/// Most packets buffered; beyond, the oldest are dropped as lost.
const MAX_BUFFERED: usize = 8192;
/// A packet this far before the expected one is a sender that started over, not a late one.
const RESTART_DISTANCE: u64 = 1024;
const ANNEX_B: [u8; 4] = [0, 0, 0, 1];

/// One reassembled frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledFrame {
    pub codec: Codec,
    pub keyframe: bool,
    /// The RTP timestamp extended to 64 bits (wraparounds counted; the first frame has
    /// its RTP timestamp), in [`Codec::clock_rate`] units.
    pub timestamp: u64,
    /// The RTP timestamp as received.
    pub rtp_timestamp: u32,
    /// Video size when the bitstream says it (VP8 keyframes, VP9 scalability structure),
    /// 0 otherwise.
    pub width: u16,
    pub height: u16,
    pub payload: Vec<u8>,
}

impl AssembledFrame {
    /// The media link frame, with the stream's frame `sequence` number.
    pub fn into_media_frame(self, sequence: u32) -> MediaFrame {
        MediaFrame {
            codec: self.codec,
            keyframe: self.keyframe,
            sequence,
            timestamp: self.timestamp,
            width: self.width,
            height: self.height,
            payload: self.payload,
        }
    }
}

/// Counters of a [`FrameAssembler`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    /// Frames returned.
    pub frames: u64,
    /// Packets declared lost (video: holes given up on; audio: sequence numbers skipped).
    pub lost_packets: u64,
    /// Frames dropped because a packet of theirs was lost or is malformed.
    pub incomplete_frames: u64,
    /// Complete delta frames dropped while waiting for a keyframe.
    pub skipped_frames: u64,
    /// Payloads the codec's depacketizer refused.
    pub malformed_packets: u64,
    /// Packets that came after their frame was done (or duplicates).
    pub late_packets: u64,
}

#[derive(Debug, Clone)]
struct Packet {
    timestamp: u32,
    marker: bool,
    /// The codec marks it as the first packet of a frame.
    head: bool,
    payload: Bytes,
}

/// Reassembles the RTP payloads of one stream (one SSRC) into frames. See the module
/// documentation.
#[derive(Debug)]
pub struct FrameAssembler {
    codec: Codec,
    reorder_packets: u64,
    reorder_delay: Duration,
    packets: BTreeMap<u64, Packet>,
    /// Highest extended sequence number seen.
    highest: Option<u64>,
    /// Sequence numbers below are done with (passed on or given up).
    floor: u64,
    /// The packet at `floor` starts a frame.
    start_known: bool,
    /// Timestamp of a frame given up on: its other packets cannot start a frame.
    broken_timestamp: Option<u32>,
    /// The hole waited for, since when.
    hole: Option<(u64, Instant)>,
    waiting_keyframe: bool,
    needs_keyframe: bool,
    /// Last RTP timestamp and its extension.
    last_timestamp: Option<(u32, u64)>,
    /// How far the frame at `floor` is known to be there (packets present, no marker), so
    /// that a frame of n packets is scanned once, not n times.
    scanned: Option<u64>,
    stats: AssemblerStats,
}

impl FrameAssembler {
    pub fn new(codec: Codec) -> FrameAssembler {
        FrameAssembler {
            codec,
            reorder_packets: REORDER_PACKETS,
            reorder_delay: REORDER_DELAY,
            packets: BTreeMap::new(),
            highest: None,
            floor: 0,
            start_known: false,
            broken_timestamp: None,
            hole: None,
            waiting_keyframe: true,
            needs_keyframe: false,
            last_timestamp: None,
            scanned: None,
            stats: AssemblerStats::default(),
        }
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// How long a missing packet is waited for: until `packets` newer packets arrived
    /// (at least 1) or `delay` passed.
    pub fn set_reorder_limits(&mut self, packets: u64, delay: Duration) {
        self.reorder_packets = packets.max(1);
        self.reorder_delay = delay;
    }

    /// True from a lost or dropped frame until the next keyframe: ask the sender for one
    /// (through a [`crate::KeyframeLimiter`]).
    pub fn needs_keyframe(&self) -> bool {
        self.needs_keyframe
    }

    pub fn stats(&self) -> AssemblerStats {
        self.stats
    }

    /// Takes one RTP packet (its header fields and its payload) received at `now`; returns
    /// the frames it completes, oldest first.
    pub fn push(
        &mut self,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        now: Instant,
    ) -> Vec<AssembledFrame> {
        let seq = self.extend_sequence(sequence);
        if self.codec.kind() == MediaKind::Audio {
            return self.push_audio(seq, timestamp, payload).into_iter().collect();
        }
        if seq < self.floor {
            if self.floor - seq > RESTART_DISTANCE {
                self.restart(seq);
            } else {
                self.stats.late_packets += 1;
                return Vec::new();
            }
        }
        if self.packets.contains_key(&seq) {
            self.stats.late_packets += 1;
            return Vec::new();
        }
        let head = is_frame_head(self.codec, payload);
        self.packets.insert(seq, Packet { timestamp, marker, head, payload: Bytes::copy_from_slice(payload) });
        if self.packets.len() > MAX_BUFFERED {
            let (&oldest, _) = self.packets.first_key_value().expect("not empty");
            self.give_up(oldest + 1);
        }
        self.process(now)
    }

    /// Gives up on holes older than the reorder delay at `now` without a new packet (call it
    /// from a timer); returns the frames that completes.
    pub fn poll(&mut self, now: Instant) -> Vec<AssembledFrame> {
        if self.codec.kind() == MediaKind::Audio {
            return Vec::new();
        }
        self.process(now)
    }

    fn extend_sequence(&mut self, sequence: u16) -> u64 {
        let extended = match self.highest {
            // Start well above 0 so that earlier packets still have a number.
            None => (1 << 32) + u64::from(sequence),
            Some(highest) => {
                let delta = sequence.wrapping_sub(highest as u16) as i16;
                highest.wrapping_add_signed(i64::from(delta))
            }
        };
        if self.highest.is_none() {
            // Video: leave room for packets of the first frame that come late.
            let room = if self.codec.kind() == MediaKind::Video { self.reorder_packets.min(1 << 15) } else { 0 };
            self.floor = extended - room;
        }
        if self.highest.is_none_or(|h| extended > h) {
            self.highest = Some(extended);
        }
        extended
    }

    /// The sender started over (sequence numbers far back): forget everything.
    fn restart(&mut self, seq: u64) {
        self.packets.clear();
        self.highest = Some(seq);
        self.floor = seq;
        self.start_known = false;
        self.scanned = None;
        self.broken_timestamp = None;
        self.hole = None;
        self.lose_keyframe();
    }

    fn lose_keyframe(&mut self) {
        self.waiting_keyframe = true;
        self.needs_keyframe = true;
    }

    fn extend_timestamp(&mut self, timestamp: u32) -> u64 {
        let extended = match self.last_timestamp {
            None => u64::from(timestamp),
            Some((last, last_extended)) => {
                let delta = timestamp.wrapping_sub(last) as i32;
                last_extended.saturating_add_signed(i64::from(delta))
            }
        };
        self.last_timestamp = Some((timestamp, extended));
        extended
    }

    fn push_audio(&mut self, seq: u64, timestamp: u32, payload: &[u8]) -> Option<AssembledFrame> {
        let last = self.floor; // the next expected sequence number
        if seq < last {
            if last - seq > RESTART_DISTANCE {
                self.floor = seq;
            } else {
                self.stats.late_packets += 1;
                return None;
            }
        }
        self.stats.lost_packets += seq.saturating_sub(self.floor);
        self.floor = seq + 1;
        let payload = Bytes::copy_from_slice(payload);
        let data = match self.codec {
            Codec::Opus => OpusPacket.depacketize(&payload).ok(),
            _ => Some(payload).filter(|p| !p.is_empty()),
        };
        let Some(data) = data else {
            self.stats.malformed_packets += 1;
            return None;
        };
        self.stats.frames += 1;
        Some(AssembledFrame {
            codec: self.codec,
            keyframe: true,
            timestamp: self.extend_timestamp(timestamp),
            rtp_timestamp: timestamp,
            width: 0,
            height: 0,
            payload: data.to_vec(),
        })
    }

    /// Emits what is complete, gives up on holes past the reorder limits.
    fn process(&mut self, now: Instant) -> Vec<AssembledFrame> {
        let mut out = Vec::new();
        while !self.packets.is_empty() {
            if !self.start_known && !self.resync() {
                break;
            }
            match self.frame_at_floor() {
                Ok(end) => {
                    self.hole = None;
                    if let Some(frame) = self.take_frame(end) {
                        out.push(frame);
                    }
                }
                Err(missing) => {
                    // `missing` is a hole only when a newer packet has come.
                    let highest = self.highest.unwrap_or(0);
                    if missing > highest {
                        break;
                    }
                    let since = match self.hole {
                        Some((seq, since)) if seq == missing => since,
                        _ => {
                            self.hole = Some((missing, now));
                            now
                        }
                    };
                    let too_old = highest - missing >= self.reorder_packets;
                    let too_long = now.saturating_duration_since(since) >= self.reorder_delay;
                    if !(too_old || too_long) {
                        break;
                    }
                    self.give_up(missing + 1);
                }
            }
        }
        out
    }

    /// The frame starting at `floor`: Ok(last sequence number) when complete, else the first
    /// missing sequence number.
    fn frame_at_floor(&mut self) -> Result<u64, u64> {
        let timestamp = self.packets.get(&self.floor).ok_or(self.floor)?.timestamp;
        let mut seq = self.scanned.filter(|s| *s >= self.floor).unwrap_or(self.floor);
        loop {
            let packet = &self.packets[&seq];
            if packet.marker {
                return Ok(seq);
            }
            match self.packets.get(&(seq + 1)) {
                None => {
                    self.scanned = Some(seq);
                    return Err(seq + 1);
                }
                Some(next) if next.timestamp != timestamp => return Ok(seq),
                Some(_) => seq += 1,
            }
        }
    }

    /// A packet up to `until` (excluded) is lost: drops the frame it belonged to.
    fn give_up(&mut self, until: u64) {
        let lost = until.saturating_sub(self.floor) - self.packets.range(self.floor..until).count() as u64;
        self.stats.lost_packets += lost;
        let first_timestamp = self.packets.get(&self.floor).map(|p| p.timestamp);
        let dropped: Vec<u64> = self.packets.range(..until).map(|(seq, _)| *seq).collect();
        for seq in &dropped {
            self.packets.remove(seq);
        }
        self.stats.incomplete_frames += 1;
        self.broken_timestamp = first_timestamp.or(self.broken_timestamp);
        self.floor = until;
        self.start_known = false;
        self.scanned = None;
        self.hole = None;
        self.lose_keyframe();
    }

    /// Finds where the next frame starts after a loss; false if not known yet.
    fn resync(&mut self) -> bool {
        let mut start = None;
        let mut previous: Option<(u64, &Packet)> = None;
        for (&seq, packet) in self.packets.range(self.floor..) {
            let adjacent = previous.filter(|(p, _)| *p + 1 == seq).map(|(_, p)| p);
            let after_boundary = adjacent.is_some_and(|p| p.marker || p.timestamp != packet.timestamp);
            let broken = self.broken_timestamp == Some(packet.timestamp);
            let head = packet.head && !adjacent.is_some_and(|p| p.timestamp == packet.timestamp && !p.marker);
            if !broken && (after_boundary || head) {
                start = Some(seq);
                break;
            }
            previous = Some((seq, packet));
        }
        let Some(start) = start else {
            return false;
        };
        let skipped: Vec<u64> = self.packets.range(..start).map(|(seq, _)| *seq).collect();
        for seq in skipped {
            self.packets.remove(&seq);
        }
        self.floor = start;
        self.start_known = true;
        self.scanned = None;
        self.broken_timestamp = None;
        true
    }

    /// Takes the packets `floor..=end` (all there) and depacketizes them.
    fn take_frame(&mut self, end: u64) -> Option<AssembledFrame> {
        let packets: Vec<Packet> = (self.floor..=end).filter_map(|seq| self.packets.remove(&seq)).collect();
        self.floor = end + 1;
        self.start_known = true;
        self.scanned = None;
        let timestamp = packets[0].timestamp;
        let extended = self.extend_timestamp(timestamp);
        let payloads: Vec<&Bytes> = packets.iter().map(|p| &p.payload).collect();
        let built = match depacketize(self.codec, &payloads) {
            Ok(built) if built.payload.len() <= MAX_PAYLOAD && !built.payload.is_empty() => built,
            _ => {
                self.stats.malformed_packets += 1;
                self.stats.incomplete_frames += 1;
                self.lose_keyframe();
                return None;
            }
        };
        if self.waiting_keyframe && !built.keyframe {
            self.stats.skipped_frames += 1;
            self.needs_keyframe = true;
            return None;
        }
        if built.keyframe {
            self.waiting_keyframe = false;
            self.needs_keyframe = false;
        }
        self.stats.frames += 1;
        Some(AssembledFrame {
            codec: self.codec,
            keyframe: built.keyframe,
            timestamp: extended,
            rtp_timestamp: timestamp,
            width: built.width,
            height: built.height,
            payload: built.payload,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Depacketizing

#[derive(Debug, Default)]
struct Built {
    payload: Vec<u8>,
    keyframe: bool,
    width: u16,
    height: u16,
}

/// Why the payloads of a frame do not make a frame (the detail is only for tests).
type Malformed = &'static str;

fn depacketize(codec: Codec, payloads: &[&Bytes]) -> Result<Built, Malformed> {
    match codec {
        Codec::Vp8 => depacketize_vp8(payloads),
        Codec::Vp9 => depacketize_vp9(payloads),
        Codec::H264 => depacketize_h264(payloads),
        Codec::H265 => depacketize_h265(payloads),
        Codec::Av1 => depacketize_av1(payloads),
        Codec::Opus | Codec::Pcmu | Codec::Pcma | Codec::G722 => Err("audio is not reassembled"),
    }
}

/// VP8 payload descriptor: (start of partition, partition id, frame data).
fn vp8_descriptor(payload: &Bytes) -> Result<(bool, u8, Bytes), Malformed> {
    if payload.len() >= 4 {
        let mut packet = Vp8Packet::default();
        let data = packet.depacketize(payload).map_err(|_| "bad VP8 payload descriptor")?;
        return Ok((packet.s == 1, packet.pid, data));
    }
    // Vp8Packet refuses payloads under 4 bytes (see the module documentation).
    let b0 = *payload.first().ok_or("empty VP8 payload")?;
    let mut at = 1;
    if b0 & 0x80 != 0 {
        let x = *payload.get(1).ok_or("short VP8 payload")?;
        at = 2;
        if x & 0x80 != 0 {
            let picture_id = *payload.get(at).ok_or("short VP8 payload")?;
            at += if picture_id & 0x80 != 0 { 2 } else { 1 };
        }
        at += usize::from(x & 0x40 != 0) + usize::from(x & 0x30 != 0);
    }
    if at >= payload.len() {
        return Err("VP8 payload without data");
    }
    Ok((b0 & 0x10 != 0, b0 & 0x07, payload.slice(at..)))
}

fn depacketize_vp8(payloads: &[&Bytes]) -> Result<Built, Malformed> {
    let mut built = Built::default();
    for (i, payload) in payloads.iter().enumerate() {
        let (start, partition, data) = vp8_descriptor(payload)?;
        if i == 0 {
            if !start || partition != 0 {
                return Err("VP8 frame does not start with its first partition");
            }
            // Frame tag: bit 0 of the first byte is 0 on keyframes, followed by the start
            // code 9d 01 2a and the 14-bit width and height.
            built.keyframe = data[0] & 0x01 == 0;
            if built.keyframe && data.len() >= 10 && data[3..6] == [0x9d, 0x01, 0x2a] {
                built.width = u16::from_le_bytes([data[6], data[7]]) & 0x3fff;
                built.height = u16::from_le_bytes([data[8], data[9]]) & 0x3fff;
            }
        }
        built.payload.extend_from_slice(&data);
    }
    Ok(built)
}

fn depacketize_vp9(payloads: &[&Bytes]) -> Result<Built, Malformed> {
    let mut built = Built::default();
    for (i, payload) in payloads.iter().enumerate() {
        let mut packet = Vp9Packet::default();
        let data = packet.depacketize(payload).map_err(|_| "bad VP9 payload descriptor")?;
        if i == 0 {
            if !packet.b {
                return Err("VP9 frame does not start with a start of frame");
            }
            built.keyframe = !packet.p;
        }
        if packet.v && packet.y {
            if let (Some(&w), Some(&h)) = (packet.width.last(), packet.height.last()) {
                built.width = w;
                built.height = h;
            }
        }
        built.payload.extend_from_slice(&data);
    }
    Ok(built)
}

const H264_STAP_A: u8 = 24;
const H264_FU_A: u8 = 28;

fn h264_keyframe_nal(nal_type: u8) -> bool {
    nal_type == 5 || nal_type == 7
}

/// Checks an H.264 payload before `H264Packet` sees it (see the module documentation);
/// returns the types of the NAL units it starts.
fn check_h264(payload: &[u8], in_fu: &mut bool) -> Result<Vec<u8>, Malformed> {
    if payload.len() < 2 {
        return Err("short H.264 payload");
    }
    let nal_type = payload[0] & 0x1f;
    if nal_type != H264_FU_A && *in_fu {
        return Err("H.264 FU-A not ended");
    }
    match nal_type {
        1..=23 => Ok(vec![nal_type]),
        H264_STAP_A => {
            let mut types = Vec::new();
            let mut at = 1;
            while at < payload.len() {
                let size_bytes = payload.get(at..at + 2).ok_or("truncated STAP-A")?;
                let size = usize::from(u16::from_be_bytes([size_bytes[0], size_bytes[1]]));
                at += 2;
                if size == 0 || at + size > payload.len() {
                    return Err("bad STAP-A unit size");
                }
                types.push(payload[at] & 0x1f);
                at += size;
            }
            if types.is_empty() {
                return Err("empty STAP-A");
            }
            Ok(types)
        }
        H264_FU_A => {
            if payload.len() < 3 {
                return Err("short FU-A");
            }
            let header = payload[1];
            let (start, end) = (header & 0x80 != 0, header & 0x40 != 0);
            let types = if start {
                if *in_fu {
                    return Err("FU-A started twice");
                }
                vec![header & 0x1f]
            } else {
                if !*in_fu {
                    return Err("FU-A without its start");
                }
                Vec::new()
            };
            *in_fu = !end;
            Ok(types)
        }
        _ => Err("unsupported H.264 packetization"),
    }
}

fn depacketize_h264(payloads: &[&Bytes]) -> Result<Built, Malformed> {
    let mut built = Built::default();
    let mut packet = H264Packet::default();
    let mut in_fu = false;
    for payload in payloads {
        let types = check_h264(payload, &mut in_fu)?;
        built.keyframe |= types.into_iter().any(h264_keyframe_nal);
        let data = packet.depacketize(payload).map_err(|_| "bad H.264 payload")?;
        built.payload.extend_from_slice(&data);
    }
    if in_fu {
        return Err("H.264 frame ends inside an FU-A");
    }
    Ok(built)
}

fn h265_type(header_byte: u8) -> u8 {
    (header_byte >> 1) & 0x3f
}

fn h265_keyframe_nal(nal_type: u8) -> bool {
    (16..=21).contains(&nal_type) || nal_type == 32 || nal_type == 33
}

fn depacketize_h265(payloads: &[&Bytes]) -> Result<Built, Malformed> {
    let mut built = Built::default();
    let mut in_fu = false;
    let out = &mut built.payload;
    let mut types = Vec::new();
    for payload in payloads {
        let mut packet = H265Packet::default();
        packet.depacketize(payload).map_err(|_| "bad H.265 payload")?;
        let fu = matches!(packet.payload(), H265Payload::H265FragmentationUnitPacket(_));
        if in_fu && !fu {
            return Err("H.265 FU not ended");
        }
        match packet.payload() {
            H265Payload::H265SingleNALUnitPacket(single) => {
                let header = single.payload_header().0.to_be_bytes();
                types.push(h265_type(header[0]));
                out.extend_from_slice(&ANNEX_B);
                out.extend_from_slice(&header);
                out.extend_from_slice(&single.payload());
            }
            H265Payload::H265AggregationPacket(aggregation) => {
                let first = aggregation.first_unit().ok_or("empty H.265 aggregation packet")?;
                let units =
                    std::iter::once(first.nal_unit()).chain(aggregation.other_units().iter().map(|u| u.nal_unit()));
                for nal in units {
                    if nal.len() < 2 {
                        return Err("short NAL unit in an H.265 aggregation packet");
                    }
                    types.push(h265_type(nal[0]));
                    out.extend_from_slice(&ANNEX_B);
                    out.extend_from_slice(&nal);
                }
            }
            H265Payload::H265FragmentationUnitPacket(fragment) => {
                let fu = fragment.fu_header();
                if fu.s() {
                    if in_fu {
                        return Err("H.265 FU started twice");
                    }
                    // The NAL header is the payload header with the FU's type.
                    let header = (fragment.payload_header().0 & !(0x3f << 9)) | (u16::from(fu.fu_type()) << 9);
                    types.push(fu.fu_type());
                    out.extend_from_slice(&ANNEX_B);
                    out.extend_from_slice(&header.to_be_bytes());
                } else if !in_fu {
                    return Err("H.265 FU without its start");
                }
                out.extend_from_slice(&fragment.payload());
                in_fu = !fu.e();
            }
            _ => return Err("unsupported H.265 packet"),
        }
    }
    if in_fu {
        return Err("H.265 frame ends inside an FU");
    }
    built.keyframe = types.into_iter().any(h265_keyframe_nal);
    Ok(built)
}

/// Reads a LEB128 number (at most 8 bytes, value under 2^32): (value, bytes read).
fn read_leb128(data: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0u64;
    for (i, byte) in data.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return u32::try_from(value).ok().map(|v| (v as usize, i + 1));
        }
    }
    None
}

fn write_leb128(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends one whole OBU in the low overhead bitstream format (with its size field);
/// temporal delimiters and tile lists are left out, as the AV1 RTP specification says.
fn push_av1_obu(obu: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    let Some(&header) = obu.first() else {
        return Ok(());
    };
    let header_size = if header & 0x04 != 0 { 2 } else { 1 };
    if obu.len() < header_size {
        return Err("AV1 OBU shorter than its header");
    }
    let obu_type = (header >> 3) & 0x0f;
    if obu_type == 2 || obu_type == 8 {
        return Ok(());
    }
    if header & 0x02 != 0 {
        let (size, n) = read_leb128(&obu[header_size..]).ok_or("bad AV1 OBU size")?;
        if header_size + n + size != obu.len() {
            return Err("AV1 OBU size does not match");
        }
        out.extend_from_slice(obu);
    } else {
        out.push(header | 0x02);
        out.extend_from_slice(&obu[1..header_size]);
        write_leb128(obu.len() - header_size, out);
        out.extend_from_slice(&obu[header_size..]);
    }
    Ok(())
}

fn depacketize_av1(payloads: &[&Bytes]) -> Result<Built, Malformed> {
    let mut built = Built::default();
    // An OBU continued in the next payload.
    let mut pending: Option<Vec<u8>> = None;
    for (i, payload) in payloads.iter().enumerate() {
        // Aggregation header: Z (continues an OBU), Y (OBU continues), W (elements), N.
        let header = *payload.first().ok_or("empty AV1 payload")?;
        let (z, y, count) = (header & 0x80 != 0, header & 0x40 != 0, usize::from((header >> 4) & 0x03));
        if i == 0 {
            built.keyframe = header & 0x08 != 0;
        }
        if z != pending.is_some() {
            return Err("AV1 OBU fragments do not follow each other");
        }
        let mut at = 1;
        let mut element = 0;
        while at < payload.len() {
            element += 1;
            let last_by_count = count != 0 && element == count;
            let length = if last_by_count {
                payload.len() - at
            } else {
                let (length, n) = read_leb128(&payload[at..]).ok_or("bad AV1 element length")?;
                at += n;
                length
            };
            let data = payload.get(at..at + length).ok_or("AV1 element longer than the payload")?;
            at += length;
            let last = last_by_count || at == payload.len();
            let mut obu = match pending.take() {
                Some(mut started) if element == 1 => {
                    started.extend_from_slice(data);
                    started
                }
                _ => data.to_vec(),
            };
            if last && y {
                pending = Some(std::mem::take(&mut obu));
                break;
            }
            push_av1_obu(&obu, &mut built.payload)?;
            if last {
                break;
            }
        }
        if count != 0 && element != count {
            return Err("AV1 element count does not match");
        }
    }
    if pending.is_some() {
        return Err("AV1 frame ends inside an OBU");
    }
    Ok(built)
}

/// Whether a payload begins a frame, when the codec tells (see the module documentation).
fn is_frame_head(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        // S (start of partition) set and partition id 0, both in the first byte.
        Codec::Vp8 => payload.first().is_some_and(|b| b & 0x17 == 0x10),
        Codec::Vp9 => payload.first().is_some_and(|b| b & 0x08 != 0),
        Codec::Av1 => payload.first().is_some_and(|b| b & 0x88 == 0x08),
        Codec::H264 => h264_head(payload),
        Codec::H265 => h265_head(payload),
        _ => true,
    }
}

fn h264_head(payload: &[u8]) -> bool {
    // A slice whose first_mb_in_slice is 0 (ue(v) "1") begins a picture; so do an AUD, SPS,
    // PPS or SEI before it.
    let starts_picture = |nal_type: u8, rest: &[u8]| match nal_type {
        1 | 5 => rest.first().is_some_and(|b| b & 0x80 != 0),
        6..=9 => true,
        _ => false,
    };
    let Some(&b0) = payload.first() else {
        return false;
    };
    match b0 & 0x1f {
        t @ 1..=23 => starts_picture(t, &payload[1..]),
        H264_STAP_A => payload.get(3).is_some_and(|&h| starts_picture(h & 0x1f, payload.get(4..).unwrap_or(&[]))),
        H264_FU_A => payload
            .get(1)
            .is_some_and(|&fu| fu & 0x80 != 0 && starts_picture(fu & 0x1f, payload.get(2..).unwrap_or(&[]))),
        _ => false,
    }
}

fn h265_head(payload: &[u8]) -> bool {
    // A slice segment with first_slice_segment_in_pic_flag begins a picture; so do a VPS,
    // SPS, PPS, AUD or prefix SEI before it.
    let starts_picture = |nal_type: u8, rest: &[u8]| match nal_type {
        0..=31 => rest.first().is_some_and(|b| b & 0x80 != 0),
        32..=35 | 39 => true,
        _ => false,
    };
    if payload.len() < 3 {
        return false;
    }
    match h265_type(payload[0]) {
        t @ 0..=47 => starts_picture(t, &payload[2..]),
        48 => payload.get(4).is_some_and(|&h| starts_picture(h265_type(h), payload.get(6..).unwrap_or(&[]))),
        49 => payload[2] & 0x80 != 0 && starts_picture(payload[2] & 0x3f, &payload[3..]),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Packetizing

/// One RTP packet to send: header fields and payload (the RTP header is the caller's, with
/// [`FramePacketizer::payload_type`] and [`FramePacketizer::ssrc`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpOut {
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
}

/// Why a frame was not packetized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketizeError {
    #[error("a {frame} frame given to the {packetizer} packetizer")]
    CodecMismatch { frame: Codec, packetizer: Codec },
    #[error("{codec} frame refused by the payloader: {reason}")]
    Payloader { codec: Codec, reason: String },
}

/// Splits the frames of one stream into RTP payloads, with continuous sequence numbers.
#[derive(Debug)]
pub struct FramePacketizer {
    codec: Codec,
    payload_type: u8,
    ssrc: u32,
    mtu: usize,
    payloader: Box<dyn Payloader>,
    sequence: u16,
    timestamp_offset: u32,
}

impl FramePacketizer {
    /// A packetizer of `codec` frames into payloads of at most `mtu` bytes (RTP payload only;
    /// [`DEFAULT_MTU`] leaves room for headers and SRTP on a 1500-byte path). Sequence
    /// numbers start at a random value, and a random offset is added to timestamps
    /// ([`FramePacketizer::with_start`] sets both).
    pub fn new(codec: Codec, payload_type: u8, ssrc: u32, mtu: usize) -> FramePacketizer {
        let payloader: Box<dyn Payloader> = match codec {
            Codec::Vp8 => {
                let mut vp8 = Vp8Payloader::default();
                vp8.enable_picture_id = true;
                Box::new(vp8)
            }
            Codec::Vp9 => Box::new(Vp9Payloader::default()),
            Codec::H264 => Box::new(H264Payloader::default()),
            Codec::H265 => Box::new(HevcPayloader),
            Codec::Av1 => Box::new(Av1Payloader::default()),
            Codec::Opus => Box::new(OpusPayloader),
            Codec::Pcmu | Codec::Pcma | Codec::G722 => Box::new(G7xxPayloader),
        };
        FramePacketizer {
            codec,
            payload_type,
            ssrc,
            // Small enough for every payloader to make progress (headers up to 4 bytes).
            mtu: mtu.max(64),
            payloader,
            sequence: rand::random(),
            timestamp_offset: rand::random(),
        }
    }

    /// Sets the next sequence number and the timestamp offset.
    pub fn with_start(mut self, sequence: u16, timestamp_offset: u32) -> FramePacketizer {
        self.sequence = sequence;
        self.timestamp_offset = timestamp_offset;
        self
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The sequence number of the next packet.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// The RTP payloads of `frame`, in order; the marker bit is on the last packet of a
    /// video frame. An empty frame gives no packet.
    pub fn packetize(&mut self, frame: &MediaFrame) -> Result<Vec<RtpOut>, PacketizeError> {
        if frame.codec != self.codec {
            return Err(PacketizeError::CodecMismatch { frame: frame.codec, packetizer: self.codec });
        }
        let refused = |reason: String| PacketizeError::Payloader { codec: self.codec, reason };
        let data = match self.codec {
            Codec::H265 => Bytes::from(annex_b_with_long_start_codes(&frame.payload)),
            _ => Bytes::copy_from_slice(&frame.payload),
        };
        if data.is_empty() || (self.codec == Codec::H265 && data.len() < ANNEX_B.len() + 2) {
            return Ok(Vec::new());
        }
        if self.codec == Codec::Av1 && !av1_obus_well_formed(&data) {
            return Err(refused("malformed OBUs".to_string()));
        }
        let mtu = if self.codec == Codec::Vp9 { self.mtu - 1 } else { self.mtu };
        let mut payloads = self.payloader.payload(mtu, &data).map_err(|err| refused(err.to_string()))?;
        match self.codec {
            Codec::Vp9 if !frame.keyframe => payloads = payloads.iter().map(vp9_inter_predicted).collect(),
            Codec::Av1 => {
                if let Some(first) = payloads.first_mut() {
                    let mut bytes = first.to_vec();
                    bytes[0] = if frame.keyframe { bytes[0] | 0x08 } else { bytes[0] & !0x08 };
                    *first = Bytes::from(bytes);
                }
            }
            _ => {}
        }
        let timestamp = (frame.timestamp as u32).wrapping_add(self.timestamp_offset);
        let video = self.codec.kind() == MediaKind::Video;
        let count = payloads.len();
        let mut samples = 0u32;
        let mut out = Vec::with_capacity(count);
        for (i, payload) in payloads.into_iter().enumerate() {
            out.push(RtpOut {
                sequence: self.sequence,
                timestamp: timestamp.wrapping_add(samples),
                marker: video && i + 1 == count,
                payload: payload.to_vec(),
            });
            if matches!(self.codec, Codec::Pcmu | Codec::Pcma | Codec::G722) {
                // One byte is one tick of the 8 kHz RTP clock (G.722 too, by RFC 3551).
                samples = samples.wrapping_add(payload.len() as u32);
            }
            self.sequence = self.sequence.wrapping_add(1);
        }
        Ok(out)
    }
}

/// Whether `Av1Payloader` can read these OBUs: it indexes past the end of an OBU whose size
/// field says more than there is.
fn av1_obus_well_formed(mut data: &[u8]) -> bool {
    while let Some(&header) = data.first() {
        let header_size = if header & 0x04 != 0 { 2 } else { 1 };
        if data.len() < header_size {
            return false;
        }
        if header & 0x02 == 0 {
            return true; // the last OBU, to the end
        }
        let Some((size, n)) = read_leb128(&data[header_size..]) else {
            return false;
        };
        let Some(rest) = data.get(header_size + n + size..) else {
            return false;
        };
        data = rest;
    }
    true
}

/// A VP9 payload of `Vp9Payloader` (flexible mode, 15-bit picture id) marked inter-picture
/// predicted, with its one reference: the previous picture (P_DIFF 1).
fn vp9_inter_predicted(payload: &Bytes) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(payload[0] | 0x40);
    out.extend_from_slice(&payload[1..3]);
    out.push(1 << 1);
    out.extend_from_slice(&payload[3..]);
    Bytes::from(out)
}

/// The NAL units of an Annex B byte stream (3- or 4-byte start codes; without any start
/// code, the whole input is one NAL unit), with trailing zero bytes removed.
fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new(); // (start code position, NAL position)
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    if starts.is_empty() {
        return if data.is_empty() { Vec::new() } else { vec![data] };
    }
    let mut nals = Vec::new();
    for (k, &(_, nal_start)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(data.len(), |&(code, _)| code);
        let mut nal = &data[nal_start..end];
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        if !nal.is_empty() {
            nals.push(nal);
        }
    }
    nals
}

/// The same access unit with a 4-byte start code before every NAL unit.
fn annex_b_with_long_start_codes(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for nal in split_annex_b(data) {
        out.extend_from_slice(&ANNEX_B);
        out.extend_from_slice(nal);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes (xorshift), never 0 so that no start code appears by chance.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| (self.next() % 255 + 1) as u8).collect()
        }
        fn any_bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    fn frame(codec: Codec, keyframe: bool, timestamp: u64, payload: Vec<u8>) -> MediaFrame {
        MediaFrame { codec, keyframe, sequence: 0, timestamp, width: 0, height: 0, payload }
    }

    fn vp8_frame(rng: &mut Rng, keyframe: bool, len: usize) -> Vec<u8> {
        let mut data = rng.bytes(len);
        if keyframe {
            // Frame tag (key, shown), start code, 640x480.
            data[..10].copy_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
        } else {
            data[0] = 0x11;
        }
        data
    }

    fn h264_access_unit(rng: &mut Rng, idr: bool, slice_len: usize) -> Vec<u8> {
        let mut au = Vec::new();
        if idr {
            au.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8]);
            au.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        }
        au.extend_from_slice(&[0, 0, 0, 1, if idr { 0x65 } else { 0x41 }, 0x88]);
        au.extend(rng.bytes(slice_len));
        au
    }

    fn h265_access_unit(rng: &mut Rng, irap: bool, slice_len: usize) -> Vec<u8> {
        let mut au = Vec::new();
        if irap {
            for header in [[0x40, 0x01], [0x42, 0x01], [0x44, 0x01]] {
                au.extend_from_slice(&ANNEX_B);
                au.extend_from_slice(&header);
                au.extend(rng.bytes(20));
            }
        }
        au.extend_from_slice(&ANNEX_B);
        au.extend_from_slice(if irap { &[0x26, 0x01] } else { &[0x02, 0x01] });
        au.push(0xaf); // first_slice_segment_in_pic_flag
        au.extend(rng.bytes(slice_len));
        au
    }

    fn av1_temporal_unit(rng: &mut Rng, keyframe: bool, frame_len: usize) -> Vec<u8> {
        let mut tu = Vec::new();
        if keyframe {
            tu.push((1 << 3) | 0x02); // sequence header, with size
            write_leb128(12, &mut tu);
            tu.extend(rng.bytes(12));
        }
        tu.push((6 << 3) | 0x02); // frame, with size
        write_leb128(frame_len, &mut tu);
        tu.extend(rng.bytes(frame_len));
        tu
    }

    fn feed(assembler: &mut FrameAssembler, packets: &[RtpOut], now: Instant) -> Vec<AssembledFrame> {
        packets.iter().flat_map(|p| assembler.push(p.sequence, p.timestamp, p.marker, &p.payload, now)).collect()
    }

    /// Packetizes `frames`, checks the packets, and reassembles them.
    fn round_trip(codec: Codec, frames: &[MediaFrame]) -> Vec<AssembledFrame> {
        let mut packetizer = FramePacketizer::new(codec, 96, 0x1234, DEFAULT_MTU).with_start(65_530, 7);
        let mut assembler = FrameAssembler::new(codec);
        let mut out = Vec::new();
        let mut expected_sequence = 65_530u16;
        for f in frames {
            let packets = packetizer.packetize(f).unwrap();
            assert!(!packets.is_empty());
            for (i, p) in packets.iter().enumerate() {
                assert_eq!(p.sequence, expected_sequence);
                expected_sequence = expected_sequence.wrapping_add(1);
                assert_eq!(p.timestamp, (f.timestamp as u32).wrapping_add(7));
                assert!(p.payload.len() <= DEFAULT_MTU, "{} bytes", p.payload.len());
                assert_eq!(p.marker, i + 1 == packets.len() && codec.kind() == MediaKind::Video);
            }
            out.extend(feed(&mut assembler, &packets, Instant::now()));
        }
        assert_eq!(packetizer.next_sequence(), expected_sequence);
        assert!(!assembler.needs_keyframe());
        out
    }

    fn check_round_trip(codec: Codec, frames: &[MediaFrame]) -> Vec<AssembledFrame> {
        let got = round_trip(codec, frames);
        assert_eq!(got.len(), frames.len());
        for (got, sent) in got.iter().zip(frames) {
            assert_eq!(got.payload, sent.payload);
            assert_eq!(got.keyframe, sent.keyframe);
            assert_eq!(got.timestamp, sent.timestamp + 7);
            assert_eq!(got.codec, codec);
        }
        got
    }

    #[test]
    fn vp8_round_trip() {
        let mut rng = Rng(1);
        let frames = [
            frame(Codec::Vp8, true, 0, vp8_frame(&mut rng, true, 5000)),
            frame(Codec::Vp8, false, 3000, vp8_frame(&mut rng, false, 700)),
            // 2 bytes in the last packet: a payload under 4 bytes.
            frame(Codec::Vp8, false, 6000, vp8_frame(&mut rng, false, 1196 + 2)),
            frame(Codec::Vp8, false, 9000, vp8_frame(&mut rng, false, 1)),
            // About 850 packets.
            frame(Codec::Vp8, true, 12000, vp8_frame(&mut rng, true, 1_000_000)),
        ];
        let got = check_round_trip(Codec::Vp8, &frames);
        assert_eq!((got[0].width, got[0].height), (640, 480));
        assert_eq!((got[1].width, got[1].height), (0, 0));
        let media = got[0].clone().into_media_frame(42);
        assert_eq!((media.sequence, media.width, media.keyframe), (42, 640, true));
    }

    #[test]
    fn vp8_short_payloads_are_read() {
        let mut assembler = FrameAssembler::new(Codec::Vp8);
        let now = Instant::now();
        // 1-byte descriptor (S=1) + 2 bytes, then a 1-byte descriptor + 1 byte with the marker.
        assert!(assembler.push(1, 90, false, &[0x10, 0x10, 0xaa], now).is_empty());
        let got = assembler.push(2, 90, true, &[0x00, 0xbb], now);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, vec![0x10, 0xaa, 0xbb]);
        assert!(got[0].keyframe);
    }

    #[test]
    fn vp9_round_trip_with_keyframe_flags() {
        let mut rng = Rng(2);
        let frames = [
            frame(Codec::Vp9, true, 100, rng.any_bytes(4000)),
            frame(Codec::Vp9, false, 3100, rng.any_bytes(1500)),
            frame(Codec::Vp9, false, 6100, rng.any_bytes(10)),
            frame(Codec::Vp9, true, 9100, rng.any_bytes(2500)),
        ];
        check_round_trip(Codec::Vp9, &frames);
        // Delta frames carry P=1 and their reference.
        let mut packetizer = FramePacketizer::new(Codec::Vp9, 98, 1, DEFAULT_MTU);
        let delta = packetizer.packetize(&frames[1]).unwrap();
        assert!(delta.iter().all(|p| p.payload[0] & 0x40 != 0 && p.payload[3] == 0x02));
        let key = packetizer.packetize(&frames[0]).unwrap();
        assert!(key.iter().all(|p| p.payload[0] & 0x40 == 0));
    }

    #[test]
    fn h264_round_trip_with_stap_a_and_fu_a() {
        let mut rng = Rng(3);
        let frames = [
            frame(Codec::H264, true, 0, h264_access_unit(&mut rng, true, 5000)),
            frame(Codec::H264, false, 3000, h264_access_unit(&mut rng, false, 800)),
            frame(Codec::H264, false, 6000, h264_access_unit(&mut rng, false, 3000)),
            frame(Codec::H264, true, 9000, h264_access_unit(&mut rng, true, 1300)),
        ];
        let mut packetizer = FramePacketizer::new(Codec::H264, 102, 1, DEFAULT_MTU);
        let packets = packetizer.packetize(&frames[0]).unwrap();
        assert_eq!(packets[0].payload[0] & 0x1f, H264_STAP_A, "SPS and PPS aggregated");
        assert!(packets[1..].iter().all(|p| p.payload[0] & 0x1f == H264_FU_A), "the IDR slice fragmented");
        assert_eq!(packets[1].payload[1], 0x80 | 5);
        check_round_trip(Codec::H264, &frames);

        // 3-byte start codes come back as 4-byte ones.
        let short: Vec<u8> =
            [&[0, 0, 1, 0x67, 0x42, 0xc0, 0x1f][..], &[0, 0, 1, 0x68, 0xce, 0x3c, 0x80], &[0, 0, 1, 0x65, 0x88, 7, 7]]
                .concat();
        let got = round_trip(Codec::H264, &[frame(Codec::H264, true, 0, short)]);
        let long: Vec<u8> = [
            &[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f][..],
            &[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80],
            &[0, 0, 0, 1, 0x65, 0x88, 7, 7],
        ]
        .concat();
        assert_eq!(got[0].payload, long);
    }

    #[test]
    fn h265_round_trip() {
        let mut rng = Rng(4);
        let frames = [
            frame(Codec::H265, true, 0, h265_access_unit(&mut rng, true, 4000)),
            frame(Codec::H265, false, 3000, h265_access_unit(&mut rng, false, 500)),
            frame(Codec::H265, false, 6000, h265_access_unit(&mut rng, false, 2000)),
        ];
        check_round_trip(Codec::H265, &frames);
        // Mixed 3- and 4-byte start codes (as x265 writes them).
        let mut mixed = frames[0].payload.clone();
        mixed.remove(0); // the first start code becomes 00 00 01
        let pos = 4 + mixed[3..].windows(4).position(|w| w == ANNEX_B).unwrap();
        mixed.remove(pos);
        let got = round_trip(Codec::H265, &[frame(Codec::H265, true, 0, mixed)]);
        assert_eq!(got[0].payload, frames[0].payload);
    }

    #[test]
    fn av1_round_trip() {
        let mut rng = Rng(5);
        let frames = [
            frame(Codec::Av1, true, 0, av1_temporal_unit(&mut rng, true, 3000)),
            frame(Codec::Av1, false, 3000, av1_temporal_unit(&mut rng, false, 400)),
            frame(Codec::Av1, false, 6000, av1_temporal_unit(&mut rng, false, 1500)),
        ];
        check_round_trip(Codec::Av1, &frames);
    }

    #[test]
    fn audio_packets_are_frames() {
        let mut rng = Rng(6);
        let frames: Vec<MediaFrame> =
            (0..5).map(|i| frame(Codec::Opus, true, 960 * i, rng.any_bytes(60 + i as usize))).collect();
        check_round_trip(Codec::Opus, &frames);

        // G.711 longer than the MTU: one packet per MTU, each with its own timestamp.
        let mut packetizer = FramePacketizer::new(Codec::Pcmu, 0, 1, 100).with_start(0, 0);
        let packets = packetizer.packetize(&frame(Codec::Pcmu, true, 8000, vec![0x55; 250])).unwrap();
        let shape: Vec<(u16, u32, usize)> =
            packets.iter().map(|p| (p.sequence, p.timestamp, p.payload.len())).collect();
        assert_eq!(shape, vec![(0, 8000, 100), (1, 8100, 100), (2, 8200, 50)]);
        assert!(packets.iter().all(|p| !p.marker));

        // A late audio packet is dropped, a skipped one counted.
        let mut assembler = FrameAssembler::new(Codec::Opus);
        let now = Instant::now();
        assert_eq!(assembler.push(10, 0, false, &[1], now).len(), 1);
        assert_eq!(assembler.push(12, 1920, false, &[3], now).len(), 1);
        assert!(assembler.push(11, 960, false, &[2], now).is_empty());
        assert!(assembler.push(13, 2880, false, &[], now).is_empty());
        let stats = assembler.stats();
        assert_eq!((stats.frames, stats.lost_packets, stats.late_packets, stats.malformed_packets), (2, 1, 1, 1));
    }

    /// Packets of VP8 frames: a keyframe, `deltas` delta frames, a keyframe; 3 packets each.
    fn vp8_stream(deltas: usize) -> (Vec<MediaFrame>, Vec<Vec<RtpOut>>) {
        let mut rng = Rng(7);
        let mut packetizer = FramePacketizer::new(Codec::Vp8, 96, 1, 1000).with_start(100, 0);
        let mut frames = vec![frame(Codec::Vp8, true, 0, vp8_frame(&mut rng, true, 2500))];
        for i in 0..deltas {
            frames.push(frame(Codec::Vp8, false, 3000 * (i as u64 + 1), vp8_frame(&mut rng, false, 2500)));
        }
        frames.push(frame(Codec::Vp8, true, 3000 * (deltas as u64 + 1), vp8_frame(&mut rng, true, 2500)));
        let packets: Vec<Vec<RtpOut>> = frames.iter().map(|f| packetizer.packetize(f).unwrap()).collect();
        assert!(packets.iter().all(|p| p.len() == 3));
        (frames, packets)
    }

    #[test]
    fn a_lost_packet_drops_its_frame_and_deltas_until_a_keyframe() {
        let (frames, mut packets) = vp8_stream(3);
        packets[1].remove(1); // the middle packet of the first delta frame
        let mut assembler = FrameAssembler::new(Codec::Vp8);
        assembler.set_reorder_limits(3, Duration::from_secs(10));
        let now = Instant::now();
        let got = feed(&mut assembler, &packets[0], now);
        assert_eq!(got.len(), 1);
        assert!(!assembler.needs_keyframe());
        assert!(feed(&mut assembler, &packets[1], now).is_empty());
        assert!(!assembler.needs_keyframe(), "still waiting for the packet");
        assert!(feed(&mut assembler, &packets[2], now).is_empty());
        assert!(assembler.needs_keyframe(), "lost after 3 newer packets");
        assert!(feed(&mut assembler, &packets[3], now).is_empty());
        assert!(assembler.needs_keyframe());
        let got = feed(&mut assembler, &packets[4], now);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, frames[4].payload);
        assert!(got[0].keyframe);
        assert!(!assembler.needs_keyframe());
        let stats = assembler.stats();
        assert_eq!((stats.frames, stats.incomplete_frames, stats.skipped_frames, stats.lost_packets), (2, 1, 2, 1));
    }

    #[test]
    fn a_hole_is_given_up_after_the_reorder_delay() {
        let (_, mut packets) = vp8_stream(1);
        let missing = packets[0].remove(1);
        let mut assembler = FrameAssembler::new(Codec::Vp8);
        let start = Instant::now();
        assert!(feed(&mut assembler, &packets[0], start).is_empty());
        assert!(assembler.poll(start + Duration::from_millis(50)).is_empty());
        assert!(!assembler.needs_keyframe());
        assert!(assembler.poll(start + REORDER_DELAY).is_empty());
        assert!(assembler.needs_keyframe());
        assert_eq!(assembler.stats().incomplete_frames, 1);
        // The missing packet comes too late.
        let now = start + Duration::from_millis(150);
        assert!(assembler.push(missing.sequence, missing.timestamp, missing.marker, &missing.payload, now).is_empty());
        assert_eq!(assembler.stats().late_packets, 1);
        let got = feed(&mut assembler, &packets[2], now);
        assert_eq!(got.len(), 1);
        assert!(!assembler.needs_keyframe());
    }

    #[test]
    fn delta_frames_before_the_first_keyframe_are_dropped() {
        let (frames, packets) = vp8_stream(2);
        let mut assembler = FrameAssembler::new(Codec::Vp8);
        let now = Instant::now();
        assert!(feed(&mut assembler, &packets[1], now).is_empty());
        assert!(assembler.needs_keyframe());
        assert!(feed(&mut assembler, &packets[2], now).is_empty());
        let got = feed(&mut assembler, &packets[3], now);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, frames[3].payload);
        assert!(!assembler.needs_keyframe());
        assert_eq!(assembler.stats().skipped_frames, 2);
    }

    #[test]
    fn joining_in_the_middle_of_a_frame_waits_for_the_next() {
        let (_, packets) = vp8_stream(0);
        let mut assembler = FrameAssembler::new(Codec::Vp8);
        let now = Instant::now();
        assert!(feed(&mut assembler, &packets[0][1..], now).is_empty());
        assert_eq!(feed(&mut assembler, &packets[1], now).len(), 1);
    }

    #[test]
    fn reordered_packets_inside_and_across_frames() {
        let (frames, packets) = vp8_stream(2);
        let mut order: Vec<&RtpOut> = packets.iter().flatten().collect();
        order.swap(0, 1); // inside the keyframe, including its first packet
        order.swap(4, 5); // inside the first delta frame
        order.swap(8, 9); // the last packet of a frame after the first of the next
        let mut assembler = FrameAssembler::new(Codec::Vp8);
        let now = Instant::now();
        let got: Vec<AssembledFrame> =
            order.iter().flat_map(|p| assembler.push(p.sequence, p.timestamp, p.marker, &p.payload, now)).collect();
        assert_eq!(
            got.iter().map(|f| f.payload.clone()).collect::<Vec<_>>(),
            frames.iter().map(|f| f.payload.clone()).collect::<Vec<_>>()
        );
        assert!(!assembler.needs_keyframe());
        // A duplicate is dropped.
        let p = &packets[3][0];
        assert!(assembler.push(p.sequence, p.timestamp, p.marker, &p.payload, now).is_empty());
        assert_eq!(assembler.stats().late_packets, 1);
    }

    #[test]
    fn frames_complete_on_a_timestamp_change_without_marker() {
        let mut assembler = FrameAssembler::new(Codec::Vp8);
        let now = Instant::now();
        assert!(assembler.push(1, 0, false, &[0x10, 0x10, 1, 2], now).is_empty());
        let got = assembler.push(2, 3000, false, &[0x10, 0x11, 3, 4], now);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, vec![0x10, 1, 2]);
    }

    #[test]
    fn timestamps_are_extended_across_the_wraparound() {
        let mut rng = Rng(8);
        let mut packetizer = FramePacketizer::new(Codec::Vp8, 96, 1, DEFAULT_MTU).with_start(0, u32::MAX - 7000);
        let mut assembler = FrameAssembler::new(Codec::Vp8);
        let now = Instant::now();
        let mut timestamps = Vec::new();
        for i in 0..6u64 {
            let f = frame(Codec::Vp8, i == 0, 3000 * i, vp8_frame(&mut rng, i == 0, 100));
            let packets = packetizer.packetize(&f).unwrap();
            for got in feed(&mut assembler, &packets, now) {
                timestamps.push((got.rtp_timestamp, got.timestamp));
            }
        }
        let first = u64::from(u32::MAX - 7000);
        let expected: Vec<(u32, u64)> = (0..6).map(|i| ((first + 3000 * i) as u32, first + 3000 * i)).collect();
        assert_eq!(timestamps, expected);
        assert!(timestamps[5].1 > u64::from(u32::MAX));
    }

    #[test]
    fn a_sender_that_starts_over_is_followed() {
        let (frames, packets) = vp8_stream(0);
        let mut assembler = FrameAssembler::new(Codec::Vp8);
        let now = Instant::now();
        assert_eq!(feed(&mut assembler, &packets[0], now).len(), 1);
        // The same keyframe again, 30000 sequence numbers back.
        let moved: Vec<RtpOut> =
            packets[1].iter().map(|p| RtpOut { sequence: p.sequence.wrapping_sub(30_000), ..p.clone() }).collect();
        let got = feed(&mut assembler, &moved, now);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, frames[1].payload);
    }

    #[test]
    fn hostile_payloads_do_not_panic() {
        let now = Instant::now();
        let truncated_stap_a: &[u8] = &[0x18, 0x00, 0x01, 0x65, 0x00];
        let cases: Vec<&[u8]> = vec![
            &[],
            &[0x00],
            &[0xff; 3],
            &[0x1c, 0x85],             // FU-A start without data
            &[0x1c, 0x45, 0x01],       // FU-A end without start
            truncated_stap_a,          // panics in rtc-rtp's H264Packet
            &[0x18, 0xff, 0xff, 0x65], // STAP-A unit longer than the payload
            &[0x18],
            &[0x62, 0x01, 0x80],       // H.265 FU, short
            &[0x60, 0x01, 0x00, 0x05], // H.265 AP, short
            &[0x80, 0x80],             // VP8 with X and I but nothing more
            &[0x90, 0xff, 0xff, 0xff], // VP8 / VP9 descriptors with everything set
            &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x08, 0xff, 0xff, 0xff, 0xff], // AV1 N with a huge leb128
        ];
        let codecs =
            [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::H265, Codec::Av1, Codec::Opus, Codec::Pcmu, Codec::G722];
        for codec in codecs {
            let mut assembler = FrameAssembler::new(codec);
            for (i, payload) in cases.iter().enumerate() {
                assembler.push(i as u16, 0, true, payload, now);
                assembler.push(1000 + i as u16, 1000 + i as u32, i.is_multiple_of(2), payload, now);
            }
            // Random packets: payloads, sequence numbers around a point, markers, timestamps.
            let mut rng = Rng(9 + codec as u64);
            for i in 0..20_000u32 {
                let len = match rng.next() % 4 {
                    0 => (rng.next() % 4) as usize,
                    1 => (rng.next() % 16) as usize,
                    2 => (rng.next() % 200) as usize,
                    _ => (rng.next() % 1500) as usize,
                };
                let mut payload = rng.any_bytes(len);
                if let (Some(first), 0) = (payload.first_mut(), rng.next() % 3) {
                    // Plausible first bytes: STAP-A, FU-A, AP, FU, VP8/VP9 starts.
                    *first = [0x18, 0x1c, 0x7c, 0x60, 0x62, 0x10, 0x90, 0x88, 0x08][(rng.next() % 9) as usize];
                }
                let sequence = (i / 2) as u16 ^ (rng.next() % 8) as u16;
                let timestamp = (i / 7) * 3000;
                assembler.push(
                    sequence,
                    timestamp,
                    rng.next().is_multiple_of(5),
                    &payload,
                    now + Duration::from_millis(u64::from(i)),
                );
            }
            assembler.poll(now + Duration::from_secs(60));
            // A good keyframe afterwards still comes through.
            let good = match codec {
                Codec::Vp8 => Some(vp8_frame(&mut rng, true, 3000)),
                Codec::Vp9 => Some(rng.any_bytes(3000)),
                Codec::H264 => Some(h264_access_unit(&mut rng, true, 3000)),
                Codec::H265 => Some(h265_access_unit(&mut rng, true, 3000)),
                Codec::Av1 => Some(av1_temporal_unit(&mut rng, true, 3000)),
                _ => None,
            };
            if let Some(good) = good {
                let mut packetizer = FramePacketizer::new(codec, 96, 1, DEFAULT_MTU).with_start(30_000, 0);
                let packets = packetizer.packetize(&frame(codec, true, 1 << 31, good.clone())).unwrap();
                let later = now + Duration::from_secs(61);
                let got = feed(&mut assembler, &packets, later);
                // (Buffered garbage that happens to parse may come out first.)
                assert_eq!(got.last().map(|f| &f.payload), Some(&good), "{codec}");
            }
            // And garbage frames to the packetizer.
            let mut packetizer = FramePacketizer::new(codec, 96, 1, DEFAULT_MTU);
            for len in [0usize, 1, 2, 3, 5, 7, 100, 3000] {
                for _ in 0..200 {
                    let mut payload = rng.any_bytes(len);
                    if len >= 4 && rng.next().is_multiple_of(2) {
                        payload[..4].copy_from_slice(&ANNEX_B);
                    }
                    let _ = packetizer.packetize(&frame(codec, rng.next().is_multiple_of(2), 0, payload));
                }
            }
        }
    }

    #[test]
    fn packetizer_errors_and_empty_frames() {
        let mut packetizer = FramePacketizer::new(Codec::Vp8, 96, 0xabc, DEFAULT_MTU).with_start(5, 0);
        assert_eq!((packetizer.payload_type(), packetizer.ssrc(), packetizer.mtu()), (96, 0xabc, DEFAULT_MTU));
        assert!(matches!(
            packetizer.packetize(&frame(Codec::Vp9, true, 0, vec![1])),
            Err(PacketizeError::CodecMismatch { .. })
        ));
        assert_eq!(packetizer.packetize(&frame(Codec::Vp8, true, 0, Vec::new())), Ok(Vec::new()));
        assert_eq!(packetizer.next_sequence(), 5);
        assert!(matches!(
            FramePacketizer::new(Codec::Av1, 96, 1, DEFAULT_MTU).packetize(&frame(Codec::Av1, true, 0, vec![0xff; 3])),
            Err(PacketizeError::Payloader { .. })
        ));
    }

    #[test]
    fn annex_b_splitting() {
        assert_eq!(split_annex_b(&[1, 2, 3]), vec![&[1u8, 2, 3][..]]);
        assert!(split_annex_b(&[]).is_empty());
        let data = [0, 0, 0, 1, 9, 9, 0, 0, 1, 8, 0, 0, 0, 0, 1, 7];
        assert_eq!(split_annex_b(&data), vec![&[9u8, 9][..], &[8], &[7]]);
        assert_eq!(annex_b_with_long_start_codes(&[0, 0, 1, 5]), vec![0, 0, 0, 1, 5]);
    }
}

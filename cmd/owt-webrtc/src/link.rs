//! The node's side of the media link (DESIGN.md §5): published tracks that other nodes
//! consume are reassembled from RTP into whole frames and published on the node's media PUB
//! socket (topic = track id); tracks of other nodes (another webrtc node's publication, a
//! mixer's view) are received as frames and packetized again for this node's subscribers.
//! The conversion is owt_media::frames; the sockets are owt_bus::media.

use owt_bus::media::{MediaPublisher, MediaSubscriber};
use owt_media::frames::{AssembledFrame, FrameAssembler, FramePacketizer};
use owt_proto::media::{Codec, MediaFrame};
use owt_proto::webrtc::{Kind, LinkSource};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use std::time::Instant;

/// RTP payload size of packets made from linked frames (fits any path MTU with SRTP).
const LINK_MTU: usize = 1200;

/// The codec of the media link for an SDP codec, if the link carries it.
pub fn link_codec(codec: &RTCRtpCodec) -> Option<Codec> {
    Codec::from_name(&codec.mime_type)
}

/// The SDP codec of a linked track.
pub fn rtp_codec(source: &LinkSource) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: source.mime_type.clone(),
        clock_rate: source.clock_rate,
        channels: source.channels,
        sdp_fmtp_line: source.sdp_fmtp_line.clone(),
        rtcp_feedback: Vec::new(),
    }
}

/// What `link-out` answers: where and how a track is published (the portal fills `node`).
pub fn source_of(track_id: &str, kind: Kind, codec: &RTCRtpCodec, endpoint: &str) -> LinkSource {
    LinkSource {
        node: String::new(),
        endpoint: endpoint.to_string(),
        topic: track_id.to_string(),
        kind,
        mime_type: codec.mime_type.clone(),
        clock_rate: codec.clock_rate,
        channels: codec.channels,
        sdp_fmtp_line: codec.sdp_fmtp_line.clone(),
    }
}

/// A published track's frames going out on the media link.
pub struct LinkOut {
    topic: String,
    assembler: FrameAssembler,
    publisher: MediaPublisher,
    /// Sequence number of the next frame on the link (gaps tell consumers of losses).
    sequence: u32,
    /// A frame was lost upstream: the publisher should send a keyframe.
    pub wants_keyframe: bool,
}

impl LinkOut {
    pub fn new(topic: &str, codec: Codec, publisher: MediaPublisher) -> LinkOut {
        LinkOut {
            topic: topic.to_string(),
            assembler: FrameAssembler::new(codec),
            publisher,
            sequence: 0,
            wants_keyframe: false,
        }
    }

    /// Takes one RTP packet of the track; publishes the frames it completes.
    pub fn push(&mut self, packet: &rtp::Packet, now: Instant) {
        let header = &packet.header;
        let frames = self.assembler.push(header.sequence_number, header.timestamp, header.marker, &packet.payload, now);
        self.publish(frames);
    }

    /// Gives up on frames whose missing packets did not come in time.
    pub fn poll(&mut self, now: Instant) {
        let frames = self.assembler.poll(now);
        self.publish(frames);
    }

    fn publish(&mut self, frames: Vec<AssembledFrame>) {
        for frame in frames {
            let frame = frame.into_media_frame(self.sequence);
            self.sequence = self.sequence.wrapping_add(1);
            // A full queue drops the frame (counted by the publisher): never block the forwarder.
            let _ = self.publisher.publish(&self.topic, &frame);
        }
        if self.assembler.needs_keyframe() {
            self.wants_keyframe = true;
        }
    }
}

/// Frames of a linked track turned into RTP packets of one SSRC. Timestamps stay
/// continuous for subscribers when the producer is replaced and starts its clock again.
pub struct LinkIn {
    packetizer: FramePacketizer,
    ssrc: u32,
    clock_rate: u64,
    /// Last input timestamp, and what was added to it on output.
    last_in: Option<u64>,
    offset: u64,
}

impl LinkIn {
    pub fn new(codec: Codec, ssrc: u32) -> LinkIn {
        // The payload type is rewritten per subscriber; any fixed value serves here.
        LinkIn {
            packetizer: FramePacketizer::new(codec, 96, ssrc, LINK_MTU),
            ssrc,
            clock_rate: u64::from(codec.clock_rate()),
            last_in: None,
            offset: 0,
        }
    }

    /// The output timestamp of an input one: a jump back, or ahead by more than 10 s, is a
    /// new producer clock and continues 20 ms after the last output.
    fn continuous(&mut self, timestamp: u64) -> u64 {
        if let Some(last) = self.last_in {
            if timestamp < last || timestamp > last + 10 * self.clock_rate {
                let last_out = last.wrapping_add(self.offset);
                self.offset = last_out.wrapping_add(self.clock_rate / 50).wrapping_sub(timestamp);
            }
        }
        self.last_in = Some(timestamp);
        timestamp.wrapping_add(self.offset)
    }

    /// The RTP packets of a frame; none for a frame this link cannot carry (logged).
    pub fn packets(&mut self, frame: &MediaFrame) -> Vec<rtp::Packet> {
        let shift = self.continuous(frame.timestamp).wrapping_sub(frame.timestamp) as u32;
        let packets = match self.packetizer.packetize(frame) {
            Ok(packets) => packets,
            Err(err) => {
                tracing::debug!("linked frame not packetized: {err}");
                return Vec::new();
            }
        };
        packets
            .into_iter()
            .map(|out| rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    marker: out.marker,
                    payload_type: 96,
                    sequence_number: out.sequence,
                    timestamp: out.timestamp.wrapping_add(shift),
                    ssrc: self.ssrc,
                    ..Default::default()
                },
                payload: out.payload.into(),
            })
            .collect()
    }
}

/// A SUB socket on `source` for its topic.
pub fn subscribe(source: &LinkSource) -> Result<MediaSubscriber, String> {
    let subscriber = MediaSubscriber::new();
    subscriber.connect(&source.endpoint).map_err(|e| format!("media link to {}: {e}", source.endpoint))?;
    subscriber.subscribe(&source.topic).map_err(|e| format!("media link topic {}: {e}", source.topic))?;
    Ok(subscriber)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_continue_across_a_new_producer_clock() {
        let mut link = LinkIn::new(Codec::Vp8, 1);
        assert_eq!(link.continuous(90_000), 90_000);
        assert_eq!(link.continuous(93_000), 93_000);
        // The producer restarts at 0: output goes on 20 ms later.
        assert_eq!(link.continuous(0), 94_800);
        assert_eq!(link.continuous(3_000), 97_800);
        // A jump of more than 10 s ahead is a new clock too.
        assert_eq!(link.continuous(3_000 + 20 * 90_000), 99_600);
        // Small steps ahead are kept as they are.
        assert_eq!(link.continuous(3_000 + 20 * 90_000 + 3_000), 102_600);
    }
}

//! The media link's unit of exchange (DESIGN.md §5): one encoded frame with a small fixed
//! binary header, carried between daemons on ZeroMQ PUB/SUB with the stream id as topic.
//!
//! Header (big endian, 24 bytes), then the payload:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `OWTF` |
//! | 4 | version (1) |
//! | 5 | kind: 0 audio, 1 video |
//! | 6 | codec (see [`Codec`]) |
//! | 7 | flags: bit 0 keyframe |
//! | 8..12 | sequence number of the frame in its stream (gaps mean losses) |
//! | 12..20 | timestamp in the codec's clock ([`Codec::clock_rate`]) |
//! | 20..22 | video width (0 when unknown or audio) |
//! | 22..24 | video height (0 when unknown or audio) |
//!
//! The payload is one whole access unit: a VP8/VP9/AV1 frame, an H.264/H.265 Annex B access
//! unit (start codes before every NAL unit), one Opus packet, or raw G.711/G.722 bytes.

use std::fmt;

/// Length of the fixed header before the payload.
pub const HEADER_LEN: usize = 24;
/// Largest payload a frame may carry (a 4K keyframe fits comfortably).
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;
const MAGIC: &[u8; 4] = b"OWTF";
const VERSION: u8 = 1;
const FLAG_KEYFRAME: u8 = 1;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

/// The codecs a frame can carry, with their wire numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Opus = 1,
    Pcmu = 2,
    Pcma = 3,
    G722 = 4,
    Vp8 = 16,
    Vp9 = 17,
    H264 = 18,
    H265 = 19,
    Av1 = 20,
}

impl Codec {
    const ALL: [Codec; 9] = [
        Codec::Opus,
        Codec::Pcmu,
        Codec::Pcma,
        Codec::G722,
        Codec::Vp8,
        Codec::Vp9,
        Codec::H264,
        Codec::H265,
        Codec::Av1,
    ];

    pub fn kind(self) -> MediaKind {
        match self {
            Codec::Opus | Codec::Pcmu | Codec::Pcma | Codec::G722 => MediaKind::Audio,
            _ => MediaKind::Video,
        }
    }

    /// The timestamp clock in Hz (as RTP: 90 kHz video, 48 kHz Opus, 8 kHz G.711 and G.722).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8_000,
            _ => 90_000,
        }
    }

    /// The OWT name of the codec (`"vp8"`, `"opus"`, `"pcmu"` ...).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
            Codec::G722 => "g722",
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Av1 => "av1",
        }
    }

    /// The codec of an OWT name or an SDP/MIME name, case-insensitive (`"VP8"`, `"video/H264"`).
    pub fn from_name(name: &str) -> Option<Codec> {
        let name = name.rsplit('/').next().unwrap_or(name);
        Codec::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(name))
    }

    fn from_wire(v: u8) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| *c as u8 == v)
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One encoded frame of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFrame {
    pub codec: Codec,
    pub keyframe: bool,
    pub sequence: u32,
    /// In [`Codec::clock_rate`] units.
    pub timestamp: u64,
    /// Video size when known (0 otherwise).
    pub width: u16,
    pub height: u16,
    pub payload: Vec<u8>,
}

/// Why bytes are not a media frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("media frame truncated: {0} bytes, the header alone is {HEADER_LEN}")]
    Truncated(usize),
    #[error("not a media frame (bad magic)")]
    BadMagic,
    #[error("media frame version {0} is not supported (this build speaks {VERSION})")]
    Version(u8),
    #[error("unknown codec number {0} in media frame")]
    UnknownCodec(u8),
    #[error("media frame kind {kind} does not match codec {codec}")]
    KindMismatch { kind: u8, codec: Codec },
    #[error("media frame payload of {0} bytes is over the {MAX_PAYLOAD} byte limit")]
    TooLarge(usize),
}

impl MediaFrame {
    pub fn kind(&self) -> MediaKind {
        self.codec.kind()
    }

    /// Header followed by the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        self.encode_header_into(&mut out);
        out.extend_from_slice(&self.payload);
        out
    }

    /// Only the header, for senders that pass the payload as a second buffer.
    pub fn encode_header_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(match self.kind() {
            MediaKind::Audio => 0,
            MediaKind::Video => 1,
        });
        out.push(self.codec as u8);
        out.push(if self.keyframe { FLAG_KEYFRAME } else { 0 });
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.width.to_be_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
    }

    /// Parses header and payload; anything malformed is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<MediaFrame, FrameError> {
        if bytes.len() < HEADER_LEN {
            return Err(FrameError::Truncated(bytes.len()));
        }
        if &bytes[0..4] != MAGIC {
            return Err(FrameError::BadMagic);
        }
        if bytes[4] != VERSION {
            return Err(FrameError::Version(bytes[4]));
        }
        let codec = Codec::from_wire(bytes[6]).ok_or(FrameError::UnknownCodec(bytes[6]))?;
        let kind_ok = matches!((bytes[5], codec.kind()), (0, MediaKind::Audio) | (1, MediaKind::Video));
        if !kind_ok {
            return Err(FrameError::KindMismatch { kind: bytes[5], codec });
        }
        let payload = &bytes[HEADER_LEN..];
        if payload.len() > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(payload.len()));
        }
        let be_u32 = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let be_u16 = |at: usize| u16::from_be_bytes(bytes[at..at + 2].try_into().expect("2 bytes"));
        Ok(MediaFrame {
            codec,
            keyframe: bytes[7] & FLAG_KEYFRAME != 0,
            sequence: be_u32(8),
            timestamp: u64::from_be_bytes(bytes[12..20].try_into().expect("8 bytes")),
            width: be_u16(20),
            height: be_u16(22),
            payload: payload.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> MediaFrame {
        MediaFrame {
            codec: Codec::Vp8,
            keyframe: true,
            sequence: 7,
            timestamp: 90_000 * 3 + 17,
            width: 640,
            height: 480,
            payload: vec![1, 2, 3, 4, 5],
        }
    }

    #[test]
    fn round_trip() {
        let f = frame();
        let bytes = f.encode();
        assert_eq!(bytes.len(), HEADER_LEN + 5);
        assert_eq!(MediaFrame::decode(&bytes), Ok(f));
        let audio = MediaFrame { codec: Codec::Opus, keyframe: false, width: 0, height: 0, ..frame() };
        assert_eq!(MediaFrame::decode(&audio.encode()), Ok(audio));
    }

    #[test]
    fn hostile_bytes_are_errors() {
        let good = frame().encode();
        for len in 0..HEADER_LEN {
            assert_eq!(MediaFrame::decode(&good[..len]), Err(FrameError::Truncated(len)));
        }
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(MediaFrame::decode(&bad), Err(FrameError::BadMagic));
        let mut bad = good.clone();
        bad[4] = 9;
        assert_eq!(MediaFrame::decode(&bad), Err(FrameError::Version(9)));
        let mut bad = good.clone();
        bad[6] = 200;
        assert_eq!(MediaFrame::decode(&bad), Err(FrameError::UnknownCodec(200)));
        let mut bad = good.clone();
        bad[5] = 0;
        assert!(matches!(MediaFrame::decode(&bad), Err(FrameError::KindMismatch { .. })));
        let mut huge = good[..HEADER_LEN].to_vec();
        huge.resize(HEADER_LEN + MAX_PAYLOAD + 1, 0);
        assert_eq!(MediaFrame::decode(&huge), Err(FrameError::TooLarge(MAX_PAYLOAD + 1)));
    }

    #[test]
    fn codec_names() {
        assert_eq!(Codec::from_name("video/VP8"), Some(Codec::Vp8));
        assert_eq!(Codec::from_name("OPUS"), Some(Codec::Opus));
        assert_eq!(Codec::from_name("h264"), Some(Codec::H264));
        assert_eq!(Codec::from_name("theora"), None);
        assert_eq!(Codec::G722.clock_rate(), 8000);
        assert_eq!(Codec::Av1.kind(), MediaKind::Video);
    }
}

//! Hostile payloads (DESIGN.md §8: parsers facing the network answer malformed input with an
//! error and keep serving): empty, truncated, random, flipped. Every decoder answers without
//! panicking, detectable garbage is an error, and a good keyframe still decodes afterwards.

mod common;

use common::*;
use owt_codec::audio::MAX_AUDIO_PAYLOAD;
use owt_codec::{AudioDecoder, AudioEncoder, CodecError, EncoderSettings, Picture, VideoDecoder, VideoEncoder};
use owt_proto::media::{Codec, MediaFrame};

fn frame(codec: Codec, payload: Vec<u8>) -> MediaFrame {
    MediaFrame { codec, keyframe: false, sequence: 0, timestamp: 0, width: 0, height: 0, payload }
}

/// Random payloads of many lengths, plus all-zero and all-0xff ones.
fn garbage() -> Vec<(String, Vec<u8>)> {
    let mut cases = Vec::new();
    for len in [1usize, 2, 3, 7, 10, 100, 1000, 10_000, 100_000] {
        for seed in 0..4 {
            cases.push((format!("random {len} #{seed}"), bytes(seed * 1000 + len as u64, len)));
        }
    }
    cases.push(("zeros".into(), vec![0; 500]));
    cases.push(("0xff".into(), vec![0xff; 500]));
    cases.push(("start code then random".into(), [vec![0, 0, 0, 1], bytes(5, 200)].concat()));
    cases
}

fn keyframe(codec: Codec) -> MediaFrame {
    let settings = EncoderSettings {
        codec,
        width: 320,
        height: 240,
        framerate: 30,
        bitrate_kbps: 500,
        keyframe_interval_frames: 0,
    };
    VideoEncoder::new(settings).unwrap().encode(&Picture::solid(320, 240, RED).unwrap(), 0, false).unwrap().remove(0)
}

fn assert_recovers(decoder: &mut VideoDecoder, key: &MediaFrame, after: &str) {
    let picture = decoder.decode(key).unwrap_or_else(|e| panic!("{}: keyframe after {after}: {e}", key.codec));
    let picture = picture.unwrap_or_else(|| panic!("{}: no picture for the keyframe after {after}", key.codec));
    assert!(near(picture.pixel_rgb(160, 120), RED, 12), "{}: keyframe after {after}", key.codec);
}

#[test]
fn video_decoders_reject_garbage() {
    for codec in [Codec::Vp8, Codec::Vp9, Codec::H264] {
        let key = keyframe(codec);
        let mut cases = garbage();
        for div in [2, 3, 5, 10, 50] {
            cases.push((format!("keyframe cut to 1/{div}"), key.payload[..key.payload.len() / div].to_vec()));
        }
        // A fresh decoder per case: an error. One decoder through every case, with reference
        // pictures: no panic and a good keyframe decodes after each (a few random bytes can
        // be a valid frame there, e.g. a VP9 header that re-shows a reference picture).
        let mut shared = VideoDecoder::new(codec).unwrap();
        for (name, payload) in cases {
            let hostile = frame(codec, payload);
            let mut fresh = VideoDecoder::new(codec).unwrap();
            let result = fresh.decode(&hostile);
            assert!(matches!(result, Err(CodecError::Decode { .. })), "{codec} {name}: {result:?}");
            assert_recovers(&mut fresh, &key, &name);
            let _ = shared.decode(&hostile);
            assert_recovers(&mut shared, &key, &name);
        }
        // Bits flipped in the second half: an error or a damaged picture, never a panic.
        let mut flipped = key.payload.clone();
        for i in (flipped.len() / 2..flipped.len()).step_by(5) {
            flipped[i] ^= 0xa5;
        }
        let _ = VideoDecoder::new(codec).unwrap().decode(&frame(codec, flipped));
        // A delta frame first (its keyframe lost): an error, the caller asks for a keyframe.
        let settings = EncoderSettings {
            codec,
            width: 320,
            height: 240,
            framerate: 30,
            bitrate_kbps: 500,
            keyframe_interval_frames: 0,
        };
        let mut encoder = VideoEncoder::new(settings).unwrap();
        let picture = Picture::solid(320, 240, BLUE).unwrap();
        encoder.encode(&picture, 0, false).unwrap();
        let delta = encoder.encode(&picture, 3000, false).unwrap().remove(0);
        assert!(!delta.keyframe);
        let mut late = VideoDecoder::new(codec).unwrap();
        assert!(late.decode(&delta).is_err(), "{codec}: delta frame without its keyframe");
    }
}

/// H.265 and AV1 (no encoder here to make real streams for every case): garbage never panics
/// and never yields a picture; what the framing check sees is an error.
#[test]
fn h265_and_av1_decoders_survive_garbage() {
    for codec in [Codec::H265, Codec::Av1] {
        let mut shared = VideoDecoder::new(codec).unwrap();
        for (name, payload) in garbage() {
            let hostile = frame(codec, payload);
            let result = shared.decode(&hostile);
            assert!(!matches!(result, Ok(Some(_))), "{codec} {name}: a picture from garbage");
            let fresh = VideoDecoder::new(codec).unwrap().decode(&hostile);
            assert!(!matches!(fresh, Ok(Some(_))), "{codec} {name}: a picture from garbage");
        }
        // Annex B without a start code, or a forbidden bit: errors.
        let mut d = VideoDecoder::new(codec).unwrap();
        let bad = if codec == Codec::H265 { vec![0x40, 0x01, 0x0c] } else { vec![0x80, 0x00] };
        assert!(matches!(d.decode(&frame(codec, bad)), Err(CodecError::Decode { .. })), "{codec}");
    }
}

#[test]
fn frame_level_errors() {
    for codec in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::H265, Codec::Av1] {
        let mut d = VideoDecoder::new(codec).unwrap();
        assert!(matches!(d.decode(&frame(codec, Vec::new())), Err(CodecError::EmptyPayload(_))), "{codec}");
        let other = if codec == Codec::Vp8 { Codec::Vp9 } else { Codec::Vp8 };
        assert!(matches!(d.decode(&frame(other, vec![1, 2, 3])), Err(CodecError::CodecMismatch { .. })), "{codec}");
        let huge = frame(codec, vec![0; owt_proto::media::MAX_PAYLOAD + 1]);
        assert!(matches!(d.decode(&huge), Err(CodecError::PayloadTooLarge { .. })), "{codec}");
    }
    for codec in [Codec::Opus, Codec::Pcmu, Codec::Pcma, Codec::G722] {
        let mut d = AudioDecoder::new(codec).unwrap();
        assert!(matches!(d.decode(&frame(codec, Vec::new())), Err(CodecError::EmptyPayload(_))), "{codec}");
        let huge = frame(codec, vec![0; MAX_AUDIO_PAYLOAD + 1]);
        assert!(matches!(d.decode(&huge), Err(CodecError::PayloadTooLarge { .. })), "{codec}");
        assert!(matches!(d.decode(&frame(Codec::Vp8, vec![1])), Err(CodecError::CodecMismatch { .. })), "{codec}");
    }
}

/// Every byte string is valid G.711 and G.722, and Opus packets are mostly self-delimiting
/// bit fields, so random audio payloads may decode (to noise): they must not panic, bad Opus
/// framing is an error, and a real packet decodes right after.
#[test]
fn audio_decoders_survive_garbage() {
    for codec in [Codec::Opus, Codec::Pcmu, Codec::Pcma, Codec::G722] {
        let mut encoder = AudioEncoder::new(codec, 32).unwrap();
        let good: Vec<MediaFrame> = encoder.encode(&tone(1000.0, 8000.0, 0, 4800)).unwrap();
        let mut decoder = AudioDecoder::new(codec).unwrap();
        for (name, payload) in garbage().into_iter().filter(|(_, p)| p.len() <= MAX_AUDIO_PAYLOAD) {
            let result = decoder.decode(&frame(codec, payload)).map(|s| s.len());
            if let Ok(n) = result {
                assert!(n <= 48 * 1000, "{codec} {name}: {n} samples");
            }
            let n = decoder.decode(&good[3]).unwrap_or_else(|e| panic!("{codec}: good packet after {name}: {e}")).len();
            assert!(n > 0, "{codec}: samples from a good packet after {name}");
        }
    }
    let mut opus = AudioDecoder::new(Codec::Opus).unwrap();
    // Code 3 (several frames) with its frame count byte missing, or a count of 63 frames in
    // two bytes.
    for bad in [vec![0x03], vec![0xff], vec![0x03, 0xff]] {
        assert!(matches!(opus.decode(&frame(Codec::Opus, bad.clone())), Err(CodecError::Decode { .. })), "{bad:?}");
    }
}

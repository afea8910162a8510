//! Real encoders and decoders end to end: pictures encoded with VP8, VP9 and H.264 (openh264)
//! come back from FFmpeg's decoders with their colours, one frame in and one frame out.

mod common;

use common::*;
use owt_codec::{CodecError, EncoderSettings, Picture, VideoDecoder, VideoEncoder};
use owt_media::layout::Rect;
use owt_proto::media::Codec;

fn settings(codec: Codec, width: u32, height: u32) -> EncoderSettings {
    EncoderSettings { codec, width, height, framerate: 30, bitrate_kbps: 800, keyframe_interval_frames: 0 }
}

/// A picture with a different colour in each quadrant, so swapped planes, mirrored rows or
/// shifted chroma show up.
fn quadrants(w: u32, h: u32) -> Picture {
    let mut p = Picture::solid(w, h, RED).unwrap();
    p.fill_rect_rgb(Rect { x: w / 2, y: 0, w: w / 2, h: h / 2 }, GREEN);
    p.fill_rect_rgb(Rect { x: 0, y: h / 2, w: w / 2, h: h / 2 }, BLUE);
    p.fill_rect_rgb(Rect { x: w / 2, y: h / 2, w: w / 2, h: h / 2 }, YELLOW);
    p
}

fn centre(w: u32, h: u32, qx: u32, qy: u32) -> Rect {
    // The middle of quadrant (qx, qy), 16x16, away from the edges where blocks blur colours.
    Rect { x: qx * w / 2 + w / 4 - 8, y: qy * h / 2 + h / 4 - 8, w: 16, h: 16 }
}

fn round_trip(codec: Codec) {
    let (w, h) = (320, 240);
    let mut encoder = VideoEncoder::new(settings(codec, w, h)).unwrap();
    let mut decoder = VideoDecoder::new(codec).unwrap();
    let solid_colours = [RED, GREEN, BLUE, WHITE, BG];
    let mut last_sequence = None;
    for (i, colour) in solid_colours.iter().enumerate() {
        let picture = Picture::solid(w, h, *colour).unwrap();
        let pts = i as u64 * 3000;
        let frames = encoder.encode(&picture, pts, false).unwrap();
        assert_eq!(frames.len(), 1, "{codec}: one picture in, one frame out (frame {i})");
        let frame = &frames[0];
        assert_eq!(frame.codec, codec);
        assert_eq!((frame.width, frame.height), (w as u16, h as u16));
        assert_eq!(frame.timestamp, pts);
        assert_eq!(frame.keyframe, i == 0, "{codec}: only the first frame is a keyframe (frame {i})");
        if let Some(last) = last_sequence {
            assert_eq!(frame.sequence, last + 1);
        }
        last_sequence = Some(frame.sequence);
        let decoded = decoder.decode(frame).unwrap().unwrap_or_else(|| panic!("{codec}: no picture for frame {i}"));
        assert_eq!((decoded.width(), decoded.height()), (w, h));
        let got = decoded.mean_rgb(Rect { x: 100, y: 80, w: 120, h: 80 });
        assert!(near(got, *colour, 12), "{codec}: frame {i} is {got:?}, sent {colour:?}");
    }

    // A picture with four colours, as a forced keyframe, decoded by a fresh decoder.
    let picture = quadrants(w, h);
    let frames = encoder.encode(&picture, 99_000, true).unwrap();
    assert_eq!(frames.len(), 1);
    assert!(frames[0].keyframe, "{codec}: forced keyframe");
    let mut fresh = VideoDecoder::new(codec).unwrap();
    let decoded = fresh.decode(&frames[0]).unwrap().expect("a keyframe decodes on its own");
    for (qx, qy, colour) in [(0, 0, RED), (1, 0, GREEN), (0, 1, BLUE), (1, 1, YELLOW)] {
        let got = decoded.mean_rgb(centre(w, h, qx, qy));
        assert!(near(got, colour, 14), "{codec}: quadrant ({qx}, {qy}) is {got:?}, sent {colour:?}");
    }
    // The old decoder follows too (a keyframe mid-stream).
    assert!(decoder.decode(&frames[0]).unwrap().is_some());

    // A size the encoder was not made for is an error, not a panic.
    let wrong = Picture::new(w + 2, h).unwrap();
    assert!(matches!(encoder.encode(&wrong, 100_000, false), Err(CodecError::Invalid { .. })));
}

#[test]
fn vp8_round_trip() {
    round_trip(Codec::Vp8);
}

#[test]
fn vp9_round_trip() {
    round_trip(Codec::Vp9);
}

#[test]
fn h264_round_trip() {
    round_trip(Codec::H264);
}

/// openh264's output is Annex B, constrained baseline, with parameter sets before each IDR.
#[test]
fn h264_is_annex_b_constrained_baseline() {
    let mut encoder = VideoEncoder::new(settings(Codec::H264, 320, 240)).unwrap();
    let frame = encoder.encode(&quadrants(320, 240), 0, false).unwrap().remove(0);
    let p = &frame.payload;
    assert!(p.starts_with(&[0, 0, 0, 1]) || p.starts_with(&[0, 0, 1]), "Annex B start code");
    // NAL unit types in order, after each start code.
    let mut types = Vec::new();
    let mut sps = None;
    for i in 0..p.len().saturating_sub(3) {
        if p[i..i + 3] == [0, 0, 1] {
            let t = p[i + 3] & 0x1f;
            if t == 7 {
                sps = Some(i + 3);
            }
            types.push(t);
        }
    }
    assert_eq!(&types[..2], &[7, 8], "SPS and PPS first: {types:?}");
    assert!(types.contains(&5), "an IDR slice: {types:?}");
    let sps = sps.unwrap();
    assert_eq!(p[sps + 1], 66, "profile_idc baseline");
    assert!(p[sps + 2] & 0x40 != 0, "constraint_set1_flag (constrained baseline): {:#x}", p[sps + 2]);
}

/// Periodic keyframes when asked for, none otherwise.
#[test]
fn keyframe_interval() {
    for codec in [Codec::Vp8, Codec::Vp9, Codec::H264] {
        let mut encoder =
            VideoEncoder::new(EncoderSettings { keyframe_interval_frames: 10, ..settings(codec, 160, 120) }).unwrap();
        let picture = quadrants(160, 120);
        let keys: Vec<usize> = (0..25)
            .filter(|&i| encoder.encode(&picture, i as u64 * 3000, false).unwrap().iter().any(|f| f.keyframe))
            .collect();
        assert_eq!(keys, vec![0, 10, 20], "{codec}");
    }
}

/// Odd-sized and non-I420 streams come out as even I420 pictures: an AV1 stream made by
/// libaom (in the test only) decodes through libdav1d.
#[test]
fn av1_and_h265_decoders() {
    assert!(VideoDecoder::new(Codec::H265).is_ok(), "FFmpeg's hevc decoder");
    let mut decoder = VideoDecoder::new(Codec::Av1).expect("libdav1d or libaom decoder");
    for (i, frame) in av1_stream(&[RED, BLUE]).into_iter().enumerate() {
        let picture = decoder.decode(&frame).unwrap().expect("a picture per frame");
        assert_eq!((picture.width(), picture.height()), (162, 120));
        let want = [RED, BLUE][i];
        let got = picture.mean_rgb(Rect { x: 40, y: 40, w: 60, h: 40 });
        assert!(near(got, want, 14), "av1 frame {i} is {got:?}, sent {want:?}");
    }
}

/// AV1 frames of 161x120 (odd width) in solid colours, from FFmpeg's libaom-av1 encoder.
fn av1_stream(colours: &[owt_types::room::Rgb]) -> Vec<owt_proto::media::MediaFrame> {
    use ffmpeg_next as ffmpeg;
    ffmpeg::init().unwrap();
    let codec = ffmpeg::encoder::find_by_name("libaom-av1").expect("libaom-av1 encoder");
    let mut enc = ffmpeg::codec::Context::new_with_codec(codec).encoder().video().unwrap();
    enc.set_width(161);
    enc.set_height(120);
    enc.set_format(ffmpeg::format::Pixel::YUV420P);
    enc.set_time_base((1, 30));
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("usage", "realtime");
    opts.set("cpu-used", "8");
    opts.set("lag-in-frames", "0");
    let mut enc = enc.open_as_with(codec, opts).unwrap();
    let mut out = Vec::new();
    for (i, colour) in colours.iter().enumerate() {
        let (y, u, v) = owt_codec::picture::rgb_to_yuv(*colour);
        let mut frame = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, 161, 120);
        frame.data_mut(0).fill(y);
        frame.data_mut(1).fill(u);
        frame.data_mut(2).fill(v);
        frame.set_pts(Some(i as i64));
        enc.send_frame(&frame).unwrap();
        let mut packet = ffmpeg::Packet::empty();
        while enc.receive_packet(&mut packet).is_ok() {
            out.push(owt_proto::media::MediaFrame {
                codec: Codec::Av1,
                keyframe: packet.is_key(),
                sequence: out.len() as u32,
                timestamp: i as u64 * 3000,
                width: 161,
                height: 120,
                payload: packet.data().unwrap().to_vec(),
            });
        }
    }
    assert_eq!(out.len(), colours.len(), "libaom in realtime mode: a packet per frame");
    out
}

#[test]
fn settings_are_checked() {
    let bad = [
        EncoderSettings { width: 321, ..settings(Codec::Vp8, 320, 240) },
        EncoderSettings { height: 0, ..settings(Codec::Vp8, 320, 240) },
        EncoderSettings { framerate: 0, ..settings(Codec::Vp8, 320, 240) },
        EncoderSettings { bitrate_kbps: 0, ..settings(Codec::Vp8, 320, 240) },
    ];
    for s in bad {
        assert!(matches!(VideoEncoder::new(s), Err(CodecError::Invalid { .. })), "{s:?}");
    }
    assert!(matches!(VideoEncoder::new(settings(Codec::Opus, 320, 240)), Err(CodecError::WrongKind { .. })));
    assert!(matches!(VideoEncoder::new(settings(Codec::Av1, 320, 240)), Err(CodecError::Unsupported { .. })));
    assert!(matches!(VideoDecoder::new(Codec::Pcmu), Err(CodecError::WrongKind { .. })));
}

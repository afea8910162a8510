//! Not a test: the cost of one mixed 1280x720 frame from four inputs (compose + encode), for
//! each encoder, on moving synthetic content. Prints a table; never asserts on time (DESIGN.md
//! §10). Run it in release mode:
//!
//! ```text
//! cargo test --release -p owt-codec --test speed -- --ignored --nocapture
//! ```

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use owt_codec::{Compositor, EncoderSettings, Picture, VideoEncoder};
use owt_media::layout::{assign, choose_template, pixel_rects, templates_for_view, Rect};
use owt_proto::media::Codec;
use owt_types::room::{FitPolicy, ViewVideo};

const FRAMES: usize = 150;

/// A moving pattern with grain, so encoders work as on camera pictures.
fn synthetic(w: u32, h: u32, t: usize, seed: u64) -> Picture {
    let mut p = Picture::new(w, h).unwrap();
    let noise = bytes(seed * 7919 + t as u64, (w * h) as usize);
    let t = t as f32;
    let (ys, cs) = (p.y_stride(), p.uv_stride());
    let (py, pu, pv) = p.planes_mut();
    for y in 0..h as usize {
        for x in 0..w as usize {
            let v =
                128.0 + 60.0 * (x as f32 * 0.03 + t * 0.15 + seed as f32).sin() * (y as f32 * 0.05 - t * 0.08).cos();
            py[y * ys + x] = (v + f32::from(noise[y * w as usize + x] % 12) - 6.0).clamp(16.0, 235.0) as u8;
        }
    }
    for y in 0..h as usize / 2 {
        for x in 0..w as usize / 2 {
            pu[y * cs + x] = (128.0 + 30.0 * (x as f32 * 0.02 + t * 0.05).sin()) as u8;
            pv[y * cs + x] = (128.0 + 30.0 * (y as f32 * 0.03 - t * 0.04 + seed as f32).cos()) as u8;
        }
    }
    p
}

#[test]
#[ignore = "measurement: run with --release --ignored --nocapture"]
fn compose_and_encode_720p_from_four_inputs() {
    let (w, h) = (1280, 720);
    // Four camera-like inputs: two 640x480 (letterboxed), one 1280x720, one 320x240.
    let sizes = [(640, 480), (640, 480), (1280, 720), (320, 240)];
    let ids: Vec<String> = (0..4).map(|i| format!("s{i}")).collect();
    let clips: Vec<Vec<Picture>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &(iw, ih))| (0..30).map(|t| synthetic(iw, ih, t, i as u64)).collect())
        .collect();
    let view = ViewVideo { max_input: 4, ..ViewVideo::default() };
    let templates = templates_for_view(&view);
    let template = choose_template(&templates, 4).unwrap();
    let assignment = assign(template, &ids, None);
    let size_map: HashMap<String, (u32, u32)> = ids.iter().cloned().zip(sizes.iter().copied()).collect();
    let placements = pixel_rects(template, &assignment, w, h, &size_map, FitPolicy::Letterbox);

    println!();
    println!("{:<6} {:>12} {:>12} {:>12} {:>10}", "codec", "compose ms", "encode ms", "total ms", "kbps");
    for codec in [Codec::Vp8, Codec::Vp9, Codec::H264] {
        let mut compositor = Compositor::new(w, h, BG).unwrap();
        let settings = EncoderSettings {
            codec,
            width: w,
            height: h,
            framerate: 30,
            bitrate_kbps: 2000,
            keyframe_interval_frames: 300,
        };
        let mut encoder = VideoEncoder::new(settings).unwrap();
        let (mut compose, mut encode, mut bytes_out) = (Duration::ZERO, Duration::ZERO, 0usize);
        for f in 0..FRAMES {
            let list: Vec<(Rect, Rect, &Picture)> = placements
                .iter()
                .map(|p| {
                    let i = ids.iter().position(|id| *id == p.stream_id).unwrap();
                    (p.dst, p.src_crop, &clips[i][f % 30])
                })
                .collect();
            let t0 = Instant::now();
            let canvas = compositor.compose(&list);
            let t1 = Instant::now();
            let frames = encoder.encode(canvas, f as u64 * 3000, false).unwrap();
            let t2 = Instant::now();
            compose += t1 - t0;
            encode += t2 - t1;
            bytes_out += frames.iter().map(|f| f.payload.len()).sum::<usize>();
        }
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / FRAMES as f64;
        let kbps = bytes_out as f64 * 8.0 / (FRAMES as f64 / 30.0) / 1000.0;
        println!(
            "{:<6} {:>12.2} {:>12.2} {:>12.2} {:>10.0}",
            codec.name(),
            per(compose),
            per(encode),
            per(compose + encode),
            kbps
        );
    }
}

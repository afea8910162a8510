//! The MCU's video work, flat out: decodes N VP8/VP9 IVF files with [`VideoDecoder`], composes
//! output frame k from every input's frame k on a 1280x720 canvas with the fluid template for N
//! inputs (owt_media::layout, letterbox, black background, as owt-mixer's renderer does), and
//! encodes it with [`VideoEncoder`] (VP8, 30 fps, 2000 kbps, owt-mixer's keyframe interval).
//! No pacing: the run is CPU-bound, so CPU per output frame is comparable with an ffmpeg
//! pipeline doing the same work (tests/bench/mix.sh, `make bench-mix`). Not a test: nothing is
//! asserted about time.
//!
//!   mixbench [--width W] [--height H] [--fps F] [--kbps K] [--out OUT.ivf] IN.ivf...
//!     prints one JSON line: frames, cpu_s (user+sys of this process while mixing), wall_s,
//!     first_frame_ms (codecs created to first encoded output frame: a proxy for the delay
//!     from a join to its first mixed frame), bytes (encoded output), and wall seconds spent
//!     decoding, composing and encoding.
//!   mixbench --layout N [--width W --height H] IN.ivf
//!     prints, per region of the template for N inputs of IN's size, "rx ry rw rh dx dy dw dh"
//!     (region and letterboxed picture on the canvas), for building the equivalent ffmpeg graph.
//!   mixbench --encoder-threads [--width W --height H]
//!     prints the threads owt-codec's VP8 encoder uses for that size on this machine.
//!
//! IVF is read and written by hand: a 32-byte file header, then per frame a 12-byte header
//! (u32 LE payload size, u64 LE pts) and the payload. That is twenty lines, not worth a crate.
//! Files are read whole before the clock starts; CPU is user+sys of the whole process (all
//! threads, libvpx's included) from /proc/self/stat.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use owt_codec::{Compositor, EncoderSettings, Picture, VideoDecoder, VideoEncoder};
use owt_media::layout::{self, Placement};
use owt_proto::media::{Codec, MediaFrame};
use owt_types::room::{FitPolicy, Rgb, ViewVideo};

/// One IVF file: its codec, picture size and frame payloads.
struct Ivf {
    codec: Codec,
    width: u32,
    height: u32,
    frames: Vec<Vec<u8>>,
}

fn read_ivf(path: &str) -> Result<Ivf, String> {
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if data.len() < 32 || &data[..4] != b"DKIF" {
        return Err(format!("{path}: not an IVF file"));
    }
    let u16_at = |i: usize| u32::from(u16::from_le_bytes([data[i], data[i + 1]]));
    let codec = match &data[8..12] {
        b"VP80" => Codec::Vp8,
        b"VP90" => Codec::Vp9,
        other => return Err(format!("{path}: codec {:?} (VP80 or VP90 only)", String::from_utf8_lossy(other))),
    };
    let (width, height) = (u16_at(12), u16_at(14));
    let mut at = (u16_at(6) as usize).max(32);
    let mut frames = Vec::new();
    while at + 12 <= data.len() {
        let size = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        let payload = data.get(at + 12..at + 12 + size).ok_or_else(|| format!("{path}: truncated frame"))?;
        frames.push(payload.to_vec());
        at += 12 + size;
    }
    Ok(Ivf { codec, width, height, frames })
}

fn ivf_header(codec: Codec, width: u32, height: u32, fps: u32, frames: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(32);
    h.extend_from_slice(b"DKIF");
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&32u16.to_le_bytes());
    h.extend_from_slice(if codec == Codec::Vp9 { b"VP90" } else { b"VP80" });
    h.extend_from_slice(&(width as u16).to_le_bytes());
    h.extend_from_slice(&(height as u16).to_le_bytes());
    h.extend_from_slice(&fps.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&frames.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h
}

/// User+sys CPU seconds of this process, all threads (the kernel's USER_HZ is 100).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After "pid (comm)": state is field 3, utime 14, stime 15.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The threads `EncoderSettings::threads` (private to owt-codec) gives libvpx: as WebRTC, 3 for
/// 720p, 4 from 1080p, at most the cores.
fn encoder_threads(width: u32, height: u32) -> usize {
    let wanted = match u64::from(width) * u64::from(height) {
        p if p >= 1920 * 1080 => 4,
        p if p >= 1280 * 720 => 3,
        p if p >= 640 * 360 => 2,
        _ => 1,
    };
    wanted.min(std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}

/// The draw list owt-mixer's renderer would make: fluid templates for `n` inputs (maxInput n),
/// the smallest that holds them, inputs in order, letterboxed.
struct Layout {
    template: layout::Template,
    assignment: Vec<(String, Option<String>)>,
}

impl Layout {
    fn new(n: usize) -> Layout {
        let view = ViewVideo { max_input: n as u32, ..ViewVideo::default() };
        let templates = layout::templates_for_view(&view);
        let template = layout::choose_template(&templates, n).expect("fluid templates").clone();
        let inputs: Vec<String> = (0..n).map(|i| format!("in{i}")).collect();
        let assignment = layout::assign(&template, &inputs, None);
        Layout { template, assignment }
    }

    fn placements(&self, width: u32, height: u32, sizes: &HashMap<String, (u32, u32)>) -> Vec<Placement> {
        layout::pixel_rects(&self.template, &self.assignment, width, height, sizes, FitPolicy::Letterbox)
    }
}

struct Args {
    width: u32,
    height: u32,
    fps: u32,
    kbps: u32,
    out: Option<String>,
    layout: Option<usize>,
    encoder_threads: bool,
    inputs: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        width: 1280,
        height: 720,
        fps: 30,
        kbps: 2000,
        out: None,
        layout: None,
        encoder_threads: false,
        inputs: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| v.parse::<u32>().map_err(|_| format!("{name}: not a number: {v}"));
        match arg.as_str() {
            "--width" => args.width = number("--width", value("--width")?)?,
            "--height" => args.height = number("--height", value("--height")?)?,
            "--fps" => args.fps = number("--fps", value("--fps")?)?,
            "--kbps" => args.kbps = number("--kbps", value("--kbps")?)?,
            "--out" => args.out = Some(value("--out")?),
            "--encoder-threads" => args.encoder_threads = true,
            "--layout" => args.layout = Some(number("--layout", value("--layout")?)? as usize),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => args.inputs.push(arg),
        }
    }
    if args.inputs.is_empty() && !args.encoder_threads {
        return Err("usage: mixbench [--width W --height H] [--fps F --kbps K --out OUT.ivf | --layout N] IN.ivf... \
                    | --encoder-threads"
            .into());
    }
    Ok(args)
}

fn print_layout(args: &Args, n: usize) -> Result<(), String> {
    let input = read_ivf(&args.inputs[0])?;
    let layout = Layout::new(n);
    let sizes = (0..n).map(|i| (format!("in{i}"), (input.width, input.height))).collect();
    for p in layout.placements(args.width, args.height, &sizes) {
        let region = layout::region_rect(
            layout.template.region(&p.region_id).expect("assigned region"),
            args.width,
            args.height,
        );
        let (r, d) = (region, p.dst);
        println!("{} {} {} {} {} {} {} {}", r.x, r.y, r.w, r.h, d.x, d.y, d.w, d.h);
    }
    Ok(())
}

fn mix(args: &Args) -> Result<(), String> {
    let inputs = args.inputs.iter().map(|p| read_ivf(p)).collect::<Result<Vec<_>, _>>()?;
    let frames = inputs.iter().map(|i| i.frames.len()).min().unwrap_or(0);
    let n = inputs.len();
    let layout = Layout::new(n);
    let ids: Vec<String> = (0..n).map(|i| format!("in{i}")).collect();
    let mut out_file = match &args.out {
        Some(path) => Some(std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?)),
        None => None,
    };
    if let Some(f) = out_file.as_mut() {
        f.write_all(&ivf_header(Codec::Vp8, args.width, args.height, args.fps, frames as u32))
            .map_err(|e| e.to_string())?;
    }

    // The frames as they would arrive from the media link, made before the clock starts.
    let media: Vec<Vec<MediaFrame>> = inputs
        .iter()
        .map(|input| {
            input.frames[..frames]
                .iter()
                .enumerate()
                .map(|(k, payload)| MediaFrame {
                    codec: input.codec,
                    keyframe: false,
                    sequence: k as u32,
                    timestamp: k as u64 * 90_000 / u64::from(args.fps),
                    width: input.width as u16,
                    height: input.height as u16,
                    payload: payload.clone(),
                })
                .collect()
        })
        .collect();

    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let mut decoders =
        inputs.iter().map(|i| VideoDecoder::new(i.codec)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    let mut pictures =
        inputs.iter().map(|_| Picture::new(2, 2)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    let mut has_picture = vec![false; n];
    let mut compositor = Compositor::new(args.width, args.height, Rgb::default()).map_err(|e| e.to_string())?;
    let settings = EncoderSettings {
        codec: Codec::Vp8,
        width: args.width,
        height: args.height,
        framerate: args.fps,
        bitrate_kbps: args.kbps,
        // owt-mixer: the view's keyFrameInterval (OWT's default 100 s) in frames.
        keyframe_interval_frames: 100 * args.fps,
    };
    let mut encoder = VideoEncoder::new(settings).map_err(|e| e.to_string())?;
    let (mut out_frames, mut bytes, mut first_frame_ms, mut decode_errors) = (0u64, 0u64, None, 0u64);
    let mut sizes: HashMap<String, (u32, u32)> = HashMap::new();
    // Wall time per stage (the encoder's threads work inside `encode`).
    let (mut decode_s, mut compose_s, mut encode_s) = (0f64, 0f64, 0f64);
    for k in 0..frames {
        let t0 = Instant::now();
        let states = decoders.iter_mut().zip(pictures.iter_mut()).zip(has_picture.iter_mut());
        for (((decoder, picture), has), frames) in states.zip(&media) {
            match decoder.decode_into(&frames[k], picture) {
                Ok(decoded) => *has |= decoded,
                Err(_) => {
                    decode_errors += 1;
                    decoder.reset();
                }
            }
        }
        let t1 = Instant::now();
        // As owt-mixer's renderer: the draw list from the inputs' current sizes, every frame.
        sizes.clear();
        for i in (0..n).filter(|&i| has_picture[i]) {
            sizes.insert(ids[i].clone(), (pictures[i].width(), pictures[i].height()));
        }
        let placements = layout.placements(args.width, args.height, &sizes);
        let draw: Vec<_> = placements
            .iter()
            .filter_map(|p| ids.iter().position(|id| *id == p.stream_id).map(|i| (p.dst, p.src_crop, &pictures[i])))
            .collect();
        let canvas = compositor.compose(&draw);
        let t2 = Instant::now();
        let pts = k as u64 * 90_000 / u64::from(args.fps);
        let encoded = encoder.encode(canvas, pts, k == 0).map_err(|e| e.to_string())?;
        let t3 = Instant::now();
        decode_s += (t1 - t0).as_secs_f64();
        compose_s += (t2 - t1).as_secs_f64();
        encode_s += (t3 - t2).as_secs_f64();
        for frame in encoded {
            first_frame_ms.get_or_insert_with(|| wall0.elapsed().as_secs_f64() * 1000.0);
            out_frames += 1;
            bytes += frame.payload.len() as u64;
            if let Some(f) = out_file.as_mut() {
                f.write_all(&(frame.payload.len() as u32).to_le_bytes()).map_err(|e| e.to_string())?;
                f.write_all(&(k as u64).to_le_bytes()).map_err(|e| e.to_string())?;
                f.write_all(&frame.payload).map_err(|e| e.to_string())?;
            }
        }
    }
    let (cpu_s, wall_s) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    if let Some(mut f) = out_file {
        f.flush().map_err(|e| e.to_string())?;
    }
    println!(
        "{{\"inputs\":{n},\"input_frames\":{frames},\"frames\":{out_frames},\"cpu_s\":{cpu_s:.3},\"wall_s\":{wall_s:.3},\
         \"first_frame_ms\":{:.1},\"bytes\":{bytes},\"decode_s\":{decode_s:.3},\"compose_s\":{compose_s:.3},\
         \"encode_s\":{encode_s:.3},\"decode_errors\":{decode_errors},\"width\":{},\"height\":{},\
         \"fps\":{},\"kbps\":{},\"encoder_threads\":{}}}",
        first_frame_ms.unwrap_or(-1.0),
        args.width,
        args.height,
        args.fps,
        args.kbps,
        encoder_threads(args.width, args.height)
    );
    Ok(())
}

fn main() {
    let result = parse_args().and_then(|args| match args.layout {
        _ if args.encoder_threads => {
            println!("{}", encoder_threads(args.width, args.height));
            Ok(())
        }
        Some(n) => print_layout(&args, n),
        None => mix(&args),
    });
    if let Err(e) = result {
        eprintln!("mixbench: {e}");
        std::process::exit(1);
    }
}

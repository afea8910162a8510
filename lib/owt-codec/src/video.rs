//! Video decoding of media-link frames to [`Picture`]s and encoding of [`Picture`]s to
//! media-link frames, for the MCU.
//!
//! - [`VideoDecoder`]: FFmpeg's decoders: native `vp8`, `vp9`, `h264`, `hevc`; `libdav1d` (or
//!   `libaom-av1`) for AV1. A codec the FFmpeg build lacks is [`CodecError::Unsupported`].
//!   Decoding is low-delay (one thread, `LOW_DELAY`): one access unit in, its picture out.
//!   Errors are "explosive" (`AV_EF_EXPLODE`): a corrupt or truncated frame, or a delta frame
//!   without its reference, is a [`CodecError::Decode`] (the caller asks for a keyframe) instead
//!   of a concealed picture.
//! - [`VideoEncoder`]: VP8 and VP9 through FFmpeg's libvpx wrappers in realtime mode (deadline
//!   realtime, high cpu-used, no lag, no alt-ref, CBR with a 1 s buffer as WebRTC does), H.264
//!   through openh264 (constrained baseline, Annex B, camera realtime mode). One picture in, its
//!   encoded frame out, except that both may skip a picture when far over the bitrate budget
//!   (openh264 controls its rate only that way): then nothing comes out for it.

use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;
use owt_proto::media::{Codec, MediaFrame, MediaKind, MAX_PAYLOAD};

use crate::ff::{self, Scaler};
use crate::picture::{check_size, Picture, MAX_DIMENSION};
use crate::{CodecError, Result};

fn ensure_video(codec: Codec) -> Result<()> {
    if codec.kind() == MediaKind::Video {
        Ok(())
    } else {
        Err(CodecError::WrongKind { codec, expected: "video" })
    }
}

/// FFmpeg decoder names for a codec, best first.
fn decoder_names(codec: Codec) -> &'static [&'static str] {
    match codec {
        Codec::Vp8 => &["vp8"],
        Codec::Vp9 => &["vp9"],
        Codec::H264 => &["h264"],
        Codec::H265 => &["hevc"],
        // FFmpeg 5.1's native "av1" decoder needs a hardware accelerator.
        Codec::Av1 => &["libdav1d", "libaom-av1"],
        _ => &[],
    }
}

/// Decodes one video stream.
pub struct VideoDecoder {
    codec: Codec,
    decoder: ffmpeg::decoder::Video,
    /// The last decoded frame, and the one the next is received into.
    frame: ffmpeg::frame::Video,
    spare: ffmpeg::frame::Video,
    /// For frames that are not I420 of even size: source (width, height, format) and its scaler.
    converter: Option<((u32, u32, ffi::AVPixelFormat), Scaler)>,
}

impl std::fmt::Debug for VideoDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoDecoder").field("codec", &self.codec).finish_non_exhaustive()
    }
}

impl VideoDecoder {
    /// A decoder for `codec`: [`CodecError::WrongKind`] for an audio codec,
    /// [`CodecError::Unsupported`] when FFmpeg has no decoder for it.
    pub fn new(codec: Codec) -> Result<VideoDecoder> {
        ensure_video(codec)?;
        let found = ff::find_decoder(decoder_names(codec)).ok_or(CodecError::Unsupported { codec, what: "decoder" })?;
        let mut ctx = ffmpeg::codec::Context::new_with_codec(found);
        ctx.set_flags(ffmpeg::codec::Flags::LOW_DELAY);
        // One thread: frame threading would delay every picture by a frame per thread.
        ctx.set_threading(ffmpeg::threading::Config::count(1));
        let mut decoder = ctx.decoder();
        decoder.check(ffmpeg::decoder::Check::EXPLODE | ffmpeg::decoder::Check::BITSTREAM);
        let decoder = decoder.open_as(found).and_then(|d| d.video()).map_err(|e| CodecError::decode(codec, e))?;
        Ok(VideoDecoder {
            codec,
            decoder,
            frame: ffmpeg::frame::Video::empty(),
            spare: ffmpeg::frame::Video::empty(),
            converter: None,
        })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes one access unit; `None` when it produced no picture (a VP9 frame that is not
    /// shown, an H.264 access unit with only parameter sets).
    pub fn decode(&mut self, frame: &MediaFrame) -> Result<Option<Picture>> {
        if !self.feed(frame)? {
            return Ok(None);
        }
        let (w, h) = self.out_size()?;
        let mut picture = Picture::new(w, h)?;
        self.convert(&mut picture)?;
        Ok(Some(picture))
    }

    /// As [`VideoDecoder::decode`], into `out` (resized when the stream's size changes), so a
    /// steady stream decodes without allocating. Returns whether `out` holds a new picture.
    pub fn decode_into(&mut self, frame: &MediaFrame, out: &mut Picture) -> Result<bool> {
        if !self.feed(frame)? {
            return Ok(false);
        }
        let (w, h) = self.out_size()?;
        out.resize(w, h)?;
        self.convert(out)?;
        Ok(true)
    }

    /// Forgets the reference pictures (after a loss, before the next keyframe).
    pub fn reset(&mut self) {
        self.decoder.flush();
    }

    /// Sends the payload and takes the decoded frame into `self.frame`; whether there is one.
    fn feed(&mut self, frame: &MediaFrame) -> Result<bool> {
        if frame.codec != self.codec {
            return Err(CodecError::CodecMismatch { expected: self.codec, got: frame.codec });
        }
        if frame.payload.is_empty() {
            return Err(CodecError::EmptyPayload(self.codec));
        }
        if frame.payload.len() > MAX_PAYLOAD {
            return Err(CodecError::PayloadTooLarge { codec: self.codec, len: frame.payload.len(), max: MAX_PAYLOAD });
        }
        check_framing(self.codec, &frame.payload)?;
        let packet = ffmpeg::Packet::copy(&frame.payload);
        self.decoder.send_packet(&packet).map_err(|e| CodecError::decode(self.codec, e))?;
        let mut got = false;
        loop {
            // Into the spare frame: avcodec_receive_frame empties its frame before saying EAGAIN.
            match self.decoder.receive_frame(&mut self.spare) {
                Ok(()) if self.spare.is_corrupt() || self.spare.has_decode_errors() => {
                    return Err(CodecError::decode(self.codec, "corrupt picture"));
                }
                Ok(()) => {
                    std::mem::swap(&mut self.frame, &mut self.spare);
                    got = true;
                }
                Err(ffmpeg::Error::Other { errno: ffmpeg::util::error::EAGAIN }) | Err(ffmpeg::Error::Eof) => break,
                Err(e) => return Err(CodecError::decode(self.codec, e)),
            }
        }
        Ok(got)
    }

    /// Size of the picture for the decoded frame: odd sizes are rounded up to even.
    fn out_size(&self) -> Result<(u32, u32)> {
        let (w, h) = (self.frame.width(), self.frame.height());
        if w == 0 || h == 0 || w > MAX_DIMENSION || h > MAX_DIMENSION {
            return Err(CodecError::decode(self.codec, format!("picture size {w}x{h}")));
        }
        Ok(((w + 1) & !1, (h + 1) & !1))
    }

    /// Copies (I420 of even size) or converts (anything else) the decoded frame into `out`,
    /// which has the size of [`VideoDecoder::out_size`].
    fn convert(&mut self, out: &mut Picture) -> Result<()> {
        let frame = &self.frame;
        let (w, h) = (frame.width(), frame.height());
        if frame.format() == ffmpeg::format::Pixel::YUV420P && (w, h) == (out.width(), out.height()) {
            let (ys, cs) = (out.y_stride(), out.uv_stride());
            let (py, pu, pv) = out.planes_mut();
            for (plane, dst, stride, rows) in
                [(0, py, ys, h as usize), (1, pu, cs, h as usize / 2), (2, pv, cs, h as usize / 2)]
            {
                let (src, src_stride) = (frame.data(plane), frame.stride(plane));
                for row in 0..rows {
                    dst[row * stride..(row + 1) * stride]
                        .copy_from_slice(&src[row * src_stride..row * src_stride + stride]);
                }
            }
            return Ok(());
        }
        let format: ffi::AVPixelFormat = frame.format().into();
        let key = (w, h, format);
        if self.converter.as_ref().is_none_or(|(k, s)| *k != key || s.dst_size() != (out.width(), out.height())) {
            let scaler = Scaler::new(w, h, format, out.width(), out.height())
                .map_err(|e| CodecError::decode(self.codec, format!("unsupported picture format: {e}")))?;
            self.converter = Some((key, scaler));
        }
        let (_, scaler) = self.converter.as_mut().expect("converter set above");
        if scaler.convert_frame(frame, out) {
            Ok(())
        } else {
            Err(CodecError::decode(self.codec, "picture conversion failed"))
        }
    }
}

/// Checks what FFmpeg would take without complaint but cannot be a frame of the media link:
/// an H.264/H.265 access unit must start with an Annex B start code, and the first NAL unit
/// header (H.264/H.265) or OBU header (AV1) must have its forbidden bit clear.
fn check_framing(codec: Codec, payload: &[u8]) -> Result<()> {
    let header = match codec {
        Codec::H264 | Codec::H265 => {
            let zeros = payload.iter().take_while(|&&b| b == 0).count();
            if zeros < 2 || payload.get(zeros) != Some(&1) {
                return Err(CodecError::decode(codec, "not an Annex B access unit (no start code)"));
            }
            payload.get(zeros + 1).copied()
        }
        Codec::Av1 => payload.first().copied(),
        _ => return Ok(()),
    };
    match header {
        Some(h) if h & 0x80 == 0 => Ok(()),
        Some(_) => Err(CodecError::decode(codec, "forbidden bit set in the first header")),
        None => Err(CodecError::decode(codec, "truncated after the start code")),
    }
}

/// What a [`VideoEncoder`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderSettings {
    /// [`Codec::Vp8`], [`Codec::Vp9`] or [`Codec::H264`].
    pub codec: Codec,
    /// Even, 2 to 8192 (pictures given to the encoder must have this size).
    pub width: u32,
    pub height: u32,
    /// Frames per second the caller produces (1 to 120): the rate control's frame budget.
    pub framerate: u32,
    /// Target bitrate (at least 10).
    pub bitrate_kbps: u32,
    /// A keyframe at least every this many frames; 0 for keyframes only when forced.
    pub keyframe_interval_frames: u32,
}

impl EncoderSettings {
    fn validate(&self) -> Result<()> {
        check_size(self.width, self.height)?;
        if !(1..=120).contains(&self.framerate) {
            return Err(CodecError::invalid("framerate", format!("{} (must be 1 to 120)", self.framerate)));
        }
        if !(10..=100_000).contains(&self.bitrate_kbps) {
            return Err(CodecError::invalid("bitrate", format!("{} kbps (must be 10 to 100000)", self.bitrate_kbps)));
        }
        Ok(())
    }

    /// Encoder threads for the picture size (as WebRTC: more threads for larger pictures),
    /// never more than the machine has.
    fn threads(&self) -> usize {
        let pixels = u64::from(self.width) * u64::from(self.height);
        let wanted = match pixels {
            p if p >= 1920 * 1080 => 4,
            p if p >= 1280 * 720 => 3,
            p if p >= 640 * 360 => 2,
            _ => 1,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        wanted.min(cores).max(1)
    }
}

enum Engine {
    Vpx { encoder: ffmpeg::encoder::Video, frame: ffmpeg::frame::Video, packet: ffmpeg::Packet, last_pts: Option<i64> },
    H264 { encoder: Box<openh264::encoder::Encoder> },
}

/// Encodes one video stream.
pub struct VideoEncoder {
    settings: EncoderSettings,
    engine: Engine,
    sequence: u32,
}

impl std::fmt::Debug for VideoEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoEncoder").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl VideoEncoder {
    pub fn new(settings: EncoderSettings) -> Result<VideoEncoder> {
        ensure_video(settings.codec)?;
        settings.validate()?;
        let engine = match settings.codec {
            Codec::Vp8 | Codec::Vp9 => vpx_engine(&settings)?,
            Codec::H264 => h264_engine(&settings)?,
            codec => return Err(CodecError::Unsupported { codec, what: "encoder" }),
        };
        Ok(VideoEncoder { settings, engine, sequence: 0 })
    }

    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    /// Encodes one picture (of the settings' size) taken at `pts_90k` (90 kHz clock, increasing);
    /// the frames carry that timestamp, the keyframe flag, the size and consecutive sequence
    /// numbers. `force_keyframe` makes this picture a keyframe (after a subscriber's request).
    pub fn encode(&mut self, picture: &Picture, pts_90k: u64, force_keyframe: bool) -> Result<Vec<MediaFrame>> {
        let s = self.settings;
        if (picture.width(), picture.height()) != (s.width, s.height) {
            return Err(CodecError::invalid(
                "picture size",
                format!("{}x{} given to a {}x{} encoder", picture.width(), picture.height(), s.width, s.height),
            ));
        }
        let mut out = Vec::with_capacity(1);
        let sequence = &mut self.sequence;
        let mut emit = |payload: Vec<u8>, keyframe: bool| {
            out.push(MediaFrame {
                codec: s.codec,
                keyframe,
                sequence: *sequence,
                timestamp: pts_90k,
                width: s.width as u16,
                height: s.height as u16,
                payload,
            });
            *sequence = sequence.wrapping_add(1);
        };
        match &mut self.engine {
            Engine::Vpx { encoder, frame, packet, last_pts } => {
                ff::make_writable(frame).map_err(|e| CodecError::encode(s.codec, e))?;
                copy_into_frame(picture, frame);
                // The encoder's time base is one frame: libvpx takes a frame's duration as one
                // tick, so a 90 kHz time base would tell its rate control 90000 frames/s.
                let mut pts =
                    i64::try_from(pts_90k.saturating_mul(u64::from(s.framerate)) / 90_000).unwrap_or(i64::MAX);
                if let Some(last) = *last_pts {
                    pts = pts.max(last + 1);
                }
                *last_pts = Some(pts);
                frame.set_pts(Some(pts));
                frame.set_kind(if force_keyframe { ffmpeg::picture::Type::I } else { ffmpeg::picture::Type::None });
                encoder.send_frame(frame).map_err(|e| CodecError::encode(s.codec, e))?;
                loop {
                    match encoder.receive_packet(packet) {
                        Ok(()) => {
                            let data = packet.data().unwrap_or_default().to_vec();
                            if !data.is_empty() {
                                emit(data, packet.is_key());
                            }
                        }
                        Err(ffmpeg::Error::Other { errno: ffmpeg::util::error::EAGAIN }) | Err(ffmpeg::Error::Eof) => {
                            break
                        }
                        Err(e) => return Err(CodecError::encode(s.codec, e)),
                    }
                }
            }
            Engine::H264 { encoder } => {
                if force_keyframe {
                    encoder.force_intra_frame();
                }
                let bits = encoder
                    .encode_at(picture, openh264::Timestamp::from_millis(pts_90k / 90))
                    .map_err(|e| CodecError::encode(s.codec, e))?;
                let keyframe = match bits.frame_type() {
                    openh264::encoder::FrameType::IDR => Some(true),
                    openh264::encoder::FrameType::I | openh264::encoder::FrameType::P => Some(false),
                    _ => None,
                };
                let payload = bits.to_vec();
                if let (Some(keyframe), false) = (keyframe, payload.is_empty()) {
                    emit(payload, keyframe);
                }
            }
        }
        Ok(out)
    }
}

fn copy_into_frame(picture: &Picture, frame: &mut ffmpeg::frame::Video) {
    let (w, h) = (picture.width() as usize, picture.height() as usize);
    for (plane, src, width, rows) in
        [(0, picture.y(), w, h), (1, picture.u(), w / 2, h / 2), (2, picture.v(), w / 2, h / 2)]
    {
        let stride = frame.stride(plane);
        let dst = frame.data_mut(plane);
        for row in 0..rows {
            dst[row * stride..row * stride + width].copy_from_slice(&src[row * width..(row + 1) * width]);
        }
    }
}

fn vpx_engine(s: &EncoderSettings) -> Result<Engine> {
    let (name, cpu_used) = match s.codec {
        Codec::Vp8 => ("libvpx", "10"),
        _ => ("libvpx-vp9", "8"),
    };
    let found = ff::find_encoder(&[name]).ok_or(CodecError::Unsupported { codec: s.codec, what: "encoder" })?;
    let mut encoder =
        ffmpeg::codec::Context::new_with_codec(found).encoder().video().map_err(|e| CodecError::encode(s.codec, e))?;
    encoder.set_width(s.width);
    encoder.set_height(s.height);
    encoder.set_format(ffmpeg::format::Pixel::YUV420P);
    encoder.set_time_base((1, s.framerate as i32));
    encoder.set_frame_rate(Some((s.framerate as i32, 1)));
    encoder.set_max_b_frames(0);
    let bps = u64::from(s.bitrate_kbps) * 1000;
    // 0 means no periodic keyframe: a gop of 0 would make every frame a keyframe.
    let gop = if s.keyframe_interval_frames == 0 { 1 << 30 } else { s.keyframe_interval_frames };
    let mut options = ffmpeg::Dictionary::new();
    for (k, v) in [
        ("deadline", "realtime".to_string()),
        ("cpu-used", cpu_used.to_string()),
        ("lag-in-frames", "0".to_string()),
        ("auto-alt-ref", "0".to_string()),
        ("threads", s.threads().to_string()),
        ("g", gop.to_string()),
        // minrate = maxrate = b: libvpx CBR, with WebRTC's buffer (1 s, starts half full).
        ("b", bps.to_string()),
        ("minrate", bps.to_string()),
        ("maxrate", bps.to_string()),
        ("bufsize", bps.to_string()),
        ("rc_init_occupancy", (bps / 2).to_string()),
        ("undershoot-pct", "100".to_string()),
        ("overshoot-pct", "15".to_string()),
        ("max-intra-rate", "300".to_string()),
        ("qmin", "2".to_string()),
        ("qmax", "56".to_string()),
        ("error-resilient", "0".to_string()),
    ] {
        options.set(k, &v);
    }
    if s.codec == Codec::Vp9 {
        options.set("row-mt", "1");
        options.set("aq-mode", "3");
        options.set(
            "tile-columns",
            if s.width >= 1280 {
                "2"
            } else if s.width >= 640 {
                "1"
            } else {
                "0"
            },
        );
        options.set("frame-parallel", "0");
    } else {
        options.set("static-thresh", "1");
    }
    let encoder = encoder.open_as_with(found, options).map_err(|e| CodecError::encode(s.codec, e))?;
    let frame = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, s.width, s.height);
    Ok(Engine::Vpx { encoder, frame, packet: ffmpeg::Packet::empty(), last_pts: None })
}

fn h264_engine(s: &EncoderSettings) -> Result<Engine> {
    use openh264::encoder::{
        BitRate, Complexity, EncoderConfig, FrameRate, IntraFramePeriod, Profile, RateControlMode, UsageType,
    };
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(s.bitrate_kbps * 1000))
        .max_frame_rate(FrameRate::from_hz(s.framerate as f32))
        .usage_type(UsageType::CameraVideoRealTime)
        .rate_control_mode(RateControlMode::Bitrate)
        .profile(Profile::Baseline)
        .complexity(Complexity::Low)
        // As WebRTC: openh264 controls its bitrate only by skipping frames when over budget.
        .skip_frames(true)
        .intra_frame_period(IntraFramePeriod::from_num_frames(s.keyframe_interval_frames))
        .num_threads(1);
    let encoder = openh264::encoder::Encoder::with_api_config(openh264::OpenH264API::from_source(), config)
        .map_err(|e| CodecError::encode(s.codec, e))?;
    Ok(Engine::H264 { encoder: Box::new(encoder) })
}

//! The media work of one view, without threads or sockets: inputs' frames are decoded as
//! they arrive (the latest picture of each input is kept), and on the view's clock the
//! renderer composes the layout the portal sent (owt_media::layout::pixel_rects) on the
//! view's bgColor and encodes it, and mixes and encodes 20 ms of audio. The codecs are
//! owt-codec's.

use crate::view::ViewSpec;
use owt_codec::{
    AudioDecoder, AudioEncoder, AudioMixer, Compositor, EncoderSettings, MixerConfig, Picture, VideoDecoder,
    VideoEncoder, SAMPLE_RATE,
};
use owt_media::layout::{self, Fraction, Template, TemplateRegion};
use owt_proto::media::{MediaFrame, MediaKind};
use owt_proto::mixer::SetInputs;
use owt_types::room::{FitPolicy, Rgb};
use std::collections::HashMap;

/// Opus bitrate of mixed audio.
const AUDIO_BITRATE_KBPS: u32 = 48;
/// Samples of one audio tick (20 ms at 48 kHz).
const AUDIO_TICK_SAMPLES: usize = SAMPLE_RATE as usize / 50;

/// One input's video: its decoder and latest picture.
struct VideoInput {
    decoder: VideoDecoder,
    picture: Picture,
    has_picture: bool,
    /// A keyframe was decoded since the decoder started or failed.
    synced: bool,
    errors: u64,
}

struct VideoPart {
    width: u32,
    height: u32,
    fit: FitPolicy,
    template: Template,
    assignment: Vec<(String, Option<String>)>,
    inputs: HashMap<String, VideoInput>,
    compositor: Compositor,
    encoder: VideoEncoder,
    force_keyframe: bool,
}

struct AudioPart {
    decoders: HashMap<String, AudioDecoder>,
    mixer: AudioMixer<String>,
    encoder: AudioEncoder,
    vad: bool,
}

/// The renderer of one view.
pub struct Renderer {
    view_id: String,
    video: Option<VideoPart>,
    audio: Option<AudioPart>,
}

impl Renderer {
    pub fn new(spec: &ViewSpec) -> Result<Renderer, String> {
        let video = match &spec.video {
            None => None,
            Some((codec, out)) => {
                let [r, g, b] = out.bg_color;
                let settings = EncoderSettings {
                    codec: *codec,
                    width: out.width,
                    height: out.height,
                    framerate: out.framerate,
                    bitrate_kbps: out.bitrate_kbps.max(50),
                    keyframe_interval_frames: out.keyframe_interval.max(1) * out.framerate,
                };
                Some(VideoPart {
                    width: out.width,
                    height: out.height,
                    fit: if out.crop { FitPolicy::Crop } else { FitPolicy::Letterbox },
                    template: Template::default(),
                    assignment: Vec::new(),
                    inputs: HashMap::new(),
                    compositor: Compositor::new(out.width, out.height, Rgb { r, g, b })
                        .map_err(|err| format!("compositor: {err}"))?,
                    encoder: VideoEncoder::new(settings).map_err(|err| format!("{codec} encoder: {err}"))?,
                    force_keyframe: true,
                })
            }
        };
        let audio = match &spec.audio {
            None => None,
            Some((codec, out)) => Some(AudioPart {
                decoders: HashMap::new(),
                mixer: AudioMixer::new(MixerConfig::default()),
                encoder: AudioEncoder::new(*codec, AUDIO_BITRATE_KBPS)
                    .map_err(|err| format!("{codec} encoder: {err}"))?,
                vad: out.vad,
            }),
        };
        Ok(Renderer { view_id: spec.view_id.clone(), video, audio })
    }

    /// Decodes one frame of an input. True when the input's video cannot be decoded until
    /// its producer sends a keyframe (it joined mid-stream, or a frame was corrupt).
    pub fn input_frame(&mut self, stream_id: &str, frame: &MediaFrame) -> bool {
        match frame.kind() {
            MediaKind::Video => match self.video.as_mut() {
                Some(video) => video.input_frame(&self.view_id, stream_id, frame),
                None => false,
            },
            MediaKind::Audio => {
                if let Some(audio) = self.audio.as_mut() {
                    audio.input_frame(&self.view_id, stream_id, frame);
                }
                false
            }
        }
    }

    /// The portal's new input list and layout.
    pub fn set_inputs(&mut self, request: &SetInputs) {
        let streams: Vec<&str> = request.inputs.iter().map(|i| i.stream_id.as_str()).collect();
        if let Some(video) = self.video.as_mut() {
            video.inputs.retain(|id, _| streams.contains(&id.as_str()));
            let read = |text: &str| Fraction::parse(text).unwrap_or(Fraction::ZERO);
            video.template = Template {
                regions: request
                    .layout
                    .iter()
                    .map(|r| TemplateRegion {
                        id: r.region_id.clone(),
                        left: read(&r.left),
                        top: read(&r.top),
                        width: read(&r.width),
                        height: read(&r.height),
                    })
                    .collect(),
                primary: None,
            };
            video.assignment = request
                .layout
                .iter()
                .map(|r| (r.region_id.clone(), r.stream_id.clone().filter(|s| streams.contains(&s.as_str()))))
                .collect();
        }
        if let Some(audio) = self.audio.as_mut() {
            audio.decoders.retain(|id, _| streams.contains(&id.as_str()));
            let gone: Vec<String> =
                audio.mixer.inputs().filter(|id| !streams.contains(&id.as_str())).cloned().collect();
            for id in gone {
                audio.mixer.remove_input(&id);
            }
        }
    }

    /// The next output frame is a keyframe.
    pub fn force_keyframe(&mut self) {
        if let Some(video) = self.video.as_mut() {
            video.force_keyframe = true;
        }
    }

    /// Composes and encodes one frame at `pts_90k`.
    pub fn render_video(&mut self, pts_90k: u64) -> Vec<MediaFrame> {
        let Some(video) = self.video.as_mut() else { return Vec::new() };
        video.render(&self.view_id, pts_90k)
    }

    /// Mixes and encodes 20 ms of audio.
    pub fn render_audio(&mut self) -> Vec<MediaFrame> {
        let Some(audio) = self.audio.as_mut() else { return Vec::new() };
        let mixed = audio.mixer.mix(AUDIO_TICK_SAMPLES).to_vec();
        audio.encoder.encode(&mixed).unwrap_or_else(|err| {
            tracing::warn!("{}: audio not encoded: {err}", self.view_id);
            Vec::new()
        })
    }

    /// The loudest input when the view has VAD on.
    pub fn active_input(&self) -> Option<String> {
        let audio = self.audio.as_ref().filter(|a| a.vad)?;
        audio.mixer.active_speaker().cloned()
    }
}

impl VideoPart {
    fn input_frame(&mut self, view_id: &str, stream_id: &str, frame: &MediaFrame) -> bool {
        let stale = self.inputs.get(stream_id).is_some_and(|i| i.decoder.codec() != frame.codec);
        if stale || !self.inputs.contains_key(stream_id) {
            let decoder = match VideoDecoder::new(frame.codec) {
                Ok(decoder) => decoder,
                Err(err) => {
                    tracing::warn!("{view_id}: input {stream_id} not decoded: {err}");
                    return false;
                }
            };
            let Ok(picture) = Picture::new(16, 16) else { return false };
            let input = VideoInput { decoder, picture, has_picture: false, synced: false, errors: 0 };
            self.inputs.insert(stream_id.to_string(), input);
        }
        let Some(input) = self.inputs.get_mut(stream_id) else { return false };
        if !input.synced && !frame.keyframe {
            return true;
        }
        match input.decoder.decode_into(frame, &mut input.picture) {
            Ok(decoded) => {
                input.has_picture |= decoded;
                input.synced = true;
                false
            }
            Err(err) => {
                input.errors += 1;
                if input.errors % 100 == 1 {
                    tracing::debug!("{view_id}: input {stream_id}: {err}");
                }
                input.decoder.reset();
                input.synced = false;
                true
            }
        }
    }

    fn render(&mut self, view_id: &str, pts_90k: u64) -> Vec<MediaFrame> {
        let sizes: HashMap<String, (u32, u32)> = self
            .inputs
            .iter()
            .filter(|(_, i)| i.has_picture)
            .map(|(id, i)| (id.clone(), (i.picture.width(), i.picture.height())))
            .collect();
        let placements =
            layout::pixel_rects(&self.template, &self.assignment, self.width, self.height, &sizes, self.fit);
        let draw: Vec<_> = placements
            .iter()
            .filter_map(|p| self.inputs.get(&p.stream_id).map(|i| (p.dst, p.src_crop, &i.picture)))
            .collect();
        let canvas = self.compositor.compose(&draw);
        let force = std::mem::take(&mut self.force_keyframe);
        self.encoder.encode(canvas, pts_90k, force).unwrap_or_else(|err| {
            tracing::warn!("{view_id}: video not encoded: {err}");
            Vec::new()
        })
    }
}

impl AudioPart {
    fn input_frame(&mut self, view_id: &str, stream_id: &str, frame: &MediaFrame) {
        let stale = self.decoders.get(stream_id).is_some_and(|d| d.codec() != frame.codec);
        if stale || !self.decoders.contains_key(stream_id) {
            match AudioDecoder::new(frame.codec) {
                Ok(decoder) => {
                    self.decoders.insert(stream_id.to_string(), decoder);
                }
                Err(err) => {
                    tracing::warn!("{view_id}: audio of {stream_id} not decoded: {err}");
                    return;
                }
            }
        }
        let Some(decoder) = self.decoders.get_mut(stream_id) else { return };
        match decoder.decode(frame) {
            Ok(samples) => self.mixer.push(&stream_id.to_string(), samples),
            Err(err) => tracing::debug!("{view_id}: audio of {stream_id}: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use owt_proto::media::Codec;
    use owt_proto::mixer::{AudioOutput, InitView, MixInput, RegionInput, VideoOutput};

    fn spec() -> ViewSpec {
        ViewSpec::from_init(&InitView {
            view_id: "room-common".into(),
            room_id: "room".into(),
            video: Some(VideoOutput {
                codec: "vp8".into(),
                width: 320,
                height: 240,
                framerate: 15,
                bitrate_kbps: 500,
                keyframe_interval: 2,
                bg_color: [0, 0, 0],
                crop: false,
            }),
            audio: Some(AudioOutput { codec: "opus".into(), vad: true }),
        })
        .expect("valid view")
    }

    fn region(id: &str, stream: Option<&str>, left: &str, top: &str) -> RegionInput {
        RegionInput {
            region_id: id.into(),
            stream_id: stream.map(str::to_string),
            left: left.into(),
            top: top.into(),
            width: "1/2".into(),
            height: "1/2".into(),
        }
    }

    fn input(id: &str) -> MixInput {
        MixInput { stream_id: id.into(), video: None, audio: None }
    }

    /// Two solid-colour inputs encoded as VP8 are placed in their regions of a 2x2 grid; the
    /// empty regions stay bgColor; after unmixing one, its region is empty.
    #[test]
    fn composes_inputs_in_their_regions() {
        let mut renderer = Renderer::new(&spec()).unwrap();
        let layout = vec![
            region("1", Some("red"), "0", "0"),
            region("2", Some("blue"), "1/2", "0"),
            region("3", None, "0", "1/2"),
            region("4", None, "1/2", "1/2"),
        ];
        renderer.set_inputs(&SetInputs {
            view_id: "room-common".into(),
            inputs: vec![input("red"), input("blue")],
            layout,
        });
        for (id, rgb) in [("red", Rgb { r: 220, g: 30, b: 30 }), ("blue", Rgb { r: 30, g: 30, b: 220 })] {
            let settings = EncoderSettings {
                codec: Codec::Vp8,
                width: 160,
                height: 120,
                framerate: 15,
                bitrate_kbps: 300,
                keyframe_interval_frames: 30,
            };
            let mut encoder = VideoEncoder::new(settings).unwrap();
            for frame in encoder.encode(&Picture::solid(160, 120, rgb).unwrap(), 0, true).unwrap() {
                renderer.input_frame(id, &frame);
            }
        }
        let frames = renderer.render_video(0);
        assert!(frames.iter().any(|f| f.keyframe), "the first output frame is a keyframe");
        let mut decoder = VideoDecoder::new(Codec::Vp8).unwrap();
        let mut picture = None;
        for frame in &frames {
            picture = decoder.decode(frame).unwrap().or(picture);
        }
        let picture = picture.expect("a decoded mixed frame");
        let near = |(r, g, b): (u8, u8, u8), want: (i32, i32, i32)| {
            (i32::from(r) - want.0).abs() < 40
                && (i32::from(g) - want.1).abs() < 40
                && (i32::from(b) - want.2).abs() < 40
        };
        assert!(near(picture.pixel_rgb(80, 60), (220, 30, 30)), "{:?}", picture.pixel_rgb(80, 60));
        assert!(near(picture.pixel_rgb(240, 60), (30, 30, 220)), "{:?}", picture.pixel_rgb(240, 60));
        assert!(near(picture.pixel_rgb(80, 180), (0, 0, 0)), "{:?}", picture.pixel_rgb(80, 180));

        // Blue is no longer an input: its region shows the background.
        renderer.set_inputs(&SetInputs {
            view_id: "room-common".into(),
            inputs: vec![input("red")],
            layout: vec![region("1", Some("red"), "0", "0"), region("2", Some("blue"), "1/2", "0")],
        });
        renderer.force_keyframe();
        let mut picture = None;
        for frame in renderer.render_video(9000) {
            picture = decoder.decode(&frame).unwrap().or(picture);
        }
        let picture = picture.expect("a decoded mixed frame");
        assert!(near(picture.pixel_rgb(240, 60), (0, 0, 0)), "{:?}", picture.pixel_rgb(240, 60));
    }

    /// Garbage input frames are errors inside the renderer, never a panic, and a good input
    /// still renders afterwards.
    #[test]
    fn hostile_input_frames_are_survived() {
        let mut renderer = Renderer::new(&spec()).unwrap();
        renderer.set_inputs(&SetInputs {
            view_id: "room-common".into(),
            inputs: vec![input("x")],
            layout: vec![region("1", Some("x"), "0", "0")],
        });
        for payload in [vec![], vec![0xff; 3], vec![0x9d, 0x01, 0x2a], (0..5000).map(|i| i as u8).collect()] {
            for codec in [Codec::Vp8, Codec::H264, Codec::Vp9, Codec::Opus, Codec::Pcmu] {
                let frame = MediaFrame {
                    codec,
                    keyframe: true,
                    sequence: 0,
                    timestamp: 0,
                    width: 0,
                    height: 0,
                    payload: payload.clone(),
                };
                renderer.input_frame("x", &frame);
            }
        }
        assert!(!renderer.render_video(0).is_empty());
        let _ = renderer.render_audio();
    }
}

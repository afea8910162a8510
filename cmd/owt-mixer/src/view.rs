//! One view on this mixer, as threads and tasks: a tokio task takes the inputs' frames from
//! the media link (one SUB socket per view, connected to every input's producer) and hands
//! them to the view's render thread, which decodes, composes and mixes on the view's clock
//! (crate::render, CPU-bound, so off the async runtime) and publishes the encoded output on
//! the mixer's PUB socket. Lost input frames become keyframe requests to the producer
//! (through the portal); a subscriber's keyframe request forces an output keyframe.

use crate::render::Renderer;
use owt_bus::media::{MediaPublisher, MediaSubscriber, SubscriberHandle};
use owt_media::KeyframeLimiter;
use owt_proto::media::{Codec, MediaFrame, MediaKind};
use owt_proto::mixer::{events, ActiveInput, AudioOutput, InitView, SetInputs, VideoOutput, ViewOutputs};
use owt_proto::webrtc::{self, KeyframeRequest, Kind, LinkSource};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Keyframe requests for one input go out at most this often.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// Audio is mixed and encoded in chunks of this length.
pub const AUDIO_CHUNK: Duration = Duration::from_millis(20);

/// What a view renders, checked.
#[derive(Debug, Clone)]
pub struct ViewSpec {
    pub view_id: String,
    pub video: Option<(Codec, VideoOutput)>,
    pub audio: Option<(Codec, AudioOutput)>,
}

impl ViewSpec {
    pub fn from_init(init: &InitView) -> Result<ViewSpec, String> {
        if init.view_id.is_empty() || init.view_id.len() > 256 {
            return Err("viewId must be 1 to 256 characters".into());
        }
        let video = match &init.video {
            None => None,
            Some(video) => {
                let codec = Codec::from_name(&video.codec)
                    .filter(|c| matches!(c, Codec::Vp8 | Codec::Vp9 | Codec::H264))
                    .ok_or(format!("video codec {:?}: this mixer encodes vp8, vp9 and h264", video.codec))?;
                let even = |v: u32| (16..=4096).contains(&v) && v.is_multiple_of(2);
                if !even(video.width) || !even(video.height) {
                    return Err(format!("resolution {}x{}: even sizes from 16 to 4096", video.width, video.height));
                }
                if !(1..=60).contains(&video.framerate) {
                    return Err(format!("framerate {}: 1 to 60", video.framerate));
                }
                Some((codec, video.clone()))
            }
        };
        let audio = match &init.audio {
            None => None,
            Some(audio) => {
                let codec = Codec::from_name(&audio.codec)
                    .filter(|c| c.kind() == MediaKind::Audio)
                    .ok_or(format!("audio codec {:?} is not one this mixer encodes", audio.codec))?;
                Some((codec, audio.clone()))
            }
        };
        Ok(ViewSpec { view_id: init.view_id.clone(), video, audio })
    }

    fn video_topic(&self) -> String {
        format!("{}-video", self.view_id)
    }

    fn audio_topic(&self) -> String {
        format!("{}-audio", self.view_id)
    }
}

/// The SDP description of an output codec, as webrtc nodes negotiate it with subscribers.
fn output_link(kind: Kind, codec: Codec, endpoint: &str, topic: String) -> LinkSource {
    let (mime_type, clock_rate, channels, fmtp) = match codec {
        Codec::Vp8 => ("video/VP8", 90_000, 0, ""),
        Codec::Vp9 => ("video/VP9", 90_000, 0, "profile-id=0"),
        Codec::H264 => {
            ("video/H264", 90_000, 0, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f")
        }
        Codec::Opus => ("audio/opus", 48_000, 2, "minptime=10;useinbandfec=1"),
        Codec::Pcmu => ("audio/PCMU", 8_000, 0, ""),
        Codec::Pcma => ("audio/PCMA", 8_000, 0, ""),
        Codec::G722 => ("audio/G722", 8_000, 0, ""),
        Codec::H265 => ("video/H265", 90_000, 0, ""),
        Codec::Av1 => ("video/AV1", 90_000, 0, ""),
    };
    LinkSource {
        node: String::new(),
        endpoint: endpoint.to_string(),
        topic,
        kind,
        mime_type: mime_type.into(),
        clock_rate,
        channels,
        sdp_fmtp_line: fmtp.into(),
    }
}

/// What the render thread is told.
pub enum Command {
    /// A frame of input `stream_id`, from `topic` of `producer`.
    Frame {
        stream_id: String,
        topic: String,
        producer: String,
        frame: MediaFrame,
    },
    Inputs(SetInputs),
    Keyframe,
    Stop,
}

/// Which input and kind a media link topic carries, with its producer.
#[derive(Clone)]
struct TopicInfo {
    stream_id: String,
    producer: String,
}

/// A running view.
pub struct ViewHandle {
    spec: ViewSpec,
    outputs: ViewOutputs,
    commands: std_mpsc::Sender<Command>,
    link: SubscriberHandle,
    topics: Arc<Mutex<HashMap<String, TopicInfo>>>,
    receiver: tokio::task::JoinHandle<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ViewHandle {
    /// Starts the view's threads; must be called inside the tokio runtime.
    pub fn start(
        spec: ViewSpec,
        media: MediaPublisher,
        events: mpsc::UnboundedSender<(String, Value)>,
    ) -> Result<ViewHandle, String> {
        let endpoint = media.endpoint();
        let outputs = ViewOutputs {
            video: spec.video.as_ref().map(|(c, _)| output_link(Kind::Video, *c, &endpoint, spec.video_topic())),
            audio: spec.audio.as_ref().map(|(c, _)| output_link(Kind::Audio, *c, &endpoint, spec.audio_topic())),
        };
        let renderer = Renderer::new(&spec)?;
        let (commands, commands_rx) = std_mpsc::channel();
        let thread = {
            let spec = spec.clone();
            let events = events.clone();
            std::thread::Builder::new()
                .name(format!("view {}", spec.view_id))
                .spawn(move || render_loop(spec, renderer, commands_rx, media, events))
                .map_err(|err| format!("cannot start the render thread: {err}"))?
        };
        let mut subscriber = MediaSubscriber::new();
        let link = subscriber.handle();
        let topics: Arc<Mutex<HashMap<String, TopicInfo>>> = Arc::default();
        let receiver = {
            let commands = commands.clone();
            let topics = topics.clone();
            tokio::spawn(async move {
                while let Some(received) = subscriber.recv().await {
                    let Some(info) = topics.lock().ok().and_then(|t| t.get(&received.stream_id).cloned()) else {
                        continue;
                    };
                    if received.gap {
                        ask_keyframe(&events, &info.producer, &received.stream_id);
                    }
                    let command = Command::Frame {
                        stream_id: info.stream_id,
                        topic: received.stream_id,
                        producer: info.producer,
                        frame: received.frame,
                    };
                    if commands.send(command).is_err() {
                        break;
                    }
                }
            })
        };
        Ok(ViewHandle { spec, outputs, commands, link, topics, receiver, thread: Some(thread) })
    }

    pub fn outputs(&self) -> ViewOutputs {
        self.outputs.clone()
    }

    pub fn describe(&self) -> String {
        let video = self.spec.video.as_ref().map(|(c, v)| format!("{c} {}x{}@{}", v.width, v.height, v.framerate));
        let audio = self.spec.audio.as_ref().map(|(c, _)| c.to_string());
        format!("video {}, audio {}", video.as_deref().unwrap_or("none"), audio.as_deref().unwrap_or("none"))
    }

    /// Follows a new input list: subscribes new inputs' topics, drops old ones, and hands
    /// the layout to the render thread.
    pub fn set_inputs(&self, request: SetInputs) -> Result<(), String> {
        if request.inputs.len() > 256 || request.layout.len() > 256 {
            return Err("at most 256 inputs and regions".into());
        }
        let mut wanted: HashMap<String, TopicInfo> = HashMap::new();
        for input in &request.inputs {
            for link in input.video.iter().chain(input.audio.iter()) {
                self.link.connect(&link.endpoint).map_err(|err| format!("{}: {err}", link.endpoint))?;
                wanted.insert(
                    link.topic.clone(),
                    TopicInfo { stream_id: input.stream_id.clone(), producer: link.node.clone() },
                );
            }
        }
        {
            let mut topics = self.topics.lock().map_err(|_| "topic table poisoned")?;
            for old in topics.keys().filter(|t| !wanted.contains_key(*t)) {
                self.link.unsubscribe(old);
            }
            for new in wanted.keys().filter(|t| !topics.contains_key(*t)) {
                self.link.subscribe(new).map_err(|err| format!("{new}: {err}"))?;
            }
            *topics = wanted;
        }
        self.commands.send(Command::Inputs(request)).map_err(|_| "the view has stopped".to_string())
    }

    /// A keyframe request for one of this view's outputs.
    pub fn request_keyframe(&self, topic: &str) {
        if topic == self.spec.video_topic() {
            let _ = self.commands.send(Command::Keyframe);
        }
    }

    pub fn stop(mut self) {
        self.receiver.abort();
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Asks `producer` (through the portal) for a keyframe of its track `topic`.
fn ask_keyframe(events: &mpsc::UnboundedSender<(String, Value)>, producer: &str, topic: &str) {
    let request = KeyframeRequest { node: producer.to_string(), track_id: topic.to_string() };
    let _ = events.send((webrtc::events::KEYFRAME_REQUEST.to_string(), json!(request)));
}

/// The render thread: inputs in, outputs out on the view's clocks.
fn render_loop(
    spec: ViewSpec,
    mut renderer: Renderer,
    commands: std_mpsc::Receiver<Command>,
    media: MediaPublisher,
    events: mpsc::UnboundedSender<(String, Value)>,
) {
    let start = Instant::now();
    let frame_interval =
        spec.video.as_ref().map(|(_, v)| Duration::from_secs(1) / v.framerate).unwrap_or(Duration::from_secs(3600));
    let (video_topic, audio_topic) = (spec.video_topic(), spec.audio_topic());
    let mut next_video = start;
    let mut next_audio = start;
    let mut active: Option<String> = None;
    let mut keyframe_limits: HashMap<String, KeyframeLimiter> = HashMap::new();
    loop {
        let now = Instant::now();
        if spec.video.is_some() && now >= next_video {
            let pts = (now - start).as_micros() as u64 * 9 / 100;
            for frame in renderer.render_video(pts) {
                let _ = media.publish(&video_topic, &frame);
            }
            next_video += frame_interval;
            if next_video < now {
                next_video = now + frame_interval;
            }
        }
        if spec.audio.is_some() && now >= next_audio {
            for frame in renderer.render_audio() {
                let _ = media.publish(&audio_topic, &frame);
            }
            next_audio += AUDIO_CHUNK;
            if next_audio + AUDIO_CHUNK * 5 < now {
                next_audio = now + AUDIO_CHUNK;
            }
            let loudest = renderer.active_input();
            if loudest.is_some() && loudest != active {
                active = loudest;
                let event =
                    ActiveInput { view_id: spec.view_id.clone(), stream_id: active.clone().unwrap_or_default() };
                let _ = events.send((events::ACTIVE_INPUT.to_string(), json!(event)));
            }
        }
        let mut wake = Instant::now() + Duration::from_secs(1);
        if spec.video.is_some() {
            wake = wake.min(next_video);
        }
        if spec.audio.is_some() {
            wake = wake.min(next_audio);
        }
        let wait = wake.saturating_duration_since(Instant::now());
        match commands.recv_timeout(wait) {
            Ok(Command::Frame { stream_id, topic, producer, frame }) => {
                if renderer.input_frame(&stream_id, &frame) {
                    // Undecodable until a keyframe: ask its producer, at most twice a second.
                    let limiter = keyframe_limits
                        .entry(topic.clone())
                        .or_insert_with(|| KeyframeLimiter::new(KEYFRAME_REQUEST_INTERVAL));
                    if limiter.request(Instant::now()) {
                        ask_keyframe(&events, &producer, &topic);
                    }
                }
            }
            Ok(Command::Inputs(request)) => renderer.set_inputs(&request),
            Ok(Command::Keyframe) => renderer.force_keyframe(),
            Ok(Command::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    tracing::debug!("render thread of {} ended", spec.view_id);
}

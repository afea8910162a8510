//! Mixed streams: the views of a room rendered by owt-mixer (lib/owt-proto/src/mixer.rs).
//! A view starts on a mixer scheduled from the cluster when its mixed stream is first
//! subscribed; the forward streams the application mixed into it (REST `/info/inViews`,
//! stream-control `mix`; as in OWT nothing is mixed on its own) are its inputs, each
//! input's tracks reaching the mixer over the media link (`link-out` on the publisher's
//! webrtc node). The portal owns the layout: it picks the view's template for the number of
//! inputs and assigns streams to regions (owt_media::layout), and sends the mixer the whole
//! input list and layout whenever they change. Changes are applied one at a time, in order,
//! by [`follow_views`]; a room torn down closes its views.

use super::Hub;
use owt_media::layout;
use owt_proto::mixer::{
    methods as mixer_methods, ActiveInput, AudioOutput, InitView, MixInput, RegionInput, SetInputs, VideoOutput,
    ViewOutputs, ViewRequest,
};
use owt_proto::webrtc::Kind;
use owt_types::room::{default_bitrate_kbps, FitPolicy, RoomConfig, View};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const MIXER_DEADLINE: Duration = Duration::from_secs(6);

/// What a view renders.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum ViewKind {
    /// A view of the room (the mixed stream `<room>-<label>`): the streams mixed into it, on
    /// the view's layout. A subscription asking the mixed stream in another format gets a
    /// variant of it: another view of the same label with its own output.
    Mixed { label: String },
    /// One forward stream's video in another format, shared by the subscribers asking for it.
    Transcode { stream: String },
}

/// A layout set through REST for a view: its regions and the stream of each.
pub(super) type CustomLayout = (layout::Template, Vec<(String, Option<String>)>);

/// A view running on a mixer.
pub(super) struct RunningView {
    pub room: String,
    pub kind: ViewKind,
    /// How it was started (again on another mixer when this one dies).
    pub init: InitView,
    pub mixer: String,
    /// Where the view's tracks are published (node = the mixer).
    pub outputs: ViewOutputs,
    /// Inputs linked so far, by stream id.
    pub inputs: HashMap<String, MixInput>,
    /// The loudest input the mixer reported last.
    pub active: Option<String>,
}

/// The `init-view` of a room's view.
fn init_view(room: &str, view: &View) -> InitView {
    let video = view.video.as_ref().map(|video| {
        let p = &video.parameters;
        VideoOutput {
            codec: video.format.codec.clone(),
            width: p.resolution.width,
            height: p.resolution.height,
            framerate: p.framerate,
            bitrate_kbps: video.bitrate_kbps().round() as u32,
            keyframe_interval: p.key_frame_interval,
            bg_color: [video.bg_color.r, video.bg_color.g, video.bg_color.b],
            crop: video.layout.fit_policy == FitPolicy::Crop,
        }
    });
    InitView {
        view_id: format!("{room}-{}", view.label),
        room_id: room.to_string(),
        video,
        audio: Some(AudioOutput { codec: view.audio.format.codec.clone(), vad: view.audio.vad }),
    }
}

impl Hub {
    /// The tracks of a mixed stream, starting its view on a mixer first if it is not running.
    pub(super) async fn view_outputs(&self, room: &str, view_id: &str) -> Result<ViewOutputs, String> {
        let init = {
            let state = self.lock();
            let conference = state.rooms.get(room).ok_or("Illegal request")?;
            let view = conference
                .config()
                .views
                .iter()
                .find(|v| format!("{room}-{}", v.label) == view_id)
                .ok_or(format!("Stream does NOT exist: {view_id}"))?;
            init_view(room, view)
        };
        let label = view_id.strip_prefix(&format!("{room}-")).unwrap_or(view_id).to_string();
        self.start_view(room, ViewKind::Mixed { label }, init).await
    }

    /// Starts a view on a mixer unless it runs already; its outputs.
    pub(super) async fn start_view(&self, room: &str, kind: ViewKind, init: InitView) -> Result<ViewOutputs, String> {
        let _turn = self.mixing.lock().await;
        let view_id = init.view_id.clone();
        let view_id = view_id.as_str();
        if let Some(view) = self.lock().views.get(view_id) {
            return Ok(view.outputs.clone());
        }
        // As OWT's room, whose origin is its first participant's: the longest-present one's.
        let preference = {
            let state = self.lock();
            let origin = state.rooms.get(room).and_then(|c| c.participants().first()).map(|p| p.origin.clone());
            super::media::preference_of(&origin.unwrap_or(Value::Null))
        };
        let mixer = self.cluster.schedule("mixer", view_id, &preference).await.map_err(|err| match err {
            owt_bus::ClusterError::NoWorker { .. } => "No mixer available".to_string(),
            other => format!("Failed to schedule a mixer: {other}"),
        })?;
        let reply = match self.cluster.request(&mixer, mixer_methods::INIT_VIEW, json!(init), MIXER_DEADLINE).await {
            Ok(reply) => reply,
            Err(err) => {
                let _ = self.cluster.release("mixer", view_id).await;
                return Err(format!("init-view failed on {mixer}: {err}"));
            }
        };
        let mut outputs: ViewOutputs =
            serde_json::from_value(reply).map_err(|err| format!("init-view on {mixer}: unexpected answer: {err}"))?;
        for link in outputs.video.iter_mut().chain(outputs.audio.iter_mut()) {
            link.node = mixer.clone();
        }
        tracing::info!(room, view = view_id, %mixer, "view started");
        let running = RunningView {
            room: room.to_string(),
            kind,
            init,
            mixer,
            outputs: outputs.clone(),
            inputs: HashMap::new(),
            active: None,
        };
        self.lock().views.insert(view_id.to_string(), running);
        self.update_view(view_id).await;
        Ok(outputs)
    }

    /// Sends a view's mixer the room's current inputs and layout, linking new inputs first.
    async fn update_view(&self, view_id: &str) {
        let plan = {
            let state = self.lock();
            let Some(running) = state.views.get(view_id) else { return };
            let Some(conference) = state.rooms.get(&running.room) else { return };
            let view = match &running.kind {
                ViewKind::Mixed { label } => {
                    let Some(view) = conference.config().views.iter().find(|v| &v.label == label).cloned() else {
                        return;
                    };
                    Some(view)
                }
                ViewKind::Transcode { .. } => None,
            };
            // The mixed stream clients know (a variant's id differs).
            let mixed_id = view.as_ref().map(|v| format!("{}-{}", running.room, v.label));
            // The forward streams it shows (all of the room's for a mixed view), with their
            // tracks and their webrtc node.
            let mut streams = Vec::new();
            let shown: Vec<Value> = match (&running.kind, &view) {
                (ViewKind::Mixed { .. }, Some(view)) => {
                    conference.view_inputs(&view.label).iter().filter_map(|id| conference.stream(id)).collect()
                }
                (ViewKind::Transcode { stream }, _) => conference.stream(stream).into_iter().collect(),
                (ViewKind::Mixed { .. }, None) => Vec::new(),
            };
            for info in shown {
                let id = info["id"].as_str().unwrap_or_default().to_string();
                let Some(node) = state.media.get(&id).and_then(|s| state.transports.get(&s.transport)) else {
                    continue;
                };
                let tracks: Vec<(Kind, String)> = info["media"]["tracks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| {
                        let kind = match t["type"].as_str()? {
                            "audio" => Kind::Audio,
                            "video" => Kind::Video,
                            _ => return None,
                        };
                        Some((kind, t["id"].as_str()?.to_string()))
                    })
                    .collect();
                let known = running.inputs.get(&id).cloned();
                streams.push((id, node.node.clone(), tracks, known));
            }
            // A layout set through REST lasts while every stream it names is still mixed.
            let custom =
                mixed_id.as_ref().and_then(|id| state.custom_layouts.get(id)).cloned().filter(|(_, assignment)| {
                    assignment.iter().filter_map(|(_, s)| s.as_ref()).all(|s| streams.iter().any(|(id, ..)| id == s))
                });
            let renders = (running.init.video.is_some(), running.init.audio.is_some());
            (running.mixer.clone(), view, streams, running.active.clone(), custom, renders, mixed_id)
        };
        let (mixer, view, streams, active, custom, renders, mixed_id) = plan;
        if let (None, Some(mixed_id)) = (&custom, &mixed_id) {
            self.lock().custom_layouts.remove(mixed_id);
        }
        let mut inputs = Vec::new();
        for (stream_id, node, tracks, known) in streams {
            if let Some(known) = known {
                inputs.push(known);
                continue;
            }
            let mut input = MixInput { stream_id: stream_id.clone(), video: None, audio: None };
            for (kind, track_id) in tracks {
                // A transcode view takes only the kind it renders.
                let wanted = match kind {
                    Kind::Audio => renders.1,
                    Kind::Video => renders.0,
                };
                if !wanted {
                    continue;
                }
                match self.link_out(&node, &track_id).await {
                    Ok(link) if kind == Kind::Video => input.video = Some(link),
                    Ok(link) => input.audio = Some(link),
                    Err(err) => tracing::warn!(view = view_id, stream = %stream_id, "input not mixed: {err}"),
                }
            }
            inputs.push(input);
        }
        let (layout, layout_json) = match &view {
            Some(view) => view_layout(view, &inputs, active.as_deref(), custom.as_ref()),
            None => (full_frame(&inputs), json!([])),
        };
        let request = SetInputs { view_id: view_id.to_string(), inputs: inputs.clone(), layout };
        let routed = {
            let mut state = self.lock();
            let Some(running) = state.views.get_mut(view_id) else { return };
            running.inputs = inputs.into_iter().map(|i| (i.stream_id.clone(), i)).collect();
            let room = running.room.clone();
            let effects = match (state.rooms.get_mut(&room), &mixed_id) {
                (Some(conference), Some(mixed_id)) => {
                    conference.update_mixed(mixed_id, "video.layout", layout_json).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            Self::route(&mut state, &room, effects)
        };
        self.deliver(routed.0, routed.1);
        if let Err(err) = self.cluster.request(&mixer, mixer_methods::SET_INPUTS, json!(request), MIXER_DEADLINE).await
        {
            tracing::warn!(view = view_id, %mixer, "set-inputs failed: {err}");
        }
    }

    /// REST `PATCH` of a mixed stream (spec §2.4): `replace` of `/info/layout` with a whole
    /// layout, or of `/info/layout/<n>/stream` with another stream of the view. Every stream
    /// named must be mixed into the view. The layout holds until streams are mixed into the
    /// view or taken out of it; then the view's templates apply again. Returns the StreamInfo.
    pub(super) fn rest_update_view(&self, room: &str, view_id: &str, operations: &Value) -> Result<Value, String> {
        let operations = operations.as_array().ok_or("Invalid stream update: expected an array of operations")?;
        if operations.is_empty() || operations.len() > 64 {
            return Err("Invalid stream update: 1 to 64 operations".into());
        }
        let routed = {
            let mut state = self.lock();
            let conference = state.rooms.get(room).ok_or("Stream not found")?;
            let label = conference
                .config()
                .views
                .iter()
                .find(|v| format!("{room}-{}", v.label) == view_id)
                .filter(|v| v.video.is_some())
                .map(|v| v.label.clone())
                .ok_or("Invalid stream update: this view has no video")?;
            let inputs = conference.view_inputs(&label);
            let mut current = conference.stream(view_id).map(|s| s["info"]["layout"].clone()).unwrap_or(json!([]));
            for operation in operations {
                let path = operation["path"].as_str().unwrap_or_default();
                if operation["op"] != "replace" {
                    return Err(format!("Invalid stream update: unsupported operation on {path:?}"));
                }
                if path == "/info/layout" {
                    current = operation["value"].clone();
                    continue;
                }
                let index = path
                    .strip_prefix("/info/layout/")
                    .and_then(|rest| rest.strip_suffix("/stream"))
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or(format!("Invalid stream update: unsupported operation on {path:?}"))?;
                let stream = operation["value"].as_str().ok_or("Invalid stream update: value must be a stream id")?;
                let item = current
                    .as_array_mut()
                    .and_then(|items| items.get_mut(index))
                    .ok_or(format!("Invalid stream update: the layout has no region {index}"))?;
                item["stream"] = json!(stream);
            }
            let parsed = layout::parse_rest_layout(&current).map_err(|err| format!("Invalid stream update: {err}"))?;
            if let Some(stream) = parsed.iter().filter_map(|(s, _)| s.as_ref()).find(|s| !inputs.contains(s)) {
                return Err(format!("Invalid stream update: stream {stream} is not mixed into {label}"));
            }
            let (template, assignment) = layout::template_from_rest(&parsed);
            let announced = layout::layout_update(&assignment, &template);
            state.custom_layouts.insert(view_id.to_string(), (template, assignment));
            let conference = state.rooms.get_mut(room).ok_or("Stream not found")?;
            let effects = conference.update_mixed(view_id, "video.layout", announced).map_err(|e| e.0)?;
            Self::route(&mut state, room, effects)
        };
        self.deliver(routed.0, routed.1);
        self.views_changed(room);
        self.lock().rooms.get(room).and_then(|c| c.stream(view_id)).ok_or_else(|| "Stream not found".to_string())
    }

    /// The current layout of the room's view `label` (its `video.layout` items).
    pub(super) fn view_layout_now(&self, room: &str, label: &str) -> Result<Vec<Value>, String> {
        let state = self.lock();
        let conference = state.rooms.get(room).ok_or("Stream does NOT exist")?;
        let view = conference.stream(&format!("{room}-{label}")).ok_or(format!("View does NOT exist: {label}"))?;
        Ok(view["info"]["layout"].as_array().cloned().unwrap_or_default())
    }

    /// A mixer's `active-input`: the loudest input of a view, told to the room.
    pub(super) fn on_active_input(&self, mixer: &str, params: Value) {
        let Ok(active) = serde_json::from_value::<ActiveInput>(params) else { return };
        let routed = {
            let mut state = self.lock();
            let Some(view) = state.views.get_mut(&active.view_id).filter(|v| v.mixer == mixer) else { return };
            view.active = Some(active.stream_id.clone());
            let room = view.room.clone();
            let keep_primary = state.rooms.get(&room).is_some_and(|c| {
                c.config().views.iter().any(|v| {
                    format!("{room}-{}", v.label) == active.view_id
                        && v.video.as_ref().is_some_and(|video| video.keep_active_input_primary)
                })
            });
            if keep_primary {
                self.views_changed(&room);
            }
            let effects = match state.rooms.get_mut(&room) {
                Some(conference) => {
                    conference.update_mixed(&active.view_id, "activeInput", json!(active.stream_id)).unwrap_or_default()
                }
                None => Vec::new(),
            };
            Self::route(&mut state, &room, effects)
        };
        self.deliver(routed.0, routed.1);
    }

    /// Re-plans the views of a room after its streams changed (or closes them when the room
    /// is gone); applied in order by [`follow_views`].
    pub(super) fn views_changed(&self, room: &str) {
        let _ = self.view_changes.send(room.to_string());
    }

    async fn apply_view_changes(&self, room: &str) {
        let _turn = self.mixing.lock().await;
        let views: Vec<(String, String, bool)> = {
            let state = self.lock();
            let conference = state.rooms.get(room);
            state
                .views
                .iter()
                .filter(|(_, v)| v.room == room)
                .map(|(id, v)| {
                    let alive = conference.is_some_and(|c| match &v.kind {
                        ViewKind::Mixed { .. } => true,
                        ViewKind::Transcode { stream } => c.publication(stream).is_some(),
                    });
                    (id.clone(), v.mixer.clone(), alive)
                })
                .collect()
        };
        if !self.lock().rooms.contains_key(room) {
            let prefix = format!("{room}-");
            self.lock().custom_layouts.retain(|id, _| !id.starts_with(&prefix));
        }
        for (view_id, mixer, alive) in views {
            if alive {
                self.update_view(&view_id).await;
                continue;
            }
            self.lock().views.remove(&view_id);
            let request = json!(ViewRequest { view_id: view_id.clone() });
            if let Err(err) = self.cluster.request(&mixer, mixer_methods::CLOSE_VIEW, request, MIXER_DEADLINE).await {
                tracing::debug!(view = view_id, "close-view: {err}");
            }
            let _ = self.cluster.release("mixer", &view_id).await;
            tracing::info!(room, view = view_id, "view closed: its room or stream is gone");
        }
    }
}

/// The regions of the view's template for its inputs, with the stream each one shows, and
/// the same as the `video.layout` value clients see (spec §1.11).
/// With `keepActiveInputPrimary`, `active` (the loudest input) takes the primary region. A
/// layout set through REST (`custom`) is used as it is, showing only streams still mixed.
fn view_layout(
    view: &View,
    inputs: &[MixInput],
    active: Option<&str>,
    custom: Option<&CustomLayout>,
) -> (Vec<RegionInput>, Value) {
    let Some(video) = &view.video else { return (Vec::new(), json!([])) };
    let templates = layout::templates_for_view(video);
    let shown: Vec<String> = inputs.iter().filter(|i| i.video.is_some()).map(|i| i.stream_id.clone()).collect();
    let (template, assignment) = match custom {
        Some((template, assignment)) => {
            let assignment = assignment
                .iter()
                .map(|(region, stream)| (region.clone(), stream.clone().filter(|s| shown.contains(s))))
                .collect();
            (template, assignment)
        }
        None => {
            let Some(template) = layout::choose_template(&templates, shown.len()) else {
                return (Vec::new(), json!([]));
            };
            let primary = active.filter(|_| video.keep_active_input_primary);
            (template, layout::assign(template, &shown, primary))
        }
    };
    let regions = assignment
        .iter()
        .filter_map(|(region_id, stream_id)| {
            let region = template.region(region_id)?;
            Some(RegionInput {
                region_id: region_id.clone(),
                stream_id: stream_id.clone(),
                left: region.left.to_string(),
                top: region.top.to_string(),
                width: region.width.to_string(),
                height: region.height.to_string(),
            })
        })
        .collect();
    (regions, layout::layout_update(&assignment, template))
}

impl Hub {
    /// A mixer died (user guide Table 2-6: transparent to clients): its views start again on
    /// another mixer, and the webrtc nodes that carry them follow the new producer.
    pub(super) async fn mixer_died(&self, mixer: &str) {
        let orphans: Vec<(String, RunningView)> = {
            let mut state = self.lock();
            let ids: Vec<String> =
                state.views.iter().filter(|(_, v)| v.mixer == mixer).map(|(id, _)| id.clone()).collect();
            ids.into_iter().filter_map(|id| state.views.remove(&id).map(|v| (id, v))).collect()
        };
        for (view_id, view) in orphans {
            let room = view.room;
            let _ = self.cluster.release("mixer", &view_id).await;
            let outputs = match self.start_view(&room, view.kind, view.init).await {
                Ok(outputs) => outputs,
                Err(err) => {
                    tracing::warn!(room, view = view_id, "view lost with mixer {mixer}: {err}");
                    continue;
                }
            };
            let nodes: Vec<String> =
                self.cluster.workers().into_iter().filter(|w| w.kind == "webrtc").map(|w| w.node_id).collect();
            for link in outputs.video.iter().chain(outputs.audio.iter()) {
                for node in &nodes {
                    if let Err(err) = self.cluster.event(node, owt_proto::webrtc::methods::RELINK, json!(link)).await {
                        tracing::debug!(node, "relink not sent: {err}");
                    }
                }
            }
            tracing::info!(
                room,
                view = view_id,
                "view moved from dead mixer {mixer} to {}",
                outputs.video.as_ref().or(outputs.audio.as_ref()).map(|l| l.node.as_str()).unwrap_or("?")
            );
        }
    }
}

/// One region over the whole frame showing the first input (a transcoded stream).
fn full_frame(inputs: &[MixInput]) -> Vec<RegionInput> {
    vec![RegionInput {
        region_id: "1".into(),
        stream_id: inputs.first().map(|i| i.stream_id.clone()),
        left: "0".into(),
        top: "0".into(),
        width: "1".into(),
        height: "1".into(),
    }]
}

/// Applies view changes one room at a time, in the order they happened.
pub(super) async fn follow_views(hub: Arc<Hub>, mut changes: mpsc::UnboundedReceiver<String>) {
    while let Some(room) = changes.recv().await {
        hub.apply_view_changes(&room).await;
    }
}

/// The transcoded view a subscription of a forward stream's video asks for with `format`
/// and/or `parameters` (spec §1.8), checked against the room's `transcoding` switches and
/// `mediaOut`; `None` when the stream can be forwarded as it is.
pub(super) fn transcode_plan(
    room: &str,
    config: &RoomConfig,
    stream_id: &str,
    source_track: &Value,
    request: &Value,
) -> Result<Option<InitView>, String> {
    const REFUSED: &str = "Target video stream does NOT satisfy";
    let source_codec = source_track["format"]["codec"].as_str().unwrap_or_default().to_ascii_lowercase();
    let codec = match request.get("format").filter(|f| !f.is_null()) {
        None => None,
        Some(format) => Some(
            format["codec"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .ok_or("Invalid request: track.format.codec must be a string")?,
        ),
    };
    let parameters = request.get("parameters").filter(|p| !p.is_null());
    if let Some(parameters) = parameters {
        if !parameters.is_object() {
            return Err("Invalid request: track.parameters must be an object".into());
        }
        if let Some(key) = parameters.as_object().and_then(|p| {
            p.keys().find(|k| !["resolution", "framerate", "bitrate", "keyFrameInterval"].contains(&k.as_str()))
        }) {
            return Err(format!("Invalid request: unknown parameter {key}"));
        }
    }
    let codec_change = codec.as_deref().is_some_and(|c| c != source_codec);
    let parameters = parameters.and_then(Value::as_object).filter(|p| !p.is_empty());
    if !codec_change && parameters.is_none() {
        return Ok(None);
    }
    let allowed = &config.transcoding.video;
    let codec = codec.unwrap_or(source_codec);
    if codec_change {
        if !allowed.format {
            return Err(format!("{REFUSED}: format transcoding is off in this room"));
        }
        if !config.media_out.video.format.iter().any(|f| f.codec == codec) {
            return Err(format!("{REFUSED}: {codec} is not in the room's mediaOut"));
        }
    }
    if !matches!(codec.as_str(), "vp8" | "vp9" | "h264") {
        return Err(format!("{REFUSED}: transcoding to {codec} is not supported"));
    }
    let empty = serde_json::Map::new();
    let parameters = parameters.unwrap_or(&empty);
    let switch = |key: &str, on: bool| -> Result<(), String> {
        if parameters.contains_key(key) && !on {
            return Err(format!("{REFUSED}: {key} transcoding is off in this room"));
        }
        Ok(())
    };
    switch("resolution", allowed.parameters.resolution)?;
    switch("framerate", allowed.parameters.framerate)?;
    switch("bitrate", allowed.parameters.bitrate)?;
    switch("keyFrameInterval", allowed.parameters.key_frame_interval)?;
    let base = &source_track["parameters"];
    let (width, height) = match parameters.get("resolution").or(base.get("resolution")) {
        Some(r) => {
            let size = |key: &str| r[key].as_u64().and_then(|v| u32::try_from(v).ok());
            match (size("width"), size("height")) {
                (Some(w), Some(h)) if (16..=4096).contains(&w) && (16..=4096).contains(&h) => (w & !1, h & !1),
                _ => return Err("Invalid request: resolution must be {width, height} from 16 to 4096".into()),
            }
        }
        None => (640, 480),
    };
    let framerate = match parameters.get("framerate").or(base.get("framerate")) {
        Some(f) => f.as_u64().filter(|f| (1..=60).contains(f)).ok_or("Invalid request: framerate 1 to 60")? as u32,
        None => 30,
    };
    let default = default_bitrate_kbps(&codec, width, height, f64::from(framerate), 1.0);
    let bitrate_kbps = match parameters.get("bitrate") {
        None => default,
        Some(Value::Number(n)) => {
            n.as_f64().filter(|b| (10.0..=50_000.0).contains(b)).ok_or("Invalid request: bitrate")?
        }
        Some(Value::String(s)) => {
            let factor: f64 = s.strip_prefix('x').and_then(|f| f.parse().ok()).ok_or("Invalid request: bitrate")?;
            if !(0.05..=4.0).contains(&factor) {
                return Err("Invalid request: bitrate".into());
            }
            default * factor
        }
        Some(_) => return Err("Invalid request: bitrate".into()),
    }
    .round() as u32;
    let keyframe_interval = match parameters.get("keyFrameInterval") {
        Some(k) => k.as_u64().filter(|k| (1..=3600).contains(k)).ok_or("Invalid request: keyFrameInterval")? as u32,
        None => 100,
    };
    Ok(Some(InitView {
        view_id: format!("{stream_id}-{codec}-{width}x{height}-{framerate}-{bitrate_kbps}-{keyframe_interval}"),
        room_id: room.to_string(),
        video: Some(VideoOutput {
            codec,
            width,
            height,
            framerate,
            bitrate_kbps,
            keyframe_interval,
            bg_color: [0, 0, 0],
            crop: false,
        }),
        audio: None,
    }))
}

/// The variant of a mixed stream a subscription asks for with `format` and/or `parameters`
/// (same inputs and layout, another output); `None` for the view's own output.
pub(super) fn mixed_variant_plan(
    room: &str,
    config: &RoomConfig,
    view: &View,
    mixed_track: &Value,
    request: &Value,
) -> Result<Option<InitView>, String> {
    let view_id = format!("{room}-{}", view.label);
    let own = init_view(room, view);
    if mixed_track["type"] == "audio" {
        let plan = audio_transcode_plan(room, config, &view_id, mixed_track, request)?;
        return Ok(plan.map(|init| InitView { audio: init.audio.map(|a| AudioOutput { vad: false, ..a }), ..init }));
    }
    let Some(mut init) = transcode_plan(room, config, &view_id, mixed_track, request)? else { return Ok(None) };
    if let (Some(video), Some(own)) = (init.video.as_mut(), own.video.as_ref()) {
        video.bg_color = own.bg_color;
        video.crop = own.crop;
    }
    Ok(Some(init))
}

/// The transcoded view a subscription of a forward stream's audio asks for with a `format`
/// other than the publication's; `None` when it can be forwarded as it is.
pub(super) fn audio_transcode_plan(
    room: &str,
    config: &RoomConfig,
    stream_id: &str,
    source_track: &Value,
    request: &Value,
) -> Result<Option<InitView>, String> {
    const REFUSED: &str = "Target audio stream does NOT satisfy";
    let Some(format) = request.get("format").filter(|f| !f.is_null()) else { return Ok(None) };
    let codec = format["codec"]
        .as_str()
        .map(str::to_ascii_lowercase)
        .ok_or("Invalid request: track.format.codec must be a string")?;
    let source = source_track["format"]["codec"].as_str().unwrap_or_default().to_ascii_lowercase();
    if codec == source {
        return Ok(None);
    }
    if !config.transcoding.audio {
        return Err(format!("{REFUSED}: audio transcoding is off in this room"));
    }
    if !config.media_out.audio.iter().any(|f| f.codec == codec) {
        return Err(format!("{REFUSED}: {codec} is not in the room's mediaOut"));
    }
    if !matches!(codec.as_str(), "opus" | "pcmu" | "pcma" | "g722") {
        return Err(format!("{REFUSED}: transcoding to {codec} is not supported"));
    }
    Ok(Some(InitView {
        view_id: format!("{stream_id}-audio-{codec}"),
        room_id: room.to_string(),
        video: None,
        audio: Some(AudioOutput { codec, vad: false }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use owt_proto::webrtc::LinkSource;

    fn vp8_track() -> Value {
        json!({"type": "video", "format": {"codec": "vp8"}, "parameters": {"resolution": {"width": 640, "height": 480}}})
    }

    fn plan(config: &RoomConfig, request: Value) -> Result<Option<InitView>, String> {
        transcode_plan("r", config, "s1", &vp8_track(), &request)
    }

    fn input(id: &str) -> MixInput {
        let link = LinkSource {
            node: "n".into(),
            endpoint: "tcp://127.0.0.1:1".into(),
            topic: format!("{id}-1"),
            kind: Kind::Video,
            mime_type: "video/VP8".into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
        };
        MixInput { stream_id: id.into(), video: Some(link), audio: None }
    }

    #[test]
    fn layout_follows_inputs_and_keeps_the_active_input_primary() {
        let mut view = RoomConfig::default().views[0].clone();
        let inputs = [input("a"), input("b")];
        let (regions, announced) = view_layout(&view, &inputs, Some("b"), None);
        assert_eq!(regions.len(), 4, "fluid 2x2 for two inputs");
        assert_eq!((regions[0].stream_id.as_deref(), regions[1].stream_id.as_deref()), (Some("a"), Some("b")));
        assert_eq!((regions[1].left.as_str(), regions[1].top.as_str()), ("1/2", "0/2"));
        assert_eq!(announced[0]["stream"], "a");
        assert!(announced[2].get("stream").is_none(), "empty regions have no stream: {announced}");
        view.video.as_mut().unwrap().keep_active_input_primary = true;
        let (regions, _) = view_layout(&view, &inputs, Some("b"), None);
        assert_eq!((regions[0].stream_id.as_deref(), regions[1].stream_id.as_deref()), (Some("b"), Some("a")));
        let (regions, _) = view_layout(&view, &inputs[..1], None, None);
        assert_eq!(regions.len(), 1, "one input fills the frame");
        // A layout set through REST is used as it is; streams no longer mixed leave it empty.
        let rest = json!([
            {"stream": "b", "region": {"id": "x", "shape": "rectangle", "area": {"left": "0", "top": "0", "width": "1/3", "height": "1"}}},
            {"stream": "a", "region": {"id": "y", "shape": "rectangle", "area": {"left": "1/3", "top": "0", "width": "2/3", "height": "1"}}},
        ]);
        let custom = layout::template_from_rest(&layout::parse_rest_layout(&rest).unwrap());
        let (regions, announced) = view_layout(&view, &inputs, None, Some(&custom));
        assert_eq!((regions[0].region_id.as_str(), regions[0].stream_id.as_deref()), ("x", Some("b")));
        assert_eq!((regions[1].width.as_str(), regions[1].stream_id.as_deref()), ("2/3", Some("a")));
        assert_eq!(announced[1]["stream"], "a");
        let (regions, _) = view_layout(&view, &inputs[..1], None, Some(&custom));
        assert_eq!(regions[0].stream_id, None, "b is not mixed any more");
    }

    #[test]
    fn audio_in_another_format_is_transcoded() {
        let opus = json!({"type": "audio", "format": {"codec": "opus", "sampleRate": 48000, "channelNum": 2}});
        let config = RoomConfig::default();
        let plan = |config: &RoomConfig, request: Value| audio_transcode_plan("r", config, "s1", &opus, &request);
        assert_eq!(plan(&config, json!({"from": "s1"})), Ok(None));
        assert_eq!(plan(&config, json!({"format": {"codec": "opus"}})), Ok(None));
        let init = plan(&config, json!({"format": {"codec": "pcmu"}})).unwrap().expect("a plan");
        assert_eq!((init.view_id.as_str(), init.audio.unwrap().codec.as_str()), ("s1-audio-pcmu", "pcmu"));
        assert!(init.video.is_none());
        assert!(plan(&config, json!({"format": {"codec": "aac"}})).is_err(), "not in mediaOut or not encodable");
        assert!(plan(&config, json!({"format": {"codec": 1}})).is_err());
        let mut off = RoomConfig::default();
        off.transcoding.audio = false;
        assert!(plan(&off, json!({"format": {"codec": "pcmu"}})).unwrap_err().contains("off"));
    }

    #[test]
    fn a_mixed_stream_in_another_format_is_a_variant_of_its_view() {
        let config = RoomConfig::default();
        let view = &config.views[0];
        let info = owt_room::mixed_stream_info("r", &config, view);
        let video = info["media"]["tracks"].as_array().unwrap().iter().find(|t| t["type"] == "video").unwrap().clone();
        let audio = info["media"]["tracks"].as_array().unwrap().iter().find(|t| t["type"] == "audio").unwrap().clone();
        assert_eq!(mixed_variant_plan("r", &config, view, &video, &json!({"from": "r-common"})), Ok(None));
        let request = json!({"format": {"codec": "h264"}, "parameters": {"resolution": {"width": 320, "height": 240}}});
        let init = mixed_variant_plan("r", &config, view, &video, &request).unwrap().expect("a variant");
        assert!(init.view_id.starts_with("r-common-h264-320x240-"), "{}", init.view_id);
        let out = init.video.unwrap();
        let own = init_view("r", view).video.unwrap();
        assert_eq!((out.bg_color, out.crop, out.framerate), (own.bg_color, own.crop, own.framerate));
        let pcmu =
            mixed_variant_plan("r", &config, view, &audio, &json!({"format": {"codec": "pcmu"}})).unwrap().unwrap();
        assert_eq!(pcmu.audio.map(|a| (a.codec, a.vad)), Some(("pcmu".to_string(), false)));
    }

    #[test]
    fn forwarding_needs_no_plan() {
        let config = RoomConfig::default();
        assert_eq!(plan(&config, json!({"from": "s1"})), Ok(None));
        assert_eq!(plan(&config, json!({"format": {"codec": "vp8"}, "parameters": null})), Ok(None));
        assert_eq!(plan(&config, json!({"parameters": {}})), Ok(None));
    }

    #[test]
    fn format_and_parameters_make_a_shared_view() {
        let config = RoomConfig::default();
        let init = plan(
            &config,
            json!({"format": {"codec": "h264"}, "parameters": {"resolution": {"width": 320, "height": 240}, "bitrate": "x0.5"}}),
        )
        .unwrap()
        .expect("a plan");
        let video = init.video.as_ref().unwrap();
        assert_eq!((video.codec.as_str(), video.width, video.height, video.framerate), ("h264", 320, 240, 30));
        let default = default_bitrate_kbps("h264", 320, 240, 30.0, 1.0);
        assert_eq!(video.bitrate_kbps, (default * 0.5).round() as u32);
        assert!(init.audio.is_none());
        let again = plan(
            &config,
            json!({"format": {"codec": "h264"}, "parameters": {"resolution": {"width": 320, "height": 240}, "bitrate": "x0.5"}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(again.view_id, init.view_id, "one view per distinct output");
        let framerate = plan(&config, json!({"parameters": {"framerate": 15}})).unwrap().unwrap();
        assert_eq!(framerate.video.unwrap().codec, "vp8", "same codec, other framerate");
    }

    #[test]
    fn room_switches_and_hostile_requests_are_refused() {
        let mut config = RoomConfig::default();
        config.transcoding.video.format = false;
        let refused = plan(&config, json!({"format": {"codec": "h264"}})).unwrap_err();
        assert!(refused.starts_with("Target video stream does NOT satisfy"), "{refused}");
        let mut config = RoomConfig::default();
        config.transcoding.video.parameters.resolution = false;
        assert!(plan(&config, json!({"parameters": {"resolution": {"width": 320, "height": 240}}})).is_err());
        let config = RoomConfig::default();
        for bad in [
            json!({"format": {"codec": 7}}),
            json!({"format": {"codec": "theora"}}),
            json!({"parameters": "fast"}),
            json!({"parameters": {"resolution": {"width": 1, "height": 240}}}),
            json!({"parameters": {"resolution": {"width": 99999, "height": 240}}}),
            json!({"parameters": {"framerate": 0}}),
            json!({"parameters": {"bitrate": "x99"}}),
            json!({"parameters": {"bitrate": true}}),
            json!({"parameters": {"keyFrameInterval": -1}}),
            json!({"parameters": {"sharpness": 3}}),
        ] {
            assert!(plan(&config, bad.clone()).is_err(), "{bad}");
        }
    }
}

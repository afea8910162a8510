//! Mixed streams: the views of a room rendered by owt-mixer (lib/owt-proto/src/mixer.rs).
//! A view starts on a mixer scheduled from the cluster when its mixed stream is first
//! subscribed; every forward stream of the room is mixed into it (OWT's default), each
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
use owt_proto::webrtc::{Kind, LinkSource};
use owt_types::room::{FitPolicy, View};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const MIXER_DEADLINE: Duration = Duration::from_secs(6);

/// A view running on a mixer.
pub(super) struct RunningView {
    pub room: String,
    pub mixer: String,
    /// Where the view's tracks are published (node = the mixer).
    pub outputs: ViewOutputs,
    /// Inputs linked so far, by stream id.
    pub inputs: HashMap<String, MixInput>,
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
        let _turn = self.mixing.lock().await;
        if let Some(view) = self.lock().views.get(view_id) {
            return Ok(view.outputs.clone());
        }
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
        let mixer =
            self.cluster.schedule("mixer", view_id, &owt_bus::Preference::default()).await.map_err(
                |err| match err {
                    owt_bus::ClusterError::NoWorker { .. } => "No mixer available".to_string(),
                    other => format!("Failed to schedule a mixer: {other}"),
                },
            )?;
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
        self.lock().views.insert(
            view_id.to_string(),
            RunningView { room: room.to_string(), mixer, outputs: outputs.clone(), inputs: HashMap::new() },
        );
        self.update_view(view_id).await;
        Ok(outputs)
    }

    /// Sends a view's mixer the room's current inputs and layout, linking new inputs first.
    async fn update_view(&self, view_id: &str) {
        let plan = {
            let state = self.lock();
            let Some(running) = state.views.get(view_id) else { return };
            let Some(conference) = state.rooms.get(&running.room) else { return };
            let view = conference.config().views.iter().find(|v| format!("{}-{}", running.room, v.label) == view_id);
            let Some(view) = view.cloned() else { return };
            // Every forward stream of the room, with its tracks and their webrtc node.
            let mut streams = Vec::new();
            for info in conference.streams().into_iter().filter(|s| s["type"] == "forward") {
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
            (running.mixer.clone(), view, streams)
        };
        let (mixer, view, streams) = plan;
        let mut inputs = Vec::new();
        for (stream_id, node, tracks, known) in streams {
            if let Some(known) = known {
                inputs.push(known);
                continue;
            }
            let mut input = MixInput { stream_id: stream_id.clone(), video: None, audio: None };
            for (kind, track_id) in tracks {
                match self.link_track(&node, &track_id).await {
                    Ok(link) if kind == Kind::Video => input.video = Some(link),
                    Ok(link) => input.audio = Some(link),
                    Err(err) => tracing::warn!(view = view_id, stream = %stream_id, "input not mixed: {err}"),
                }
            }
            inputs.push(input);
        }
        let (layout, layout_json) = view_layout(&view, &inputs);
        let request = SetInputs { view_id: view_id.to_string(), inputs: inputs.clone(), layout };
        let routed = {
            let mut state = self.lock();
            let Some(running) = state.views.get_mut(view_id) else { return };
            running.inputs = inputs.into_iter().map(|i| (i.stream_id.clone(), i)).collect();
            let room = running.room.clone();
            let effects = match state.rooms.get_mut(&room) {
                Some(conference) => conference.update_mixed(view_id, "video.layout", layout_json).unwrap_or_default(),
                None => Vec::new(),
            };
            Self::route(&mut state, &room, effects)
        };
        self.deliver(routed.0, routed.1);
        if let Err(err) = self.cluster.request(&mixer, mixer_methods::SET_INPUTS, json!(request), MIXER_DEADLINE).await
        {
            tracing::warn!(view = view_id, %mixer, "set-inputs failed: {err}");
        }
    }

    async fn link_track(&self, node: &str, track_id: &str) -> Result<LinkSource, String> {
        let params = json!(owt_proto::webrtc::TrackRequest { track_id: track_id.into() });
        let reply = self
            .cluster
            .request(node, owt_proto::webrtc::methods::LINK_OUT, params, MIXER_DEADLINE)
            .await
            .map_err(|err| format!("link-out failed on {node}: {err}"))?;
        let mut link: LinkSource =
            serde_json::from_value(reply).map_err(|err| format!("link-out on {node}: unexpected answer: {err}"))?;
        link.node = node.to_string();
        Ok(link)
    }

    /// A mixer's `active-input`: the loudest input of a view, told to the room.
    pub(super) fn on_active_input(&self, mixer: &str, params: Value) {
        let Ok(active) = serde_json::from_value::<ActiveInput>(params) else { return };
        let routed = {
            let mut state = self.lock();
            let Some(view) = state.views.get(&active.view_id).filter(|v| v.mixer == mixer) else { return };
            let room = view.room.clone();
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
        let (room_alive, views): (bool, Vec<(String, String)>) = {
            let state = self.lock();
            let views = state
                .views
                .iter()
                .filter(|(_, v)| v.room == room)
                .map(|(id, v)| (id.clone(), v.mixer.clone()))
                .collect();
            (state.rooms.contains_key(room), views)
        };
        for (view_id, mixer) in views {
            if room_alive {
                self.update_view(&view_id).await;
                continue;
            }
            self.lock().views.remove(&view_id);
            let request = json!(ViewRequest { view_id: view_id.clone() });
            if let Err(err) = self.cluster.request(&mixer, mixer_methods::CLOSE_VIEW, request, MIXER_DEADLINE).await {
                tracing::debug!(view = view_id, "close-view: {err}");
            }
            let _ = self.cluster.release("mixer", &view_id).await;
            tracing::info!(room, view = view_id, "view closed: the room is gone");
        }
    }
}

/// The regions of the view's template for its inputs, with the stream each one shows, and
/// the same as the `video.layout` value clients see (spec §1.11).
fn view_layout(view: &View, inputs: &[MixInput]) -> (Vec<RegionInput>, Value) {
    let Some(video) = &view.video else { return (Vec::new(), json!([])) };
    let templates = layout::templates_for_view(video);
    let shown: Vec<String> = inputs.iter().filter(|i| i.video.is_some()).map(|i| i.stream_id.clone()).collect();
    let Some(template) = layout::choose_template(&templates, shown.len()) else { return (Vec::new(), json!([])) };
    let assignment = layout::assign(template, &shown, None);
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
        let orphans: Vec<(String, String)> = {
            let mut state = self.lock();
            let ids: Vec<String> =
                state.views.iter().filter(|(_, v)| v.mixer == mixer).map(|(id, _)| id.clone()).collect();
            ids.into_iter().filter_map(|id| state.views.remove(&id).map(|v| (id, v.room))).collect()
        };
        for (view_id, room) in orphans {
            let _ = self.cluster.release("mixer", &view_id).await;
            let outputs = match self.view_outputs(&room, &view_id).await {
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

/// Applies view changes one room at a time, in the order they happened.
pub(super) async fn follow_views(hub: Arc<Hub>, mut changes: mpsc::UnboundedReceiver<String>) {
    while let Some(room) = changes.recv().await {
        hub.apply_view_changes(&room).await;
    }
}

//! Media sessions of client signaling (spec §1.7-§1.12): publish, subscribe, soac,
//! unpublish, unsubscribe, stream-control and subscription-control. The conference core
//! decides what it can alone (permissions, inputLimit, which stream a track comes from);
//! the media work goes to the webrtc node that owns the client's transport, scheduled on
//! the bus per transport as OWT does, with the typed messages of `owt_proto::webrtc`. What
//! the node reports back (answers, readiness, failures) becomes `progress` and `stream`
//! notifications. A node that dies fails every session it carried (user guide Table 2-6).

use super::{uuid_hex, Hub, State};
use owt_bus::ClusterEvent;
use owt_proto::webrtc::{
    events, methods, Format, KeyframeRequest, Kind, LinkSource, PublishRequest, PublishTrack, SessionFailed,
    SessionReady, SessionRequest, SetActiveRequest, SignalingRequest, SubscribeRequest, SubscribeTrack, SwitchSource,
    TrackRequest, TrackUpdate, TransportProgress, TransportRequest, TransportStatus,
};
use owt_room::{Effect, PublishedTrack};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const NODE_DEADLINE: Duration = Duration::from_secs(6);
const SOURCES: [&str; 5] = ["mic", "camera", "screen-cast", "raw-file", "encoded-file"];

/// Who ends a session: its owner, or the service through REST (any session of the room).
#[derive(Clone, Copy)]
enum Who<'a> {
    Participant(&'a str),
    Service(&'a str),
}

impl Who<'_> {
    fn may_end(&self, session: &MediaSession) -> bool {
        match self {
            Who::Participant(participant) => session.owner == *participant,
            Who::Service(room) => session.room == *room,
        }
    }
}

/// A client peer connection.
pub(super) struct Transport {
    pub owner: String,
    pub room: String,
    pub node: String,
    pub sessions: Vec<String>,
}

/// A publication or subscription riding on a transport.
pub(super) struct MediaSession {
    pub transport: String,
    pub owner: String,
    pub room: String,
    pub publish: bool,
    /// Published tracks as requested (mid, kind, source).
    pub tracks: Vec<PublishTrack>,
    pub attributes: Value,
    /// A subscription's forward stream of its video track (for parameter updates).
    pub video_from: Option<String>,
}

fn kind_of(value: &Value) -> Result<Kind, String> {
    match value.as_str() {
        Some("audio") => Ok(Kind::Audio),
        Some("video") => Ok(Kind::Video),
        _ => Err("Invalid request: track type must be audio or video".into()),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Audio => "audio",
        Kind::Video => "video",
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `participant`'s subscription `id` and the webrtc node carrying it.
fn owned_subscription<'a>(state: &'a State, participant: &str, id: &str) -> Result<(&'a MediaSession, String), String> {
    const MISSING: &str = "Subscription does NOT exist";
    let session = state.media.get(id).filter(|s| !s.publish && s.owner == participant).ok_or(MISSING)?;
    let node = state.transports.get(&session.transport).map(|t| t.node.clone()).ok_or(MISSING)?;
    Ok((session, node))
}

/// The forward stream and track a subscription's `from` names: a track id (a simulcast
/// layer), or a stream id with one track of the kind (or, with `any_layer`, a simulcast
/// stream whose layer is chosen later).
fn forward_source(
    conference: &owt_room::Conference,
    kind: Kind,
    from: &str,
    any_layer: bool,
) -> Option<(String, String)> {
    conference.streams().into_iter().filter(|s| s["type"] == "forward").find_map(|s| {
        let tracks = s["media"]["tracks"].as_array()?.clone();
        let of_kind: Vec<&Value> = tracks.iter().filter(|t| t["type"] == kind_name(kind)).collect();
        let track =
            of_kind.iter().find(|t| t["id"] == from).copied().or_else(|| {
                (s["id"] == from && (of_kind.len() == 1 || any_layer)).then(|| of_kind.first().copied())?
            })?;
        Some((s["id"].as_str()?.to_string(), track["id"].as_str()?.to_string()))
    })
}

/// Subscription `parameters` (spec §1.8: `resolution {width, height}`, `framerate`, `bitrate`
/// `"x<multiplier>"` or kbps, `keyFrameInterval`, nothing else) as a simulcast layer wish;
/// None when they ask what no layer choice gives (a keyframe interval: transcoding).
fn layer_request(parameters: &Value) -> Result<Option<owt_media::WantedVideo>, String> {
    let object = parameters.as_object().ok_or("Invalid request: parameters must be an object")?;
    let mut wanted = owt_media::WantedVideo::default();
    for (key, value) in object {
        match key.as_str() {
            "resolution" => {
                let side = |name: &str| value[name].as_u64().filter(|v| (1..=8192).contains(v)).map(|v| v as u32);
                let (Some(width), Some(height)) = (side("width"), side("height")) else {
                    return Err("Invalid request: parameters.resolution must be {width, height} from 1 to 8192".into());
                };
                wanted.resolution = Some((width, height));
            }
            "framerate" => {
                let rate = value.as_f64().filter(|r| *r >= 1.0 && *r <= 120.0);
                wanted.framerate =
                    Some(rate.ok_or("Invalid request: parameters.framerate must be 1 to 120")?.round() as u32);
            }
            "bitrate" => match value {
                Value::String(text) => {
                    let multiplier = text.strip_prefix('x').and_then(|m| m.parse::<f64>().ok());
                    let multiplier = multiplier.filter(|m| *m > 0.0 && *m <= 10.0);
                    wanted.bitrate_multiplier = Some(
                        multiplier.ok_or("Invalid request: parameters.bitrate must be \"x<multiplier>\" or kbps")?,
                    );
                }
                Value::Number(kbps) => {
                    let kbps = kbps.as_f64().filter(|k| *k >= 1.0 && *k <= 100_000.0);
                    wanted.bitrate_kbps = Some(
                        kbps.ok_or("Invalid request: parameters.bitrate must be \"x<multiplier>\" or kbps")?.round()
                            as u32,
                    );
                }
                _ => return Err("Invalid request: parameters.bitrate must be \"x<multiplier>\" or kbps".into()),
            },
            "keyFrameInterval" => {
                if !value.as_f64().is_some_and(|k| k > 0.0) {
                    return Err("Invalid request: parameters.keyFrameInterval must be a positive number".into());
                }
                return Ok(None);
            }
            other => return Err(format!("Invalid request: unknown parameter {other:?}")),
        }
    }
    Ok(Some(wanted))
}

/// The scheduling preference of a token's origin `{isp, region}`.
pub(super) fn preference_of(origin: &Value) -> owt_bus::Preference {
    owt_bus::Preference {
        isp: origin["isp"].as_str().filter(|s| !s.is_empty()).map(str::to_owned),
        region: origin["region"].as_str().filter(|s| !s.is_empty()).map(str::to_owned),
    }
}

fn kinds_of(data: &Value) -> Result<Vec<Kind>, String> {
    match data.as_str() {
        Some("audio") => Ok(vec![Kind::Audio]),
        Some("video") => Ok(vec![Kind::Video]),
        Some("av") => Ok(vec![Kind::Audio, Kind::Video]),
        _ => Err("Invalid track kind: data must be audio, video or av".into()),
    }
}

impl Hub {
    /// Answers a media request: `Some(data)` for `("ok", data)`, `None` for `("ok")`.
    pub(super) async fn media_request(
        &self,
        socket_id: &str,
        event: &str,
        data: &Value,
    ) -> Result<Option<Value>, String> {
        let (participant, room) = self.participant_of(socket_id).ok_or("Illegal request")?;
        match event {
            "publish" => self.publish(&participant, &room, data).await.map(Some),
            "subscribe" => self.subscribe(&participant, &room, data).await.map(Some),
            "soac" => self.soac(&participant, data).await.map(|()| None),
            "unpublish" => self.end_session(Who::Participant(&participant), data, true).await.map(|()| None),
            "unsubscribe" => self.end_session(Who::Participant(&participant), data, false).await.map(|()| None),
            "stream-control" => self.stream_control(&participant, data).await.map(Some),
            "subscription-control" => self.subscription_control(&participant, data).await.map(|()| None),
            _ => Err("Illegal request".into()),
        }
    }

    /// The transport a request names (it must belong to the participant), or a new one.
    async fn transport_for(
        &self,
        participant: &str,
        data: &Value,
        session_id: &str,
        origin: &Value,
    ) -> Result<(String, String, bool), String> {
        if let Some((id, node)) = self.existing_transport(participant, data)? {
            return Ok((id, node, false));
        }
        let node =
            self.cluster.schedule("webrtc", session_id, &preference_of(origin)).await.map_err(|err| match err {
                owt_bus::ClusterError::NoWorker { .. } => "No webrtc node available".to_string(),
                other => format!("Failed to schedule a webrtc node: {other}"),
            })?;
        Ok((session_id.to_string(), node, true))
    }

    /// The transport `data.transport` names (its id and node), checked to be well-formed and
    /// this participant's; None when the request opens a new one.
    fn existing_transport(&self, participant: &str, data: &Value) -> Result<Option<(String, String)>, String> {
        match data.get("transport").filter(|t| !t.is_null()) {
            Some(transport) if !transport.is_object() => {
                return Err("Invalid request: transport must be {type, id}".into())
            }
            Some(transport) if transport.get("id").is_some_and(|id| !id.is_string() && !id.is_null()) => {
                return Err("Invalid request: transport.id must be a string".into())
            }
            _ => {}
        }
        let Some(id) = data["transport"]["id"].as_str() else { return Ok(None) };
        let state = self.lock();
        let transport = state.transports.get(id).filter(|t| t.owner == participant);
        transport.map(|t| Some((id.to_string(), t.node.clone()))).ok_or(format!("Transport {id} does NOT exist"))
    }

    async fn ask_node(&self, node: &str, method: &str, params: Value) -> Result<Value, String> {
        self.cluster.request(node, method, params, NODE_DEADLINE).await.map_err(|err| {
            tracing::info!(node, method, "webrtc node refused: {err}");
            format!("{method} failed on {node}: {err}")
        })
    }

    async fn publish(&self, participant: &str, room: &str, data: &Value) -> Result<Value, String> {
        let requested = data["media"]["tracks"].as_array().ok_or("Invalid request: media.tracks must be an array")?;
        if requested.is_empty() || requested.len() > 16 {
            return Err("Invalid request: between 1 and 16 tracks".into());
        }
        let mut tracks = Vec::new();
        for track in requested {
            let kind = kind_of(&track["type"])?;
            let mid = track["mid"].as_str().ok_or("Invalid request: track.mid must be a string")?;
            let source = track["source"].as_str().unwrap_or(if kind == Kind::Audio { "mic" } else { "camera" });
            if !SOURCES.contains(&source) {
                return Err(format!("Invalid request: track source {source:?}"));
            }
            tracks.push(PublishTrack { kind, mid: mid.into(), source: source.into() });
        }
        let attributes = data.get("attributes").cloned().unwrap_or(Value::Null);
        let session_id = uuid_hex();
        let (origin, audio_formats, video_formats) = {
            let mut state = self.lock();
            let conference = state.rooms.get_mut(room).ok_or("Illegal request")?;
            let kinds: Vec<&str> = tracks.iter().map(|t| kind_name(t.kind)).collect();
            conference.reserve_publication(&session_id, participant, &kinds).map_err(|e| e.0)?;
            let config = conference.config();
            let audio: Vec<Format> = config
                .media_in
                .audio
                .iter()
                .map(|f| Format {
                    codec: f.codec.clone(),
                    sample_rate: f.sample_rate,
                    channel_num: f.channel_num,
                    profile: None,
                })
                .collect();
            let video: Vec<Format> = config
                .media_in
                .video
                .iter()
                .map(|f| Format { codec: f.codec.clone(), profile: f.profile.clone(), ..Format::default() })
                .collect();
            let origin = conference.participant(participant).map(|p| p.origin.clone()).unwrap_or(Value::Null);
            (origin, audio, video)
        };
        let unreserve = |hub: &Hub| {
            if let Some(conference) = hub.lock().rooms.get_mut(room) {
                conference.remove_publication(&session_id);
            }
        };
        let (transport_id, node, new_transport) =
            match self.transport_for(participant, data, &session_id, &origin).await {
                Ok(found) => found,
                Err(err) => {
                    unreserve(self);
                    return Err(err);
                }
            };
        let request = PublishRequest {
            session_id: session_id.clone(),
            transport_id: transport_id.clone(),
            owner: participant.into(),
            tracks: tracks.clone(),
            audio_formats,
            video_formats,
        };
        if let Err(err) = self.open_session(&node, methods::PUBLISH, json!(request), &transport_id, new_transport).await
        {
            unreserve(self);
            return Err(err);
        }
        self.record_session(
            &transport_id,
            &node,
            &session_id,
            MediaSession {
                transport: transport_id.clone(),
                owner: participant.into(),
                room: room.into(),
                publish: true,
                tracks,
                attributes,
                video_from: None,
            },
            None,
        )?;
        tracing::info!(participant, session = %session_id, transport = %transport_id, %node, "publication accepted");
        Ok(json!({"id": session_id, "transportId": transport_id}))
    }

    /// Asks the node to take a new session; a transport scheduled just for it is released
    /// again when the node refuses.
    async fn open_session(
        &self,
        node: &str,
        method: &str,
        request: Value,
        transport_id: &str,
        new_transport: bool,
    ) -> Result<(), String> {
        let answer = self.ask_node(node, method, request).await;
        if answer.is_err() && new_transport {
            let _ = self.cluster.release("webrtc", transport_id).await;
        }
        answer.map(|_| ())
    }

    /// Records an accepted session on its transport. The participant may have left while the
    /// node was asked (its transports were closed then): the transport is closed on the node
    /// now and the request fails, so nothing is left behind.
    /// A subscription (`Some((sources, new_transport))`) is also recorded in its room with its
    /// sources (`(kind, stream id)`); when one of them went away meanwhile, the request fails and
    /// the session is undone on the node (with its transport, if it was opened for it).
    fn record_session(
        &self,
        transport_id: &str,
        node: &str,
        session_id: &str,
        session: MediaSession,
        subscription: Option<(&[(&str, &str)], bool)>,
    ) -> Result<(), String> {
        let mut state = self.lock();
        let record = Transport {
            owner: session.owner.clone(),
            room: session.room.clone(),
            node: node.to_string(),
            sessions: Vec::new(),
        };
        let present = state.rooms.get(&session.room).is_some_and(|c| c.participant(&session.owner).is_some());
        if !present {
            state.transports.entry(transport_id.to_string()).or_insert(record);
            self.close_transports_of(&mut state, &session.owner);
            return Err("Participant left".into());
        }
        if let Some((sources, new_transport)) = subscription {
            let conference = state.rooms.get_mut(&session.room).expect("checked above");
            if let Err(refused) = conference.add_subscription(session_id, &session.owner, sources) {
                self.abandon_subscription(node, session_id, transport_id, new_transport);
                return Err(refused.0);
            }
        }
        let transport = state.transports.entry(transport_id.to_string()).or_insert(record);
        transport.sessions.push(session_id.to_string());
        state.media.insert(session_id.to_string(), session);
        Ok(())
    }

    /// Undoes a subscription the node accepted but the room did not record: the session ends
    /// on the node, and a transport opened just for it is closed and released.
    fn abandon_subscription(&self, node: &str, session_id: &str, transport_id: &str, new_transport: bool) {
        let (cluster, node, session_id, transport_id) =
            (self.cluster.clone(), node.to_string(), session_id.to_string(), transport_id.to_string());
        tokio::spawn(async move {
            let (method, request) = if new_transport {
                (methods::DESTROY_TRANSPORT, json!(TransportRequest { transport_id: transport_id.clone() }))
            } else {
                (methods::UNSUBSCRIBE, json!(SessionRequest { session_id }))
            };
            if let Err(err) = cluster.request(&node, method, request, NODE_DEADLINE).await {
                tracing::debug!(transport = %transport_id, "{method}: {err}");
            }
            if new_transport {
                let _ = cluster.release("webrtc", &transport_id).await;
            }
        });
    }

    async fn subscribe(&self, participant: &str, room: &str, data: &Value) -> Result<Value, String> {
        let requested = data["media"]["tracks"].as_array().ok_or("Invalid request: media.tracks must be an array")?;
        if requested.is_empty() || requested.len() > 16 {
            return Err("Invalid request: between 1 and 16 tracks".into());
        }
        // Before any mixer starts a view for it.
        self.existing_transport(participant, data)?;
        let session_id = uuid_hex();
        let (tracks, source_nodes, mixed, transcoded, origin, video_from, sources) = {
            let state = self.lock();
            let conference = state.rooms.get(room).ok_or("Illegal request")?;
            let me = conference.participant(participant).ok_or("Illegal request")?;
            let mut tracks = Vec::new();
            let mut source_nodes = Vec::new();
            let mut mixed = Vec::new();
            let mut transcoded = Vec::new();
            let mut video_from = None;
            let mut sources = Vec::new();
            for track in requested {
                let kind = kind_of(&track["type"])?;
                let allowed =
                    if kind == Kind::Audio { me.permission.subscribe.audio } else { me.permission.subscribe.video };
                if !allowed {
                    return Err("unauthorized".into());
                }
                let mid = track["mid"].as_str().ok_or("Invalid request: track.mid must be a string")?;
                let from = track["from"].as_str().ok_or("Invalid request: track.from must be a string")?;
                if conference.is_mixed(from) {
                    sources.push((kind_name(kind), from.to_string()));
                    let mixed_track = conference
                        .stream(from)
                        .and_then(|s| {
                            s["media"]["tracks"].as_array()?.iter().find(|t| t["type"] == kind_name(kind)).cloned()
                        })
                        .ok_or(format!("Target {} stream does NOT exist: {from}", kind_name(kind)))?;
                    let view = conference.config().views.iter().find(|v| format!("{room}-{}", v.label) == from);
                    let variant = match view {
                        Some(view) => {
                            super::mixing::mixed_variant_plan(room, conference.config(), view, &mixed_track, track)?
                        }
                        None => None,
                    };
                    if let (Some(init), Some(view)) = (variant, view) {
                        // Resolved below: a mixer renders the view in the format asked for.
                        let view_kind = super::mixing::ViewKind::Mixed { label: view.label.clone() };
                        transcoded.push((tracks.len(), view_kind, init));
                        source_nodes.push(String::new());
                        tracks.push(SubscribeTrack {
                            kind,
                            mid: mid.into(),
                            source_track_id: String::new(),
                            link: None,
                        });
                        continue;
                    }
                    // Resolved below: the view's mixer says where its tracks are.
                    mixed.push((tracks.len(), from.to_string()));
                    source_nodes.push(String::new());
                    tracks.push(SubscribeTrack { kind, mid: mid.into(), source_track_id: String::new(), link: None });
                    continue;
                }
                // `from` is a stream id, or a track id of one.
                let publication = conference
                    .streams()
                    .into_iter()
                    .find(|s| {
                        s["id"] == from
                            || s["media"]["tracks"].as_array().into_iter().flatten().any(|t| t["id"] == from)
                    })
                    .ok_or(format!("Stream does NOT exist: {from}"))?;
                let source = publication["media"]["tracks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["type"] == kind_name(kind) && (publication["id"] == from || t["id"] == from))
                    .ok_or(format!("Target {} stream does NOT exist: {from}", kind_name(kind)))?;
                let stream_id = publication["id"].as_str().unwrap_or_default();
                sources.push((kind_name(kind), stream_id.to_string()));
                let mut source = source;
                let mut request = std::borrow::Cow::Borrowed(track);
                if kind == Kind::Video && publication["id"] == from && conference.is_simulcast(stream_id) {
                    // A simulcast stream: the layer that fits the parameters (the best one
                    // without), forwarded as it is; layers not measured yet: the first, or
                    // a transcoder for parameters.
                    let wanted = match track.get("parameters").filter(|p| !p.is_null()) {
                        Some(parameters) => layer_request(parameters)?,
                        None => Some(owt_media::WantedVideo::default()),
                    };
                    let layer = wanted.and_then(|wanted| conference.simulcast_layer(stream_id, &wanted));
                    let layer_track = layer.and_then(|layer| {
                        publication["media"]["tracks"].as_array()?.iter().find(|t| t["id"] == layer.as_str())
                    });
                    if let Some(layer_track) = layer_track {
                        source = layer_track;
                        let mut without_parameters = track.clone();
                        if let Some(object) = without_parameters.as_object_mut() {
                            object.remove("parameters");
                        }
                        request = std::borrow::Cow::Owned(without_parameters);
                    }
                }
                let source_track_id = source["id"].as_str().unwrap_or_default().to_string();
                if kind == Kind::Video {
                    if let Some(init) =
                        super::mixing::transcode_plan(room, conference.config(), stream_id, source, &request)?
                    {
                        // Resolved below: a mixer renders the stream in the format asked for.
                        let view_kind = super::mixing::ViewKind::Transcode { stream: stream_id.to_string() };
                        transcoded.push((tracks.len(), view_kind, init));
                        source_nodes.push(String::new());
                        tracks.push(SubscribeTrack { kind, mid: mid.into(), source_track_id, link: None });
                        continue;
                    }
                } else if let Some(init) =
                    super::mixing::audio_transcode_plan(room, conference.config(), stream_id, source, track)?
                {
                    let view_kind = super::mixing::ViewKind::Transcode { stream: stream_id.to_string() };
                    transcoded.push((tracks.len(), view_kind, init));
                    source_nodes.push(String::new());
                    tracks.push(SubscribeTrack { kind, mid: mid.into(), source_track_id, link: None });
                    continue;
                }
                let node = state
                    .media
                    .get(stream_id)
                    .and_then(|s| state.transports.get(&s.transport))
                    .map(|t| t.node.clone())
                    .ok_or(format!("Stream does NOT exist: {from}"))?;
                source_nodes.push(node);
                if kind == Kind::Video {
                    video_from = Some(stream_id.to_string());
                }
                tracks.push(SubscribeTrack { kind, mid: mid.into(), source_track_id, link: None });
            }
            (tracks, source_nodes, mixed, transcoded, me.origin.clone(), video_from, sources)
        };
        let mut tracks = tracks;
        for (index, view_id) in mixed {
            let outputs = self.view_outputs(room, &view_id).await?;
            let track = &mut tracks[index];
            let link = match track.kind {
                Kind::Audio => outputs.audio,
                Kind::Video => outputs.video,
            }
            .ok_or(format!("Target {} stream does NOT exist: {view_id}", kind_name(track.kind)))?;
            track.source_track_id = link.topic.clone();
            track.link = Some(link);
        }
        for (index, view_kind, init) in transcoded {
            let outputs = self.start_view(room, view_kind, init).await?;
            let link = match tracks[index].kind {
                Kind::Audio => outputs.audio.ok_or("Target audio stream does NOT satisfy: no transcoded audio")?,
                Kind::Video => outputs.video.ok_or("Target video stream does NOT satisfy: no transcoded video")?,
            };
            tracks[index].source_track_id = link.topic.clone();
            tracks[index].link = Some(link);
        }
        let (transport_id, node, new_transport) = self.transport_for(participant, data, &session_id, &origin).await?;
        for (track, source_node) in tracks.iter_mut().zip(&source_nodes) {
            if *source_node == node || track.link.is_some() {
                continue;
            }
            match self.link_out(source_node, &track.source_track_id).await {
                Ok(link) => track.link = Some(link),
                Err(err) => {
                    if new_transport {
                        let _ = self.cluster.release("webrtc", &transport_id).await;
                    }
                    return Err(err);
                }
            }
        }
        let sources: Vec<(&str, &str)> = sources.iter().map(|(kind, stream)| (*kind, stream.as_str())).collect();
        let request = SubscribeRequest {
            session_id: session_id.clone(),
            transport_id: transport_id.clone(),
            owner: participant.into(),
            tracks: tracks.clone(),
        };
        self.open_session(&node, methods::SUBSCRIBE, json!(request), &transport_id, new_transport).await?;
        self.record_session(
            &transport_id,
            &node,
            &session_id,
            MediaSession {
                transport: transport_id.clone(),
                owner: participant.into(),
                room: room.into(),
                publish: false,
                tracks: Vec::new(),
                attributes: Value::Null,
                video_from,
            },
            Some((&sources, new_transport)),
        )?;
        tracing::info!(participant, session = %session_id, transport = %transport_id, %node, "subscription accepted");
        Ok(json!({"id": session_id, "transportId": transport_id}))
    }

    /// The media link of a track on another node: that node starts publishing its frames.
    pub(super) async fn link_out(&self, source_node: &str, track_id: &str) -> Result<LinkSource, String> {
        let reply =
            self.ask_node(source_node, methods::LINK_OUT, json!(TrackRequest { track_id: track_id.into() })).await?;
        let mut link: LinkSource = serde_json::from_value(reply)
            .map_err(|err| format!("link-out failed on {source_node}: unexpected answer: {err}"))?;
        link.node = source_node.to_string();
        Ok(link)
    }

    async fn soac(&self, participant: &str, data: &Value) -> Result<(), String> {
        let id = data.get("id").and_then(Value::as_str).ok_or("Invalid soac id")?;
        let signaling = data.get("signaling").filter(|s| s.is_object()).ok_or("Invalid signaling message")?;
        match signaling["type"].as_str() {
            Some("offer" | "answer" | "candidate" | "removed-candidates") => {}
            _ => return Err("Invalid signaling type".into()),
        }
        let node = {
            let state = self.lock();
            state.transports.get(id).filter(|t| t.owner == participant).map(|t| t.node.clone())
        }
        .ok_or(format!("Transport {id} does NOT exist"))?;
        let request = SignalingRequest { transport_id: id.into(), signaling: signaling.clone() };
        self.ask_node(&node, methods::SIGNALING, json!(request)).await.map(|_| ())
    }

    /// unpublish / unsubscribe.
    async fn end_session(&self, who: Who<'_>, data: &Value, publish: bool) -> Result<(), String> {
        let (invalid, missing) = if publish {
            ("Invalid stream id", "Stream does NOT exist")
        } else {
            ("Invalid subscription id", "Subscription does NOT exist")
        };
        let id = data.get("id").and_then(Value::as_str).filter(|id| valid_id(id)).ok_or(invalid)?;
        let (node, room, outgoing) = {
            let mut state = self.lock();
            let session = state.media.get(id).filter(|s| who.may_end(s) && s.publish == publish).ok_or(missing)?;
            let (transport, room) = (session.transport.clone(), session.room.clone());
            state.media.remove(id);
            let node = state.transports.get_mut(&transport).map(|t| {
                t.sessions.retain(|s| s != id);
                t.node.clone()
            });
            let effects = match state.rooms.get_mut(&room) {
                Some(conference) if publish => conference.remove_publication(id),
                Some(conference) => {
                    conference.remove_subscription(id);
                    Vec::new()
                }
                None => Vec::new(),
            };
            if publish {
                self.views_changed(&room);
            }
            (node, room.clone(), Self::route(&mut state, &room, effects))
        };
        self.deliver(outgoing.0, outgoing.1);
        if let Some(node) = node {
            let method = if publish { methods::UNPUBLISH } else { methods::UNSUBSCRIBE };
            if let Err(err) = self.ask_node(&node, method, json!(SessionRequest { session_id: id.into() })).await {
                tracing::warn!(room, session = id, "{err}");
            }
        }
        Ok(())
    }

    /// The room of a publication that `participant` may control (its owner, or an admin).
    fn controlled_publication(&self, participant: &str, id: &str) -> Result<String, String> {
        let state = self.lock();
        let session = state.media.get(id).filter(|s| s.publish).ok_or("Stream does NOT exist")?;
        let is_admin =
            state.rooms.get(&session.room).and_then(|c| c.participant(participant)).is_some_and(|p| p.role == "admin");
        if session.owner != participant && !is_admin {
            return Err("unauthorized".into());
        }
        Ok(session.room.clone())
    }

    /// stream-control: pause/play (ack "ok"), and OWT's legacy mix/unmix (`data`: view
    /// label), get-region (ack `{region}`) and set-region (`data`: `{view, region}`).
    async fn stream_control(&self, participant: &str, data: &Value) -> Result<Value, String> {
        let id = data.get("id").and_then(Value::as_str).filter(|id| valid_id(id)).ok_or("Invalid stream id")?;
        let active = match data["operation"].as_str() {
            Some("pause") => false,
            Some("play") => true,
            Some(operation @ ("mix" | "unmix")) => {
                let label = data["data"].as_str().ok_or("Invalid stream-control data: a view label")?;
                let room = self.controlled_publication(participant, id)?;
                self.mix_stream(&room, id, label, operation == "mix")?;
                return Ok(json!("ok"));
            }
            Some("get-region") => {
                let label = data["data"].as_str().ok_or("Invalid stream-control data: a view label")?;
                let room = self.controlled_publication(participant, id)?;
                let layout = self.view_layout_now(&room, label)?;
                let region = layout
                    .iter()
                    .find(|item| item["stream"] == id)
                    .map(|item| item["region"]["id"].clone())
                    .ok_or(format!("Stream {id} has no region in view {label}"))?;
                return Ok(json!({"region": region}));
            }
            Some("set-region") => {
                let label = data["data"]["view"].as_str().ok_or("Invalid stream-control data: {view, region}")?;
                let region = data["data"]["region"].as_str().ok_or("Invalid stream-control data: {view, region}")?;
                let room = self.controlled_publication(participant, id)?;
                let mut layout = self.view_layout_now(&room, label)?;
                let target = layout
                    .iter()
                    .position(|item| item["region"]["id"] == region)
                    .ok_or(format!("View {label} has no region {region}"))?;
                // The stream moves there; whoever was there takes its old region.
                let displaced = layout[target].get("stream").cloned();
                if let Some(from) = layout.iter().position(|item| item["stream"] == id) {
                    match &displaced {
                        Some(other) => layout[from]["stream"] = other.clone(),
                        None => {
                            if let Some(item) = layout[from].as_object_mut() {
                                item.remove("stream");
                            }
                        }
                    }
                }
                layout[target]["stream"] = json!(id);
                let operation = json!([{"op": "replace", "path": "/info/layout", "value": layout}]);
                self.rest_update_view(&room, &format!("{room}-{label}"), &operation)?;
                return Ok(json!("ok"));
            }
            _ => return Err("Invalid stream-control operation".into()),
        };
        let kinds = kinds_of(&data["data"])?;
        self.controlled_publication(participant, id)?;
        self.set_stream_status(id, &kinds, active).await.map(|()| json!("ok"))
    }

    /// Pauses or resumes kinds of a publication on its node and tells the room.
    async fn set_stream_status(&self, id: &str, kinds: &[Kind], active: bool) -> Result<(), String> {
        let (node, room) = {
            let state = self.lock();
            let session = state.media.get(id).filter(|s| s.publish).ok_or("Stream does NOT exist")?;
            let node =
                state.transports.get(&session.transport).map(|t| t.node.clone()).ok_or("Stream does NOT exist")?;
            (node, session.room.clone())
        };
        for kind in kinds {
            let request = SetActiveRequest { session_id: id.into(), kind: *kind, active };
            self.ask_node(&node, methods::SET_ACTIVE, json!(request)).await?;
        }
        let outgoing = {
            let mut state = self.lock();
            let mut effects = Vec::new();
            if let Some(conference) = state.rooms.get_mut(&room) {
                for kind in kinds {
                    effects.extend(conference.set_publication_status(id, kind_name(*kind), active).unwrap_or_default());
                }
            }
            Self::route(&mut state, &room, effects)
        };
        self.deliver(outgoing.0, outgoing.1);
        Ok(())
    }

    /// REST `PATCH …/streams/{id}`: `replace` of `/media/audio/status` or
    /// `/media/video/status` with `active`/`inactive` on a forward stream. Mixing operations
    /// (`/info/inViews`, `/info/layout`) need owt-mixer. Returns the updated StreamInfo.
    pub(super) async fn rest_update_stream(&self, room: &str, id: &str, operations: &Value) -> Result<Value, String> {
        let (owned, mixed) = {
            let state = self.lock();
            let owned = state.media.get(id).is_some_and(|s| s.publish && s.room == room);
            (owned, state.rooms.get(room).is_some_and(|c| c.is_mixed(id)))
        };
        if mixed {
            return self.rest_update_view(room, id, operations);
        }
        if !owned {
            return Err("Stream not found".into());
        }
        let operations = operations.as_array().ok_or("Invalid stream update: expected an array of operations")?;
        if operations.len() > 64 {
            return Err("Invalid stream update: at most 64 operations".into());
        }
        enum Change {
            Status(Kind, bool),
            View(String, bool),
        }
        let mut changes = Vec::new();
        for operation in operations {
            let path = operation["path"].as_str().unwrap_or_default();
            let change = match (operation["op"].as_str(), path) {
                (Some(op @ ("add" | "remove")), "/info/inViews") => {
                    let label =
                        operation["value"].as_str().ok_or("Invalid stream update: value must be a view label")?;
                    Change::View(label.to_string(), op == "add")
                }
                (Some("replace"), "/media/audio/status" | "/media/video/status") => {
                    let kind = if path == "/media/audio/status" { Kind::Audio } else { Kind::Video };
                    match operation["value"].as_str() {
                        Some("active") => Change::Status(kind, true),
                        Some("inactive") => Change::Status(kind, false),
                        _ => return Err("Invalid stream update: value must be active or inactive".into()),
                    }
                }
                _ => return Err(format!("Invalid stream update: unsupported operation on {path:?}")),
            };
            changes.push(change);
        }
        // Views are checked before anything changes, so a bad label changes nothing.
        {
            let state = self.lock();
            let conference = state.rooms.get(room).ok_or("Stream not found")?;
            for change in &changes {
                if let Change::View(label, _) = change {
                    if !conference.config().views.iter().any(|v| &v.label == label) {
                        return Err(format!("Invalid stream update: view {label:?} does not exist"));
                    }
                }
            }
        }
        for change in changes {
            match change {
                Change::Status(kind, active) => self.set_stream_status(id, &[kind], active).await?,
                Change::View(label, mix) => self.mix_stream(room, id, &label, mix)?,
            }
        }
        self.lock().rooms.get(room).and_then(|c| c.stream(id)).ok_or_else(|| "Stream not found".to_string())
    }

    /// Mixes a forward stream into a view or takes it out; running views follow.
    fn mix_stream(&self, room: &str, id: &str, label: &str, mix: bool) -> Result<(), String> {
        let routed = {
            let mut state = self.lock();
            let conference = state.rooms.get_mut(room).ok_or("Stream not found")?;
            let effects = if mix { conference.mix(id, label) } else { conference.unmix(id, label) }.map_err(|e| e.0)?;
            // New inputs: the view's templates apply again.
            if !effects.is_empty() {
                state.custom_layouts.remove(&format!("{room}-{label}"));
            }
            Self::route(&mut state, room, effects)
        };
        self.deliver(routed.0, routed.1);
        self.views_changed(room);
        Ok(())
    }

    /// Statistics of a forward stream, or of a subscription (by its id), from its webrtc node
    /// (owt_proto::webrtc::SessionStats).
    pub(super) async fn rest_stream_stats(&self, room: &str, id: &str) -> Option<Value> {
        let node = {
            let state = self.lock();
            let session = state.media.get(id).filter(|s| s.room == room)?;
            state.transports.get(&session.transport)?.node.clone()
        };
        self.ask_node(&node, methods::STATS, json!(SessionRequest { session_id: id.into() })).await.ok()
    }

    /// REST `DELETE …/streams/{id}`: the service ends a publication.
    pub(super) async fn rest_delete_stream(&self, room: &str, id: &str) -> bool {
        self.end_session(Who::Service(room), &json!({"id": id}), true).await.is_ok()
    }

    async fn subscription_control(&self, participant: &str, data: &Value) -> Result<(), String> {
        let id = data.get("id").and_then(Value::as_str).filter(|id| valid_id(id)).ok_or("Invalid subscription id")?;
        let active = match data["operation"].as_str() {
            Some("pause") => false,
            Some("play") => true,
            Some("update") => return self.update_subscription(participant, id, &data["data"]).await,
            _ => return Err("Invalid subscription-control operation".into()),
        };
        let kinds = kinds_of(&data["data"])?;
        let node = owned_subscription(&self.lock(), participant, id)?.1;
        for kind in kinds {
            self.ask_node(&node, methods::SET_ACTIVE, json!(SetActiveRequest { session_id: id.into(), kind, active }))
                .await?;
        }
        Ok(())
    }

    /// subscription-control `update` (spec §1.12): `{audio?: {from}, video?: {from?,
    /// parameters?}}`. A new `from` (another simulcast layer, or another stream's track on the
    /// same webrtc node, of the same codec) is switched to on the node. New `parameters` on a
    /// simulcast stream choose the layer that fits them best (resolution, bitrate, frame rate;
    /// `owt_media::choose_layer`); on other streams they would need a transcoder switch and
    /// are refused.
    async fn update_subscription(&self, participant: &str, id: &str, update: &Value) -> Result<(), String> {
        if !update.is_object() {
            return Err("Invalid subscription update: data must be {audio?, video?}".into());
        }
        let parameters = update["video"].get("parameters").filter(|p| !p.is_null());
        let wanted = match parameters {
            Some(parameters) => match layer_request(parameters)? {
                Some(wanted) => Some(wanted),
                None => {
                    return Err(
                        "Subscription update of keyFrameInterval is not supported (subscribe again with it)".into()
                    )
                }
            },
            None => None,
        };
        let mut switches = Vec::new();
        {
            let state = self.lock();
            let (session, node) = owned_subscription(&state, participant, id)?;
            let conference = state.rooms.get(&session.room).ok_or("Subscription does NOT exist")?;
            for kind in [Kind::Audio, Kind::Video] {
                let from = update[kind_name(kind)].get("from").filter(|f| !f.is_null());
                let (stream_id, mut track_id) = match from {
                    Some(from) => {
                        let from = from
                            .as_str()
                            .filter(|f| valid_id(&f.replace(':', "-")))
                            .ok_or("Invalid subscription update: from")?;
                        forward_source(conference, kind, from, wanted.is_some())
                            .ok_or(format!("Target {} stream does NOT exist: {from}", kind_name(kind)))?
                    }
                    None if kind == Kind::Video && wanted.is_some() => {
                        let stream = session.video_from.clone().ok_or(
                            "Subscription update of parameters needs a simulcast forward stream (subscribe again with them)",
                        )?;
                        (stream, String::new())
                    }
                    None => continue,
                };
                if let (Kind::Video, Some(wanted)) = (kind, &wanted) {
                    if !conference.is_simulcast(&stream_id) {
                        return Err(
                            "Subscription update of parameters needs a simulcast forward stream (subscribe again with them)"
                                .into(),
                        );
                    }
                    track_id = conference
                        .simulcast_layer(&stream_id, wanted)
                        .ok_or("Target video stream does NOT satisfy: its layers are not measured yet")?;
                }
                let source_node = state
                    .media
                    .get(&stream_id)
                    .and_then(|s| state.transports.get(&s.transport))
                    .map(|t| t.node.clone());
                if source_node.as_deref() != Some(node.as_str()) {
                    return Err("Subscription update to a stream on another webrtc node is not implemented yet".into());
                }
                switches.push((node.clone(), kind, stream_id, track_id));
            }
        }
        if switches.is_empty() {
            return Err("Invalid subscription update: nothing to change".into());
        }
        for (node, kind, stream_id, source_track_id) in switches {
            let request = SwitchSource { session_id: id.into(), kind, source_track_id };
            self.ask_node(&node, methods::SWITCH_SOURCE, json!(request)).await?;
            let mut state = self.lock();
            let room = state.media.get(id).map(|s| s.room.clone()).unwrap_or_default();
            if let Some(conference) = state.rooms.get_mut(&room) {
                let _ = conference.switch_subscription_source(id, kind_name(kind), &stream_id);
            }
            if kind == Kind::Video {
                if let Some(session) = state.media.get_mut(id) {
                    session.video_from = Some(stream_id);
                }
            }
        }
        Ok(())
    }

    /// The participant is gone: its transports are closed on their nodes (publications
    /// were removed from the conference by `leave`).
    pub(super) fn close_transports_of(&self, state: &mut State, participant: &str) {
        let ids: Vec<String> =
            state.transports.iter().filter(|(_, t)| t.owner == participant).map(|(id, _)| id.clone()).collect();
        for id in ids {
            let Some(transport) = state.transports.remove(&id) else { continue };
            for session in &transport.sessions {
                state.media.remove(session);
            }
            let cluster = self.cluster.clone();
            tokio::spawn(async move {
                let request = json!(TransportRequest { transport_id: id.clone() });
                if let Err(err) =
                    cluster.request(&transport.node, methods::DESTROY_TRANSPORT, request, NODE_DEADLINE).await
                {
                    tracing::debug!(transport = %id, "destroy-transport: {err}");
                }
                let _ = cluster.release("webrtc", &id).await;
            });
        }
    }

    /// A transport is gone (failed, or its node died): every session on it fails.
    fn fail_transport(&self, transport_id: &str, reason: &str) {
        let routed = {
            let mut state = self.lock();
            let Some(transport) = state.transports.remove(transport_id) else { return };
            let mut effects = Vec::new();
            for session_id in &transport.sessions {
                let Some(session) = state.media.remove(session_id) else { continue };
                effects.push(Effect::Notify {
                    to: transport.owner.clone(),
                    event: "progress",
                    data: json!({"id": transport_id, "sessionId": session_id, "status": "error", "data": reason}),
                });
                if let Some(conference) = state.rooms.get_mut(&transport.room) {
                    if session.publish {
                        effects.extend(conference.remove_publication(session_id));
                    } else {
                        conference.remove_subscription(session_id);
                    }
                }
            }
            self.views_changed(&transport.room);
            Self::route(&mut state, &transport.room, effects)
        };
        tracing::warn!(transport = transport_id, "transport failed: {reason}");
        self.deliver(routed.0, routed.1);
    }

    fn on_node_event(&self, node: &str, method: &str, params: Value) {
        match method {
            events::TRANSPORT_PROGRESS => {
                let Ok(progress) = serde_json::from_value::<TransportProgress>(params) else { return };
                let owner_room = {
                    let state = self.lock();
                    state
                        .transports
                        .get(&progress.transport_id)
                        .filter(|t| t.node == node)
                        .map(|t| (t.owner.clone(), t.room.clone()))
                };
                let Some((owner, room)) = owner_room else { return };
                let id = progress.transport_id.clone();
                let data = match progress.status {
                    TransportStatus::Answer => {
                        json!({"id": id, "status": "soac", "data": {"type": "answer", "sdp": progress.sdp.unwrap_or_default()}})
                    }
                    TransportStatus::Candidate => json!({"id": id, "status": "soac",
                        "data": {"type": "candidate", "candidate": progress.candidate.unwrap_or_default()}}),
                    TransportStatus::Ready => json!({"id": id, "status": "ready"}),
                    TransportStatus::Failed => {
                        return self.fail_transport(&id, progress.reason.as_deref().unwrap_or("transport failed"));
                    }
                };
                self.notify(&room, &owner, "progress", data);
            }
            events::SESSION_READY => {
                let Ok(ready) = serde_json::from_value::<SessionReady>(params) else { return };
                let routed = {
                    let mut state = self.lock();
                    let Some(session) = state.media.get(&ready.session_id) else { return };
                    if state.transports.get(&session.transport).is_none_or(|t| t.node != node) {
                        return;
                    }
                    let (owner, room, publish) = (session.owner.clone(), session.room.clone(), session.publish);
                    let requested = session.tracks.clone();
                    let attributes = session.attributes.clone();
                    let mut effects = vec![Effect::Notify {
                        to: owner,
                        event: "progress",
                        data: json!({"id": ready.transport_id, "sessionId": ready.session_id, "status": "ready"}),
                    }];
                    if publish {
                        let tracks: Vec<PublishedTrack> = ready
                            .tracks
                            .iter()
                            .map(|t| PublishedTrack {
                                id: t.track_id.clone(),
                                kind: kind_name(t.kind).into(),
                                mid: t.mid.clone(),
                                source: requested
                                    .iter()
                                    .find(|r| r.mid == t.mid)
                                    .map(|r| r.source.clone())
                                    .unwrap_or_default(),
                                format: serde_json::to_value(&t.format).unwrap_or(Value::Null),
                                rid: t.rid.clone(),
                            })
                            .collect();
                        if let Some(conference) = state.rooms.get_mut(&room) {
                            effects.extend(conference.add_publication(&ready.session_id, &tracks, attributes));
                        }
                        self.views_changed(&room);
                    } else if let Some(conference) = state.rooms.get_mut(&room) {
                        conference.subscription_ready(&ready.session_id);
                    }
                    Self::route(&mut state, &room, effects)
                };
                self.deliver(routed.0, routed.1);
            }
            events::SESSION_FAILED => {
                let Ok(failed) = serde_json::from_value::<SessionFailed>(params) else { return };
                let routed = {
                    let mut state = self.lock();
                    let Some(session) = state.media.get(&failed.session_id) else { return };
                    if state.transports.get(&session.transport).is_none_or(|t| t.node != node) {
                        return;
                    }
                    let session = state.media.remove(&failed.session_id).expect("checked above");
                    if let Some(transport) = state.transports.get_mut(&session.transport) {
                        transport.sessions.retain(|s| *s != failed.session_id);
                    }
                    let mut effects = vec![Effect::Notify {
                        to: session.owner.clone(),
                        event: "progress",
                        data: json!({"id": failed.transport_id, "sessionId": failed.session_id, "status": "error", "data": failed.reason}),
                    }];
                    if session.publish {
                        if let Some(conference) = state.rooms.get_mut(&session.room) {
                            effects.extend(conference.remove_publication(&failed.session_id));
                        }
                        self.views_changed(&session.room);
                    } else if let Some(conference) = state.rooms.get_mut(&session.room) {
                        conference.remove_subscription(&failed.session_id);
                    }
                    Self::route(&mut state, &session.room, effects)
                };
                self.deliver(routed.0, routed.1);
            }
            events::TRACK_UPDATE => {
                let Ok(update) = serde_json::from_value::<TrackUpdate>(params) else { return };
                let Some(transport_id) = owt_media::sessions::transport_of_track(&update.track_id) else { return };
                let routed = {
                    let mut state = self.lock();
                    let Some(room) =
                        state.transports.get(transport_id).filter(|t| t.node == node).map(|t| t.room.clone())
                    else {
                        return;
                    };
                    let facts = owt_media::VideoFacts {
                        width: update.width,
                        height: update.height,
                        framerate: update.framerate,
                        bitrate_kbps: update.bitrate_kbps,
                    };
                    let Some(conference) = state.rooms.get_mut(&room) else { return };
                    let effects = conference.update_video_facts(&update.track_id, facts);
                    Self::route(&mut state, &room, effects)
                };
                self.deliver(routed.0, routed.1);
            }
            events::KEYFRAME_REQUEST => {
                let Ok(request) = serde_json::from_value::<KeyframeRequest>(params) else { return };
                let cluster = self.cluster.clone();
                tokio::spawn(async move {
                    let params = json!(TrackRequest { track_id: request.track_id });
                    if let Err(err) = cluster.event(&request.node, methods::REQUEST_KEYFRAME, params).await {
                        tracing::debug!(node = request.node, "keyframe request not relayed: {err}");
                    }
                });
            }
            owt_proto::mixer::events::ACTIVE_INPUT => self.on_active_input(node, params),
            _ => tracing::debug!(node, method, "unhandled worker event"),
        }
    }

    fn notify(&self, room: &str, to: &str, event: &'static str, data: Value) {
        let routed = {
            let mut state = self.lock();
            Self::route(&mut state, room, vec![Effect::Notify { to: to.into(), event, data }])
        };
        self.deliver(routed.0, routed.1);
    }

    fn node_died(&self, node: &str) {
        let transports: Vec<String> =
            self.lock().transports.iter().filter(|(_, t)| t.node == node).map(|(id, _)| id.clone()).collect();
        for transport in transports {
            self.fail_transport(&transport, &format!("webrtc node {node} failed"));
        }
    }
}

/// Follows the cluster: node events and node deaths reach the hub.
pub(super) async fn follow_nodes(hub: Arc<Hub>) {
    let mut events = hub.cluster.subscribe_events();
    loop {
        match events.recv().await {
            Ok(ClusterEvent::WorkerEvent { node_id, method, params }) => hub.on_node_event(&node_id, &method, params),
            Ok(ClusterEvent::WorkerDied { node_id, kind, .. }) if kind == "webrtc" => hub.node_died(&node_id),
            Ok(ClusterEvent::WorkerDied { node_id, kind, .. }) if kind == "mixer" => {
                let hub = hub.clone();
                tokio::spawn(async move { hub.mixer_died(&node_id).await });
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!("signaling missed {missed} cluster events");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_requests_are_validated() {
        let wanted =
            layer_request(&json!({"resolution": {"width": 320, "height": 240}, "bitrate": "x0.5", "framerate": 15}))
                .unwrap()
                .unwrap();
        assert_eq!(wanted.resolution, Some((320, 240)));
        assert_eq!(wanted.bitrate_multiplier, Some(0.5));
        assert_eq!(wanted.framerate, Some(15));
        assert_eq!(layer_request(&json!({"bitrate": 300})).unwrap().unwrap().bitrate_kbps, Some(300));
        assert_eq!(layer_request(&json!({"keyFrameInterval": 2})).unwrap(), None, "a transcoder's job");
        for hostile in [
            json!("x"),
            json!({"resolution": {"width": 0, "height": 240}}),
            json!({"resolution": {"width": "320", "height": 240}}),
            json!({"resolution": [320, 240]}),
            json!({"framerate": 0}),
            json!({"framerate": "fast"}),
            json!({"bitrate": "y0.5"}),
            json!({"bitrate": "x0"}),
            json!({"bitrate": -5}),
            json!({"bitrate": true}),
            json!({"keyFrameInterval": -1}),
            json!({"color": "red"}),
        ] {
            let err = layer_request(&hostile).unwrap_err();
            assert!(err.starts_with("Invalid request"), "{hostile}: {err}");
        }
    }
}

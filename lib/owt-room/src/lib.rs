//! The conference core of owt-rs, sans-IO: what OWT's conference agent decides, without any
//! sockets, clocks or databases. A [`Conference`] holds one running room: its participants
//! with their roles and permissions, the streams published into it (forward streams and the
//! mixed streams of its views), and the subscriptions. Every operation validates, changes
//! state and returns the [`Effect`]s the caller must carry out (notifications to send,
//! participants to drop). Errors carry the exact strings OWT clients expect.

mod streams;
mod subscriptions;

pub use streams::{mixed_stream_info, rest_stream, StreamInfoBuilder};
pub use subscriptions::{Subscription, SubscriptionState, PARTICIPANT_TERMINATE, SOURCE_STREAM_LOSS};

use owt_media::{VideoFacts, WantedVideo};
use owt_types::room::RoomConfig;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A refusal, worded as OWT words it (clients show these strings).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConferenceError(pub String);

fn refuse<T>(message: impl Into<String>) -> Result<T, ConferenceError> {
    Err(ConferenceError(message.into()))
}

/// Publish/subscribe rights per media kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rights {
    pub audio: bool,
    pub video: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permission {
    pub publish: Rights,
    pub subscribe: Rights,
}

impl Permission {
    pub fn to_json(&self) -> Value {
        json!({
            "publish": {"audio": self.publish.audio, "video": self.publish.video},
            "subscribe": {"audio": self.subscribe.audio, "video": self.subscribe.video},
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Participant {
    pub id: String,
    pub user: String,
    pub role: String,
    pub permission: Permission,
    /// `{isp, region}` from the token.
    pub origin: Value,
}

impl Participant {
    /// `{id, user, role}` as in login results and `participant` notifications.
    pub fn summary(&self) -> Value {
        json!({"id": self.id, "user": self.user, "role": self.role})
    }

    /// The REST form: `{id, user, role, permission}`.
    pub fn detail(&self) -> Value {
        json!({"id": self.id, "user": self.user, "role": self.role, "permission": self.permission.to_json()})
    }
}

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// To one participant.
    Notify { to: String, event: &'static str, data: Value },
    /// To every participant except those listed.
    Broadcast { exclude: Vec<String>, event: &'static str, data: Value },
    /// Tell the participant `drop`, then disconnect it (it has already left the room).
    Drop { participant: String },
    /// A subscription is over (it has already left the room): close its session on the media
    /// node and, unless `reason` is [`PARTICIPANT_TERMINATE`], tell `owner` a `progress`
    /// error `{id: transportId, sessionId: id, status: "error", data: reason}`.
    EndSubscription { id: String, owner: String, reason: &'static str },
}

/// What `join` answers: the `room` part of the login result and the participant itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    pub participant: Participant,
    pub room: Value,
}

/// One running room.
#[derive(Debug)]
pub struct Conference {
    room_id: String,
    config: RoomConfig,
    /// In join order, so lists are stable.
    participants: Vec<Participant>,
    /// Mixed streams of the views, by stream id, built once when the room starts.
    mixed: BTreeMap<String, Value>,
    /// Forward streams (publications) in publish order: id, owner and StreamInfo.
    forward: Vec<Publication>,
    /// Publications accepted but not yet ready (they count against inputLimit).
    pending: Vec<(String, String)>,
    /// Counts mix operations, so a view's inputs keep the order they were mixed in.
    mix_order: u64,
    /// Live subscriptions by id.
    subscriptions: BTreeMap<String, Subscription>,
}

/// A forward stream published by a participant.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub id: String,
    pub owner: String,
    pub info: Value,
    /// Views it is mixed into, with the order of the mix operation.
    pub mixed_at: BTreeMap<String, u64>,
    /// What the media node measured of its video tracks (by track id).
    pub video_facts: BTreeMap<String, VideoFacts>,
}

/// A track of a publication as the media node negotiated it.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedTrack {
    /// `<transportId>-<mid>`.
    pub id: String,
    /// `audio` or `video`.
    pub kind: String,
    pub mid: String,
    pub source: String,
    /// `{codec, ...}` as clients name formats.
    pub format: Value,
    /// The simulcast layer (RID), for a track that is one (its id is `<transportId>-<mid>:<rid>`).
    pub rid: Option<String>,
}

impl Conference {
    pub fn new(room_id: &str, config: RoomConfig) -> Conference {
        let mixed = config
            .views
            .iter()
            .map(|view| {
                let info = mixed_stream_info(room_id, &config, view);
                (info["id"].as_str().unwrap_or_default().to_string(), info)
            })
            .collect();
        Conference {
            room_id: room_id.into(),
            config,
            participants: Vec::new(),
            mixed,
            forward: Vec::new(),
            pending: Vec::new(),
            mix_order: 0,
            subscriptions: BTreeMap::new(),
        }
    }

    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    pub fn config(&self) -> &RoomConfig {
        &self.config
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    pub fn participant(&self, id: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.id == id)
    }

    pub fn participants(&self) -> &[Participant] {
        &self.participants
    }

    /// Every stream of the room in the Socket.IO StreamInfo form: mixed streams of the
    /// views, then forward streams in publish order.
    pub fn streams(&self) -> Vec<Value> {
        self.mixed.values().cloned().chain(self.forward.iter().map(|p| p.info.clone())).collect()
    }

    pub fn stream(&self, id: &str) -> Option<Value> {
        self.mixed.get(id).cloned().or_else(|| self.publication(id).map(|p| p.info.clone()))
    }

    pub fn publication(&self, id: &str) -> Option<&Publication> {
        self.forward.iter().find(|p| p.id == id)
    }

    pub fn is_mixed(&self, id: &str) -> bool {
        self.mixed.contains_key(id)
    }

    /// Ids of the publications (ready or pending) of a participant.
    pub fn publications_of(&self, owner: &str) -> Vec<String> {
        self.forward
            .iter()
            .filter(|p| p.owner == owner)
            .map(|p| p.id.clone())
            .chain(self.pending.iter().filter(|(_, o)| o == owner).map(|(id, _)| id.clone()))
            .collect()
    }

    /// Accepts a publish request before media flows: the participant may publish these
    /// kinds and the room has room for another input (OWT: "Too many inputs").
    pub fn reserve_publication(&mut self, id: &str, owner: &str, kinds: &[&str]) -> Result<(), ConferenceError> {
        let Some(participant) = self.participant(owner) else { return refuse("Participant does NOT exist") };
        for kind in kinds {
            let allowed = match *kind {
                "audio" => participant.permission.publish.audio,
                "video" => participant.permission.publish.video,
                _ => false,
            };
            if !allowed {
                return refuse("unauthorized");
            }
        }
        if self.stream(id).is_some() || self.pending.iter().any(|(p, _)| p == id) {
            return refuse("Stream exists");
        }
        let limit = self.config.input_limit;
        if limit >= 0 && (self.forward.len() + self.pending.len()) as i64 >= limit {
            return refuse("Too many inputs");
        }
        self.pending.push((id.into(), owner.into()));
        Ok(())
    }

    /// The media node has the publication's tracks: it becomes a forward stream, announced
    /// to everybody (the publisher too) when the room notifies stream changes.
    pub fn add_publication(&mut self, id: &str, tracks: &[PublishedTrack], attributes: Value) -> Vec<Effect> {
        let Some(index) = self.pending.iter().position(|(p, _)| p == id) else { return Vec::new() };
        let (_, owner) = self.pending.remove(index);
        let builder = StreamInfoBuilder::new(&self.config);
        let tracks: Vec<Value> = tracks
            .iter()
            .map(|track| {
                let optional = if track.kind == "audio" {
                    builder.audio_optional(&serde_json::from_value(track.format.clone()).unwrap_or_else(|_| {
                        owt_types::room::AudioFormat { codec: String::new(), sample_rate: None, channel_num: None }
                    }))
                } else {
                    let format = serde_json::from_value(track.format.clone())
                        .unwrap_or(owt_types::room::VideoFormat { codec: String::new(), profile: None });
                    builder.video_optional(&format, 640, 480, 30)
                };
                let mut info = json!({
                    "id": track.id,
                    "type": track.kind,
                    "source": track.source,
                    "format": track.format,
                    "optional": optional,
                    "status": "active",
                    "mid": track.mid,
                });
                if let Some(rid) = &track.rid {
                    info["rid"] = json!(rid);
                }
                info
            })
            .collect();
        let attributes = if attributes.is_object() { attributes } else { json!({}) };
        let info = json!({
            "id": id,
            "type": "forward",
            "media": {"tracks": tracks},
            "info": {"owner": owner, "type": "webrtc", "inViews": [], "attributes": attributes},
        });
        self.forward.push(Publication {
            id: id.into(),
            owner,
            info: info.clone(),
            mixed_at: BTreeMap::new(),
            video_facts: BTreeMap::new(),
        });
        self.stream_change(json!({"id": id, "status": "add", "data": info}))
    }

    /// The media node measured a video track: its size, frame rate and bitrate. A new size
    /// goes into the track's `parameters.resolution` (its `optional` follows) and everybody is
    /// told the new StreamInfo (field `.`), as OWT does on a webrtc media update. Unknown
    /// tracks change nothing.
    pub fn update_video_facts(&mut self, track_id: &str, facts: VideoFacts) -> Vec<Effect> {
        let builder = StreamInfoBuilder::new(&self.config);
        let Some(publication) = self.forward.iter_mut().find(|p| {
            p.info["media"]["tracks"].as_array().is_some_and(|tracks| tracks.iter().any(|t| t["id"] == track_id))
        }) else {
            return Vec::new();
        };
        let resized = publication
            .video_facts
            .get(track_id)
            .is_none_or(|old| (old.width, old.height) != (facts.width, facts.height));
        publication.video_facts.insert(track_id.to_string(), facts);
        if !resized {
            return Vec::new();
        }
        let Some(track) = publication.info["media"]["tracks"]
            .as_array_mut()
            .and_then(|tracks| tracks.iter_mut().find(|t| t["id"] == track_id && t["type"] == "video"))
        else {
            return Vec::new();
        };
        track["parameters"]["resolution"] = json!({"width": facts.width, "height": facts.height});
        let format = serde_json::from_value(track["format"].clone())
            .unwrap_or(owt_types::room::VideoFormat { codec: String::new(), profile: None });
        track["optional"] = builder.video_optional(&format, facts.width, facts.height, 30);
        let (id, info) = (publication.id.clone(), publication.info.clone());
        self.stream_change(json!({"id": id, "status": "update", "data": {"field": ".", "value": info}}))
    }

    /// Whether a forward stream's video is published as simulcast layers.
    pub fn is_simulcast(&self, stream_id: &str) -> bool {
        self.publication(stream_id).is_some_and(|p| {
            p.info["media"]["tracks"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["type"] == "video" && t.get("rid").is_some()))
        })
    }

    /// The simulcast layer (track id) of a forward stream that best serves `wanted`
    /// (`owt_media::choose_layer`); None when the stream is not simulcast or no layer has been
    /// measured yet.
    pub fn simulcast_layer(&self, stream_id: &str, wanted: &WantedVideo) -> Option<String> {
        let publication = self.publication(stream_id)?;
        let layers: Vec<(&str, Option<VideoFacts>)> = publication.info["media"]["tracks"]
            .as_array()?
            .iter()
            .filter(|t| t["type"] == "video" && t.get("rid").is_some())
            .filter_map(|t| t["id"].as_str())
            .map(|id| (id, publication.video_facts.get(id).copied()))
            .collect();
        owt_media::choose_layer(&layers, wanted).map(str::to_string)
    }

    /// A publication ends (unpublish, failure, its owner left): the subscriptions taking
    /// media from it end ("Source stream loss"), then everybody is told the stream is gone.
    /// Unknown ids change nothing.
    pub fn remove_publication(&mut self, id: &str) -> Vec<Effect> {
        self.pending.retain(|(p, _)| p != id);
        let Some(index) = self.forward.iter().position(|p| p.id == id) else { return Vec::new() };
        self.forward.remove(index);
        let mut effects = self.end_subscriptions(|s| s.sources.values().any(|source| source == id), SOURCE_STREAM_LOSS);
        effects.extend(self.stream_change(json!({"id": id, "status": "remove"})));
        effects
    }

    /// Mixes a forward stream into the view `label` (REST `/info/inViews` add, stream-control
    /// `mix`). Streams are not mixed on their own, as in OWT: the application mixes them.
    /// Mixing it again changes nothing. Tells everybody the new StreamInfo (field `.`).
    pub fn mix(&mut self, id: &str, label: &str) -> Result<Vec<Effect>, ConferenceError> {
        self.set_in_view(id, label, true)
    }

    /// Takes a forward stream out of the view `label`.
    pub fn unmix(&mut self, id: &str, label: &str) -> Result<Vec<Effect>, ConferenceError> {
        self.set_in_view(id, label, false)
    }

    /// The forward streams mixed into the view `label`, in the order they were mixed.
    pub fn view_inputs(&self, label: &str) -> Vec<String> {
        let mut mixed: Vec<(u64, String)> =
            self.forward.iter().filter_map(|p| p.mixed_at.get(label).map(|order| (*order, p.id.clone()))).collect();
        mixed.sort();
        mixed.into_iter().map(|(_, id)| id).collect()
    }

    fn set_in_view(&mut self, id: &str, label: &str, mixed: bool) -> Result<Vec<Effect>, ConferenceError> {
        if !self.config.views.iter().any(|v| v.label == label) {
            return refuse(format!("View does NOT exist: {label}"));
        }
        self.mix_order += 1;
        let order = self.mix_order;
        let Some(publication) = self.forward.iter_mut().find(|p| p.id == id) else {
            return refuse("Stream does NOT exist");
        };
        let changed = if mixed {
            !publication.mixed_at.contains_key(label) && publication.mixed_at.insert(label.into(), order).is_none()
        } else {
            publication.mixed_at.remove(label).is_some()
        };
        if !changed {
            return Ok(Vec::new());
        }
        let mut views: Vec<(&u64, &String)> = publication.mixed_at.iter().map(|(l, o)| (o, l)).collect();
        views.sort();
        publication.info["info"]["inViews"] = json!(views.into_iter().map(|(_, l)| l.clone()).collect::<Vec<_>>());
        let info = publication.info.clone();
        Ok(self.stream_change(json!({"id": id, "status": "update", "data": {"field": ".", "value": info}})))
    }

    /// stream-control pause/play: marks the publication's tracks of `kind` active or
    /// inactive and tells everybody (`audio.status` / `video.status`).
    pub fn set_publication_status(
        &mut self,
        id: &str,
        kind: &str,
        active: bool,
    ) -> Result<Vec<Effect>, ConferenceError> {
        let Some(publication) = self.forward.iter_mut().find(|p| p.id == id) else {
            return refuse("Stream does NOT exist");
        };
        let status = if active { "active" } else { "inactive" };
        let mut changed = false;
        for track in publication.info["media"]["tracks"].as_array_mut().into_iter().flatten() {
            if track["type"] == kind {
                track["status"] = json!(status);
                changed = true;
            }
        }
        if !changed {
            return refuse(format!("Stream has no {kind} track"));
        }
        Ok(self.stream_change(
            json!({"id": id, "status": "update", "data": {"field": format!("{kind}.status"), "value": status}}),
        ))
    }

    /// A mixer reported a change of a mixed stream: `info.activeInput` (field `activeInput`)
    /// or `info.layout` (field `video.layout`). Stored in its StreamInfo and announced as a
    /// `stream` update, only when the value changed.
    pub fn update_mixed(&mut self, id: &str, field: &str, value: Value) -> Result<Vec<Effect>, ConferenceError> {
        let Some(info) = self.mixed.get_mut(id) else {
            return refuse("Stream does NOT exist");
        };
        let key = match field {
            "activeInput" => "activeInput",
            "video.layout" => "layout",
            _ => return refuse(format!("Invalid mixed stream field {field}")),
        };
        if info["info"][key] == value {
            return Ok(Vec::new());
        }
        info["info"][key] = value.clone();
        Ok(self.stream_change(json!({"id": id, "status": "update", "data": {"field": field, "value": value}})))
    }

    fn stream_change(&self, data: Value) -> Vec<Effect> {
        if self.config.notifying.stream_change {
            vec![Effect::Broadcast { exclude: vec![], event: "stream", data }]
        } else {
            Vec::new()
        }
    }

    /// Adds a participant: checks participantLimit (as OWT: only a positive limit counts) and
    /// the role, announces the join.
    pub fn join(
        &mut self,
        id: &str,
        user: &str,
        role: &str,
        origin: Value,
    ) -> Result<(Joined, Vec<Effect>), ConferenceError> {
        let limit = self.config.participant_limit;
        if limit > 0 && self.participants.len() as i64 >= limit {
            return refuse("Room is full");
        }
        let Some(role_def) = self.config.roles.iter().find(|r| r.role == role) else {
            return refuse("Invalid role");
        };
        if self.participant(id).is_some() {
            return refuse("Participant already joined");
        }
        let permission = Permission {
            publish: Rights { audio: role_def.publish.audio, video: role_def.publish.video },
            subscribe: Rights { audio: role_def.subscribe.audio, video: role_def.subscribe.video },
        };
        let participant = Participant { id: id.into(), user: user.into(), role: role.into(), permission, origin };
        self.participants.push(participant.clone());
        let mut effects = Vec::new();
        if self.config.notifying.participant_activities {
            effects.push(Effect::Broadcast {
                exclude: vec![id.into()],
                event: "participant",
                data: json!({"action": "join", "data": participant.summary()}),
            });
        }
        let room = json!({
            "id": self.room_id,
            "views": self.config.views.iter().map(|v| v.label.clone()).collect::<Vec<_>>(),
            "participants": self.participants.iter().map(Participant::summary).collect::<Vec<_>>(),
            "streams": self.streams(),
        });
        Ok((Joined { participant, room }, effects))
    }

    /// Removes a participant (logout, disconnect, drop) with its subscriptions and its
    /// publications (which ends other participants' subscriptions of them). Unknown ids
    /// change nothing.
    pub fn leave(&mut self, id: &str) -> Vec<Effect> {
        let Some(index) = self.participants.iter().position(|p| p.id == id) else {
            return Vec::new();
        };
        let mut effects = self.end_subscriptions(|s| s.owner == id, PARTICIPANT_TERMINATE);
        for publication in self.publications_of(id) {
            effects.extend(self.remove_publication(&publication));
        }
        self.participants.remove(index);
        if self.config.notifying.participant_activities {
            effects.push(Effect::Broadcast {
                exclude: vec![],
                event: "participant",
                data: json!({"action": "leave", "data": id}),
            });
        }
        effects
    }

    /// REST `DELETE …/participants/{id}`: the participant leaves and is told `drop`.
    pub fn drop_participant(&mut self, id: &str) -> Result<Vec<Effect>, ConferenceError> {
        if self.participant(id).is_none() {
            return refuse("Participant not found");
        }
        let mut effects = vec![Effect::Drop { participant: id.into() }];
        effects.extend(self.leave(id));
        Ok(effects)
    }

    /// The `text` request: `to` is a participant id or "all" (the sender gets "all" too).
    pub fn text(&self, from: &str, to: &str, message: &Value) -> Result<Vec<Effect>, ConferenceError> {
        if to.is_empty() {
            return refuse("Invalid receiver");
        }
        if to == "all" {
            return Ok(vec![Effect::Broadcast {
                exclude: vec![],
                event: "text",
                data: json!({"from": from, "to": "all", "message": message}),
            }]);
        }
        if self.participant(to).is_none() {
            return refuse(format!("Target participant does NOT exist: {to}"));
        }
        Ok(vec![Effect::Notify {
            to: to.into(),
            event: "text",
            data: json!({"from": from, "to": "me", "message": message}),
        }])
    }

    /// REST `PATCH …/participants/{id}`: JSON-patch-like `replace` operations on
    /// `/permission/(publish|subscribe)[/(audio|video)]`. All or nothing.
    pub fn update_permission(&mut self, id: &str, operations: &Value) -> Result<Value, ConferenceError> {
        let Some(index) = self.participants.iter().position(|p| p.id == id) else {
            return refuse("Participant not found");
        };
        let Some(operations) = operations.as_array() else {
            return refuse("Invalid permission update: expected an array of operations");
        };
        let mut permission = self.participants[index].permission;
        for operation in operations {
            let op = operation.get("op").and_then(Value::as_str);
            let path = operation.get("path").and_then(Value::as_str).unwrap_or_default();
            let value = operation.get("value").unwrap_or(&Value::Null);
            if op != Some("replace") {
                return refuse(format!("Invalid permission update: unsupported op {:?}", operation.get("op")));
            }
            let parts: Vec<&str> = path.split('/').collect();
            let rights = match parts.get(2) {
                Some(&"publish") if parts.get(1) == Some(&"permission") => &mut permission.publish,
                Some(&"subscribe") if parts.get(1) == Some(&"permission") => &mut permission.subscribe,
                _ => return refuse(format!("Invalid permission update: bad path {path:?}")),
            };
            match (parts.get(3), value) {
                (None, Value::Object(map)) => {
                    for key in map.keys() {
                        if key != "audio" && key != "video" {
                            return refuse(format!("Invalid permission update: unknown member {key:?}"));
                        }
                    }
                    for (kind, slot) in [("audio", &mut rights.audio), ("video", &mut rights.video)] {
                        match map.get(kind) {
                            Some(Value::Bool(b)) => *slot = *b,
                            None => {}
                            Some(_) => return refuse(format!("Invalid permission update: {kind} must be a boolean")),
                        }
                    }
                }
                (Some(&"audio"), Value::Bool(b)) if parts.len() == 4 => rights.audio = *b,
                (Some(&"video"), Value::Bool(b)) if parts.len() == 4 => rights.video = *b,
                _ => return refuse(format!("Invalid permission update: bad value for {path:?}")),
            }
        }
        self.participants[index].permission = permission;
        Ok(self.participants[index].detail())
    }
}

#[cfg(test)]
mod subscription_tests;
#[cfg(test)]
mod tests;

//! The conference core of owt-rs, sans-IO: what OWT's conference agent decides, without any
//! sockets, clocks or databases. A [`Conference`] holds one running room: its participants
//! with their roles and permissions, the streams published into it (forward streams and the
//! mixed streams of its views), and the subscriptions. Every operation validates, changes
//! state and returns the [`Effect`]s the caller must carry out (notifications to send,
//! participants to drop). Errors carry the exact strings OWT clients expect.

mod streams;

pub use streams::{mixed_stream_info, rest_stream, StreamInfoBuilder};

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
        Conference { room_id: room_id.into(), config, participants: Vec::new(), mixed }
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

    /// Every stream of the room in the Socket.IO StreamInfo form.
    pub fn streams(&self) -> Vec<Value> {
        self.mixed.values().cloned().collect()
    }

    pub fn stream(&self, id: &str) -> Option<Value> {
        self.mixed.get(id).cloned()
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

    /// Removes a participant (logout, disconnect, drop). Unknown ids change nothing.
    pub fn leave(&mut self, id: &str) -> Vec<Effect> {
        let Some(index) = self.participants.iter().position(|p| p.id == id) else {
            return Vec::new();
        };
        self.participants.remove(index);
        if self.config.notifying.participant_activities {
            vec![Effect::Broadcast {
                exclude: vec![],
                event: "participant",
                data: json!({"action": "leave", "data": id}),
            }]
        } else {
            Vec::new()
        }
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
mod tests;

//! The sessions of one client transport (one RTCPeerConnection): which m-line (mid) belongs
//! to which publication or subscription, and when each session is ready. A session is ready
//! once every one of its mids is satisfied — a publication's track has arrived, a
//! subscription's track is bound — and the transport is connected; it is reported ready
//! once. Ended sessions free their mids; the client keeps such m-lines in later offers with
//! port 0 or `inactive`, so ended mids are remembered as closed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a session does on the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publish,
    Subscribe,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("session {0} already exists")]
    DuplicateSession(String),
    #[error("session {0} does not exist")]
    UnknownSession(String),
    #[error("mid {mid} is already used by session {session}")]
    MidInUse { mid: String, session: String },
    #[error("session {0} has no tracks")]
    NoTracks(String),
    #[error("the transport already has {0} sessions")]
    TooManySessions(usize),
    #[error("invalid mid {0:?}")]
    BadMid(String),
}

#[derive(Debug, Clone)]
struct Session {
    role: Role,
    mids: Vec<String>,
    satisfied: BTreeSet<String>,
    reported: bool,
}

/// Sessions by id and by mid, for one transport.
#[derive(Debug, Clone, Default)]
pub struct TransportSessions {
    sessions: BTreeMap<String, Session>,
    by_mid: HashMap<String, String>,
    closed: BTreeSet<String>,
    transport_ready: bool,
}

/// At most this many sessions on one transport.
pub const MAX_SESSIONS: usize = 256;

impl TransportSessions {
    pub fn new() -> TransportSessions {
        TransportSessions::default()
    }

    /// Records a session owning `mids`.
    pub fn add(&mut self, session_id: &str, role: Role, mids: &[String]) -> Result<(), SessionError> {
        if self.sessions.contains_key(session_id) {
            return Err(SessionError::DuplicateSession(session_id.to_string()));
        }
        if self.sessions.len() >= MAX_SESSIONS {
            return Err(SessionError::TooManySessions(self.sessions.len()));
        }
        if mids.is_empty() {
            return Err(SessionError::NoTracks(session_id.to_string()));
        }
        let mut seen = BTreeSet::new();
        for mid in mids {
            if mid.is_empty() || mid.len() > 32 || !mid.chars().all(|c| c.is_ascii_graphic()) || !seen.insert(mid) {
                return Err(SessionError::BadMid(mid.clone()));
            }
            if let Some(owner) = self.by_mid.get(mid) {
                return Err(SessionError::MidInUse { mid: mid.clone(), session: owner.clone() });
            }
        }
        for mid in mids {
            self.by_mid.insert(mid.clone(), session_id.to_string());
            self.closed.remove(mid);
        }
        self.sessions.insert(
            session_id.to_string(),
            Session { role, mids: mids.to_vec(), satisfied: BTreeSet::new(), reported: false },
        );
        Ok(())
    }

    /// Ends a session; returns its mids, which are now closed.
    pub fn remove(&mut self, session_id: &str) -> Result<Vec<String>, SessionError> {
        let session =
            self.sessions.remove(session_id).ok_or_else(|| SessionError::UnknownSession(session_id.to_string()))?;
        for mid in &session.mids {
            self.by_mid.remove(mid);
            self.closed.insert(mid.clone());
        }
        Ok(session.mids)
    }

    /// The session owning `mid`, with its role.
    pub fn session_of(&self, mid: &str) -> Option<(&str, Role)> {
        let id = self.by_mid.get(mid)?;
        self.sessions.get(id).map(|s| (id.as_str(), s.role))
    }

    pub fn role(&self, session_id: &str) -> Option<Role> {
        self.sessions.get(session_id).map(|s| s.role)
    }

    pub fn mids(&self, session_id: &str) -> Option<&[String]> {
        self.sessions.get(session_id).map(|s| s.mids.as_slice())
    }

    /// The mid belonged to a session that ended.
    pub fn is_closed(&self, mid: &str) -> bool {
        self.closed.contains(mid)
    }

    pub fn session_ids(&self) -> impl Iterator<Item = &str> {
        self.sessions.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn is_transport_ready(&self) -> bool {
        self.transport_ready
    }

    /// The track of `mid` arrived (publish) or was bound (subscribe). Returns the session that
    /// became ready by it, to report once.
    pub fn satisfy(&mut self, mid: &str) -> Option<String> {
        let id = self.by_mid.get(mid)?.clone();
        let session = self.sessions.get_mut(&id)?;
        session.satisfied.insert(mid.to_string());
        self.take_ready(&id)
    }

    /// The transport connected: returns the sessions that became ready by it.
    pub fn set_transport_ready(&mut self) -> Vec<String> {
        self.transport_ready = true;
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        ids.iter().filter_map(|id| self.take_ready(id)).collect()
    }

    fn take_ready(&mut self, id: &str) -> Option<String> {
        let ready = self.transport_ready;
        let session = self.sessions.get_mut(id)?;
        if ready && !session.reported && session.mids.iter().all(|m| session.satisfied.contains(m)) {
            session.reported = true;
            Some(id.to_string())
        } else {
            None
        }
    }

    pub fn is_reported(&self, session_id: &str) -> bool {
        self.sessions.get(session_id).is_some_and(|s| s.reported)
    }
}

/// The id of the track of `mid` on `transport_id`, as OWT names it.
pub fn track_id(transport_id: &str, mid: &str) -> String {
    format!("{transport_id}-{mid}")
}

/// The transport of a track id `<transportId>-<mid>[:<rid>]`. Transport ids are hex; mids and
/// RIDs may contain '-' (RFC 8851), so the transport ends at the first one.
pub fn transport_of_track(track_id: &str) -> Option<&str> {
    track_id.split_once('-').map(|(transport, _)| transport)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_ids_name_their_transport() {
        assert_eq!(transport_of_track(&track_id("0a1b", "1")), Some("0a1b"));
        assert_eq!(transport_of_track("0a1b-1:low-res"), Some("0a1b"), "a RID with '-'");
        assert_eq!(transport_of_track("nodash"), None);
    }

    fn mids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn publish_is_ready_when_tracks_and_transport_are() {
        let mut t = TransportSessions::new();
        t.add("pub1", Role::Publish, &mids(&["0", "1"])).unwrap();
        assert_eq!(t.satisfy("0"), None);
        assert_eq!(t.set_transport_ready(), Vec::<String>::new());
        assert_eq!(t.satisfy("1"), Some("pub1".to_string()));
        assert_eq!(t.satisfy("1"), None, "reported once");
        assert!(t.is_reported("pub1"));
        assert_eq!(t.session_of("1"), Some(("pub1", Role::Publish)));
    }

    #[test]
    fn subscribe_bound_before_transport_ready() {
        let mut t = TransportSessions::new();
        t.add("sub1", Role::Subscribe, &mids(&["2"])).unwrap();
        assert_eq!(t.satisfy("2"), None);
        assert_eq!(t.set_transport_ready(), vec!["sub1".to_string()]);
        // A later session on a ready transport is ready as soon as it is satisfied.
        t.add("sub2", Role::Subscribe, &mids(&["3", "4"])).unwrap();
        t.satisfy("3");
        assert_eq!(t.satisfy("4"), Some("sub2".to_string()));
    }

    #[test]
    fn mids_are_owned_once_and_closed_when_freed() {
        let mut t = TransportSessions::new();
        t.add("a", Role::Publish, &mids(&["0"])).unwrap();
        assert_eq!(t.add("a", Role::Publish, &mids(&["5"])), Err(SessionError::DuplicateSession("a".into())));
        assert_eq!(
            t.add("b", Role::Subscribe, &mids(&["1", "0"])),
            Err(SessionError::MidInUse { mid: "0".into(), session: "a".into() })
        );
        assert!(t.session_of("1").is_none(), "a failed add leaves nothing behind");
        assert_eq!(t.add("c", Role::Subscribe, &[]), Err(SessionError::NoTracks("c".into())));
        assert_eq!(t.add("c", Role::Subscribe, &mids(&["x y"])), Err(SessionError::BadMid("x y".into())));
        assert_eq!(t.add("c", Role::Subscribe, &mids(&["1", "1"])), Err(SessionError::BadMid("1".into())));
        assert_eq!(t.remove("a"), Ok(mids(&["0"])));
        assert!(t.is_closed("0"));
        assert_eq!(t.remove("a"), Err(SessionError::UnknownSession("a".into())));
        assert!(t.is_empty());
        assert_eq!(track_id("t1", "0"), "t1-0");
    }
}

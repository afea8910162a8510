//! The management REST API as a function from request to response, independent of the HTTP
//! server: routing, MAuth, the OWT error shape (spec §2.3) and the resources of spec §2.4
//! that live in the store (services, rooms, tokens). Resources that need live conference
//! state (participants, streams, streaming, recordings, SIP calls, analytics) answer as OWT
//! does while a room is not running: empty lists, "not found" for ids.

use owt_auth::{AuthError, MAuthHeader, ReplayGuard, Token};
use owt_config::PortalConfig;
use owt_store::{Room, Service, Store, StoreError, TokenRecord};
use owt_types::room::RoomConfig;
use owt_types::ObjectId;
use serde_json::{json, Map, Value};
use std::sync::{Mutex, RwLock};

/// One request, already read off the wire.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    pub query: &'a str,
    pub authorization: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Json(Value),
    /// OWT answers some calls with `res.send(string)`: text/html.
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Body,
    /// Why authentication failed, for the `WWW-Authenticate` header.
    pub auth_failure: Option<String>,
}

impl Response {
    fn json(value: Value) -> Self {
        Response { status: 200, body: Body::Json(value), auth_failure: None }
    }
    fn text(text: &str) -> Self {
        Response { status: 200, body: Body::Text(text.into()), auth_failure: None }
    }
}

/// OWT's error classes (spec §2.3). The message decides the not-found code, as in OWT.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    NotFound(String),
    Auth(String),
    Access(String),
    BadRequest(String),
    TooLarge(usize),
    Cloud(String),
    Internal(String),
}

pub const AUTH_MESSAGE: &str = "WWW-Authenticate: MAuth realm=\"http://marte3.dit.upm.es\"";

impl ApiError {
    pub fn status_and_code(&self) -> (u16, u32) {
        match self {
            ApiError::NotFound(message) => {
                let lower = message.to_lowercase();
                let code = [("service", 1002), ("room", 1003), ("stream", 1004), ("participant", 1005)]
                    .iter()
                    .rev()
                    .find(|(word, _)| lower.contains(word))
                    .map(|(_, code)| *code)
                    .unwrap_or(1001);
                (404, code)
            }
            ApiError::Auth(_) => (401, 1101),
            ApiError::Access(_) => (403, 1102),
            ApiError::BadRequest(_) => (400, 1201),
            ApiError::TooLarge(_) => (413, 1201),
            ApiError::Cloud(_) => (500, 1301),
            ApiError::Internal(_) => (500, 2001),
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::Auth(_) => AUTH_MESSAGE.into(),
            ApiError::TooLarge(limit) => format!("Request body too large (limit {limit} bytes)"),
            ApiError::NotFound(m)
            | ApiError::Access(m)
            | ApiError::BadRequest(m)
            | ApiError::Cloud(m)
            | ApiError::Internal(m) => m.clone(),
        }
    }

    pub fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let auth_failure = match &self {
            ApiError::Auth(reason) => Some(reason.clone()),
            _ => None,
        };
        Response { status, body: Body::Json(json!({"error": {"code": code, "message": self.message()}})), auth_failure }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(message) => ApiError::BadRequest(message),
            other => {
                tracing::error!("store: {other}");
                ApiError::Internal(format!("Error {other}"))
            }
        }
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("Resource not found".into())
}

type ApiResult = Result<Response, ApiError>;

/// Who made an authenticated request.
struct Caller {
    service: Service,
    user: Option<String>,
    role: Option<String>,
}

/// Live conference state, owned by the signaling server; the REST API reads and changes it
/// through this interface.
pub trait LiveRooms: Send + Sync {
    fn participants(&self, room: &str) -> Vec<Value>;
    fn participant(&self, room: &str, participant: &str) -> Option<Value>;
    fn update_participant(&self, room: &str, participant: &str, operations: &Value) -> Result<Value, String>;
    fn drop_participant(&self, room: &str, participant: &str) -> bool;
    /// StreamInfo in the Socket.IO form; the REST API converts it.
    fn streams(&self, room: &str) -> Vec<Value>;
    fn stream(&self, room: &str, stream: &str) -> Option<Value>;
    /// REST `PATCH …/streams/{id}`; the error is a message (400), "Stream not found" (404).
    fn update_stream(&self, room: &str, stream: &str, operations: &Value) -> Result<Value, String>;
    /// Media statistics of a forward stream (an owt-rs extension of the REST API).
    fn stream_stats(&self, room: &str, stream: &str) -> Option<Value>;
    /// REST `DELETE …/streams/{id}`: false when there is no such forward stream.
    fn delete_stream(&self, room: &str, stream: &str) -> bool;
    /// The room was deleted: everybody in it is dropped.
    fn destroy_room(&self, room: &str);
}

pub struct Api {
    store: Mutex<Store>,
    replay: Mutex<ReplayGuard>,
    config: RwLock<PortalConfig>,
    live: std::sync::OnceLock<std::sync::Arc<dyn LiveRooms>>,
    cluster: std::sync::OnceLock<std::sync::Arc<owt_bus::Cluster>>,
}

impl Api {
    pub fn new(store: Store, config: PortalConfig) -> Api {
        Api {
            store: Mutex::new(store),
            replay: Mutex::new(ReplayGuard::new(config.auth.max_clock_skew)),
            config: RwLock::new(config),
            live: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// Connects the live conference state (once, at start).
    pub fn set_live(&self, live: std::sync::Arc<dyn LiveRooms>) {
        let _ = self.live.set(live);
    }

    /// Connects the worker registry, for `GET /v1/cluster/nodes`.
    pub fn set_cluster(&self, cluster: std::sync::Arc<owt_bus::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// The super service's id and key, for in-process clients of this API (the sample
    /// application server signs its requests like any application server).
    pub fn super_credentials(&self) -> Option<(String, String)> {
        self.store().super_service().ok().flatten().map(|s| (s.id, s.key))
    }

    pub fn token_key(&self) -> Result<String, StoreError> {
        self.store().token_key()
    }

    /// Takes a token out of the store (tokens are single use).
    pub fn take_token(&self, id: &str, now_ms: i64, max_age_ms: i64) -> Result<Option<TokenRecord>, StoreError> {
        self.store().take_token(id, now_ms, max_age_ms)
    }

    /// A room by id, whichever service owns it.
    pub fn room_by_id(&self, id: &str) -> Result<Option<Room>, StoreError> {
        self.store().room_by_id(id)
    }

    pub fn config(&self) -> PortalConfig {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_config(&self, config: PortalConfig) {
        let skew_changed = self.config().auth.max_clock_skew != config.auth.max_clock_skew;
        if skew_changed {
            *self.replay.lock().unwrap_or_else(|e| e.into_inner()) = ReplayGuard::new(config.auth.max_clock_skew);
        }
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned lock is still usable.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers one request. Never panics on client input.
    pub fn handle(&self, request: &Request) -> Response {
        if request.method == "OPTIONS" {
            return Response::text("OK");
        }
        let result = self.route(request);
        let response = result.unwrap_or_else(ApiError::into_response);
        tracing::debug!(method = request.method, path = request.path, status = response.status, "request");
        response
    }

    fn route(&self, request: &Request) -> ApiResult {
        let trimmed = request.path.trim_end_matches('/');
        let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
        let needs_auth = matches!(
            segments.as_slice(),
            ["services", ..] | ["v1" | "v1.1", "rooms" | "cluster", ..] | ["v1.1", "stream-engine", ..]
        );
        if !needs_auth {
            return Err(not_found());
        }
        let caller = self.authenticate(request)?;
        let method = request.method;
        match segments.as_slice() {
            ["services"] => self.services(method, &caller, request),
            ["services", id] => self.service(method, &caller, id),
            [_, "rooms"] => self.rooms(method, &caller, request),
            [_, "cluster", "nodes"] if method == "GET" => self.cluster_nodes(&caller),
            [_, "rooms", room_id, rest @ ..] => self.room(method, &caller, room_id, rest, request),
            _ => Err(not_found()),
        }
    }

    fn authenticate(&self, request: &Request) -> Result<Caller, ApiError> {
        let fail = |err: AuthError| {
            tracing::info!(path = request.path, "authentication failed: {err}");
            ApiError::Auth(err.to_string())
        };
        let header =
            MAuthHeader::parse(request.authorization.ok_or(AuthError::Missing).map_err(fail)?).map_err(fail)?;
        let service = match ObjectId::parse(&header.service_id) {
            Some(_) => self.store().service(&header.service_id)?,
            None => None,
        }
        .ok_or_else(|| fail(AuthError::UnknownService))?;
        header.verify(&service.key).map_err(fail)?;
        let auth = self.config().auth;
        if auth.replay_check {
            let now = owt_store::now_ms();
            self.replay.lock().unwrap_or_else(|e| e.into_inner()).check(now, &header).map_err(fail)?;
        }
        let (user, role) = match (header.decoded_username(), header.role.clone()) {
            (Some(user), Some(role)) => (Some(user), Some(role)),
            _ => (None, None),
        };
        Ok(Caller { service, user, role })
    }

    // ---- services ---------------------------------------------------------------------

    fn services(&self, method: &str, caller: &Caller, request: &Request) -> ApiResult {
        if !caller.service.is_super {
            return Err(ApiError::Access("Permission denied".into()));
        }
        match method {
            "GET" => {
                let services = self.store().services()?;
                Ok(Response::json(Value::Array(services.iter().map(service_json).collect())))
            }
            "POST" => {
                let body = parse_body(request)?;
                let object = expect_object(&body, "service")?;
                check_known_fields(object, &["name", "key"], "service")?;
                let name = non_empty_string(object.get("name"), "name")?;
                let key = match object.get("key") {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(non_empty_string(Some(value), "key")?),
                };
                let service = self.store().create_service(&name, key.as_deref(), false)?;
                tracing::info!(service = %service.id, name = %service.name, "service created");
                Ok(Response::json(service_json(&service)))
            }
            _ => Err(not_found()),
        }
    }

    fn service(&self, method: &str, caller: &Caller, id: &str) -> ApiResult {
        match method {
            "GET" => {
                if !caller.service.is_super && caller.service.id != id {
                    return Err(ApiError::Access("Permission denied".into()));
                }
                let service =
                    self.store().service(id)?.ok_or_else(|| ApiError::NotFound("Service not found".into()))?;
                Ok(Response::json(service_json(&service)))
            }
            "DELETE" => {
                if !caller.service.is_super {
                    return Err(ApiError::Access("Permission denied".into()));
                }
                if id == caller.service.id {
                    return Err(ApiError::Access("Permission denied: the super service cannot be deleted".into()));
                }
                if !self.store().delete_service(id)? {
                    return Err(ApiError::NotFound("Service not found".into()));
                }
                tracing::info!(service = %id, "service deleted");
                Ok(Response::text("Service deleted"))
            }
            _ => Err(not_found()),
        }
    }

    /// The live workers (runtime configuration view; super service only).
    fn cluster_nodes(&self, caller: &Caller) -> ApiResult {
        if !caller.service.is_super {
            return Err(ApiError::Access("Permission denied".into()));
        }
        let workers = self.cluster.get().map(|c| c.workers()).unwrap_or_default();
        Ok(Response::json(serde_json::to_value(workers).unwrap_or_else(|_| json!([]))))
    }

    // ---- rooms ------------------------------------------------------------------------

    fn rooms(&self, method: &str, caller: &Caller, request: &Request) -> ApiResult {
        match method {
            "GET" => {
                let (page, per_page) = pagination(request.query)?;
                let rooms = self.store().rooms(&caller.service.id, page, per_page)?;
                Ok(Response::json(Value::Array(rooms.iter().map(|r| r.config.to_json(&r.id)).collect())))
            }
            "POST" => {
                let body = parse_body(request)?;
                let object = expect_object(&body, "room")?;
                check_known_fields(object, &["name", "options"], "room")?;
                let name = object.get("name").unwrap_or(&Value::Null);
                let config = RoomConfig::create(name, object.get("options")).map_err(|e| ApiError::BadRequest(e.0))?;
                let room = self.store().create_room(&caller.service.id, &config)?;
                tracing::info!(room = %room.id, service = %caller.service.id, "room created");
                Ok(Response::json(room.config.to_json(&room.id)))
            }
            _ => Err(not_found()),
        }
    }

    fn owned_room(&self, caller: &Caller, room_id: &str) -> Result<Room, ApiError> {
        self.store().room(&caller.service.id, room_id)?.ok_or_else(|| ApiError::NotFound("Room not found".into()))
    }

    fn room(&self, method: &str, caller: &Caller, room_id: &str, rest: &[&str], request: &Request) -> ApiResult {
        // OWT's body parser runs before any route: malformed JSON is a 400 even for an unknown
        // room (and before an operation that fails anyway).
        let body = if matches!(method, "PUT" | "PATCH" | "POST") { parse_body(request)? } else { Value::Null };
        let room = self.owned_room(caller, room_id)?;
        match (method, rest) {
            ("GET", []) => Ok(Response::json(room.config.to_json(&room.id))),
            ("PUT" | "PATCH", []) => {
                let updated = room.config.update(&body).map_err(|e| ApiError::BadRequest(e.0))?;
                if !self.store().update_room(&caller.service.id, &room.id, &updated)? {
                    return Err(ApiError::NotFound("Room not found".into()));
                }
                tracing::info!(room = %room.id, "room updated");
                Ok(Response::json(updated.to_json(&room.id)))
            }
            ("DELETE", []) => {
                if !self.store().delete_room(&caller.service.id, &room.id)? {
                    return Err(ApiError::NotFound("Room not found".into()));
                }
                if let Some(live) = self.live.get() {
                    live.destroy_room(&room.id);
                }
                tracing::info!(room = %room.id, "room deleted");
                Ok(Response::text("Room deleted"))
            }
            ("POST", ["tokens"]) => self.create_token(caller, &room, &body),
            (_, ["participants", ..] | ["streams", ..]) => self.live_resource(method, &room.id, rest, request, &body),
            // Media work that needs workers this release does not have: nothing is running.
            ("GET", ["streaming-outs" | "recordings" | "sipcalls" | "analytics"]) => Ok(Response::json(json!([]))),
            (_, ["streaming-ins", _]) => Err(ApiError::NotFound("Stream not found".into())),
            (_, ["streaming-outs", _]) => Err(ApiError::NotFound("Streaming-out not found".into())),
            (_, ["recordings", _]) => Err(ApiError::NotFound("Recording not found".into())),
            (_, ["sipcalls", _]) => Err(ApiError::NotFound("Sip call not found".into())),
            (_, ["analytics", _]) => Err(ApiError::NotFound("Analytics not found".into())),
            ("POST", [kind @ ("streaming-ins" | "streaming-outs" | "recordings" | "sipcalls" | "analytics")]) => {
                Err(ApiError::Cloud(format!(
                    "Operation failed: {kind} need media workers, which this release does not have"
                )))
            }
            _ => Err(not_found()),
        }
    }

    /// Participants and streams of a running room (spec §2.4); a room that is not running
    /// has none. `body` is the parsed request body (see `room`).
    fn live_resource(&self, method: &str, room: &str, rest: &[&str], request: &Request, body: &Value) -> ApiResult {
        let live = self.live.get();
        let flatten_video = !request.path.starts_with("/v1.1/");
        match (method, rest) {
            ("GET", ["participants"]) => {
                Ok(Response::json(json!(live.map(|l| l.participants(room)).unwrap_or_default())))
            }
            ("GET", ["participants", id]) => live
                .and_then(|l| l.participant(room, id))
                .map(Response::json)
                .ok_or_else(|| ApiError::NotFound("Participant not found".into())),
            ("PATCH", ["participants", id]) => {
                let live = live.ok_or_else(|| ApiError::NotFound("Participant not found".into()))?;
                if live.participant(room, id).is_none() {
                    return Err(ApiError::NotFound("Participant not found".into()));
                }
                live.update_participant(room, id, body).map(Response::json).map_err(ApiError::BadRequest)
            }
            ("DELETE", ["participants", id]) => {
                if live.is_some_and(|l| l.drop_participant(room, id)) {
                    Ok(Response::text(""))
                } else {
                    Err(ApiError::NotFound("Participant not found".into()))
                }
            }
            ("GET", ["streams"]) => {
                let streams = live.map(|l| l.streams(room)).unwrap_or_default();
                Ok(Response::json(json!(streams
                    .iter()
                    .map(|s| owt_room::rest_stream(s, flatten_video))
                    .collect::<Vec<_>>())))
            }
            ("GET", ["streams", id]) => live
                .and_then(|l| l.stream(room, id))
                .map(|s| Response::json(owt_room::rest_stream(&s, flatten_video)))
                .ok_or_else(|| ApiError::NotFound("Stream not found".into())),
            ("GET", ["streams", id, "stats"]) => live
                .and_then(|l| l.stream_stats(room, id))
                .map(Response::json)
                .ok_or_else(|| ApiError::NotFound("Stream not found".into())),
            ("PATCH", ["streams", id]) => {
                let live = live.ok_or_else(|| ApiError::NotFound("Stream not found".into()))?;
                match live.update_stream(room, id, body) {
                    Ok(info) => Ok(Response::json(owt_room::rest_stream(&info, flatten_video))),
                    Err(message) if message == "Stream not found" => Err(ApiError::NotFound(message)),
                    Err(message) if message.contains("not implemented yet") => Err(ApiError::Cloud(message)),
                    Err(message) => Err(ApiError::BadRequest(message)),
                }
            }
            ("DELETE", ["streams", id]) => {
                if live.is_some_and(|l| l.delete_stream(room, id)) {
                    Ok(Response::text(""))
                } else {
                    Err(ApiError::NotFound("Stream not found".into()))
                }
            }
            (_, ["streams", _]) => Err(ApiError::NotFound("Stream not found".into())),
            (_, ["participants", _]) => Err(ApiError::NotFound("Participant not found".into())),
            _ => Err(not_found()),
        }
    }

    fn create_token(&self, caller: &Caller, room: &Room, body: &Value) -> ApiResult {
        let object = expect_object(body, "token request")?;
        check_known_fields(object, &["user", "role", "preference", "domain"], "token request")?;
        let user = match object.get("user") {
            Some(Value::String(user)) => Some(user.clone()),
            None | Some(Value::Null) => caller.user.clone(),
            Some(_) => None,
        };
        let role = match object.get("role") {
            Some(Value::String(role)) => Some(role.clone()),
            None | Some(Value::Null) => caller.role.clone(),
            Some(_) => None,
        };
        let (Some(user), Some(role)) = (user, role) else {
            return Err(ApiError::BadRequest("Name or role not valid".into()));
        };
        if user.is_empty() || user.len() > 1024 || !room.config.roles.iter().any(|r| r.role == role) {
            return Err(ApiError::BadRequest("Name or role not valid".into()));
        }
        let origin = match object.get("preference") {
            None | Some(Value::Null) => json!({"isp": "isp", "region": "region"}),
            Some(Value::Object(pref)) => {
                check_known_fields(pref, &["isp", "region"], "preference")?;
                for key in ["isp", "region"] {
                    if !matches!(pref.get(key), None | Some(Value::String(_))) {
                        return Err(ApiError::BadRequest(format!("preference.{key} must be a string")));
                    }
                }
                Value::Object(pref.clone())
            }
            Some(_) => return Err(ApiError::BadRequest("preference must be an object {isp, region}".into())),
        };
        let domain = match object.get("domain") {
            None | Some(Value::Null) => None,
            Some(Value::String(domain)) => Some(domain.clone()),
            Some(_) => return Err(ApiError::BadRequest("domain must be a string".into())),
        };
        let portal = self.config().portal;
        let host = format!("{}:{}", announced_host(&portal), portal.port);
        let store = self.store();
        let key = store.token_key()?;
        let record = TokenRecord {
            id: ObjectId::generate().to_string(),
            room_id: room.id.clone(),
            service_id: caller.service.id.clone(),
            user,
            role,
            origin: origin.to_string(),
            code: format!("{:011}", rand::random::<u64>() % 100_000_000_000),
            host: host.clone(),
            secure: portal.ssl,
            domain,
            created_ms: owt_store::now_ms(),
        };
        store.insert_token(&record)?;
        drop(store);
        let token = Token::new(&key, &record.id, &host, portal.ssl, None);
        tracing::info!(room = %room.id, token = %record.id, "token created");
        Ok(Response::text(&token.encode()))
    }
}

/// Host clients use to reach signaling: `portal.hostname`, else `portal.ip_address`, else
/// the first non-loopback IPv4 address of this machine, else 127.0.0.1.
pub fn announced_host(portal: &owt_config::PortalSection) -> String {
    if !portal.hostname.is_empty() {
        return portal.hostname.clone();
    }
    if !portal.ip_address.is_empty() {
        return match portal.ip_address.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => portal.ip_address.clone(),
        };
    }
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .find(|iface| !iface.is_loopback() && iface.ip().is_ipv4())
        .map(|iface| iface.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into())
}

fn service_json(service: &Service) -> Value {
    json!({
        "_id": service.id,
        "name": service.name,
        "key": service.key,
        "encrypted": false,
        "rooms": service.room_ids,
        "__v": 0,
    })
}

fn parse_body(request: &Request) -> Result<Value, ApiError> {
    let content_type = request.content_type.unwrap_or("").to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return crate::form::parse(request.body).map_err(ApiError::BadRequest);
    }
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(request.body).map_err(|_| ApiError::BadRequest("Failed to parse JSON body".into()))
}

fn expect_object<'v>(value: &'v Value, what: &str) -> Result<&'v Map<String, Value>, ApiError> {
    value.as_object().ok_or_else(|| ApiError::BadRequest(format!("Invalid {what}: the body must be a JSON object")))
}

fn check_known_fields(object: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), ApiError> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => {
            Err(ApiError::BadRequest(format!("Invalid {what}: unknown field {key:?} (allowed: {})", known.join(", "))))
        }
        None => Ok(()),
    }
}

fn non_empty_string(value: Option<&Value>, field: &str) -> Result<String, ApiError> {
    match value {
        Some(Value::String(text)) if !text.is_empty() && text.len() <= 1024 => Ok(text.clone()),
        _ => Err(ApiError::BadRequest(format!("{field} must be a non-empty string of at most 1024 characters"))),
    }
}

/// `?page=&per_page=`: pagination only when per_page > 0; page is 1-based.
fn pagination(query: &str) -> Result<(u32, u32), ApiError> {
    let mut page = 1;
    let mut per_page = 0;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let parse = |value: &str| {
            value
                .parse::<u32>()
                .map_err(|_| ApiError::BadRequest(format!("{key} must be a non-negative integer, got {value:?}")))
        };
        match key {
            "page" => page = parse(value)?.max(1),
            "per_page" => per_page = parse(value)?,
            _ => {}
        }
    }
    Ok((page, per_page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_codes_follow_the_message() {
        let code = |m: &str| ApiError::NotFound(m.into()).status_and_code();
        assert_eq!(code("Resource not found"), (404, 1001));
        assert_eq!(code("Service not found"), (404, 1002));
        assert_eq!(code("Room not found"), (404, 1003));
        assert_eq!(code("Stream not found"), (404, 1004));
        assert_eq!(code("Participant not found"), (404, 1005));
        assert_eq!(code("Streaming-out not found"), (404, 1004));
    }

    #[test]
    fn pagination_parsing() {
        assert_eq!(pagination("").unwrap(), (1, 0));
        assert_eq!(pagination("page=2&per_page=10").unwrap(), (2, 10));
        assert_eq!(pagination("page=0&per_page=1").unwrap(), (1, 1));
        assert!(pagination("per_page=-1").is_err());
        assert!(pagination("page=abc").is_err());
    }

    #[test]
    fn announced_host_prefers_hostname_then_ip() {
        let mut portal = owt_config::PortalSection { ip_address: "10.0.0.1".into(), ..Default::default() };
        assert_eq!(announced_host(&portal), "10.0.0.1");
        portal.hostname = "owt.example".into();
        assert_eq!(announced_host(&portal), "owt.example");
        portal.hostname.clear();
        portal.ip_address = "::1".into();
        assert_eq!(announced_host(&portal), "[::1]");
    }
}

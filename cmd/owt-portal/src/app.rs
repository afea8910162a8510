//! The sample web application server, owt-rs's counterpart of OWT's `samplertcservice.js`
//! (spec/owt-compat.md §7): on `[app] port` (3004) it serves the conference page from
//! `[app] share_dir`, the socket.io browser client at `/socket.io.js`, and the JSON calls
//! the page makes (`POST /tokens`, `GET /rooms`, ...). Like OWT's sample app, those calls
//! go through the management REST API signed with the super service's MAuth credentials;
//! here the API is called in process ([`Api::handle`] on the blocking pool) instead of over
//! HTTP, with a fresh header for every call.
//!
//! Connections get the same treatment as the REST listener: one task each, deadlines for
//! the TLS handshake, the headers and the body, and a body size limit. Static files are
//! looked up only below the share directory: a path with `..`, `.`-names, an absolute part,
//! a backslash or NUL (also percent-encoded) is answered 404, and so is anything whose
//! resolved location leaves the directory.

use crate::api::{Api, ApiError, Body, Request, Response};
use crate::PortalError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioTimer;
use owt_config::PortalConfig;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Larger files are not served from the share directory (the page's files are small).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// The room a token request without `room` goes to, as in OWT's sample app.
const SAMPLE_ROOM: &str = "sampleRoom";
/// Who may use the page's JSON calls from another origin (spec §7).
const CORS_METHODS: &str = "POST, GET, PUT, PATCH, OPTIONS, DELETE";
const CORS_HEADERS: &str = "origin, content-type";
/// The page loads its own scripts and styles; it talks to signaling on another port.
const PAGE_POLICY: &str = "default-src 'self'; connect-src 'self' http: https: ws: wss:; \
                           media-src 'self' blob: mediastream:; img-src 'self' data:; \
                           object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The running sample application server.
pub struct AppServer {
    addr: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

/// What every connection needs.
struct Shared {
    api: Arc<Api>,
    share_dir: PathBuf,
    socketio_client: PathBuf,
    max_body: usize,
}

/// Starts the sample application server of `config.app` (see [`AppServer::start`]).
pub fn start(config: &PortalConfig, api: Arc<Api>, runtime: &tokio::runtime::Handle) -> Result<AppServer, PortalError> {
    AppServer::start(config, api, runtime)
}

impl AppServer {
    /// Listens on `[app] ip_address`:`port` (HTTPS with the `[management-api]` certificate
    /// when `[app] ssl`). Does not look at `[app] enabled`: the caller decides. Missing
    /// files are not an error here; they are answered 404 (and logged) when asked for.
    pub fn start(
        config: &PortalConfig,
        api: Arc<Api>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<AppServer, PortalError> {
        let settings = &config.app;
        let tls = if settings.ssl { Some(Arc::new(crate::http::tls_acceptor(config)?)) } else { None };
        let (listener, addr) = crate::http::bind(&settings.ip_address, settings.port, runtime)?;
        let shared = Arc::new(Shared {
            api,
            share_dir: settings.share_dir.clone(),
            socketio_client: settings.socketio_client_path(),
            max_body: config.management_api.max_body_bytes,
        });
        if !shared.share_dir.join("index.html").is_file() {
            tracing::warn!("sample application: no index.html in {}", shared.share_dir.display());
        }
        let serve = move |io| serve_connection(io, shared.clone());
        let accept_task = runtime.spawn(crate::http::accept_loop(listener, tls, "sample application", serve));
        let scheme = if settings.ssl { "https" } else { "http" };
        tracing::info!("sample application on {scheme}://{addr} from {}", settings.share_dir.display());
        Ok(AppServer { addr, accept_task })
    }

    /// The address it actually listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting; connections in progress end with the runtime.
    pub fn stop(self) {
        self.accept_task.abort();
    }
}

async fn serve_connection<I>(io: I, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(request, shared).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(crate::http::HEADER_DEADLINE)
        .serve_connection(io, service);
    if let Err(err) = connection.await {
        tracing::debug!("sample application connection: {err}");
    }
}

/// The JSON calls of the page, each one REST API call (spec §7).
#[derive(Debug, Clone, PartialEq)]
enum Call {
    /// `POST /tokens` and the legacy `POST /createToken`.
    Token,
    Rooms,
    Streams(String),
    UpdateStream(String, String),
    Participants(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Route {
    Options,
    Api(Call),
    SocketIoClient,
    Static,
    NotFound,
}

fn route(method: &Method, path: &str) -> Route {
    if method == Method::OPTIONS {
        return Route::Options;
    }
    let trimmed = path.trim_end_matches('/');
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    let call = match (method.as_str(), segments.as_slice()) {
        ("POST", ["tokens" | "createToken"]) => Some(Call::Token),
        ("GET", ["rooms"]) => Some(Call::Rooms),
        ("GET", ["rooms", room, "streams"]) => Some(Call::Streams(room.to_string())),
        ("PATCH", ["rooms", room, "streams", stream]) => Some(Call::UpdateStream(room.to_string(), stream.to_string())),
        ("GET", ["rooms", room, "participants"]) => Some(Call::Participants(room.to_string())),
        _ => None,
    };
    match call {
        Some(call) => Route::Api(call),
        None if *method == Method::GET || *method == Method::HEAD => {
            if path == "/socket.io.js" {
                Route::SocketIoClient
            } else {
                Route::Static
            }
        }
        None => Route::NotFound,
    }
}

async fn answer(request: hyper::Request<Incoming>, shared: Arc<Shared>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let response = match route(&parts.method, &path) {
        Route::Options => plain(StatusCode::OK, "OK"),
        Route::NotFound => not_found(),
        Route::SocketIoClient => {
            let file = shared.socketio_client.clone();
            let found = read_file_blocking(move || read_regular_file(&file)).await;
            match found {
                Some(data) => file_response(data, "application/javascript; charset=utf-8", false),
                None => {
                    tracing::warn!(
                        "sample application: socket.io client {} is missing (see [app] socketio_client)",
                        shared.socketio_client.display()
                    );
                    plain(StatusCode::NOT_FOUND, "socket.io client not installed on this server")
                }
            }
        }
        Route::Static => match static_location(&shared.share_dir, &path) {
            None => not_found(),
            Some(location) => {
                let root = shared.share_dir.clone();
                let found = read_file_blocking(move || read_static(&root, &location)).await;
                match found {
                    Some((data, content_type)) => {
                        file_response(data, content_type, content_type.starts_with("text/html"))
                    }
                    None => not_found(),
                }
            }
        },
        Route::Api(call) => {
            let header = |name: hyper::header::HeaderName| {
                parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
            };
            let content_type = header(hyper::header::CONTENT_TYPE);
            let declared = header(hyper::header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
            let body = if declared.is_some_and(|len| len > shared.max_body as u64) {
                Err(ApiError::TooLarge(shared.max_body))
            } else {
                crate::http::read_body(body, shared.max_body).await
            };
            match body {
                Err(err) => api_response(err.into_response()),
                Ok(body) => {
                    let query = parts.uri.query().unwrap_or("").to_owned();
                    let api = shared.api.clone();
                    let handled = tokio::task::spawn_blocking(move || {
                        perform(&api, &call, &query, content_type.as_deref(), &body)
                    })
                    .await;
                    match handled {
                        Ok(response) => api_response(response),
                        Err(err) => {
                            tracing::error!("sample application handler failed: {err}");
                            api_response(ApiError::Internal("Error internal failure".into()).into_response())
                        }
                    }
                }
            }
        }
    };
    tracing::debug!(method = %parts.method, path, status = response.status().as_u16(), "sample application");
    response
}

async fn read_file_blocking<T: Send + 'static>(read: impl FnOnce() -> Option<T> + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(read).await.ok().flatten()
}

// ---- the JSON calls --------------------------------------------------------------------

/// One REST API call signed as the super service, the way an application server calls it.
fn rest(api: &Api, method: &str, path: &str, query: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    let Some((id, key)) = api.super_credentials() else {
        return ApiError::Internal("The super service is missing: run `owtctl init`".into()).into_response();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let authorization = owt_auth::sign_header_now(&id, &key, now);
    api.handle(&Request { method, path, query, authorization: Some(&authorization), content_type, body })
}

fn perform(api: &Api, call: &Call, query: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    let result = match call {
        Call::Token => create_token(api, content_type, body),
        Call::Rooms => Ok(rest(api, "GET", "/v1/rooms", query, None, b"")),
        Call::Streams(room) => {
            path_id(room, "Room").map(|room| rest(api, "GET", &format!("/v1/rooms/{room}/streams"), "", None, b""))
        }
        Call::Participants(room) => {
            path_id(room, "Room").map(|room| rest(api, "GET", &format!("/v1/rooms/{room}/participants"), "", None, b""))
        }
        Call::UpdateStream(room, stream) => path_id(room, "Room").and_then(|room| {
            let stream = path_id(stream, "Stream")?;
            let path = format!("/v1/rooms/{room}/streams/{stream}");
            Ok(rest(api, "PATCH", &path, "", content_type.or(Some("application/json")), body))
        }),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// An id taken from the URL and put into a REST path: room ids are 24 hex digits, stream
/// ids 32 hex digits or `<room>-<view>`; anything else cannot name one.
fn path_id<'a>(id: &'a str, what: &str) -> Result<&'a str, ApiError> {
    let ok =
        !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id)
    } else {
        Err(ApiError::NotFound(format!("{what} not found")))
    }
}

fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = content_type.unwrap_or("").to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return crate::form::parse(body).map_err(ApiError::BadRequest);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| ApiError::BadRequest("Failed to parse JSON body".into()))
}

/// `{room?, user | username, role}` → the room's `POST …/tokens` with OWT's default
/// preference; the token text or the REST error comes back as it is.
fn create_token(api: &Api, content_type: Option<&str>, body: &[u8]) -> Result<Response, ApiError> {
    let request = parse_body(content_type, body)?;
    let Some(object) = request.as_object() else {
        return Err(ApiError::BadRequest("Invalid token request: the body must be a JSON object".into()));
    };
    let room = match object.get("room") {
        None | Some(Value::Null) => default_room(api)?,
        Some(Value::String(room)) if room.is_empty() => default_room(api)?,
        Some(Value::String(room)) => path_id(room, "Room")?.to_string(),
        Some(_) => return Err(ApiError::BadRequest("Invalid token request: room must be a room id string".into())),
    };
    let mut token_request = serde_json::Map::new();
    token_request.insert("preference".into(), json!({"isp": "isp", "region": "region"}));
    // user/role are passed on as given: the REST API checks them ("Name or role not valid").
    if let Some(user) = object.get("user").or_else(|| object.get("username")) {
        token_request.insert("user".into(), user.clone());
    }
    if let Some(role) = object.get("role") {
        token_request.insert("role".into(), role.clone());
    }
    let body = Value::Object(token_request).to_string();
    let path = format!("/v1/rooms/{room}/tokens");
    Ok(rest(api, "POST", &path, "", Some("application/json"), body.as_bytes()))
}

/// The super service's room named `sampleRoom`, else its first room.
fn default_room(api: &Api) -> Result<String, ApiError> {
    let listed = rest(api, "GET", "/v1/rooms", "", None, b"");
    let rooms = match (&listed.status, &listed.body) {
        (200, Body::Json(Value::Array(rooms))) => rooms.clone(),
        _ => {
            tracing::warn!(status = listed.status, "sample application: cannot list rooms");
            return Err(ApiError::Cloud("Operation failed: cannot list the rooms".into()));
        }
    };
    let id = |room: &Value| room.get("_id").or_else(|| room.get("id")).and_then(Value::as_str).map(str::to_owned);
    rooms
        .iter()
        .find(|room| room.get("name").and_then(Value::as_str) == Some(SAMPLE_ROOM))
        .or_else(|| rooms.first())
        .and_then(id)
        .ok_or_else(|| ApiError::NotFound("Room not found: the super service has no room; create one".into()))
}

// ---- static files ----------------------------------------------------------------------

/// Decodes `%XX` escapes; None for a broken escape or a result that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Where a URL path points inside `root`, or None when it may not name a file there: a
/// broken escape, NUL, backslash, an absolute or empty part, `.`, `..` or another name
/// starting with a dot. A path ending in `/` names the directory's index.html.
fn static_location(root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(url_path)?;
    let relative = decoded.strip_prefix('/')?;
    if relative.contains(['\0', '\\']) {
        return None;
    }
    let (directories, file) = match relative.rsplit_once('/') {
        Some((directories, file)) => (Some(directories), file),
        None => (None, relative),
    };
    let mut location = root.to_path_buf();
    for part in directories.map(|d| d.split('/').collect::<Vec<_>>()).unwrap_or_default() {
        if part.is_empty() || part.starts_with('.') {
            return None;
        }
        location.push(part);
    }
    if file.is_empty() {
        location.push("index.html");
    } else if file.starts_with('.') {
        return None;
    } else {
        location.push(file);
    }
    Some(location)
}

/// Reads a static file if, with every symlink resolved, it is a regular file inside the
/// share directory.
fn read_static(root: &Path, location: &Path) -> Option<(Vec<u8>, &'static str)> {
    let root = root.canonicalize().ok()?;
    let resolved = location.canonicalize().ok()?;
    if !resolved.starts_with(&root) {
        return None;
    }
    let data = read_regular_file(&resolved)?;
    Some((data, content_type(location)))
}

fn read_regular_file(path: &Path) -> Option<Vec<u8>> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() || metadata.len() > MAX_FILE_BYTES {
        return None;
    }
    std::fs::read(path).ok()
}

fn content_type(path: &Path) -> &'static str {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "application/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

// ---- responses -------------------------------------------------------------------------

fn builder(status: StatusCode, content_type: &str) -> hyper::http::response::Builder {
    hyper::Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Access-Control-Allow-Origin", "*")
        .header("Access-Control-Allow-Methods", CORS_METHODS)
        .header("Access-Control-Allow-Headers", CORS_HEADERS)
        .header("X-Content-Type-Options", "nosniff")
}

fn finish(builder: hyper::http::response::Builder, data: Vec<u8>) -> hyper::Response<Full<Bytes>> {
    builder.body(Full::new(Bytes::from(data))).unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

fn plain(status: StatusCode, text: &str) -> hyper::Response<Full<Bytes>> {
    finish(builder(status, "text/plain; charset=utf-8"), text.as_bytes().to_vec())
}

fn not_found() -> hyper::Response<Full<Bytes>> {
    plain(StatusCode::NOT_FOUND, "Not Found")
}

fn file_response(data: Vec<u8>, content_type: &str, page: bool) -> hyper::Response<Full<Bytes>> {
    let mut response = builder(StatusCode::OK, content_type).header("Cache-Control", "no-cache");
    if page {
        response = response.header("Content-Security-Policy", PAGE_POLICY);
    }
    finish(response, data)
}

/// A REST answer as the page gets it: JSON as JSON, text (the token) as plain text.
fn api_response(response: Response) -> hyper::Response<Full<Bytes>> {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, data) = match response.body {
        Body::Json(value) => ("application/json; charset=utf-8", value.to_string().into_bytes()),
        Body::Text(text) => ("text/plain; charset=utf-8", text.into_bytes()),
    };
    finish(builder(status, content_type).header("Cache-Control", "no-store"), data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(&Method::POST, "/tokens"), Route::Api(Call::Token));
        assert_eq!(route(&Method::POST, "/tokens/"), Route::Api(Call::Token));
        assert_eq!(route(&Method::POST, "/createToken/"), Route::Api(Call::Token));
        assert_eq!(route(&Method::GET, "/rooms"), Route::Api(Call::Rooms));
        assert_eq!(route(&Method::GET, "/rooms/r1/streams"), Route::Api(Call::Streams("r1".into())));
        assert_eq!(
            route(&Method::PATCH, "/rooms/r1/streams/s1"),
            Route::Api(Call::UpdateStream("r1".into(), "s1".into()))
        );
        assert_eq!(route(&Method::GET, "/rooms/r1/participants/"), Route::Api(Call::Participants("r1".into())));
        assert_eq!(route(&Method::GET, "/socket.io.js"), Route::SocketIoClient);
        assert_eq!(route(&Method::HEAD, "/app.js"), Route::Static);
        assert_eq!(route(&Method::GET, "/tokens"), Route::Static);
        assert_eq!(route(&Method::DELETE, "/app.js"), Route::NotFound);
        assert_eq!(route(&Method::OPTIONS, "/anything"), Route::Options);
    }

    #[test]
    fn static_paths_stay_inside_the_share_directory() {
        let root = Path::new("/srv/app");
        assert_eq!(static_location(root, "/"), Some(PathBuf::from("/srv/app/index.html")));
        assert_eq!(static_location(root, "/app.js"), Some(PathBuf::from("/srv/app/app.js")));
        assert_eq!(
            static_location(root, "/vendor/socket.io.min.js"),
            Some(PathBuf::from("/srv/app/vendor/socket.io.min.js"))
        );
        assert_eq!(static_location(root, "/vendor/"), Some(PathBuf::from("/srv/app/vendor/index.html")));
        assert_eq!(static_location(root, "/a%20b.html"), Some(PathBuf::from("/srv/app/a b.html")));
        for bad in [
            "/../Cargo.toml",
            "/%2e%2e/Cargo.toml",
            "/%2E%2E%2fetc/passwd",
            "/vendor/../../x",
            "//etc/passwd",
            "/%2fetc/passwd",
            "/index.html%00",
            "/index.html%00.js",
            "/.git/config",
            "/vendor//x.js",
            "/./index.html",
            "/a\\..\\b",
            "/%5c..%5cb",
            "/%zz",
            "/%e9",
            "relative",
            "/..",
        ] {
            assert_eq!(static_location(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn symlinks_out_of_the_share_directory_are_not_followed() {
        let dir = std::env::temp_dir().join(format!("owt-app-test-{}", std::process::id()));
        let share = dir.join("share");
        std::fs::create_dir_all(&share).unwrap();
        std::fs::write(dir.join("secret.txt"), "secret").unwrap();
        std::fs::write(share.join("page.html"), "<p>hi</p>").unwrap();
        let _ = std::os::unix::fs::symlink(dir.join("secret.txt"), share.join("leak.txt"));
        let read = |path: &str| static_location(&share, path).and_then(|l| read_static(&share, &l));
        assert_eq!(read("/page.html"), Some((b"<p>hi</p>".to_vec(), "text/html; charset=utf-8")));
        assert_eq!(read("/leak.txt"), None);
        assert_eq!(read("/missing.js"), None);
        assert_eq!(read("/"), None, "no index.html");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("a/index.html")), "text/html; charset=utf-8");
        assert_eq!(content_type(Path::new("app.JS")), "application/javascript; charset=utf-8");
        assert_eq!(content_type(Path::new("style.css")), "text/css; charset=utf-8");
        assert_eq!(content_type(Path::new("x")), "application/octet-stream");
    }

    #[test]
    fn ids_for_rest_paths() {
        assert!(path_id("5f0c1e2d3b4a59687766554f", "Room").is_ok());
        assert!(path_id("5f0c1e2d3b4a59687766554f-common", "Stream").is_ok());
        for bad in ["", "a/b", "a?b", "..", "a%2fb", "a b"] {
            assert_eq!(path_id(bad, "Room"), Err(ApiError::NotFound("Room not found".into())), "{bad}");
        }
    }
}

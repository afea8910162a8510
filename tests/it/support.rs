//! Test harness: finds the built programs, runs a real owt-portal on a loopback port in a
//! temporary directory initialised by `owtctl init`, and talks to it over HTTP with MAuth.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Environment variables of the test runner that would change what the programs do.
const SCRUBBED_ENV: &[&str] = &[
    "RUST_LOG",
    "NOTIFY_SOCKET",
    "JOURNAL_STREAM",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "OWT_CONFIG_DIR",
    "OWT_STATE_DIR",
    "OWT_URL",
    "OWT_SERVICE_ID",
    "OWT_SERVICE_KEY",
    "OWT_CERT_PASSPHRASE",
];

/// `<target>/debug/<name>`: the test binary is `<target>/debug/deps/it-xxxx`.
pub fn program(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built: run `cargo build --workspace --bins` first", path.display());
    path
}

/// A command for one of the programs with a clean environment.
pub fn command(name: &str) -> Command {
    let mut cmd = Command::new(program(name));
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// A port on 127.0.0.1 that nothing listens on right now.
/// A port for a test server to bind. Taken from below the kernel's ephemeral range (32768 and
/// up), where a port the kernel hands out here could go to another test's outgoing connection
/// or `bind(0)` before the server binds it; a counter per test process (starting at an offset
/// of its pid) keeps the tests of one run apart, and a bind check skips ports in use.
pub fn free_port() -> u16 {
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let offset = std::process::id() % 100 * 200;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = (FIRST + (offset + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

/// Waits until 127.0.0.1:port accepts connections or `deadline` passes.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    false
}

/// Waits for a child to exit, up to `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a signal with the `kill` command (`TERM`, `HUP`, ...).
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().expect("run kill");
    assert!(status.success(), "kill -{name} {} failed", child.id());
}

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// The super service created by `owtctl init`.
    Super,
    /// Another service: id and key.
    Service(String, String),
    /// No Authorization header.
    None,
    /// This exact Authorization header value.
    Raw(String),
}

impl Auth {
    pub fn service(service: &Value) -> Auth {
        Auth::Service(
            service["_id"].as_str().expect("service _id").to_string(),
            service["key"].as_str().expect("service key").to_string(),
        )
    }
}

/// An HTTP answer: status, headers (lower-case names), body text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): status {} body {:?}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// Asserts the OWT error shape `{"error": {"code", "message"}}` with this status and code;
    /// returns the message.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: u64) -> String {
        assert_eq!(self.status, status, "status; body {}", self.body);
        let body = self.json();
        let object = body.as_object().expect("error body is an object");
        assert_eq!(object.len(), 1, "only the error member: {body}");
        let error = body["error"].as_object().unwrap_or_else(|| panic!("no error object: {body}"));
        assert_eq!(error.len(), 2, "error has code and message only: {body}");
        assert_eq!(body["error"]["code"].as_u64(), Some(code), "error code: {body}");
        body["error"]["message"].as_str().unwrap_or_else(|| panic!("message not a string: {body}")).to_string()
    }

    /// Asserts 200 and returns the JSON body.
    #[track_caller]
    pub fn ok_json(&self) -> Value {
        assert_eq!(self.status, 200, "status; body {}", self.body);
        self.json()
    }

    /// Asserts 200 and returns the text body.
    #[track_caller]
    pub fn ok_text(&self) -> &str {
        assert_eq!(self.status, 200, "status; body {}", self.body);
        &self.body
    }
}

fn reply_of(response: ureq::Response) -> Reply {
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|name| {
            let value = response.header(&name).unwrap_or_default().to_string();
            (name.to_ascii_lowercase(), value)
        })
        .collect();
    let mut body = String::new();
    response.into_reader().take(64 * 1024 * 1024).read_to_string(&mut body).expect("read response body");
    Reply { status, headers, body }
}

/// Sends one request and returns whatever status came back; panics on transport errors.
pub fn send(agent: &ureq::Agent, method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
    let mut request = agent.request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(bytes) => request.send_bytes(bytes),
        None => request.call(),
    };
    match result {
        Ok(response) => reply_of(response),
        Err(ureq::Error::Status(_, response)) => reply_of(response),
        Err(ureq::Error::Transport(err)) => panic!("{method} {url}: transport error: {err}"),
    }
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(20)).redirects(0).build()
}

/// An agent that accepts any certificate (for the self-signed one of `owtctl init`).
pub fn insecure_agent() -> ureq::Agent {
    let tls = native_tls::TlsConnector::builder().danger_accept_invalid_certs(true).build().expect("TLS connector");
    ureq::AgentBuilder::new().timeout(Duration::from_secs(20)).tls_connector(Arc::new(tls)).build()
}

/// What to put in portal.toml besides state dir, REST address and portal address.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Serve HTTPS (`[management-api] ssl = true`).
    pub ssl: bool,
    /// Extra keys of `[management-api]` (lines).
    pub management_api: String,
    /// Extra sections, appended as is (must not repeat `[state]`, `[management-api]`, `[portal]`).
    pub extra: String,
}

/// A running owt-portal in its own temporary directory.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    /// The REST API port.
    pub port: u16,
    /// The Socket.IO signaling port (`[portal] port`, announced in tokens).
    pub signaling_port: u16,
    /// The cluster bus port (`[cluster] bus`).
    pub bus_port: u16,
    pub super_id: String,
    pub super_key: String,
    /// The default room `owtctl init` created for the super service.
    pub default_room: String,
    pub options: Options,
    child: Option<Child>,
    agent: ureq::Agent,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> TestServer {
        let mut server = Self::init_with(options);
        server.spawn();
        server
    }

    /// Temporary directory, portal.toml and `owtctl init`, but no portal yet.
    pub fn init_with(options: Options) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir etc");
        let agent = if options.ssl { insecure_agent() } else { agent() };
        let mut server = TestServer {
            dir,
            port: free_port(),
            signaling_port: free_port(),
            bus_port: free_port(),
            super_id: String::new(),
            super_key: String::new(),
            default_room: String::new(),
            options,
            child: None,
            agent,
        };
        server.write_config(&server.options.extra.clone());
        let out = server.owtctl(&["init", "--json"]);
        assert!(out.status.success(), "owtctl init failed: {}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).expect("init --json prints JSON");
        server.super_id = report["superService"]["id"].as_str().expect("superService.id").to_string();
        server.super_key = report["superService"]["key"].as_str().expect("superService.key").to_string();
        server.default_room = report["room"]["id"].as_str().expect("room.id").to_string();
        server
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn etc_dir(&self) -> PathBuf {
        self.path().join("etc")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.etc_dir().join("portal.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.path().join("portal.log")
    }

    pub fn db_path(&self) -> PathBuf {
        self.state_dir().join("owt.db")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn scheme(&self) -> &'static str {
        if self.options.ssl {
            "https"
        } else {
            "http"
        }
    }

    pub fn base_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.port)
    }

    /// The portal.toml text for REST API port `port` with `extra` sections appended. Every
    /// listener is on 127.0.0.1.
    pub fn config_text(&self, port: u16, extra: &str) -> String {
        let state = self.state_dir();
        let mut api = format!("ip_address = \"127.0.0.1\"\nport = {port}\n");
        if self.options.ssl {
            api.push_str("ssl = true\n");
        }
        api.push_str(&self.options.management_api);
        format!(
            "[state]\ndir = \"{}\"\n[management-api]\n{api}\n\
             [portal]\nip_address = \"127.0.0.1\"\nbind_address = \"127.0.0.1\"\nport = {}\n\
             [cluster]\nbus = \"tcp://127.0.0.1:{}\"\n[app]\nenabled = false\n{extra}\n",
            state.display(),
            self.signaling_port,
            self.bus_port,
        )
    }

    /// `host` of the tokens this portal issues.
    pub fn token_host(&self) -> String {
        format!("127.0.0.1:{}", self.signaling_port)
    }

    /// Rewrites portal.toml with the current port and `extra` sections.
    pub fn write_config(&self, extra: &str) {
        std::fs::write(self.config_path(), self.config_text(self.port, extra)).expect("write portal.toml");
    }

    /// Starts owt-portal and waits until it accepts connections. Picks another port when
    /// the chosen one was taken in the meantime.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "portal already running");
        for attempt in 0..3 {
            let log =
                std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open portal.log");
            let mut child = command("owt-portal")
                .arg("--config-dir")
                .arg(self.etc_dir())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn owt-portal");
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut exited = None;
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    exited = Some(status);
                    break;
                }
                if TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_millis(200)).is_ok() {
                    self.child = Some(child);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            match exited {
                Some(_)
                    if attempt < 2
                        && (self.log().contains("cannot listen") || self.log().contains("Address already in use")) =>
                {
                    // The port went to someone else between free_port() and bind: try another.
                    self.port = free_port();
                    self.signaling_port = free_port();
                    self.bus_port = free_port();
                    self.write_config(&self.options.extra.clone());
                }
                Some(status) => panic!("owt-portal exited with {status}; log:\n{}", self.log()),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("owt-portal does not accept connections on {} after 10 s; log:\n{}", self.port, self.log());
                }
            }
        }
    }

    pub fn child(&self) -> &Child {
        self.child.as_ref().expect("portal running")
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("portal running")
    }

    /// SIGKILLs the portal.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL, then start again with the same directories and port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A valid MAuth header for `auth` (fresh cnonce and timestamp).
    pub fn auth_header(&self, auth: &Auth) -> Option<String> {
        match auth {
            Auth::Super => Some(owt_auth::sign_header_now(&self.super_id, &self.super_key, now_ms())),
            Auth::Service(id, key) => Some(owt_auth::sign_header_now(id, key, now_ms())),
            Auth::None => None,
            Auth::Raw(header) => Some(header.clone()),
        }
    }

    /// One request with a JSON body (or none).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>, auth: Auth) -> Reply {
        let body = body.map(|b| b.to_string().into_bytes());
        let content_type = body.as_ref().map(|_| "application/json");
        self.call_raw(method, path, body.as_deref(), content_type, auth)
    }

    /// One request with a raw body and content type.
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        content_type: Option<&str>,
        auth: Auth,
    ) -> Reply {
        let header = self.auth_header(&auth);
        let mut headers = Vec::new();
        if let Some(header) = &header {
            headers.push(("Authorization", header.as_str()));
        }
        if let Some(content_type) = content_type {
            headers.push(("Content-Type", content_type));
        }
        send(&self.agent, method, &format!("{}{path}", self.base_url()), &headers, body)
    }

    /// GET with the super service, expecting 200 JSON.
    #[track_caller]
    pub fn get(&self, path: &str) -> Value {
        self.call("GET", path, None, Auth::Super).ok_json()
    }

    /// Creates a service with the super service; returns its JSON (with `_id` and `key`).
    #[track_caller]
    pub fn create_service(&self, name: &str) -> Value {
        let key = format!("key-of-{name}");
        self.call("POST", "/services", Some(serde_json::json!({"name": name, "key": key})), Auth::Super).ok_json()
    }

    /// Creates a room; returns its JSON.
    #[track_caller]
    pub fn create_room(&self, auth: Auth, body: Value) -> Value {
        self.call("POST", "/v1/rooms", Some(body), auth).ok_json()
    }

    /// Runs owtctl against this server's config dir (no --url).
    pub fn owtctl(&self, args: &[&str]) -> Output {
        command("owtctl").arg("--config-dir").arg(self.etc_dir()).args(args).output().expect("run owtctl")
    }

    /// Runs owtctl with `--url` of this server.
    pub fn owtctl_url(&self, args: &[&str]) -> Output {
        command("owtctl")
            .arg("--config-dir")
            .arg(self.etc_dir())
            .arg("--url")
            .arg(self.base_url())
            .args(args)
            .output()
            .expect("run owtctl")
    }

    /// The token-signing key in the database.
    pub fn token_key(&self) -> String {
        owt_store::Store::open(&self.db_path()).expect("open owt.db").token_key().expect("token key")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// Asserts success and parses stdout as JSON.
#[track_caller]
pub fn json_ok(out: &Output) -> Value {
    let text = stdout_ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
}

/// Asserts an exit code.
#[track_caller]
pub fn expect_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Decodes a conference token string into its JSON.
pub fn decode_token(text: &str) -> Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("token is not standard base64 ({e}): {text:?}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("token is not JSON ({e}): {text:?}"))
}

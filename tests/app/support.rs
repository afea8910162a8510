//! Test harness of the sample application tests: finds the built programs, runs a real
//! owt-portal with `[app]` on free loopback ports in a temporary directory initialised by
//! `owtctl init` (share_dir = the repo's share/owt/app), and talks to the app over HTTP,
//! with ureq for ordinary requests and a raw socket for request targets ureq would rewrite.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
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

/// `<target>/debug/<name>`: the test binary is `<target>/debug/deps/app-xxxx`.
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

/// The repo's share/owt/app.
pub fn share_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../share/owt/app");
    dir.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// tests/js, with its npm packages installed.
pub fn js_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    assert!(
        dir.join("node_modules/socket.io-client").exists(),
        "{}/node_modules is missing: run `make test-deps` (npm ci --prefix tests/js)",
        dir.display()
    );
    dir
}

/// The socket.io browser client of the npm package (what the Makefile copies into
/// share/owt/app/vendor/).
pub fn socketio_client() -> PathBuf {
    js_dir().join("node_modules/socket.io-client/dist/socket.io.min.js")
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

/// Waits until 127.0.0.1:port accepts connections or `timeout` passes.
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

/// An HTTP answer: status, headers (lower-case names), body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): status {} body {:?}", self.status, self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// Asserts the OWT error shape `{"error": {"code", "message"}}` with this status and
    /// code; returns the message.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: u64) -> String {
        assert_eq!(self.status, status, "status; body {}", self.text());
        let body = self.json();
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "only the error member: {body}");
        assert_eq!(body["error"].as_object().map(|o| o.len()), Some(2), "error has code and message: {body}");
        assert_eq!(body["error"]["code"].as_u64(), Some(code), "error code: {body}");
        body["error"]["message"].as_str().unwrap_or_else(|| panic!("message not a string: {body}")).to_string()
    }

    #[track_caller]
    pub fn ok_json(&self) -> Value {
        assert_eq!(self.status, 200, "status; body {}", self.text());
        self.json()
    }

    #[track_caller]
    pub fn ok_text(&self) -> String {
        assert_eq!(self.status, 200, "status; body {}", self.text());
        self.text()
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
    let mut body = Vec::new();
    response.into_reader().take(64 * 1024 * 1024).read_to_end(&mut body).expect("read response body");
    Reply { status, headers, body }
}

/// Sends one request with ureq and returns whatever status came back.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(20)).redirects(0).build();
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

/// Sends `GET <target>` exactly as written (no normalisation) and parses the answer.
pub fn raw_get(port: u16, target: &str) -> Reply {
    raw_request(port, format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())
}

/// Sends these bytes as they are and parses the answer (read until the server closes).
pub fn raw_request(port: u16, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    // A server refusing a body may answer and close before all of it is written, and the
    // close may reset the connection: keep whatever answer arrived.
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(err) if raw.is_empty() => panic!("no answer: {err}"),
            Err(_) => break,
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no header end: {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Reply { status, headers, body: raw[split + 4..].to_vec() }
}

/// A running owt-portal with the sample application, in its own temporary directory.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub rest_port: u16,
    pub signaling_port: u16,
    pub bus_port: u16,
    pub app_port: u16,
    pub super_id: String,
    pub super_key: String,
    /// The room `owtctl init` created (named sampleRoom).
    pub sample_room: String,
    child: Option<Child>,
}

impl TestServer {
    /// A portal whose `[app]` section has `extra_app` appended (e.g. `enabled = false`).
    pub fn start_with(extra_app: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir etc");
        let mut server = TestServer {
            dir,
            rest_port: 0,
            signaling_port: 0,
            bus_port: 0,
            app_port: 0,
            super_id: String::new(),
            super_key: String::new(),
            sample_room: String::new(),
            child: None,
        };
        server.pick_ports(extra_app);
        let out = server.owtctl(&["init", "--json"]);
        assert!(out.status.success(), "owtctl init failed: {}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).expect("init --json prints JSON");
        server.super_id = report["superService"]["id"].as_str().expect("superService.id").to_string();
        server.super_key = report["superService"]["key"].as_str().expect("superService.key").to_string();
        server.sample_room = report["room"]["id"].as_str().expect("room.id").to_string();
        server.spawn(extra_app);
        server
    }

    pub fn start() -> TestServer {
        Self::start_with("")
    }

    fn pick_ports(&mut self, extra_app: &str) {
        // All four listeners are held until the last is bound, so the ports differ.
        let listeners: Vec<TcpListener> =
            (0..4).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")).collect();
        let port = |i: usize| listeners[i].local_addr().expect("local_addr").port();
        (self.rest_port, self.signaling_port, self.bus_port, self.app_port) = (port(0), port(1), port(2), port(3));
        drop(listeners);
        let text = format!(
            "[state]\ndir = \"{state}\"\n\
             [management-api]\nip_address = \"127.0.0.1\"\nport = {rest}\n\
             [portal]\nip_address = \"127.0.0.1\"\nbind_address = \"127.0.0.1\"\nport = {signaling}\n\
             [cluster]\nbus = \"tcp://127.0.0.1:{bus}\"\n\
             [app]\nip_address = \"127.0.0.1\"\nport = {app}\nshare_dir = \"{share}\"\nsocketio_client = \"{client}\"\n{extra_app}\n",
            state = self.dir.path().join("state").display(),
            rest = self.rest_port,
            signaling = self.signaling_port,
            bus = self.bus_port,
            app = self.app_port,
            share = share_dir().display(),
            client = socketio_client().display(),
        );
        std::fs::write(self.etc_dir().join("portal.toml"), text).expect("write portal.toml");
    }

    pub fn etc_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("portal.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("state").join("owt.db")
    }

    /// Starts owt-portal and waits until it is ready, picking other ports when one was
    /// taken by another test's server after it was picked.
    fn spawn(&mut self, extra_app: &str) {
        for attempt in 0..3 {
            let log =
                std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open portal.log");
            // What this attempt logged: the log keeps the earlier attempts.
            let logged_before = self.log().len();
            let this_attempt = |server: &TestServer| server.log().get(logged_before..).unwrap_or_default().to_string();
            let mut child = command("owt-portal")
                .arg("--config-dir")
                .arg(self.etc_dir())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn owt-portal");
            let deadline = Instant::now() + Duration::from_secs(10);
            // Waits for ready; leaves the loop when a port was taken.
            loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    if this_attempt(self).contains("cannot listen") {
                        break;
                    }
                    panic!("owt-portal exited with {status}; log:\n{}", self.log());
                }
                let logged = this_attempt(self);
                if logged.contains("owt-portal ready") {
                    // The portal serves without the sample application when its port is taken.
                    if !logged.contains("sample application not started") {
                        self.child = Some(child);
                        return;
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("owt-portal not ready after 10 s; log:\n{}", self.log());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if attempt < 2 {
                self.pick_ports(extra_app);
            }
        }
        panic!("owt-portal found a port taken three times; log:\n{}", self.log());
    }

    pub fn app_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.app_port)
    }

    /// A request to the sample application with a JSON (or any) body.
    pub fn app(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let headers: &[(&str, &str)] = if body.is_some() { &[("Content-Type", "application/json")] } else { &[] };
        send(method, &self.app_url(path), headers, body.map(str::as_bytes))
    }

    /// A request to the REST API signed as the super service.
    pub fn rest(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = owt_auth::sign_header_now(&self.super_id, &self.super_key, now_ms());
        let body = body.map(|b| b.to_string());
        let mut headers = vec![("Authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        send(
            method,
            &format!("http://127.0.0.1:{}{path}", self.rest_port),
            &headers,
            body.as_deref().map(str::as_bytes),
        )
    }

    pub fn owtctl(&self, args: &[&str]) -> Output {
        command("owtctl").arg("--config-dir").arg(self.etc_dir()).args(args).output().expect("run owtctl")
    }

    /// The token-signing key in the database.
    pub fn token_key(&self) -> String {
        owt_store::Store::open(&self.db_path()).expect("open owt.db").token_key().expect("token key")
    }

    /// The room a token was issued for (takes the token out of the store).
    pub fn token_room(&self, token_id: &str) -> String {
        let store = owt_store::Store::open(&self.db_path()).expect("open owt.db");
        let record = store.take_token(token_id, now_ms() as i64, 180_000).expect("take_token").expect("token stored");
        record.room_id
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Decodes a conference token string into its JSON.
pub fn decode_token(text: &str) -> Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("token is not standard base64 ({e}): {text:?}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("token is not JSON ({e}): {text:?}"))
}

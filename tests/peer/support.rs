//! Harness for the owt-peer tests: runs the built owt-peer on loopback ports with a temporary
//! configuration, and drives npm socket.io clients through `tests/js/sio-driver.js`, which
//! prints one JSON line per thing that happens.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(10);

/// Environment variables of the test runner that would change what owt-peer does.
const SCRUBBED_ENV: &[&str] =
    &["RUST_LOG", "NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID", "OWT_CONFIG_DIR"];

/// `<target>/debug/<name>`: the test binary is `<target>/debug/deps/peer-xxxx`.
pub fn program(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built: run `cargo build --workspace --bins` first", path.display());
    path
}

/// `tests/js`, with its node_modules installed.
pub fn js_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    assert!(
        dir.join("node_modules/socket.io-client").exists(),
        "{}/node_modules is missing: run `make test-deps` (npm ci --prefix tests/js)",
        dir.display()
    );
    dir
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local_addr").port()
}

pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A running owt-peer.
pub struct Peer {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Peer {
    /// Starts owt-peer on 127.0.0.1 with `[peer]` keys `peer_keys` (TOML lines) and any other
    /// sections in `more`.
    pub fn start(peer_keys: &str, more: &str) -> Peer {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        Peer::write_config(dir.path(), port, peer_keys, more);
        let mut peer = Peer { child: None, port, dir };
        peer.spawn();
        assert!(wait_for_port(port, WAIT), "owt-peer did not listen on {port}:\n{}", peer.log());
        peer
    }

    /// Starts owt-peer with the plain listener on `port` (TLS tests pass 0 and their keys).
    pub fn start_on(port: u16, peer_keys: &str, more: &str, wait_port: u16) -> Peer {
        let dir = tempfile::tempdir().expect("tempdir");
        Peer::write_config(dir.path(), port, peer_keys, more);
        let mut peer = Peer { child: None, port, dir };
        peer.spawn();
        assert!(wait_for_port(wait_port, WAIT), "owt-peer did not listen on {wait_port}:\n{}", peer.log());
        peer
    }

    pub fn write_config(dir: &Path, port: u16, peer_keys: &str, more: &str) {
        let text = format!("[log]\nlevel = \"info,owt_peer=debug\"\n\n[peer]\nip_address = \"127.0.0.1\"\nport = {port}\n{peer_keys}\n\n{more}\n");
        std::fs::write(dir.join("peer.toml"), text).expect("write peer.toml");
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("log")).expect("log file");
        let mut command = Command::new(program("owt-peer"));
        for var in SCRUBBED_ENV {
            command.env_remove(var);
        }
        command
            .arg("--config-dir")
            .arg(self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(command.spawn().expect("spawn owt-peer"));
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().expect("kill");
        assert!(status.success());
    }

    /// SIGTERM, then the exit status (within 10 s).
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("owt-peer did not stop within 10 s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log().contains(needle) {
            assert!(Instant::now() < deadline, "log never said {needle:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Still running (did not crash)?
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().map(|c| c.try_wait().expect("try_wait").is_none()).unwrap_or(false)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One `sio-driver.js` process holding any number of Socket.IO clients.
pub struct Driver {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Value>,
    pending: VecDeque<Value>,
}

impl Driver {
    pub fn start() -> Driver {
        let dir = js_dir();
        let mut child = Command::new("node")
            .arg(dir.join("sio-driver.js"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node not found: run `make test-deps`");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "type": "text", "text": line }));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut driver = Driver { child, stdin, lines, pending: VecDeque::new() };
        driver.expect(|v| v["type"] == "ready", "driver ready");
        driver
    }

    pub fn send(&mut self, command: Value) {
        writeln!(self.stdin, "{command}").expect("write to driver");
        self.stdin.flush().expect("flush driver");
    }

    /// The next line matching `matches`, within 10 s (lines that do not match stay queued).
    pub fn expect(&mut self, matches: impl Fn(&Value) -> bool, what: &str) -> Value {
        self.expect_within(WAIT, matches)
            .unwrap_or_else(|| panic!("no {what} within {WAIT:?}; lines: {:?}", self.pending))
    }

    pub fn expect_within(&mut self, timeout: Duration, matches: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(i) = self.pending.iter().position(&matches) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line["type"] == "driver_error" => panic!("driver error: {line}"),
                Ok(line) if matches(&line) => return Some(line),
                Ok(line) => self.pending.push_back(line),
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => panic!("driver exited; lines: {:?}", self.pending),
            }
        }
    }

    /// Asserts that nothing matching arrives within `duration`.
    pub fn expect_none(&mut self, duration: Duration, matches: impl Fn(&Value) -> bool, what: &str) {
        if let Some(line) = self.expect_within(duration, matches) {
            panic!("unexpected {what}: {line}");
        }
    }

    /// Connects client `id` with socket.io-client `version` (2, 3 or 4).
    pub fn connect(&mut self, id: &str, url: &str, version: u8) {
        self.connect_with(id, json!({ "url": url, "version": version }));
        self.expect(|v| v["id"] == id && v["type"] == "connect", &format!("connect of {id}"));
    }

    pub fn connect_with(&mut self, id: &str, options: Value) {
        let mut command = json!({ "op": "connect", "id": id });
        if let (Some(command), Some(options)) = (command.as_object_mut(), options.as_object()) {
            command.extend(options.clone());
        }
        self.send(command);
    }

    /// Emits `event` with `args` and an ack; returns the ack's arguments.
    pub fn call(&mut self, id: &str, event: &str, args: Value) -> Value {
        let tag = format!("{event}-{}", rand_tag());
        self.send(json!({ "op": "emit", "id": id, "event": event, "args": args, "ack": true, "tag": tag }));
        let ack = self.expect(
            |v| v["id"] == id && v["type"] == "ack" && v["tag"] == tag.as_str(),
            &format!("ack of {event} by {id}"),
        );
        ack["args"].clone()
    }

    /// Emits without asking for an ack.
    pub fn emit(&mut self, id: &str, event: &str, args: Value) {
        self.send(json!({ "op": "emit", "id": id, "event": event, "args": args }));
    }

    /// Connects `id` and logs it in as `token`; returns the uid.
    pub fn login(&mut self, id: &str, url: &str, version: u8, token: &str) -> String {
        self.connect(id, url, version);
        let ack = self.call(id, "authentication", json!([{ "token": token }]));
        ack[0]["uid"].as_str().unwrap_or_else(|| panic!("login of {id} failed: {ack}")).to_string()
    }

    /// The next `event` received by `id`; returns its arguments.
    pub fn event(&mut self, id: &str, event: &str) -> Value {
        let line =
            self.expect(|v| v["id"] == id && v["type"] == "event" && v["event"] == event, &format!("{event} at {id}"));
        line["args"].clone()
    }

    /// The disconnect reason of `id`.
    pub fn disconnected(&mut self, id: &str) -> String {
        let line = self.expect(|v| v["id"] == id && v["type"] == "disconnect", &format!("disconnect of {id}"));
        line["reason"].as_str().unwrap_or_default().to_string()
    }

    pub fn close(&mut self, id: &str) {
        self.send(json!({ "op": "close", "id": id }));
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({ "op": "exit" }));
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A raw HTTP/1.1 request on 127.0.0.1:`port`; returns status, lower-case headers, body.
pub fn http(port: u16, request: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A metric's value from the Prometheus text at 127.0.0.1:`port`/metrics.
pub fn metric(port: u16, name: &str) -> u64 {
    let (status, _, body) = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

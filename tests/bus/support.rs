//! Harness of the bus tests: a `Cluster` in-process on a free loopback port, real worker
//! processes pointed at it, and a hand-written ZMTP peer for hostile input.

#![allow(dead_code)]

use owt_bus::{Cluster, ClusterEvent, WorkerView};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Environment variables of the test runner that would change what the programs do.
const SCRUBBED_ENV: &[&str] =
    &["RUST_LOG", "NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID", "OWT_CONFIG_DIR"];

/// `<target>/debug/<name>`: the test binary is `<target>/debug/deps/bus-xxxx`.
pub fn program(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built: run `cargo build --workspace --bins` first", path.display());
    path
}

/// A portal-side cluster on its own runtime.
pub struct Portal {
    pub runtime: tokio::runtime::Runtime,
    pub cluster: Option<Cluster>,
    pub events: broadcast::Receiver<ClusterEvent>,
}

impl Portal {
    /// Strategies as `(kind, strategy)`; the bus on a free loopback port unless `endpoint`.
    pub fn start(strategies: &[(&str, &str)], endpoint: Option<&str>) -> Portal {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        Portal::start_on(runtime, strategies, endpoint)
    }

    pub fn start_on(runtime: tokio::runtime::Runtime, strategies: &[(&str, &str)], endpoint: Option<&str>) -> Portal {
        let mut config = owt_config::PortalConfig::default();
        config.cluster.bus = endpoint.unwrap_or("tcp://127.0.0.1:0").to_string();
        for (kind, strategy) in strategies {
            let slot = match *kind {
                "webrtc" => &mut config.scheduling.webrtc,
                "mixer" => &mut config.scheduling.mixer,
                "record" => &mut config.scheduling.record,
                "stream" => &mut config.scheduling.stream,
                "sip" => &mut config.scheduling.sip,
                other => panic!("kind {other}"),
            };
            *slot = strategy.to_string();
        }
        let cluster = Cluster::start(&config, runtime.handle()).expect("cluster starts");
        let events = cluster.subscribe_events();
        Portal { runtime, cluster: Some(cluster), events }
    }

    pub fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("running")
    }

    pub fn endpoint(&self) -> String {
        self.cluster().endpoint().to_string()
    }

    /// Stops the cluster and hands back the runtime.
    pub fn stop(mut self) -> tokio::runtime::Runtime {
        let cluster = self.cluster.take().expect("running");
        self.runtime.block_on(cluster.stop());
        self.runtime
    }

    /// The next event, or panics after `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> ClusterEvent {
        let events = &mut self.events;
        self.runtime
            .block_on(async { tokio::time::timeout(timeout, events.recv()).await })
            .unwrap_or_else(|_| panic!("no cluster event within {timeout:?}"))
            .expect("event stream")
    }

    /// Waits until the workers include all of `node_ids`.
    pub fn wait_for_workers(&self, node_ids: &[&str], timeout: Duration) -> Vec<WorkerView> {
        let deadline = Instant::now() + timeout;
        loop {
            let workers = self.cluster().workers();
            if node_ids.iter().all(|id| workers.iter().any(|w| w.node_id == *id)) {
                return workers;
            }
            assert!(Instant::now() < deadline, "workers {node_ids:?} not all registered: {workers:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// A worker process with its own configuration directory and log file.
pub struct Worker {
    pub kind: String,
    pub node_id: String,
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Worker {
    /// Starts `owt-<kind>` with `[cluster] portal = endpoint` and the given node id.
    pub fn spawn(kind: &str, node_id: &str, endpoint: &str) -> Worker {
        Worker::spawn_with(kind, node_id, endpoint, "")
    }

    /// As [`Worker::spawn`], with `extra` appended to the configuration file (e.g. a
    /// `[capacity]` section).
    pub fn spawn_with(kind: &str, node_id: &str, endpoint: &str, extra: &str) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let config =
            format!("[log]\nlevel = \"debug\"\n\n[cluster]\nportal = \"{endpoint}\"\nnode_id = \"{node_id}\"\n{extra}");
        std::fs::write(dir.path().join(format!("{kind}.toml")), config).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let mut command = Command::new(program(&format!("owt-{kind}")));
        for var in SCRUBBED_ENV {
            command.env_remove(var);
        }
        let child = command
            .arg("--config-dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn worker");
        Worker { kind: kind.into(), node_id: node_id.into(), child, dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    pub fn kill9(&mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not stop on SIGTERM; log:\n{}", self.node_id, self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `tcp://127.0.0.1:PORT` → (127.0.0.1, PORT).
pub fn socket_addr(endpoint: &str) -> std::net::SocketAddr {
    endpoint.strip_prefix("tcp://").expect("tcp endpoint").parse().expect("ip:port")
}

/// A peer speaking ZMTP 3.0 by hand (NULL mechanism, DEALER), to send what a real DEALER
/// never would.
pub struct RawPeer {
    pub stream: TcpStream,
}

impl RawPeer {
    pub fn connect(endpoint: &str) -> RawPeer {
        let stream = TcpStream::connect(socket_addr(endpoint)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        RawPeer { stream }
    }

    pub fn greeting() -> Vec<u8> {
        let mut greeting = vec![0u8; 64];
        greeting[0] = 0xFF;
        greeting[9] = 0x7F;
        greeting[10] = 3;
        greeting[12..16].copy_from_slice(b"NULL");
        greeting
    }

    /// Greeting and READY both ways.
    pub fn handshake(endpoint: &str) -> RawPeer {
        let mut peer = RawPeer::connect(endpoint);
        peer.stream.write_all(&Self::greeting()).unwrap();
        let mut ready = vec![5u8];
        ready.extend_from_slice(b"READY");
        ready.push(11);
        ready.extend_from_slice(b"Socket-Type");
        ready.extend_from_slice(&6u32.to_be_bytes());
        ready.extend_from_slice(b"DEALER");
        peer.write_frame(4, &ready);
        let mut their_greeting = [0u8; 64];
        peer.stream.read_exact(&mut their_greeting).expect("greeting from the portal");
        assert_eq!(their_greeting[0], 0xFF);
        let (flags, body) = peer.read_frame().expect("READY from the portal");
        assert!(flags & 4 != 0 && body.starts_with(b"\x05READY"), "{flags} {body:?}");
        peer
    }

    pub fn write_frame(&mut self, flags: u8, body: &[u8]) {
        let mut out = Vec::with_capacity(body.len() + 9);
        if body.len() > 255 {
            out.push(flags | 2);
            out.extend_from_slice(&(body.len() as u64).to_be_bytes());
        } else {
            out.push(flags);
            out.push(body.len() as u8);
        }
        out.extend_from_slice(body);
        let _ = self.stream.write_all(&out);
    }

    pub fn send(&mut self, payload: &[u8]) {
        self.write_frame(0, payload);
    }

    pub fn send_json(&mut self, value: &serde_json::Value) {
        self.send(value.to_string().as_bytes());
    }

    /// One frame: (flags, body); `None` on close, error or timeout.
    pub fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut flags = [0u8; 1];
        self.stream.read_exact(&mut flags).ok()?;
        let length = if flags[0] & 2 != 0 {
            let mut length = [0u8; 8];
            self.stream.read_exact(&mut length).ok()?;
            u64::from_be_bytes(length) as usize
        } else {
            let mut length = [0u8; 1];
            self.stream.read_exact(&mut length).ok()?;
            length[0] as usize
        };
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).ok()?;
        Some((flags[0], body))
    }

    /// The next message as JSON, skipping commands.
    pub fn recv_json(&mut self) -> Option<serde_json::Value> {
        loop {
            let (flags, body) = self.read_frame()?;
            if flags & 4 != 0 {
                continue;
            }
            return Some(serde_json::from_slice(&body).expect("JSON from the portal"));
        }
    }

    /// True when the portal closed the connection (reads end) within the read timeout.
    pub fn closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(err)
                    if err.kind() == std::io::ErrorKind::WouldBlock || err.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}

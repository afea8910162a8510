//! Runs `owt_daemon::run` in the test process with a test service and reads what it tells
//! systemd: NOTIFY_SOCKET points at a unix datagram socket the test binds. `run` installs the
//! global logger and signal handlers, so each test file (a process of its own) runs it once.

#![allow(dead_code)]

use owt_config::RecordConfig;
use owt_daemon::{DaemonArgs, Service};
use std::os::unix::net::UnixDatagram;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest wait for a datagram the daemon must send; only reached when it never comes.
const NOTIFY_DEADLINE: Duration = Duration::from_secs(30);

/// The test's end of NOTIFY_SOCKET.
pub struct Notifications {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
}

impl Notifications {
    /// Binds the socket and points NOTIFY_SOCKET at it; call before starting the daemon.
    pub fn bind() -> Notifications {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        std::env::set_var("NOTIFY_SOCKET", &path);
        Notifications { socket, _dir: dir }
    }

    /// The next datagram; panics when none comes.
    pub fn next(&self) -> String {
        self.socket.set_nonblocking(false).expect("blocking");
        self.socket.set_read_timeout(Some(NOTIFY_DEADLINE)).expect("read timeout");
        let mut buf = [0u8; 4096];
        let len = self.socket.recv(&mut buf).expect("a datagram from the daemon");
        String::from_utf8_lossy(&buf[..len]).into_owned()
    }

    /// Datagrams up to and including the first one with `line` among its lines.
    pub fn until(&self, line: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let datagram = self.next();
            let found = datagram.lines().any(|l| l == line);
            seen.push(datagram);
            if found {
                return seen;
            }
        }
    }

    /// The datagrams already queued.
    pub fn drain(&self) -> Vec<String> {
        self.socket.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while let Ok(len) = self.socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        seen
    }

    /// Every datagram arriving within `window` (for "nothing of this kind comes" checks).
    pub fn during(&self, window: Duration) -> Vec<String> {
        let end = std::time::Instant::now() + window;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        self.socket.set_nonblocking(false).expect("blocking");
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return seen;
            }
            self.socket.set_read_timeout(Some(left)).expect("read timeout");
            if let Ok(len) = self.socket.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..len]).into_owned());
            }
        }
    }
}

pub fn is_ping(datagram: &str) -> bool {
    datagram.lines().any(|line| line == "WATCHDOG=1")
}

/// A daemon whose work is a tokio runtime with one worker (or no runtime at all).
pub struct TestService {
    pub runtime: Option<tokio::runtime::Runtime>,
    pub stopped: Arc<AtomicBool>,
}

pub const STATUS: &str = "test service serving";

impl Service<RecordConfig> for TestService {
    fn status(&self) -> String {
        STATUS.to_string()
    }
    fn reload(&mut self, _config: &RecordConfig) -> Result<(), String> {
        Ok(())
    }
    fn stop(self) {
        if let Some(runtime) = self.runtime {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
        self.stopped.store(true, Ordering::SeqCst);
    }
    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.as_ref().map(|runtime| runtime.handle().clone())
    }
}

pub fn one_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime")
}

/// Runs the daemon shell on a thread with embedded defaults; `service` is what `start` gives.
pub fn run_daemon(service: TestService) -> (JoinHandle<ExitCode>, tempfile::TempDir) {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let args = DaemonArgs { config_dir: config_dir.path().to_path_buf(), config: None, check_config: false };
    let thread = std::thread::spawn(move || {
        owt_daemon::run::<RecordConfig, _, String>("owt-test", &args, move |_config| Ok(service))
    });
    (thread, config_dir)
}

/// SIGTERM to this process, which the daemon shell's handler turns into a stop.
pub fn terminate() {
    signal_hook::low_level::raise(signal_hook::consts::SIGTERM).expect("raise SIGTERM");
}

pub fn hang_up() {
    signal_hook::low_level::raise(signal_hook::consts::SIGHUP).expect("raise SIGHUP");
}

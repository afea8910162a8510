//! The daemon shell shared by every owt-rs program: `--check-config`, configuration errors
//! (exit 78 naming file and key), `--help`, SIGTERM, SIGHUP reload of owt-portal (log level
//! applied, listener changes refused) and the sd_notify protocol.

use crate::support::{command, free_port, signal, wait_exit, wait_for_port, Auth, TestServer};
use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Every daemon and the stem of its configuration file.
const DAEMONS: &[(&str, &str)] = &[
    ("owt-webrtc", "webrtc"),
    ("owt-mixer", "mixer"),
    ("owt-record", "record"),
    ("owt-stream", "stream"),
    ("owt-sip", "sip"),
    ("owt-peer", "peer"),
    ("owt-portal", "portal"),
];

fn output_text(out: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Waits until `check` is true for the text of `path`, up to 5 s.
fn wait_for_file(path: &std::path::Path, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if check(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn check_config_with_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    for (daemon, _) in DAEMONS {
        let out = command(daemon).arg("--check-config").arg("--config-dir").arg(dir.path()).output().unwrap();
        let (stdout, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "{daemon}: {stdout}{stderr}");
        assert!(stdout.contains("configuration OK"), "{daemon}: {stdout}");
        assert!(stdout.contains("embedded defaults"), "{daemon}: {stdout}");
    }
    // A valid file is named.
    for (daemon, stem) in DAEMONS {
        let file = dir.path().join(format!("{stem}.toml"));
        std::fs::write(&file, "[log]\nlevel = \"debug\"\n").unwrap();
        let out = command(daemon).arg("--check-config").arg("--config-dir").arg(dir.path()).output().unwrap();
        let (stdout, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "{daemon}: {stdout}{stderr}");
        assert!(stdout.contains("configuration OK") && stdout.contains(file.to_str().unwrap()), "{daemon}: {stdout}");
    }
}

#[test]
fn configuration_errors_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    for (daemon, stem) in DAEMONS {
        let file = dir.path().join(format!("{stem}.toml"));
        std::fs::write(&file, "[log]\nlevel = \"info\"\nverbosity_knob = 3\n").unwrap();
        for check in [true, false] {
            let mut cmd = command(daemon);
            cmd.arg("--config-dir").arg(dir.path());
            if check {
                cmd.arg("--check-config");
            }
            let out = cmd.output().unwrap();
            let (stdout, stderr) = output_text(&out);
            assert_eq!(out.status.code(), Some(78), "{daemon} (check {check}): {stdout}{stderr}");
            assert!(stderr.contains(file.to_str().unwrap()), "{daemon}: path missing in {stderr}");
            assert!(stderr.contains("verbosity_knob"), "{daemon}: key missing in {stderr}");
        }
        // An invalid value names the key.
        std::fs::write(&file, "[log]\nlevel = \"loud\"\n").unwrap();
        let out = command(daemon).arg("--check-config").arg("--config-dir").arg(dir.path()).output().unwrap();
        let (_, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(78), "{daemon}: {stderr}");
        assert!(stderr.contains("log.level") && stderr.contains(file.to_str().unwrap()), "{daemon}: {stderr}");
        // Not TOML at all.
        std::fs::write(&file, "[log\n").unwrap();
        let out = command(daemon).arg("--check-config").arg("--config-dir").arg(dir.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{daemon}");
        // An explicit file that does not exist.
        let out = command(daemon).args(["--check-config", "--config", "/nonexistent.toml"]).output().unwrap();
        let (_, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(78), "{daemon}: {stderr}");
        assert!(stderr.contains("/nonexistent.toml"), "{daemon}: {stderr}");
        let out = command(daemon).args(["--config", "/nonexistent.toml"]).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{daemon} without --check-config");
    }
    // A portal-specific key in the wrong place.
    let file = dir.path().join("portal.toml");
    std::fs::write(&file, "[portal]\nprot = 8080\n").unwrap();
    let out = command("owt-portal").arg("--check-config").arg("--config").arg(&file).output().unwrap();
    let (_, stderr) = output_text(&out);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("prot") && stderr.contains(file.to_str().unwrap()), "{stderr}");
}

#[test]
fn help_exits_0() {
    for (daemon, _) in DAEMONS {
        let out = command(daemon).arg("--help").output().unwrap();
        let (stdout, stderr) = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "{daemon}: {stderr}");
        assert!(stdout.contains("--check-config") && stdout.contains("--config-dir"), "{daemon}: {stdout}");
        let out = command(daemon).arg("--version").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{daemon} --version");
        assert!(String::from_utf8_lossy(&out.stdout).contains(daemon), "{daemon} --version");
        let out = command(daemon).arg("--no-such-option").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{daemon}: usage error");
    }
}

#[test]
fn webrtc_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("webrtc.log");
    let mut child = command("owt-webrtc")
        .arg("--config-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "owt-webrtc exited early: {}", std::fs::read_to_string(&log).unwrap());
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(5));
    let text = std::fs::read_to_string(&log).unwrap();
    match status {
        Some(status) => assert_eq!(status.code(), Some(0), "log:\n{text}"),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("owt-webrtc did not stop within 5 s of SIGTERM; log:\n{text}");
        }
    }
    assert!(text.contains("ready") && text.contains("stopped"), "log:\n{text}");
}

#[test]
fn portal_stops_on_sigterm() {
    let mut server = TestServer::start();
    signal(server.child(), "TERM");
    let status = wait_exit(server.child_mut(), Duration::from_secs(5)).expect("portal stops within 5 s");
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
    assert!(!wait_for_port(server.port, Duration::from_millis(100)), "port closed");
}

#[test]
fn portal_sighup_reloads_log_level_and_refuses_listener_changes() {
    let server = TestServer::start();
    let count = |text: &str, needle: &str| text.matches(needle).count();
    let before = server.log();
    assert!(!before.contains("DEBUG"), "info level at start:\n{before}");

    let header = owt_auth::sign_header_now(&server.super_id, &server.super_key, crate::support::now_ms());
    assert_eq!(server.call("GET", "/services", None, Auth::Raw(header.clone())).status, 200);
    assert_eq!(server.call("GET", "/services", None, Auth::Raw(header.clone())).status, 401, "replay refused");
    server.write_config("[log]\nlevel = \"debug\"\n[auth]\nreplay_check = false\n");
    signal(server.child(), "HUP");
    let log = wait_for_file(&server.log_path(), |t| count(t, "configuration reloaded") >= 1);
    assert!(log.contains("configuration reloaded"), "log:\n{log}");
    let reply = server.call("GET", "/v1/rooms/", None, Auth::Super);
    assert_eq!(reply.status, 200);
    let log = wait_for_file(&server.log_path(), |t| t.contains("DEBUG") && t.contains("/v1/rooms/"));
    assert!(log.contains("DEBUG") && log.contains("/v1/rooms/"), "debug level applied:\n{log}");
    assert_eq!(server.call("GET", "/services", None, Auth::Raw(header.clone())).status, 200, "[auth] applied");

    // A new port cannot be applied by a reload: keep serving on the old one and say so.
    let new_port = free_port();
    std::fs::write(server.config_path(), server.config_text(new_port, "")).unwrap();
    signal(server.child(), "HUP");
    let log = wait_for_file(&server.log_path(), |t| t.contains("restart"));
    assert!(log.contains("restart owt-portal"), "log says a restart is needed:\n{log}");
    assert_eq!(server.call("GET", "/v1/rooms", None, Auth::Super).status, 200, "still serving on the old port");
    assert!(!wait_for_port(new_port, Duration::from_millis(200)), "nothing on the new port");

    // A broken file is refused too and the portal keeps running.
    std::fs::write(server.config_path(), "[management-api]\nbogus = 1\n").unwrap();
    signal(server.child(), "HUP");
    let log = wait_for_file(&server.log_path(), |t| t.contains("reload failed"));
    assert!(log.contains("reload failed") && log.contains("bogus"), "log:\n{log}");
    assert_eq!(server.call("GET", "/services", None, Auth::Super).status, 200);
}

/// Receives datagrams until one contains `needle`; returns everything received.
fn receive_until(socket: &UnixDatagram, needle: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline {
        match socket.recv(&mut buffer) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
                let done = message.lines().any(|line| line == needle);
                received.push(message);
                if done {
                    break;
                }
            }
            Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(err) => panic!("recv: {err}"),
        }
    }
    received
}

#[test]
fn worker_speaks_sd_notify() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let log = dir.path().join("record.log");
    let mut child = command("owt-record")
        .arg("--config-dir")
        .arg(dir.path())
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ready = receive_until(&socket, "READY=1", Duration::from_secs(10));
    let message = ready.iter().find(|m| m.lines().any(|l| l == "READY=1"));
    let Some(message) = message else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no READY=1 within 10 s: {ready:?}; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    };
    let status = message.lines().find_map(|l| l.strip_prefix("STATUS=")).expect("STATUS= beside READY=1");
    assert!(status.contains("not implemented"), "status says plainly it does no media work: {status}");

    signal(&child, "HUP");
    let reload = receive_until(&socket, "READY=1", Duration::from_secs(5));
    assert!(reload.iter().any(|m| m.lines().any(|l| l == "RELOADING=1")), "{reload:?}");

    signal(&child, "TERM");
    let stopping = receive_until(&socket, "STOPPING=1", Duration::from_secs(5));
    assert!(stopping.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")), "{stopping:?}");
    let status = wait_exit(&mut child, Duration::from_secs(5));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

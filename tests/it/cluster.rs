//! The portal with real worker processes on its bus: `owtctl cluster` and
//! `GET /v1/cluster/nodes` list them, signaling's publish goes through the scheduler to a
//! real owt-webrtc (which refuses: it does no media yet), and a worker killed with SIGKILL
//! disappears from the registry.

use crate::support::{command, Auth, TestServer};
use serde_json::{json, Value};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_worker(server: &TestServer, kind: &str, node_id: &str) -> Worker {
    let dir = server.path().join(format!("etc-{node_id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!("[cluster]\nportal = \"tcp://127.0.0.1:{}\"\nnode_id = \"{node_id}\"\n", server.bus_port);
    std::fs::write(dir.join(format!("{kind}.toml")), config).unwrap();
    let child = command(&format!("owt-{kind}"))
        .arg("--config-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn worker");
    Worker(child)
}

fn cluster(server: &TestServer) -> Vec<Value> {
    let out = server.owtctl_url(&["cluster", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

fn wait_for(server: &TestServer, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let workers = cluster(server);
        if check(&workers) {
            return workers;
        }
        assert!(Instant::now() < deadline, "{what}: {workers:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn workers_register_are_listed_and_disappear_when_killed() {
    let server = TestServer::start();
    let mut webrtc = spawn_worker(&server, "webrtc", "webrtc-a");
    let _mixer = spawn_worker(&server, "mixer", "mixer-a");
    let workers = wait_for(&server, "both workers listed", |w| w.len() == 2);
    let webrtc_view = workers.iter().find(|w| w["kind"] == "webrtc").expect("webrtc listed");
    assert_eq!(webrtc_view["node_id"], "webrtc-a");
    assert_eq!(webrtc_view["pid"], json!(webrtc.0.id()));
    assert!(webrtc_view["load"].as_f64().unwrap() >= 0.0);

    let table = server.owtctl_url(&["cluster"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("KIND"), "{text}");
    assert!(text.contains("webrtc-a") && text.contains("mixer-a"), "{text}");

    // Only the super service sees the cluster.
    let other = server.call("POST", "/services", Some(json!({"name": "tenant", "key": "k"})), Auth::Super).ok_json();
    let id = other["_id"].as_str().unwrap().to_string();
    server.call("GET", "/v1/cluster/nodes", None, Auth::Service(id, "k".into())).expect_error(403, 1102);

    let _ = webrtc.0.kill();
    let _ = webrtc.0.wait();
    wait_for(&server, "killed worker gone", |w| w.len() == 1 && w[0]["kind"] == "mixer");
}

#[test]
fn publish_is_scheduled_on_a_webrtc_node_through_the_bus() {
    let server = TestServer::start();
    let publish = |server: &TestServer| {
        let token = server
            .call(
                "POST",
                &format!("/v1/rooms/{}/tokens", server.default_room),
                Some(json!({"user": "u", "role": "presenter"})),
                Auth::Super,
            )
            .ok_text()
            .to_string();
        let script = format!(
            "const io = require('socket.io-client'); const s = io('http://127.0.0.1:{}', {{forceNew: true, reconnection: false}});\
             s.on('connect', () => s.emit('login', {{token: '{token}', userAgent: {{sdk: {{version: '5.1', type: 'JavaScript'}}}}, protocol: '1.2'}}, () => \
               s.emit('publish', {{media: {{tracks: [{{type: 'video', mid: '0', source: 'camera'}}]}}, transport: {{type: 'webrtc'}}}}, (st, m) => \
                 {{ console.log(JSON.stringify([st, m])); process.exit(0); }})));\
             setTimeout(() => process.exit(1), 8000);",
            server.signaling_port
        );
        let out = std::process::Command::new("node")
            .arg("-e")
            .arg(script)
            .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js"))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or_else(|_| {
            panic!("{} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
        })
    };
    // Without a webrtc node the portal says so.
    let answer = publish(&server);
    assert_eq!(answer, json!(["error", "No webrtc node available"]));
    // With one, the session is scheduled on it and accepted; the first session's id is the
    // transport id (spec §1.13 item 6).
    let _webrtc = spawn_worker(&server, "webrtc", "webrtc-b");
    wait_for(&server, "webrtc registered", |w| w.len() == 1);
    let answer = publish(&server);
    assert_eq!(answer[0], "ok", "{answer}");
    let id = answer[1]["id"].as_str().expect("session id");
    assert_eq!(id.len(), 32);
    assert_eq!(answer[1]["transportId"], id);
    let workers = cluster(&server);
    assert_eq!(workers[0]["tasks"], 1, "the transport is bound to the node: {workers:?}");
}

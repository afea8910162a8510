//! The portal with real worker processes on its bus: `owtctl cluster` and
//! `GET /v1/cluster/nodes` list them, a worker killed with SIGKILL disappears from the
//! registry, signaling's publish goes through the scheduler to a real owt-webrtc that takes
//! the session, a token's isp/region preference decides which webrtc node gets a client's
//! transport, and a room everybody left releases its webrtc and mixer tasks.

use crate::support::{command, Auth, TestServer};
use serde_json::{json, Value};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn spawn_worker(server: &TestServer, kind: &str, node_id: &str) -> Worker {
    spawn_worker_with(server, kind, node_id, "")
}

/// A worker whose configuration file also has `extra` (e.g. a `[capacity]` section).
pub(crate) fn spawn_worker_with(server: &TestServer, kind: &str, node_id: &str, extra: &str) -> Worker {
    let dir = server.path().join(format!("etc-{node_id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config =
        format!("[cluster]\nportal = \"tcp://127.0.0.1:{}\"\nnode_id = \"{node_id}\"\n{extra}", server.bus_port);
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

pub(crate) fn cluster(server: &TestServer) -> Vec<Value> {
    let out = server.owtctl_url(&["cluster", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

pub(crate) fn wait_for(server: &TestServer, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
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

/// Tasks per worker node id, from `owtctl cluster --json`.
fn tasks_by_node(workers: &[Value]) -> Value {
    workers.iter().map(|w| (w["node_id"].as_str().unwrap().to_string(), w["tasks"].clone())).collect()
}

#[test]
fn a_token_preference_decides_which_webrtc_node_gets_the_transport() {
    let server = TestServer::start();
    // Registration order: the node that serves everybody first, so the strategy alone
    // (last-used) would always pick it.
    let _any = spawn_worker(&server, "webrtc", "webrtc-any");
    wait_for(&server, "webrtc-any registered", |w| w.len() == 1);
    let _north = spawn_worker_with(&server, "webrtc", "webrtc-north", "[capacity]\nregion = [\"north\"]\n");
    let _south = spawn_worker_with(
        &server,
        "webrtc",
        "webrtc-ispx-south",
        "[capacity]\nisp = [\"isp-x\"]\nregion = [\"south\"]\n",
    );
    let workers = wait_for(&server, "three webrtc nodes registered", |w| w.len() == 3);
    let south = workers.iter().find(|w| w["node_id"] == "webrtc-ispx-south").unwrap();
    assert_eq!(south["capacity"], json!({"isp": ["isp-x"], "region": ["south"]}), "{south}");

    let room = server.default_room.clone();
    let mut clients = Vec::new();
    let mut expected = json!({"webrtc-any": 0, "webrtc-north": 0, "webrtc-ispx-south": 0});
    for (user, preference, node) in [
        ("north", Some(json!({"region": "north"})), "webrtc-north"),
        ("south-x", Some(json!({"isp": "isp-x", "region": "south"})), "webrtc-ispx-south"),
        // No node lists isp-y: only the one with an empty isp list serves it; and no node
        // with an empty isp list lists south, so the region falls back to any region.
        ("south-y", Some(json!({"isp": "isp-y", "region": "south"})), "webrtc-any"),
        // OWT's default preference {isp: "isp", region: "region"}.
        ("plain", None, "webrtc-any"),
    ] {
        let mut body = json!({"user": user, "role": "presenter"});
        if let Some(preference) = preference {
            body["preference"] = preference;
        }
        let token =
            server.call("POST", &format!("/v1/rooms/{room}/tokens"), Some(body), Auth::Super).ok_text().to_string();
        let mut client = crate::signaling::Client::connect(4, &server);
        client.login(&token);
        let published = client.ok(
            "publish",
            Some(json!({"media": {"tracks": [{"type": "audio", "mid": "0", "source": "mic"}]}, "transport": {"type": "webrtc"}})),
        );
        assert!(published["transportId"].is_string(), "{published}");
        expected[node] = json!(expected[node].as_u64().unwrap() + 1);
        wait_for(&server, &format!("{user}'s transport on {node}: {expected}"), |w| tasks_by_node(w) == expected);
        clients.push(client);
    }
}

#[test]
fn a_room_left_by_everyone_releases_its_webrtc_and_mixer_tasks() {
    let server = TestServer::start();
    let _webrtc = spawn_worker(&server, "webrtc", "webrtc-r");
    let _mixer = spawn_worker(&server, "mixer", "mixer-r");
    wait_for(&server, "webrtc and mixer registered", |w| w.len() == 2);
    let room = server.default_room.clone();
    let token = |user: &str| crate::signaling::token(&server, &room, user, "presenter");
    let mut alice = crate::signaling::Client::connect(4, &server);
    alice.login(&token("alice"));
    let mut bob = crate::signaling::Client::connect(4, &server);
    bob.login(&token("bob"));
    alice.ok(
        "publish",
        Some(json!({"media": {"tracks": [{"type": "audio", "mid": "0", "source": "mic"}]}, "transport": {"type": "webrtc"}})),
    );
    // Subscribing the mixed stream starts its view on the mixer.
    bob.ok(
        "subscribe",
        Some(json!({"media": {"tracks": [{"type": "video", "mid": "0", "from": format!("{room}-common")}]},
            "transport": {"type": "webrtc"}})),
    );
    let running = |server: &TestServer| {
        server.call("GET", &format!("/v1/rooms/{room}/streams"), None, Auth::Super).ok_json().as_array().unwrap().len()
    };
    assert!(running(&server) >= 1, "the room is running: its mixed stream is listed");
    wait_for(&server, "two transports and a view", |w| tasks_by_node(w) == json!({"webrtc-r": 2, "mixer-r": 1}));

    // One participant leaving releases only its own transport.
    alice.ok("logout", None);
    wait_for(&server, "alice's transport released", |w| tasks_by_node(w) == json!({"webrtc-r": 1, "mixer-r": 1}));
    // The last one leaving tears the room down with everything it ran.
    bob.ok("logout", None);
    wait_for(&server, "every task released", |w| tasks_by_node(w) == json!({"webrtc-r": 0, "mixer-r": 0}));
    let participants = server.call("GET", &format!("/v1/rooms/{room}/participants"), None, Auth::Super).ok_json();
    assert_eq!(participants, json!([]));
    assert_eq!(running(&server), 0, "a room nobody is in runs no streams");
    assert!(server.log().contains("room torn down: nobody left"), "{}", server.log());
}

//! The control-plane bus end to end: an in-process `owt_bus::Cluster` (what owt-portal
//! runs) on a loopback port, the real worker binaries registering with it, scheduling across
//! them, death detection of a SIGKILLed worker, a portal restart, and hostile bus input.
//! Needs the programs built (`cargo build --workspace --bins`).

mod support;

use owt_bus::registry::DeathReason;
use owt_bus::{ClusterError, ClusterEvent, Preference};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{Portal, RawPeer, Worker};

const REGISTER_WAIT: Duration = Duration::from_secs(10);

#[test]
fn workers_of_every_kind_register_report_load_and_answer_status() {
    let mut portal = Portal::start(&[], None);
    let endpoint = portal.endpoint();
    let kinds = ["webrtc", "mixer", "record", "stream", "sip"];
    let mut workers: Vec<Worker> =
        kinds.iter().map(|kind| Worker::spawn(kind, &format!("{kind}-1"), &endpoint)).collect();
    let ids: Vec<String> = kinds.iter().map(|kind| format!("{kind}-1")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    portal.wait_for_workers(&id_refs, REGISTER_WAIT);
    // A heartbeat or two, so loads and last-seen are live figures.
    std::thread::sleep(Duration::from_millis(1500));
    let views = portal.cluster().workers();
    assert_eq!(views.len(), kinds.len(), "{views:?}");
    for worker in &workers {
        let view = views.iter().find(|v| v.node_id == worker.node_id).expect("registered");
        assert_eq!(view.kind, worker.kind);
        assert_eq!(view.pid, worker.pid());
        assert!(!view.hostname.is_empty());
        assert_eq!(view.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(view.max_load, 0.85);
        assert!((0.0..=1.0).contains(&view.load), "{view:?}");
        assert!(view.last_seen_ms_ago < 1500, "heartbeats arrive: {view:?}");
        assert!(view.capacity.isp.is_empty() && view.capacity.region.is_empty());

        let status = portal
            .block_on(portal.cluster().request(&worker.node_id, "status", Value::Null, Duration::from_secs(3)))
            .unwrap();
        assert_eq!(status["kind"], worker.kind.as_str());
        let log = worker.log();
        assert!(log.contains("registered with the portal"), "{log}");
        if worker.kind == "webrtc" {
            // owt-webrtc does its media work: its status counts transports and tracks, and
            // a malformed publish is refused as bad parameters.
            assert_eq!(status["implemented"], true, "{status}");
            assert!(status["transports"].as_u64().is_some(), "{status}");
            let err = portal
                .block_on(portal.cluster().request(&worker.node_id, "publish", json!({}), Duration::from_secs(3)))
                .unwrap_err();
            assert!(err.to_string().contains("bad-params") || err.to_string().contains("invalid"), "{err}");
            continue;
        }
        if worker.kind == "mixer" {
            // owt-mixer renders views: its status counts them; malformed or unknown views are
            // refused, and it keeps serving.
            assert_eq!(status["implemented"], true, "{status}");
            assert_eq!(status["views"], 0, "{status}");
            let ask = |method: &str, params: Value| {
                portal.block_on(portal.cluster().request(&worker.node_id, method, params, Duration::from_secs(3)))
            };
            let bad = [
                ("init-view", json!({})),
                ("init-view", json!({"viewId": "v", "roomId": "r", "video": {"codec": "theora"}, "audio": null})),
                ("init-view", json!({"viewId": "", "roomId": "r", "video": null, "audio": null})),
                ("set-inputs", json!({"viewId": "nope", "inputs": [], "layout": []})),
                ("close-view", json!({"viewId": "nope"})),
                ("publish", json!({})),
            ];
            for (method, params) in bad {
                let err = ask(method, params.clone()).expect_err(method);
                let text = err.to_string();
                assert!(
                    ["bad-params", "unknown", "no view"].iter().any(|w| text.contains(w)),
                    "{method} {params}: {text}"
                );
            }
            assert_eq!(ask("status", Value::Null).unwrap()["views"], 0);
            continue;
        }
        assert_eq!(status["node_id"], worker.node_id.as_str());
        assert_eq!(status["implemented"], false);
        assert!(status["uptime_s"].as_u64().is_some(), "{status}");

        let err = portal
            .block_on(portal.cluster().request(&worker.node_id, "publish", json!({}), Duration::from_secs(3)))
            .unwrap_err();
        assert!(err.to_string().contains("not implemented in this release"), "{err}");
        assert!(log.contains("not implemented in this release"), "{log}");
    }
    let joined: Vec<String> = (0..kinds.len())
        .map(|_| match portal.next_event(Duration::from_secs(1)) {
            ClusterEvent::WorkerJoined { node_id, .. } => node_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(joined.len(), kinds.len());

    // SIGTERM: the worker says quit, the portal drops it at once, the process exits 0.
    let mut sip = workers.pop().unwrap();
    let asked = Instant::now();
    let status = sip.terminate(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    match portal.next_event(Duration::from_secs(2)) {
        ClusterEvent::WorkerDied { node_id, reason, .. } => {
            assert_eq!((node_id.as_str(), reason), ("sip-1", DeathReason::Quit));
        }
        other => panic!("{other:?}"),
    }
    assert!(asked.elapsed() < Duration::from_secs(2), "quit is not a missed heartbeat: {:?}", asked.elapsed());
    assert_eq!(portal.cluster().workers().len(), kinds.len() - 1);
    portal.stop();
}

#[test]
fn scheduling_across_two_webrtc_and_two_mixer_processes_follows_the_strategies() {
    let portal = Portal::start(&[("webrtc", "last-used"), ("mixer", "round-robin")], None);
    let endpoint = portal.endpoint();
    // Registration order decides ties: start each kind's first worker first.
    let w1 = Worker::spawn("webrtc", "webrtc-a", &endpoint);
    let m1 = Worker::spawn("mixer", "mixer-a", &endpoint);
    portal.wait_for_workers(&["webrtc-a", "mixer-a"], REGISTER_WAIT);
    let w2 = Worker::spawn("webrtc", "webrtc-b", &endpoint);
    let m2 = Worker::spawn("mixer", "mixer-b", &endpoint);
    portal.wait_for_workers(&["webrtc-b", "mixer-b"], REGISTER_WAIT);
    let cluster = portal.cluster();
    let none = Preference::none();
    let schedule = |kind: &str, task: &str| portal.block_on(cluster.schedule(kind, task, &none)).unwrap();

    // last-used: every new webrtc task goes where the previous one went.
    let webrtc: Vec<String> = (0..4).map(|i| schedule("webrtc", &format!("transport-{i}"))).collect();
    assert_eq!(webrtc, ["webrtc-a"; 4]);
    // round-robin: mixers take turns.
    let mixer: Vec<String> = (0..4).map(|i| schedule("mixer", &format!("room-{i}"))).collect();
    assert_eq!(mixer, ["mixer-a", "mixer-b", "mixer-a", "mixer-b"]);
    // A bound task keeps its worker; released, it is scheduled anew.
    assert_eq!(schedule("mixer", "room-1"), "mixer-b");
    assert_eq!(portal.block_on(cluster.release("mixer", "room-1")).unwrap().as_deref(), Some("mixer-b"));
    assert_eq!(schedule("mixer", "room-1"), "mixer-a");
    // Workers serve only clients without isp/region preference or the ones they list.
    let isp = Preference { isp: Some("isp-x".into()), region: None };
    assert_eq!(
        portal.block_on(cluster.schedule("webrtc", "t-isp", &isp)).unwrap(),
        "webrtc-a",
        "empty isp list serves all"
    );
    let err = portal.block_on(cluster.schedule("record", "r", &none)).unwrap_err();
    assert!(matches!(err, ClusterError::NoWorker { ref kind } if kind == "record"), "{err}");

    let views = cluster.workers();
    let tasks = |id: &str| views.iter().find(|v| v.node_id == id).unwrap().tasks;
    assert_eq!((tasks("webrtc-a"), tasks("webrtc-b")), (5, 0));
    assert_eq!((tasks("mixer-a"), tasks("mixer-b")), (3, 1));
    drop((w1, w2, m1, m2));
    portal.stop();
}

#[test]
fn a_sigkilled_worker_is_reported_dead_with_its_tasks_within_four_seconds() {
    let mut portal = Portal::start(&[("webrtc", "last-used")], None);
    let endpoint = portal.endpoint();
    let mut victim = Worker::spawn("webrtc", "webrtc-victim", &endpoint);
    portal.wait_for_workers(&["webrtc-victim"], REGISTER_WAIT);
    let _survivor = Worker::spawn("webrtc", "webrtc-survivor", &endpoint);
    portal.wait_for_workers(&["webrtc-survivor"], REGISTER_WAIT);
    let none = Preference::none();
    for task in ["transport-1", "transport-2"] {
        assert_eq!(portal.block_on(portal.cluster().schedule("webrtc", task, &none)).unwrap(), "webrtc-victim");
    }
    // Let the heartbeats settle, then kill without warning.
    std::thread::sleep(Duration::from_millis(1200));
    while portal.events.try_recv().is_ok() {}
    let killed = Instant::now();
    victim.kill9();
    let event = portal.next_event(Duration::from_secs(6));
    let took = killed.elapsed();
    match event {
        ClusterEvent::WorkerDied { node_id, kind, tasks, reason } => {
            assert_eq!((node_id.as_str(), kind.as_str()), ("webrtc-victim", "webrtc"));
            assert_eq!(tasks, ["transport-1", "transport-2"]);
            assert_eq!(reason, DeathReason::MissedHeartbeats);
        }
        other => panic!("{other:?}"),
    }
    assert!(took >= Duration::from_millis(1900) && took <= Duration::from_millis(4300), "dead after {took:?}");
    // Its work goes elsewhere; the survivor is untouched.
    assert_eq!(portal.block_on(portal.cluster().schedule("webrtc", "transport-1", &none)).unwrap(), "webrtc-survivor");
    let views = portal.cluster().workers();
    assert_eq!(views.len(), 1);
    assert!(views[0].last_seen_ms_ago < 1500);
    portal.stop();
}

#[test]
fn after_a_portal_restart_the_worker_is_asked_whoareyou_and_registers_again() {
    let portal = Portal::start(&[], None);
    let endpoint = portal.endpoint();
    let worker = Worker::spawn("record", "record-phoenix", &endpoint);
    portal.wait_for_workers(&["record-phoenix"], REGISTER_WAIT);
    let runtime = portal.stop();
    std::thread::sleep(Duration::from_millis(300));
    let mut portal = Portal::start_on(runtime, &[], Some(&endpoint));
    assert_eq!(portal.endpoint(), endpoint);
    match portal.next_event(Duration::from_secs(10)) {
        ClusterEvent::WorkerJoined { node_id, kind, info } => {
            assert_eq!((node_id.as_str(), kind.as_str()), ("record-phoenix", "record"));
            assert_eq!(info.pid, worker.pid());
        }
        other => panic!("{other:?}"),
    }
    let log = worker.log();
    assert!(log.contains("lost the portal"), "{log}");
    assert!(log.contains("whoareyou"), "{log}");
    let status = portal
        .block_on(portal.cluster().request("record-phoenix", "status", Value::Null, Duration::from_secs(3)))
        .unwrap();
    assert_eq!(status["node_id"], "record-phoenix");
    portal.stop();
}

/// A registered raw peer: greeting, READY, `register` answered.
fn registered_raw_peer(endpoint: &str, node_id: &str) -> RawPeer {
    let mut peer = RawPeer::handshake(endpoint);
    peer.send_json(&json!({"version": 1, "id": 1, "kind": "request", "method": "register", "params": {
        "kind": "webrtc", "node_id": node_id, "max_load": 0.85, "hostname": "raw", "pid": 1
    }}));
    let reply = peer.recv_json().expect("register reply");
    assert_eq!(reply["reply_to"], 1, "{reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["result"]["heartbeat_ms"], 1000, "{reply}");
    peer
}

#[test]
fn hostile_bus_input_is_refused_and_other_workers_keep_being_served() {
    let portal = Portal::start(&[], None);
    let endpoint = portal.endpoint();
    let _worker = Worker::spawn("webrtc", "webrtc-honest", &endpoint);
    portal.wait_for_workers(&["webrtc-honest"], REGISTER_WAIT);

    // Not ZMTP at all: closed.
    let mut http = RawPeer::connect(&endpoint);
    http.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(http.closed_by_server(), "garbage greeting");

    // A frame announcing 2^60 bytes: closed on the length alone.
    let mut huge = RawPeer::handshake(&endpoint);
    let mut header = vec![2u8];
    header.extend_from_slice(&(1u64 << 60).to_be_bytes());
    use std::io::Write;
    huge.stream.write_all(&header).unwrap();
    assert!(huge.closed_by_server(), "absurd frame length");

    // A message of 2 MiB: closed.
    let mut big = RawPeer::handshake(&endpoint);
    let mut payload = br#"{"version":1,"id":9,"kind":"event","method":"x","params":""#.to_vec();
    payload.resize(2 * 1024 * 1024, b'a');
    payload.extend_from_slice(b"\"}");
    big.send(&payload);
    assert!(big.closed_by_server(), "oversized message");

    // Readable but wrong: dropped or answered with an error, the connection stays.
    let mut peer = RawPeer::handshake(&endpoint);
    peer.send(b"\x00\x01\x02 not json");
    peer.send(b"{\"version\": 1}");
    peer.send_json(&json!({"version": 1, "id": 3, "kind": "request", "method": "frobnicate"}));
    let reply = peer.recv_json().expect("an error reply");
    assert_eq!((reply["reply_to"].clone(), reply["ok"].clone()), (json!(3), json!(false)), "{reply}");
    assert_eq!(reply["error"]["code"], "not-registered");
    peer.send_json(&json!({"version": 7, "id": 4, "kind": "request", "method": "status"}));
    let reply = peer.recv_json().expect("an error reply");
    assert_eq!(reply["error"]["code"], "unsupported-version", "{reply}");
    peer.send_json(
        &json!({"version": 1, "id": 5, "kind": "request", "method": "register", "params": {"kind": "webrtc"}}),
    );
    let reply = peer.recv_json().expect("an error reply");
    assert_eq!(reply["error"]["code"], "bad-params", "{reply}");
    peer.send_json(&json!({"version": 1, "id": 6, "kind": "request", "method": "register", "params": {
        "kind": "webrtc", "node_id": "webrtc-honest", "max_load": 0.5, "hostname": "elsewhere", "pid": 4
    }}));
    let reply = peer.recv_json().expect("an error reply");
    assert_eq!(reply["error"]["code"], "node-id-in-use", "a live worker's node id cannot be taken: {reply}");
    // Several frames in one message: ignored.
    peer.write_frame(1, b"{}");
    peer.write_frame(0, b"{}");
    // Heartbeat from an unregistered connection: whoareyou.
    peer.send_json(&json!({"version": 1, "id": 7, "kind": "request", "method": "heartbeat", "params": {"load": 0.1}}));
    let reply = peer.recv_json().expect("heartbeat reply");
    assert_eq!(reply["result"], "whoareyou", "{reply}");
    assert!(!peer.closed_by_server(), "bad messages do not cost the connection");

    // Registered, an unknown method is an error, and events of any name are fine.
    let mut raw = registered_raw_peer(&endpoint, "webrtc-raw");
    raw.send_json(&json!({"version": 1, "id": 2, "kind": "request", "method": "frobnicate", "params": {}}));
    let reply = raw.recv_json().expect("error reply");
    assert_eq!(reply["error"]["code"], "unknown-method", "{reply}");
    raw.send_json(
        &json!({"version": 1, "id": 3, "kind": "request", "method": "heartbeat", "params": {"load": "high"}}),
    );
    let reply = raw.recv_json().expect("error reply");
    assert_eq!(reply["error"]["code"], "bad-params", "{reply}");

    // Through all of it the honest worker kept beating and answering.
    std::thread::sleep(Duration::from_millis(1200));
    let views = portal.cluster().workers();
    let honest = views.iter().find(|v| v.node_id == "webrtc-honest").expect("still registered");
    assert!(honest.last_seen_ms_ago < 1500, "{honest:?}");
    let status = portal
        .block_on(portal.cluster().request("webrtc-honest", "status", Value::Null, Duration::from_secs(3)))
        .unwrap();
    assert_eq!(status["kind"], "webrtc", "{status}");
    assert!(views.iter().any(|v| v.node_id == "webrtc-raw"));
    // And a newcomer can still join.
    let _late = registered_raw_peer(&endpoint, "webrtc-late");
    portal.stop();
}

/// Makes a mixer process busy for real: it renders a view (compositing and VP8 encoding
/// frames continuously) until the test ends, so the load it reports on its heartbeats rises.
fn render_a_view_on(portal: &Portal, mixer: &str) {
    let init = owt_proto::mixer::InitView {
        view_id: "busy-view".into(),
        room_id: "busy-room".into(),
        video: Some(owt_proto::mixer::VideoOutput {
            codec: "vp8".into(),
            width: 640,
            height: 480,
            framerate: 30,
            bitrate_kbps: 800,
            keyframe_interval: 1,
            bg_color: [40, 80, 120],
            crop: false,
        }),
        audio: None,
    };
    portal
        .block_on(portal.cluster().request(mixer, "init-view", json!(init), Duration::from_secs(5)))
        .expect("init-view");
}

/// Waits until the heartbeats show `busy` working and `idle` at less than a quarter of it.
fn wait_for_loads(portal: &Portal, busy: &str, idle: &str) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let views = portal.cluster().workers();
        let load = |id: &str| views.iter().find(|v| v.node_id == id).expect("registered").load;
        let (busy_load, idle_load) = (load(busy), load(idle));
        if busy_load >= 0.005 && idle_load * 4.0 < busy_load {
            return (busy_load, idle_load);
        }
        assert!(Instant::now() < deadline, "loads never diverged: {busy} {busy_load}, {idle} {idle_load}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn schedule_tasks(portal: &Portal, kind: &str, count: usize) -> Vec<String> {
    let none = Preference::none();
    (0..count).map(|i| portal.block_on(portal.cluster().schedule(kind, &format!("task-{i}"), &none)).unwrap()).collect()
}

#[test]
fn least_used_gives_new_work_to_the_mixer_process_with_the_lower_measured_load() {
    let portal = Portal::start(&[("mixer", "least-used")], None);
    let endpoint = portal.endpoint();
    // The busy one registers first: a tie would go to it.
    let _busy = Worker::spawn("mixer", "mixer-busy", &endpoint);
    portal.wait_for_workers(&["mixer-busy"], REGISTER_WAIT);
    let _idle = Worker::spawn("mixer", "mixer-idle", &endpoint);
    portal.wait_for_workers(&["mixer-idle"], REGISTER_WAIT);
    render_a_view_on(&portal, "mixer-busy");
    let loads = wait_for_loads(&portal, "mixer-busy", "mixer-idle");
    assert_eq!(schedule_tasks(&portal, "mixer", 3), ["mixer-idle"; 3], "loads {loads:?}");
    portal.stop();
}

#[test]
fn most_used_gives_new_work_to_the_mixer_process_with_the_higher_measured_load() {
    let portal = Portal::start(&[("mixer", "most-used")], None);
    let endpoint = portal.endpoint();
    // The idle one registers first: a tie would go to it.
    let _idle = Worker::spawn("mixer", "mixer-idle", &endpoint);
    portal.wait_for_workers(&["mixer-idle"], REGISTER_WAIT);
    let _busy = Worker::spawn("mixer", "mixer-busy", &endpoint);
    portal.wait_for_workers(&["mixer-busy"], REGISTER_WAIT);
    render_a_view_on(&portal, "mixer-busy");
    let loads = wait_for_loads(&portal, "mixer-busy", "mixer-idle");
    assert_eq!(schedule_tasks(&portal, "mixer", 3), ["mixer-busy"; 3], "loads {loads:?}");
    portal.stop();
}

#[test]
fn randomly_pick_spreads_tasks_over_every_worker_process() {
    let portal = Portal::start(&[("webrtc", "randomly-pick")], None);
    let endpoint = portal.endpoint();
    let ids = ["webrtc-1", "webrtc-2", "webrtc-3"];
    let _workers: Vec<Worker> = ids.iter().map(|id| Worker::spawn("webrtc", id, &endpoint)).collect();
    portal.wait_for_workers(&ids, REGISTER_WAIT);
    // 60 picks: each worker is left out with probability 3 * (2/3)^60, about 1e-10.
    let picks = schedule_tasks(&portal, "webrtc", 60);
    // The listing follows the registry a moment after the scheduling answers.
    let deadline = Instant::now() + Duration::from_secs(2);
    let views = loop {
        let views = portal.cluster().workers();
        if views.iter().map(|v| v.tasks).sum::<usize>() == 60 || Instant::now() > deadline {
            break views;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for id in ids {
        let picked = picks.iter().filter(|p| *p == id).count();
        assert!(picked > 0, "{id} never picked: {picks:?}");
        let view = views.iter().find(|v| v.node_id == id).unwrap();
        assert_eq!(view.tasks, picked, "the registry's task count of {id}");
    }
    portal.stop();
}

#[test]
fn isp_and_region_capacities_of_worker_processes_decide_who_serves_a_preference() {
    let portal = Portal::start(&[("webrtc", "round-robin")], None);
    let endpoint = portal.endpoint();
    let _any = Worker::spawn("webrtc", "webrtc-any", &endpoint);
    let _isp = Worker::spawn_with("webrtc", "webrtc-ispx", &endpoint, "[capacity]\nisps = [\"isp-x\"]\n");
    let _north = Worker::spawn_with("webrtc", "webrtc-north", &endpoint, "[capacity]\nregion = [\"north\"]\n");
    let views = portal.wait_for_workers(&["webrtc-any", "webrtc-ispx", "webrtc-north"], REGISTER_WAIT);
    let capacity = |id: &str| views.iter().find(|v| v.node_id == id).unwrap().capacity.clone();
    assert_eq!((capacity("webrtc-ispx").isp, capacity("webrtc-ispx").region), (vec!["isp-x".to_string()], vec![]));
    assert_eq!(capacity("webrtc-north").region, ["north"]);

    let mut next = 0;
    let mut served = |isp: Option<&str>, region: Option<&str>| -> std::collections::BTreeSet<String> {
        let preference = Preference { isp: isp.map(str::to_owned), region: region.map(str::to_owned) };
        (0..4)
            .map(|_| {
                next += 1;
                portal.block_on(portal.cluster().schedule("webrtc", &format!("t{next}"), &preference)).unwrap()
            })
            .collect()
    };
    let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<std::collections::BTreeSet<String>>();
    // Round-robin turns only among the workers that may serve the preference.
    assert_eq!(served(None, None), set(&["webrtc-any"]), "no preference: only workers that list nothing");
    assert_eq!(served(Some("isp-x"), None), set(&["webrtc-any", "webrtc-ispx"]));
    assert_eq!(served(Some("isp-y"), None), set(&["webrtc-any"]), "an isp nobody lists");
    assert_eq!(served(None, Some("north")), set(&["webrtc-north"]), "a listed region wins");
    assert_eq!(served(Some("isp-x"), Some("north")), set(&["webrtc-north"]));
    assert_eq!(served(None, Some("east")), set(&["webrtc-any"]), "an unlisted region falls back to any region");
    portal.stop();
}
